"""Prometheus metrics: the one place every series the daemon exports is declared.

The registry is the daemon's own (not prometheus_client's global one) so tests can run several
daemons in one process; the process and platform collectors are registered on it explicitly,
since only the global registry gets them by default.

Names follow Prometheus' conventions: counters end in ``_total``, durations are histograms in
seconds ending in ``_duration_seconds``, and every label has a bounded set of values (message
types, error codes, Zendesk path *templates*, store operation names, step and exception class
names — never ids).

The instrumented parts report through small callables instead of importing this module's
types: the Zendesk client and limiter through :class:`ZendeskObserver` (they see it as
``daemon.zendesk.retry.Observer``), the workflow runner through :meth:`Metrics.workflow_step`,
the store wrapper through :meth:`Metrics.store_operation`.
"""

from collections.abc import Awaitable, Callable
from typing import TypeVar

from prometheus_client import (
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    PlatformCollector,
    ProcessCollector,
)

from daemon.server.tally import LoopCounter, LoopHistogram

T = TypeVar("T")


#: Store round trips: microseconds in memory, about a millisecond to a nearby Redis.
STORE_BUCKETS = (
    0.0001,
    0.00025,
    0.0005,
    0.001,
    0.0025,
    0.005,
    0.01,
    0.025,
    0.05,
    0.1,
    0.25,
    0.5,
    1.0,
    2.5,
)
#: Zendesk API calls: tens of milliseconds at best, up to the client's timeout (10 s).
ZENDESK_BUCKETS = (0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0)


class ZendeskObserver:
    """What the Zendesk client and rate limiter report: each HTTP attempt and each wait."""

    def __init__(self, registry: CollectorRegistry) -> None:
        self.requests = Counter(
            "switchboard_zendesk_requests_total",
            "Zendesk API requests sent (each attempt), by path template and HTTP status "
            "('error' when no answer came back: refused, dropped or timed out)",
            ["method", "endpoint", "status"],
            registry=registry,
        )
        self.duration = Histogram(
            "switchboard_zendesk_request_duration_seconds",
            "Time from sending a Zendesk API request to its last response byte (or failure)",
            ["method", "endpoint"],
            buckets=ZENDESK_BUCKETS,
            registry=registry,
        )
        self.waits = Counter(
            "switchboard_zendesk_waits_total",
            "Pauses before a Zendesk request: 'rate_limiter' (the account's shared budget "
            "was spent), 'too_many_requests' (Zendesk answered 429), 'backoff' (retrying a "
            "5xx or a lost answer)",
            ["cause"],
            registry=registry,
        )
        self.wait_seconds = Counter(
            "switchboard_zendesk_wait_seconds_total",
            "Seconds spent in those pauses",
            ["cause"],
            registry=registry,
        )

    def request(self, method: str, endpoint: str, status: int | None, seconds: float) -> None:
        """One attempt ended: ``endpoint`` is the path template, ``status`` None if no answer."""
        code = "error" if status is None else str(status)
        self.requests.labels(method=method, endpoint=endpoint, status=code).inc()
        self.duration.labels(method=method, endpoint=endpoint).observe(seconds)

    def waited(self, cause: str, seconds: float) -> None:
        self.waits.labels(cause=cause).inc()
        self.wait_seconds.labels(cause=cause).inc(seconds)


STATE_BYTES = (1e3, 1e4, 1e5, 1e6, 4e6, 1.6e7)  # buckets up to four times the default bound
#: prometheus_client's default buckets, which this histogram had before it was a tally.
EVENT_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.075, 0.1, 0.25, 0.5, 0.75, 1.0, 2.5, 5.0, 7.5, 10.0)


class Metrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        r = self.registry
        # Open and maximum file descriptors, resident memory, CPU seconds, start time.
        ProcessCollector(registry=r)
        PlatformCollector(registry=r)
        self.connections = Gauge(
            "switchboard_connections", "Open WebSocket connections", registry=r
        )
        self.tabs = Gauge("switchboard_tabs", "Tabs greeted on this node", ["role"], registry=r)
        self.contacts = Gauge(
            "switchboard_contacts", "Unfinished contacts of agents with tabs here", registry=r
        )
        self.elections = LoopCounter("switchboard_elections", "Contacts given their first owner", r)
        self.failovers = LoopCounter(
            "switchboard_failovers", "Ownership moved after a grace period", r
        )
        self.resumes = Counter(
            "switchboard_resumes_total", "Connections resumed by replaying the gap", registry=r
        )
        self.snapshots = Counter(
            "switchboard_snapshots_total", "Connections given a snapshot instead", registry=r
        )
        self.duplicates = Counter(
            "switchboard_duplicate_tabs_total", "Tab ids reassigned to duplicates", registry=r
        )
        # The per-frame metrics are loop metrics (`daemon.server.tally`): no lock per update.
        self.refused = LoopCounter(
            "switchboard_errors", "Error messages sent to tabs", r, label="code"
        )
        self.received = LoopCounter(
            "switchboard_messages_in", "Messages received from tabs", r, label="type"
        )
        self.sent = LoopCounter(
            "switchboard_messages_out", "Messages sent to tabs", r, label="type"
        )
        self.throttled = LoopCounter(
            "switchboard_agent_throttled",
            "Frames over their agent's message budget, by outcome: delayed or refused",
            r,
            label="outcome",
        )
        self.conflicts = Counter(
            "switchboard_store_conflicts_total", "Optimistic commits retried", registry=r
        )
        self.store_up = Gauge("switchboard_store_up", "1 if the store answers", registry=r)
        self.store_duration = LoopHistogram(
            "switchboard_store_operation_duration_seconds",
            "Round trip of one store operation (whether it succeeded or failed)",
            r,
            STORE_BUCKETS,
            label="operation",
        )
        self.store_failures = LoopCounter(
            "switchboard_store_operation_failures",
            "Store operations that raised (mostly: the store could not be reached)",
            r,
            label="operation",
        )
        self.workflow_steps = Counter(
            "switchboard_workflow_steps_total",
            "Zendesk workflow steps the runner executed (each attempt), by step kind",
            ["kind"],
            registry=r,
        )
        self.workflow_step_failures = Counter(
            "switchboard_workflow_step_failures_total",
            "Workflow steps that raised, by step kind and exception class (RateLimited, "
            "ServerError and TransportError are retried later; InvalidRecord, NotFound are "
            "refusals)",
            ["kind", "error"],
            registry=r,
        )
        self.workflow_runs = Counter(
            "switchboard_workflow_runs_total",
            "Workflow runs by how they ended: done, waiting (for the contact to change), "
            "gone, stale (lease lost), error (a step failed; retried later), limit",
            ["result"],
            registry=r,
        )
        self.workflow_contacts = Counter(
            "switchboard_workflow_contacts_total",
            "Contacts whose Zendesk work reached an end, by status: done, failed (with the "
            "classified reason: forbidden, invalid, unauthorized, planning_failed, ...) or "
            "none (no work: email, task, a contact that ended without connecting); a contact "
            "an agent's command revives after its end counts again when it ends again",
            ["status", "reason"],
            registry=r,
        )
        self.workflow_failures = Counter(
            "switchboard_workflow_failures_total",
            "Workflow runs stopped by an unexpected exception (a bug, not a Zendesk error)",
            registry=r,
        )
        self.connect_requests = Counter(
            "switchboard_connect_requests_total",
            "Amazon Connect API calls, by operation and outcome (ok or an error kind)",
            ["operation", "outcome"],
            registry=r,
        )
        self.connect_seconds = Histogram(
            "switchboard_connect_request_duration_seconds",
            "Amazon Connect API call time, retries included",
            ["operation"],
            registry=r,
        )
        self.connect_confirmations = Counter(
            "switchboard_connect_confirmations_total",
            "New contacts checked with Amazon Connect, by outcome (confirmed, "
            "contact_not_in_connect, contact_not_yours, unconfirmed: Connect could not say, the "
            "tab was believed for now) and attempt (first: on the first report; retry: later)",
            ["outcome", "attempt"],
            registry=r,
        )
        self.bound_refusals = Counter(
            "switchboard_bound_refusals_total", "Events refused by a bound", ["bound"], registry=r
        )
        self.state_bytes = LoopHistogram(
            "switchboard_state_bytes",
            "Agent state bytes written per commit (the head and the contacts it changed)",
            r,
            STATE_BYTES,
        )
        self.event_seconds = LoopHistogram(
            "switchboard_event_duration_seconds",
            "Time to apply and commit one agent event",
            r,
            EVENT_BUCKETS,
        )
        self.zendesk = ZendeskObserver(r)

    def store_operation(self, operation: str) -> Callable[[float, bool], None]:
        """The recorder of one store operation's round trips: ``(seconds, ok)``."""
        duration = self.store_duration[operation]
        failures = self.store_failures[operation]

        def record(seconds: float, ok: bool) -> None:
            duration.observe(seconds)
            if not ok:
                failures.inc()

        return record

    def workflow_status(self, status: str, reason: str | None) -> None:
        """A contact's workflow reached an end (see `switchboard_workflow_contacts_total`)."""
        self.workflow_contacts.labels(status=status, reason=reason or "").inc()

    async def workflow_step(self, step: object, work: Awaitable[T]) -> T:
        """Run one workflow step's Zendesk work, counting it and, if it raises, its failure."""
        kind = type(step).__name__
        self.workflow_steps.labels(kind=kind).inc()
        try:
            return await work
        except Exception as exc:
            self.workflow_step_failures.labels(kind=kind, error=type(exc).__name__).inc()
            raise
