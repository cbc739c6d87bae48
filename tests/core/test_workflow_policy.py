"""One case per rule of BEHAVIOUR.md, against the pure policy.

Lookups are simulated by the in-memory `World` (see test_workflow_world.py) whose answers the
driver journals exactly as the runner would; nothing here does I/O.
"""

from typing import Any

import pytest

from daemon.core.settings import AppSettings
from daemon.core.state import ChatLine
from daemon.core.workflow import (
    AddComment,
    AddVoiceComment,
    AgentInfo,
    CreateTicket,
    FindUsersByPhone,
    Scope,
    SearchUsers,
    UpdateUserPhone,
    plan,
    search_digits,
)
from tests.core.test_workflow_world import AGENT, T0, World, cmd, contact, drive

APP = AppSettings(instance_url="https://acme.my.connect.aws", default_dialed_number="+441632960000")


def app(**kw: Any) -> AppSettings:
    return APP.model_copy(update=kw)


def known(world: World, phone: str = "+447700900123", name: str = "Ann") -> int:
    return world.user(name, phone)


def texts(world: World, tid: int) -> list[str]:
    return [c["body"] for c in world.comments(tid) if c["kind"] == "text"]


def only_ticket(world: World) -> int:
    assert len(world.created_tickets()) == 1
    return next(iter(t for t in world.tickets.values() if t["external_id"]))["id"]  # type: ignore[no-any-return]


# -- who gets nothing --------------------------------------------------------------------------


@pytest.mark.parametrize(
    "extra",
    [{"monitoring": True}, {"refused": "second_chat", "type": "chat"}, {"type": "task"}],
    ids=["monitoring", "second-chat", "task"],
)
def test_contacts_that_get_nothing(extra: dict[str, Any]) -> None:
    world = World()
    known(world)
    p, journal = drive(world, contact(**extra))
    assert p.done and journal == {} and world.writes == [] and world.reads == []


def test_a_contact_that_never_connected_gets_no_ticket() -> None:
    world = World()
    uid = known(world)
    _, journal = drive(world, contact(("incoming",)))
    p, _ = drive(world, contact(("incoming", "missed")), journal=journal)
    assert p.done and world.writes == []
    assert [(x.target, x.id) for x in world.pops()] == [("user", uid)]  # popped while ringing


# -- when things happen ------------------------------------------------------------------------


def test_pop_incoming_true_identifies_and_pops_before_accept_but_creates_on_connect() -> None:
    world = World()
    uid = known(world)
    p, journal = drive(world, contact(("incoming",)))
    assert p.waiting and not p.done
    assert world.created_tickets() == []
    assert [(x.target, x.id) for x in world.pops()] == [("user", uid)]
    assert world.reported_users() == [uid]
    p, journal = drive(world, contact(("incoming", "connected")), journal=journal)
    assert p.waiting
    tid = only_ticket(world)
    assert ("ticket", tid) in [(x.target, x.id) for x in world.pops()]


def test_pop_incoming_false_waits_for_the_connection() -> None:
    world = World()
    known(world)
    attrs = {"pop_incoming": "false"}
    p, journal = drive(world, contact(("incoming",), attributes=attrs))
    assert p.waiting and world.reads == [] and world.reports == []
    drive(world, contact(("incoming", "connected"), attributes=attrs), journal=journal)
    assert len(world.created_tickets()) == 1
    assert [x.target for x in world.pops()] == ["ticket"]  # no user pop right before it


# -- identifying the caller --------------------------------------------------------------------


def test_zendesk_user_wins_over_customer_number_and_cli() -> None:
    world = World()
    by_id = world.user("By Id", "+15550000001")
    world.user("By Number", "+15550000002")
    world.user("By CLI", "+447700900123")
    attrs = {"zendesk_user": str(by_id), "customer_number": "+15550000002"}
    drive(world, contact(attributes=attrs))
    assert world.created_tickets()[0].requester_id == by_id
    assert not any(isinstance(r, FindUsersByPhone) for r in world.reads)


def test_customer_number_wins_over_cli() -> None:
    world = World()
    world.user("By CLI", "+447700900123")
    by_number = world.user("By Number", "+15550000002")
    drive(world, contact(attributes={"customer_number": "+1 555 000 0002"}))
    assert world.created_tickets()[0].requester_id == by_number


def test_missing_zendesk_user_notifies_and_treats_the_caller_as_unrecognised() -> None:
    world = World()
    known(world)  # the CLI would match, but the rule says unrecognised
    drive(world, contact(attributes={"zendesk_user": "4242"}))
    assert "user_not_found" in world.notice_codes()
    assert [u.name for u in world.created_users()] == ["new user at +447700900123"]


@pytest.mark.parametrize("cli", [None, "", "anonymous", "Private", "UNKNOWN", " anonymous "])
def test_anonymous_caller_gets_a_ticket_without_a_phone_matched_user(cli: str | None) -> None:
    world = World()
    p, _ = drive(world, contact(cli=cli))
    assert p.done
    assert world.reads == [] and world.created_users() == []
    (created,) = world.created_tickets()
    assert created.requester_id == AGENT.user_id
    assert created.subject == "Incoming call from anonymous caller"


