"""One inbound call seen by several tabs of one agent, through a real daemon.

Every tab's CCP reports every event; the daemon elects one owner and drives Zendesk itself,
so the sandbox must end with exactly one ticket (external_id = the contact's identity), one details
note, one voice comment and at most one new user, whatever the tabs do: report in triplicate,
reload the owning tab, close it for good, or all close before the work is done.
"""

from typing import Any

from clients.python.tab import TabClient
from tests.e2e.conftest import (
    CLI,
    DETAILS,
    Rig,
    details,
    live_pops,
    report_all,
    settle,
    until,
    voice,
    voice_comments,
)


def assert_one_call(rig: Rig, contact_id: str) -> dict[str, Any]:
    """Exactly one ticket for the contact, with one details note and one voice comment."""
    (ticket,) = rig.tickets(contact_id)
    assert len(details(ticket)) == 1, [c["body"][:40] for c in ticket["comments"]]
    assert len(voice_comments(ticket)) == 1
    assert ticket["comments"][0]["body"].startswith(DETAILS)
    assert all(not c["public"] for c in ticket["comments"])
    return ticket


def owner_of(tabs: list[TabClient], contact_id: str) -> TabClient:
    (owner,) = [t for t in tabs if t.owns(contact_id)]
    return owner


async def ticket_known(tabs: list[TabClient], contact_id: str) -> int:
    """Every tab's view of the contact carries the ticket (the daemon told them all)."""
    await until(
        lambda: all(
            t.contacts.get(contact_id) is not None and t.contacts[contact_id].ticket_id is not None
            for t in tabs
        )
    )
    return int(tabs[0].contacts[contact_id].ticket_id or 0)


# -- 1. three tabs, one call -------------------------------------------------------------------


async def test_three_tabs_unrecognised_caller(rig: Rig) -> None:
    await rig.start()
    tabs = [await rig.tab() for _ in range(3)]
    snap = voice(attributes={"customer_name": "Newt Caller"})
    await report_all(tabs, "incoming", "c-1", snap)
    await until(lambda: all("c-1" in t.contacts for t in tabs))
    await report_all(tabs, "connected", "c-1", snap)
    ticket_id = await ticket_known(tabs, "c-1")
    await report_all(tabs, "ended", "c-1", snap)
    await rig.finished("c-1")
    await settle()

    owner = owner_of(tabs, "c-1")
    assert owner is tabs[0]  # the first tab that reported it
    (user,) = rig.end_users()  # one new user for the unrecognised caller
    assert (user["name"], user["phone"]) == ("Newt Caller", CLI)
    ticket = assert_one_call(rig, "c-1")
    assert ticket["id"] == ticket_id
    assert ticket["requester_id"] == user["id"]
    assert ticket["assignee_id"] == ticket["submitter_id"] == rig.agent_user_id
    assert ticket["subject"] == "Incoming call from Newt Caller"
    assert len(rig.tickets()) == 1
    # Pops go to the owner only, each once: the ticket when it is attached, and the ticket
    # again when the call ends (the agent is routed to it). Observers never pop.
    assert live_pops(owner, "c-1") == [("ticket", ticket_id), ("ticket", ticket_id)]
    assert all(live_pops(t, "c-1") == [] for t in tabs if t is not owner)
    # Pops travel through the owner's tab, not Talk Partner's display endpoint.
    assert rig.state()["pops"] == []
    views = {t.contacts["c-1"] for t in tabs}
    assert len(views) == 1  # every tab holds the same merged view
    (view,) = views
    assert (view.state, view.user_id, view.mode) == ("ended", user["id"], "auto")


async def test_three_tabs_recognised_caller(rig: Rig) -> None:
    uid = rig.customer("Ann Caller", "+44 7700 900123")
    await rig.start()
    tabs = [await rig.tab() for _ in range(3)]
    snap = voice()
    await report_all(tabs, "incoming", "c-1", snap)
    # pop_incoming (default true): the known user pops before the call is accepted
    await until(lambda: live_pops(tabs[0], "c-1") == [("user", uid)])
    await report_all(tabs, "connected", "c-1", snap)
    ticket_id = await ticket_known(tabs, "c-1")
    await report_all(tabs, "ended", "c-1", snap)
    await rig.finished("c-1")
    await settle()

    assert [u["id"] for u in rig.end_users()] == [uid]  # nobody new
    ticket = assert_one_call(rig, "c-1")
    assert ticket["requester_id"] == uid
    assert ticket["subject"] == "Incoming call from Ann Caller"
    assert live_pops(tabs[0], "c-1") == [
        ("user", uid),
        ("ticket", ticket_id),
        ("ticket", ticket_id),
    ]
    assert live_pops(tabs[1], "c-1") == live_pops(tabs[2], "c-1") == []
    assert tabs[1].contacts["c-1"].user_id == uid


# -- 2. the owner reloads mid-call --------------------------------------------------------------


