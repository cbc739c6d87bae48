"""The daemon's event path in one process, without sockets: what a contact event costs the
daemon's own code, apart from `websockets`, the event loop's I/O and the kernel.

    python tests/bench/hot_path.py [--agents 20 --contacts 100 --runs 3] [--profile FILE]

The real `TabConnection`, `AgentHub` and memory store, wired as `daemon.app` wires them
(store calls timed; limits as `event_cpu.py` sets them), each tab on an in-memory socket
(the simulator's `Pipe`) that counts what it is sent and decodes nothing. Each agent's tabs
report a contact's three events, then wait until the daemon has read them, contact after
contact, as in `event_cpu.py`. Two phases on the same loop (uvloop): one tab of three
reporting (every report a change), and all three (two reports in three are repeats). CPU
time of this process per contact event; the least of `--runs` runs of each, alternating,
since the machine is shared.

Prints one JSON object: `change_us` (one report, which changes the contact: decoding,
validation, the core, the commit, the fan-out to three tabs), `with_repeats_us` (that and
two repeats) and `repeat_us` (one repeat: half the difference). `--profile FILE` writes a
cProfile of one more run of all three tabs reporting.
"""

import argparse
import asyncio
import cProfile
import json
import logging
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import uvloop

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from daemon.config import Settings
from daemon.logs import configure
from daemon.server.auth import mint_token
from daemon.server.connection import AgentBudgets, ConnectionLimits, TabConnection
from daemon.server.frames import EntryFrames
from daemon.server.hub import AgentHub
from daemon.server.metrics import Metrics
from daemon.server.waits import counting_waits
from daemon.store.instrumented import instrumented
from daemon.store.memory import MemoryStore
from protocol.codec import JSON_SUBPROTOCOL, Codec
from tests.bench.event_cpu import EVENTS, report
from tests.sim.world import Pipe

SECRET = "hot-path-secret-" + "x" * 32
TABS = 3


class Tab(Pipe):
    """The simulator's in-memory socket, telling when the daemon has read what was sent."""

    async def recv(self) -> str:
        frame = await super().recv()
        self.inbox.task_done()
        return frame


class Node:
    """One daemon's event path: hub, store, budgets, and a connection per in-memory tab."""

    def __init__(self) -> None:
        settings = Settings(demo=True, finished_retention_seconds=86400)
        self.metrics = Metrics()
        store = instrumented(MemoryStore(), counting_waits(self.metrics.store_operation))
        self.hub = AgentHub(store, settings.rules(), "hot-path", self.metrics)
        # As `event_cpu.py` runs the daemon: per-connection rates and the agents' message
        # budget out of the way, the time budget as in production.
        self.limits = ConnectionLimits(
            hello_timeout=10.0,
            rate_per_second=100_000.0,
            rate_burst=100_000,
            flood_strikes=20,
            agent_rate_per_second=1_000_000.0,
            agent_rate_burst=1_000_000,
        )
        self.budgets = AgentBudgets(self.limits)
        self.frames = EntryFrames()  # shared by every connection, as `start_ws_server` does
        self.frames_sent = 0
        self.tasks: list[asyncio.Task[None]] = []

    def _sent(self, _: Any) -> None:
        self.frames_sent += 1

    def open_tab(self, agent: str) -> Tab:
        pipe = Tab(time.monotonic, lambda: 0.0, self._sent, lambda _: None)
        codec = Codec(JSON_SUBPROTOCOL)
        connection = TabConnection(
            pipe,  # type: ignore[arg-type]
            codec,
            self.hub,
            SECRET,
            self.limits,
            self.budgets,
            self.metrics,
            self.frames,
        )
        self.tasks.append(asyncio.get_running_loop().create_task(connection.run()))
        pipe.client_send(json.dumps({"type": "hello", "token": mint_token(SECRET, agent)}))
        return pipe


async def read_by_daemon(tabs: list[Tab]) -> None:
    """Until the daemon has taken every frame the tabs sent (it handles each in the turn it
    takes it: the memory store never suspends)."""
    for tab in tabs:
        await tab.inbox.join()


async def drive(tabs: list[Tab], frames: list[list[str]], reporters: int) -> None:
    """Each contact's frames (one per event) from `reporters` tabs, contact after contact."""
    for contact in frames:
        for frame in contact:
            for tab in tabs[:reporters]:
                tab.client_send(frame)
        await read_by_daemon(tabs)


async def phase(
    groups: list[list[Tab]], prefix: str, contacts: int, reporters: int, first: int
) -> float:
    """CPU µs per contact event (distinct event) for one phase."""
    frames = [
        [
            [report(event, f"{prefix}-{a}-c{n}") for event in EVENTS]
            for n in range(first, first + contacts)
        ]
        for a in range(len(groups))
    ]
    cpu = time.process_time()
    await asyncio.gather(*(drive(tabs, frames[a], reporters) for a, tabs in enumerate(groups)))
    cpu = time.process_time() - cpu
    return cpu / (len(groups) * contacts * len(EVENTS)) * 1e6


@contextmanager
def profiled(path: str | None) -> Iterator[None]:
    profile = cProfile.Profile() if path else None
    if profile is not None:
        profile.enable()
    try:
        yield
    finally:
        if profile is not None and path:
            profile.disable()
            profile.dump_stats(path)


async def main(args: argparse.Namespace) -> dict[str, Any]:
    node = Node()
    groups = [[node.open_tab(f"hot-{a}") for _ in range(TABS)] for a in range(args.agents)]
    await asyncio.sleep(0.2)  # welcomed
    await phase(groups, "hot", 5, TABS, 0)  # first-use costs
    change: list[float] = []
    repeats: list[float] = []
    first = 5
    for _ in range(args.runs):
        for reporters, results in ((1, change), (TABS, repeats)):
            results.append(await phase(groups, "hot", args.contacts, reporters, first))
            first += args.contacts
    with profiled(args.profile):
        if args.profile:
            await phase(groups, "hot", args.contacts, TABS, first)
    change_us, with_repeats_us = min(change), min(repeats)
    return {
        "agents": args.agents,
        "contacts_per_run": args.contacts,
        "runs": args.runs,
        "change_us": round(change_us, 1),
        "with_repeats_us": round(with_repeats_us, 1),
        "repeat_us": round((with_repeats_us - change_us) / 2, 1),
        "frames_sent": node.frames_sent,
    }


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--agents", type=int, default=20)
    parser.add_argument("--contacts", type=int, default=100)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--profile", help="write a cProfile of one more run here")
    configure("warning", "json")
    logging.disable(logging.CRITICAL)
    print(json.dumps(uvloop.run(main(parser.parse_args())), indent=2))