def test_phone_search_strips_the_country_prefix() -> None:
    world = World()
    uid = world.user("Ann", "07700 900123")  # stored in national format
    drive(world, contact(cli="+44 7700 900123"), app=app(country_prefix="+44"))
    (search,) = [r for r in world.reads if isinstance(r, FindUsersByPhone)]
    assert search.digits == "7700900123"
    assert world.created_tickets()[0].requester_id == uid


@pytest.mark.parametrize(
    ("number", "prefix", "digits"),
    [
        ("+447700900123", "", "447700900123"),
        ("+447700900123", "+44", "7700900123"),
        ("00447700900123", "+44", "7700900123"),
        ("07700900123", "+44", "7700900123"),
        ("+12025550101", "+44", "12025550101"),
    ],
)
def test_search_digits(number: str, prefix: str, digits: str) -> None:
    assert search_digits(number, prefix) == digits


def test_users_with_a_shared_phone_number_are_skipped() -> None:
    world = World()
    world.user("Reception", "+447700900123", shared=True)
    mine = world.user("Ann", "+447700900123")
    drive(world, contact())
    assert world.created_tickets()[0].requester_id == mine


def test_only_shared_numbers_means_unrecognised() -> None:
    world = World()
    world.user("Reception", "+447700900123", shared=True)
    drive(world, contact())
    assert len(world.created_users()) == 1


def test_an_exact_phone_match_beats_suffix_matches() -> None:
    world = World()
    world.user("Other", "+17700900123")
    mine = world.user("Ann", "+447700900123")
    drive(world, contact())
    assert world.created_tickets()[0].requester_id == mine


def test_several_phone_matches_switch_to_agent_mode_with_a_search() -> None:
    world = World()
    world.user("A", "+17700900123")
    world.user("B", "+337700900123")
    p, _ = drive(world, contact(cli="7700900123"))
    assert p.done
    assert world.modes() == ["agent"] and "multiple_matches" in world.notice_codes()
    assert next(x.target for x in world.pops()) == "search"
    # force_ticket_creation: a ticket at the end, not for a guessed customer
    assert world.created_tickets()[0].requester_id == AGENT.user_id


def test_requested_ticket_not_belonging_to_the_user_is_notified() -> None:
    world = World()
    uid = known(world)
    other = world.user("Bob", "+15550000009")
    tid = world.ticket(other)
    drive(world, contact(attributes={"zendesk_ticket": str(tid)}))
    assert "ticket_user_mismatch" in world.notice_codes()
    assert world.created_tickets() == []
    assert world.reported_tickets() == [tid] and world.reported_users() == [uid]


# -- choosing the ticket -----------------------------------------------------------------------


def test_zendesk_ticket_zero_asks_for_a_new_ticket_even_with_a_recent_one() -> None:
    world = World()
    uid = known(world)
    world.ticket(uid, updated_at=T0 - 60)
    drive(world, contact(attributes={"zendesk_ticket": "0", "recent_ticket_timeout": "15"}))
    assert len(world.created_tickets()) == 1


def test_zendesk_ticket_zero_in_agent_mode_notifies_the_agent() -> None:
    world = World()
    known(world)
    drive(world, contact(attributes={"zendesk_ticket": "0", "ticket_assignment": "agent"}))
    assert "new_ticket_requested" in world.notice_codes()


def test_requested_ticket_is_attached_and_its_requester_is_the_customer() -> None:
    world = World()
    uid = world.user("Ann", None)
    tid = world.ticket(uid)
    drive(world, contact(cli="anonymous", attributes={"zendesk_ticket": str(tid)}))
    assert world.created_tickets() == [] and world.created_users() == []
    assert world.reported_tickets() == [tid] and world.reported_users() == [uid]
    kinds = [c["key"] for c in world.comments(tid)]
    assert kinds == [f"comment:details:{tid}", "comment:voice"]


def test_requested_ticket_not_found_notifies_and_creates_a_new_one() -> None:
    world = World()
    uid = known(world)
    world.ticket(uid, updated_at=T0 - 60)  # recent, but a ticket was requested: no reuse
    drive(world, contact(attributes={"zendesk_ticket": "999999", "recent_ticket_timeout": "15"}))
    assert world.notices()[0].text == "Requested ticket #999999 was not found"
    assert len(world.created_tickets()) == 1


def test_transfer_finds_the_ticket_by_our_own_record() -> None:
    world = World()
    uid = known(world)
    tid = world.ticket(uid)  # attached, not created, by the first contact
    world.journals["c-0"] = {f"report:ticket:0:{tid}": {"ticket_id": tid}}
    drive(world, contact(initial_contact_id="c-0"))
    assert world.created_tickets() == []
    assert world.reported_tickets() == [tid] and world.reported_users() == [uid]
    assert not any(isinstance(r, FindUsersByPhone) for r in world.reads)


def test_transfer_finds_the_ticket_by_external_id() -> None:
    world = World()
    uid = known(world)
    tid = world.ticket(uid, external_id=AGENT.scope.of("c-0").external_id)
    drive(world, contact(initial_contact_id="c-0"))
    assert world.created_tickets() == [] and world.reported_tickets() == [tid]
    (linked,) = [n for n in world.notices() if n.code == "transfer_linked"]
    assert f"#{tid}" in linked.text and "c-0" in linked.text


