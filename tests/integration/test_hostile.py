"""Hostile traffic is paced per agent: one agent's tabs cannot make the node slow for others,
leave no work behind when they go, and do not keep a stopping daemon from stopping."""

import asyncio
import contextlib
import functools
import itertools
import json
import signal
import socket
import subprocess
import time
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import pytest
from websockets.asyncio.client import ClientConnection, connect
from websockets.asyncio.server import ServerConnection, serve
from websockets.exceptions import ConnectionClosed
from websockets.frames import Frame, Opcode

from daemon.app import Daemon
from daemon.server.connection import FRAMES_PER_TURN
from daemon.server.socket import TabSocket
from daemon.store.base import Committed
from daemon.store.memory import MemoryStore
from protocol.messages import Notify
from tests.daemons import eventually, open_tab, running, running_on, token
from tests.integration.rawsockets import greeted
from tests.processes import DaemonProcess

#: Generous per-connection limits, so what is measured is the agent's budget.
WIDE_OPEN: dict[str, Any] = {"rate_per_second": 10_000.0, "rate_burst": 10_000}
ids = itertools.count()


def report(contact_id: str | None = None) -> str:
    contact = {"contact_id": contact_id or f"x-{next(ids)}", "monitoring": True}
    return json.dumps({"type": "contact_event", "event": "incoming", "contact": contact})


def sample(daemon: Daemon, name: str, **labels: str) -> float:
    return daemon.metrics.registry.get_sample_value(name, labels) or 0.0


def accepted(daemon: Daemon) -> float:
    return sample(daemon, "switchboard_messages_in_total", type="contact_event")


async def drain(ws: ClientConnection) -> None:
    """Read and drop what the daemon sends, so only the daemon's pacing limits the sender."""
    with contextlib.suppress(ConnectionClosed):
        async for _ in ws:
            pass


async def flood(ws: ClientConnection, until: float, frame: Callable[[], str] = report) -> int:
    """Send `frame()` as fast as the socket takes frames until `until`; how many were sent."""
    sent = 0
    with contextlib.suppress(ConnectionClosed, TimeoutError):
        while time.monotonic() < until:
            await asyncio.wait_for(ws.send(frame()), max(0.01, until - time.monotonic()))
            sent += 1
    return sent


@pytest.fixture
async def paced() -> AsyncIterator[Daemon]:
    async with running(
        **WIDE_OPEN,
        flood_strikes=1_000_000,
        agent_rate_per_second=40.0,
        agent_rate_burst=20,
        agent_max_wait_seconds=0.03,  # shorter than three connections' turns: some refused
        max_open_contacts=100_000,  # the traffic side is under test here, not the bounds
    ) as daemon:
        yield daemon


async def test_an_agents_three_connections_together_stay_within_its_budget(
    paced: Daemon,
) -> None:
    tabs = [await greeted(paced, "mallory") for _ in range(3)]
    readers = [asyncio.create_task(drain(ws)) for ws in tabs]
    started = time.monotonic()
    sent = await asyncio.gather(*(flood(ws, started + 2.0) for ws in tabs))
    taken, elapsed = accepted(paced), time.monotonic() - started
    # Each connection alone may send 10,000 a second; together they got the agent's 40.
    assert sum(sent) > 3 * (20 + 40 * elapsed), "the flood must outrun the budget"
    assert taken <= 20 + 40 * elapsed
    assert taken >= 20  # the budget is there to be used
    assert sample(paced, "switchboard_agent_throttled_total", outcome="delayed") > 0
    assert sample(paced, "switchboard_agent_throttled_total", outcome="refused") > 0
    assert sample(paced, "switchboard_errors_total", code="agent_rate_limited") > 0
    # Another agent has a budget of its own: its burst goes straight through.
    alice = await open_tab(paced, "alice")
    before = accepted(paced)
    for n in range(10):
        await alice.report("incoming", f"a-{n}", monitoring=True)
    await eventually(lambda: all(f"a-{n}" in alice.contacts for n in range(10)))
    assert accepted(paced) - before >= 10
    for ws in tabs:
        ws.transport.abort()  # a close frame would queue behind the frames still unread
    await asyncio.gather(*readers)
    await alice.close()


