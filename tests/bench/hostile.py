"""A hostile agent at its limits must not make the node slow for another agent.

    python tests/bench/hostile.py [--seconds 60 --baseline-seconds 10 --hostile-tabs 5]

Starts a daemon (`switchboard serve`: memory store, embedded sandbox, default limits) as a
process of its own. Another process plays the hostile agent: `--hostile-tabs` tabs, each
reporting a new contact with `--attributes` attributes at its connection's rate limit
(`--rate`, 50/s: five tabs are over the agent's budget of 150/s together), plus
`--stuck-tabs` tabs that never read what the daemon sends them. The contacts are `monitoring`
legs, so no Zendesk work runs: what is measured is the wire, the core and the store.

Meanwhile this process is another agent's tab: every 200 ms it reports a new contact and
times the election (report sent -> `contact` naming this tab the owner), and it times
`GET /healthz` every 100 ms. A quiet phase of `--baseline-seconds` first gives the same
figures without the hostile agent, on the same machine in the same run.

Prints one JSON object: per phase the election p50/p99/max and /healthz p99/max in ms and
the daemon's CPU use; for the hostile phase the hostile agent's frames sent and handled and
the daemon's throttling counters. Targets: election p99 < 250 ms, /healthz max < 500 ms.
"""

import argparse
import asyncio
import contextlib
import json
import multiprocessing
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import aiohttp
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

from daemon.server.auth import mint_token  # noqa: E402
from tests.bench.production import SECRET, daemon_env  # noqa: E402
from tests.redis_servers import free_port  # noqa: E402

SUBPROTOCOL = "switchboard.v1.json"
STALLED = 10.0  # seconds without an answer: the measured agent is locked out


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))] if ordered else float("nan")


def cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


async def greet(url: str, agent: str) -> tuple[ClientConnection, str]:
    ws = await connect(url, subprotocols=[SUBPROTOCOL], compression=None, open_timeout=STALLED)  # type: ignore[list-item]
    await ws.send(json.dumps({"type": "hello", "token": mint_token(SECRET, agent)}))
    welcome = json.loads(await ws.recv())
    assert welcome["type"] == "welcome", welcome
    return ws, welcome["tab_id"]


# -- the hostile agent (a process of its own) --------------------------------------------


async def _hostile(url: str, options: dict[str, Any], done: float) -> dict[str, int]:
    attributes = {f"attribute_{n:03}": "v" * 30 for n in range(options["attributes"])}
    counts = {"sent": 0, "errors": 0, "closed": 0}

    async def drain(ws: ClientConnection) -> None:
        with contextlib.suppress(ConnectionClosed):
            async for frame in ws:
                if '"type":"error"' in str(frame):
                    counts["errors"] += 1

    async def tab(n: int) -> None:
        ws, _ = await greet(url, "mallory")
        reader = asyncio.create_task(drain(ws))
        interval, due, sent = 1.0 / options["rate"], time.monotonic(), 0
        try:
            while time.monotonic() < done:
                contact = {"contact_id": f"h{n}-{sent}", "monitoring": True}
                contact["attributes"] = attributes
                frame = {"type": "contact_event", "event": "incoming", "contact": contact}
                await asyncio.wait_for(
                    ws.send(json.dumps(frame)), max(0.01, done - time.monotonic())
                )
                sent += 1
                counts["sent"] += 1
                due += interval
                await asyncio.sleep(max(0.0, due - time.monotonic()))
        except (ConnectionClosed, TimeoutError):
            counts["closed"] += 1
        ws.transport.abort()
        reader.cancel()

    async def stuck() -> None:
        ws = await connect(url, subprotocols=[SUBPROTOCOL], max_queue=1)  # type: ignore[list-item]
        await ws.send(json.dumps({"type": "hello", "token": mint_token(SECRET, "mallory")}))
        await asyncio.sleep(max(0.0, done - time.monotonic()))  # never reads
        ws.transport.abort()

    await asyncio.gather(
        *(tab(n) for n in range(options["hostile_tabs"])),
        *(stuck() for _ in range(options["stuck_tabs"])),
    )
    return counts


