"""An asyncio tab client: what an embedded CCP tab or the media CCP does, in Python.

Used by the tests, the load generator and anyone scripting against a daemon. It keeps the
tab id, the private session and the last stream position the way the browser client does
(the id survives "reloads" = new TabClient with the same `tab_id`; the session does not),
and reconnects with resume when the connection drops.
"""

import asyncio
import contextlib
import random
from collections.abc import Callable
from typing import Any

from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed

from protocol.codec import JSON_SUBPROTOCOL, MSGPACK_SUBPROTOCOL, Codec
from protocol.messages import (
    ContactView,
    MediaView,
    Position,
    ServerMessage,
)

Predicate = Callable[[Any], bool]


class TabClient:
    def __init__(
        self,
        url: str,
        token: str,
        *,
        tab_id: str | None = None,
        role: str = "embedded",
        binary: bool = False,
        media_less: bool | None = None,
        resume: Position | None = None,
        origin: str | None = None,
        reconnect: bool = True,
        backoff: tuple[float, float] = (0.05, 2.0),
        fallback_urls: tuple[str, ...] = (),
    ) -> None:
        self.url = url
        # Where to try next when the current daemon is gone: a load balancer's job, in tests.
        self.urls = (url, *fallback_urls)
        self.token = token
        self.tab_id = tab_id
        self.role = role
        self.codec = Codec(MSGPACK_SUBPROTOCOL if binary else JSON_SUBPROTOCOL)
        self.media_less = media_less
        self.position = resume
        self.origin = origin
        self.reconnect = reconnect
        self.backoff = backoff
        self.session: str | None = None
        self.welcome: Any = None
        self.contacts: dict[str, ContactView] = {}
        self.media: MediaView | None = None
        # Everything received, in order. Typed loosely on purpose: scripts and tests filter it
        # by `type` and read fields directly; the codec already validated each message.
        self.received: list[Any] = []
        self.close_code: int | None = None
        self._ws: ClientConnection | None = None
        self._reader: asyncio.Task[None] | None = None
        self._arrived = asyncio.Condition()
        self._closing = False
        self._connected = asyncio.Event()

    # -- connection ----------------------------------------------------------------------

    async def connect(self) -> "TabClient":
        await self._open()
        self._reader = asyncio.create_task(self._read_forever())
        await self.wait_for(lambda m: m.type == "welcome" and m is self.welcome)
        return self

    async def _open(self) -> None:
        self._ws = await connect(
            self.url,
            subprotocols=[self.codec.subprotocol],  # type: ignore[list-item]
            origin=self.origin,  # type: ignore[arg-type]
            compression=None,
            open_timeout=5,
        )
        hello: dict[str, Any] = {"type": "hello", "token": self.token, "role": self.role}
        if self.tab_id:
            hello["tab_id"] = self.tab_id
        if self.session:
            hello["session"] = self.session
        if self.position is not None:
            hello["resume"] = self.position.model_dump()
        if self.media_less is not None:
            hello["media_less"] = self.media_less
        await self.send_raw(hello)
        self._connected.set()

    async def _read_forever(self) -> None:
        delay = self.backoff[0]
        while True:
            assert self._ws is not None
            try:
                async for frame in self._ws:
                    await self._take(self.codec.decode_server(frame))
                    delay = self.backoff[0]
            except ConnectionClosed:
                pass
            self._connected.clear()
            self.close_code = self._ws.close_code
            async with self._arrived:
                self._arrived.notify_all()
            if self._closing or not self.reconnect or self.close_code in (4001, 4009):
                return
            while not self._closing:
                await asyncio.sleep(random.uniform(0, delay))  # full jitter
                delay = min(delay * 2, self.backoff[1])
                self.url = self.urls[(self.urls.index(self.url) + 1) % len(self.urls)]
                try:
                    await self._open()
                except (OSError, ConnectionClosed, TimeoutError):
                    continue
                except Exception:  # handshake refused (e.g. 503): keep backing off
                    continue
                if self._closing:  # `close` ran while this reconnect was opening
                    await self._ws.close()
                    return
                break

    async def _take(self, message: ServerMessage) -> None:
        match message.type:
            case "welcome":
                self.welcome = message
                self.tab_id = message.tab_id
                self.session = message.session
                self.position = message.position
            case "snapshot":
                self.contacts = {c.contact_id: c for c in message.contacts}
                self.media = message.media
            case "contact":
                self.contacts[message.contact.contact_id] = message.contact
            case "media":
                self.media = message.media
            case "forget":
                for contact_id in message.contact_ids:
                    self.contacts.pop(contact_id, None)
        pos = getattr(message, "pos", None)
        if pos is not None:
            self.position = pos
        self.received.append(message)
        async with self._arrived:
            self._arrived.notify_all()

    async def close(self) -> None:
        """A clean close, as when the page unloads."""
        self._closing = True
        if self._ws is not None:
            await self._ws.close()
        if self._reader is not None:
            with contextlib.suppress(asyncio.CancelledError):
                await self._reader

    @property
    def closed(self) -> bool:
        """This side closed the tab (`close`): it hears nothing more."""
        return self._closing

    async def drop(self) -> None:
        """Lose the connection without a close handshake (network cut); it will reconnect."""
        if self._ws is not None and self._ws.transport is not None:
            self._ws.transport.abort()

    # -- waiting -------------------------------------------------------------------------

    async def wait_for(self, predicate: Predicate, timeout: float = 5.0) -> Any:
        """The first received message (past or future) matching the predicate."""

        async def scan() -> Any:
            async with self._arrived:
                while True:
                    for message in self.received:
                        if predicate(message):
                            return message
                    await self._arrived.wait()

        return await asyncio.wait_for(scan(), timeout)

    async def wait_closed(self, timeout: float = 5.0) -> int | None:
        async def closed() -> None:
            async with self._arrived:
                while self._connected.is_set() or self.close_code is None:
                    await self._arrived.wait()

        await asyncio.wait_for(closed(), timeout)
        return self.close_code

    def of_type(self, kind: str) -> list[Any]:
        return [m for m in self.received if m.type == kind]

    def owns(self, contact_id: str) -> bool:
        view = self.contacts.get(contact_id)
        return view is not None and view.owner_tab == self.tab_id

    # -- sending -------------------------------------------------------------------------

    async def send_raw(self, data: dict[str, Any] | str | bytes) -> None:
        assert self._ws is not None
        frame = self.codec.dumps(data) if isinstance(data, dict) else data
        await self._ws.send(frame)

    async def report(self, event: str, contact_id: str, **snapshot: Any) -> None:
        await self.send_raw(
            {
                "type": "contact_event",
                "event": event,
                "contact": {"contact_id": contact_id, **snapshot},
            }
        )

    async def chat(self, contact_id: str, message_id: str, participant: str, text: str) -> None:
        await self.send_raw(
            {
                "type": "chat_message",
                "contact_id": contact_id,
                "message_id": message_id,
                "participant": participant,
                "text": text,
            }
        )

    async def command(
        self, name: str, contact_id: str, *, epoch: int | None = None, **extra: Any
    ) -> None:
        if epoch is None:
            epoch = self.contacts[contact_id].epoch
        await self.send_raw(
            {"type": "command", "name": name, "contact_id": contact_id, "epoch": epoch, **extra}
        )

    async def media_status(self, **status: Any) -> None:
        await self.send_raw({"type": "media_status", **status})
