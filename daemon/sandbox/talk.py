"""Zendesk Talk facts: via ids and how a voice comment reads.

Talk Partner Edition tickets carry a ``via_id`` (44 voicemail, 45 inbound call, 46 outbound
call) that becomes ``via.channel = "voice"`` with a ``rel``; a voice comment is a comment of
type ``VoiceComment`` whose ``data`` holds the call facts the integration sent.
"""

from __future__ import annotations

from typing import Any

from daemon.sandbox.errors import invalid
from daemon.sandbox.payload import opt_int, opt_str

#: via_id → (via.channel, via.source.rel)
VIA_IDS: dict[int, tuple[str, str | None]] = {
    0: ("web", None),
    4: ("email", None),
    5: ("api", None),
    44: ("voice", "voicemail"),
    45: ("voice", "inbound"),
    46: ("voice", "outbound"),
}
TALK_VIA_IDS = (44, 45, 46)


def via_for(via_id: int | None) -> tuple[str, str | None]:
    if via_id is None:
        return "api", None
    if via_id not in VIA_IDS:
        raise invalid("via_id", f"via_id: {via_id} is not a supported channel")
    return VIA_IDS[via_id]


def voice_data(vc: dict[str, Any], answered_by_name: str | None) -> dict[str, Any]:
    """The ``data`` of a VoiceComment, validated like Zendesk's voice_comment input."""
    data: dict[str, Any] = {
        "from": opt_str(vc, "from"),
        "to": opt_str(vc, "to"),
        "recording_url": opt_str(vc, "recording_url"),
        "started_at": opt_str(vc, "started_at"),
        "call_duration": opt_int(vc, "call_duration"),
        "answered_by_id": opt_int(vc, "answered_by_id"),
        "answered_by_name": answered_by_name,
        "transcription_text": opt_str(vc, "transcription_text"),
        "location": opt_str(vc, "location"),
    }
    return {k: v for k, v in data.items() if v is not None}


def voice_body(data: dict[str, Any], rel: str | None) -> str:
    """The plain text Zendesk shows for a voice comment."""
    direction = {"outbound": "Outbound call to", "voicemail": "Voicemail from"}.get(
        rel or "", "Inbound call from"
    )
    party = data.get("to") if rel == "outbound" else data.get("from")
    lines = [f"{direction} {party or 'unknown'}"]
    if "from" in data:
        lines.append(f"Call from: {data['from']}")
    if "to" in data:
        lines.append(f"Call to: {data['to']}")
    if "started_at" in data:
        lines.append(f"Time of call: {data['started_at']}")
    if "answered_by_name" in data:
        lines.append(f"Answered by: {data['answered_by_name']}")
    if "call_duration" in data:
        lines.append(f"Length of phone call: {data['call_duration']} seconds")
    if "location" in data:
        lines.append(f"Location: {data['location']}")
    if "recording_url" in data:
        lines.append(f"Listen to the recording: {data['recording_url']}")
    if "transcription_text" in data:
        lines.append(f"Transcription: {data['transcription_text']}")
    return "\n".join(lines)