def test_a_transfer_the_trust_rule_refuses_is_not_followed() -> None:
    world = World(untrusted="the initial contact ended more than 300 s before this one")
    uid = known(world)
    world.ticket(uid, external_id=AGENT.scope.of("c-0").external_id)
    drive(world, contact(initial_contact_id="c-0", attributes={"force_ticket_creation": "no"}))
    assert world.modes() == ["agent"] and world.reported_tickets() == []
    (refused,) = world.notices()
    assert refused.code == "transfer_not_trusted" and "300 s" in refused.text


def test_identities_differ_by_agent_and_by_account() -> None:
    a, b = AgentInfo(1, scope=Scope("acme", "agent-a")), AgentInfo(2, scope=Scope("acme", "b"))
    other_account = AgentInfo(1, scope=Scope("umbrella", "agent-a"))
    ids = {x.scope.of("c-1").external_id for x in (a, b, other_account)}
    keys = {x.scope.of("c-1").idempotency_key("ticket:create") for x in (a, b, other_account)}
    marks = {x.scope.of("c-1").marker("comment:voice") for x in (a, b, other_account)}
    assert len(ids) == len(keys) == len(marks) == 3
    assert all("c-1" in i for i in ids | keys | marks)
    world = World()
    known(world)
    drive(world, contact(), agent=a)
    drive(world, contact(), agent=b)  # another agent reports the same contact id
    first, second = world.created_tickets()
    assert first.external_id != second.external_id
    assert first.idempotency_key != second.idempotency_key


def test_transfer_without_a_ticket_switches_to_agent_mode() -> None:
    world = World()
    known(world)
    drive(world, contact(initial_contact_id="c-0", attributes={"force_ticket_creation": "no"}))
    assert world.modes() == ["agent"]
    assert world.notices()[0].text == "No ticket was found related to transfer"
    assert world.created_tickets() == []


def test_queue_callback_is_not_a_transfer() -> None:
    world = World()
    known(world)
    drive(world, contact(initial_contact_id="c-0", is_callback=True))
    assert world.modes() == [] and len(world.created_tickets()) == 1


def test_requested_ticket_is_used_by_a_transfer_before_the_transfer_lookup() -> None:
    world = World()
    uid = known(world)
    tid = world.ticket(uid)
    drive(world, contact(initial_contact_id="c-0", attributes={"zendesk_ticket": str(tid)}))
    assert world.reported_tickets() == [tid] and world.notices() == []


@pytest.mark.parametrize(
    ("tickets", "timeout", "expect"),
    [
        ([("open", -60)], "15", 0),  # updated a minute before: reused
        ([("open", -16 * 60)], "15", None),  # too old: new ticket
        ([("closed", -60)], "15", None),  # closed tickets are never reused
        ([("solved", -60)], "15", 0),  # solved is not closed
        ([("open", -600), ("pending", -120), ("open", -300)], "15", 1),  # most recent
        ([("open", -60)], "0", None),  # 0 = never
        ([("open", -60)], "", None),  # unset = never
    ],
)
def test_recent_ticket_reuse(
    tickets: list[tuple[str, float]], timeout: str, expect: int | None
) -> None:
    world = World()
    uid = known(world)
    ids = [world.ticket(uid, status=st, updated_at=T0 + dt) for st, dt in tickets]
    drive(world, contact(attributes={"recent_ticket_timeout": timeout}))
    if expect is None:
        assert len(world.created_tickets()) == 1
    else:
        assert world.created_tickets() == [] and world.reported_tickets() == [ids[expect]]


def test_recent_ticket_timeout_from_the_app_setting() -> None:
    world = World()
    uid = known(world)
    tid = world.ticket(uid, updated_at=T0 - 60)
    drive(world, contact(), app=app(recent_ticket_timeout=15))
    assert world.reported_tickets() == [tid]


def test_recent_ticket_decision_does_not_depend_on_when_the_plan_is_made() -> None:
    world = World()
    uid = known(world)
    world.ticket(uid, updated_at=T0 - 60)
    c = contact(attributes={"recent_ticket_timeout": "15"})
    journal: dict[str, Any] = {}
    first = plan(APP, AGENT, c, journal, T0)
    assert first.steps[0].key.startswith("lookup:users_by_phone")
    drive(world, c, journal=journal)
    assert plan(APP, AGENT, c, journal, T0 + 10 * 86400).done  # a day later: nothing changes


# -- auto mode ---------------------------------------------------------------------------------


def test_recognised_auto_creates_one_ticket_with_the_rules_fields() -> None:
    world = World()
    uid = known(world)
    drive(world, contact())
    (t,) = world.created_tickets()
    assert (t.requester_id, t.submitter_id, t.assignee_id) == (uid, 900, 900)
    assert (t.subject, t.via_id, t.voice) == ("Incoming call from Ann", 45, True)
    ident = AGENT.scope.of("c-1")
    assert t.external_id == ident.external_id == f"switchboard:{AGENT.scope.digest}:c-1"
    assert t.idempotency_key == f"{ident.external_id}:ticket:create"
    assert t.body.startswith("Amazon Connect Contact Details")


