"""In-memory records of the simulated Zendesk account.

Plain mutable dataclasses: the sandbox's operations (``state.py``) change them, ``render.py``
turns them into the JSON shapes of Zendesk's OpenAPI description. Times are float seconds so
that ordering is exact even when several objects are created within the same second (Zendesk
renders whole seconds).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal

Role = Literal["end-user", "agent", "admin"]
TicketStatus = Literal["new", "open", "pending", "hold", "solved", "closed"]
TICKET_STATUSES: tuple[str, ...] = ("new", "open", "pending", "hold", "solved", "closed")


@dataclass
class UserRecord:
    """A Zendesk user: an end user (customer) or an agent/admin."""

    id: int
    name: str
    created_at: float
    updated_at: float
    role: Role = "end-user"
    email: str | None = None
    phone: str | None = None
    shared_phone_number: bool = False
    external_id: str | None = None
    verified: bool = False
    locale: str = "en-US"
    time_zone: str = "UTC"
    tags: list[str] = field(default_factory=list)
    notes: str = ""
    details: str = ""
    active: bool = True


@dataclass
class AttachmentRecord:
    """A file stored through ``POST /api/v2/uploads``."""

    id: int
    token: str
    file_name: str
    content_type: str
    content: bytes
    created_at: float

    @property
    def size(self) -> int:
        return len(self.content)


@dataclass
class CommentRecord:
    """A ticket comment; voice comments carry the call facts in ``data``."""

    id: int
    ticket_id: int
    author_id: int
    body: str
    html_body: str
    public: bool
    created_at: float
    audit_id: int
    type: Literal["Comment", "VoiceComment"] = "Comment"
    via_channel: str = "api"
    via_rel: str | None = None
    data: dict[str, Any] | None = None
    attachments: list[AttachmentRecord] = field(default_factory=list)


@dataclass
class TicketRecord:
    """A ticket and its comments (the first comment is the description)."""

    id: int
    subject: str
    requester_id: int
    submitter_id: int
    created_at: float
    updated_at: float
    status: TicketStatus = "new"
    assignee_id: int | None = None
    external_id: str | None = None
    priority: str | None = None
    type: str | None = None
    tags: list[str] = field(default_factory=list)
    via_channel: str = "api"
    via_source: dict[str, Any] = field(default_factory=dict)
    comments: list[CommentRecord] = field(default_factory=list)

    @property
    def description(self) -> str:
        return self.comments[0].body if self.comments else ""


@dataclass(frozen=True)
class PopRecord:
    """One "display in the agent's browser" instruction (Talk Partner Edition)."""

    agent_id: int
    kind: Literal["ticket", "user"]
    target_id: int
    at: float
    source: Literal["display", "display_to_agent"]
