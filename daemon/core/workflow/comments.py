"""Text of the comments the workflow adds to tickets. Pure string building.

Every comment body ends with a marker line (`Switchboard <scope>/<contact>/<step>`, see
`identity`): a runner that crashed between sending a comment and journaling it, or one whose
journal was lost, finds the marker among the ticket's comments and does not add the comment
twice. It is short and sits in private notes only.
"""

import math
from collections.abc import Iterable, Mapping
from datetime import UTC, datetime
from urllib.parse import quote

from daemon.core.settings import AppSettings
from daemon.core.state import ChatLine, Contact
from daemon.core.workflow.identity import Identity

DETAILS_TITLE = "Amazon Connect Contact Details"


def with_marker(body: str, identity: Identity, key: str) -> str:
    return f"{body.rstrip()}\n\n{identity.marker(key)}"


#: The last second `datetime` (and Zendesk) can render: 9999-12-31T23:59:59Z.
LATEST = 253_402_300_799.0
UNKNOWN_TIME = "unknown time"


def valid_time(ts: float | None) -> float | None:
    """`ts` if it is a time a comment can show (finite, 1970..9999), else None.

    Times reach the builders from tabs (chat lines' `sent_at`) as well as from the daemon's
    clock; the wire refuses absurd ones, but the builders must stay total whatever the
    journal or an older daemon left behind: a value that cannot be rendered is left out,
    never allowed to raise (a raising builder would fail the contact on every scan).
    """
    if ts is None or not math.isfinite(ts) or not 0.0 <= ts <= LATEST:
        return None
    return ts


def iso(ts: float | None) -> str:
    """ISO 8601 UTC, whole seconds, as Zendesk renders times; `UNKNOWN_TIME` for a time that
    cannot be rendered (see `valid_time`)."""
    valid = valid_time(ts)
    if valid is None:
        return UNKNOWN_TIME
    return datetime.fromtimestamp(valid, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def recording_url(app: AppSettings, contact_id: str) -> str | None:
    """The original's recording link template; None without an instance URL."""
    if not app.instance_url:
        return None
    return f"{app.instance_url}/connect/get-recording?format=wav&callLegId={contact_id}"


def ctr_url(app: AppSettings, contact_id: str) -> str | None:
    if not app.instance_url:
        return None
    url = f"{app.instance_url}/connect/contact-trace-records/details/{contact_id}"
    if app.ctr_time_zone:
        url += f"?tz={quote(app.ctr_time_zone, safe='')}"
    return url


def details(
    app: AppSettings,
    contact: Contact,
    *,
    download_recording: bool,
    call_from: str | None,
    call_to: str | None,
    with_call_parties: bool,
    transferred_from: str | None = None,
) -> str:
    """The "Amazon Connect Contact Details" note added when the contact connects.

    `transferred_from`: the agent whose contact this one was transferred from, when the
    workflow followed that link to another agent's ticket (recorded here for all to see).
    """
    kind = {"voice": "call", "chat": "chat", "task": "task", "email": "email"}[contact.type]
    lines = [DETAILS_TITLE, f"Direction: {contact.direction.capitalize()} {kind}"]
    lines.append(f"Contact ID: {contact.contact_id}")
    if contact.initial_contact_id and contact.initial_contact_id != contact.contact_id:
        lines.append(f"Initial contact ID: {contact.initial_contact_id}")
        if transferred_from is not None:
            lines.append(f"Transferred from agent: {transferred_from}")
    if contact.type == "voice" and download_recording:
        url = recording_url(app, contact.contact_id)
        if url:
            lines.append(f"Call recording (download): {url}")
    ctr = ctr_url(app, contact.contact_id)
    if ctr:
        lines.append(f"Contact trace record: {ctr}")
    if contact.queue:
        lines.append(f"Queue: {contact.queue}")
    if contact.agent_name:
        lines.append(f"Agent: {contact.agent_name}")
    if contact.routing_profile:
        lines.append(f"Routing profile: {contact.routing_profile}")
    if contact.type == "voice":
        lines.append("Agent phone: " + ("softphone" if contact.softphone else "extension"))
        if with_call_parties:
            lines.append(f"Call from: {call_from or 'anonymous'}")
            lines.append(f"Call to: {call_to or 'unknown'}")
    return "\n".join(lines)


def attributes(values: Mapping[str, str], *, compact: bool, changed: bool = False) -> str:
    """The contact attributes block; `changed` titles a later block of changed values."""
    if not values:
        return ""
    title = "Changed contact attributes" if changed else "Contact attributes"
    items = sorted(values.items())
    if compact:
        return f"{title}: " + "; ".join(f"{k}={v}" for k, v in items)
    return "\n".join([title, *(f"{k}: {v}" for k, v in items)])


def analysis(results: Mapping[str, str], kinds: Iterable[str]) -> str:
    """Speech analysis results (Contact Lens), in the order transcript, comprehend, sentiment."""
    titles = {
        "transcript": "Transcript",
        "comprehend": "Comprehend",
        "sentiment": "Sentiment",
    }
    chosen = set(kinds)
    blocks = [
        f"{titles[k]}:\n{results[k].strip()}"
        for k in ("transcript", "comprehend", "sentiment")
        if k in chosen and results.get(k, "").strip()
    ]
    return "\n\n".join(["Speech analysis", *blocks]) if blocks else ""


def transcript(lines: Iterable[ChatLine], agent_name: str | None) -> str:
    """The chat transcript: customer, agent, bot and system (join/leave) messages in order."""
    labels = {"customer": "Customer", "agent": agent_name or "Agent", "bot": "Bot",
              "system": "System"}  # fmt: skip
    timed = [(valid_time(line.sent_at), i, line) for i, line in enumerate(lines)]
    # Lines without a usable time keep their arrival order, after the timed ones.
    ordered = sorted(timed, key=lambda p: (p[0] is None, p[0] or 0.0, p[1]))
    out = ["Chat transcript"]
    for at, _, line in ordered:
        who = line.name or labels[line.participant]
        if line.participant == "system":
            who = "System"
        when = f"[{iso(at)}] " if at is not None else ""
        out.append(f"{when}{who}: {line.text}")
    return "\n".join(out)


def pause_note(paused: bool, at: float, refused: str | None = None) -> str:
    """The ticket's record of a recording command: what Amazon Connect confirmed, or that it
    refused and the recording went on as it was (a note never says "paused" on a tab's word)."""
    verb = "paused" if paused else "resumed"
    if refused is None:
        return f"Call recording {verb} by the agent at {iso(at)} (confirmed by Amazon Connect)"
    asked = "pause" if paused else "resume"
    return (
        f"The agent asked to {asked} the call recording at {iso(at)}; Amazon Connect did not "
        f"confirm it ({refused}), so the recording was not {verb}"
    )


def voice_text(data: Mapping[str, object]) -> str:
    """The voice comment's facts as a plain note, for accounts without Talk Partner Edition."""
    lines = ["Call details"]
    names = [
        ("from", "From"),
        ("to", "To"),
        ("recording_url", "Recording"),
        ("started_at", "Started at"),
        ("call_duration", "Duration (seconds)"),
        ("answered_by_name", "Answered by"),
    ]
    for key, title in names:
        if data.get(key) not in (None, ""):
            lines.append(f"{title}: {data[key]}")
    return "\n".join(lines)