async def test_frames_buffered_by_an_attacker_who_leaves_are_dropped(paced: Daemon) -> None:
    ws = await greeted(paced, "mallory")
    started = time.monotonic()
    sent = await flood(ws, started + 1.0)  # far more than the budget: most wait in buffers
    ws.transport.abort()  # the attacker is gone, without a goodbye
    await eventually(lambda: sample(paced, "switchboard_connections") == 0, timeout=10)
    gone = accepted(paced)
    await asyncio.sleep(0.5)
    assert accepted(paced) == gone, "nothing of the attacker's is handled once it left"
    assert gone <= 20 + 40 * (time.monotonic() - started) < sent


async def test_a_hostile_agent_at_its_limits_does_not_delay_another_agents_elections() -> None:
    async with running(flood_strikes=1_000_000) as daemon:  # default limits and budgets
        # Five tabs at their own rate limit are over the agent's: the agent is at its limits.
        hostile = [await greeted(daemon, "mallory") for _ in range(5)]
        readers = [asyncio.create_task(drain(ws)) for ws in hostile]
        until = time.monotonic() + 30.0  # ended below, once the elections are done
        flooding = asyncio.gather(*(flood(ws, until) for ws in hostile))
        alice = await open_tab(daemon, "alice")
        for n in range(15):
            await alice.report("incoming", f"c-{n}", type="voice", direction="inbound")
            await eventually(functools.partial(alice.owns, f"c-{n}"), timeout=5)
            await asyncio.sleep(0.1)
        assert not flooding.done(), "the elections ran during the flood"
        first_views = dict.fromkeys(m.contact.contact_id for m in alice.of_type("contact"))
        assert list(first_views) == [f"c-{n}" for n in range(15)]  # elected in order
        assert sample(daemon, "switchboard_agent_throttled_total", outcome="delayed") > 0
        for ws in hostile:
            ws.transport.abort()  # a close frame would queue behind the frames still unread
        await asyncio.gather(flooding, *readers)
        await alice.close()


class DistantStore(MemoryStore):
    """The memory store behind a 50 ms round trip on every commit, as a distant Redis."""

    async def commit_agent(self, *args: Any, **kwargs: Any) -> Committed | None:
        await asyncio.sleep(0.05)
        return await super().commit_agent(*args, **kwargs)


async def test_an_agent_is_charged_for_the_nodes_time_not_for_waiting_on_the_store() -> None:
    """Twenty new contacts, one at a time, each commit 50 ms away: a second of waiting, ten
    times the agent's time budget, during which the node could serve everyone else. None of
    the agent's frames is held back; before, each was charged its wall-clock time and the
    agent was paced from its third frame on."""
    async with running_on(
        DistantStore(), agent_busy_share=0.25, agent_busy_burst_seconds=0.1
    ) as daemon:
        alice = await open_tab(daemon, "alice")
        for n in range(20):
            await alice.report("incoming", f"c-{n}", monitoring=True)
            await eventually(functools.partial(alice.owns, f"c-{n}"), timeout=5)
        assert sample(daemon, "switchboard_agent_throttled_total", outcome="delayed") == 0
        await alice.close()


