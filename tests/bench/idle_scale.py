"""Idle scale: thousands of greeted tabs on one daemon process, against a bare echo server.

    python tests/bench/idle_scale.py [--tabs 10000 20000] [--hold 20] [--rate 250]
                                     [--election-seconds 10] [--resumes 1000] [--no-redis]
                                     [--root PATH]   # run the daemon of another checkout

The load runs in separate client processes (`--workers` of them, raw `websockets`, no
compression, no client-side pings), never in the measured server. The echo server and the
daemon run on the same event loop implementation (`daemon.cli._run`: uvloop when installed),
with the same keepalive (pings every 20 s), in the same run, so the ratios travel between
machines when absolute numbers do not.

For each count in `--tabs` (skipped, and said so, when the daemon's open-file limit cannot
hold that many sockets):
- `echo`: that many idle connections to the echo server: RSS growth per connection, and the
  server's CPU over `--hold` seconds;
- `daemon` (memory store): that many greeted tabs, three per agent as in life (each has had
  its welcome and snapshot): RSS growth per tab and CPU over the hold, while `/healthz` is
  polled every 20 ms for another `--hold` seconds (p50, p99 and max latency; apart from the
  CPU window, since answering the probe costs CPU too); ratios to the echo figures.

Then, on a daemon with the memory store and one with Redis (a `redis-server` started for the
run), each with no idle crowd:
- `election`: new contacts at `--rate` per second for `--election-seconds`, each reported by
  the three tabs of its agent (as three embedded CCPs do): from the first report to the last
  of the three tabs holding the contact's view with its owner; p50, p99, max;
- `resume`: a tab closes, its agent's stream grows by one entry, the tab comes back with its
  position: from opening the socket to the welcome (`resumed`) and the missed entry; p50,
  p99, max.

Prints one JSON object; the README's benchmark table quotes it.
"""

import argparse
import asyncio
import json
import os
import resource
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import aiohttp
from websockets.asyncio.client import ClientConnection, connect

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

from daemon.server.auth import mint_token  # noqa: E402
from tests.bench.event_cpu import cpu_seconds  # noqa: E402
from tests.bench.production import ORIGIN, SECRET, daemon_env, wait_port  # noqa: E402
from tests.redis_servers import RedisServer, free_port  # noqa: E402

SUBPROTOCOL = "switchboard.v1.json"
FD_MARGIN = 100  # descriptors a daemon needs besides its tabs (listeners, store, logs, ...)
OPENING = 16  # connections one worker opens at once


