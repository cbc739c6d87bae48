"""Contacts confirmed by Amazon Connect (issue 12, item 3): with an instance configured, a
contact is described by Connect before the daemon believes a tab about it.

Daemon configured with an instance served by the Connect sandbox (real AWS SDK over HTTP),
real tabs over WebSockets, the Zendesk sandbox over HTTP.
"""

from typing import Any

from aiohttp.test_utils import TestServer

from clients.python.tab import TabClient
from daemon.app import Daemon
from daemon.connect.sandbox import Fault, SandboxContact
from protocol.messages import Error
from tests.daemons import token
from tests.e2e.conftest import (
    CLI,
    CONNECT_USER,
    Rig,
    connect_sandbox,
    details,
    errors,
    notices,
    report_all,
    settle,
    until,
    voice,
    with_connect,
)

BOB, BOB_CONNECT = "agent-bob", "u-bob"


def confirmations(daemon: Daemon, outcome: str, attempt: str = "first") -> float:
    value = daemon.metrics.registry.get_sample_value(
        "switchboard_connect_confirmations_total", {"outcome": outcome, "attempt": attempt}
    )
    return value or 0.0


def describes(server: TestServer, contact_id: str) -> int:
    return sum(
        1
        for c in connect_sandbox(server).calls
        if c["operation"] == "DescribeContact" and c["params"]["ContactId"] == contact_id
    )


def in_connect(server: TestServer, contact_id: str, **fields: Any) -> None:
    connect_sandbox(server).contacts[contact_id] = SandboxContact(contact_id, **fields)


async def report(tab: TabClient, event: str, contact_id: str, ref: str, **snap: Any) -> None:
    """A contact event carrying `ref`, so its refusal can be matched to it."""
    contact = {"contact_id": contact_id, **snap}
    await tab.send_raw({"type": "contact_event", "event": event, "contact": contact, "ref": ref})


async def bob_tab(rig: Rig, server: TestServer) -> TabClient:
    """A second agent, Bob: his own Zendesk user and his own Connect user."""
    bob = rig.sandbox.create_user(
        name="Bob Agent", email="bob@agents.example", role="agent", indexed=True
    )
    connect_sandbox(server).users[BOB_CONNECT] = {"username": "bob", "email": "bob@agents.example"}
    tab = TabClient(
        rig.ws_url(), token(BOB, zendesk_user_id=bob.id, name="Bob Agent"), tab_id="bob-1"
    )
    await tab.connect()
    rig.tabs.append(tab)
    return tab


async def test_a_contact_connect_does_not_know_is_refused(rig: Rig, connect: TestServer) -> None:
    await rig.start(**with_connect(connect))
    tabs = [await rig.tab() for _ in range(2)]
    for i, tab in enumerate(tabs):
        await report(tab, "incoming", "c-ghost", f"r-{i}", **voice())
        await report(tab, "connected", "c-ghost", f"s-{i}", **voice())
    await until(lambda: all(len(errors(t, "contact_not_in_connect")) == 2 for t in tabs))
    for i, tab in enumerate(tabs):
        refusals: list[Error] = errors(tab, "contact_not_in_connect")
        assert [e.ref for e in refusals] == [f"r-{i}", f"s-{i}"]
    await settle()
    assert all("c-ghost" not in t.contacts and not t.of_type("contact") for t in tabs)
    assert "c-ghost" not in (await rig.agent_state()).contacts  # nothing held, nobody elected
    assert await rig.daemon.store.workflows_list() == [] and rig.tickets() == []
    assert describes(connect, "c-ghost") == 1  # the answer is kept: asked once for 4 reports
    assert confirmations(rig.daemon, "contact_not_in_connect") == 1


async def test_another_agents_contact_is_refused_but_monitoring_it_is_not(
    rig: Rig, connect: TestServer
) -> None:
    connect_sandbox(connect).users[BOB_CONNECT] = {"username": "bob", "email": "b@x.example"}
    in_connect(connect, "c-bob", agent_user_id=BOB_CONNECT, customer_endpoint=CLI)
    in_connect(connect, "c-bob-2", agent_user_id=BOB_CONNECT, customer_endpoint=CLI)
    await rig.start(**with_connect(connect))
    tab = await rig.tab()
    await report(tab, "incoming", "c-bob", "r-1", **voice())
    await until(lambda: len(errors(tab, "contact_not_yours")) == 1)
    assert errors(tab, "contact_not_yours")[0].ref == "r-1"

    # A supervisor's monitoring leg of Bob's call: held (no Zendesk work), not refused.
    await report(tab, "connected", "c-bob-2", "r-2", **voice(monitoring=True))
    await until(lambda: "c-bob-2" in tab.contacts)
    assert tab.contacts["c-bob-2"].confirmation == "confirmed"
    await report(tab, "ended", "c-bob-2", "r-3", **voice(monitoring=True))
    await settle()
    assert "c-bob" not in tab.contacts and len(errors(tab, "contact_not_yours")) == 1
    assert rig.tickets() == []
    assert confirmations(rig.daemon, "contact_not_yours") == 1
    assert confirmations(rig.daemon, "confirmed") == 1


