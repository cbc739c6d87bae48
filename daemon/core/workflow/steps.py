"""The steps a workflow plan is made of, and the shapes of their journaled results.

Each step is a frozen dataclass with a deterministic `key`, unique within one contact: the
runner records the step's outcome in the contact's journal under that key, and the policy
treats a key present in the journal as done. So the journal alone says what is left, and a
restarted daemon (or another node) continues exactly where the last runner stopped.

Results are plain JSON-compatible data (the journal lives in Redis). The runner turns
Zendesk's objects into the small `UserInfo` / `TicketInfo` dicts below; what is journaled for
a write is `step.record(result)`, defined here so that the policy alone decides what it later
reads back (e.g. which attribute values a comment carried, to append only the changed ones).
"""

from dataclasses import dataclass, field
from typing import Any, Literal, TypedDict

from daemon.core.events import NoticeRequest, PopRequest
from protocol.messages import WorkflowStatus


class UserInfo(TypedDict, total=False):
    """What the policy needs to know about a Zendesk user (only `id` is always present)."""

    id: int
    name: str
    phone: str | None
    email: str | None
    role: str
    shared_phone_number: bool


class TicketInfo(TypedDict, total=False):
    """What the policy needs to know about a ticket (only `id` is always present)."""

    id: int
    requester_id: int | None
    status: str
    updated_at: float  # epoch seconds
    external_id: str | None


# The Talk Partner Edition `voice_comment` object: from, to, recording_url, started_at (ISO
# 8601), call_duration, answered_by_id, location. `from` is a keyword, so no TypedDict can
# name it: voice data is a plain dict, and the alias keeps signatures honest about it.
VoiceData = dict[str, Any]


# ---- reads ---------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class FindUser:
    """GET a user by id. Result: `UserInfo` or None when it does not exist."""

    key: str
    user_id: int
    zendesk_write = False


@dataclass(frozen=True, slots=True)
class FindUsersByPhone:
    """End users whose phone ends with `digits` (shared numbers left in: the policy skips
    them). Result: list of `UserInfo`."""

    key: str
    digits: str
    zendesk_write = False


@dataclass(frozen=True, slots=True)
class SearchUsers:
    """Users search by email or name (chat identification). Result: list of `UserInfo`."""

    key: str
    field: Literal["email", "name"]
    query: str
    zendesk_write = False


@dataclass(frozen=True, slots=True)
class FindTicket:
    """GET a ticket by id. Result: `TicketInfo` or None when it does not exist."""

    key: str
    ticket_id: int
    zendesk_write = False


class TransferLink(TypedDict):
    """What the lookup of a transfer's initial contact found (see `workflow.transfer`)."""

    ticket: TicketInfo | None
    agent: str | None  # the agent who reported the initial contact first
    refused: str | None  # why the link may not be followed


@dataclass(frozen=True, slots=True)
class FindTransferTicket:
    """The ticket of a transfer's initial contact, if the trust rule allows following it:
    the first reporter's journal record, then tickets with its external_id.
    Result: `TransferLink`."""

    key: str
    initial_contact_id: str
    zendesk_write = False


@dataclass(frozen=True, slots=True)
class FindRecentTickets:
    """Tickets requested by a user, any order. Result: list of `TicketInfo`."""

    key: str
    user_id: int
    zendesk_write = False


# ---- writes --------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class CreateUser:
    """Create an end user. `external_id` (derived from the contact) lets a runner that
    crashed after the request find the user it created without Zendesk search (which lags).
    Result: `UserInfo`."""

    key: str
    name: str
    external_id: str
    phone: str | None = None
    email: str | None = None
    zendesk_write = True

    def record(self, result: Any) -> Any:
        return result


@dataclass(frozen=True, slots=True)
class CreateTicket:
    """Create a ticket with its first (private) comment in one request.

    `voice` uses the Talk Partner Edition endpoint with `via_id` 45/46; otherwise a plain
    ticket. `external_id` is the contact id and `idempotency_key` is derived from contact id
    and step key, so a replay after a crash returns the same ticket. `attributes` are the
    attribute values the body carries (journaled for the changed-attributes rule); `origin`
    what asked for it (auto, forced, or `command:N`, the agent's N-th command), journaled so
    the command that made the ticket is not told it already exists. Result: `TicketInfo`.
    """

    key: str
    subject: str
    body: str
    external_id: str
    idempotency_key: str
    voice: bool
    via_id: int | None = None
    requester_id: int | None = None
    submitter_id: int | None = None
    assignee_id: int | None = None
    details: bool = False
    attributes: dict[str, str] = field(default_factory=dict)
    origin: str = "auto"
    zendesk_write = True

    def record(self, result: Any) -> Any:
        ticket = {k: v for k, v in result.items() if k != "existing"}
        return {
            "ticket": ticket,
            "ticket_id": ticket["id"],
            "details": self.details,
            "attributes": dict(self.attributes),
            "existing": bool(result.get("existing")),
            "origin": self.origin,
        }


