"""Daemon CPU per contact event, against a bare `websockets` echo server, read from /proc.

    python tests/bench/event_cpu.py [--agents 20 --tabs 3 --contacts 100 --history 200]
                                    [--root PATH]   # run the daemon of another checkout

What is measured is the server process, not the client: the load runs in this process, the
servers are separate processes, and each one's CPU time (user + system, `/proc/PID/stat`;
the system part is reported too) is read before and after each phase. Every server runs on
the same event loop implementation (`daemon.cli._run`: uvloop when installed), configured
alike (no compression), in the same run and under the same traffic pattern, so the ratios
travel between machines when absolute numbers do not.

Phases (each tab reads everything the server sends it, as a browser tab would):
- `echo`: the echo server, sent the daemon's messages in the same pattern as the daemon
  (`echo_phase`); CPU per message.
- `floor`: `room_server.py`, the least a coordinator can do with this traffic (parse each
  frame, send each new report once to every tab of the agent, drop repeats), driven exactly
  as the daemon is: what the daemon costs beyond it is what it decides (validation, the
  state, the commit, ownership, pacing).
- `fresh`: agents with no history; every tab of an agent reports every event (incoming,
  connected, ended) of every contact, so two reports in three are duplicates, as with three
  embedded CCPs. CPU per contact_event message received, and per distinct event.
- `history`: the same, for agents that first got `--history` finished contacts each (kept
  by the retention; filled by one tab, not measured).
- `idle`: `--idle` tabs, one per agent, doing nothing for 5 s: the daemon's CPU for
  background work (a per-agent sweep shows here; per-agent timers do not).

Prints one JSON object with the µs figures and the two ratios the design targets:
`fresh_vs_echo` (daemon CPU per contact_event message over echo CPU per message, target at
most 2) and `history_vs_fresh` (target at most 1.5); and `floor_vs_echo`.
"""

import argparse
import asyncio
import json
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from websockets.asyncio.client import ClientConnection, connect

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

from daemon.server.auth import mint_token  # noqa: E402
from tests.bench.production import ORIGIN, SECRET, daemon_env, wait_port  # noqa: E402
from tests.redis_servers import free_port  # noqa: E402

# The contacts are supervisors' monitoring legs (no workflow): the account is never called.
# Each agent's tabs here send hundreds of frames a second, far over an agent's budget (150
# a second: a real agent's tabs send a few a minute), and a paced frame costs its wait: the
# budget is lifted so the figure is the event path's, not the pacing of a flood (which
# `hostile.py` measures).
DAEMON_SETTINGS = daemon_env() | {
    "SWITCHBOARD_FINISHED_RETENTION_SECONDS": "86400",
    "SWITCHBOARD_AGENT_RATE_PER_SECOND": "1000000",
    "SWITCHBOARD_AGENT_RATE_BURST": "1000000",
}
EVENTS = ("incoming", "connected", "ended")
TICKS = os.sysconf("SC_CLK_TCK")


def cpu_times(pid: int) -> tuple[float, float]:
    """User and system CPU time of a process so far (fields 14 and 15 of /proc/PID/stat)."""
    stat = Path(f"/proc/{pid}/stat").read_text()
    fields = stat[stat.rindex(")") + 2 :].split()
    return int(fields[11]) / TICKS, int(fields[12]) / TICKS


def cpu_seconds(pid: int) -> float:
    return sum(cpu_times(pid))


class CpuWindow:
    """A process's CPU time over a window: per message, and the kernel's (system) share."""

    def __init__(self, pid: int) -> None:
        self.pid = pid
        self.start = cpu_times(pid)

    def per_message(self, messages: int) -> dict[str, float]:
        user, system = (b - a for a, b in zip(self.start, cpu_times(self.pid), strict=True))
        return {
            "messages": messages,
            "cpu_seconds": round(user + system, 3),
            "cpu_us_per_message": round((user + system) / messages * 1e6, 1),
            "system_us_per_message": round(system / messages * 1e6, 1),
        }


def spawn(
    args: list[str], root: Path, env: dict[str, str] | None = None
) -> subprocess.Popen[bytes]:
    full = {k: v for k, v in os.environ.items() if not k.startswith("SWITCHBOARD_")}
    full.update(env or {})
    full["PYTHONPATH"] = str(root)
    return subprocess.Popen([sys.executable, *args], cwd=root, env=full, stdout=subprocess.DEVNULL)


