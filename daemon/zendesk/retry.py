"""Pacing and retrying Zendesk requests, and the errors that say whether to retry.

Zendesk limits each account to a number of requests per minute (by plan) and answers 429 with
``Retry-After`` beyond it; it also has bad moments (5xx, dropped connections, timeouts). The
client paces itself with a :class:`RateLimiter` (one per process here; a shared Redis limiter
keeps several nodes inside one account's budget) and retries transient failures with
exponential backoff and full jitter, so that many clients that failed together do not retry
together. Waits longer than a call should hold a coroutine (a long ``Retry-After``) are given
back to the caller as a retryable error, for the durable journal to reschedule.
"""

from __future__ import annotations

import asyncio
import email.utils
import random
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Literal, Protocol, runtime_checkable

#: Zendesk's account-wide API limits (requests per minute) by plan.
PLAN_LIMITS: dict[str, int] = {
    "team": 200,
    "professional": 400,
    "enterprise": 700,
    "high_volume": 2500,
}


# --------------------------------------------------------------------------- errors


class ZendeskError(Exception):
    """A request that did not succeed: ``status`` is None when no answer came back."""

    def __init__(self, status: int | None, body: Any = None, message: str | None = None) -> None:
        self.status = status
        self.body = body
        detail = message or _error_text(body)
        super().__init__(f"Zendesk {status if status is not None else 'unreachable'}: {detail}")

    @property
    def retryable(self) -> bool:
        """Whether trying again later can succeed (429, 5xx, no answer)."""
        return self.status is None or self.status == 429 or self.status >= 500


class NotFound(ZendeskError):
    """404: the user, ticket or endpoint does not exist."""


class AuthenticationError(ZendeskError):
    """401 that a credential refresh could not cure."""


class Forbidden(ZendeskError):
    """403: not allowed (or a feature the account's plan lacks)."""


class IdempotencyConflict(ZendeskError):
    """400 IdempotentRequestError: the key was used before with a different request."""


class UpdateConflict(ZendeskError):
    """409: a safe update found the ticket changed since it was read."""


class InvalidRecord(ZendeskError):
    """422 RecordInvalid: Zendesk refused the values."""


class RateLimited(ZendeskError):
    """429 still there after the retries, or asking for a wait longer than a call may hold."""

    def __init__(self, status: int | None, body: Any = None, retry_after: float | None = None):
        super().__init__(status, body)
        self.retry_after = retry_after


class ServerError(ZendeskError):
    """5xx still there after the retries."""


class TransportError(ZendeskError):
    """No answer: connection refused or dropped, or the request timed out."""


def _error_text(body: Any) -> str:
    if isinstance(body, dict):
        parts = [str(body.get(k)) for k in ("error", "description", "details") if body.get(k)]
        return " - ".join(parts) or str(body)
    return str(body)[:300]


def error_for(status: int, body: Any, retry_after: float | None = None) -> ZendeskError:
    """The typed error for an unsuccessful status."""
    if status == 404:
        return NotFound(status, body)
    if status == 401:
        return AuthenticationError(status, body)
    if status == 403:
        return Forbidden(status, body)
    if status == 409:
        return UpdateConflict(status, body)
    if status == 422:
        return InvalidRecord(status, body)
    if status == 429:
        return RateLimited(status, body, retry_after)
    if status >= 500:
        return ServerError(status, body)
    if status == 400 and isinstance(body, dict) and body.get("error") == "IdempotentRequestError":
        return IdempotencyConflict(status, body)
    return ZendeskError(status, body)


# --------------------------------------------------------------------------- classification


@dataclass(frozen=True, slots=True)
class Verdict:
    """What the workflow does about a request that failed (see `classify`).

    ``transient``: try the step again later, after a per-contact backoff (``retry_after``
    when Zendesk named a wait). ``permanent``: journal the step as failed and carry on
    without it, never sending it again. ``halt``: nothing more can succeed for this contact
    (the account refuses our credentials): the whole workflow is journaled as failed.
    ``attempts`` bounds a transient verdict: after that many failed tries of the same step
    it becomes permanent.
    """

    kind: Literal["transient", "permanent", "halt"]
    code: str
    retry_after: float | None = None
    attempts: int | None = None


#: How many times a step that met 409 Conflict is tried (each try re-checks first).
CONFLICT_ATTEMPTS = 3


