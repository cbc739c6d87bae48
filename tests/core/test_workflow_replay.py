"""Replaying plans to completion: exactly-once writes, crash-and-resume, the guide's table.

`drive` is the runner's loop with an in-memory executor: it proves the journal alone decides
what is left, whatever order and repetition the contact's events arrive in.
"""

from collections import Counter
from collections.abc import Callable
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from daemon.core.settings import AppSettings
from daemon.core.state import ChatLine, Contact
from daemon.core.workflow import (
    AddComment,
    AddVoiceComment,
    CreateTicket,
    CreateUser,
    Report,
    plan,
    record,
)
from tests.core.test_workflow_world import AGENT, T0, World, cmd, contact, drive

APP = AppSettings(instance_url="https://acme.my.connect.aws", default_dialed_number="+441632960000")
LIFECYCLE = ("incoming", "connecting", "accepted", "connected", "ended", "acw", "destroyed")


def write_keys(world: World) -> list[str]:
    return [w.key for w in world.writes]


def assert_exactly_once(world: World) -> None:
    counts = Counter(write_keys(world))
    assert all(n == 1 for n in counts.values()), counts
    assert len(world.created_tickets()) <= 1
    assert len(world.created_users()) <= 1
    assert sum(isinstance(w, AddVoiceComment) for w in world.writes) <= 1
    assert counts.get("comment:transcript", 0) <= 1


def test_replay_to_completion_writes_each_step_once() -> None:
    world = World()
    journal: dict[str, Any] = {}
    attrs = {"a": "1", "speech_analysis": "transcript", "pause_recording": "true"}
    commands = [cmd("pause_recording", T0 + 10), cmd("resume_recording", T0 + 20)]
    for n in range(1, len(LIFECYCLE) + 1):
        events = LIFECYCLE[:n]
        c = contact(
            events,
            attributes=attrs,
            commands=commands if n >= 4 else [],
            analysis={"transcript": "hi"} if n >= 5 else {},
        )
        for _ in range(2):  # every tab reports it: plans made twice must not repeat anything
            drive(world, c, journal=journal)
    assert_exactly_once(world)
    final = plan(APP, AGENT, contact(LIFECYCLE, attributes=attrs, commands=commands), journal, T0)
    assert final.done and final.steps == ()
    assert write_keys(world) == [
        "user:create",
        "ticket:create",
        "comment:pause:0",
        "comment:pause:1",
        f"comment:end:{only(world)}",
        "comment:voice",
    ]


def only(world: World) -> int:
    (t,) = [t["id"] for t in world.tickets.values() if t["external_id"]]
    return int(t)


def test_crash_between_write_and_journal_replans_the_identical_step() -> None:
    """The runner's recovery (idempotency key, comment marker) needs the same request."""
    world = World()
    world.user("Ann", "+447700900123")
    c = contact(attributes={"x": "1"})
    journal: dict[str, Any] = {}
    while True:
        p = plan(APP, AGENT, c, journal, T0)
        if not p.steps:
            break
        step = p.steps[0]
        result = world.execute(step)
        # crash: result lost; a fresh runner plans again and must ask for the same thing
        again = plan(APP, AGENT, c, journal, T0 + 999)
        assert again.steps[0] == step
        journal[step.key] = record(step, result)
    assert p.done


@pytest.mark.parametrize("stop_after", range(12))
def test_interrupted_after_any_step_and_resumed_by_a_fresh_runner(stop_after: int) -> None:
    world = World()
    uid = world.user("Ann", "07700900123")
    other = world.ticket(uid)
    attrs = {"a": "1", "speech_analysis": "transcript"}
    c = contact(
        attributes=attrs,
        analysis={"transcript": "hi"},
        commands=[cmd("attach_to_current", T0 + 30, ticket_id=other)],
    )
    journal: dict[str, Any] = {}
    drive(world, c, journal=journal, stop_after=stop_after)
    snapshot = dict(journal)  # all a fresh runner has
    p, _ = drive(world, c, journal=snapshot)
    assert p.done
    assert_exactly_once(world)


def test_lost_report_is_repeated_but_no_write_is() -> None:
    world = World()
    world.user("Ann", "+447700900123")
    c = contact()
    journal: dict[str, Any] = {}
    drive(world, c, journal=journal)
    del journal["pop:end"]
    drive(world, c, journal=journal)
    assert_exactly_once(world)
    assert [r.key for r in world.reports].count("pop:end") == 2


# -- a randomised check of the invariants ------------------------------------------------------

