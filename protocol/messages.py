"""Every message of the `switchboard.v1` protocol, as pydantic models.

These models are the source of truth for the wire: `switchboard schema` prints their JSON
Schema and `protocol/README.md` describes them for implementers in other languages. Client
messages are validated strictly (unknown fields rejected, sizes bounded) because they come
from browsers we do not control; server messages are trusted.
"""

from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, TypeAdapter, model_validator

from protocol.errors import ErrorCode, ProtocolError

PROTOCOL_VERSION = "switchboard.v1"

# Every value a tab sends is bounded here, at the wire, so nothing downstream (the core, the
# store, the workflow's comment builder) ever meets a value it cannot format or store. These
# are per-message limits; caps across messages (contacts, attributes, chat lines per agent)
# are the core's.
ID_PATTERN = r"^[A-Za-z0-9_.:\-]+$"
ID_MAX_LENGTH = 128
Id = Annotated[str, Field(min_length=1, max_length=ID_MAX_LENGTH, pattern=ID_PATTERN)]
ShortText = Annotated[str, Field(max_length=1024)]
AttributeValue = Annotated[str, Field(max_length=4096)]
LongText = Annotated[str, Field(max_length=16384)]
AnalysisText = Annotated[str, Field(max_length=65536)]  # as big as a frame may be
MAX_ATTRIBUTES = 200
# Integers fit in a JavaScript number and in msgpack's 64 bits (a bigger one would make the
# store's encoder fail on every later commit of the agent).
MAX_SAFE_INTEGER = 2**53 - 1
Count = Annotated[int, Field(ge=0, le=MAX_SAFE_INTEGER)]
PositiveInt = Annotated[int, Field(gt=0, le=MAX_SAFE_INTEGER)]
# Epoch seconds from a tab's clock: finite and within this century at the model level;
# `check_clock` narrows them to what the daemon's clock finds plausible.
LATEST_TIMESTAMP = 4_102_444_800.0  # 2100-01-01T00:00:00Z
Timestamp = Annotated[float, Field(ge=0, le=LATEST_TIMESTAMP, allow_inf_nan=False)]
EARLIEST_PLAUSIBLE = 946_684_800.0  # 2000-01-01T00:00:00Z
FUTURE_SKEW_SECONDS = 86_400.0

# Streams' contact types. An email is neither a call nor a chat: Zendesk's own email channel
# owns its ticket, so the workflow leaves it alone (as a task). Streams' `queue_callback` is
# accepted on the wire and read as what it is for the workflow: a voice call with is_callback.
ContactType = Literal["voice", "chat", "task", "email"]
Direction = Literal["inbound", "outbound"]
# Amazon Connect Streams' contact events, lower-cased (onIncoming -> "incoming", ...).
ContactEventName = Literal[
    "incoming", "connecting", "accepted", "connected", "missed", "ended", "acw", "destroyed"
]
Role = Literal["embedded", "media"]
AssignmentMode = Literal["auto", "agent"]
CommandName = Literal["create_ticket", "attach_to_current", "pause_recording", "resume_recording"]
Participant = Literal["customer", "agent", "bot", "system"]
# `error`: a refusal or failure the agent must act on (a second chat, a recording the agent
# asked to pause that is still recording, Zendesk work that failed for good); `urgent`: act
# now or lose something (the media CCP dropped during a call).
NotifyLevel = Literal["info", "warning", "urgent", "error"]
# Where a contact's Zendesk work stands: `pending` (to do, in progress, or waiting for the
# contact or for Zendesk to come back), `done`, `failed` (with a reason) or `none` (this
# contact gets no Zendesk work: email, task, a supervisor's monitoring leg, a second chat, a
# contact that ended without connecting).
WorkflowStatus = Literal["pending", "done", "failed", "none"]
MediaGate = Literal["warn", "block"]
Confirmation = Literal["confirmed", "unconfirmed", "refused"]


def _empty_map() -> Any:
    """An empty-map default made fresh for each message, not deep-copied from a shared `{}`
    (pydantic copies a mutable default on every validation: microseconds per frame). The
    schema still says the default is `{}`."""
    return Field(default_factory=dict, json_schema_extra={"default": {}})


class _Inbound(BaseModel):
    """Strict base for what tabs send: unknown fields are an error, not silently dropped."""

    model_config = ConfigDict(extra="forbid", frozen=True)


