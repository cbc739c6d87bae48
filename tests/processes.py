"""Daemons and the Zendesk sandbox as separate OS processes, for multi-node and crash tests."""

import json
import os
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Self

from tests.daemons import ORIGIN, SANDBOX_EMAIL, SANDBOX_TOKEN, SECRET
from tests.redis_servers import free_port

ROOT = Path(__file__).resolve().parents[1]


def _wait_http(url: str, proc: subprocess.Popen[bytes], timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"process exited with {proc.returncode} before {url} answered")
        try:
            with urllib.request.urlopen(url, timeout=1) as response:
                if response.status == 200:
                    return
        except (urllib.error.URLError, OSError):
            pass
        time.sleep(0.05)
    raise TimeoutError(f"{url} did not answer 200 in {timeout}s")


def contact_tickets(tickets: list[dict[str, Any]], contact_id: str) -> list[dict[str, Any]]:
    """A contact's tickets: their external_id is its identity (account, agent, contact),
    ending in the contact's id."""
    return [t for t in tickets if str(t.get("external_id")).endswith(f":{contact_id}")]


def http_json(method: str, url: str, body: Any = None) -> Any:
    data = None if body is None else json.dumps(body).encode()
    request = urllib.request.Request(
        url, data=data, method=method, headers={"Content-Type": "application/json"}
    )
    with urllib.request.urlopen(request, timeout=5) as response:
        return json.loads(response.read())


@dataclass
class Process:
    proc: subprocess.Popen[bytes]
    log_path: Path

    def kill(self) -> None:
        """SIGKILL: no shutdown code runs, as when a host dies."""
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGKILL)
            self.proc.wait(5)

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGINT)
            try:
                self.proc.wait(5)
            except subprocess.TimeoutExpired:
                self.kill()


def _spawn(args: list[str], env: dict[str, str], log_path: Path) -> subprocess.Popen[bytes]:
    full_env = {k: v for k, v in os.environ.items() if not k.startswith("SWITCHBOARD_")}
    full_env.update(env)
    full_env["PYTHONPATH"] = os.pathsep.join(
        filter(None, [str(ROOT), os.environ.get("PYTHONPATH")])
    )
    log = log_path.open("wb")
    return subprocess.Popen(
        [sys.executable, "-m", "daemon.cli", *args],
        cwd=ROOT,
        env=full_env,
        stdout=log,
        stderr=subprocess.STDOUT,
    )


@dataclass
class SandboxProcess(Process):
    url: str = ""

    @classmethod
    def start(cls, directory: Path) -> "SandboxProcess":
        port = free_port()
        log_path = directory / "sandbox.log"
        proc = _spawn(["sandbox", "--port", str(port)], {}, log_path)
        url = f"http://127.0.0.1:{port}"
        _wait_http(f"{url}/__sandbox/state", proc)
        return cls(proc, log_path, url)

    def state(self) -> Any:
        return http_json("GET", f"{self.url}/__sandbox/state")

    def seed_agent(self, name: str) -> int:
        users = http_json(
            "POST",
            f"{self.url}/__sandbox/users",
            {"users": [{"name": name, "email": f"{name}@agents.example", "role": "agent"}]},
        )
        return int(users["users"][0]["id"])


@dataclass
class DaemonProcess(Process):
    node_id: str = ""
    ws_url: str = ""
    http_url: str = ""
    env: dict[str, str] = field(default_factory=dict)

    @classmethod
    def start(
        cls,
        directory: Path,
        node_id: str = "node",
        redis_url: str | None = None,
        sandbox_url: str | None = None,
        **settings: Any,
    ) -> Self:
        """A `switchboard serve` process on the memory store unless told: in production mode
        against `sandbox_url` (tokens signed with `SECRET`), or without one in demo mode on the
        embedded sandbox (tokens from `/demo/config`, signed with a development secret kept in
        `directory`)."""
        ws_port, http_port = free_port(), free_port()
        env = {"SWITCHBOARD_LOG_LEVEL": "info", "XDG_STATE_HOME": str(directory)}
        if sandbox_url is None:
            env["SWITCHBOARD_DEMO"] = "true"
        else:
            env |= {
                "SWITCHBOARD_SECRET": SECRET,
                "SWITCHBOARD_ALLOWED_ORIGINS": json.dumps([ORIGIN]),
                "SWITCHBOARD_ZENDESK_URL": sandbox_url,
                "SWITCHBOARD_ZENDESK_EMAIL": SANDBOX_EMAIL,
                "SWITCHBOARD_ZENDESK_API_TOKEN": SANDBOX_TOKEN,
            }
        env.update({f"SWITCHBOARD_{k.upper()}": str(v) for k, v in settings.items()})
        args = ["serve", "--host", "127.0.0.1", "--ws-port", str(ws_port)]
        args += ["--http-port", str(http_port), "--node-id", node_id]
        if redis_url is not None:
            args += ["--redis-url", redis_url]
        log_path = directory / f"{node_id}.log"
        proc = _spawn(args, env, log_path)
        http_url = f"http://127.0.0.1:{http_port}"
        daemon = cls(proc, log_path, node_id, f"ws://127.0.0.1:{ws_port}/ws", http_url, env)
        try:
            _wait_http(f"{http_url}/readyz", proc)
        except (RuntimeError, TimeoutError) as e:
            daemon.kill()
            raise RuntimeError(f"{e}\n{daemon.log_tail()}") from e
        return daemon

    def log_tail(self, lines: int = 40) -> str:
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return ""

    def zendesk(self) -> Any:
        """The embedded sandbox's state (users, tickets with comments, pops), via the demo app
        (demo mode only)."""
        return http_json("GET", f"{self.http_url}/demo/zendesk")

    def tickets_for(self, contact_id: str) -> list[dict[str, Any]]:
        return contact_tickets(self.zendesk()["tickets"], contact_id)

    def agent(self, agent: str) -> Any:
        return http_json("GET", f"{self.http_url}/admin/agents/{agent}")
