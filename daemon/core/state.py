"""The agent aggregate: everything the daemon knows about one agent's tabs and contacts.

One agent's state is one unit of consistency. Every change to it is a pure function of the old
state (see `daemon.core.agent`), and the store commits the result with a version check, so
tabs spread over several daemons still see one history. It serialises to msgpack for the store.
"""

from typing import Any

import msgpack
from pydantic import BaseModel, Field

from protocol.messages import (
    AssignmentMode,
    ClickToDial,
    ContactEventName,
    ContactType,
    Direction,
    MediaGate,
    Participant,
    Role,
)

# Lifecycle order of Streams events: a late duplicate of an earlier event never moves a
# contact backwards (tabs report the same contact at different times).
EVENT_ORDER: dict[str, int] = {
    "incoming": 0,
    "connecting": 1,
    "accepted": 2,
    "connected": 3,
    "missed": 4,
    "ended": 5,
    "acw": 6,
    "destroyed": 7,
}
FINISHED_EVENTS = frozenset({"missed", "ended", "acw", "destroyed"})


class Tab(BaseModel):
    tab_id: str
    role: Role
    session: str  # private, stable across reconnects of one page
    conn_id: str  # this connection; a late close of an older connection is ignored
    node: str
    connected: bool = True
    connected_at: float
    disconnected_at: float | None = None
    zendesk_user_id: int | None = None  # from the token: who Zendesk pops and assigns go to
    agent_name: str | None = None


class ChatLine(BaseModel):
    message_id: str
    participant: Participant
    name: str | None = None
    text: str
    sent_at: float | None = None


class AgentCommand(BaseModel):
    """An owner's command, kept for the workflow runner to act on in order."""

    name: str
    at: float
    ticket_id: int | None = None
    user_id: int | None = None


class Contact(BaseModel):
    contact_id: str
    initial_contact_id: str | None = None
    type: ContactType = "voice"
    direction: Direction = "inbound"
    is_callback: bool = False
    monitoring: bool = False
    state: ContactEventName
    events_seen: list[str] = Field(default_factory=list)
    event_times: dict[str, float] = Field(default_factory=dict)
    customer_endpoint: str | None = None
    queue: str | None = None
    attributes: dict[str, str] = Field(default_factory=dict)
    agent_name: str | None = None
    routing_profile: str | None = None
    softphone: bool = True
    click_to_dial: ClickToDial | None = None
    analysis: dict[str, str] = Field(default_factory=dict)
    owner_tab: str | None = None
    epoch: int = 0
    grace_until: float | None = None
    mode: AssignmentMode = "auto"
    ticket_id: int | None = None
    user_id: int | None = None
    recording_paused: bool = False
    refused: str | None = None  # e.g. "second_chat": the workflow leaves it alone
    warnings: list[str] = Field(default_factory=list)
    commands: list[AgentCommand] = Field(default_factory=list)
    chat: list[ChatLine] = Field(default_factory=list)
    created_at: float
    finished_at: float | None = None

    @property
    def finished(self) -> bool:
        return self.state in FINISHED_EVENTS

    @property
    def has_workflow(self) -> bool:
        """A supervisor's monitoring leg and a refused second chat never get Zendesk work."""
        return not self.monitoring and self.refused is None


class MediaState(BaseModel):
    media_less: bool
    gate: MediaGate
    signed_in: bool = False
    microphone: bool = False
    in_call: bool = False
    audio_lost: bool = False


class AgentState(BaseModel):
    agent_id: str
    tabs: dict[str, Tab] = Field(default_factory=dict)
    contacts: dict[str, Contact] = Field(default_factory=dict)
    media: MediaState
    published_media: dict[str, Any] | None = None  # last media view sent, to diff against
    # Contacts pruned after retention, and when: Streams re-fires events of old contacts after
    # a CCP reconnects, and those must not bring a finished contact (and its workflow) back.
    forgotten: dict[str, float] = Field(default_factory=dict)

    def zendesk_identity(self) -> tuple[int | None, str | None]:
        """The agent's Zendesk user id and name, as the most recent tab's token gave them."""
        tabs = sorted(self.tabs.values(), key=lambda t: t.connected_at, reverse=True)
        for tab in tabs:
            if tab.zendesk_user_id is not None:
                return tab.zendesk_user_id, tab.agent_name
        return None, next((t.agent_name for t in tabs if t.agent_name), None)

    def to_bytes(self) -> bytes:
        packed: bytes = msgpack.packb(self.model_dump(mode="json"), use_bin_type=True)
        return packed

    @classmethod
    def from_bytes(cls, blob: bytes) -> "AgentState":
        data: Any = msgpack.unpackb(blob, raw=False)
        return cls.model_validate(data)
