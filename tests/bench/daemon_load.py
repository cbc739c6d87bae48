"""Daemon throughput and memory, as ratios against a bare `websockets` echo server measured
in the same run on the same machine (the machines are shared and noisy: absolute numbers
mean little, ratios travel).

    python tests/bench/daemon_load.py [--agents 60 --tabs 3 --contacts 5 --idle 600]

Prints one JSON object:
- `echo`: round trips/s of the echo server with as many connections as tabs, each sending as
  many messages as a tab reports (a message + its echo per event);
- `daemon`: contact events/s through the daemon (memory store), every tab reporting every
  event (incoming, connected, ended) of every contact, plus owner-side latency;
- `throughput_ratio`: daemon events/s / echo round trips/s;
- `idle_kib_per_connection`: server RSS growth per idle connection, daemon (greeted tabs)
  and echo, and their ratio;
- `redis`: the same load through a daemon on the Redis store (a redis-server started for the
  run), and `redis_vs_memory`: its events/s over the memory daemon's (target: at least 0.5).
"""

import argparse
import asyncio
import itertools
import json
import os
import subprocess
import sys
import time
from pathlib import Path

from websockets.asyncio.client import ClientConnection, connect

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

from clients.python.loadgen import run_load  # noqa: E402
from clients.python.tab import TabClient  # noqa: E402
from daemon.server.auth import mint_token  # noqa: E402
from tests.bench.production import SECRET, daemon_env, wait_port  # noqa: E402
from tests.redis_servers import RedisServer, free_port  # noqa: E402


def rss_kib(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    raise RuntimeError("no VmRSS")


def spawn(args: list[str], env: dict[str, str] | None = None) -> subprocess.Popen[bytes]:
    full = {k: v for k, v in os.environ.items() if not k.startswith("SWITCHBOARD_")}
    full.update(env or {})
    full["PYTHONPATH"] = os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")]))
    return subprocess.Popen(
        [sys.executable, *args],
        cwd=ROOT,
        env=full,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )


async def echo_round_trips(port: int, connections: int, messages: int) -> float:
    payload = json.dumps(
        {
            "type": "contact_event",
            "event": "incoming",
            "contact": {"contact_id": "c-0000", "type": "voice", "monitoring": True},
        }
    )
    sockets = [
        await connect(f"ws://127.0.0.1:{port}", compression=None) for _ in range(connections)
    ]

    async def one(ws: ClientConnection) -> None:
        for _ in range(messages):
            await ws.send(payload)
            await ws.recv()

    started = time.perf_counter()
    await asyncio.gather(*(one(ws) for ws in sockets))
    rate = connections * messages / (time.perf_counter() - started)
    for ws in sockets:
        await ws.close()
    return rate


async def idle_growth(pid: int, open_one: "object", count: int) -> float:
    before = rss_kib(pid)
    held = [await open_one() for _ in range(count)]  # type: ignore[operator]
    await asyncio.sleep(0.5)
    after = rss_kib(pid)
    for conn in held:
        await conn.close()
    return (after - before) / count


def spawn_daemon(ws_port: int, redis_url: str | None = None) -> subprocess.Popen[bytes]:
    args = ["-m", "daemon.cli", "serve", "--ws-port", str(ws_port)]
    args += ["--http-port", str(free_port())]
    if redis_url:
        args += ["--redis-url", redis_url]
    return spawn(args, daemon_env())


async def main(agents: int, tabs: int, contacts: int, idle: int) -> dict[str, object]:
    echo_port, ws_port, redis_ws_port = free_port(), free_port(), free_port()
    redis = RedisServer.start()
    echo = spawn(["tests/bench/echo_server.py", str(echo_port)])
    daemon = spawn_daemon(ws_port)
    redis_daemon = spawn_daemon(redis_ws_port, redis.url)
    try:
        for port in (echo_port, ws_port, redis_ws_port):
            await wait_port(port)
        per_tab = contacts * 3
        echo_rate = await echo_round_trips(echo_port, agents * tabs, per_tab)
        url = f"ws://127.0.0.1:{ws_port}/ws"
        load = await run_load(url, SECRET, agents=agents, tabs=tabs, contacts=contacts)
        redis_url = f"ws://127.0.0.1:{redis_ws_port}/ws"
        redis_load = await run_load(redis_url, SECRET, agents=agents, tabs=tabs, contacts=contacts)
        opened = itertools.count()

        async def idle_tab() -> TabClient:
            """Three tabs per agent, as in life (and inside the tabs-per-agent bound)."""
            token = mint_token(SECRET, f"idle-agent-{next(opened) // 3}")
            return await TabClient(url, token, reconnect=False).connect()

        async def idle_echo() -> object:
            return await connect(f"ws://127.0.0.1:{echo_port}", compression=None)

        daemon_kib = await idle_growth(daemon.pid, idle_tab, idle)
        echo_kib = await idle_growth(echo.pid, idle_echo, idle)
        return {
            "echo": {"connections": agents * tabs, "round_trips_per_second": round(echo_rate, 1)},
            "daemon": load.summary(),
            "throughput_ratio": round(load.events_per_second / echo_rate, 3),
            "idle_kib_per_connection": {
                "daemon": round(daemon_kib, 1),
                "echo": round(echo_kib, 1),
                "ratio": round(daemon_kib / echo_kib, 2) if echo_kib > 0 else None,
            },
            "redis": redis_load.summary(),
            "redis_vs_memory": round(redis_load.events_per_second / load.events_per_second, 3),
        }
    finally:
        for proc in (echo, daemon, redis_daemon):
            proc.terminate()
            proc.wait(5)
        redis.close()


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--agents", type=int, default=60)
    parser.add_argument("--tabs", type=int, default=3)
    parser.add_argument("--contacts", type=int, default=5)
    parser.add_argument("--idle", type=int, default=600)
    a = parser.parse_args()
    print(json.dumps(asyncio.run(main(a.agents, a.tabs, a.contacts, a.idle)), indent=2))