def test_unrecognised_auto_creates_the_user_then_the_ticket() -> None:
    world = World()
    drive(world, contact())
    (u,) = world.created_users()
    assert (u.name, u.phone) == ("new user at +447700900123", "+447700900123")
    (t,) = world.created_tickets()
    assert t.requester_id == max(world.users) - 1 or t.requester_id in world.users
    assert world.users[t.requester_id or 0]["name"] == "new user at +447700900123"
    assert t.subject == "Incoming call from new user at +447700900123"


def test_unrecognised_user_is_named_after_customer_name() -> None:
    world = World()
    drive(world, contact(attributes={"customer_name": "Zoe Bloggs"}))
    assert [u.name for u in world.created_users()] == ["Zoe Bloggs"]
    assert world.created_tickets()[0].subject == "Incoming call from Zoe Bloggs"


def test_the_user_is_created_once_connected() -> None:
    world = World()
    p, journal = drive(world, contact(("incoming",)))
    assert p.waiting and world.writes == []
    drive(world, contact(("incoming", "connected")), journal=journal)
    assert len(world.created_users()) == 1


def test_known_ticket_is_attached_and_popped_in_auto_mode() -> None:
    world = World()
    uid = known(world)
    tid = world.ticket(uid)
    drive(world, contact(("incoming", "connected"), attributes={"zendesk_ticket": str(tid)}))
    assert [(p.target, p.id) for p in world.pops()] == [("ticket", tid)]
    assert [c["key"] for c in world.comments(tid)] == [f"comment:details:{tid}"]


# -- agent mode --------------------------------------------------------------------------------

AGENT_MODE = {"ticket_assignment": "agent"}


def test_agent_mode_pops_the_user_and_waits_for_the_agent() -> None:
    world = World()
    uid = known(world)
    p, _ = drive(world, contact(("incoming", "connected"), attributes=AGENT_MODE))
    assert p.waiting and world.writes == []
    assert world.modes() == ["agent"]
    assert [(x.target, x.id) for x in world.pops()] == [("user", uid)]


def test_agent_mode_pops_a_known_ticket_without_attaching_it() -> None:
    world = World()
    uid = known(world)
    tid = world.ticket(uid)
    attrs = {**AGENT_MODE, "zendesk_ticket": str(tid), "force_ticket_creation": "false"}
    drive(world, contact(attributes=attrs))
    assert [(x.target, x.id) for x in world.pops()] == [("ticket", tid)]
    assert world.writes == []


def test_agent_create_ticket_command_for_the_open_user() -> None:
    world = World()
    known(world)
    other = world.user("Bob", None)
    c = contact(attributes=AGENT_MODE, commands=[cmd("create_ticket", T0 + 5, user_id=other)])
    drive(world, c)
    (t,) = world.created_tickets()
    assert t.requester_id == other and t.subject == "Incoming call from Bob"
    assert [c["key"] for c in world.comments(only_ticket(world))] == [
        "ticket:create",
        "comment:voice",
    ]


def test_agent_attach_to_current_gets_the_details_and_the_voice_comment() -> None:
    world = World()
    uid = known(world)
    tid = world.ticket(uid)
    c = contact(attributes=AGENT_MODE, commands=[cmd("attach_to_current", T0 + 5, ticket_id=tid)])
    drive(world, c)
    assert world.created_tickets() == []
    assert [c["key"] for c in world.comments(tid)] == [f"comment:details:{tid}", "comment:voice"]
    assert world.reported_tickets() == [tid]


def test_agent_mode_forces_a_ticket_at_the_end() -> None:
    world = World()
    uid = known(world)
    _p, journal = drive(world, contact(("incoming", "connected"), attributes=AGENT_MODE))
    assert world.created_tickets() == []
    drive(world, contact(attributes=AGENT_MODE), journal=journal)
    (t,) = world.created_tickets()
    assert t.requester_id == uid
    tid = only_ticket(world)
    assert world.pops()[-1].id == tid


def test_agent_mode_without_force_creates_nothing() -> None:
    world = World()
    known(world)
    p, _ = drive(world, contact(attributes={**AGENT_MODE, "force_ticket_creation": "n"}))
    assert p.done and world.writes == []


def test_unrecognised_agent_mode_forced_ticket_creates_the_user() -> None:
    world = World()
    drive(world, contact(attributes=AGENT_MODE))
    assert len(world.created_users()) == 1 and len(world.created_tickets()) == 1


def test_second_create_ticket_reattaches_the_one_created() -> None:
    world = World()
    known(world)
    c = contact(
        attributes=AGENT_MODE,
        commands=[cmd("create_ticket", T0 + 5), cmd("create_ticket", T0 + 6)],
    )
    drive(world, c)
    (created,) = world.created_tickets()
    assert created.origin == "command:0"
    # Only the second command is told: the first one made the ticket.
    (again,) = [n for n in world.notices() if n.code == "ticket_already_created"]
    assert again.level == "info" and again.text.endswith(f"#{only_ticket(world)}")


