"""The pops and notices a tab receives for each kind of contact, exactly and in order: what
protocol/README.md ("The pop sequence") promises. Inbound calls and agent mode are asserted
where their workflows are tested (test_voice.py, test_agent_mode.py); a second chat in
test_chat.py. Every sequence goes to the owning tab only.
"""

from typing import Any

from clients.python.tab import TabClient
from tests.e2e.conftest import Rig, chat, live_pops, notices, report_all, settle, until, voice


def told(tab: TabClient, contact_id: str) -> list[tuple[str, str]]:
    return [(n.level, n.code) for n in notices(tab, contact_id)]


async def two_tabs(rig: Rig) -> tuple[TabClient, TabClient]:
    await rig.start()
    return await rig.tab(), await rig.tab()


async def test_outbound_click_to_dial(rig: Rig) -> None:
    uid = rig.customer("Ann Caller", "+447700900123")
    owner, observer = await two_tabs(rig)
    snap = voice(direction="outbound", click_to_dial={"kind": "user", "id": uid})
    await report_all([owner, observer], "connecting", "c-1", snap)
    await until(lambda: live_pops(owner, "c-1") == [("user", uid)])  # before it connects
    await report_all([owner, observer], "connected", "c-1", snap)
    await until(lambda: owner.contacts["c-1"].ticket_id is not None)
    await report_all([owner, observer], "ended", "c-1", snap)
    await rig.finished("c-1")
    await settle()

    (ticket,) = rig.tickets("c-1")
    assert ticket["subject"] == "Outgoing call to Ann Caller"
    tid = ticket["id"]
    assert live_pops(owner, "c-1") == [("user", uid), ("ticket", tid), ("ticket", tid)]
    assert told(owner, "c-1") == []
    assert live_pops(observer, "c-1") == [] and notices(observer) == []


async def test_outbound_to_an_unknown_number_pops_nothing(rig: Rig) -> None:
    owner, observer = await two_tabs(rig)
    snap = voice(cli="+447700900999", direction="outbound")
    for event in ("connecting", "connected", "ended"):
        await report_all([owner, observer], event, "c-1", snap)
    await rig.finished("c-1")
    await settle()
    assert rig.tickets() == []  # no ticket unless all_outbound
    assert live_pops(owner, "c-1") == [] and told(owner, "c-1") == []


async def test_chat_recognised_by_email(rig: Rig) -> None:
    uid = rig.customer("Ann Chatter", email="ann@example.org")
    owner, observer = await two_tabs(rig)
    snap = chat(attributes={"customer_email": "ann@example.org"})
    await report_all([owner, observer], "connecting", "ch-1", snap)
    await until(lambda: live_pops(owner, "ch-1") == [("user", uid)])
    await report_all([owner, observer], "connected", "ch-1", snap)
    await until(lambda: owner.contacts["ch-1"].ticket_id is not None)
    await owner.chat("ch-1", "m1", "customer", "Hello")
    await report_all([owner, observer], "ended", "ch-1", snap)
    await rig.finished("ch-1")
    await settle()

    (ticket,) = rig.tickets("ch-1")
    tid = ticket["id"]
    assert live_pops(owner, "ch-1") == [("user", uid), ("ticket", tid), ("ticket", tid)]
    assert told(owner, "ch-1") == []
    assert live_pops(observer, "ch-1") == [] and notices(observer) == []


async def test_chat_with_several_matches_asks_the_agent_to_search(rig: Rig) -> None:
    rig.customer("Ann Chatter", email="ann@example.org")
    rig.customer("Ann Chatter", email="ann.chatter@example.com")
    owner, observer = await two_tabs(rig)
    snap = chat(attributes={"customer_name": "Ann Chatter"})
    for event in ("connecting", "connected", "ended"):
        await report_all([owner, observer], event, "ch-1", snap)
    await rig.finished("ch-1")
    await settle()

    # Agent mode: the search, then the ticket forced at the end, once: attaching it and the
    # end of the contact come together here (no transcript between them), and one report
    # pops a ticket once.
    (ticket,) = rig.tickets("ch-1")
    pops = [(m.target, m.id, m.query) for m in owner.received if m.type == "pop"]
    assert pops == [("search", None, "Ann Chatter"), ("ticket", ticket["id"], None)]
    assert told(owner, "ch-1") == [("warning", "multiple_matches")]
    assert owner.contacts["ch-1"].mode == "agent"


async def test_transfer_to_the_first_contacts_ticket(rig: Rig) -> None:
    rig.customer("Ann Caller", "+447700900123")
    owner, observer = await two_tabs(rig)
    for event in ("incoming", "connected", "ended"):
        await report_all([owner, observer], event, "c-1", voice())
    await rig.finished("c-1")
    (ticket,) = rig.tickets("c-1")
    tid = ticket["id"]

    leg: dict[str, Any] = voice(initial_contact_id="c-1")
    await report_all([owner, observer], "incoming", "c-2", leg)
    await until(lambda: live_pops(owner, "c-2") == [("ticket", tid)])  # before it connects
    await report_all([owner, observer], "connected", "c-2", leg)
    await report_all([owner, observer], "ended", "c-2", leg)
    await rig.finished("c-2")
    await settle()

    assert rig.tickets("c-2") == [] and owner.contacts["c-2"].ticket_id == tid
    # The linked ticket once (attaching it pops nothing new), then again at the end.
    assert live_pops(owner, "c-2") == [("ticket", tid), ("ticket", tid)]
    assert told(owner, "c-2") == [("info", "transfer_linked")]
    assert live_pops(observer, "c-2") == [] and notices(observer) == []


async def test_transfer_without_a_ticket_falls_to_agent_mode(rig: Rig) -> None:
    uid = rig.customer("Ann Caller", "+447700900123")
    owner, observer = await two_tabs(rig)
    leg = voice(initial_contact_id="elsewhere-1")
    await report_all([owner, observer], "incoming", "c-2", leg)
    await until(lambda: live_pops(owner, "c-2") == [("user", uid)])
    await report_all([owner, observer], "connected", "c-2", leg)
    await report_all([owner, observer], "ended", "c-2", leg)
    await rig.finished("c-2")
    await settle()

    (ticket,) = rig.tickets("c-2")  # forced at the end
    tid = ticket["id"]
    assert live_pops(owner, "c-2") == [("user", uid), ("ticket", tid), ("ticket", tid)]
    assert told(owner, "c-2") == [("warning", "transfer_ticket_not_found")]
    assert owner.contacts["c-2"].mode == "agent"