SCENARIO = st.fixed_dictionaries(
    {
        "known": st.sampled_from(["none", "one", "two", "shared"]),
        "type": st.sampled_from(["voice", "chat"]),
        "direction": st.sampled_from(["inbound", "outbound"]),
        "cli": st.sampled_from(["+447700900123", "anonymous", None]),
        "attrs": st.dictionaries(
            st.sampled_from(
                [
                    "ticket_assignment",
                    "force_ticket_creation",
                    "voice_comment",
                    "all_outbound",
                    "zendesk_ticket",
                    "recent_ticket_timeout",
                    "pop_incoming",
                    "chat_transcript",
                    "pause_recording",
                    "customer_name",
                    "speech_analysis",
                    "custom",
                ]
            ),
            st.sampled_from(["agent", "auto", "true", "false", "0", "15", "Ann", "x", ""]),
        ),
        "commands": st.lists(
            st.sampled_from(["create_ticket", "attach", "pause_recording", "resume_recording"]),
            max_size=4,
        ),
        "stop": st.sampled_from((*LIFECYCLE[:3], "connected", "missed", "ended", "destroyed")),
        "repeat": st.integers(1, 3),
    }
)


def build(world: World, sc: dict[str, Any], upto: int) -> Contact:
    stop = sc["stop"]
    if stop == "missed":
        events: tuple[str, ...] = ("incoming", "missed")
    else:
        events = LIFECYCLE[: LIFECYCLE.index(stop) + 1]
    events = events[:upto]
    cmds = []
    for i, name in enumerate(sc["commands"]):
        if name == "attach":
            cmds.append(cmd("attach_to_current", T0 + 10 + i, ticket_id=world.tickets_seed))  # type: ignore[attr-defined]
        else:
            cmds.append(cmd(name, T0 + 10 + i))
    connected = "connected" in events
    return contact(
        events,
        type=sc["type"],
        direction=sc["direction"] if sc["type"] == "voice" else "inbound",
        cli=sc["cli"] if sc["type"] == "voice" else None,
        attributes=sc["attrs"],
        commands=cmds if connected else [],
        chat=[ChatLine(message_id="1", participant="customer", text="hi", sent_at=T0)]
        if sc["type"] == "chat"
        else [],
    )


@settings(max_examples=300, deadline=None)
@given(SCENARIO)
def test_invariants_hold_for_any_scenario(sc: dict[str, Any]) -> None:
    world = World()
    if sc["known"] in ("one", "two"):
        world.user("Ann", "+447700900123", email="ann@example.com")
    if sc["known"] == "two":
        world.user("Ann", "+17700900123", email="ann@example.com")
    if sc["known"] == "shared":
        world.user("Desk", "+447700900123", shared=True)
    seed = world.ticket(next(iter(world.users), 1))
    world.tickets_seed = seed  # type: ignore[attr-defined]
    journal: dict[str, Any] = {}
    last = None
    for upto in range(1, len(LIFECYCLE) + 1):
        c = build(world, sc, upto)
        for _ in range(sc["repeat"]):
            last, journal = drive(world, c, journal=journal)
    assert last is not None
    assert_exactly_once(world)
    c = build(world, sc, len(LIFECYCLE))
    if c.finished:
        assert last.done, (last, journal)
    else:
        assert last.waiting
    if "connected" not in c.events_seen:
        assert world.writes == []
    created = world.created_tickets()
    if created and c.type == "voice":
        assert created[0].via_id == (46 if c.direction == "outbound" else 45)
    for w in world.writes:
        if isinstance(w, AddComment | CreateTicket):
            assert w.body.rstrip().endswith(AGENT.scope.of(c.contact_id).marker(w.key))
    reports = [r for r in world.reports if isinstance(r, Report)]
    assert len({r.key for r in reports}) == len(reports)


# -- the guide's attribute table, one row each --------------------------------------------------


def _ran(attrs: dict[str, str], world: World | None = None, **kw: Any) -> World:
    world = world or World()
    drive(world, contact(attributes=attrs, **kw))
    return world


def _voice(world: World) -> list[AddVoiceComment]:
    return [w for w in world.writes if isinstance(w, AddVoiceComment)]


def _with_ann(**extra: Any) -> World:
    world = World()
    world.user("Ann", "+447700900123", **extra)
    return world


def _recent() -> World:
    world = _with_ann()
    world.ticket(next(iter(world.users)), updated_at=T0 - 300)
    return world