def test_the_command_that_creates_the_ticket_is_not_told_it_exists() -> None:
    world = World()
    known(world)
    c = contact(attributes=AGENT_MODE, commands=[cmd("create_ticket", T0 + 5)])
    p, journal = drive(world, c)
    assert len(world.created_tickets()) == 1 and world.notice_codes() == []
    assert journal["ticket:create"]["origin"] == "command:0" and p.status == ("done", None)


def test_a_create_ticket_after_the_automatic_ticket_is_told_it_exists() -> None:
    world = World()
    known(world)
    drive(world, contact(commands=[cmd("create_ticket", T0 + 20)]))
    assert len(world.created_tickets()) == 1
    assert world.notice_codes() == ["ticket_already_created"]


@pytest.mark.parametrize(
    ("events", "attributes", "status"),
    [
        (("incoming", "connected"), {}, ("pending", None)),
        (("incoming", "connected", "ended"), {}, ("done", None)),
        (("incoming", "missed"), {}, ("none", None)),
    ],
)
def test_the_plan_says_where_the_workflow_stands(
    events: tuple[str, ...], attributes: dict[str, str], status: tuple[str, None]
) -> None:
    world = World()
    known(world)
    p, _ = drive(world, contact(events, attributes=attributes))
    assert p.status == status


def test_an_email_gets_no_workflow() -> None:
    p, _ = drive(World(), contact(type="email"))
    assert p.done and p.status == ("none", None)


def test_a_refused_ticket_fails_the_workflow_at_once_with_the_reason() -> None:
    world = World()
    known(world)
    world.fail["ticket:create"] = {"failed": 403, "code": "forbidden", "message": "Forbidden"}
    p, _ = drive(world, contact(("incoming", "connected")))
    assert not p.done and p.status == ("failed", "forbidden")
    (notice,) = [n for n in world.notices() if n.code == "ticket_create_failed"]
    assert notice.level == "error"


def test_reattaching_moves_the_end_of_contact_to_the_last_ticket() -> None:
    world = World()
    uid = known(world)
    t1, t2 = world.ticket(uid), world.ticket(uid)
    commands = [
        cmd("attach_to_current", T0 + 5, ticket_id=t1),
        cmd("attach_to_current", T0 + 9, ticket_id=t2),
    ]
    drive(world, contact(attributes=AGENT_MODE, commands=commands))
    assert [c["key"] for c in world.comments(t1)] == [f"comment:details:{t1}"]
    assert [c["key"] for c in world.comments(t2)] == [f"comment:details:{t2}", "comment:voice"]
    assert world.reported_tickets() == [t1, t2]


def test_auto_mode_agent_can_attach_another_ticket() -> None:
    world = World()
    uid = known(world)
    other = world.ticket(uid)
    drive(world, contact(commands=[cmd("attach_to_current", T0 + 30, ticket_id=other)]))
    created = only_ticket(world)
    assert world.reported_tickets() == [created, other]
    assert [c["key"] for c in world.comments(other)][-1] == "comment:voice"


# -- phone update ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("stored", "cli", "update"),
    [
        ("07700 900123", "+447700900123", "+447700900123"),  # differs: updated
        ("+44 7700 900123", "+447700900123", None),  # same number, other format
        ("+447700900123", "anonymous", None),
    ],
)
def test_phone_is_updated_after_attaching(stored: str, cli: str, update: str | None) -> None:
    world = World()
    uid = world.user("Ann", stored)
    drive(world, contact(cli=cli, attributes={"zendesk_user": str(uid)}))
    updates = [w for w in world.writes if isinstance(w, UpdateUserPhone)]
    assert [u.phone for u in updates] == ([update] if update else [])


def test_phone_of_a_shared_number_user_is_never_updated() -> None:
    world = World()
    uid = world.user("Desk", "+15550000000", shared=True)
    drive(world, contact(attributes={"zendesk_user": str(uid)}))
    assert not any(isinstance(w, UpdateUserPhone) for w in world.writes)


# -- the details note and the attributes --------------------------------------------------------


def test_details_note_fields() -> None:
    world = World()
    known(world)
    c = contact(attributes={"order": "42", "voice_comment": "true"}, softphone=False)
    drive(world, c, app=app(ctr_time_zone="Europe/London"))
    body = texts(world, only_ticket(world))[0]
    assert body.splitlines()[:2] == ["Amazon Connect Contact Details", "Direction: Inbound call"]
    for line in [
        "Contact ID: c-1",
        "Call recording (download): https://acme.my.connect.aws/connect/get-recording"
        "?format=wav&callLegId=c-1",
        "Contact trace record: https://acme.my.connect.aws/connect/contact-trace-records/"
        "details/c-1?tz=Europe%2FLondon",
        "Queue: Support",
        "Agent: Agnes Agent",
        "Routing profile: Basic",
        "Agent phone: extension",
        "Contact attributes",
        "order: 42",
        AGENT.scope.of("c-1").marker("ticket:create"),
    ]:
        assert line in body.splitlines(), line
    assert "voice_comment" not in body  # system attribute
    assert "Call from" not in body  # the voice comment carries it