class _Outbound(BaseModel):
    model_config = ConfigDict(frozen=True)


class Position(_Inbound):
    """A place in an agent's stream: `epoch` names the stream's life, `seq` counts in it."""

    epoch: Annotated[str, Field(min_length=1, max_length=64)]
    seq: Count


class ClickToDial(_Inbound):
    """An outbound call started from a Zendesk user or ticket page."""

    kind: Literal["user", "ticket"]
    id: PositiveInt


class ContactSnapshot(_Inbound):
    """What an embedded CCP knows about a contact when it reports an event."""

    contact_id: Id
    initial_contact_id: Id | None = None
    type: ContactType = "voice"
    direction: Direction = "inbound"
    is_callback: bool = False
    monitoring: bool = False
    customer_endpoint: Annotated[str, Field(max_length=256)] | None = None
    queue: ShortText | None = None
    attributes: Annotated[dict[ShortText, AttributeValue], Field(max_length=MAX_ATTRIBUTES)] = (
        _empty_map()
    )
    agent_name: ShortText | None = None
    routing_profile: ShortText | None = None
    softphone: bool = True
    click_to_dial: ClickToDial | None = None
    # Results of Contact Lens / speech analysis, carried on the ended event.
    analysis: dict[Literal["transcript", "comprehend", "sentiment"], AnalysisText] = _empty_map()
    occurred_at: Timestamp | None = None  # the tab's clock; informative only

    @model_validator(mode="before")
    @classmethod
    def _callback_is_a_call(cls, data: Any) -> Any:
        if isinstance(data, dict) and data.get("type") == "queue_callback":
            return {**data, "type": "voice", "is_callback": True}
        return data


# ---- tab -> daemon -------------------------------------------------------------------------


class Hello(_Inbound):
    type: Literal["hello"] = "hello"
    token: Annotated[str, Field(min_length=1, max_length=4096)]
    tab_id: Id | None = None
    session: Id | None = None  # private id from the last `welcome`, kept in page memory only
    role: Role = "embedded"
    resume: Position | None = None
    client_version: ShortText = "unknown"
    media_less: bool | None = None  # overrides the configured media-less mode for this agent


class ContactEvent(_Inbound):
    type: Literal["contact_event"] = "contact_event"
    event: ContactEventName
    contact: ContactSnapshot
    ref: Id | None = None


class ChatMessage(_Inbound):
    type: Literal["chat_message"] = "chat_message"
    contact_id: Id
    message_id: Id  # deduplicates the same message reported by several tabs
    participant: Participant
    name: ShortText | None = None
    text: LongText
    sent_at: Timestamp | None = None
    ref: Id | None = None


class Command(_Inbound):
    type: Literal["command"] = "command"
    name: CommandName
    contact_id: Id
    epoch: PositiveInt  # the ownership epoch the tab acts under
    ticket_id: PositiveInt | None = None  # attach_to_current: the open ticket
    user_id: PositiveInt | None = None  # create_ticket: the open user
    ref: Id | None = None


class MediaStatus(_Inbound):
    """Sent by the media CCP (role `media`) whenever its softphone readiness changes."""

    type: Literal["media_status"] = "media_status"
    microphone: bool
    signed_in: bool
    in_call: bool = False
    audio_lost: bool = False
    ref: Id | None = None


ClientMessage = Annotated[
    Hello | ContactEvent | ChatMessage | Command | MediaStatus, Field(discriminator="type")
]
CLIENT_MESSAGE: TypeAdapter[ClientMessage] = TypeAdapter(ClientMessage)


def check_clock(message: ClientMessage, now: float) -> None:
    """Refuse a tab timestamp the daemon's clock finds implausible (the shell passes `now`).

    The models already refuse NaN, infinities and absurd years; this narrows a timestamp to
    2000-01-01 .. now + 1 day, so a tab with a broken clock cannot put a far-future time
    into a contact's history, where it would be formatted into Zendesk comments.
    """
    match message:
        case ContactEvent(contact=ContactSnapshot(occurred_at=float() as when)):
            field = "contact.occurred_at"
        case ChatMessage(sent_at=float() as when):
            field = "sent_at"
        case _:
            return
    if not EARLIEST_PLAUSIBLE <= when <= now + FUTURE_SKEW_SECONDS:
        raise ProtocolError(
            ErrorCode.INVALID_MESSAGE,
            f"{message.type}: {field}: {when} is not a time between 2000-01-01 and tomorrow",
            message.ref,
        )


