"""Keepalive from one timer (`daemon.server.keepalive`): the library's contract, kept."""

import asyncio
import contextlib
from collections.abc import AsyncIterator

import pytest
from websockets.asyncio.client import ClientConnection, connect
from websockets.asyncio.server import Server, ServerConnection, serve
from websockets.protocol import State

from daemon.server import keepalive as keepalive_module
from daemon.server.keepalive import Keepalive
from tests.daemons import eventually, running
from tests.integration.rawsockets import greeted

INTERVAL = 0.2


@contextlib.asynccontextmanager
async def pinged(keepalive: Keepalive) -> AsyncIterator[tuple[Server, list[ServerConnection]]]:
    """A server whose connections `keepalive` keeps alive (no library keepalive)."""
    connections: list[ServerConnection] = []

    async def handler(ws: ServerConnection) -> None:
        connections.append(ws)
        keepalive.start(ws)
        try:
            await ws.wait_closed()
        finally:
            keepalive.stop(ws)

    async with serve(handler, "127.0.0.1", 0, ping_interval=None, close_timeout=0.2) as server:
        yield server, connections


async def client(server: Server) -> ClientConnection:
    port = next(iter(server.sockets)).getsockname()[1]
    return await connect(f"ws://127.0.0.1:{port}", ping_interval=None)


async def test_a_client_that_answers_is_pinged_every_interval_and_kept() -> None:
    keepalive = Keepalive(INTERVAL, INTERVAL, resolution=0.02)
    async with pinged(keepalive) as (server, connections):
        ws = await client(server)
        await eventually(lambda: len(connections) == 1)
        assert connections[0].latency == 0.0  # not pinged before the first interval
        await eventually(lambda: connections[0].latency > 0.0, timeout=3)
        await asyncio.sleep(5 * INTERVAL)
        assert ws.state is State.OPEN and connections[0].state is State.OPEN
        assert len(keepalive) == 1
        await ws.close()
        await eventually(lambda: len(keepalive) == 0)  # forgotten at once, not at its deadline


async def test_a_client_whose_pong_is_late_is_failed_with_1011() -> None:
    keepalive = Keepalive(INTERVAL, INTERVAL, resolution=0.02)
    async with pinged(keepalive) as (server, connections):
        ws = await client(server)
        await eventually(lambda: len(connections) == 1)
        ws.transport.pause_reading()  # reads nothing more, so answers no ping
        await eventually(lambda: connections[0].state is State.CLOSED, timeout=3)
        close = connections[0].protocol.close_sent
        assert close is not None
        assert (close.code, close.reason) == (1011, "keepalive ping timeout")
        assert len(keepalive) == 0


async def test_without_a_timeout_an_unanswered_ping_is_repeated() -> None:
    keepalive = Keepalive(INTERVAL, None, resolution=0.02)
    async with pinged(keepalive) as (server, connections):
        ws = await client(server)
        await eventually(lambda: len(connections) == 1)
        ws.transport.pause_reading()
        await eventually(lambda: len(connections[0].pending_pings) >= 3, timeout=3)
        assert connections[0].state is State.OPEN


async def test_a_crowd_due_at_once_is_pinged_in_batches(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(keepalive_module, "BATCH", 2)
    keepalive = Keepalive(INTERVAL, INTERVAL, resolution=0.5)  # all land in one tick
    async with pinged(keepalive) as (server, connections):
        clients = [await client(server) for _ in range(7)]
        await eventually(lambda: len(connections) == 7)
        await eventually(lambda: all(ws.latency > 0.0 for ws in connections), timeout=3)
        assert all(ws.state is State.OPEN for ws in clients)


async def test_the_daemon_fails_a_tab_that_stops_answering_pings() -> None:
    async with running(ping_interval_seconds=INTERVAL, ping_timeout_seconds=INTERVAL) as daemon:
        quiet, answering = await greeted(daemon, "keep-a"), await greeted(daemon, "keep-b")
        quiet.transport.pause_reading()
        await asyncio.sleep(5 * INTERVAL)  # failed by now, aborted after close_timeout (2 s)
        assert answering.state is State.OPEN
        quiet.transport.resume_reading()
        await eventually(lambda: quiet.state is State.CLOSED, timeout=3)
        assert quiet.close_code == 1011 and quiet.close_reason == "keepalive ping timeout"
        await answering.close()