async def test_an_agent_whose_frames_keep_the_node_busy_is_still_paced() -> None:
    """The counterpart: time the node spends on an agent's frames is charged. One tab
    sending new contacts of 200 attributes each, as fast as it can, within every rate (the
    message budget is far away): its time budget, a quarter of the node with 50 ms of burst,
    is what holds it back."""
    attributes = {f"attribute_{n:03}": "v" * 30 for n in range(200)}

    def heavy() -> str:
        contact = {"contact_id": f"h-{next(ids)}", "monitoring": True, "attributes": attributes}
        return json.dumps({"type": "contact_event", "event": "incoming", "contact": contact})

    async with running(
        **WIDE_OPEN,
        agent_rate_per_second=100_000.0,
        agent_rate_burst=100_000,
        agent_busy_share=0.25,
        agent_busy_burst_seconds=0.05,
        max_open_contacts=100_000,
    ) as daemon:
        ws = await greeted(daemon, "mallory")
        reader = asyncio.create_task(drain(ws))
        await flood(ws, time.monotonic() + 2.0, heavy)
        assert sample(daemon, "switchboard_agent_throttled_total", outcome="delayed") > 0
        ws.transport.abort()
        await reader


async def _stuck_reader(url: str, hello: str | None = None) -> ClientConnection:
    """A tab that never reads: a tiny receive buffer, and a client that stops reading."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 2048)
    sock.setblocking(False)
    host, port = url.removeprefix("ws://").split("/")[0].split(":")
    await asyncio.get_running_loop().sock_connect(sock, (host, int(port)))
    ws = await connect(url, sock=sock, subprotocols=["switchboard.v1.json"])  # type: ignore[list-item]
    await ws.send(hello or json.dumps({"type": "hello", "token": token("mallory")}))
    return ws  # its client reads max_queue frames into memory, then stops reading


async def test_sigterm_under_a_flood_stops_the_daemon_within_seconds(tmp_path: Path) -> None:
    daemon = DaemonProcess.start(tmp_path, **WIDE_OPEN, flood_strikes=1_000_000)
    try:
        stuck = [await _stuck_reader(daemon.ws_url) for _ in range(2)]
        flooders = []
        for _ in range(3):
            ws = await connect(daemon.ws_url, subprotocols=["switchboard.v1.json"])  # type: ignore[list-item]
            await ws.send(json.dumps({"type": "hello", "token": token("mallory")}))
            flooders.append(ws)
        flooding = asyncio.gather(*(flood(ws, time.monotonic() + 30) for ws in flooders))
        await asyncio.sleep(3.0)  # buffers full both ways
        asked = time.monotonic()
        daemon.proc.send_signal(signal.SIGTERM)
        with contextlib.suppress(subprocess.TimeoutExpired):
            await asyncio.to_thread(daemon.proc.wait, 30)
        took = time.monotonic() - asked
        assert daemon.proc.poll() == 0, daemon.log_tail()
        assert took < 6, f"took {took:.1f} s to stop"
        for ws in flooders + stuck:
            ws.transport.abort()
        await flooding
        assert "Traceback" not in daemon.log_path.read_text()
    finally:
        daemon.kill()


@pytest.mark.parametrize("factory", [ServerConnection, TabSocket])
async def test_closing_a_connection_whose_client_does_not_read_is_bounded(
    factory: type[ServerConnection],
) -> None:
    """The library's close waits for the write buffer to drain first, with no time limit."""

    async def talk(ws: ServerConnection) -> None:
        sock = ws.transport.get_extra_info("socket")
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 4096)  # full in a moment
        with contextlib.suppress(ConnectionClosed):
            await ws.recv()
            while True:
                await ws.send("x" * 65_536)  # blocks once every buffer on the way is full

    server = await serve(
        talk, "127.0.0.1", 0, create_connection=factory, close_timeout=0.5, ping_interval=None
    )
    port = next(iter(server.sockets)).getsockname()[1]
    client = await _stuck_reader(f"ws://127.0.0.1:{port}", hello="go")
    connection = next(iter(server.connections))
    await eventually(lambda: connection.transport.get_write_buffer_size() > 0)
    started = time.monotonic()
    server.close()
    if factory is TabSocket:
        await asyncio.wait_for(server.wait_closed(), 3)
        assert time.monotonic() - started < 3
    else:  # what TabSocket is for: the library's connection is still stuck
        with pytest.raises(TimeoutError):
            await asyncio.wait_for(asyncio.shield(server.wait_closed()), 3)
        connection.transport.abort()
        await server.wait_closed()
    client.transport.abort()


