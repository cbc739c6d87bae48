"""Keepalive pings for every tab from one timer, instead of a task per connection.

The library's keepalive is a task per connection that sleeps, pings (through an async
context manager), then waits for the pong under a timeout: three timers, two task wake-ups
and a few generator objects per ping, for each of tens of thousands of idle tabs every
`interval`. Sampled with py-spy, that was the largest part of an idle node's work, and
it is the same for every tab whatever its agent does.

`Keepalive` keeps the library's contract with one timer for all connections (a timer wheel:
connections wait in slots of whole ticks of `resolution` seconds; the timer is set for the
earliest slot):
- a connection is pinged `interval` seconds after it started, then `interval` seconds after
  each ping that was answered (the library sleeps `interval - latency` after the pong);
- a ping not answered within `timeout` seconds fails the connection with 1011 "keepalive ping
  timeout", as the library does (`timeout` None: never);
- pongs are the library's (`pending_pings`): `latency` is measured as before, and a closing
  connection's unanswered pings are cancelled by the library.
Deadlines are kept to within one tick. Ticks are short (20 ms) and one callback handles at
most `BATCH` connections before yielding to the event loop, so pings go out in small bursts,
spread as the connections opened, and a crowd that connected at once (a failover) is not
pinged in one long turn.
"""

import asyncio
import contextlib
import heapq
import math
import random
import struct

import structlog
from websockets.asyncio.server import ServerConnection
from websockets.exceptions import ConnectionClosed
from websockets.frames import CloseCode
from websockets.protocol import State

log = structlog.get_logger("switchboard.keepalive")

BATCH = 50  # connections handled per callback before yielding to the event loop

# A connection's place in the wheel: the pong it waits for (None: its next ping is due) and
# when that ping was sent (loop time).
_Entry = tuple["asyncio.Future[float] | None", float]


class Keepalive:
    """Pings every started connection on one timer (see the module docstring)."""

    def __init__(self, interval: float, timeout: float | None, resolution: float = 0.02) -> None:
        self.interval = interval
        self.timeout = timeout
        self.resolution = resolution
        self._slots: dict[int, dict[ServerConnection, _Entry]] = {}  # tick -> due then
        self._ticks: list[int] = []  # heap of the slots' ticks (and of some emptied since)
        self._where: dict[ServerConnection, int] = {}  # connection -> its tick
        self._handle: asyncio.TimerHandle | asyncio.Handle | None = None
        self._armed = 0  # the tick the timer is set for
        self._running = False

    def start(self, ws: ServerConnection) -> None:
        """Keep `ws` alive from now on, until `stop` (or it closes)."""
        loop = asyncio.get_running_loop()
        self._put(loop, ws, (None, loop.time()), loop.time() + self.interval)

    def stop(self, ws: ServerConnection) -> None:
        """Forget `ws` (its socket closed): nothing of it is kept until its next deadline."""
        tick = self._where.pop(ws, None)
        if tick is not None:
            slot = self._slots[tick]
            del slot[ws]
            if not slot:
                del self._slots[tick]  # its tick stays in the heap until it comes up

    def __len__(self) -> int:
        return len(self._where)

    def _put(
        self, loop: asyncio.AbstractEventLoop, ws: ServerConnection, entry: _Entry, at: float
    ) -> None:
        """Visit `ws` at `at` (rounded up to a tick, and never in the current one)."""
        tick = max(math.ceil(at / self.resolution), math.floor(loop.time() / self.resolution) + 1)
        slot = self._slots.get(tick)
        if slot is None:
            slot = self._slots[tick] = {}
            heapq.heappush(self._ticks, tick)
        slot[ws] = entry
        self._where[ws] = tick
        if not self._running and (self._handle is None or tick < self._armed):
            self._arm(loop, tick)

    def _arm(self, loop: asyncio.AbstractEventLoop, tick: int) -> None:
        if self._handle is not None:
            self._handle.cancel()
        self._handle = loop.call_at(tick * self.resolution, self._run, loop)
        self._armed = tick

    def _run(self, loop: asyncio.AbstractEventLoop) -> None:
        self._handle, self._running = None, True
        now = loop.time()
        budget = BATCH
        while self._ticks and budget:
            tick = self._ticks[0]
            slot = self._slots.get(tick)
            if slot is not None and tick * self.resolution > now + self.resolution / 2:
                break  # not due yet
            while slot and budget:
                ws, entry = slot.popitem()
                del self._where[ws]
                budget -= 1
                try:
                    self._visit(loop, ws, entry, now)
                except Exception:  # one connection's trouble must not stop the others' pings
                    log.exception("keepalive_failed")
                    ws.transport.abort()
            if not slot:
                self._slots.pop(tick, None)
                heapq.heappop(self._ticks)
        self._running = False
        if not budget:  # more are due: after the event loop's other callbacks
            self._handle = loop.call_soon(self._run, loop)
            self._armed = math.floor(now / self.resolution)
        elif self._ticks:
            self._arm(loop, self._ticks[0])

    def _visit(
        self, loop: asyncio.AbstractEventLoop, ws: ServerConnection, entry: _Entry, now: float
    ) -> None:
        if ws.protocol.state is not State.OPEN:
            return  # closing: the library ends its pings, and the handler its keepalive
        pong, sent = entry
        if pong is not None:  # the ping's timeout is up
            if not pong.done():
                _fail(loop, ws)
                return
            if sent + self.interval > now + self.resolution / 2:
                self._put(loop, ws, (None, sent), sent + self.interval)
                return
        pong = _ping(loop, ws)
        if self.timeout is None:
            self._put(loop, ws, (None, now), now + self.interval)
        else:
            self._put(loop, ws, (pong, now), now + self.timeout)


def _ping(loop: asyncio.AbstractEventLoop, ws: ServerConnection) -> "asyncio.Future[float]":
    """Send a ping now, as `ws.ping()` would but without a task; the future resolves with the
    latency when the pong comes (the library resolves it and keeps `ws.latency`)."""
    data = struct.pack("!I", random.getrandbits(32))
    while data in ws.pending_pings:
        data = struct.pack("!I", random.getrandbits(32))
    pong = loop.create_future()
    ws.pending_pings[data] = (pong, loop.time())
    ws.protocol.send_ping(data)
    ws.send_data()
    return pong


def _fail(loop: asyncio.AbstractEventLoop, ws: ServerConnection) -> None:
    """Fail the connection as the library's keepalive does when a pong is late: 1011, then the
    TCP connection is closed (aborted after `close_timeout`). The task is the connection's
    `keepalive_task`, which the library cancels when the connection is lost."""

    async def fail() -> None:
        with contextlib.suppress(ConnectionClosed):
            async with ws.send_context():
                ws.protocol.fail(CloseCode.INTERNAL_ERROR, "keepalive ping timeout")

    ws.keepalive_task = loop.create_task(fail())