async def test_owner_reloads_mid_call(rig: Rig) -> None:
    # A grace period long enough that the reload always lands inside it.
    await rig.start(grace_seconds=5.0)
    tabs = [await rig.tab() for _ in range(3)]
    snap = voice(attributes={"customer_name": "Newt Caller"})
    await report_all(tabs, "incoming", "c-1", snap)
    await until(lambda: all("c-1" in t.contacts for t in tabs))
    await report_all(tabs, "connected", "c-1", snap)
    ticket_id = await ticket_known(tabs, "c-1")
    old = owner_of(tabs, "c-1")
    await until(lambda: len(live_pops(old, "c-1")) == 1)

    # Reload: the page unloads (clean close), a new page comes with the tab id from
    # sessionStorage and the last position it saw, but no session (that was page memory).
    await old.close()
    await until(lambda: tabs[1].contacts["c-1"].grace_until is not None)
    reloaded = await rig.tab(old.tab_id, resume=old.position)
    assert reloaded.tab_id == old.tab_id and not reloaded.welcome.tab_id_reassigned
    await until(lambda: reloaded.owns("c-1") and reloaded.contacts["c-1"].grace_until is None)
    assert reloaded.contacts["c-1"].epoch == old.contacts["c-1"].epoch  # same ownership
    # the reloaded page must not pop again what it already popped
    assert live_pops(reloaded, "c-1") == []
    # its CCP fires the events again for the call in progress (Streams does): harmless
    await reloaded.report("connected", "c-1", **snap)

    others = [t for t in tabs if t is not old]
    await report_all([reloaded, *others], "ended", "c-1", snap)
    await rig.finished("c-1")
    await until(lambda: len(live_pops(reloaded, "c-1")) == 1)
    await settle()

    assert len(rig.end_users()) == 1
    ticket = assert_one_call(rig, "c-1")
    assert ticket["id"] == ticket_id and len(ticket["comments"]) == 2
    assert live_pops(reloaded, "c-1") == [("ticket", ticket_id)]  # the end-of-call routing
    assert all(live_pops(t, "c-1") == [] for t in others)


# -- 3. the owner goes for good; then nobody is left ------------------------------------------


async def test_owner_closes_for_good_another_tab_takes_over(rig: Rig) -> None:
    await rig.start(grace_seconds=0.5)
    tabs = [await rig.tab() for _ in range(3)]
    snap = voice(attributes={"customer_name": "Newt Caller"})
    await report_all(tabs, "incoming", "c-1", snap)
    await until(lambda: all("c-1" in t.contacts for t in tabs))
    await report_all(tabs, "connected", "c-1", snap)
    ticket_id = await ticket_known(tabs, "c-1")
    old = owner_of(tabs, "c-1")
    epoch = old.contacts["c-1"].epoch
    await old.close()

    rest = [t for t in tabs if t is not old]
    await until(lambda: any(t.owns("c-1") for t in rest))
    heir = owner_of(rest, "c-1")
    assert heir.contacts["c-1"].epoch > epoch  # a new fencing epoch
    await report_all(rest, "ended", "c-1", snap)
    await rig.finished("c-1")
    await until(lambda: live_pops(heir, "c-1") == [("ticket", ticket_id)])
    await settle()

    assert len(rig.end_users()) == 1
    assert_one_call(rig, "c-1")


async def test_end_of_contact_work_completes_with_no_tab_left(rig: Rig) -> None:
    await rig.start(grace_seconds=0.5)
    tabs = [await rig.tab() for _ in range(2)]
    snap = voice(
        attributes={"customer_name": "Newt Caller", "speech_analysis": "sentiment"},
        analysis={"sentiment": "POSITIVE"},
    )
    await report_all(tabs, "incoming", "c-1", snap)
    await report_all(tabs, "connected", "c-1", snap)
    ticket_id = await ticket_known(tabs, "c-1")
    # Zendesk refuses every ticket update for now: the end-of-contact work cannot be done
    # while the tabs are still there.
    await rig.add_faults(
        [{"kind": "error", "method": "PUT", "path": "/api/v2/tickets/*", "status": 503,
          "count": None}]
    )  # fmt: skip
    await report_all(tabs, "ended", "c-1", snap)
    await until(lambda: rig.sandbox.request_count("PUT") >= 1)
    for tab in tabs:
        await tab.close()

    async def nobody_left() -> bool:
        return not any(t.connected for t in (await rig.agent_state()).tabs.values())

    await until(nobody_left)
    assert voice_comments(rig.tickets("c-1")[0]) == []  # nothing done yet, nobody left

    await rig.clear_faults()  # Zendesk is back; no tab is
    await rig.finished("c-1")
    await settle()
    ticket = assert_one_call(rig, "c-1")
    assert ticket["id"] == ticket_id
    analysis = [c for c in ticket["comments"] if c["body"].startswith("Speech analysis")]
    assert len(analysis) == 1  # asked for by the attributes, written once
    assert "Sentiment:\nPOSITIVE" in analysis[0]["body"]