async def test_a_tab_that_does_not_read_holds_up_no_notice_to_the_others(paced: Daemon) -> None:
    """The daemon tells every tab in turn (store lost, store back): one stuck tab must not
    hold up the rest, nor the caller (the store check that also renews the node's lease)."""
    stuck = await _stuck_reader(f"ws://127.0.0.1:{paced.ws_port}/ws")
    await eventually(lambda: len(paced.hub.sinks()) == 1)
    assert paced._ws is not None
    (stuck_connection,) = paced._ws.connections
    sock = stuck_connection.transport.get_extra_info("socket")
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 4096)  # its buffers fill in a moment
    flooder = await greeted(paced, "mallory")  # every contact it reports goes to both tabs
    readers = [asyncio.create_task(drain(flooder))]
    flooding = asyncio.create_task(flood(flooder, time.monotonic() + 30))
    # Past the high-water mark (32 KiB): a send to it now waits until the client reads.
    await eventually(
        lambda: stuck_connection.transport.get_write_buffer_size() > 32_768, timeout=10
    )
    bystander = await open_tab(paced, "alice")
    notice = Notify(level="warning", code="store_unavailable", text="test")
    started = time.monotonic()
    for sink in paced.hub.sinks():
        await sink.tell(notice)
    assert time.monotonic() - started < 0.5
    await bystander.wait_for(lambda m: m.type == "notify" and m.code == "store_unavailable")
    flooder.transport.abort()
    stuck.transport.abort()
    await asyncio.gather(flooding, *readers)
    await bystander.close()


async def test_a_paced_frames_wait_lasts_its_time_and_ends_when_the_tab_closes() -> None:
    waits: list[float] = []

    async def talk(ws: ServerConnection) -> None:
        assert isinstance(ws, TabSocket)
        await ws.recv()
        for seconds in (0.3, 60.0):  # nobody closes during the first; the client ends the second
            started = time.monotonic()
            await ws.closed_within(seconds)
            waits.append(time.monotonic() - started)

    server = await serve(talk, "127.0.0.1", 0, create_connection=TabSocket, ping_interval=None)
    port = next(iter(server.sockets)).getsockname()[1]
    async with connect(f"ws://127.0.0.1:{port}") as client:
        await client.send("go")
        await eventually(lambda: len(waits) == 1, timeout=5)
    await eventually(lambda: len(waits) == 2, timeout=5)
    server.close()
    await server.wait_closed()
    assert 0.3 <= waits[0] < 2 and waits[1] < 2


async def test_a_connection_with_frames_buffered_yields_between_them() -> None:
    """Frames a tab sent in one burst are handled a few per turn of the event loop: whatever
    else runs on the node (here a probe that only yields) runs between two slices."""
    async with running(
        **WIDE_OPEN,
        flood_strikes=1_000_000,
        agent_rate_per_second=1e6,
        agent_rate_burst=1_000_000,
        max_open_contacts=100_000,
    ) as daemon:
        ws = await greeted(daemon, "mallory")
        reader = asyncio.create_task(drain(ws))
        base = accepted(daemon)
        burst = 300
        ws.transport.write(b"".join(_masked_text(report()) for _ in range(burst)))
        handled_per_turn = []
        last = base
        while last < base + burst:
            await asyncio.sleep(0)
            now = accepted(daemon)
            handled_per_turn.append(now - last)
            last = now
        assert max(handled_per_turn) <= FRAMES_PER_TURN, handled_per_turn
        ws.transport.abort()
        await reader


def _masked_text(text: str) -> bytes:
    """One client text frame, masked as clients must: written straight to the transport so
    the whole burst arrives before the daemon reads any of it."""
    return Frame(Opcode.TEXT, text.encode()).serialize(mask=True, extensions=[])
