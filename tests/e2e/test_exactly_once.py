"""Issue 11 through real daemons and tabs: a daemon that lost its state, another agent
reusing a contact id, and a command after the end.

The state loss is a daemon restart on the memory store (everything gone, as when Redis
restarts empty): the tabs reconnect to the new daemon and send their contacts' events again,
as Amazon Connect Streams does. Zendesk (the sandbox) keeps what it was sent.
"""

from typing import Any

from clients.python.tab import TabClient
from tests.e2e.conftest import (
    Rig,
    details,
    live_pops,
    report_all,
    settle,
    until,
    voice,
    voice_comments,
)

SNAP = voice(attributes={"customer_name": "Newt Caller"})
LIFECYCLE = ("incoming", "connected", "ended")


async def call(rig: Rig, tabs: list[TabClient], contact_id: str, snap: dict[str, Any]) -> None:
    """Every tab reports the call's lifecycle; returns once the workflow is finished."""
    for event in LIFECYCLE:
        await report_all(tabs, event, contact_id, snap)

        def reached(state: str = event) -> bool:
            return all(
                contact_id in t.contacts and t.contacts[contact_id].state == state for t in tabs
            )

        await until(reached)
    await rig.finished(contact_id)


async def test_a_daemon_that_lost_its_state_writes_nothing_twice(rig: Rig) -> None:
    await rig.start()
    tabs = [await rig.tab() for _ in range(2)]
    await call(rig, tabs, "c-1", SNAP)
    (ticket,) = rig.tickets("c-1")
    assert len(voice_comments(ticket)) == 1
    comments, users = len(ticket["comments"]), len(rig.end_users())
    for tab in tabs:
        await tab.close()
    await rig.daemon.stop()

    await rig.start()  # a new daemon on an empty store, the same Zendesk
    again = [await rig.tab(t.tab_id) for t in tabs]
    await call(rig, again, "c-1", SNAP)  # the tabs send the contact's events again
    await settle()
    (ticket,) = rig.tickets()
    assert len(ticket["comments"]) == comments and len(voice_comments(ticket)) == 1
    assert len(details(ticket)) == 1 and len(rig.end_users()) == users
    # the tabs of the new daemon were still told the ticket (and popped to it at the end)
    assert again[0].contacts["c-1"].ticket_id == ticket["id"]
    assert ("ticket", ticket["id"]) in live_pops(again[0], "c-1")


async def test_another_agent_reusing_a_contact_id_never_reaches_its_ticket(rig: Rig) -> None:
    await rig.start()
    mine = [await rig.tab()]
    await call(rig, mine, "c-1", SNAP)
    (ticket,) = rig.tickets("c-1")
    comments = list(ticket["comments"])

    other = TabClient(rig.ws_url(), rig.token("agent-b"), tab_id="b-1")
    await other.connect()
    rig.tabs.append(other)
    await call(rig, [other], "c-1", voice(cli="+15550001111"))
    await settle()
    (still,) = rig.tickets("c-1")
    assert still["comments"] == comments  # nothing of agent B's call on agent A's ticket
    theirs_id = rig.identity("c-1", "agent-b").external_id
    (theirs,) = [t for t in rig.state()["tickets"] if t.get("external_id") == theirs_id]
    assert len(voice_comments(theirs)) == 1
    assert other.contacts["c-1"].ticket_id == theirs["id"] != ticket["id"]
    assert all(pop_id != ticket["id"] for _, pop_id in live_pops(other, "c-1"))


async def test_a_create_ticket_command_after_the_end_makes_the_ticket(rig: Rig) -> None:
    uid = rig.customer("Ann Caller", "+447700900123")
    await rig.start()
    tabs = [await rig.tab()]
    snap = voice(attributes={"ticket_assignment": "agent", "force_ticket_creation": "no"})
    await call(rig, tabs, "c-1", snap)
    await settle(0.3)
    assert rig.tickets() == []
    await tabs[0].command("create_ticket", "c-1", user_id=uid)  # the agent, after hanging up
    await until(lambda: tabs[0].contacts["c-1"].ticket_id is not None)
    await rig.finished("c-1")
    (ticket,) = rig.tickets("c-1")
    assert ticket["requester_id"] == uid and len(voice_comments(ticket)) == 1
    assert ("ticket", ticket["id"]) in live_pops(tabs[0], "c-1")
