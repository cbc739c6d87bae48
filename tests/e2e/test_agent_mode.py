"""Agent mode (`ticket_assignment=agent`): the daemon pops the user and waits for the agent.

Only the owning tab's commands count (an observer's is refused with `not_owner`), each is
honoured once however often it is sent, and `force_ticket_creation` (default true) makes a
ticket at the end when the agent attached none.
"""

from typing import Any

from clients.python.tab import TabClient
from tests.e2e.conftest import (
    Rig,
    details,
    errors,
    live_pops,
    notices,
    report_all,
    settle,
    until,
    voice,
    voice_comments,
)

AGENT_MODE = voice(attributes={"ticket_assignment": "agent"})


async def connected_in_agent_mode(
    rig: Rig, uid: int, snap: dict[str, Any] = AGENT_MODE
) -> list[TabClient]:
    tabs = [await rig.tab() for _ in range(2)]
    await report_all(tabs, "incoming", "c-1", snap)
    await until(lambda: all("c-1" in t.contacts for t in tabs))
    await report_all(tabs, "connected", "c-1", snap)
    await until(lambda: tabs[0].contacts["c-1"].mode == "agent")
    await until(lambda: live_pops(tabs[0], "c-1") == [("user", uid)])
    await until(lambda: all(t.contacts["c-1"].state == "connected" for t in tabs))
    return tabs


async def refused(tab: TabClient, code: str, before: int) -> None:
    await until(lambda: len(errors(tab, code)) > before)


async def test_create_ticket_command_from_owner_once_observer_refused(rig: Rig) -> None:
    uid = rig.customer("Ann Caller", "+447700900123")
    await rig.start()
    owner, observer = await connected_in_agent_mode(rig, uid)
    assert owner.owns("c-1") and not observer.owns("c-1")
    await settle(0.3)
    assert rig.tickets() == []  # agent mode: nothing until the agent decides

    await observer.command("create_ticket", "c-1", user_id=uid)
    await refused(observer, "not_owner", 0)
    await settle(0.3)
    assert rig.tickets() == []

    await owner.command("create_ticket", "c-1", user_id=uid)
    await until(lambda: owner.contacts["c-1"].ticket_id is not None)
    ticket_id = owner.contacts["c-1"].ticket_id
    await until(lambda: live_pops(owner, "c-1") == [("user", uid), ("ticket", ticket_id)])
    await settle()
    # The ticket the agent asked for is no news: no notice says it "was already created".
    assert notices(owner, "c-1") == []
    # a second click: the contact's one new ticket is attached again, not a new one
    await owner.command("create_ticket", "c-1", user_id=uid)
    await until(lambda: notices(owner, "c-1") != [])
    await report_all([owner, observer], "ended", "c-1", AGENT_MODE)
    await rig.finished("c-1")
    await settle()

    (ticket,) = rig.tickets()
    assert ticket["id"] == ticket_id and ticket["requester_id"] == uid
    assert len(details(ticket)) == 1 and len(voice_comments(ticket)) == 1
    assert [u["id"] for u in rig.end_users()] == [uid]
    assert [(n.level, n.code, n.text) for n in notices(owner)] == [
        ("info", "ticket_already_created",
         f"A ticket was already created for this contact: #{ticket_id}"),
    ]  # fmt: skip
    # The user at once; the ticket when created; the ticket again when the call ended.
    assert live_pops(owner, "c-1") == [("user", uid), ("ticket", ticket_id), ("ticket", ticket_id)]
    assert live_pops(observer, "c-1") == [] and notices(observer) == []


async def test_attach_to_current_from_owner_once(rig: Rig) -> None:
    uid = rig.customer("Ann Caller", "+447700900123")
    earlier = rig.sandbox.create_ticket(
        {"subject": "Earlier issue", "comment": {"body": "It broke"}, "requester_id": uid},
        caller_id=rig.agent_user_id,
    ).id
    await rig.start()
    owner, observer = await connected_in_agent_mode(rig, uid)
    await observer.command("attach_to_current", "c-1", ticket_id=earlier)
    await refused(observer, "not_owner", 0)
    await owner.command("attach_to_current", "c-1", ticket_id=earlier)
    await until(lambda: observer.contacts["c-1"].ticket_id == earlier)
    await until(lambda: len(details(rig.state()["tickets"][0])) == 1)
    await report_all([owner, observer], "ended", "c-1", AGENT_MODE)
    await rig.finished("c-1")
    await settle()

    (ticket,) = rig.tickets()  # no new ticket: force_ticket_creation is not needed
    assert ticket["id"] == earlier
    assert len(details(ticket)) == 1 and len(voice_comments(ticket)) == 1
    assert len(ticket["comments"]) == 3  # the original description, the details, the call
    assert live_pops(owner, "c-1") == [("user", uid), ("ticket", earlier), ("ticket", earlier)]


async def test_force_ticket_creation_at_the_end(rig: Rig) -> None:
    uid = rig.customer("Ann Caller", "+447700900123")
    await rig.start()
    tabs = await connected_in_agent_mode(rig, uid)
    await settle(0.3)
    assert rig.tickets() == []
    await report_all(tabs, "ended", "c-1", AGENT_MODE)
    await rig.finished("c-1")
    await settle()

    (ticket,) = rig.tickets("c-1")
    assert ticket["requester_id"] == uid
    assert ticket["external_id"] == rig.identity("c-1").external_id
    assert len(details(ticket)) == 1 and len(voice_comments(ticket)) == 1
    assert live_pops(tabs[0], "c-1") == [("user", uid), ("ticket", ticket["id"]),
                                         ("ticket", ticket["id"])]  # fmt: skip


async def test_no_forced_ticket_when_the_attribute_says_so(rig: Rig) -> None:
    uid = rig.customer("Ann Caller", "+447700900123")
    await rig.start()
    snap = voice(attributes={"ticket_assignment": "agent", "force_ticket_creation": "no"})
    tabs = await connected_in_agent_mode(rig, uid, snap)
    await report_all(tabs, "ended", "c-1", snap)
    await rig.finished("c-1")
    await settle()
    assert rig.tickets() == []
    assert rig.sandbox.request_count(method="PUT") == rig.sandbox.request_count("POST") == 0
