"""The daemon under test as a subprocess: `python -m daemon.cli serve`, embedded sandbox."""

import os
import secrets
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tests.browser.pages import get_json

ROOT = Path(__file__).resolve().parents[2]
GRACE_SECONDS = 2


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


@dataclass
class Daemon:
    proc: subprocess.Popen[bytes]
    base: str
    log_path: Path

    def zendesk(self) -> dict[str, Any]:
        """The sandbox's state: users, tickets (with comments), pops."""
        state: dict[str, Any] = get_json(f"{self.base}/demo/zendesk")
        return state

    def tickets_for(self, contact_id: str) -> list[dict[str, Any]]:
        return [t for t in self.zendesk()["tickets"] if t.get("external_id") == contact_id]

    def agent(self, agent: str) -> dict[str, Any]:
        state: dict[str, Any] = get_json(f"{self.base}/admin/agents/{agent}")
        return state

    def log_tail(self, lines: int = 40) -> str:
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return ""

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)


def start_daemon(directory: Path, **settings: Any) -> Daemon:
    ws_port, http_port = _free_port(), _free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("SWITCHBOARD_")}
    env.update(
        {
            "SWITCHBOARD_SECRET": "browser-tests-" + secrets.token_hex(16),
            "SWITCHBOARD_GRACE_SECONDS": str(GRACE_SECONDS),
            "SWITCHBOARD_MEDIA_LESS": "false",
            "SWITCHBOARD_WORKFLOW_SCAN_SECONDS": "0.5",
            "SWITCHBOARD_LOG_LEVEL": "info",
            "XDG_STATE_HOME": str(directory),
            "PYTHONPATH": os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")])),
        }
    )
    env.update({f"SWITCHBOARD_{k.upper()}": str(v) for k, v in settings.items()})
    log_path = directory / "daemon.log"
    with log_path.open("wb") as log:
        proc = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "daemon.cli",
                "serve",
                "--host",
                "127.0.0.1",
                "--ws-port",
                str(ws_port),
                "--http-port",
                str(http_port),
            ],
            cwd=ROOT,
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
    daemon = Daemon(proc, f"http://127.0.0.1:{http_port}", log_path)
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(
                f"the daemon exited with {proc.returncode} before /readyz answered:\n"
                + daemon.log_tail()
            )
        try:
            with urllib.request.urlopen(f"{daemon.base}/readyz", timeout=1) as response:
                if response.status == 200:
                    return daemon
        except (urllib.error.URLError, OSError):
            pass
        time.sleep(0.1)
    daemon.stop()
    raise TimeoutError("the daemon's /readyz did not answer 200 in 30 s:\n" + daemon.log_tail())