def report(event: str, contact: str) -> str:
    snap = {"contact_id": contact, "type": "voice", "monitoring": True}
    return json.dumps({"type": "contact_event", "event": event, "contact": snap})


class Tab:
    """A raw tab: says hello, then reads (and counts) everything the daemon sends."""

    def __init__(self, ws: ClientConnection) -> None:
        self.ws = ws
        self.ended: set[str] = set()
        self.changed = asyncio.Event()
        self.reader = asyncio.create_task(self.read())

    @classmethod
    async def open(cls, url: str, agent: str) -> "Tab":
        ws = await connect(
            url,
            subprotocols=["switchboard.v1.json"],  # type: ignore[list-item]
            origin=ORIGIN,  # type: ignore[arg-type]
            compression=None,
        )
        await ws.send(json.dumps({"type": "hello", "token": mint_token(SECRET, agent)}))
        return cls(ws)

    async def read(self) -> None:
        async for frame in self.ws:
            message: dict[str, Any] = json.loads(frame)
            # A tab that falls behind is sent a snapshot instead of the entries it missed.
            views = message.get("contacts", []) if message.get("type") == "snapshot" else []
            if message.get("type") == "contact":
                views = [message["contact"]]
            ended = {v["contact_id"] for v in views if v.get("state") == "ended"}
            if ended:
                self.ended |= ended
                self.changed.set()

    async def until_ended(self, contact: str) -> None:
        while contact not in self.ended:
            self.changed.clear()
            await asyncio.wait_for(self.changed.wait(), 60)

    async def close(self) -> None:
        await self.ws.close()
        self.reader.cancel()


async def drive(tabs: list[Tab], agent: str, contacts: range, reporters: int) -> int:
    """Every reporting tab reports every event of every contact; all tabs see each end."""
    sent = 0
    for n in contacts:
        contact = f"{agent}-c{n}"
        for event in EVENTS:
            frame = report(event, contact)
            for tab in tabs[:reporters]:
                await tab.ws.send(frame)
                sent += 1
        for tab in tabs:
            await tab.until_ended(contact)
    return sent


async def daemon_phase(
    url: str, pid: int, prefix: str, agents: int, tabs: int, contacts: int, history: int
) -> dict[str, float]:
    groups = [[await Tab.open(url, f"{prefix}-{a}") for _ in range(tabs)] for a in range(agents)]
    if history:
        await asyncio.gather(
            *(drive(g, f"{prefix}-{a}", range(history), 1) for a, g in enumerate(groups))
        )
    await asyncio.sleep(0.3)  # let the daemon settle (fan-out, timers) before measuring
    window, wall = CpuWindow(pid), time.perf_counter()
    sent = await asyncio.gather(
        *(
            drive(g, f"{prefix}-{a}", range(history, history + contacts), tabs)
            for a, g in enumerate(groups)
        )
    )
    wall = time.perf_counter() - wall
    measured = window.per_message(sum(sent))
    for group in groups:
        for tab in group:
            await tab.close()
    return measured | {
        "wall_seconds": round(wall, 3),
        "cpu_us_per_distinct_event": round(measured["cpu_us_per_message"] * tabs, 1),
    }


async def idle_phase(url: str, pid: int, tabs: int, seconds: float) -> dict[str, float]:
    """Daemon CPU while `tabs` tabs of as many agents sit idle: what background work costs."""
    opened = [await Tab.open(url, f"idle-{n}") for n in range(tabs)]
    await asyncio.sleep(2.0)  # greetings and their snapshots done
    cpu = cpu_seconds(pid)
    await asyncio.sleep(seconds)
    cpu = cpu_seconds(pid) - cpu
    for tab in opened:
        await tab.close()
    return {"tabs": tabs, "seconds": seconds, "cpu_percent": round(cpu / seconds * 100, 1)}


