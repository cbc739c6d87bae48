"""The WebSocket endpoint: handshake checks, then one TabConnection per socket."""

from http import HTTPStatus

from websockets.asyncio.server import Server, ServerConnection, serve
from websockets.datastructures import Headers
from websockets.http11 import Request, Response
from websockets.typing import Origin, Subprotocol

from daemon.server.connection import AgentBudgets, ConnectionLimits, TabConnection
from daemon.server.frames import EntryFrames
from daemon.server.hub import AgentHub
from daemon.server.keepalive import Keepalive
from daemon.server.metrics import Metrics
from daemon.server.socket import TabSocket
from protocol.codec import SUBPROTOCOLS, codec_for
from protocol.errors import CloseCode

WS_PATH = "/ws"


def _refuse(status: HTTPStatus, text: str) -> Response:
    body = (text + "\n").encode()
    headers = Headers([("Content-Type", "text/plain"), ("Content-Length", str(len(body)))])
    return Response(status.value, status.phrase, headers, body)


async def start_ws_server(
    *,
    host: str,
    port: int,
    hub: AgentHub,
    secret: str,
    limits: ConnectionLimits,
    metrics: Metrics,
    allowed_origins: list[str],
    max_message_bytes: int,
    max_queue: int,
    ping_interval: float,
    ping_timeout: float,
) -> Server:
    """Serve tabs. Readiness is enforced at hello (close 1013), so tabs get a close code.

    Keepalive pings (every `ping_interval`, failing a connection whose pong is `ping_timeout`
    late) come from one `Keepalive` timer for all tabs, not a task per connection."""
    budgets = AgentBudgets(limits)
    frames = EntryFrames()
    keepalive = Keepalive(ping_interval, ping_timeout)

    async def handler(ws: ServerConnection) -> None:
        keepalive.start(ws)
        try:
            await serve_tab(ws)
        finally:
            keepalive.stop(ws)

    async def serve_tab(ws: ServerConnection) -> None:
        codec = codec_for(ws.subprotocol)
        if codec is None:  # the handshake already refused anything else; belt and braces
            await ws.close(int(CloseCode.PROTOCOL_ERROR), "unsupported subprotocol")
            return
        assert isinstance(ws, TabSocket)
        # The handshake's headers (kilobytes) are not needed once the connection is open,
        # and an idle tab would keep them for hours.
        for handshake in (ws.request, ws.response):
            if handshake is not None:
                handshake.headers.clear()
        await TabConnection(ws, codec, hub, secret, limits, budgets, metrics, frames).run()

    def check_request(_: ServerConnection, request: Request) -> Response | None:
        if request.path.split("?", 1)[0] != WS_PATH:
            return _refuse(HTTPStatus.NOT_FOUND, f"the WebSocket endpoint is {WS_PATH}")
        return None

    origins: list[Origin | None] | None = (
        [Origin(o) for o in allowed_origins] + [None] if allowed_origins else None
    )
    return await serve(
        handler,
        host,
        port,
        subprotocols=[Subprotocol(s) for s in SUBPROTOCOLS],
        origins=origins,
        compression=None,
        max_size=max_message_bytes,
        max_queue=max_queue,
        ping_interval=None,  # the library's per-connection keepalive: `keepalive` instead
        process_request=check_request,
        server_header="switchboard",
        close_timeout=2,  # a client that ignores our close frame holds nothing for long
        # Thousands of tabs reconnect at once after a restart or a failover; with asyncio's
        # default accept queue (100) the overflow's SYNs are dropped and retried seconds later.
        backlog=4096,
        create_connection=TabSocket,
    )
