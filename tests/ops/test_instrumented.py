"""The store timing wrapper and the shared rate limiter's wait reports, on real stores."""

import asyncio
import contextlib
import socket

import pytest

from daemon.server.metrics import Metrics
from daemon.store.base import StoreUnavailable
from daemon.store.instrumented import Record, instrumented
from daemon.store.memory import MemoryStore
from daemon.store.redis import RedisStore
from daemon.zendesk.limiter import SharedRateLimiter

DURATION = "switchboard_store_operation_duration_seconds"
FAILURES = "switchboard_store_operation_failures_total"


def sample(metrics: Metrics, name: str, **labels: str) -> float:
    return metrics.registry.get_sample_value(name, labels) or 0.0


class Calls:
    """A recorder that keeps every report: operation -> [(seconds, ok)]."""

    def __init__(self) -> None:
        self.seen: dict[str, list[tuple[float, bool]]] = {}
        self.recorders_made: list[str] = []

    def __call__(self, operation: str) -> Record:
        self.recorders_made.append(operation)
        reports = self.seen.setdefault(operation, [])
        return lambda seconds, ok: reports.append((seconds, ok))


class Shaped:
    """A store-shaped object with every kind of member the wrapper must tell apart."""

    label = "shaped"

    def __init__(self) -> None:
        self.release = asyncio.Event()

    async def get(self, key: str) -> str:
        return key.upper()

    async def twice(self, key: str) -> str:
        return await self.get(key) + await self.get(key)  # internal calls: not the daemon's

    async def broken(self) -> None:
        raise StoreUnavailable("down")

    async def slow(self) -> None:
        await self.release.wait()

    async def _private(self) -> int:
        return 1

    def plain(self) -> int:
        return 2


async def test_each_public_coroutine_call_is_reported_once_with_its_outcome() -> None:
    calls = Calls()
    target = Shaped()
    store = instrumented(target, calls)

    assert await store.get("a") == "A"
    assert await store.get("b") == "B"
    assert await store.twice("c") == "CC"
    with pytest.raises(StoreUnavailable):
        await store.broken()

    assert {op: [ok for _, ok in r] for op, r in calls.seen.items()} == {
        "get": [True, True],
        "twice": [True],  # its two inner get() calls are the store's own business
        "broken": [False],
    }
    assert all(seconds >= 0 for r in calls.seen.values() for seconds, _ in r)
    assert calls.recorders_made == ["get", "twice", "broken"]  # one recorder per operation

    # Everything else is the target's own, untimed.
    assert store.label == "shaped" and store.plain() == 2
    assert await store._private() == 1
    assert store.release is target.release
    assert set(calls.seen) == {"get", "twice", "broken"}
    with pytest.raises(AttributeError):
        _ = store.missing  # type: ignore[attr-defined]


async def test_a_cancelled_call_reports_nothing() -> None:
    calls = Calls()
    target = Shaped()
    store = instrumented(target, calls)
    task = asyncio.create_task(store.slow())
    await asyncio.sleep(0.01)
    task.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await task
    assert calls.seen == {"slow": []}
    target.release.set()
    await store.slow()
    assert [ok for _, ok in calls.seen["slow"]] == [True]


async def test_the_daemon_metrics_time_a_memory_store_by_operation() -> None:
    metrics = Metrics()
    store = instrumented(MemoryStore(), metrics.store_operation)
    await store.heartbeat("n1", 5.0)
    assert await store.live_nodes() == frozenset({"n1"})
    await store.live_nodes()
    assert sample(metrics, DURATION + "_count", operation="heartbeat") == 1
    assert sample(metrics, DURATION + "_count", operation="live_nodes") == 2
    assert sample(metrics, DURATION + "_bucket", operation="live_nodes", le="+Inf") == 2
    assert sample(metrics, FAILURES, operation="live_nodes") == 0


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


async def test_an_unreachable_redis_is_timed_and_counted_as_failing() -> None:
    metrics = Metrics()
    url = f"redis://127.0.0.1:{_closed_port()}"
    store = instrumented(
        RedisStore.from_url(url, retries=0, socket_connect_timeout=1.0), metrics.store_operation
    )
    try:
        for _ in range(2):
            with pytest.raises(StoreUnavailable):
                await store.ping()
    finally:
        await store.close()
    assert sample(metrics, FAILURES, operation="ping") == 2
    assert sample(metrics, DURATION + "_count", operation="ping") == 2


async def test_the_shared_limiter_reports_each_request_that_waited_once() -> None:
    """GCRA at 60/min (a slot a second), burst 1: two requests pass at once, the third waits.

    A slot a second leaves a loaded machine a whole second between the first two acquires
    before the third would stop having to wait.
    """
    metrics = Metrics()
    limiter = SharedRateLimiter(
        MemoryStore(), "zendesk:test", per_minute=60, burst=1, observer=metrics.zendesk
    )
    await limiter.acquire()
    await limiter.acquire()
    assert sample(metrics, "switchboard_zendesk_waits_total", cause="rate_limiter") == 0
    await limiter.acquire()
    assert sample(metrics, "switchboard_zendesk_waits_total", cause="rate_limiter") == 1
    waited = sample(metrics, "switchboard_zendesk_wait_seconds_total", cause="rate_limiter")
    assert 0 < waited < 5.0
