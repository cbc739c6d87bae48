"""The loop metrics (`daemon.server.tally`) expose exactly what prometheus_client's own
Counter and Histogram expose for the same updates, so a scraper, dashboard or alert cannot
tell them apart (the `_created` samples aside, which the loop metrics do not keep)."""

import random

from hypothesis import given, settings
from hypothesis import strategies as st
from prometheus_client import CollectorRegistry, Counter, Histogram, generate_latest

from daemon.server.metrics import STATE_BYTES, STORE_BUCKETS
from daemon.server.tally import LoopCounter, LoopHistogram


def exposition(registry: CollectorRegistry) -> list[str]:
    text = generate_latest(registry).decode()
    return [line for line in text.splitlines() if "_created" not in line]


values = st.floats(min_value=0.0, max_value=2e7, allow_nan=False, allow_infinity=False)


@given(
    observations=st.lists(st.tuples(st.sampled_from(["load", "commit", "read"]), values)),
    buckets=st.sampled_from([STORE_BUCKETS, STATE_BYTES]),
)
@settings(max_examples=60, deadline=None)
def test_a_loop_histogram_exposes_what_a_histogram_does(
    observations: list[tuple[str, float]], buckets: tuple[float, ...]
) -> None:
    ours, theirs = CollectorRegistry(), CollectorRegistry()
    loop = LoopHistogram("x_seconds", "Doc.", ours, buckets, label="operation")
    library = Histogram("x_seconds", "Doc.", ["operation"], buckets=buckets, registry=theirs)
    for label, value in observations:
        loop[label].observe(value)
        library.labels(operation=label).observe(value)
    assert exposition(ours) == exposition(theirs)


@given(counts=st.lists(st.tuples(st.sampled_from(["contact", "snapshot", "error"]), values)))
@settings(max_examples=60, deadline=None)
def test_a_loop_counter_exposes_what_a_counter_does(counts: list[tuple[str, float]]) -> None:
    ours, theirs = CollectorRegistry(), CollectorRegistry()
    loop = LoopCounter("x_messages", "Doc.", ours, label="type")
    library = Counter("x_messages_total", "Doc.", ["type"], registry=theirs)
    for label, amount in counts:
        loop[label].inc(amount)
        library.labels(type=label).inc(amount)
    assert exposition(ours) == exposition(theirs)


def test_without_a_label_too() -> None:
    ours, theirs = CollectorRegistry(), CollectorRegistry()
    loop_count = LoopCounter("y_elections", "Doc.", ours)
    loop_hist = LoopHistogram("y_bytes", "Doc.", ours, STATE_BYTES)
    count = Counter("y_elections_total", "Doc.", registry=theirs)
    hist = Histogram("y_bytes", "Doc.", buckets=STATE_BYTES, registry=theirs)
    assert exposition(ours) == exposition(theirs)  # before any update: zero, empty
    rng = random.Random(7)
    for _ in range(500):
        value = rng.choice([0.0, 1e3, 5e5, 1e6, 3e7, rng.uniform(0, 2e7)])
        loop_hist.observe(value)
        hist.observe(value)
        loop_count.inc()
        count.inc()
    assert exposition(ours) == exposition(theirs)
