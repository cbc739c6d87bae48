"""The development signing secret: generated once per machine, shared by `serve` and `token`.

Production sets SWITCHBOARD_SECRET. Without it, `serve` and `token` must still agree on a key
so a developer can mint a token for a running daemon; a file only the user can read does that.
"""

import os
import secrets
from pathlib import Path


def dev_secret_path() -> Path:
    base = os.environ.get("XDG_STATE_HOME") or str(Path.home() / ".local" / "state")
    return Path(base) / "switchboard" / "dev-secret"


def load_or_create_dev_secret() -> tuple[str, bool]:
    """The secret and whether it was created just now (so the caller logs it once)."""
    path = dev_secret_path()
    if path.exists():
        return path.read_text().strip(), False
    path.parent.mkdir(parents=True, exist_ok=True)
    secret = secrets.token_urlsafe(32)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w") as f:
        f.write(secret + "\n")
    return secret, True