# ---- daemon -> tab -------------------------------------------------------------------------


class ContactView(_Outbound):
    """The daemon's merged view of one contact, as every tab of the agent sees it."""

    contact_id: str
    initial_contact_id: str | None = None
    type: ContactType
    direction: Direction
    state: ContactEventName
    customer_endpoint: str | None = None
    queue: str | None = None
    # Absent (None) while the owner is gone and no tab can take over: fields without a value
    # are left out of every message the daemon sends.
    owner_tab: str | None = None
    epoch: int  # ownership epoch; only grows
    grace_until: float | None = None  # set while the owner is disconnected
    mode: AssignmentMode = "auto"
    ticket_id: int | None = None
    user_id: int | None = None
    recording_paused: bool = False
    warnings: tuple[str, ...] = ()
    workflow: WorkflowStatus = "pending"
    # Why `workflow` is `failed`: the classified failure (`forbidden`, `invalid`,
    # `unauthorized`, `planning_failed`, ...).
    workflow_reason: str | None = None
    # Amazon Connect's word on the contact (only where an instance is configured): confirmed,
    # unconfirmed (Connect could not be asked: believed on the tabs' word for now), refused.
    confirmation: Confirmation | None = None


class MediaView(_Outbound):
    media_less: bool
    present: bool  # a media CCP is connected
    ready: bool  # ... signed in, with microphone, audio not lost
    gate: MediaGate
    active_contact: str | None = None


class Welcome(_Outbound):
    type: Literal["welcome"] = "welcome"
    agent_id: str
    tab_id: str
    tab_id_reassigned: bool  # the presented id was live elsewhere (a duplicated tab)
    session: str
    resumed: bool  # True: the missed messages follow, marked replayed; False: a snapshot follows
    position: Position  # the stream head when this connection started
    server_version: str = PROTOCOL_VERSION


class _Streamed(_Outbound):
    """Messages that live in the agent's stream carry their position and a replay mark."""

    pos: Position | None = None
    replayed: bool = False


class ContactMessage(_Streamed):
    type: Literal["contact"] = "contact"
    contact: ContactView


class Pop(_Streamed):
    """Open a user, ticket or search in Zendesk; sent to the owning tab only."""

    type: Literal["pop"] = "pop"
    contact_id: str
    target: Literal["user", "ticket", "search"]
    id: int | None = None
    query: str | None = None


class Notify(_Streamed):
    type: Literal["notify"] = "notify"
    contact_id: str | None = None
    level: NotifyLevel
    code: str
    text: str


class Media(_Streamed):
    type: Literal["media"] = "media"
    media: MediaView


class Forget(_Streamed):
    """Finished contacts the daemon no longer keeps: drop them from the view."""

    type: Literal["forget"] = "forget"
    contact_ids: tuple[str, ...]


class Snapshot(_Streamed):
    """The whole agent view, sent instead of a replay when the gap cannot be recovered."""

    type: Literal["snapshot"] = "snapshot"
    contacts: tuple[ContactView, ...]
    media: MediaView


class Error(_Outbound):
    type: Literal["error"] = "error"
    code: ErrorCode
    message: str
    ref: str | None = None


StreamedMessage = Annotated[
    ContactMessage | Pop | Notify | Media | Forget, Field(discriminator="type")
]
STREAMED_MESSAGE: TypeAdapter[StreamedMessage] = TypeAdapter(StreamedMessage)
ServerMessage = Annotated[
    Welcome | ContactMessage | Pop | Notify | Media | Forget | Snapshot | Error,
    Field(discriminator="type"),
]
SERVER_MESSAGE: TypeAdapter[ServerMessage] = TypeAdapter(ServerMessage)


def json_schema() -> dict[str, Any]:
    """The published schema: both directions, for `switchboard schema` and the docs."""
    return {
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "title": PROTOCOL_VERSION,
        "client_to_daemon": CLIENT_MESSAGE.json_schema(),
        "daemon_to_client": SERVER_MESSAGE.json_schema(),
    }
