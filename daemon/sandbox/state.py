"""The simulated Zendesk account: its objects and the rules that change them.

``Sandbox`` is deliberately free of HTTP: handlers translate requests into these operations,
and tests (or the daemon's demo page) can call the same operations or inspect the state
directly through ``app[SANDBOX_KEY]``. Operations raise :class:`ApiError` with the status and
body Zendesk would answer.
"""

from __future__ import annotations

import itertools
import secrets
from collections import Counter
from typing import Any, Literal

from daemon.sandbox import render
from daemon.sandbox.clock import Clock, iso
from daemon.sandbox.config import SandboxConfig
from daemon.sandbox.errors import ApiError, invalid, not_found
from daemon.sandbox.faults import FaultInjector
from daemon.sandbox.idempotency import IdempotencyStore
from daemon.sandbox.limits import SlidingWindow, TicketUpdateLimiter
from daemon.sandbox.payload import (
    html_to_text,
    opt_bool,
    opt_int,
    opt_obj,
    opt_str,
    opt_str_list,
    text_to_html,
)
from daemon.sandbox.recorder import Exchange
from daemon.sandbox.records import (
    TICKET_STATUSES,
    AttachmentRecord,
    CommentRecord,
    PopRecord,
    Role,
    TicketRecord,
    TicketStatus,
    UserRecord,
)
from daemon.sandbox.search import Doc, Kind, SearchIndex, parse_query, query_kind
from daemon.sandbox.security import AccessToken, RefreshToken, TokenRegistry
from daemon.sandbox.talk import TALK_VIA_IDS, via_for, voice_body, voice_data

ROLES: tuple[Role, ...] = ("end-user", "agent", "admin")