TABLE: list[tuple[str, dict[str, str], Callable[[], World], Callable[[World], bool]]] = [
    (
        "recent_ticket_timeout",
        {"recent_ticket_timeout": "15"},
        _recent,
        lambda w: w.created_tickets() == [],
    ),
    (
        "ticket_assignment",
        {"ticket_assignment": "agent", "force_ticket_creation": "false"},
        _with_ann,
        lambda w: w.modes() == ["agent"] and w.created_tickets() == [],
    ),
    (
        "pop_incoming",
        {"pop_incoming": "false"},
        _with_ann,
        lambda w: [p.target for p in w.pops()] == ["ticket", "ticket"],
    ),
    ("voice_comment", {"voice_comment": "false"}, _with_ann, lambda w: _voice(w) == []),
    (
        "download_recording",
        {"download_recording": "false"},
        _with_ann,
        lambda w: "get-recording" not in w.created_tickets()[0].body,
    ),
    (
        "dialed_number",
        {"dialed_number": "+12025550101"},
        _with_ann,
        lambda w: _voice(w)[0].data["to"] == "+12025550101",
    ),
    ("zendesk_ticket", {"zendesk_ticket": "0"}, _recent, lambda w: len(w.created_tickets()) == 1),
    (
        "zendesk_user",
        {"zendesk_user": "1"},
        _with_ann,
        lambda w: "user_not_found" in w.notice_codes(),
    ),
    (
        "customer_number",
        {"customer_number": "+1 555 0000"},
        _with_ann,
        lambda w: w.created_users()[0].phone == "+15550000",
    ),
    (
        "customer_name",
        {"customer_name": "Zoe"},
        World,
        lambda w: w.created_users()[0].name == "Zoe",
    ),
    (
        "customer_email",
        {"customer_email": "bad"},
        _with_ann,
        lambda w: (
            w.warnings() == ["Expecting an email address in attribute customer_email, got: bad"]
        ),
    ),
    ("customer_language", {"customer_language": "xx"}, _with_ann, lambda w: len(w.warnings()) == 1),
    (
        "force_ticket_creation",
        {"ticket_assignment": "agent"},
        _with_ann,
        lambda w: len(w.created_tickets()) == 1,
    ),
    (
        "speech_analysis",
        {"speech_analysis": "sentiment"},
        _with_ann,
        lambda w: any("Sentiment" in getattr(x, "body", "") for x in w.writes),
    ),
    (
        "pause_recording",
        {"pause_recording": "false"},
        _with_ann,
        lambda w: w.notice_codes() == ["pause_not_enabled"],
    ),
    ("all_outbound", {"all_outbound": "true"}, World, lambda w: len(w.created_tickets()) == 1),
]


@pytest.mark.parametrize(("row", "attrs", "setup", "check"), TABLE, ids=[r[0] for r in TABLE])
def test_guide_table_row(
    row: str,
    attrs: dict[str, str],
    setup: Callable[[], World],
    check: Callable[[World], bool],
) -> None:
    world = setup()
    kw: dict[str, Any] = {"analysis": {"sentiment": "NEUTRAL"}}
    if row == "pause_recording":
        kw["commands"] = [cmd("pause_recording", T0 + 10)]
    if row == "all_outbound":
        kw.update(direction="outbound", events=("connecting", "connected", "ended"))
    events = kw.pop("events", ("incoming", "connected", "ended"))
    drive(world, contact(events, attributes=attrs, **kw))
    assert check(world), (row, world.writes, world.reports)


def test_guide_table_row_chat_transcript() -> None:
    world = _with_ann(email="ann@example.com")
    lines = [ChatLine(message_id="1", participant="customer", text="hi", sent_at=T0)]
    c = contact(type="chat", cli=None, chat=lines, attributes={"customer_email": "ann@example.com"})
    drive(world, c)
    assert any(w.key == "comment:transcript" for w in world.writes)
    world = _with_ann(email="ann@example.com")
    c = contact(
        type="chat",
        cli=None,
        chat=lines,
        attributes={"customer_email": "ann@example.com", "chat_transcript": "false"},
    )
    drive(world, c)
    assert not any(w.key == "comment:transcript" for w in world.writes)


def test_guide_table_covers_every_attribute() -> None:
    rows = {r[0] for r in TABLE} | {"chat_transcript"}
    guide = {
        "recent_ticket_timeout",
        "ticket_assignment",
        "pop_incoming",
        "voice_comment",
        "download_recording",
        "dialed_number",
        "zendesk_ticket",
        "zendesk_user",
        "customer_number",
        "customer_name",
        "customer_email",
        "customer_language",
        "force_ticket_creation",
        "speech_analysis",
        "pause_recording",
        "all_outbound",
        "chat_transcript",
    }
    assert rows == guide


def test_create_user_is_keyed_once_per_contact() -> None:
    world = World()
    c = contact()
    drive(world, c)
    drive(world, c)
    assert len([w for w in world.writes if isinstance(w, CreateUser)]) == 1