def test_details_without_download_link_and_with_call_parties() -> None:
    world = World()
    known(world)
    drive(world, contact(attributes={"download_recording": "no", "voice_comment": "no"}))
    tid = only_ticket(world)
    body = texts(world, tid)[0]
    assert "get-recording" not in body
    assert "Call from: +447700900123" in body and "Call to: +441632960000" in body
    assert [c["kind"] for c in world.comments(tid)] == ["text"]  # no voice comment


def test_compact_attribute_layout() -> None:
    world = World()
    known(world)
    drive(world, contact(attributes={"b": "2", "a": "1"}), app=app(compact_attributes=True))
    assert "Contact attributes: a=1; b=2" in texts(world, only_ticket(world))[0]


def test_excluded_attributes_app_setting() -> None:
    world = World()
    known(world)
    drive(
        world,
        contact(attributes={"secret": "x", "a": "1"}),
        app=app(excluded_attributes=("secret",)),
    )
    assert "secret" not in texts(world, only_ticket(world))[0]


def test_only_changed_attributes_are_appended_at_the_end() -> None:
    world = World()
    known(world)
    _, journal = drive(world, contact(("incoming", "connected"), attributes={"a": "1", "b": "2"}))
    c = contact(attributes={"a": "1", "b": "3", "c": "4"})
    drive(world, c, journal=journal)
    end = [x for x in world.comments(only_ticket(world)) if x["key"].startswith("comment:end")]
    (only,) = end
    assert "b: 3" in only["body"] and "c: 4" in only["body"] and "a: 1" not in only["body"]
    assert only["body"].startswith("Changed contact attributes")


def test_no_end_note_when_nothing_changed() -> None:
    world = World()
    known(world)
    drive(world, contact(attributes={"a": "1"}))
    keys = [x["key"] for x in world.comments(only_ticket(world))]
    assert keys == ["ticket:create", "comment:voice"]


# -- end of contact ----------------------------------------------------------------------------


def test_speech_analysis_results_are_added_when_enabled() -> None:
    world = World()
    known(world)
    analysis = {"transcript": "hello there", "sentiment": "POSITIVE", "comprehend": "billing"}
    drive(world, contact(attributes={"speech_analysis": "transcript,sentiment"}, analysis=analysis))
    tid = only_ticket(world)
    end = next(x for x in world.comments(tid) if x["key"] == f"comment:end:{tid}")["body"]
    assert "hello there" in end and "POSITIVE" in end and "billing" not in end
    assert [x["key"] for x in world.comments(tid)][-1] == "comment:voice"  # analysis first


def test_no_speech_analysis_without_the_attribute() -> None:
    world = World()
    known(world)
    drive(world, contact(analysis={"transcript": "hello"}))
    assert all("hello" not in b for b in texts(world, only_ticket(world)))


def test_voice_comment_fields() -> None:
    world = World()
    uid = known(world)
    drive(world, contact(attributes={"dialed_number": "+1 202 555 0101"}))
    (voice,) = [w for w in world.writes if isinstance(w, AddVoiceComment)]
    assert voice.data == {
        "from": "+447700900123",
        "to": "+12025550101",
        "recording_url": "https://acme.my.connect.aws/connect/get-recording?format=wav&callLegId=c-1",
        "started_at": "2023-11-14T22:13:21Z",
        "call_duration": 60,
        "answered_by_id": 900,
    }
    assert uid in world.reported_users()


def test_dialed_number_defaults_to_the_app_setting() -> None:
    world = World()
    known(world)
    drive(world, contact())
    (voice,) = [w for w in world.writes if isinstance(w, AddVoiceComment)]
    assert voice.data["to"] == "+441632960000"


def test_the_agent_is_routed_to_the_ticket_at_the_end() -> None:
    world = World()
    known(world)
    _p, journal = drive(world, contact(("incoming", "connected")))
    popped = len(world.pops())
    drive(world, contact(), journal=journal)
    tid = only_ticket(world)
    assert [(x.target, x.id) for x in world.pops()[popped:]] == [("ticket", tid)]


def test_without_talk_partner_the_ticket_is_plain_and_the_call_is_a_note() -> None:
    world = World()
    known(world)
    drive(world, contact(), app=app(talk_partner=False))
    (t,) = world.created_tickets()
    assert (t.voice, t.via_id) == (False, None)
    tid = only_ticket(world)
    assert [c["kind"] for c in world.comments(tid)] == ["text", "text"]
    assert "Duration (seconds): 60" in texts(world, tid)[1]


def test_recording_upload_when_enabled() -> None:
    world = World()
    known(world)
    drive(world, contact(), app=app(upload_recordings=True))
    tid = only_ticket(world)
    end = next(x for x in world.comments(tid) if x["key"] == f"comment:end:{tid}")
    assert end["uploads"] == ("tok-1",)
    (voice,) = [w for w in world.writes if isinstance(w, AddVoiceComment)]
    assert voice.data["recording_url"] == "https://z/attachments/rec.wav"


def test_no_recording_link_without_an_instance_url() -> None:
    world = World()
    known(world)
    drive(world, contact(), app=AppSettings())
    (voice,) = [w for w in world.writes if isinstance(w, AddVoiceComment)]
    assert "recording_url" not in voice.data
    assert "get-recording" not in texts(world, only_ticket(world))[0]


