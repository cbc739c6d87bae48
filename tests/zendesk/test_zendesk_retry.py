"""Backoff, Retry-After parsing, error typing and the local rate limiter."""

from __future__ import annotations

import time
from datetime import UTC, datetime
from email.utils import format_datetime

import pytest

from daemon.zendesk.retry import (
    PLAN_LIMITS,
    AuthenticationError,
    Forbidden,
    IdempotencyConflict,
    InvalidRecord,
    LocalRateLimiter,
    NotFound,
    RateLimited,
    RateLimiter,
    RetryPolicy,
    ServerError,
    UpdateConflict,
    ZendeskError,
    error_for,
    parse_retry_after,
)


def test_full_jitter_backoff_is_bounded_and_grows() -> None:
    policy = RetryPolicy(base_delay=0.5, max_delay=4.0)
    assert policy.backoff(1, rng=lambda: 0.999) < 0.5
    assert policy.backoff(3, rng=lambda: 0.999) == pytest.approx(2.0, rel=0.01)
    assert policy.backoff(10, rng=lambda: 1.0) == 4.0
    assert policy.backoff(5, rng=lambda: 0.0) == 0.0
    samples = {policy.backoff(4) for _ in range(50)}
    assert len(samples) > 1 and all(0 <= s <= 4.0 for s in samples)


def test_retry_after_parsing() -> None:
    assert parse_retry_after("7") == 7.0
    assert parse_retry_after(" 1.5 ") == 1.5
    assert parse_retry_after(None) is None
    assert parse_retry_after("soon") is None
    later = datetime(2030, 1, 1, 0, 0, 30, tzinfo=UTC)
    now = datetime(2030, 1, 1, 0, 0, 0, tzinfo=UTC).timestamp()
    http_date = format_datetime(later, usegmt=True)
    assert parse_retry_after(http_date, now=lambda: now) == pytest.approx(30.0)
    assert parse_retry_after("-3") == 0.0


@pytest.mark.parametrize(
    ("status", "body", "kind", "retryable"),
    [
        (404, {"error": "RecordNotFound"}, NotFound, False),
        (401, {"error": "Couldn't authenticate you"}, AuthenticationError, False),
        (403, {"error": "Forbidden"}, Forbidden, False),
        (409, {"error": "UpdateConflict"}, UpdateConflict, False),
        (422, {"error": "RecordInvalid"}, InvalidRecord, False),
        (400, {"error": "IdempotentRequestError"}, IdempotencyConflict, False),
        (400, {"error": "InvalidJSON"}, ZendeskError, False),
        (429, None, RateLimited, True),
        (503, "<html>", ServerError, True),
    ],
)
def test_errors_are_typed(status: int, body: object, kind: type, retryable: bool) -> None:
    error = error_for(status, body)
    assert type(error) is kind
    assert error.status == status and error.body == body and error.retryable is retryable


def test_plan_limits() -> None:
    assert PLAN_LIMITS == {"team": 200, "professional": 400, "enterprise": 700, "high_volume": 2500}
    limiter = LocalRateLimiter.for_plan("team")
    assert isinstance(limiter, RateLimiter) and limiter.rate == pytest.approx(200 / 60)


async def test_token_bucket_bursts_then_paces() -> None:
    limiter = LocalRateLimiter(3000, burst=3)  # 50 per second after the burst
    started = time.monotonic()
    for _ in range(3):
        await limiter.acquire()
    assert time.monotonic() - started < 0.02
    for _ in range(5):
        await limiter.acquire()
    assert time.monotonic() - started >= 5 / 50 - 0.01


def test_limiter_refuses_nonsense() -> None:
    with pytest.raises(ValueError):
        LocalRateLimiter(0)
