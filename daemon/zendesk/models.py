"""Typed views of the Zendesk objects the workflow reads and writes.

Answers are parsed leniently (unknown fields ignored, most fields optional) because Zendesk
adds fields over time and omits empty ones; inputs are strict and serialise to exactly the JSON
that Zendesk's OpenAPI description accepts (no read-only fields such as ``via``).
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

TicketStatus = Literal["new", "open", "pending", "hold", "solved", "closed"]
#: Talk Partner Edition via ids.
VIA_VOICEMAIL = 44
VIA_INBOUND_CALL = 45
VIA_OUTBOUND_CALL = 46


def zendesk_time(value: datetime) -> str:
    """ISO 8601 in UTC with a ``Z``, as Zendesk writes timestamps."""
    if value.tzinfo is None:
        value = value.replace(tzinfo=UTC)
    return value.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


class _Answer(BaseModel):
    model_config = ConfigDict(extra="ignore", frozen=True)


class _Input(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)


# --------------------------------------------------------------------------- answers


class User(_Answer):
    id: int
    name: str
    email: str | None = None
    phone: str | None = None
    shared_phone_number: bool | None = None
    role: str = "end-user"
    external_id: str | None = None
    locale: str | None = None
    time_zone: str | None = None
    url: str | None = None
    created_at: datetime | None = None
    updated_at: datetime | None = None


class Via(_Answer):
    channel: str | None = None
    source: dict[str, Any] = Field(default_factory=dict)


class Ticket(_Answer):
    id: int
    requester_id: int
    subject: str | None = None
    description: str | None = None
    status: TicketStatus = "new"
    submitter_id: int | None = None
    assignee_id: int | None = None
    external_id: str | None = None
    priority: str | None = None
    tags: list[str] = Field(default_factory=list)
    via: Via | None = None
    url: str | None = None
    created_at: datetime | None = None
    updated_at: datetime | None = None


class Attachment(_Answer):
    id: int
    file_name: str
    content_url: str
    content_type: str | None = None
    size: int | None = None


class Comment(_Answer):
    id: int
    author_id: int
    type: str = "Comment"
    body: str = ""
    html_body: str | None = None
    plain_body: str | None = None
    public: bool = True
    data: dict[str, Any] | None = None
    attachments: list[Attachment] = Field(default_factory=list)
    created_at: datetime | None = None


class Upload(_Answer):
    token: str
    attachment: Attachment | None = None
    attachments: list[Attachment] = Field(default_factory=list)


class CreatedTicket(_Answer):
    """The result of a ticket creation."""

    ticket: Ticket
    #: Zendesk answered from its idempotency store (``x-idempotency-lookup: hit``).
    replayed: bool = False
    #: The ticket was opened in the agent's browser by Zendesk (Talk Partner Edition).
    displayed: bool = False
    #: Created through the Talk Partner Edition endpoint (else the plain tickets endpoint).
    talk_partner: bool = False


# --------------------------------------------------------------------------- inputs


class VoiceComment(_Input):
    """The call facts Zendesk shows as a voice comment (recording must be MP3 or WAV)."""

    from_: str = Field(alias="from")
    to: str
    started_at: datetime
    call_duration: int = Field(ge=0)
    recording_url: str | None = None
    answered_by_id: int | None = None
    transcription_text: str | None = None
    location: str | None = None

    def to_api(self) -> dict[str, Any]:
        doc: dict[str, Any] = {
            "from": self.from_,
            "to": self.to,
            "started_at": zendesk_time(self.started_at),
            "call_duration": self.call_duration,
            "recording_url": self.recording_url,
            "answered_by_id": self.answered_by_id,
            "transcription_text": self.transcription_text,
            "location": self.location,
        }
        return {k: v for k, v in doc.items() if v is not None}


class NewComment(_Input):
    """A comment to add; ``html`` says whether ``body`` is HTML."""

    body: str = Field(min_length=1)
    html: bool = False
    public: bool = False
    author_id: int | None = None
    uploads: list[str] = Field(default_factory=list)

    def to_api(self) -> dict[str, Any]:
        doc: dict[str, Any] = {"html_body" if self.html else "body": self.body}
        doc["public"] = self.public
        if self.author_id is not None:
            doc["author_id"] = self.author_id
        if self.uploads:
            doc["uploads"] = list(self.uploads)
        return doc


class NewTicket(_Input):
    """A ticket to create. ``external_id`` links it to our record (the contact id)."""

    subject: str
    comment: NewComment
    requester_id: int | None = None
    submitter_id: int | None = None
    assignee_id: int | None = None
    external_id: str | None = None
    via_id: int | None = None
    status: TicketStatus | None = None
    priority: Literal["urgent", "high", "normal", "low"] | None = None
    tags: list[str] = Field(default_factory=list)
    voice_comment: VoiceComment | None = None

    def to_api(self) -> dict[str, Any]:
        doc: dict[str, Any] = {
            "subject": self.subject,
            "comment": self.comment.to_api(),
            "requester_id": self.requester_id,
            "submitter_id": self.submitter_id,
            "assignee_id": self.assignee_id,
            "external_id": self.external_id,
            "via_id": self.via_id,
            "status": self.status,
            "priority": self.priority,
            "tags": list(self.tags) or None,
            "voice_comment": self.voice_comment.to_api() if self.voice_comment else None,
        }
        return {k: v for k, v in doc.items() if v is not None}


class TicketUpdate(_Input):
    """Fields to change on a ticket (None = leave as is)."""

    status: TicketStatus | None = None
    requester_id: int | None = None
    assignee_id: int | None = None
    subject: str | None = None
    external_id: str | None = None
    tags: list[str] | None = None
    comment: NewComment | None = None
    voice_comment: VoiceComment | None = None

    def to_api(self) -> dict[str, Any]:
        doc: dict[str, Any] = {
            "status": self.status,
            "requester_id": self.requester_id,
            "assignee_id": self.assignee_id,
            "subject": self.subject,
            "external_id": self.external_id,
            "tags": self.tags,
            "comment": self.comment.to_api() if self.comment else None,
            "voice_comment": self.voice_comment.to_api() if self.voice_comment else None,
        }
        return {k: v for k, v in doc.items() if v is not None}


class NewUser(_Input):
    """An end user to create (the caller or chat customer)."""

    name: str = Field(min_length=1)
    phone: str | None = None
    email: str | None = None
    external_id: str | None = None
    role: Literal["end-user", "agent", "admin"] = "end-user"
    locale: str | None = None
    verified: bool | None = None

    def to_api(self) -> dict[str, Any]:
        doc = self.model_dump(exclude_none=True)
        return doc