# -- outbound ----------------------------------------------------------------------------------


def test_click_to_dial_user_gets_an_outgoing_ticket() -> None:
    world = World()
    uid = world.user("Ann", "+447700900123")
    c = contact(
        ("connecting", "connected", "ended"),
        direction="outbound",
        click_to_dial={"kind": "user", "id": uid},
    )
    drive(world, c)
    (t,) = world.created_tickets()
    assert (t.requester_id, t.via_id, t.subject) == (uid, 46, "Outgoing call to Ann")
    (voice,) = [w for w in world.writes if isinstance(w, AddVoiceComment)]
    assert (voice.data["from"], voice.data["to"]) == ("+441632960000", "+447700900123")


def test_click_to_dial_ticket_goes_to_that_ticket() -> None:
    world = World()
    uid = known(world)
    tid = world.ticket(uid)
    c = contact(
        ("connecting", "connected", "ended"),
        direction="outbound",
        click_to_dial={"kind": "ticket", "id": tid},
    )
    drive(world, c)
    assert world.created_tickets() == [] and world.reads == []
    assert [x["key"] for x in world.comments(tid)] == [f"comment:details:{tid}", "comment:voice"]


def test_outbound_to_a_known_number_is_found_by_phone() -> None:
    world = World()
    uid = known(world)
    drive(world, contact(("connecting", "connected", "ended"), direction="outbound"))
    assert world.created_tickets()[0].requester_id == uid


@pytest.mark.parametrize("mode", ["auto", "agent"])
def test_outbound_to_an_unknown_number_gets_nothing(mode: str) -> None:
    world = World()
    p, _ = drive(
        world,
        contact(
            ("connecting", "connected", "ended"),
            direction="outbound",
            attributes={"ticket_assignment": mode},
        ),
    )
    assert p.done and world.writes == []


def test_all_outbound_creates_user_and_ticket() -> None:
    world = World()
    drive(
        world,
        contact(
            ("connecting", "connected", "ended"),
            direction="outbound",
            attributes={"all_outbound": "yes"},
        ),
    )
    assert len(world.created_users()) == 1
    (t,) = world.created_tickets()
    assert t.subject == "Outgoing call to new user at +447700900123" and t.via_id == 46


# -- chat --------------------------------------------------------------------------------------

LINES = [
    ChatLine(message_id="1", participant="system", text="Customer joined", sent_at=T0 + 1),
    ChatLine(message_id="2", participant="bot", text="How can I help?", sent_at=T0 + 2),
    ChatLine(message_id="3", participant="customer", name="Ann", text="Hi", sent_at=T0 + 3),
    ChatLine(message_id="4", participant="agent", text="Hello Ann", sent_at=T0 + 4),
    ChatLine(message_id="5", participant="system", text="Customer left", sent_at=T0 + 5),
]


def chat(events: tuple[str, ...] = ("incoming", "connected", "ended"), **kw: Any) -> Any:
    kw.setdefault("chat", LINES)
    return contact(events, type="chat", cli=None, **kw)


def test_chat_customer_by_zendesk_user() -> None:
    world = World()
    uid = world.user("Ann", None, email="ann@example.com")
    drive(world, chat(attributes={"zendesk_user": str(uid), "customer_email": "x@example.com"}))
    (t,) = world.created_tickets()
    assert (t.requester_id, t.voice, t.via_id, t.subject) == (uid, False, None, "Chat with Ann")


def test_chat_customer_by_email_then_name() -> None:
    world = World()
    world.user("Ann", None, email="other@example.com")
    uid = world.user("Ann B", None, email="ann@example.com")
    drive(world, chat(attributes={"customer_email": "ANN@example.com", "customer_name": "Ann"}))
    assert world.created_tickets()[0].requester_id == uid
    assert [r.field for r in world.reads if isinstance(r, SearchUsers)] == ["email"]


def test_chat_customer_by_exact_name() -> None:
    world = World()
    uid = world.user("Ann Smith", None)
    world.user("Ann Smithers", None)  # Zendesk's fuzzy search returns her too
    drive(world, chat(attributes={"customer_name": "ann smith"}))
    assert world.created_tickets()[0].requester_id == uid


def test_chat_several_matches_switch_to_agent_mode_and_suggest_a_search() -> None:
    world = World()
    world.user("Ann Smith", None)
    world.user("Ann Smith", None)
    drive(world, chat(("incoming", "connected"), attributes={"customer_name": "Ann Smith"}))
    assert world.modes() == ["agent"]
    assert "multiple_matches" in world.notice_codes()
    assert [(p.target, p.query) for p in world.pops()] == [("search", "Ann Smith")]


def test_chat_nobody_found_switches_to_agent_mode() -> None:
    world = World()
    p, _ = drive(world, chat(("incoming", "connected"), attributes={"customer_name": "Zed"}))
    assert p.waiting and world.modes() == ["agent"] and world.writes == []