def hostile_process(url: str, options: dict[str, Any], done: float, out: Any) -> None:
    out.put(asyncio.run(_hostile(url, options, done)))


# -- the measured agent and the health check ------------------------------------------------


async def measure(url: str, http: str, seconds: float, phase: str) -> dict[str, Any]:
    ws, tab_id = await greet(url, f"alice-{phase}")
    elections: list[float] = []
    health: list[float] = []
    done = time.monotonic() + seconds

    async def elect() -> None:
        n = 0
        while time.monotonic() < done:
            contact_id = f"{phase}-{n}"
            contact = {"contact_id": contact_id, "monitoring": True}
            frame = {"type": "contact_event", "event": "incoming", "contact": contact}
            asked = time.perf_counter()
            await ws.send(json.dumps(frame))
            while True:
                message = json.loads(await asyncio.wait_for(ws.recv(), STALLED))
                view = message.get("contact") or {}
                if view.get("contact_id") == contact_id and view.get("owner_tab") == tab_id:
                    break
            elections.append(time.perf_counter() - asked)
            # The call ends, as calls do: an agent's open contacts are bounded.
            ended = {"type": "contact_event", "event": "ended", "contact": contact}
            await ws.send(json.dumps(ended))
            n += 1
            await asyncio.sleep(0.2)

    async def check_health() -> None:
        timeout = aiohttp.ClientTimeout(total=STALLED)
        async with aiohttp.ClientSession(timeout=timeout) as session:
            while time.monotonic() < done:
                asked = time.perf_counter()
                async with session.get(f"{http}/healthz") as response:
                    assert response.status == 200
                health.append(time.perf_counter() - asked)
                await asyncio.sleep(0.1)

    await asyncio.gather(elect(), check_health())
    await ws.close()
    ms = 1000.0
    return {
        "elections": len(elections),
        "election_p50_ms": round(percentile(elections, 0.5) * ms, 1),
        "election_p99_ms": round(percentile(elections, 0.99) * ms, 1),
        "election_max_ms": round(max(elections) * ms, 1),
        "healthz_p99_ms": round(percentile(health, 0.99) * ms, 1),
        "healthz_max_ms": round(max(health) * ms, 1),
    }


async def scrape(http: str) -> dict[str, float]:
    wanted = (
        'switchboard_messages_in_total{type="contact_event"}',
        'switchboard_agent_throttled_total{outcome="delayed"}',
        'switchboard_agent_throttled_total{outcome="refused"}',
        'switchboard_errors_total{code="agent_rate_limited"}',
        'switchboard_errors_total{code="rate_limited"}',
    )
    timeout = aiohttp.ClientTimeout(total=STALLED)
    async with (
        aiohttp.ClientSession(timeout=timeout) as session,
        session.get(f"{http}/metrics") as response,
    ):
        text = await response.text()
    found = {}
    for line in text.splitlines():
        name, _, value = line.rpartition(" ")
        if name in wanted:
            found[name] = float(value)
    return found


def start_sandbox(port: int) -> subprocess.Popen[bytes]:
    """The Zendesk account the hostile contacts' workflows talk to."""
    return subprocess.Popen(
        [sys.executable, "-m", "daemon.cli", "sandbox", "--port", str(port)],
        cwd=ROOT,
        env=os.environ | {"PYTHONPATH": str(ROOT)},
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )


def start_daemon(ws_port: int, http_port: int, zendesk_url: str) -> subprocess.Popen[bytes]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("SWITCHBOARD_")}
    # The node's own limits stay as shipped: they are what is under test.
    limits = ("SWITCHBOARD_RATE_PER_SECOND", "SWITCHBOARD_RATE_BURST")
    env |= {k: v for k, v in daemon_env(zendesk_url).items() if k not in limits}
    env["PYTHONPATH"] = str(ROOT)
    command = ["-m", "daemon.cli", "serve", "--ws-port", str(ws_port)]
    return subprocess.Popen(
        [sys.executable, *command, "--http-port", str(http_port)],
        cwd=ROOT,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )


