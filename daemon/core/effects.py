"""What the core asks the shell to do: publish to the agent's stream, wake the workflow."""

from dataclasses import dataclass, field

from daemon.core.state import AgentState
from protocol.errors import ErrorCode
from protocol.messages import Role, StreamedMessage


@dataclass(frozen=True, slots=True)
class Publish:
    """Append to the agent's stream; delivered to one tab, one role, or every tab."""

    message: StreamedMessage
    to_tab: str | None = None
    to_role: Role | None = None


@dataclass(frozen=True, slots=True)
class WakeWorkflow:
    """The contact changed in a way the Zendesk workflow may need to act on."""

    contact_id: str


@dataclass(frozen=True, slots=True)
class Refusal:
    """The event was refused; nothing changed. Sent to the connection that caused it."""

    code: ErrorCode
    message: str


@dataclass(frozen=True, slots=True)
class TabAssignment:
    """Which tab id and session a newly opened connection got."""

    tab_id: str
    session: str
    reassigned: bool


Effect = Publish | WakeWorkflow


@dataclass(frozen=True, slots=True)
class Outcome:
    state: AgentState
    effects: tuple[Effect, ...] = ()
    refusal: Refusal | None = None
    assignment: TabAssignment | None = None
    changed: bool = field(default=True)
    # The contacts this event created, changed or dropped, in that order of work: the shell
    # looks only at these (the commit's delta, `AgentState.write`; metrics, logs) instead of
    # walking the whole aggregate.
    touched: tuple[str, ...] = ()
