"""Zendesk requests per contact through the daemon, on the common paths.

Counted by the sandbox (every API request, by method and path template), printed (run with
`-s` to see them), and bounded by the figures in `daemon/core/workflow/policy.py`'s
docstring. The same traffic is then checked against Zendesk's OpenAPI description.
"""

from collections import Counter
from typing import Any

from clients.python.tab import TabClient
from daemon.sandbox import SANDBOX_KEY
from tests.e2e.conftest import Rig, chat, live_pops, report_all, settle, until, voice
from tests.oas import assert_exchanges_valid

# (path, bound from the policy docstring)
BOUNDS = {
    "recognised caller, auto mode": 3,
    "unrecognised caller, auto mode": 4,
    "agent mode, forced ticket at the end": 3,
    "agent mode, create_ticket command": 3,
    # +1: the first write to a ticket the contact did not create reads its comments first
    # (the contact's own earlier writes may be there if the store lost its journal)
    "agent mode, attach_to_current command": 4,
    "chat recognised by email, auto mode": 3,
}


async def one_contact(
    rig: Rig, tabs: list[TabClient], path: str, contact_id: str, uid: int, earlier: int
) -> Counter[str]:
    before = Counter(rig.requests())
    attrs: dict[str, str] = {}
    if path.startswith("agent mode"):
        attrs["ticket_assignment"] = "agent"
    if path.startswith("unrecognised"):
        snap = voice(cli="+15550001111", attributes={"customer_name": "Newt Caller"})
    elif path.startswith("chat"):
        snap = chat(attributes={"customer_email": "ann@example.org"})
    else:
        snap = voice(attributes=attrs)
    await report_all(tabs, "incoming", contact_id, snap)
    await until(lambda: all(contact_id in t.contacts for t in tabs))
    await report_all(tabs, "connected", contact_id, snap)
    if path.startswith("agent mode"):
        await until(lambda: ("user", uid) in live_pops(tabs[0], contact_id))
        await until(lambda: tabs[0].contacts[contact_id].state == "connected")
    if path.endswith("create_ticket command"):
        await tabs[0].command("create_ticket", contact_id, user_id=uid)
        await until(lambda: tabs[0].contacts[contact_id].ticket_id is not None)
    if path.endswith("attach_to_current command"):
        await tabs[0].command("attach_to_current", contact_id, ticket_id=earlier)
        await until(lambda: tabs[0].contacts[contact_id].ticket_id == earlier)
    if path.startswith("chat"):
        await tabs[1].chat(contact_id, "m1", "customer", "Hello")
    await report_all(tabs, "ended", contact_id, snap)
    await rig.finished(contact_id)
    await settle(0.3)
    return Counter(rig.requests()) - before


async def test_requests_per_contact_on_the_common_paths(rig: Rig) -> None:
    uid = rig.customer("Ann Caller", "+447700900123", email="ann@example.org")
    earlier = rig.sandbox.create_ticket(
        {"subject": "Earlier", "comment": {"body": "x"}, "requester_id": uid},
        caller_id=rig.agent_user_id,
    ).id
    await rig.start()
    tabs = [await rig.tab() for _ in range(3)]
    rig.sandbox.exchanges.clear()
    used: dict[str, Counter[str]] = {}
    for n, path in enumerate(BOUNDS, start=1):
        used[path] = await one_contact(rig, tabs, path, f"c-{n}", uid, earlier)

    print("\nZendesk requests per contact through the daemon (3 tabs each):")
    for path, counts in used.items():
        detail = ", ".join(f"{k} x{v}" for k, v in sorted(counts.items()))
        print(f"  {path}: {sum(counts.values())} (bound {BOUNDS[path]}) - {detail}")
    over: dict[str, Any] = {
        p: sum(c.values()) for p, c in used.items() if sum(c.values()) > BOUNDS[p]
    }
    assert over == {}, used
    # every contact got its ticket; the recorded traffic is what Zendesk documents
    assert all(tabs[0].contacts[f"c-{n}"].ticket_id for n in range(1, len(BOUNDS) + 1))
    checked = assert_exchanges_valid(rig.server.app[SANDBOX_KEY], min_count=15)
    assert checked == sum(sum(c.values()) for c in used.values())