async def main(
    args: argparse.Namespace, daemon: subprocess.Popen[bytes], ws_port: int, http_port: int
) -> dict[str, Any]:
    url, http = f"ws://127.0.0.1:{ws_port}/ws", f"http://127.0.0.1:{http_port}"
    for _ in range(200):
        with contextlib.suppress(OSError):
            _, writer = await asyncio.open_connection("127.0.0.1", ws_port)
            writer.close()
            break
        await asyncio.sleep(0.05)
    result: dict[str, Any] = {"options": vars(args)}
    cpu = cpu_seconds(daemon.pid)
    started = time.monotonic()
    result["quiet"] = await measure(url, http, args.baseline_seconds, "quiet")
    result["quiet"]["daemon_cpu_percent"] = round(
        100 * (cpu_seconds(daemon.pid) - cpu) / (time.monotonic() - started)
    )
    options = {k: getattr(args, k) for k in ("hostile_tabs", "stuck_tabs", "rate", "attributes")}
    context = multiprocessing.get_context("spawn")
    out = context.Queue()
    done = time.monotonic() + args.seconds
    hostile = context.Process(target=hostile_process, args=(url, options, done, out))
    hostile.start()
    await asyncio.sleep(1.0)  # the hostile agent is at it before we measure
    cpu, started = cpu_seconds(daemon.pid), time.monotonic()
    try:
        result["hostile"] = await measure(url, http, done - time.monotonic(), "hostile")
    except TimeoutError:
        result["hostile"] = {"error": f"no answer in {STALLED} s: the agent was locked out"}
    result["hostile"]["daemon_cpu_percent"] = round(
        100 * (cpu_seconds(daemon.pid) - cpu) / (time.monotonic() - started)
    )
    result["hostile"]["hostile_agent"] = await asyncio.to_thread(out.get, True, 2 * STALLED)
    hostile.join(STALLED)
    try:
        result["hostile"]["daemon_counters"] = await scrape(http)
    except TimeoutError:
        result["hostile"]["daemon_counters"] = f"/metrics did not answer in {STALLED} s"
    stop_asked = time.monotonic()
    daemon.send_signal(signal.SIGTERM)
    try:
        await asyncio.to_thread(daemon.wait, STALLED)
        result["sigterm_to_exit_seconds"] = round(time.monotonic() - stop_asked, 2)
    except subprocess.TimeoutExpired:
        result["sigterm_to_exit_seconds"] = f"still running after {STALLED} s"
    under_load = result["hostile"]
    result["targets_met"] = (
        "error" not in under_load
        and under_load["election_p99_ms"] < 250
        and under_load["healthz_max_ms"] < 500
    )
    return result


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=60.0, help="hostile phase")
    parser.add_argument("--baseline-seconds", type=float, default=10.0, help="quiet phase")
    parser.add_argument("--hostile-tabs", type=int, default=5)
    parser.add_argument("--stuck-tabs", type=int, default=1)
    parser.add_argument("--rate", type=float, default=50.0, help="frames/s per hostile tab")
    parser.add_argument("--attributes", type=int, default=200, help="per hostile contact")
    ws_port, http_port, zendesk_port = free_port(), free_port(), free_port()
    sandbox = start_sandbox(zendesk_port)
    daemon = start_daemon(ws_port, http_port, f"http://127.0.0.1:{zendesk_port}")
    try:
        result = asyncio.run(main(parser.parse_args(), daemon, ws_port, http_port))
    finally:
        for process in (daemon, sandbox):
            if process.poll() is None:
                process.kill()
    print(json.dumps(result, indent=2))
