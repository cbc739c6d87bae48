"""Text of the comments the workflow adds to tickets. Pure string building.

Every comment body ends with a marker line (`Switchboard <contact>/<step>`): a runner that
crashed between sending a comment and journaling it finds the marker among the ticket's
comments and does not add the comment twice. It is short and sits in private notes only.
"""

from collections.abc import Iterable, Mapping
from datetime import UTC, datetime
from urllib.parse import quote

from daemon.core.settings import AppSettings
from daemon.core.state import ChatLine, Contact

DETAILS_TITLE = "Amazon Connect Contact Details"


def marker(contact_id: str, key: str) -> str:
    return f"Switchboard {contact_id}/{key}"


def with_marker(body: str, contact_id: str, key: str) -> str:
    return f"{body.rstrip()}\n\n{marker(contact_id, key)}"


def iso(ts: float) -> str:
    """ISO 8601 UTC, whole seconds, as Zendesk renders times."""
    return datetime.fromtimestamp(ts, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


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
) -> str:
    """The "Amazon Connect Contact Details" note added when the contact connects."""
    kind = {"voice": "call", "chat": "chat", "task": "task", "email": "email"}[contact.type]
    lines = [DETAILS_TITLE, f"Direction: {contact.direction.capitalize()} {kind}"]
    lines.append(f"Contact ID: {contact.contact_id}")
    if contact.initial_contact_id and contact.initial_contact_id != contact.contact_id:
        lines.append(f"Initial contact ID: {contact.initial_contact_id}")
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
    ordered = sorted(
        enumerate(lines), key=lambda p: (p[1].sent_at is None, p[1].sent_at or 0.0, p[0])
    )
    out = ["Chat transcript"]
    for _, line in ordered:
        who = line.name or labels[line.participant]
        if line.participant == "system":
            who = "System"
        when = f"[{iso(line.sent_at)}] " if line.sent_at is not None else ""
        out.append(f"{when}{who}: {line.text}")
    return "\n".join(out)


def pause_note(paused: bool, at: float) -> str:
    return f"Call recording {'paused' if paused else 'resumed'} by the agent at {iso(at)}"


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
