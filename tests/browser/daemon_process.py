"""The daemon under test as a subprocess (`switchboard serve`, embedded Zendesk sandbox)."""

from pathlib import Path
from typing import Any

from tests.processes import ROOT, DaemonProcess

__all__ = ["GRACE_SECONDS", "ROOT", "Daemon", "start_daemon"]

GRACE_SECONDS = 2


class Daemon(DaemonProcess):
    @property
    def base(self) -> str:
        return self.http_url


def start_daemon(directory: Path, **settings: Any) -> Daemon:
    defaults: dict[str, Any] = {
        "grace_seconds": GRACE_SECONDS,
        "media_less": "false",
        "workflow_scan_seconds": 0.5,
    }
    return Daemon.start(directory, "browser-daemon", **(defaults | settings))
