"""Records → the JSON shapes of Zendesk's OpenAPI description.

``None`` values are left out rather than sent as ``null``: the published schema declares most
fields non-nullable (``assignee_id``, ``email``…), and an absent field is what a validator and a
tolerant client both accept.
"""

from __future__ import annotations

from typing import Any

from daemon.sandbox.clock import iso
from daemon.sandbox.records import (
    AttachmentRecord,
    CommentRecord,
    PopRecord,
    TicketRecord,
    UserRecord,
)


def _compact(doc: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in doc.items() if v is not None}


def user(u: UserRecord, base: str) -> dict[str, Any]:
    return _compact(
        {
            "id": u.id,
            "url": f"{base}/api/v2/users/{u.id}.json",
            "name": u.name,
            "email": u.email,
            "phone": u.phone,
            "shared_phone_number": u.shared_phone_number,
            "role": u.role,
            "external_id": u.external_id,
            "verified": u.verified,
            "active": u.active,
            "locale": u.locale,
            "locale_id": 1,
            "time_zone": u.time_zone,
            "iana_time_zone": "Etc/UTC",
            "tags": list(u.tags),
            "notes": u.notes,
            "details": u.details,
            "suspended": False,
            "moderator": False,
            "only_private_comments": False,
            "restricted_agent": u.role == "end-user",
            "ticket_restriction": "requested" if u.role == "end-user" else None,
            "user_fields": {},
            "created_at": iso(u.created_at),
            "updated_at": iso(u.updated_at),
        }
    )


def via(channel: str, source: dict[str, Any] | None = None) -> dict[str, Any]:
    return {"channel": channel, "source": source or {"from": {}, "to": {}, "rel": None}}


def ticket(t: TicketRecord, base: str) -> dict[str, Any]:
    return _compact(
        {
            "id": t.id,
            "url": f"{base}/api/v2/tickets/{t.id}.json",
            "subject": t.subject,
            "raw_subject": t.subject,
            "description": t.description,
            "status": t.status,
            "priority": t.priority,
            "type": t.type,
            "requester_id": t.requester_id,
            "submitter_id": t.submitter_id,
            "assignee_id": t.assignee_id,
            "external_id": t.external_id,
            "tags": list(t.tags),
            "via": via(t.via_channel, t.via_source),
            "is_public": any(c.public for c in t.comments),
            "has_incidents": False,
            "allow_attachments": True,
            "allow_channelback": False,
            "from_messaging_channel": False,
            "collaborator_ids": [],
            "follower_ids": [],
            "email_cc_ids": [],
            "custom_fields": [],
            "created_at": iso(t.created_at),
            "updated_at": iso(t.updated_at),
        }
    )


def attachment(a: AttachmentRecord, base: str) -> dict[str, Any]:
    content_url = f"{base}/attachments/token/{a.token}/?name={a.file_name}"
    return {
        "id": a.id,
        "url": f"{base}/api/v2/attachments/{a.id}.json",
        "file_name": a.file_name,
        "content_url": content_url,
        "mapped_content_url": content_url,
        "content_type": a.content_type,
        "size": a.size,
        "inline": False,
        "deleted": False,
        "malware_access_override": False,
        "malware_scan_result": "malware_not_found",
        "thumbnails": [],
    }


def comment(c: CommentRecord, base: str) -> dict[str, Any]:
    source: dict[str, Any] = {"from": {}, "to": {}, "rel": c.via_rel}
    return _compact(
        {
            "id": c.id,
            "type": c.type,
            "author_id": c.author_id,
            "body": c.body,
            "html_body": c.html_body,
            "plain_body": c.body,
            "public": c.public,
            "audit_id": c.audit_id,
            "attachments": [attachment(a, base) for a in c.attachments],
            "via": {"channel": c.via_channel, "source": source},
            "metadata": {"system": {"client": "switchboard-sandbox"}, "custom": {}},
            "data": c.data,
            "created_at": iso(c.created_at),
        }
    )


def pop(p: PopRecord) -> dict[str, Any]:
    return {
        "agent_id": p.agent_id,
        "kind": p.kind,
        "target_id": p.target_id,
        "at": iso(p.at),
        "source": p.source,
    }


def page(
    key: str,
    items: list[dict[str, Any]],
    total: int,
    next_page: str | None,
    previous_page: str | None,
) -> dict[str, Any]:
    """Zendesk's offset-pagination envelope (``count`` is the total over all pages)."""
    return {
        key: items,
        "count": total,
        "next_page": next_page,
        "previous_page": previous_page,
    }
