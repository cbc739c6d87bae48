"""Projections of the aggregate into what tabs see.

A contact's tab view is derived from the contact's own declaration (`state.VIEW_FIELDS`).
"""

from collections.abc import Iterable
from typing import Any

from daemon.core.state import VIEW_FIELDS, AgentState, Contact, MediaState
from protocol.messages import ContactView, MediaView, Snapshot


def contact_view(contact: Contact) -> ContactView:
    return ContactView.model_validate(dict(zip(VIEW_FIELDS, contact.view_values(), strict=True)))


def contact_wire(contact: Contact) -> dict[str, Any]:
    """The `contact` message for this contact as sent (what `ContactMessage(contact=
    contact_view(contact))` dumps to, in JSON mode without empty fields), made without a
    model: the view's fields are the contact's own, already of wire types (strings, numbers,
    booleans, tuples of strings), and one is published for every change."""
    view = {k: v for k, v in zip(VIEW_FIELDS, contact.view_values(), strict=True) if v is not None}
    return {"replayed": False, "type": "contact", "contact": view}


def voice_active(contact: Contact) -> bool:
    """The contact is a connected call of this agent's own: the media CCP carries its audio."""
    return contact.type == "voice" and contact.state == "connected" and not contact.monitoring


def build_media_view(media: MediaState, *, present: bool, contacts: Iterable[Contact]) -> MediaView:
    """The media view from its inputs; `contacts` need only hold the open ones, oldest first."""
    ready = present and media.signed_in and media.microphone and not media.audio_lost
    active = next((c.contact_id for c in contacts if voice_active(c)), None)
    return MediaView(
        media_less=media.media_less,
        present=present,
        ready=ready,
        gate=media.gate,
        active_contact=active,
    )


def media_view(state: AgentState, live_nodes: frozenset[str]) -> MediaView:
    present = any(
        t.role == "media" and t.connected and t.node in live_nodes for t in state.tabs.values()
    )
    return build_media_view(
        state.media, present=present, contacts=(state.contacts[cid] for cid in state.open_ids)
    )


def snapshot(state: AgentState, live_nodes: frozenset[str]) -> Snapshot:
    contacts = sorted(state.contacts.values(), key=lambda c: (c.created_at, c.contact_id))
    # The media view last published on the stream, so a snapshot equals a full replay; the
    # live set is only a fallback for a state no event has been applied to yet.
    media = (
        MediaView.model_validate(state.published_media)
        if state.published_media is not None
        else media_view(state, live_nodes)
    )
    return Snapshot(contacts=tuple(contact_view(c) for c in contacts), media=media)
