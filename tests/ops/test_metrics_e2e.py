"""A real daemon, a real tab, a call through the embedded Zendesk sandbox: /metrics must tell.

Each test scrapes ``/metrics`` over HTTP as Prometheus does, before and after, and checks that
the series an on-call engineer reads moved by what actually happened, and by nothing else:
one request counted per attempt under its path template, one workflow step per step,
Zendesk's 5xx/429 answers and the waits they caused, a step that Zendesk refused.
"""

import re

import pytest

from daemon.server.metrics import Metrics
from tests.daemons import eventually
from tests.ops.conftest import (
    Node,
    call,
    finished,
    open_agent_tab,
    report_call,
    sandbox_faults,
    unknown_caller,
)
from tests.ops.scrape import (
    PROMTOOL,
    Samples,
    exported_names,
    label_values,
    promtool,
    scrape,
    scrape_text,
    value,
)

REQUESTS = "switchboard_zendesk_requests_total"
LATENCY = "switchboard_zendesk_request_duration_seconds"
STEPS = "switchboard_workflow_steps_total"
STEP_FAILURES = "switchboard_workflow_step_failures_total"
RUNS = "switchboard_workflow_runs_total"
WAITS = "switchboard_zendesk_waits_total"
WAIT_SECONDS = "switchboard_zendesk_wait_seconds_total"
STORE = "switchboard_store_operation_duration_seconds"
#: Both ticket-creating endpoints (with and without Talk Partner Edition).
TICKET_CREATE = "/api/v2/*tickets"


def delta(after: Samples, before: Samples, name: str, **labels: str) -> float:
    return value(after, name, **labels) - value(before, name, **labels)


def assert_requests_match_latency(samples: Samples) -> None:
    """Every attempt is both counted and timed, under the same (method, endpoint)."""
    for endpoint in label_values(samples, REQUESTS, "endpoint"):
        for method in ("GET", "POST", "PUT"):
            counted = value(samples, REQUESTS, method=method, endpoint=endpoint)
            timed = value(samples, LATENCY + "_count", method=method, endpoint=endpoint)
            assert counted == timed, (method, endpoint, counted, timed)


async def test_one_call_moves_the_series_an_operator_reads(node: Node) -> None:
    tab = await open_agent_tab(node)
    before = await scrape(node.daemon)
    await call(node, tab, "c-1")
    after = await scrape(node.daemon)

    # Zendesk requests, by route template and status: the ticket was created once (201)
    # and updated once with the voice comment (200); ids never become label values.
    endpoints = label_values(after, REQUESTS, "endpoint")
    assert endpoints, "no Zendesk request was counted"
    assert all(e.startswith("/api/v2/") and not re.search(r"/\d+(/|$)", e) for e in endpoints)
    created = [e for e in endpoints if e.endswith("/tickets")]
    assert sum(delta(after, before, REQUESTS, method="POST", endpoint=e) for e in created) == 1
    assert value(after, REQUESTS, method="POST", endpoint=created[0], status="201") == 1
    assert delta(after, before, REQUESTS, method="PUT", endpoint="/api/v2/tickets/{ticket_id}") == 1
    assert value(after, REQUESTS, status="error") == 0
    assert_requests_match_latency(after)
    assert delta(after, before, LATENCY + "_count") == delta(after, before, REQUESTS) > 0
    # The histogram is cumulative: +Inf holds every observation.
    assert value(after, LATENCY + "_bucket", le="+Inf") == value(after, LATENCY + "_count")

    # Workflow: each step of an unknown caller's call, once; nothing failed; the run finished.
    for kind in ("FindUsersByPhone", "CreateUser", "CreateTicket", "AddVoiceComment"):
        assert delta(after, before, STEPS, kind=kind) == 1, kind
    assert value(after, STEP_FAILURES) == 0
    # (A change that reached the scheduler during the run earns one more run, which finds
    # nothing to do: steps are what must not repeat, and they are counted above.)
    assert delta(after, before, RUNS, result="done") >= 1
    assert value(after, "switchboard_workflow_failures_total") == 0

    # The hub and the store: the events were timed, each store round trip by operation.
    assert delta(after, before, "switchboard_event_duration_seconds_count") >= 3
    assert value(after, "switchboard_event_seconds_count") == 0  # the old name is gone
    for op in ("load_revision", "commit_agent", "journal_write", "rate_acquire"):
        assert delta(after, before, STORE + "_count", operation=op) >= 1, op
    assert all(not op.startswith("_") for op in label_values(after, STORE + "_count", "operation"))
    assert value(after, "switchboard_store_operation_failures_total") == 0
    assert value(after, "switchboard_store_up") == 1

    # The process: descriptors (the WebSocket, the sandbox's sockets) against the limit.
    open_fds, max_fds = value(after, "process_open_fds"), value(after, "process_max_fds")
    assert 0 < open_fds < max_fds
    assert value(after, "process_resident_memory_bytes") > 0
    assert value(after, "process_cpu_seconds_total") > 0
    assert label_values(after, "python_info", "implementation")

    # What was exposed is exactly what the registry declares (the dashboard test relies on it).
    assert {name for name, _ in after} <= exported_names(node.daemon.metrics.registry)
    await tab.close()