def test_chat_transcript_is_one_private_note_at_the_end() -> None:
    world = World()
    uid = world.user("Ann", None, email="ann@example.com")
    drive(world, chat(attributes={"zendesk_user": str(uid)}))
    tid = only_ticket(world)
    (transcript,) = [c for c in world.comments(tid) if c["key"] == "comment:transcript"]
    body = transcript["body"]
    for text in [
        "System: Customer joined",
        "Bot: How can I help?",
        "Ann: Hi",
        "Agnes Agent: Hello Ann",
        "System: Customer left",
    ]:
        assert text in body
    assert body.index("Customer joined") < body.index("Customer left")
    assert not any(isinstance(w, AddVoiceComment) for w in world.writes)


def test_chat_transcript_false() -> None:
    world = World()
    uid = world.user("Ann", None)
    drive(world, chat(attributes={"zendesk_user": str(uid), "chat_transcript": "false"}))
    assert [c["key"] for c in world.comments(only_ticket(world))] == ["ticket:create"]


def test_unrecognised_chat_forced_ticket_creates_the_customer_from_email() -> None:
    world = World()
    drive(world, chat(attributes={"customer_email": "new@example.com", "customer_name": "Newt"}))
    (u,) = world.created_users()
    assert (u.name, u.email, u.phone) == ("Newt", "new@example.com", None)
    assert world.created_tickets()[0].subject == "Chat with Newt"


# -- pause / resume ----------------------------------------------------------------------------


def test_pause_and_resume_are_noted_on_the_ticket() -> None:
    world = World()
    known(world)
    commands = [cmd("pause_recording", T0 + 10), cmd("resume_recording", T0 + 20)]
    drive(world, contact(attributes={"pause_recording": "true"}, commands=commands))
    tid = only_ticket(world)
    notes = [c["body"] for c in world.comments(tid) if c["key"].startswith("comment:pause")]
    assert len(notes) == 2
    assert notes[0].startswith(
        "Call recording paused by the agent at 2023-11-14T22:13:30Z (confirmed by Amazon Connect)"
    )
    assert notes[1].startswith("Call recording resumed")
    assert world.recordings == [("c-1", True), ("c-1", False)]  # each asked of Connect once
    confirmed = [r.recording_paused for r in world.reports if r.recording_paused is not None]
    assert confirmed == [True, False]


def test_a_recording_change_connect_refuses_is_never_called_paused() -> None:
    world = World(connect_refuses="AccessDeniedException: not allowed")
    known(world)
    drive(
        world,
        contact(attributes={"pause_recording": "true"}, commands=[cmd("pause_recording", T0 + 10)]),
    )
    (note,) = [
        c["body"]
        for c in world.comments(only_ticket(world))
        if c["key"].startswith("comment:pause")
    ]
    assert "did not confirm it" in note and "was not paused" in note
    assert world.notice_codes() == ["recording_failed"]
    assert all(r.recording_paused is None for r in world.reports)


def test_pause_without_the_attribute_is_refused_with_a_notice() -> None:
    world = World()
    known(world)
    drive(world, contact(commands=[cmd("pause_recording", T0 + 10)]))
    assert world.notice_codes() == ["pause_not_enabled"]
    assert not any(c["key"].startswith("comment:pause") for c in world.comments(only_ticket(world)))


def test_pause_before_a_ticket_is_noted_once_one_is_attached() -> None:
    world = World()
    known(world)
    c = contact(
        attributes={**AGENT_MODE, "pause_recording": "y"}, commands=[cmd("pause_recording", T0 + 2)]
    )
    drive(world, c)  # forced ticket at the end carries the note
    assert any(c["key"] == "comment:pause:0" for c in world.comments(only_ticket(world)))


# -- warnings and failures ---------------------------------------------------------------------


def test_invalid_attributes_are_reported_once_and_new_ones_later() -> None:
    world = World()
    known(world)
    _, journal = drive(world, contact(("incoming",), attributes={"pop_incoming": "maybe"}))
    drive(world, contact(("incoming",), attributes={"pop_incoming": "maybe"}), journal=journal)
    assert world.warnings() == ["Expecting true or false in attribute pop_incoming, got: maybe"]
    attrs = {"pop_incoming": "maybe", "customer_number": "abc"}
    drive(world, contact(("incoming",), attributes=attrs), journal=journal)
    assert world.warnings()[1:] == [
        "Expecting a phone number in attribute customer_number, got: abc"
    ]


def test_a_refused_ticket_creation_is_reported_and_does_not_stop_the_contact() -> None:
    world = World(fail={"ticket:create": {"failed": 422, "message": "bad requester"}})
    known(world)
    p, _ = drive(world, contact())
    assert p.done and "ticket_create_failed" in world.notice_codes()
    assert not any(isinstance(w, AddComment | AddVoiceComment) for w in world.writes)


def test_missing_agent_identity_still_creates_the_ticket() -> None:
    world = World()
    known(world)
    drive(world, contact(), agent=AgentInfo(user_id=None))
    (t,) = world.created_tickets()
    assert t.submitter_id is None and t.assignee_id is None


def test_create_ticket_is_not_planned_before_its_requester_exists() -> None:
    c = contact()
    p = plan(APP, AGENT, c, {"lookup:users_by_phone": []}, T0)
    assert [type(s).__name__ for s in p.steps] == ["CreateUser"]
    assert not any(isinstance(s, CreateTicket) for s in p.steps)
