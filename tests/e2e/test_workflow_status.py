"""Where each contact's Zendesk work stands, as every tab, the admin view and the metrics see
it: `pending` while there is work left (however long Zendesk is out), `done`, `failed` with
the classified reason as soon as Zendesk refuses a step for good, `none` for no work.

The refusals and outages are the sandbox's fault injection, over real HTTP.
"""

from typing import Any

import aiohttp
import pytest

from clients.python.tab import TabClient
from tests.e2e.conftest import (
    CLI,
    Rig,
    live_pops,
    notices,
    report_all,
    settle,
    until,
    voice,
    voice_comments,
)
from tests.ops.scrape import scrape, value

CREATE = "/api/v2/channels/voice/tickets"
# A 403 on Talk Partner's endpoint reads as an account without it: the plain one is tried.
REFUSED_TICKET = [
    {"method": "POST", "path": path, "status": 403} for path in (CREATE, "/api/v2/tickets")
]
UPDATE = "/api/v2/tickets/*"
CONTACTS = "switchboard_workflow_contacts_total"


def statuses(tabs: list[TabClient], contact_id: str) -> set[tuple[str, str | None] | None]:
    """What the tabs show of the contact's workflow (None: a tab that has not seen it yet)."""
    views = [t.contacts.get(contact_id) for t in tabs]
    return {(v.workflow, v.workflow_reason) if v else None for v in views}


async def admin_view(rig: Rig, contact_id: str) -> dict[str, Any]:
    url = f"http://127.0.0.1:{rig.daemon.http_port}/admin/agents/agent-e2e"
    async with aiohttp.ClientSession() as http, http.get(url) as resp:
        assert resp.status == 200
        body = await resp.json()
    (view,) = [c for c in body["contacts"] if c["contact_id"] == contact_id]
    return dict(view)


async def test_a_call_is_pending_until_its_work_is_done(rig: Rig) -> None:
    rig.customer("Ann Caller", CLI)
    await rig.start()
    tabs = [await rig.tab() for _ in range(2)]
    await report_all(tabs, "incoming", "c-1", voice())
    await report_all(tabs, "connected", "c-1", voice())
    await until(lambda: len(rig.tickets("c-1")) == 1)
    await until(lambda: all(t.contacts["c-1"].ticket_id is not None for t in tabs))
    assert statuses(tabs, "c-1") == {("pending", None)}  # the end-of-call work is left
    await report_all(tabs, "ended", "c-1", voice())
    await rig.finished("c-1")
    view = await admin_view(rig, "c-1")
    assert (view["workflow"], view.get("workflow_reason")) == ("done", None)
    samples = await scrape(rig.daemon)
    assert value(samples, CONTACTS, status="done") == 1
    assert value(samples, CONTACTS, status="failed") == 0


@pytest.mark.parametrize(
    ("faults", "reason", "code"),
    [
        (REFUSED_TICKET, "forbidden", "ticket_create_failed"),
        ([{"path": UPDATE, "method": "PUT", "status": 422}], "invalid", "zendesk_refused"),
    ],
    ids=["403 on the ticket", "422 on the voice comment"],
)
async def test_a_permanent_refusal_fails_the_workflow_with_its_reason(
    rig: Rig, faults: list[dict[str, Any]], reason: str, code: str
) -> None:
    rig.customer("Ann Caller", CLI)
    await rig.start()
    tabs = [await rig.tab() for _ in range(2)]
    owner = tabs[0]
    await rig.add_faults([{"kind": "error", "count": None, **f} for f in faults])
    await report_all(tabs, "incoming", "c-1", voice())
    await report_all(tabs, "connected", "c-1", voice())
    await report_all(tabs, "ended", "c-1", voice())
    await rig.finished("c-1", status="failed", reason=reason)
    await settle()

    # The agent is told once, at the error level (the host shows it as an error).
    (notice,) = [n for n in notices(owner, "c-1") if n.level == "error"]
    assert notice.code == code
    assert notices(tabs[1]) == []
    view = await admin_view(rig, "c-1")
    assert (view["workflow"], view["workflow_reason"]) == ("failed", reason)
    samples = await scrape(rig.daemon)
    assert value(samples, CONTACTS, status="failed", reason=reason) == 1
    assert value(samples, CONTACTS, status="done") == 0
    # Nothing refused was sent again.
    assert [rule.fired for rule in rig.sandbox.faults.rules] == [1] * len(faults)


async def test_a_refused_ticket_shows_failed_while_the_call_goes_on(rig: Rig) -> None:
    rig.customer("Ann Caller", CLI)
    await rig.start()
    tabs = [await rig.tab() for _ in range(2)]
    await rig.add_faults([{"kind": "error", **f} for f in REFUSED_TICKET])
    await report_all(tabs, "incoming", "c-1", voice())
    await report_all(tabs, "connected", "c-1", voice())
    await until(lambda: statuses(tabs, "c-1") == {("failed", "forbidden")})
    assert all(t.contacts["c-1"].state == "connected" for t in tabs)
    assert rig.tickets("c-1") == []


async def test_pending_while_zendesk_is_out_then_done(rig: Rig) -> None:
    uid = rig.customer("Ann Caller", CLI)
    await rig.start()
    tabs = [await rig.tab() for _ in range(2)]
    await rig.add_faults(
        [{"kind": "error", "method": "POST", "path": CREATE, "status": 503, "count": None}]
    )
    await report_all(tabs, "incoming", "c-1", voice())
    await report_all(tabs, "connected", "c-1", voice())
    await report_all(tabs, "ended", "c-1", voice())
    # Tried again and again (the client's own retries, then the runner's backoff)...
    await until(lambda: rig.sandbox.request_count("POST", CREATE) >= 10, timeout=20)
    # ...and meanwhile every tab and the admin view say the work is still to come.
    assert statuses(tabs, "c-1") == {("pending", None)}
    assert (await admin_view(rig, "c-1"))["workflow"] == "pending"
    assert [n.level for n in notices(tabs[0], "c-1")] == []  # an outage is not the agent's
    await rig.clear_faults()
    await rig.finished("c-1", timeout=20)
    (ticket,) = rig.tickets("c-1")
    assert ticket["requester_id"] == uid and len(voice_comments(ticket)) == 1
    assert live_pops(tabs[0], "c-1")[-1] == ("ticket", ticket["id"])


async def test_an_email_gets_no_zendesk_work(rig: Rig) -> None:
    await rig.start()
    tabs = [await rig.tab() for _ in range(2)]
    email = {"type": "email", "direction": "inbound", "queue": "Email"}
    await report_all(tabs, "connected", "e-1", email)
    await report_all(tabs, "ended", "e-1", email)
    await rig.finished("e-1", status="none")
    assert rig.tickets() == [] and rig.requests() == {}
