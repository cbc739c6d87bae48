"""Several real tabs of one agent: one owner per call, reloads, duplicates, closed owners.

Each tab is a top-level `/demo/tab` page (the real JS client with a simulated Streams); a
`/demo?tabs=0` page plays Amazon Connect and fires every contact event in every tab, as Streams
does. Pages of one browser context share BroadcastChannels but not sessionStorage, like
separate browser tabs.
"""

import json
from typing import Any

import pytest

from tests.browser.daemon_process import GRACE_SECONDS, Daemon
from tests.browser.pages import (
    ConnectPage,
    DemoPage,
    Screenshot,
    TabPage,
    connected_call,
    eventually,
    settle,
)

pytestmark = pytest.mark.browser


def _voice_comments(daemon: Daemon, contact_id: str) -> list[dict[str, Any]]:
    tickets = daemon.tickets_for(contact_id)
    return [c for t in tickets for c in t["comments"] if c.get("type") == "VoiceComment"]


def _assert_end_of_call_once(daemon: Daemon, contact_id: str) -> None:
    eventually(lambda: _voice_comments(daemon, contact_id), timeout=20, what="the voice comment")
    tickets = settle(lambda: daemon.tickets_for(contact_id), quiet=2.5)
    assert len(tickets) == 1, "one ticket per contact"
    bodies = [c["body"] for c in tickets[0]["comments"]]
    assert len(bodies) == len(set(bodies)), f"a comment was added twice: {bodies}"
    assert len(_voice_comments(daemon, contact_id)) == 1


def test_three_tabs_one_call_one_pop_one_ticket(daemon: Daemon, context: Any, agent: str) -> None:
    connect = ConnectPage.open(context, daemon.base, agent)
    tabs = [TabPage.open(context, daemon.base, agent) for _ in range(3)]
    assert len({t.tab_id for t in tabs}) == 3, "three distinct tabs"

    contact_id, owner, ticket = connected_call(daemon, connect, tabs, "+441632960101")

    observers = [t for t in tabs if t is not owner]
    assert [t.role(contact_id) for t in observers] == ["observer", "observer"]
    assert owner.role_shown(contact_id) == "OWNER"
    assert [t.role_shown(contact_id) for t in observers] == ["observer", "observer"]
    settle(owner.pops)
    assert all(t.pops() == [] for t in observers), "observers never pop"
    pops = owner.pops()
    assert {p["contact_id"] for p in pops} == {contact_id}
    assert {"target": "ticket", "id": ticket["id"]} in [
        {"target": p["target"], "id": p["id"]} for p in pops
    ]
    assert len({p["pos"] for p in pops}) == len(pops), "no pop acted on twice"
    assert len(daemon.tickets_for(contact_id)) == 1


def test_owner_reloads_mid_call(daemon: Daemon, context: Any, agent: str) -> None:
    connect = ConnectPage.open(context, daemon.base, agent)
    tabs = [TabPage.open(context, daemon.base, agent) for _ in range(3)]
    contact_id, owner, _ = connected_call(daemon, connect, tabs, "+441632960102")
    popped_before = settle(owner.pops)
    tab_id = owner.tab_id

    owner.reload()

    assert owner.tab_id == tab_id, "a reloaded tab keeps its id"
    eventually(lambda: owner.role(contact_id) == "owner", what="the reloaded tab owns the call")
    assert owner.view(contact_id)["state"] == "connected"
    assert settle(owner.pops, quiet=2.0) == [], "the reload popped nothing again"
    assert all(t.role(contact_id) == "observer" for t in tabs if t is not owner)

    connect.end(contact_id)
    _assert_end_of_call_once(daemon, contact_id)
    popped = popped_before + owner.pops()
    assert len({p["pos"] for p in popped}) == len(popped), f"a pop was acted on twice: {popped}"
    assert all(t.pops() == [] for t in tabs if t is not owner)


def test_duplicated_tab_is_a_new_tab_and_owns_nothing(
    daemon: Daemon, context: Any, agent: str
) -> None:
    connect = ConnectPage.open(context, daemon.base, agent)
    original = TabPage.open(context, daemon.base, agent)
    contact_id, owner, _ = connected_call(daemon, connect, [original], "+441632960103")
    assert owner is original

    # A browser duplicates a tab with a copy of its sessionStorage (not its page memory).
    storage = original.session_storage()
    assert storage["switchboard.embedded.tab_id"] == original.tab_id
    page = context.new_page()
    page.add_init_script(
        "(items => { if (sessionStorage.getItem('__copied')) return;"
        " for (const [k, v] of Object.entries(items)) sessionStorage.setItem(k, v);"
        f" sessionStorage.setItem('__copied', '1'); }})({json.dumps(storage)})"
    )
    page.goto(f"{daemon.base}/demo/tab?agent={agent}")
    duplicate = TabPage(page)
    duplicate.wait_open()

    assert duplicate.tab_id != original.tab_id, "the duplicate got a new id"
    assert duplicate.session_storage()["switchboard.embedded.tab_id"] == duplicate.tab_id
    assert page.locator("#reassigned").is_visible()
    eventually(lambda: duplicate.role(contact_id) == "observer", what="the duplicate observes")
    assert original.role(contact_id) == "owner"
    assert duplicate.js("sb.client.owned().length") == 0
    assert settle(duplicate.pops, quiet=1.5) == []
    owners = [c["owner_tab"] for c in daemon.agent(agent)["contacts"]]
    assert owners == [original.tab_id]


def test_closed_owner_fails_over_and_the_call_completes(
    daemon: Daemon, context: Any, agent: str
) -> None:
    connect = ConnectPage.open(context, daemon.base, agent)
    tabs = [TabPage.open(context, daemon.base, agent) for _ in range(3)]
    contact_id, owner, _ = connected_call(daemon, connect, tabs, "+441632960104")
    epoch = owner.view(contact_id)["epoch"]
    survivors = [t for t in tabs if t is not owner]

    owner.page.close()

    eventually(
        lambda: survivors[0].view(contact_id).get("grace_until"),
        what="the contact waits for its owner",
    )
    assert all(t.role(contact_id) == "observer" for t in survivors), "not before the grace"
    heir = eventually(
        lambda: [t for t in survivors if t.role(contact_id) == "owner"],
        timeout=GRACE_SECONDS + 10,
        what="failover to a surviving tab",
    )
    assert len(heir) == 1
    assert heir[0].view(contact_id)["epoch"] > epoch, "a new owner, a new epoch"

    connect.end(contact_id)
    _assert_end_of_call_once(daemon, contact_id)


def test_demo_page_screenshot(
    daemon_with: Any, context: Any, agent: str, screenshot: Screenshot
) -> None:
    daemon = daemon_with()  # its own sandbox: the picture shows this call's ticket only
    demo = DemoPage.open(context, daemon.base, agent, tabs=3)
    contact_id = demo.place("inbound", number="+441632960105")
    demo.call(contact_id, "accept")
    ticket = eventually(lambda: daemon.tickets_for(contact_id), what="the ticket")[0]

    def roles() -> list[str]:
        return sorted(str(demo.role(s, contact_id)) for s in demo.open_slots())

    eventually(lambda: "None" not in roles(), what="every iframe sees the call")
    assert roles() == ["observer", "observer", "owner"]
    owner = demo.owner_slot(contact_id)
    eventually(lambda: demo.workspace(owner) == f"Ticket #{ticket['id']}", what="the pop")
    demo.page.wait_for_selector(f'.ticket[data-ticket-id="{ticket["id"]}"]')  # the sandbox view
    demo.page.wait_for_timeout(500)
    screenshot(demo.page, "demo", full_page=True)