def rss_kib(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    raise RuntimeError("no VmRSS")


def raise_file_limit() -> int:
    _, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    return hard


def spawn(
    args: list[str],
    env: dict[str, str] | None = None,
    *,
    talks: bool = False,
    root: Path = ROOT,
) -> subprocess.Popen[bytes]:
    """A Python process in the `root` checkout; `talks`: a worker, driven over stdin and
    stdout."""
    full = {k: v for k, v in os.environ.items() if not k.startswith("SWITCHBOARD_")}
    full.update(env or {})
    full["PYTHONPATH"] = str(root)
    return subprocess.Popen(
        [sys.executable, *args],
        cwd=root,
        env=full,
        stdin=subprocess.PIPE if talks else subprocess.DEVNULL,
        stdout=subprocess.PIPE if talks else subprocess.DEVNULL,
        stderr=None if talks else subprocess.DEVNULL,  # a worker's failure is shown
    )


def percentiles(samples: list[float]) -> dict[str, float]:
    """p50, p99 and max of latencies in seconds, in milliseconds."""
    if not samples:
        return {"count": 0}
    ordered = sorted(samples)
    p99 = ordered[min(len(ordered) - 1, int(len(ordered) * 0.99))]
    return {
        "count": len(ordered),
        "p50_ms": round(statistics.median(ordered) * 1000, 2),
        "p99_ms": round(p99 * 1000, 2),
        "max_ms": round(ordered[-1] * 1000, 2),
    }


# -- the client side (worker processes) --------------------------------------------------------


class Tab:
    """A raw tab: hello, then every message it is sent, by type, with the last position."""

    def __init__(self, ws: ClientConnection, agent: str) -> None:
        self.ws = ws
        self.agent = agent
        self.welcome: dict[str, Any] = {}
        self.position: dict[str, Any] | None = None
        self.resumed_from: dict[str, Any] | None = None
        self.greeted = asyncio.Event()
        self.waiters: dict[str, asyncio.Future[None]] = {}  # contact id -> owner known
        self.caught_up: asyncio.Future[None] | None = None
        self.reader = asyncio.create_task(self.read())

    @classmethod
    async def open(
        cls, url: str, agent: str, resume: "Tab | None" = None, *, ping: bool = False
    ) -> "Tab":
        ws = await connect(
            url,
            subprotocols=[SUBPROTOCOL],  # type: ignore[list-item]
            origin=ORIGIN,  # type: ignore[arg-type]
            compression=None,
            ping_interval=20 if ping else None,
        )
        hello: dict[str, Any] = {"type": "hello", "token": mint_token(SECRET, agent)}
        if resume is not None:
            hello |= {"tab_id": resume.welcome["tab_id"], "session": resume.welcome["session"]}
            hello["resume"] = resume.position
        tab = cls(ws, agent)
        tab.resumed_from = hello.get("resume")
        await ws.send(json.dumps(hello))
        return tab

    async def read(self) -> None:
        async for frame in self.ws:
            message = json.loads(frame)
            kind = message.get("type")
            if kind == "welcome":
                self.welcome = message
                self.position = message["position"]
                if message["resumed"] and self.position == self.resumed_from:
                    self.greeted.set()  # nothing was missed
                continue
            if "pos" in message:
                self.position = message["pos"]
            if kind == "snapshot":
                self.greeted.set()
            elif kind == "contact" and message["contact"].get("owner_tab"):
                waiter = self.waiters.pop(message["contact"]["contact_id"], None)
                if waiter is not None and not waiter.done():
                    waiter.set_result(None)
            if message.get("replayed") and self.position == self.welcome.get("position"):
                self.greeted.set()

    def expect(self, contact: str) -> asyncio.Future[None]:
        waiter = self.waiters[contact] = asyncio.get_running_loop().create_future()
        return waiter

    async def report(self, event: str, contact: str) -> None:
        snap = {"contact_id": contact, "type": "voice", "monitoring": True}
        await self.ws.send(json.dumps({"type": "contact_event", "event": event, "contact": snap}))

    async def close(self) -> None:
        await self.ws.close()
        self.reader.cancel()


async def open_crowd(url: str, first: int, count: int, daemon: bool) -> list[Any]:
    """`count` idle connections, tab number `first` on (agent = tab // 3); greeted if daemon."""
    opened: list[Any] = []
    gate = asyncio.Semaphore(OPENING)

    async def one(n: int) -> None:
        async with gate:
            if daemon:
                tab = await Tab.open(url, f"idle-{n // 3}")
                await asyncio.wait_for(tab.greeted.wait(), 60)
                opened.append(tab)
            else:
                opened.append(await connect(url, compression=None, ping_interval=None))

    await asyncio.gather(*(one(n) for n in range(first, first + count)))
    return opened


async def crowd_worker(spec: dict[str, Any]) -> None:
    """Open a share of the crowd, say so, and hold it until told to close (stdin)."""
    raise_file_limit()
    crowd = await open_crowd(spec["url"], spec["first"], spec["count"], spec["daemon"])
    print("ready", flush=True)
    await asyncio.get_running_loop().run_in_executor(None, sys.stdin.readline)
    for conn in crowd:
        await conn.close()


async def election_worker(spec: dict[str, Any]) -> None:
    """New contacts at a steady rate, each reported by its agent's three tabs."""
    url, agents, rate, seconds = spec["url"], spec["agents"], spec["rate"], spec["seconds"]
    prefix = f"elect-{os.getpid()}"
    groups = [[await Tab.open(url, f"{prefix}-{a}") for _ in range(3)] for a in range(agents)]
    for group in groups:
        for tab in group:
            await asyncio.wait_for(tab.greeted.wait(), 30)
    latencies: list[float] = []

    async def contact(n: int) -> None:
        tabs = groups[n % agents]
        cid = f"{prefix}-c{n}"
        waiters = [tab.expect(cid) for tab in tabs]
        started = time.perf_counter()
        for tab in tabs:
            await tab.report("incoming", cid)
        await asyncio.wait_for(asyncio.gather(*waiters), 30)
        latencies.append(time.perf_counter() - started)
        await tabs[0].report("ended", cid)

    started, running = time.perf_counter(), []
    for n in range(int(rate * seconds)):
        delay = started + n / rate - time.perf_counter()
        if delay > 0:
            await asyncio.sleep(delay)
        running.append(asyncio.create_task(contact(n)))
    await asyncio.gather(*running)
    elapsed = time.perf_counter() - started
    for group in groups:
        for tab in group:
            await tab.close()
    result = {"rate": rate, "achieved_rate": round(len(latencies) / elapsed, 1)}
    print("result", json.dumps(result | percentiles(latencies)), flush=True)


async def resume_worker(spec: dict[str, Any]) -> None:
    """Close a tab, add one entry to its agent's stream, reopen the tab with its position."""
    url, count = spec["url"], spec["count"]
    prefix = f"resume-{os.getpid()}"
    agents = 20
    groups = [[await Tab.open(url, f"{prefix}-{a}") for _ in range(2)] for a in range(agents)]
    for group in groups:
        for tab in group:
            await asyncio.wait_for(tab.greeted.wait(), 30)
    latencies: list[float] = []
    for n in range(count):
        group = groups[n % agents]
        leaving, staying = group
        await leaving.close()
        cid = f"{prefix}-c{n}"
        seen = staying.expect(cid)
        await staying.report("incoming", cid)
        await asyncio.wait_for(seen, 30)
        started = time.perf_counter()
        back = await Tab.open(url, leaving.agent, resume=leaving)
        await asyncio.wait_for(back.greeted.wait(), 30)
        latencies.append(time.perf_counter() - started)
        if not back.welcome["resumed"]:
            raise RuntimeError("the tab was not resumed")
        await staying.report("ended", cid)
        group[0] = back
        await asyncio.sleep(0.02)
    for group in groups:
        for tab in group:
            await tab.close()
    print("result", json.dumps(percentiles(latencies)), flush=True)


# -- the measuring side --------------------------------------------------------------------


class Worker:
    def __init__(self, mode: str, spec: dict[str, Any]) -> None:
        self.proc = spawn([__file__, "--worker", mode, json.dumps(spec)], talks=True)

    async def line(self, timeout: float) -> str:
        assert self.proc.stdout is not None
        read = asyncio.get_running_loop().run_in_executor(None, self.proc.stdout.readline)
        text = (await asyncio.wait_for(read, timeout)).decode().strip()
        if not text:
            raise RuntimeError(f"worker exited ({self.proc.wait()})")
        return text

    async def result(self, timeout: float) -> dict[str, Any]:
        text = await self.line(timeout)
        assert text.startswith("result "), text
        self.proc.wait(10)
        result: dict[str, Any] = json.loads(text.removeprefix("result "))
        return result

    def release(self) -> None:
        assert self.proc.stdin is not None
        self.proc.stdin.write(b"close\n")
        self.proc.stdin.flush()


async def probe_health(url: str, seconds: float) -> list[float]:
    """Latency of GET /healthz every 20 ms for `seconds`."""
    latencies: list[float] = []
    async with aiohttp.ClientSession() as session:
        end = time.perf_counter() + seconds
        while time.perf_counter() < end:
            started = time.perf_counter()
            async with session.get(url) as response:
                await response.read()
            latencies.append(time.perf_counter() - started)
            await asyncio.sleep(0.02)
    return latencies


async def hold_crowd(
    pid: int, url: str, count: int, workers: int, daemon: bool, hold: float, health: str | None
) -> dict[str, Any]:
    """Open `count` connections from `workers` processes; RSS growth, CPU and health."""
    before = rss_kib(pid)
    share = -(-count // workers)
    crowd = [
        Worker("crowd", {"url": url, "first": w * share, "count": share, "daemon": daemon})
        for w in range(workers)
    ]
    started = time.perf_counter()
    for worker in crowd:
        assert await worker.line(600) == "ready"
    opened = time.perf_counter() - started
    await asyncio.sleep(3.0)  # let the last greetings and their allocations settle
    rss = rss_kib(pid)
    cpu = cpu_seconds(pid)
    await asyncio.sleep(hold)  # nothing but the crowd: the probe below costs CPU too
    cpu = cpu_seconds(pid) - cpu
    latencies = await probe_health(health, hold) if health else []
    for worker in crowd:
        worker.release()
    for worker in crowd:
        worker.proc.wait(120)
    result: dict[str, Any] = {
        "connections": share * workers,
        "open_seconds": round(opened, 1),
        "rss_mib": round(rss / 1024, 1),
        "kib_per_connection": round((rss - before) / (share * workers), 2),
        "idle_cpu_percent": round(cpu / hold * 100, 2),
    }
    if latencies:
        result["healthz"] = percentiles(latencies)
    return result


def start_daemon(
    root: Path, ws_port: int, http_port: int, redis_url: str | None = None
) -> subprocess.Popen[bytes]:
    args = ["-m", "daemon.cli", "serve", "--ws-port", str(ws_port), "--http-port", str(http_port)]
    if redis_url:
        args += ["--redis-url", redis_url]
    return spawn(args, daemon_env(), root=root)


async def crowd_phase(root: Path, count: int, workers: int, hold: float) -> dict[str, Any]:
    echo_port, ws_port, http_port = free_port(), free_port(), free_port()
    echo = spawn([str(ROOT / "tests/bench/echo_server.py"), str(echo_port)])
    daemon = start_daemon(root, ws_port, http_port)
    try:
        await wait_port(echo_port)
        await wait_port(ws_port)
        echo_url, url = f"ws://127.0.0.1:{echo_port}", f"ws://127.0.0.1:{ws_port}/ws"
        health = f"http://127.0.0.1:{http_port}/healthz"
        warm = await open_crowd(url, 10**7, 30, daemon=True)  # first-use costs, not per tab
        for tab in warm:
            await tab.close()
        echo_run = await hold_crowd(echo.pid, echo_url, count, workers, False, hold, None)
        daemon_run = await hold_crowd(daemon.pid, url, count, workers, True, hold, health)
        return {
            "echo": echo_run,
            "daemon": daemon_run,
            "rss_vs_echo": round(
                daemon_run["kib_per_connection"] / echo_run["kib_per_connection"], 2
            ),
            "idle_cpu_vs_echo": round(
                daemon_run["idle_cpu_percent"] / max(echo_run["idle_cpu_percent"], 0.01), 2
            ),
        }
    finally:
        for proc in (echo, daemon):
            proc.terminate()
            proc.wait(30)


async def latency_phase(
    root: Path, redis_url: str | None, rate: float, seconds: float, resumes: int
) -> dict[str, Any]:
    ws_port = free_port()
    daemon = start_daemon(root, ws_port, free_port(), redis_url)
    try:
        await wait_port(ws_port)
        url = f"ws://127.0.0.1:{ws_port}/ws"
        agents = 100
        election = Worker(
            "election", {"url": url, "agents": agents, "rate": rate, "seconds": seconds}
        )
        elected = await election.result(seconds + 120)
        resumed = await Worker("resume", {"url": url, "count": resumes}).result(resumes + 120)
        return {"election": elected, "resume": resumed}
    finally:
        daemon.terminate()
        daemon.wait(30)


async def main(args: argparse.Namespace, root: Path) -> dict[str, Any]:
    limit = raise_file_limit()
    result: dict[str, Any] = {"root": str(root), "file_limit": limit, "crowds": {}}
    for count in args.tabs:
        if count + FD_MARGIN > limit:
            result["crowds"][str(count)] = f"skipped: the open-file limit is {limit}"
            continue
        result["crowds"][str(count)] = await crowd_phase(root, count, args.workers, args.hold)
    result["memory"] = await latency_phase(
        root, None, args.rate, args.election_seconds, args.resumes
    )
    if not args.no_redis:
        redis = RedisServer.start()
        try:
            result["redis"] = await latency_phase(
                root, redis.url, args.rate, args.election_seconds, args.resumes
            )
        finally:
            redis.close()
    return result


if __name__ == "__main__":
    if len(sys.argv) > 1 and sys.argv[1] == "--worker":
        mode, spec = sys.argv[2], json.loads(sys.argv[3])
        from daemon.cli import _run

        worker = {"crowd": crowd_worker, "election": election_worker, "resume": resume_worker}
        _run(worker[mode](spec))
        sys.exit(0)
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tabs", type=int, nargs="+", default=[10000, 20000])
    parser.add_argument("--workers", type=int, default=4, help="client processes for a crowd")
    parser.add_argument("--hold", type=float, default=20.0, help="seconds the crowd is held")
    parser.add_argument("--rate", type=float, default=250.0, help="new contacts per second")
    parser.add_argument("--election-seconds", type=float, default=10.0)
    # A p99 of 300 was the third-worst sample, and moved by a third from run to run.
    parser.add_argument("--resumes", type=int, default=1000)
    parser.add_argument("--no-redis", action="store_true")
    parser.add_argument("--root", default=str(ROOT), help="checkout whose daemon is measured")
    parsed = parser.parse_args()
    print(json.dumps(asyncio.run(main(parsed, Path(parsed.root).resolve())), indent=2))