class Sandbox:
    """All state of one simulated account."""

    def __init__(self, config: SandboxConfig | None = None, clock: Clock | None = None) -> None:
        self.config = config or SandboxConfig()
        self.clock = clock or Clock()
        self.users: dict[int, UserRecord] = {}
        self.tickets: dict[int, TicketRecord] = {}
        self.uploads: dict[str, list[AttachmentRecord]] = {}
        self.pops: list[PopRecord] = []
        #: app installations (the Apps API): id -> installation as Zendesk renders it
        self.installations: dict[int, dict[str, Any]] = {}
        self.idempotency = IdempotencyStore()
        self.index = SearchIndex()
        self.faults = FaultInjector()
        self.tokens = TokenRegistry()
        self.account_window = SlidingWindow(60.0)
        self.ticket_updates = TicketUpdateLimiter()
        #: API requests by ``"METHOD /path/{template}"``.
        self.requests: Counter[str] = Counter()
        self.exchanges: list[Exchange] = []
        self.reset()

    # ------------------------------------------------------------------ lifecycle

    def reset(self) -> None:
        """Back to a fresh account: only the configured agents and initial tokens exist."""
        self._ids = itertools.count(10_001)
        self.users.clear()
        self.tickets.clear()
        self.uploads.clear()
        self.pops.clear()
        self.installations.clear()
        self.idempotency.clear()
        self.index.clear()
        self.faults.clear()
        self.tokens.clear()
        self.account_window.clear()
        self.ticket_updates.clear()
        self.requests.clear()
        self.exchanges.clear()
        for cred in self.config.credentials:
            self.create_user(
                name=cred.name, email=cred.email, role=cred.role, verified=True, indexed=True
            )
        first = self.agent_ids()[0] if self.config.credentials else None
        if first is not None:
            for token in self.config.static_access_tokens:
                self.tokens.access[token] = _static(first)
            client = self.config.oauth_clients[0].client_id if self.config.oauth_clients else ""
            for refresh in self.config.initial_refresh_tokens:
                self.tokens.refresh[refresh] = RefreshToken(first, client)

    def now(self) -> float:
        return self.clock.now()

    def _next_id(self) -> int:
        return next(self._ids)

    def _visible_at(self, immediately: bool) -> float:
        return self.now() if immediately else self.now() + self.config.search_index_delay

    # ------------------------------------------------------------------ users

    def agent_ids(self) -> list[int]:
        return [u.id for u in self.users.values() if u.role in ("agent", "admin")]

    def user_by_email(self, email: str) -> UserRecord | None:
        wanted = email.lower()
        return next((u for u in self.users.values() if (u.email or "").lower() == wanted), None)

    def get_user(self, user_id: int) -> UserRecord:
        found = self.users.get(user_id)
        if found is None:
            raise not_found()
        return found

    def create_user(
        self,
        *,
        name: str,
        email: str | None = None,
        phone: str | None = None,
        role: Role = "end-user",
        shared_phone_number: bool = False,
        external_id: str | None = None,
        verified: bool = False,
        tags: list[str] | None = None,
        notes: str = "",
        indexed: bool = False,
    ) -> UserRecord:
        """Create a user; ``indexed`` makes it searchable at once (seeding)."""
        if not name.strip():
            raise invalid("name", "Name: is too short (minimum is 1 character)", "BlankValue")
        if email is not None and self.user_by_email(email) is not None:
            raise invalid(
                "email", f"Email: {email} is already being used by another user", "DuplicateValue"
            )
        if external_id is not None and any(
            u.external_id == external_id for u in self.users.values()
        ):
            raise invalid("external_id", "External: has already been taken", "DuplicateValue")
        now = self.now()
        user = UserRecord(
            id=self._next_id(),
            name=name,
            email=email,
            phone=phone,
            role=role,
            shared_phone_number=shared_phone_number,
            external_id=external_id,
            verified=verified,
            tags=list(tags or []),
            notes=notes,
            created_at=now,
            updated_at=now,
        )
        self.users[user.id] = user
        self.index.put("user", user, self._visible_at(indexed))
        return user

    def create_user_from(self, doc: dict[str, Any], *, indexed: bool = False) -> UserRecord:
        """Create a user from a Zendesk ``user`` input object."""
        role = opt_str(doc, "role") or "end-user"
        if role not in ROLES:
            raise invalid("role", f"Role: {role} is not a valid role")
        return self.create_user(
            name=opt_str(doc, "name") or "",
            email=opt_str(doc, "email"),
            phone=opt_str(doc, "phone"),
            role=_role(role),
            shared_phone_number=bool(opt_bool(doc, "shared_phone_number")),
            external_id=opt_str(doc, "external_id"),
            verified=bool(opt_bool(doc, "verified")),
            tags=opt_str_list(doc, "tags"),
            notes=opt_str(doc, "notes") or "",
            indexed=indexed,
        )

    def update_user(self, user_id: int, doc: dict[str, Any]) -> UserRecord:
        """Apply a Zendesk ``user`` input object to an existing user."""
        user = self.get_user(user_id)
        if "name" in doc:
            name = opt_str(doc, "name") or ""
            if not name.strip():
                raise invalid("name", "Name: is too short (minimum is 1 character)", "BlankValue")
            user.name = name
        if "email" in doc:
            email = opt_str(doc, "email")
            other = self.user_by_email(email) if email else None
            if other is not None and other.id != user.id:
                raise invalid("email", f"Email: {email} is already being used by another user")
            user.email = email
        if "phone" in doc:
            user.phone = opt_str(doc, "phone")
        if "shared_phone_number" in doc:
            user.shared_phone_number = bool(opt_bool(doc, "shared_phone_number"))
        if "external_id" in doc:
            user.external_id = opt_str(doc, "external_id")
        if "role" in doc:
            role = opt_str(doc, "role") or "end-user"
            if role not in ROLES:
                raise invalid("role", f"Role: {role} is not a valid role")
            user.role = _role(role)
        if "notes" in doc:
            user.notes = opt_str(doc, "notes") or ""
        if "tags" in doc:
            user.tags = opt_str_list(doc, "tags") or []
        if "verified" in doc:
            user.verified = bool(opt_bool(doc, "verified"))
        user.updated_at = self.now()
        self.index.put("user", user, self._visible_at(False))
        return user

    def users_where(self, *, external_id: str | None, role: str | None) -> list[UserRecord]:
        """``GET /api/v2/users`` filters (read from the database: no indexing lag)."""
        found = sorted(self.users.values(), key=lambda u: u.id)
        if external_id is not None:
            found = [u for u in found if u.external_id == external_id]
        if role is not None:
            found = [u for u in found if u.role == role]
        return found

    # ------------------------------------------------------------------ tickets

    def get_ticket(self, ticket_id: int) -> TicketRecord:
        found = self.tickets.get(ticket_id)
        if found is None:
            raise not_found()
        return found

    def tickets_by_external_id(self, external_id: str) -> list[TicketRecord]:
        return [t for t in self.tickets.values() if t.external_id == external_id]

    def tickets_requested_by(self, user_id: int) -> list[TicketRecord]:
        self.get_user(user_id)
        return [t for t in self.tickets.values() if t.requester_id == user_id]

    def _require_user(self, field: str, user_id: int) -> UserRecord:
        user = self.users.get(user_id)
        if user is None:
            raise invalid(field, f"{_label(field)}: is invalid", "InvalidValue")
        return user

    def _require_agent(self, field: str, user_id: int) -> UserRecord:
        user = self._require_user(field, user_id)
        if user.role == "end-user":
            raise invalid(field, f"{_label(field)}: is not an agent", "InvalidValue")
        return user

    def _requester_from(self, doc: dict[str, Any], default: int) -> int:
        requester_id = opt_int(doc, "requester_id")
        if requester_id is not None:
            return self._require_user("requester_id", requester_id).id
        requester = opt_obj(doc, "requester")
        if requester is None:
            return default
        email = opt_str(requester, "email")
        existing = self.user_by_email(email) if email else None
        if existing is not None:
            return existing.id
        return self.create_user_from({**requester, "role": "end-user"}).id

    def create_ticket(
        self,
        doc: dict[str, Any],
        *,
        caller_id: int,
        talk: bool = False,
    ) -> TicketRecord:
        """Create a ticket from a Zendesk ``ticket`` input object.

        ``talk`` is the Talk Partner Edition endpoint, which requires a voice via_id and takes
        the first comment from ``voice_comment`` when no ``comment`` is given.
        """
        via_id = opt_int(doc, "via_id")
        if talk and via_id not in TALK_VIA_IDS:
            raise invalid("via_id", "via_id: must be one of 44, 45 or 46", "InvalidValue")
        channel, rel = via_for(via_id)
        comment_doc = opt_obj(doc, "comment")
        voice_doc = opt_obj(doc, "voice_comment")
        if comment_doc is None and (voice_doc is None or not talk):
            # Only the Talk Partner endpoint may take its first comment from voice_comment.
            raise invalid("description", "Description: cannot be blank", "BlankValue")
        if comment_doc is not None and not (
            opt_str(comment_doc, "body") or opt_str(comment_doc, "html_body")
        ):
            raise invalid("description", "Description: cannot be blank", "BlankValue")
        if via_id == 44 and voice_doc is None:
            raise invalid("voice_comment", "Voice comment: is required for voicemail")

        submitter_id = opt_int(doc, "submitter_id")
        submitter = self._require_user("submitter_id", submitter_id or caller_id).id
        requester = self._requester_from(doc, default=caller_id)
        assignee_id = opt_int(doc, "assignee_id")
        if assignee_id is not None:
            self._require_agent("assignee_id", assignee_id)
        status = self._status(opt_str(doc, "status"), assignee_id, default="new")
        now = self.now()
        voice_preview = voice_data(voice_doc, None) if voice_doc is not None else {}
        ticket = TicketRecord(
            id=self._next_id(),
            subject=opt_str(doc, "subject") or "",
            requester_id=requester,
            submitter_id=submitter,
            assignee_id=assignee_id,
            status=status,
            external_id=opt_str(doc, "external_id"),
            priority=opt_str(doc, "priority"),
            type=opt_str(doc, "type"),
            tags=opt_str_list(doc, "tags") or [],
            via_channel=channel,
            via_source=_via_source(rel, voice_preview),
            created_at=now,
            updated_at=now,
        )
        audit_id = self._next_id()
        if comment_doc is not None:
            ticket.comments.append(
                self._comment(ticket, comment_doc, default_author=submitter, audit_id=audit_id)
            )
        if voice_doc is not None:
            ticket.comments.append(self._voice_comment(ticket, voice_doc, rel, audit_id))
        if not ticket.subject:
            ticket.subject = ticket.description.splitlines()[0][:80] if ticket.description else ""
        self.tickets[ticket.id] = ticket
        self.index.put("ticket", ticket, self._visible_at(False))
        return ticket

    def update_ticket(
        self, ticket_id: int, doc: dict[str, Any], *, caller_id: int
    ) -> tuple[TicketRecord, dict[str, Any]]:
        """Apply a Zendesk ``ticket`` input object; returns the ticket and its audit."""
        ticket = self.get_ticket(ticket_id)
        limit = self.config.ticket_updates_per_10_minutes
        if limit is not None:
            wait = self.ticket_updates.try_take(ticket.id, caller_id, self.now(), limit)
            if wait is not None:
                raise ApiError(
                    429,
                    "TooManyRequests",
                    "Ticket update rate limit exceeded for this ticket",
                    headers={"Retry-After": str(wait)},
                )
        if ticket.status == "closed":
            raise invalid("status", "Status: closed prevents ticket update", "ClosedTicket")
        if opt_bool(doc, "safe_update"):
            stamp = opt_str(doc, "updated_stamp")
            if stamp != iso(ticket.updated_at):
                raise ApiError(
                    409,
                    "UpdateConflict",
                    "Safe Update prevented the update due to outdated ticket data. "
                    "Please fetch the latest ticket data and try again.",
                )

        audit_id = self._next_id()
        events: list[dict[str, Any]] = []

        def change(field: str, old: Any, new: Any) -> None:
            if old != new:
                event = {"id": self._next_id(), "type": "Change", "field_name": field}
                if new is not None:
                    event["value"] = new
                if old is not None:
                    event["previous_value"] = old
                events.append(event)

        if "requester_id" in doc or "requester" in doc:
            new_requester = self._requester_from(doc, default=ticket.requester_id)
            change("requester_id", ticket.requester_id, new_requester)
            ticket.requester_id = new_requester
        if "assignee_id" in doc:
            assignee_id = opt_int(doc, "assignee_id")
            if assignee_id is not None:
                self._require_agent("assignee_id", assignee_id)
            change("assignee_id", ticket.assignee_id, assignee_id)
            ticket.assignee_id = assignee_id
        for field in ("subject", "external_id", "priority", "type"):
            if field in doc:
                value = opt_str(doc, field)
                change(field, getattr(ticket, field), value)
                setattr(ticket, field, value if field != "subject" else value or ticket.subject)
        if "tags" in doc:
            tags = opt_str_list(doc, "tags") or []
            change("tags", " ".join(ticket.tags), " ".join(tags))
            ticket.tags = tags
        new_status = self._status(opt_str(doc, "status"), ticket.assignee_id, default=ticket.status)
        if new_status == "new" and ticket.assignee_id is not None:
            new_status = "open"
        change("status", ticket.status, new_status)
        ticket.status = new_status

        comment_doc = opt_obj(doc, "comment")
        if comment_doc is not None:
            if not (opt_str(comment_doc, "body") or opt_str(comment_doc, "html_body")):
                raise invalid("comment", "Comment: cannot be blank", "BlankValue")
            added = self._comment(ticket, comment_doc, default_author=caller_id, audit_id=audit_id)
            ticket.comments.append(added)
            events.append(
                {"id": added.id, "type": "Comment", "body": added.body, "public": added.public}
            )
        voice_doc = opt_obj(doc, "voice_comment")
        if voice_doc is not None:
            rel = ticket.via_source.get("rel") if ticket.via_channel == "voice" else "inbound"
            voice = self._voice_comment(ticket, voice_doc, rel, audit_id)
            ticket.comments.append(voice)
            events.append({"id": voice.id, "type": "VoiceComment", "body": voice.body})

        ticket.updated_at = self.now()
        self.index.put("ticket", ticket, self._visible_at(False))
        audit = {
            "id": audit_id,
            "ticket_id": ticket.id,
            "author_id": caller_id,
            "created_at": iso(ticket.updated_at),
            "via": render.via("api"),
            "metadata": {"system": {"client": "switchboard-sandbox"}, "custom": {}},
            "events": events,
        }
        return ticket, audit

    def _status(self, value: str | None, assignee_id: int | None, default: str) -> TicketStatus:
        if value is None:
            chosen = "open" if default == "new" and assignee_id is not None else default
        else:
            chosen = value
        if chosen not in TICKET_STATUSES:
            raise invalid("status", f"Status: {chosen} is not valid", "InvalidValue")
        if chosen in ("solved", "closed") and assignee_id is None:
            raise invalid("assignee_id", "Assignee: is required when solving a ticket")
        return _ticket_status(chosen)

    def _comment(
        self, ticket: TicketRecord, doc: dict[str, Any], *, default_author: int, audit_id: int
    ) -> CommentRecord:
        html_body = opt_str(doc, "html_body")
        body = opt_str(doc, "body")
        if html_body:
            plain = html_to_text(html_body)
            markup = html_body
        else:
            plain = body or ""
            markup = text_to_html(plain)
        author = self._require_user("author_id", opt_int(doc, "author_id") or default_author)
        public = opt_bool(doc, "public")
        attachments: list[AttachmentRecord] = []
        for token in opt_str_list(doc, "uploads") or []:
            # Zendesk silently ignores unknown tokens; a used token is consumed.
            attachments.extend(self.uploads.pop(token, []))
        return CommentRecord(
            id=self._next_id(),
            ticket_id=ticket.id,
            author_id=author.id,
            body=plain,
            html_body=markup,
            public=True if public is None else public,
            created_at=self.now(),
            audit_id=audit_id,
            via_channel="api",
            attachments=attachments,
        )

    def _voice_comment(
        self, ticket: TicketRecord, doc: dict[str, Any], rel: str | None, audit_id: int
    ) -> CommentRecord:
        answered_by = opt_int(doc, "answered_by_id")
        agent = self._require_agent("answered_by_id", answered_by) if answered_by else None
        data = voice_data(doc, agent.name if agent else None)
        body = voice_body(data, rel)
        return CommentRecord(
            id=self._next_id(),
            ticket_id=ticket.id,
            author_id=agent.id if agent else ticket.requester_id,
            type="VoiceComment",
            body=body,
            html_body=text_to_html(body),
            public=False,
            created_at=self.now(),
            audit_id=audit_id,
            via_channel="voice",
            via_rel=rel,
            data=data,
        )

    # ------------------------------------------------------------------ talk partner edition

    def display(
        self,
        agent_id: int,
        kind: Literal["ticket", "user"],
        target_id: int,
        source: Literal["display", "display_to_agent"] = "display",
    ) -> PopRecord:
        """Record an "open this in the agent's browser" instruction."""
        agent = self.users.get(agent_id)
        exists = (self.tickets if kind == "ticket" else self.users).get(target_id) is not None
        if agent is None or agent.role == "end-user" or not exists:
            raise ApiError(404, "", raw_body="")
        pop = PopRecord(agent_id, kind, target_id, self.now(), source)
        self.pops.append(pop)
        return pop

    def pops_for(self, agent_id: int) -> list[PopRecord]:
        return [p for p in self.pops if p.agent_id == agent_id]

    # ------------------------------------------------------------------ uploads

    def upload(
        self, file_name: str, content_type: str, content: bytes, token: str | None = None
    ) -> tuple[str, AttachmentRecord]:
        if not file_name:
            raise invalid("filename", "Filename: cannot be blank", "BlankValue")
        if token is None or token not in self.uploads:
            token = secrets.token_urlsafe(12)
            self.uploads[token] = []
        attachment = AttachmentRecord(
            id=self._next_id(),
            token=token,
            file_name=file_name,
            content_type=content_type,
            content=content,
            created_at=self.now(),
        )
        self.uploads[token].append(attachment)
        return token, attachment

    def attachment_by_token(self, token: str) -> AttachmentRecord | None:
        for attachments in self.uploads.values():
            for a in attachments:
                if a.token == token:
                    return a
        for ticket in self.tickets.values():
            for comment in ticket.comments:
                for a in comment.attachments:
                    if a.token == token:
                        return a
        return None

    # ------------------------------------------------------------------ search

    def search(
        self,
        query: str,
        *,
        kinds: tuple[Kind, ...] = ("user", "ticket"),
        sort_by: str | None = None,
        sort_order: str | None = None,
    ) -> list[tuple[Kind, Doc]]:
        """Search the index (eventually consistent, see ``search.py``)."""
        terms = parse_query(query)
        restricted = query_kind(terms)
        if restricted is not None:
            kinds = tuple(k for k in kinds if k == restricted)
        found: list[tuple[Kind, Doc]] = []
        for kind in kinds:
            found.extend((kind, doc) for doc in self.index.search(terms, self.now(), (kind,)))
        field = sort_by if sort_by in ("created_at", "updated_at") else "updated_at"
        descending = (sort_order or "desc").lower() != "asc"
        found.sort(key=lambda kd: (getattr(kd[1], field), kd[1].id), reverse=descending)
        return found

    # ------------------------------------------------------------------ inspection

    def request_count(self, method: str | None = None, template: str | None = None) -> int:
        """API requests seen, optionally only those of one method and/or path template."""
        total = 0
        for key, n in self.requests.items():
            m, _, t = key.partition(" ")
            if (method is None or m == method.upper()) and (template is None or t == template):
                total += n
        return total

    def snapshot(self, base: str) -> dict[str, Any]:
        """Everything, rendered, for ``GET /__sandbox/state``."""
        tickets = []
        for t in sorted(self.tickets.values(), key=lambda t: t.id):
            doc = render.ticket(t, base)
            doc["comments"] = [render.comment(c, base) for c in t.comments]
            tickets.append(doc)
        return {
            "now": iso(self.now()),
            "users": [render.user(u, base) for u in sorted(self.users.values(), key=_by_id)],
            "tickets": tickets,
            "pops": [render.pop(p) for p in self.pops],
            "uploads": {
                token: [render.attachment(a, base) for a in atts]
                for token, atts in self.uploads.items()
            },
            "requests": dict(sorted(self.requests.items())),
            "idempotency_keys": len(self.idempotency),
            "faults": [r.model_dump() for r in self.faults.rules],
            "exchanges": len(self.exchanges),
            "config": self.config.model_dump(mode="json"),
        }


def _static(user_id: int) -> AccessToken:
    return AccessToken(user_id=user_id, expires_at=None)


def _by_id(u: UserRecord) -> int:
    return u.id


def _label(field: str) -> str:
    return field.removesuffix("_id").replace("_", " ").capitalize()


def _role(value: str) -> Role:
    for role in ROLES:
        if role == value:
            return role
    raise invalid("role", f"Role: {value} is not a valid role")


def _ticket_status(value: str) -> TicketStatus:
    statuses: tuple[TicketStatus, ...] = ("new", "open", "pending", "hold", "solved", "closed")
    for status in statuses:
        if status == value:
            return status
    raise invalid("status", f"Status: {value} is not valid")


def _via_source(rel: str | None, voice: dict[str, Any]) -> dict[str, Any]:
    if rel is None:
        return {"from": {}, "to": {}, "rel": None}
    return {
        "from": {"phone": voice["from"]} if "from" in voice else {},
        "to": {"phone": voice["to"]} if "to" in voice else {},
        "rel": rel,
    }
