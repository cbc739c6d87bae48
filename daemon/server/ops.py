"""The ops HTTP app: liveness, readiness, metrics, the agent state page, and the demo.

Liveness says the process answers; readiness says it can take tabs now (the store answers).
`/admin/*` answers a caller with the admin bearer token, or, when no token is configured, a
caller on this machine; its views leave out what would let a reader act as a tab or learn a
customer's number (sessions, connection ids, phone numbers). The demo routes exist only in
demo mode, which `Settings` allows only on loopback with a development secret.
"""

import hmac
import ipaddress
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

from aiohttp import web
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from daemon.connect.sandbox import ConnectSandbox, SandboxContact
from daemon.core.views import contact_view, media_view
from daemon.server.hub import AgentHub
from daemon.server.metrics import Metrics
from daemon.store.base import StoreUnavailable

STATIC = Path(__file__).parent / "static"
JS = Path(__file__).resolve().parents[2] / "clients" / "js"


class Demo:
    """What the demo pages need from the daemon: a token per agent and the sandbox's state."""

    def __init__(
        self,
        ws_url: str,
        mint: Callable[[str], str],
        zendesk_state: Callable[[], Awaitable[dict[str, Any]]],
        connect: ConnectSandbox | None = None,
    ) -> None:
        self.ws_url = ws_url
        self.mint = mint
        self.zendesk_state = zendesk_state
        self.connect = connect  # the embedded Connect, where simulated calls are placed


def redact_number(endpoint: str | None) -> str | None:
    """A customer endpoint as admin views show it: the last two digits of a long number, enough
    to tell two callers apart during an incident, never enough to call one."""
    if endpoint is None:
        return None
    digits = "".join(ch for ch in endpoint if ch.isdigit())
    shown = digits[-2:] if len(digits) > 4 else ""
    return "•" * (len(digits) - len(shown)) + shown


def _loopback_peer(request: web.Request) -> bool:
    try:
        return ipaddress.ip_address(request.remote or "").is_loopback
    except ValueError:
        return False


def admin_guard(admin_token: str | None) -> Callable[[web.Request], None]:
    """Raises 401/403 unless the caller may read admin views (see the module docstring)."""

    def check(request: web.Request) -> None:
        if admin_token is None:
            if not _loopback_peer(request):
                raise web.HTTPForbidden(
                    text="admin views answer loopback callers only: set SWITCHBOARD_ADMIN_TOKEN"
                )
            return
        given = request.headers.get("Authorization", "").encode()
        if not hmac.compare_digest(given, b"Bearer " + admin_token.encode()):
            raise web.HTTPUnauthorized(
                text="admin views need 'Authorization: Bearer <SWITCHBOARD_ADMIN_TOKEN>'",
                headers={"WWW-Authenticate": 'Bearer realm="switchboard-admin"'},
            )

    return check


def create_ops_app(
    hub: AgentHub,
    metrics: Metrics,
    ready: Callable[[], bool],
    demo: Demo | None,
    *,
    admin_token: str | None = None,
) -> web.Application:
    app = web.Application()
    guard = admin_guard(admin_token)

    async def healthz(_: web.Request) -> web.Response:
        return web.json_response({"status": "ok", "node": hub.node_id})

    async def readyz(_: web.Request) -> web.Response:
        ok = ready()
        return web.json_response({"ready": ok, "node": hub.node_id}, status=200 if ok else 503)

    async def metrics_page(_: web.Request) -> web.Response:
        body = generate_latest(metrics.registry)
        return web.Response(body=body, headers={"Content-Type": CONTENT_TYPE_LATEST})

    async def agent_state(request: web.Request) -> web.Response:
        guard(request)
        agent = request.match_info["agent"]
        try:
            revision, state = await hub.load(agent, fresh=True)
        except StoreUnavailable:
            raise web.HTTPServiceUnavailable(text="store unavailable") from None
        live = hub.context().live_nodes
        return web.json_response(
            {
                "agent": agent,
                "version": revision.version,
                "tabs": [
                    {k: v for k, v in t.to_dict().items() if k not in ("session", "conn_id")}
                    for t in state.tabs.values()
                ],
                "contacts": [
                    contact_view(c).model_dump(mode="json")
                    | {"customer_endpoint": redact_number(c.customer_endpoint)}
                    for c in state.contacts.values()
                ],
                "media": media_view(state, live).model_dump(mode="json"),
            }
        )

    async def agents(request: web.Request) -> web.Response:
        """The agents with tabs on this node: where an on-call engineer starts looking."""
        guard(request)
        return web.json_response({"node": hub.node_id, "agents": hub.local_agents()})

    app.router.add_get("/healthz", healthz)
    app.router.add_get("/admin/agents", agents)
    app.router.add_get("/readyz", readyz)
    app.router.add_get("/metrics", metrics_page)
    app.router.add_get("/admin/agents/{agent}", agent_state)
    if demo is not None:
        _add_demo_routes(app, demo)
    return app


def _add_demo_routes(app: web.Application, demo: Demo) -> None:
    def page(name: str) -> Callable[[web.Request], Awaitable[web.FileResponse]]:
        async def serve(_: web.Request) -> web.FileResponse:
            return web.FileResponse(STATIC / name)

        return serve

    async def config(request: web.Request) -> web.Response:
        agent = request.query.get("agent", "demo-agent")
        return web.json_response(
            {"ws_url": demo.ws_url, "token": demo.mint(agent), "agent": agent, "sandbox": True}
        )

    async def zendesk(_: web.Request) -> web.Response:
        return web.json_response(await demo.zendesk_state())

    async def place_in_connect(request: web.Request) -> web.Response:
        """The demo's simulated call exists in the embedded Connect too, so recording
        control goes the production path (the Connect API through the AWS SDK)."""
        if demo.connect is None:
            raise web.HTTPNotFound()
        body = await request.json()
        contact = SandboxContact(
            contact_id=str(body["contact_id"])[:128],
            channel="CHAT" if body.get("type") == "chat" else "VOICE",
            initiation_method="OUTBOUND" if body.get("direction") == "outbound" else "INBOUND",
            customer_endpoint=body.get("customer_endpoint") or None,
        )
        demo.connect.contacts[contact.contact_id] = contact
        return web.json_response({"contact_id": contact.contact_id}, status=201)

    async def index(_: web.Request) -> web.Response:
        raise web.HTTPFound("/demo")

    app.router.add_get("/", index)
    app.router.add_get("/demo", page("demo.html"))
    app.router.add_get("/demo/tab", page("tab.html"))
    app.router.add_get("/demo/media", page("media.html"))
    app.router.add_get("/demo/config", config)
    app.router.add_get("/demo/zendesk", zendesk)
    app.router.add_post("/demo/connect/contacts", place_in_connect)
    app.router.add_static("/static", STATIC)
    app.router.add_static("/js", JS)
