"""The sandbox's notion of time.

Expiry rules (OAuth tokens, idempotency keys, search indexing lag, rate-limit windows) all read
one clock, so a test can jump it forward instead of sleeping: ``advance()`` shifts every rule at
once and the sandbox stays internally consistent.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from datetime import UTC, datetime


class Clock:
    """Wall-clock seconds plus an offset that tests (or ``/__sandbox/clock``) can move forward."""

    def __init__(self, base: Callable[[], float] = time.time) -> None:
        self._base = base
        self._offset = 0.0

    def now(self) -> float:
        """Current sandbox time in seconds since the epoch."""
        return self._base() + self._offset

    def advance(self, seconds: float) -> None:
        """Jump forward; negative values are refused because expiry rules assume monotony."""
        if seconds < 0:
            raise ValueError("the sandbox clock only moves forward")
        self._offset += seconds


def iso(ts: float) -> str:
    """Zendesk's timestamp format: ISO 8601, UTC, whole seconds, ``Z`` suffix."""
    return datetime.fromtimestamp(ts, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