def classify(error: ZendeskError) -> Verdict:
    """Every Zendesk failure is transient, permanent or a halt; nothing loops for ever.

    | status | verdict | why |
    |---|---|---|
    | none (no answer), 5xx | transient | Zendesk or the network had a bad moment |
    | 429 | transient, after ``Retry-After`` | the account's budget, not the request |
    | 409 | transient for 3 tries, then permanent | a concurrent update of the ticket; each
      try first checks whether the write landed |
    | 400, 404, 413, 422, other 4xx | permanent | this request can never succeed |
    | 403 | permanent | not allowed for this ticket or user (others may still work) |
    | 401 | halt | the client already refreshed its credentials once: every request of
      this contact would be refused; an operator must fix the credentials |
    """
    status = error.status
    if status is None:
        return Verdict("transient", "unreachable")
    if status == 429:
        retry_after = error.retry_after if isinstance(error, RateLimited) else None
        return Verdict("transient", "rate_limited", retry_after=retry_after)
    if status >= 500:
        return Verdict("transient", "server_error")
    if status == 409:
        return Verdict("transient", "conflict", attempts=CONFLICT_ATTEMPTS)
    if status == 401:
        return Verdict("halt", "unauthorized")
    codes = {400: "bad_request", 403: "forbidden", 404: "not_found", 413: "too_large",
             422: "invalid"}  # fmt: skip
    return Verdict("permanent", codes.get(status, f"http_{status}"))


# --------------------------------------------------------------------------- backoff


@dataclass(frozen=True)
class RetryPolicy:
    """How often and how patiently to retry."""

    max_attempts: int = 5
    #: First backoff ceiling in seconds; doubles each attempt (tests use a few ms).
    base_delay: float = 0.5
    max_delay: float = 30.0
    #: The longest ``Retry-After`` honoured in place; longer ones are raised as RateLimited.
    max_retry_after: float = 120.0

    def backoff(self, attempt: int, rng: Callable[[], float] = random.random) -> float:
        """Full jitter: uniform in [0, min(max_delay, base_delay * 2**(attempt-1)))."""
        ceiling: float = min(self.max_delay, self.base_delay * 2.0 ** max(0, attempt - 1))
        return rng() * ceiling


def parse_retry_after(value: str | None, now: Callable[[], float] = time.time) -> float | None:
    """Seconds to wait from a ``Retry-After`` header (delta-seconds or an HTTP date)."""
    if value is None or not value.strip():
        return None
    text = value.strip()
    try:
        return max(0.0, float(text))
    except ValueError:
        pass
    try:
        when: datetime = email.utils.parsedate_to_datetime(text)
    except (TypeError, ValueError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return max(0.0, when.timestamp() - now())


# --------------------------------------------------------------------------- rate limiting


class Observer(Protocol):
    """Where the client and the limiter report what they did (the daemon's metrics).

    ``request``: one HTTP attempt ended, with the path *template* (never raw ids) and the
    status, None when no answer came back. ``waited``: a pause before a request, by cause
    (``rate_limiter``, ``too_many_requests``, ``backoff``). Both must be quick and not raise.
    """

    def request(self, method: str, endpoint: str, status: int | None, seconds: float) -> None: ...

    def waited(self, cause: str, seconds: float) -> None: ...


@runtime_checkable
class RateLimiter(Protocol):
    """Grants permission for one API request; ``acquire`` waits until it may be sent."""

    async def acquire(self) -> None: ...


class LocalRateLimiter:
    """An in-process token bucket holding a request rate of ``per_minute``.

    The bucket starts full with ``burst`` tokens (default: a whole minute's budget, which is
    what Zendesk's per-minute window allows) and refills continuously. Waiters are served in
    arrival order.
    """

    def __init__(
        self,
        per_minute: int,
        *,
        burst: int | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if per_minute <= 0:
            raise ValueError("per_minute must be positive")
        self.rate = per_minute / 60.0
        self.capacity = float(burst if burst is not None else per_minute)
        self._tokens = self.capacity
        self._clock = clock
        self._updated = clock()
        self._lock = asyncio.Lock()

    @classmethod
    def for_plan(cls, plan: str, *, burst: int | None = None) -> LocalRateLimiter:
        return cls(PLAN_LIMITS[plan], burst=burst)

    def _refill(self) -> None:
        now = self._clock()
        self._tokens = min(self.capacity, self._tokens + (now - self._updated) * self.rate)
        self._updated = now

    async def acquire(self) -> None:
        async with self._lock:
            self._refill()
            while self._tokens < 1.0:
                await asyncio.sleep((1.0 - self._tokens) / self.rate)
                self._refill()
            self._tokens -= 1.0