async def test_retried_5xx_and_429_are_counted_by_status_with_their_waits(node: Node) -> None:
    """Zendesk answers 503, then 429, then creates the ticket: one step, three attempts."""
    tab = await open_agent_tab(node)
    before = await scrape(node.daemon)
    await sandbox_faults(
        node,
        [
            {"kind": "error", "method": "POST", "path": TICKET_CREATE, "status": 503},
            {"kind": "rate_limit", "method": "POST", "path": TICKET_CREATE, "retry_after": 0},
        ],
    )
    await call(node, tab, "c-1")
    after = await scrape(node.daemon)

    (endpoint,) = [e for e in label_values(after, REQUESTS, "endpoint") if e.endswith("/tickets")]
    by_status = {
        status: delta(after, before, REQUESTS, method="POST", endpoint=endpoint, status=status)
        for status in ("503", "429", "201")
    }
    assert by_status == {"503": 1, "429": 1, "201": 1}
    assert delta(after, before, LATENCY + "_count", method="POST", endpoint=endpoint) == 3
    assert delta(after, before, WAITS, cause="backoff") == 1  # after the 503
    assert delta(after, before, WAITS, cause="too_many_requests") == 1  # after the 429
    assert delta(after, before, WAIT_SECONDS, cause="too_many_requests") == 0  # Retry-After: 0
    assert delta(after, before, WAIT_SECONDS, cause="backoff") >= 0
    # The client absorbed both: the workflow saw one step, and no failure.
    assert delta(after, before, STEPS, kind="CreateTicket") == 1
    assert value(after, STEP_FAILURES) == 0
    assert_requests_match_latency(after)
    await tab.close()


async def test_refused_and_failing_steps_are_counted_by_kind_and_error(node: Node) -> None:
    """Zendesk refuses the new user for good (422) and is down (503) for the voice comment.

    The refusal is a step failure of kind CreateUser; the outage makes runs end in "error"
    with ServerError failures of AddVoiceComment until Zendesk is back, when the run is done.
    """
    tab = await open_agent_tab(node)
    before = await scrape(node.daemon)
    await sandbox_faults(
        node,
        [
            {"kind": "error", "method": "POST", "path": "/api/v2/users", "status": 422},
            {"kind": "error", "method": "PUT", "path": "/api/v2/tickets/*", "status": 503,
             "count": None},
        ],
    )  # fmt: skip
    await report_call(tab, "c-2", unknown_caller("Refused Caller", "+447700900999"))

    async def failing() -> bool:
        now = await scrape(node.daemon)
        return delta(now, before, RUNS, result="error") >= 1

    await eventually(failing, 20.0)
    await sandbox_faults(node, None)  # Zendesk is back
    await finished(node, "c-2")
    after = await scrape(node.daemon)

    assert delta(after, before, STEP_FAILURES, kind="CreateUser", error="InvalidRecord") == 1
    assert delta(after, before, STEP_FAILURES, kind="AddVoiceComment", error="ServerError") >= 1
    assert label_values(after, STEP_FAILURES, "error") <= {"InvalidRecord", "ServerError"}
    # Each failed step was also counted as a step; the voice comment finally landed once.
    assert delta(after, before, STEPS, kind="AddVoiceComment") == 1 + delta(
        after, before, STEP_FAILURES, kind="AddVoiceComment"
    )
    assert delta(after, before, RUNS, result="done") >= 1  # (a change mid-run earns one more)
    assert value(after, REQUESTS, method="PUT", status="503") >= 5  # every attempt counted
    await tab.close()


@pytest.mark.skipif(PROMTOOL is None, reason="promtool (Debian package prometheus) not installed")
async def test_the_exposition_passes_promtool_with_every_series_present(node: Node) -> None:
    """Lint the page once every labelled series exists, not just the ones a call touched."""
    node.daemon.metrics.zendesk.waited("rate_limiter", 0.5)
    node.daemon.metrics.workflow_step_failures.labels(
        kind="CreateTicket", error="ServerError"
    ).inc()
    node.daemon.metrics.refused["bad_message"].inc()
    code, out = await promtool("check", "metrics", stdin=await scrape_text(node.daemon))
    assert code == 0, out


#: Labels whose values grow with traffic: never allowed on a series.
UNBOUNDED_LABELS = {
    "agent",
    "contact",
    "contact_id",
    "tab",
    "tab_id",
    "ticket",
    "user",
    "id",
    "url",
}


def test_names_and_labels_follow_prometheus_conventions() -> None:
    """Counters end in _total, durations are histograms in seconds, sizes in bytes, no ids."""
    families = list(Metrics().registry.collect())
    ours = [f for f in families if f.name.startswith("switchboard_")]
    assert len(ours) >= 20
    assert {f.name for f in families} >= {
        "process_open_fds",
        "process_max_fds",
        "process_resident_memory_bytes",
        "process_cpu_seconds",
        "python_info",
    }
    for family in ours:
        assert re.fullmatch(r"switchboard_[a-z][a-z0-9_]*[a-z0-9]", family.name), family.name
        if family.type == "histogram":  # a time or a size, in base units
            assert family.name.endswith(("_duration_seconds", "_bytes")), family.name
        if family.type == "gauge":
            assert not family.name.endswith(("_total", "_seconds", "_count")), family.name
        for unit in ("seconds", "bytes"):  # the unit is the last word (a counter's before _total)
            if unit in family.name:
                assert family.name.endswith("_" + unit), family.name
        assert family.documentation, family.name
    samples = Metrics()
    samples.zendesk.request("GET", "/api/v2/users/{user_id}", 200, 0.1)
    labels = {label for f in samples.registry.collect() for s in f.samples for label in s.labels}
    assert not labels & UNBOUNDED_LABELS
