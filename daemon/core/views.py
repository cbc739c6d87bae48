"""Projections of the aggregate into what tabs see."""

from daemon.core.state import AgentState, Contact, MediaState
from protocol.messages import ContactView, MediaView, Snapshot


def contact_view(contact: Contact) -> ContactView:
    return ContactView(
        contact_id=contact.contact_id,
        initial_contact_id=contact.initial_contact_id,
        type=contact.type,
        direction=contact.direction,
        state=contact.state,
        customer_endpoint=contact.customer_endpoint,
        queue=contact.queue,
        owner_tab=contact.owner_tab,
        epoch=contact.epoch,
        grace_until=contact.grace_until,
        mode=contact.mode,
        ticket_id=contact.ticket_id,
        user_id=contact.user_id,
        recording_paused=contact.recording_paused,
        warnings=tuple(contact.warnings),
    )


def media_view(state: AgentState, live_nodes: frozenset[str]) -> MediaView:
    media: MediaState = state.media
    present = any(
        t.role == "media" and t.connected and t.node in live_nodes for t in state.tabs.values()
    )
    ready = present and media.signed_in and media.microphone and not media.audio_lost
    active = next(
        (
            c.contact_id
            for c in state.contacts.values()
            if c.type == "voice" and c.state == "connected" and not c.monitoring
        ),
        None,
    )
    return MediaView(
        media_less=media.media_less,
        present=present,
        ready=ready,
        gate=media.gate,
        active_contact=active,
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
