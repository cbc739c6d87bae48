"""Zendesk misbehaves (429 with Retry-After, 5xx, timeouts, answers lost after the write) on
ticket creation and on the end-of-call update, while the daemon runs real contacts.

However often the daemon has to retry, each contact ends with exactly one ticket, one voice
comment (or one transcript for a chat), one new user, and everything the attributes asked for
(here: the speech analysis note) once the faults have cleared.
"""

from typing import Any

import pytest

from tests.e2e.conftest import (
    Rig,
    chat,
    details,
    report_all,
    settle,
    transcripts,
    until,
    voice,
    voice_comments,
)

CREATE = "/api/v2/channels/voice/tickets"
PLAIN_CREATE = "/api/v2/tickets"
UPDATE = "/api/v2/tickets/*"


def rule(kind: str, method: str, path: str, **extra: Any) -> dict[str, Any]:
    return {"kind": kind, "method": method, "path": path, **extra}


FAULTS: dict[str, list[dict[str, Any]]] = {
    "429 Retry-After": [
        rule("rate_limit", "POST", CREATE, retry_after=1, count=1),
        rule("rate_limit", "PUT", UPDATE, retry_after=1, count=2),
    ],
    "500s": [
        rule("error", "POST", CREATE, status=500, count=2),
        rule("error", "POST", "/api/v2/users", status=502, count=1),
        rule("error", "PUT", UPDATE, status=500, count=2),
    ],
    "timeouts": [  # the daemon's client gives up after 1 s; the sandbox then does the write
        rule("timeout", "POST", CREATE, seconds=1.5),
        rule("timeout", "PUT", UPDATE, seconds=1.5),
    ],
    "drop after write": [
        rule("drop_after_write", "POST", CREATE, count=2),
        rule("drop_after_write", "POST", "/api/v2/users", count=1),
        rule("drop_after_write", "PUT", UPDATE, count=2),
    ],
    # Longer than the client's own retries: the run fails, the scheduler runs it again.
    "outage": [
        rule("error", "POST", CREATE, status=503, count=6),
        rule("error", "PUT", UPDATE, status=503, count=6),
    ],
}


@pytest.mark.parametrize("case", list(FAULTS))
async def test_voice_call_exactly_once_under_faults(rig: Rig, case: str) -> None:
    await rig.start()
    tabs = [await rig.tab() for _ in range(2)]
    snap = voice(
        attributes={"customer_name": "Newt Caller", "speech_analysis": "sentiment"},
        analysis={"sentiment": "NEUTRAL"},
    )
    await rig.add_faults(FAULTS[case])
    await report_all(tabs, "incoming", "c-1", snap)
    await report_all(tabs, "connected", "c-1", snap)
    await until(lambda: len(rig.tickets("c-1")) == 1, timeout=20)
    await report_all(tabs, "ended", "c-1", snap)
    await rig.finished("c-1", timeout=30)
    assert rig.sandbox.faults.rules == []  # every injected fault fired
    await settle()

    (user,) = rig.end_users()
    (ticket,) = rig.tickets()
    assert ticket["external_id"] == rig.identity("c-1").external_id
    assert ticket["requester_id"] == user["id"]
    assert len(details(ticket)) == 1
    assert len(voice_comments(ticket)) == 1
    analysis = [c for c in ticket["comments"] if c["body"].startswith("Speech analysis")]
    assert len(analysis) == 1 and "NEUTRAL" in analysis[0]["body"]
    assert len(ticket["comments"]) == 3
    assert tabs[0].contacts["c-1"].ticket_id == ticket["id"]


CHAT_FAULTS: dict[str, list[dict[str, Any]]] = {
    "429 Retry-After": [
        rule("rate_limit", "POST", PLAIN_CREATE, retry_after=1),
        rule("rate_limit", "PUT", UPDATE, retry_after=1),
    ],
    "500s": [
        rule("error", "POST", PLAIN_CREATE, status=500, count=2),
        rule("error", "PUT", UPDATE, status=503, count=2),
    ],
    "timeouts": [
        rule("timeout", "POST", PLAIN_CREATE, seconds=1.5),
        rule("timeout", "PUT", UPDATE, seconds=1.5),
    ],
    "drop after write": [
        rule("drop_after_write", "POST", PLAIN_CREATE, count=2),
        rule("drop_after_write", "PUT", UPDATE, count=1),  # the transcript is the one update
    ],
}


@pytest.mark.parametrize("case", list(CHAT_FAULTS))
async def test_chat_transcript_exactly_once_under_faults(rig: Rig, case: str) -> None:
    uid = rig.customer("Ann Chatter", email="ann@example.org")
    await rig.start()
    tabs = [await rig.tab() for _ in range(2)]
    snap = chat(attributes={"customer_email": "ann@example.org"})
    await rig.add_faults(CHAT_FAULTS[case])
    await report_all(tabs, "connected", "ch-1", snap)
    for tab in tabs:
        await tab.chat("ch-1", "m1", "customer", "Hello")
        await tab.chat("ch-1", "m2", "agent", "Hi Ann")
    await until(lambda: len(rig.tickets("ch-1")) == 1, timeout=20)
    await report_all(tabs, "ended", "ch-1", snap)
    await rig.finished("ch-1", timeout=30)
    assert rig.sandbox.faults.rules == []
    await settle()

    (ticket,) = rig.tickets()
    assert ticket["requester_id"] == uid and rig.end_users() == rig.end_users()[:1]
    assert len(details(ticket)) == 1
    (transcript,) = transcripts(ticket)
    assert transcript["body"].count("Hello") == 1 and transcript["body"].count("Hi Ann") == 1
