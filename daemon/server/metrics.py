"""Prometheus metrics, on a registry of our own so tests can run several daemons per process."""

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

STATE_BYTES = (1e3, 1e4, 1e5, 1e6, 4e6, 1.6e7)  # buckets up to four times the default bound


class Metrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        r = self.registry
        self.connections = Gauge(
            "switchboard_connections", "Open WebSocket connections", registry=r
        )
        self.tabs = Gauge("switchboard_tabs", "Tabs greeted on this node", ["role"], registry=r)
        self.contacts = Gauge(
            "switchboard_contacts", "Unfinished contacts of agents with tabs here", registry=r
        )
        self.elections = Counter(
            "switchboard_elections_total", "Contacts given their first owner", registry=r
        )
        self.failovers = Counter(
            "switchboard_failovers_total", "Ownership moved after a grace period", registry=r
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
        self.errors = Counter(
            "switchboard_errors_total", "Error messages sent to tabs", ["code"], registry=r
        )
        self.messages_in = Counter(
            "switchboard_messages_in_total", "Messages received from tabs", ["type"], registry=r
        )
        self.messages_out = Counter(
            "switchboard_messages_out_total", "Messages sent to tabs", ["type"], registry=r
        )
        self.conflicts = Counter(
            "switchboard_store_conflicts_total", "Optimistic commits retried", registry=r
        )
        self.store_up = Gauge("switchboard_store_up", "1 if the store answers", registry=r)
        self.workflow_steps = Counter(
            "switchboard_workflow_steps_total", "Workflow steps executed", ["kind"], registry=r
        )
        self.workflow_failures = Counter(
            "switchboard_workflow_failures_total", "Workflow runs stopped by an error", registry=r
        )
        self.bound_refusals = Counter(
            "switchboard_bound_refusals_total", "Events refused by a bound", ["bound"], registry=r
        )
        self.state_bytes = Histogram(
            "switchboard_state_bytes", "Committed agent state size", buckets=STATE_BYTES, registry=r
        )
        self.event_seconds = Histogram(
            "switchboard_event_seconds", "Time to apply and commit one agent event", registry=r
        )
