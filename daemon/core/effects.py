"""What the core asks the shell to do: publish to the agent's stream, wake the workflow."""

from dataclasses import dataclass, field
from typing import Any

from daemon.core.state import AgentState
from protocol.errors import ErrorCode
from protocol.messages import STREAMED_MESSAGE, Role, StreamedMessage


@dataclass(frozen=True, slots=True)
class Publish:
    """Append to the agent's stream; delivered to one tab, one role, or every tab.

    `wire` is the message as tabs are sent it (JSON-ready; fields without a value left
    out), which is what the shell appends: made once, by the core, and for a contact view
    (one per change) straight from the contact's declared fields (`views.contact_wire`),
    without building a model to dump it again. `message` reads it back as a model.
    """

    wire: dict[str, Any]
    to_tab: str | None = None
    to_role: Role | None = None

    @classmethod
    def of(
        cls, message: StreamedMessage, *, to_tab: str | None = None, to_role: Role | None = None
    ) -> "Publish":
        return cls(message.model_dump(mode="json", exclude_none=True), to_tab, to_role)

    @property
    def message(self) -> StreamedMessage:
        return STREAMED_MESSAGE.validate_python(self.wire)


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