async def test_attributes_and_caller_come_from_connect_not_the_tab(
    rig: Rig, connect: TestServer
) -> None:
    flow = {"customer_name": "Ada From Connect", "ticket_assignment": "auto"}
    in_connect(
        connect,
        "c-1",
        agent_user_id=CONNECT_USER,
        customer_endpoint="+447700900999",
        attributes=flow,
    )
    await rig.start(**with_connect(connect))
    tabs = [await rig.tab() for _ in range(2)]
    forged = voice(attributes={"customer_name": "Mallory", "zendesk_ticket": "1"})
    await report_all(tabs, "incoming", "c-1", forged)
    await until(lambda: all("c-1" in t.contacts for t in tabs))
    assert all(t.contacts["c-1"].confirmation == "confirmed" for t in tabs)
    assert tabs[0].contacts["c-1"].customer_endpoint == "+447700900999"
    await report_all(tabs, "connected", "c-1", forged)
    await report_all(tabs, "ended", "c-1", forged)
    await rig.finished("c-1")

    state = await rig.agent_state()
    assert dict(state.contacts["c-1"].attributes) == flow
    (user,) = rig.end_users()
    assert user["name"] == "Ada From Connect" and user["phone"] == "+447700900999"
    (ticket,) = rig.tickets("c-1")
    (note,) = details(ticket)
    assert "Ada From Connect" in note["body"] and "Mallory" not in note["body"]
    assert describes(connect, "c-1") == 1  # once for the contact, whichever tab asked


async def test_a_transfer_follows_connects_link_and_not_a_forged_one(
    rig: Rig, connect: TestServer
) -> None:
    in_connect(connect, "c-a", agent_user_id=CONNECT_USER, customer_endpoint=CLI)
    # Bob's leg is Connect's transfer of Erin's call; his tab does not even name it.
    in_connect(
        connect,
        "c-b",
        agent_user_id=BOB_CONNECT,
        initial_contact_id="c-a",
        previous_contact_id="c-a",
        initiation_method="TRANSFER",
        customer_endpoint=CLI,
    )
    # Bob's second call is no transfer in Connect, whatever his tab claims.
    in_connect(connect, "c-forged", agent_user_id=BOB_CONNECT, customer_endpoint="+447700900555")
    rig.customer("Ann Caller", CLI)
    await rig.start(**with_connect(connect))
    erin = await rig.tab()
    await erin.report("incoming", "c-a", **voice())
    await erin.report("connected", "c-a", **voice())
    await until(lambda: "c-a" in erin.contacts and erin.contacts["c-a"].ticket_id is not None)
    erins_ticket = erin.contacts["c-a"].ticket_id

    bob = await bob_tab(rig, connect)
    await bob.report("incoming", "c-b", **voice())
    await bob.report("connected", "c-b", **voice())
    await until(lambda: "c-b" in bob.contacts and bob.contacts["c-b"].ticket_id is not None)
    assert bob.contacts["c-b"].initial_contact_id == "c-a"  # Connect's link, not the tab's
    assert bob.contacts["c-b"].ticket_id == erins_ticket
    assert any(n.code == "transfer_linked" for n in notices(bob, "c-b"))

    forged = voice(cli="+447700900555", initial_contact_id="c-a")
    await bob.report("incoming", "c-forged", **forged)
    await bob.report("connected", "c-forged", **forged)
    await until(
        lambda: "c-forged" in bob.contacts and bob.contacts["c-forged"].ticket_id is not None
    )
    assert bob.contacts["c-forged"].initial_contact_id is None
    assert bob.contacts["c-forged"].ticket_id != erins_ticket
    assert not any(n.code == "transfer_linked" for n in notices(bob, "c-forged"))


async def test_connect_down_the_tab_is_believed_then_connect_settles_it(
    rig: Rig, connect: TestServer
) -> None:
    in_connect(
        connect,
        "c-1",
        agent_user_id=CONNECT_USER,
        customer_endpoint=CLI,
        attributes={"customer_name": "Ada From Connect"},
    )
    in_connect(connect, "c-2", agent_user_id="u-someone-else", customer_endpoint=CLI)
    connect_sandbox(connect).users["u-someone-else"] = {"username": "zed", "email": "z@x.example"}
    outage = Fault("DescribeContact", times=1000, error="InternalServiceException")
    connect_sandbox(connect).faults.append(outage)
    await rig.start(**with_connect(connect), connect_confirm_wait_seconds=0.5)
    assert rig.daemon.confirmer is not None
    rig.daemon.confirmer.retry_base = 0.3  # the backoff is not a setting: shorten it
    tab = await rig.tab()
    snap = voice(attributes={"customer_name": "Tab Name"})
    await tab.report("incoming", "c-1", **snap)
    await tab.report("incoming", "c-2", **snap)
    # Believed within the bounded wait, marked unconfirmed; the workflow goes on.
    await until(lambda: "c-1" in tab.contacts and "c-2" in tab.contacts, timeout=5.0)
    assert tab.contacts["c-1"].confirmation == "unconfirmed"
    assert tab.owns("c-1") and tab.owns("c-2")
    assert confirmations(rig.daemon, "unconfirmed") == 2

    outage.times = 0  # Connect is back: the background retry settles both
    await until(lambda: tab.contacts["c-1"].confirmation == "confirmed")
    await until(lambda: tab.contacts["c-2"].confirmation == "refused")
    state = await rig.agent_state()
    assert state.contacts["c-1"].attributes == {"customer_name": "Ada From Connect"}
    assert state.contacts["c-2"].refused == "contact_not_yours"
    (notice,) = [n for n in notices(tab, "c-2") if n.code == "contact_not_yours"]
    assert notice.level == "error"
    assert confirmations(rig.daemon, "confirmed", "retry") == 1
    assert confirmations(rig.daemon, "contact_not_yours", "retry") == 1

    await tab.report("connected", "c-1", **snap)
    await tab.report("ended", "c-1", **snap)
    await tab.report("ended", "c-2", **snap)
    await rig.finished("c-1")
    # Its Zendesk work stopped when Connect refused it: an operator must look at it.
    await rig.finished("c-2", status="failed", reason="contact_not_yours")
    assert len(rig.tickets("c-1")) == 1 and rig.tickets("c-2") == []