async def echo_phase(
    port: int, pid: int, agents: int, tabs: int, contacts: int
) -> dict[str, float]:
    """The echo server, driven as `drive` drives the daemon: each agent's tabs send every
    event of a contact, then read their answers (one frame back per frame sent, where the
    daemon sends each tab one per distinct event), contact after contact. The same traffic
    pattern matters: CPU per message falls as more frames arrive per turn of the loop, so a
    ping-pong baseline (one frame in flight per connection) would cost more per message
    than the same server under the daemon's load, and flatter the daemon."""
    groups = [
        [await connect(f"ws://127.0.0.1:{port}", compression=None) for _ in range(tabs)]
        for _ in range(agents)
    ]

    async def one(group: list[ClientConnection]) -> None:
        for n in range(contacts):
            for event in EVENTS:
                frame = report(event, f"c-{n}")
                for ws in group:
                    await ws.send(frame)
            for ws in group:
                for _ in EVENTS:
                    await ws.recv()

    window = CpuWindow(pid)
    await asyncio.gather(*(one(group) for group in groups))
    measured = window.per_message(agents * tabs * contacts * len(EVENTS))
    for group in groups:
        for ws in group:
            await ws.close()
    return measured


async def main(args: argparse.Namespace, root: Path) -> dict[str, Any]:
    echo_port, room_port, ws_port = free_port(), free_port(), free_port()
    echo = spawn([str(ROOT / "tests/bench/echo_server.py"), str(echo_port)], ROOT)
    room = spawn([str(ROOT / "tests/bench/room_server.py"), str(room_port)], ROOT)
    daemon = spawn(
        ["-m", "daemon.cli", "serve", "--ws-port", str(ws_port), "--http-port", str(free_port())],
        root,
        DAEMON_SETTINGS,
    )
    try:
        for port in (echo_port, room_port, ws_port):
            await wait_port(port)
        url = f"ws://127.0.0.1:{ws_port}/ws"
        shape = (args.agents, args.tabs, args.contacts)
        # At least `--echo-messages` in all: CPU time is read in clock ticks (10 ms), so a
        # short window would make the baseline, and every ratio, a matter of rounding.
        per_contact = args.agents * args.tabs * len(EVENTS)
        echo_contacts = max(args.contacts, -(-args.echo_messages // per_contact))
        echo_run = await echo_phase(echo_port, echo.pid, args.agents, args.tabs, echo_contacts)
        room_url = f"ws://127.0.0.1:{room_port}"
        await daemon_phase(room_url, room.pid, "warmup", 2, args.tabs, 5, 0)
        floor = await daemon_phase(room_url, room.pid, "floor", *shape, 0)
        await daemon_phase(url, daemon.pid, "warmup", 2, args.tabs, 5, 0)  # first-use costs
        fresh = await daemon_phase(url, daemon.pid, "fresh", *shape, 0)
        history = await daemon_phase(url, daemon.pid, "history", *shape, args.history)
        idle = await idle_phase(url, daemon.pid, args.idle, 5.0) if args.idle else None
        return {
            "root": str(root),
            "agents": args.agents,
            "tabs_per_agent": args.tabs,
            "contacts_per_agent": args.contacts,
            "history_per_agent": args.history,
            "echo": echo_run,
            "floor": floor,
            "fresh": fresh,
            "history": history,
            "idle": idle,
            "fresh_vs_echo": round(fresh["cpu_us_per_message"] / echo_run["cpu_us_per_message"], 2),
            "floor_vs_echo": round(floor["cpu_us_per_message"] / echo_run["cpu_us_per_message"], 2),
            "history_vs_fresh": round(
                history["cpu_us_per_message"] / fresh["cpu_us_per_message"], 2
            ),
        }
    finally:
        for proc in (echo, room, daemon):
            proc.terminate()
            proc.wait(10)


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--agents", type=int, default=20)
    parser.add_argument("--tabs", type=int, default=3)
    parser.add_argument("--contacts", type=int, default=100)
    parser.add_argument("--history", type=int, default=200)
    parser.add_argument("--echo-messages", type=int, default=60_000, help="echo phase, at least")
    parser.add_argument("--idle", type=int, default=1000, help="idle tabs (agents) afterwards")
    parser.add_argument("--root", default=str(ROOT), help="checkout whose daemon is measured")
    a = parser.parse_args()
    print(json.dumps(asyncio.run(main(a, Path(a.root).resolve())), indent=2))
