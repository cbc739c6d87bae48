"""Invalid attribute values are reported on the contact and ignored: the defaults apply and
the contact still completes (BEHAVIOUR.md: "reported to the agent ... and ignored")."""

from tests.e2e.conftest import (
    Rig,
    details,
    report_all,
    settle,
    until,
    voice,
    voice_comments,
)

BAD = {
    "customer_number": "abc",  # default: the caller's number (CLI) identifies the customer
    "recent_ticket_timeout": "soon",  # default: the app setting (0 = never reuse)
    "ticket_assignment": "maybe",  # default: auto
    "voice_comment": "perhaps",  # default: true
    "customer_language": "klingon",  # default: en
}
EXPECTED_WARNINGS = (
    "Expecting a phone number in attribute customer_number, got: abc",
    "Expecting a number in attribute recent_ticket_timeout, got: soon",
    "Expecting auto or agent in attribute ticket_assignment, got: maybe",
    "Expecting true or false in attribute voice_comment, got: perhaps",
)


async def test_bad_attribute_values_warn_and_fall_back_to_defaults(rig: Rig) -> None:
    uid = rig.customer("Ann Caller", "+447700900123")
    earlier = rig.sandbox.create_ticket(  # would be reused if the timeout were taken as set
        {"subject": "Earlier", "comment": {"body": "x"}, "requester_id": uid},
        caller_id=rig.agent_user_id,
    ).id
    await rig.start()
    tabs = [await rig.tab() for _ in range(2)]
    snap = voice(attributes=BAD)
    await report_all(tabs, "incoming", "c-1", snap)
    await until(lambda: all("c-1" in t.contacts for t in tabs))
    await until(lambda: len(tabs[1].contacts["c-1"].warnings) >= len(EXPECTED_WARNINGS))
    for tab in tabs:  # every tab sees them on the contact
        for expected in EXPECTED_WARNINGS:
            assert expected in tab.contacts["c-1"].warnings, tab.contacts["c-1"].warnings
    assert any("customer_language" in w for w in tabs[0].contacts["c-1"].warnings)
    await report_all(tabs, "connected", "c-1", snap)
    await report_all(tabs, "ended", "c-1", snap)
    await rig.finished("c-1")
    await settle()

    view = tabs[0].contacts["c-1"]
    assert view.mode == "auto"
    assert len(view.warnings) == len(set(view.warnings))  # each reported once
    (ticket,) = rig.tickets("c-1")  # a new ticket: the earlier one was not reused
    assert ticket["id"] != earlier and ticket["requester_id"] == uid  # found by the CLI
    assert len(details(ticket)) == 1 and len(voice_comments(ticket)) == 1
    assert [u["id"] for u in rig.end_users()] == [uid]