@dataclass(frozen=True, slots=True)
class AddComment:
    """Add one private comment to a ticket. `marker` is a line of the body that identifies
    this contact and step, so a retry can tell whether an earlier attempt already landed."""

    key: str
    ticket_id: int
    body: str
    marker: str
    details: bool = False
    analysis: bool = False
    attributes: dict[str, str] = field(default_factory=dict)
    uploads: tuple[str, ...] = ()
    zendesk_write = True

    def record(self, result: Any) -> Any:
        return {
            "ticket_id": self.ticket_id,
            "details": self.details,
            "analysis": self.analysis,
            "attributes": dict(self.attributes),
            "existing": _existing(result),
        }


@dataclass(frozen=True, slots=True)
class AddVoiceComment:
    """Add the Talk Partner voice comment (call facts with embedded recording)."""

    key: str
    ticket_id: int
    data: VoiceData
    zendesk_write = True

    def record(self, result: Any) -> Any:
        return {"ticket_id": self.ticket_id, "existing": _existing(result)}


def _existing(result: Any) -> bool:
    """Whether a write found the contact's own earlier writes on its ticket (the runner then
    checks every later write to that ticket before sending it)."""
    return isinstance(result, dict) and bool(result.get("existing"))


@dataclass(frozen=True, slots=True)
class UpdateUserPhone:
    """Set a recognised caller's phone to the number they called from."""

    key: str
    user_id: int
    phone: str
    zendesk_write = True

    def record(self, result: Any) -> Any:
        return {"user_id": self.user_id, "phone": self.phone}


@dataclass(frozen=True, slots=True)
class UploadRecording:
    """Store the call recording with Zendesk so the link does not expire.
    Result: {"token": str, "content_url": str} or None if the recording was not available."""

    key: str
    source_url: str
    file_name: str
    zendesk_write = True

    def record(self, result: Any) -> Any:
        return result


# ---- Amazon Connect ------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class SetRecording:
    """Suspend (`paused`) or resume the call's recording through Amazon Connect's API.

    Result: {"confirmed": True}, or {"failed": kind, "message": str} when Connect refused for
    good (or no instance is configured). Not a Zendesk write; idempotent at Connect (asking
    for the state the recording is in does nothing), so a retry after a lost reply is
    harmless. Transient failures (throttled past retries, unreachable) are retried later."""

    key: str
    paused: bool
    contact_id: str
    initial_contact_id: str
    zendesk_write = False

    def record(self, result: Any) -> Any:
        return result


# ---- the tabs ------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Report:
    """Something the agent's tabs should learn; the runner batches consecutive reports into
    one `WorkflowReported`. No Zendesk request: pops are done by the owning tab."""

    key: str
    ticket_id: int | None = None
    user_id: int | None = None
    mode: Literal["auto", "agent"] | None = None
    warnings: tuple[str, ...] = ()
    pops: tuple[PopRequest, ...] = ()
    notices: tuple[NoticeRequest, ...] = ()
    recording_paused: bool | None = None  # what Amazon Connect confirmed
    zendesk_write = False


ReadStep = (
    FindUser | FindUsersByPhone | SearchUsers | FindTicket | FindTransferTicket | FindRecentTickets
)
WriteStep = (
    CreateUser | CreateTicket | AddComment | AddVoiceComment | UpdateUserPhone | UploadRecording
)
Step = ReadStep | WriteStep | SetRecording | Report


def record(step: Step, result: Any) -> Any:
    """What the journal keeps for a step's result."""
    if isinstance(result, dict) and "failed" in result:
        return result  # Zendesk refused the step for good: the policy reads the failure
    if isinstance(step, ReadStep):
        return result
    if isinstance(step, Report):
        return {
            "ticket_id": step.ticket_id,
            "user_id": step.user_id,
            "mode": step.mode,
            "warnings": list(step.warnings),
        }
    return step.record(result)


@dataclass(frozen=True, slots=True)
class Plan:
    """What to do next for one contact.

    `steps`: ready now, in order (the runner executes them, journals each, and plans again).
    `done`: nothing more will ever be needed for this contact.
    `waiting`: nothing to do until the contact changes (an event, an agent command).
    `applies`: the contact gets Zendesk work at all (False: monitoring, a refused chat, a
    task or email, a contact that ended without connecting).
    `failures`: the classified reasons of the steps Zendesk refused for good, as planning
    met them (a refused step is never sent again: the contact cannot end `done`).
    """

    steps: tuple[Step, ...]
    done: bool
    waiting: bool
    applies: bool = True
    failures: tuple[str, ...] = ()

    @property
    def status(self) -> tuple[WorkflowStatus, str | None]:
        """Where the contact's Zendesk work stands, and why it failed: `failed` as soon as a
        step is refused for good (later steps still run), else `pending` until the plan is
        done, then `done` (or `none` when the contact got no work)."""
        if self.failures:
            return "failed", self.failures[0]
        if not self.done:
            return "pending", None
        return ("done" if self.applies else "none"), None
