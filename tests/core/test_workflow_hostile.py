"""Values no tab should send, and Zendesk refusals: the pure policy stays total.

The wire refuses NaN, infinite and far-future times, so these contacts are built directly:
what reaches the builders from an older daemon's journal, or from a future event field, must
never make planning raise (a raising plan failed the contact on every scan, for ever).
"""

import dataclasses
import math
from typing import Any

import pytest

from daemon.core.state import ChatLine
from daemon.core.workflow import AddVoiceComment, CreateTicket, comments
from daemon.core.workflow.policy import MAX_CALL_SECONDS
from tests.core.test_workflow_world import T0, World, contact, drive

HOSTILE = [math.nan, math.inf, -math.inf, 1e20, -1e20, 253_402_300_800.0]


@pytest.mark.parametrize("bad", HOSTILE)
def test_a_chat_line_with_an_unrenderable_time_is_still_transcribed(bad: float) -> None:
    world = World()
    world.user("Ann", email="ann@example.org")
    lines = [
        ChatLine(message_id="1", participant="customer", text="first", sent_at=bad),
        ChatLine(message_id="2", participant="agent", text="second", sent_at=T0 + 5),
        ChatLine(message_id="3", participant="customer", text="third", sent_at=None),
    ]
    c = contact(type="chat", cli=None, chat=lines, attributes={"customer_email": "ann@example.org"})
    p, journal = drive(world, c)
    assert p.done and "comment:transcript" in journal
    tid = journal["ticket:create"]["ticket_id"]
    (transcript,) = [x["body"] for x in world.comments(tid) if x["key"] == "comment:transcript"]
    body = transcript.splitlines()
    # the timed line first, then the untimed ones in arrival order, none of them dropped
    assert body[1].startswith("[2023-11-14T22:13:25Z] Agnes Agent: second")
    assert body[2:4] == ["Customer: first", "Customer: third"]


@pytest.mark.parametrize("bad", HOSTILE)
@pytest.mark.parametrize("where", ["connected", "ended", "both"])
def test_a_call_with_unrenderable_times_gets_its_voice_comment(bad: float, where: str) -> None:
    world = World()
    world.user("Ann", "+447700900123")
    c = contact()
    times: dict[str, Any] = dict(c.event_times)
    if where in ("connected", "both"):
        times["connected"] = bad
    if where in ("ended", "both"):
        times["ended"] = bad
    p, journal = drive(world, dataclasses.replace(c, event_times=times))
    assert p.done and "comment:voice" in journal
    (voice,) = [w for w in world.writes if isinstance(w, AddVoiceComment)]
    started = voice.data["started_at"]
    assert started != comments.UNKNOWN_TIME and started.startswith(("19", "20"))
    assert 0 <= voice.data["call_duration"] <= MAX_CALL_SECONDS
    assert len([w for w in world.writes if isinstance(w, CreateTicket)]) == 1


@pytest.mark.parametrize("bad", HOSTILE)
def test_comment_times_are_total(bad: float) -> None:
    assert comments.iso(bad) == comments.UNKNOWN_TIME
    assert comments.valid_time(bad) is None
    assert comments.iso(T0) == "2023-11-14T22:13:20Z"
    assert "unknown time" in comments.pause_note(True, bad)


def test_a_refused_comment_is_reported_once_and_never_planned_again() -> None:
    world = World()
    world.user("Ann", "+447700900123")
    world.fail["comment:voice"] = {"failed": 413, "code": "too_large", "message": "Too large"}
    p, journal = drive(world, contact())
    assert p.done and journal["comment:voice"]["failed"] == 413
    refused = [n for n in world.notices() if n.code == "zendesk_refused"]
    assert len(refused) == 1 and refused[0].level == "error" and "413" not in refused[0].text
    assert p.status == ("failed", "too_large")
    assert "comment:voice" in refused[0].text and "Too large" in refused[0].text
    assert sum(isinstance(w, AddVoiceComment) for w in world.writes) == 1


def test_a_refused_lookup_reads_as_nothing_found_and_is_reported() -> None:
    world = World()
    world.user("Ann", "+447700900123")
    world.fail["lookup:users_by_phone"] = {"failed": 403, "code": "forbidden", "message": "No"}
    p, journal = drive(world, contact(attributes={"customer_name": "Newt"}))
    assert p.done and journal["lookup:users_by_phone"]["failed"] == 403
    assert [n.code for n in world.notices()].count("zendesk_refused") == 1
    # nothing found: the caller is treated as unrecognised, exactly as an empty search
    assert len(world.created_users()) == 1
