"""Zendesk's rate limits: account-wide requests per minute, and updates per ticket.

Sliding windows over the sandbox clock. Over the limit the caller gets the seconds to wait,
which become the ``Retry-After`` header of a 429.
"""

from __future__ import annotations

import math
from collections import deque


class SlidingWindow:
    """At most ``limit`` events in any ``window`` seconds."""

    def __init__(self, window: float) -> None:
        self.window = window
        self._events: deque[float] = deque()

    def clear(self) -> None:
        self._events.clear()

    def _purge(self, now: float) -> None:
        while self._events and self._events[0] <= now - self.window:
            self._events.popleft()

    def try_take(self, now: float, limit: int) -> int | None:
        """Record an event and return None, or return whole seconds to wait (at least 1)."""
        self._purge(now)
        if len(self._events) >= limit:
            wait = self._events[0] + self.window - now
            return max(1, math.ceil(wait))
        self._events.append(now)
        return None

    def used(self, now: float) -> int:
        self._purge(now)
        return len(self._events)


class TicketUpdateLimiter:
    """Zendesk's "N updates per ticket per user per 10 minutes"."""

    def __init__(self) -> None:
        self._windows: dict[tuple[int, int], SlidingWindow] = {}

    def clear(self) -> None:
        self._windows.clear()

    def try_take(self, ticket_id: int, user_id: int, now: float, limit: int) -> int | None:
        window = self._windows.setdefault((ticket_id, user_id), SlidingWindow(600.0))
        return window.try_take(now, limit)
