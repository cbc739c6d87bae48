"""The Zendesk app page in real Chromium, running the real amazon-connect-streams library (from
npm: clients/js/node_modules) against a real daemon in production mode and a Zendesk sandbox.

Only the two ends that cannot run offline are stood in for, each at its own boundary:
- Zendesk: the app's first request is POSTed with an RS256 token signed by a test key (as
  Zendesk does with `signedUrls`), and the ZAF SDK (Zendesk's CDN script) is a recorder that
  keeps what the app asks Zendesk to show (`notify`, `routeTo`);
- Amazon Connect: agent snapshots enter Streams through its own event bus
  (`connect.AgentEvents.UPDATE`, what the CCP iframe's conduit delivers), and Streams' API calls
  (`agent.setState`, ...) reach `connect.core.client`, here a small CCP back end that applies
  them the way Connect does (a state set during a contact is queued in `nextState`).
Everything between (Streams' Agent/Contact objects, its event graph, the adapter, the media
gate, the Switchboard client, the daemon, the workflow against the sandbox) is the real thing.
"""

import json
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

from tests.browser.pages import eventually, get_json, settle
from tests.daemons import ORIGIN
from tests.processes import ROOT, DaemonProcess, SandboxProcess, contact_tickets, http_json
from tests.redis_servers import free_port
from tests.zaf import INSTALLATION_ID, key_pair, zaf_token

if TYPE_CHECKING:
    from playwright.sync_api import BrowserContext, Page, Route

pytestmark = pytest.mark.browser

HERE = Path(__file__).parent
STREAMS = ROOT / "clients/js/node_modules/amazon-connect-streams/release/connect-streams-min.js"
ZAF_CDN = "https://static.zdassets.com/**"
CONNECT_INSTANCE = "https://acme.my.connect.aws"

ZAF_RECORDER = (HERE / "zaf_recorder.js").read_text()

CCP_BACKEND = (HERE / "connect_backend.js").read_text()


class ZendeskAccount:
    """A daemon in production mode on a sandbox account, with the Zendesk app configured."""

    def __init__(self, sandbox: SandboxProcess, daemon: DaemonProcess, app_port: int) -> None:
        self.sandbox = sandbox
        self.daemon = daemon
        self.app = f"http://127.0.0.1:{app_port}"

    def tickets_for(self, contact_id: str) -> list[dict[str, Any]]:
        return contact_tickets(self.sandbox.state()["tickets"], contact_id)

    def agent_view(self, agent: str) -> Any:
        return get_json(f"{self.daemon.http_url}/admin/agents/{agent}")


def start_account(directory: Path, **settings: Any) -> ZendeskAccount:
    assert STREAMS.exists(), "amazon-connect-streams is not installed: cd clients/js && npm ci"
    sandbox = SandboxProcess.start(directory)
    app_port = free_port()
    _, public = key_pair()
    try:
        daemon = DaemonProcess.start(
            directory,
            "app-node",
            sandbox_url=sandbox.url,
            app_port=app_port,
            zendesk_app_public_key=public,
            zendesk_app_installation_id=INSTALLATION_ID,
            allowed_origins=json.dumps([ORIGIN, f"http://127.0.0.1:{app_port}"]),
            connect_instance_url=CONNECT_INSTANCE,
            grace_seconds=2,
            workflow_scan_seconds=0.5,
            **settings,
        )
    except Exception:
        sandbox.stop()
        raise
    return ZendeskAccount(sandbox, daemon, app_port)


@pytest.fixture(scope="module")
def account(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ZendeskAccount]:
    acc = start_account(tmp_path_factory.mktemp("zendesk-app"), media_less="false")
    yield acc
    acc.daemon.stop()
    acc.sandbox.stop()


@pytest.fixture
def account_with(tmp_path: Path) -> Iterator[Callable[..., ZendeskAccount]]:
    started: list[ZendeskAccount] = []

    def start(**settings: Any) -> ZendeskAccount:
        acc = start_account(tmp_path, **settings)
        started.append(acc)
        return acc

    yield start
    for acc in started:
        acc.daemon.stop()
        acc.sandbox.stop()


def offline_world(context: "BrowserContext") -> None:
    """Zendesk's CDN answers with the ZAF recorder; Amazon Connect's pages are empty."""

    def zaf(route: "Route") -> None:
        route.fulfill(status=200, content_type="application/javascript", body=ZAF_RECORDER)

    def connect_site(route: "Route") -> None:
        route.fulfill(
            status=200, content_type="text/html", body="<!doctype html><title>CCP</title>"
        )

    context.route(ZAF_CDN, zaf)
    context.route(f"{CONNECT_INSTANCE}/**", connect_site)


def open_app(
    context: "BrowserContext", acc: ZendeskAccount, token: str, location: str = "app"
) -> "Page":
    """What Zendesk does when the agent opens the app: POST the signed token to the app URL."""
    offline_world(context)
    page = context.new_page()
    page.goto(f"{acc.app}/zendesk/js/switchboard.js")  # any page of the app's origin
    page.evaluate(
        """([action, token]) => {
          const form = Object.assign(document.createElement('form'), { method: 'POST', action });
          const field = Object.assign(document.createElement('input'), { name: 'token' });
          field.value = token;
          form.appendChild(field);
          document.body.appendChild(form);
          form.submit();
        }""",
        [f"{acc.app}/zendesk/{location}?origin={ORIGIN}&app_guid=guid-1", token],
    )
    page.wait_for_url(f"**/zendesk/{location}**")
    return page


def signed_in(context: "BrowserContext", acc: ZendeskAccount, name: str) -> tuple["Page", str]:
    user_id = acc.sandbox.seed_agent(name)
    page = open_app(context, acc, zaf_token(acc.sandbox.url, user_id))
    page.wait_for_function("() => window.sb && window.sb.client.state === 'open'")
    page.evaluate(
        """() => { window.states = {};
          sb.client.on('contact', ({ contact }) => {
            const seen = states[contact.contact_id] = states[contact.contact_id] || [];
            if (seen[seen.length - 1] !== contact.state) seen.push(contact.state);
          }); }"""
    )
    page.evaluate(CCP_BACKEND)
    return page, f"zendesk-{user_id}"


def zendesk_shown(page: "Page") -> dict[str, Any]:
    shown: dict[str, Any] = page.evaluate("({notices: zaf.notices, routes: zaf.routes})")
    return shown


def contact_view(page: "Page", contact_id: str) -> dict[str, Any] | None:
    view: dict[str, Any] | None = page.evaluate("id => sb.client.contact(id) || null", contact_id)
    return view


def states(page: "Page", contact_id: str) -> list[str]:
    """The states the tab was told the contact went through, in order."""
    seen: list[str] = page.evaluate("id => states[id] || []", contact_id)
    return seen


def ended_in_order(page: "Page", contact_id: str) -> list[str]:
    """Wait for the contact's end; it must have gone ended → acw → destroyed."""
    seen: list[str] = eventually(
        lambda: (s := states(page, contact_id)) and s[-1] == "destroyed" and s,
        what=f"{contact_id} destroyed",
    )
    assert seen[-3:] == ["ended", "acw", "destroyed"], seen
    return seen


def call(page: "Page", contact_id: str, **spec: Any) -> None:
    page.evaluate("c => ccp.set(c)", {"id": contact_id, **spec})


def hang_up(page: "Page", contact_id: str) -> None:
    """Streams ends the contact (ACW before ENDED) and removes it; the tab must have been told
    ended → acw → destroyed."""
    call(page, contact_id, state="ended")
    page.evaluate("id => ccp.remove(id)", contact_id)
    ended_in_order(page, contact_id)


def workflow(page: "Page", contact_id: str, status: str) -> None:
    """The tab shows the contact's Zendesk work ended as `status`."""
    eventually(
        lambda: (v := contact_view(page, contact_id)) and v.get("workflow") == status,
        what=f"{contact_id}'s workflow {status}",
    )


def ticket_of(page: "Page", contact_id: str, what: str) -> dict[str, Any]:
    """The tab's view of the contact once it names a ticket."""
    view: dict[str, Any] = eventually(
        lambda: (v := contact_view(page, contact_id)) and v.get("ticket_id") and v, what=what
    )
    return view


def owned(page: "Page", contact_id: str) -> None:
    eventually(lambda: page.evaluate("id => sb.client.isOwner(id)", contact_id), what="owned")


# -- login ---------------------------------------------------------------------------------------


def test_a_signed_login_connects_and_the_tab_outlives_its_first_token(
    context: "BrowserContext", account_with: Callable[..., ZendeskAccount]
) -> None:
    acc = account_with(app_token_ttl_seconds=6)
    page, agent = signed_in(context, acc, "Grace Hopper")
    first = page.evaluate("sb.tokens.token")
    eventually(lambda: page.evaluate("sb.tokens.token") != first, what="a refreshed token")
    # wait until the first token has expired, then drop the connection: the reconnect must
    # use a live token, not the one the page was served with
    page.wait_for_timeout(6500)
    # Count the welcomes from here: the state reads "open" until the close completes.
    page.evaluate(
        "window.reopened = 0;"
        " sb.client.on('status', ({ state }) => { if (state === 'open') window.reopened += 1; });"
        " sb.client._ws.close(4000, 'test: dropped')"
    )
    eventually(lambda: page.evaluate("window.reopened") >= 1, what="the tab back online")
    tabs = acc.agent_view(agent)["tabs"]
    assert tabs, "the daemon sees the agent's tab"
    assert page.locator("#status").inner_text() == "open"


def test_an_unsigned_or_forged_login_gets_the_refusal_page(
    context: "BrowserContext", account: ZendeskAccount
) -> None:
    user_id = account.sandbox.seed_agent("Mallory")
    page = open_app(context, account, zaf_token(account.sandbox.url, user_id, key="attacker"))
    assert "could not sign you in" in page.locator("h1").inner_text()
    assert page.evaluate("typeof window.sb") == "undefined"


# -- contacts through the real Streams library -------------------------------------------------


def test_an_inbound_call_makes_one_ticket_and_pops_it_in_zendesk(
    context: "BrowserContext", account: ZendeskAccount
) -> None:
    page, _ = signed_in(context, account, "Ada Inbound")
    call(
        page,
        "in-1",
        type="voice",
        state="incoming",
        number="+447700900001",
        attributes={"customer_name": "Ada Byron", "pause_recording": "perhaps"},
    )
    call(page, "in-1", state="connected")
    tickets = eventually(lambda: account.tickets_for("in-1"), what="the call's ticket")
    assert len(tickets) == 1
    eventually(
        lambda: {"target": "ticket", "id": tickets[0]["id"]} in zendesk_shown(page)["routes"],
        what="Zendesk routed to the ticket",
    )
    hang_up(page, "in-1")  # Streams fires ACW before ENDED
    workflow(page, "in-1", "done")
    view = contact_view(page, "in-1")
    assert view is not None and view["direction"] == "inbound" and view["type"] == "voice"
    assert len(settle(lambda: account.tickets_for("in-1"))) == 1
    # the invalid attribute value is shown in Zendesk, once, though every event repeats it
    shown = [n for n in zendesk_shown(page)["notices"] if "pause_recording" in n["text"]]
    assert len(shown) == 1 and shown[0]["kind"] == "alert", zendesk_shown(page)


def test_an_outbound_call_stays_outbound_through_its_removal(
    context: "BrowserContext", account: ZendeskAccount
) -> None:
    page, _ = signed_in(context, account, "Ada Outbound")
    page.evaluate("sb.adapter.expectOutbound({kind: 'user', id: 1})")
    call(
        page,
        "out-1",
        type="voice",
        direction="outbound",
        state="connecting",
        number="+447700900002",
    )
    call(page, "out-1", state="connected")
    eventually(
        lambda: (v := contact_view(page, "out-1")) and v["direction"] == "outbound",
        what="an outbound contact",
    )
    hang_up(page, "out-1")  # Streams hands a ContactSnapshot whose isInbound() throws
    view = contact_view(page, "out-1")
    assert view is not None and view["direction"] == "outbound"


def seed_customer(acc: ZendeskAccount, name: str, phone: str) -> int:
    users = http_json(
        "POST",
        f"{acc.sandbox.url}/__sandbox/users",
        {"users": [{"name": name, "phone": phone, "role": "end-user"}]},
    )
    return int(users["users"][0]["id"])


def dial_requests(page: "Page") -> list[dict[str, Any]]:
    """What the real Streams library asked Connect to dial (its CreateOutboundContact)."""
    requests: list[dict[str, Any]] = page.evaluate(
        "ccp.calls.filter(c => c.method === connect.ClientMethods.CREATE_OUTBOUND_CONTACT)"
    )
    return requests


def background_of(context: "BrowserContext", acc: ZendeskAccount, agent: str) -> "Page":
    """The app's background instance in the agent's Zendesk window, beside its top bar."""
    context.add_init_script(
        """window.zendeskSays = {
          context: { location: 'background' },
          data: { instances: {
            'top-guid': { location: 'top_bar' }, 'bg-guid': { location: 'background' } } },
        };"""
    )
    user_id = int(agent.removeprefix("zendesk-"))
    return open_app(context, acc, zaf_token(acc.sandbox.url, user_id), location="background")


def click_number(background: "Page", top_bar: "Page", click: dict[str, Any]) -> None:
    """The agent clicks a phone number (Talk Partner Edition): Zendesk fires `voice.dialout` at
    the background instance, whose message to the top bar is delivered here as Zendesk would;
    Zendesk may fire the event at the top bar as well, so it is, after the forwarded one."""
    background.evaluate("c => zaf.fire('voice.dialout', c)", click)
    (forwarded,) = eventually(
        lambda: background.evaluate("zaf.triggered"), what="the click forwarded to the top bar"
    )
    assert forwarded == {"guid": "top-guid", "name": "switchboard.dialout", "data": click}
    top_bar.evaluate("([name, data]) => zaf.fire(name, data)", [forwarded["name"], click])
    top_bar.evaluate("c => zaf.fire('voice.dialout', c)", click)


def test_click_to_dial_calls_the_user_through_streams_and_files_the_call_under_them(
    context: "BrowserContext", account: ZendeskAccount
) -> None:
    page, agent = signed_in(context, account, "Ada Dialler")
    background = background_of(context, account, agent)
    customer = seed_customer(account, "Grace Customer", "+44 7700 900010")
    users_before = len(account.sandbox.state()["users"])
    # the agent clicked the phone number on the user's profile; Zendesk hands the number as the
    # profile shows it, through the background instance and perhaps to the top bar directly
    click_number(background, page, {"number": "+44 7700 900010", "userId": customer})
    (dial,) = eventually(lambda: dial_requests(page), what="Streams asked to dial")
    assert dial["endpoint"]["phoneNumber"] == "+447700900010", dial
    assert dial["endpoint"]["type"] == "phone_number"
    assert dial["queueARN"] == "arn:queue/out"  # the routing profile's outbound queue
    # Connect placed the call: an outbound contact is connecting
    eventually(lambda: contact_view(page, "dialled-1"), what="the outbound contact")
    eventually(
        lambda: {"target": "user", "id": customer} in zendesk_shown(page)["routes"],
        what="the dialled user popped before the call connects",
    )
    call(page, "dialled-1", state="connected")
    (ticket,) = eventually(lambda: account.tickets_for("dialled-1"), what="the call's ticket")
    assert ticket["requester_id"] == customer
    assert ticket["subject"] == "Outgoing call to Grace Customer", ticket
    eventually(
        lambda: {"target": "ticket", "id": ticket["id"]} in zendesk_shown(page)["routes"],
        what="the ticket popped",
    )
    hang_up(page, "dialled-1")
    workflow(page, "dialled-1", "done")
    view = contact_view(page, "dialled-1")
    assert view is not None and view["direction"] == "outbound"
    assert view["ticket_id"] == ticket["id"] and view["user_id"] == customer, view
    assert len(settle(lambda: account.tickets_for("dialled-1"))) == 1
    assert len(account.sandbox.state()["users"]) == users_before  # no user made for the number
    assert len(dial_requests(page)) == 1  # one click, one call, however Zendesk delivered it
    # the pop sequence of a click-to-dial call (protocol/README.md): the user before it
    # connects, the ticket once connected, the ticket again at the end
    assert zendesk_shown(page)["routes"] == [
        {"target": "user", "id": customer},
        {"target": "ticket", "id": ticket["id"]},
        {"target": "ticket", "id": ticket["id"]},
    ]


def test_a_dial_connect_refuses_is_shown_and_the_next_call_is_not_filed_under_that_user(
    context: "BrowserContext", account: ZendeskAccount
) -> None:
    page, _ = signed_in(context, account, "Ada Misdial")
    customer = seed_customer(account, "Alan Customer", "07700 900011")
    # a national number: Connect dials E.164 only, and refuses it
    page.evaluate(
        "([number, userId]) => zaf.fire('voice.dialout', { number, userId })",
        ["07700 900011", customer],
    )
    notices = eventually(
        lambda: [n for n in zendesk_shown(page)["notices"] if "could not call" in n["text"]],
        what="the refusal shown",
    )
    assert notices[0]["kind"] == "error" and "07700900011" in notices[0]["text"], notices
    # the agent then dials an unknown number on the CCP's pad: not the clicked user's call
    call(page, "pad-1", type="voice", direction="outbound", state="connecting",
         number="+447700900099")  # fmt: skip
    call(page, "pad-1", state="connected")
    hang_up(page, "pad-1")
    workflow(page, "pad-1", "done")
    assert settle(lambda: account.tickets_for("pad-1")) == []  # outbound, unknown: no ticket
    view = contact_view(page, "pad-1")
    assert view is not None and view.get("user_id") is None, view
    # Zendesk gave no number at all
    page.evaluate("() => zaf.fire('voice.dialout', { userId: 1 })")
    eventually(
        lambda: any("no number" in n["text"] for n in zendesk_shown(page)["notices"]),
        what="the agent told to use the number pad",
    )
    assert len(dial_requests(page)) == 1  # only the refused one reached Connect


def test_an_email_is_an_email_and_gets_no_call_ticket(
    context: "BrowserContext", account: ZendeskAccount
) -> None:
    page, _ = signed_in(context, account, "Ada Email")
    call(page, "mail-1", type="email", state="connecting", method="inbound")
    call(page, "mail-1", state="connected")
    view = eventually(lambda: contact_view(page, "mail-1"), what="the email contact")
    assert view["type"] == "email"
    hang_up(page, "mail-1")
    workflow(page, "mail-1", "none")
    assert settle(lambda: account.tickets_for("mail-1")) == []


def test_a_queue_callback_is_a_call_with_is_callback(
    context: "BrowserContext", account: ZendeskAccount
) -> None:
    page, _ = signed_in(context, account, "Ada Callback")
    call(
        page,
        "cb-1",
        type="queue_callback",
        direction="outbound",
        state="connecting",
        number="+447700900003",
        method="callback",
        attributes={"all_outbound": "true"},
    )
    call(page, "cb-1", state="connected")
    view = eventually(lambda: contact_view(page, "cb-1"), what="the callback contact")
    assert view["type"] == "voice"
    tickets = eventually(lambda: account.tickets_for("cb-1"), what="the callback's ticket")
    assert len(tickets) == 1


def test_a_contact_in_progress_is_reported_by_an_adapter_that_starts_late(
    context: "BrowserContext", account: ZendeskAccount
) -> None:
    page, _ = signed_in(context, account, "Ada Late")
    call(page, "late-1", type="voice", state="connected", number="+447700900004")
    reported = page.evaluate(
        """async () => {
          const { StreamsAdapter } = await import('/zendesk/js/streams-adapter.js');
          const seen = [];
          const client = { sendContactEvent: (event, c) => seen.push({ event, id: c.contact_id,
            direction: c.direction, type: c.type }), sendChatMessage() {} };
          new StreamsAdapter({ connect, client }).start();
          return seen;
        }"""
    )
    assert {
        "event": "connected",
        "id": "late-1",
        "direction": "inbound",
        "type": "voice",
    } in reported


def test_the_media_gate_withdraws_its_queued_state_when_the_media_ccp_is_ready_mid_call(
    context: "BrowserContext", account_with: Callable[..., ZendeskAccount]
) -> None:
    acc = account_with(media_less="true", media_gate="block")
    page, agent = signed_in(context, acc, "Ada Gate")
    # the gate blocks an idle agent at once
    eventually(lambda: page.evaluate("ccp.state()")["state"] == "Media CCP missing", what="blocked")
    # the agent goes Available again and takes a call; the media CCP is still missing:
    # Connect queues the gate's state behind the call
    page.evaluate(
        "ccp.set({id: 'gate-1', type: 'voice', state: 'connected', number: '+447700900005'})"
    )
    available = {"name": "Available", "type": "routable", "agentStateARN": "arn:state/available"}
    page.evaluate("s => connect.agent(a => a.setState(s, {}, {}))", available)
    eventually(
        lambda: page.evaluate("ccp.state()")["next"] == "Media CCP missing", what="queued block"
    )
    assert page.evaluate("ccp.state()")["state"] == "Available"
    # the media CCP becomes ready before the call ends: the page opens it with a one-time link
    context.grant_permissions(["microphone"], origin=acc.app)
    with context.expect_page() as opened:
        page.evaluate("sb.openMedia()")
    media = opened.value
    media.wait_for_function("() => window.sb && window.sb.client.state === 'open'")
    media.evaluate(CCP_BACKEND)  # the media CCP's own Streams signs the agent in
    eventually(
        lambda: page.evaluate("ccp.state()")["next"] is None, what="the queued state withdrawn"
    )
    page.evaluate("ccp.remove('gate-1')")
    final = settle(lambda: page.evaluate("ccp.state()"))
    assert final == {"state": "Available", "type": "routable", "next": None}, final
    assert acc.agent_view(agent)["media"]["ready"] is True


def test_a_chat_keeps_its_transcript_on_the_customers_ticket(
    context: "BrowserContext", account: ZendeskAccount
) -> None:
    page, _ = signed_in(context, account, "Ada Chat")
    users = http_json(
        "POST",
        f"{account.sandbox.url}/__sandbox/users",
        {
            "users": [
                {"name": "Charles Babbage", "email": "charles@example.com", "role": "end-user"}
            ]
        },
    )
    customer = int(users["users"][0]["id"])
    line = {"Type": "MESSAGE", "ContentType": "text/plain", "AbsoluteTime": "2026-01-01T10:00:00Z"}
    page.evaluate(
        "([id, item]) => ccp.say(id, item)",
        ["chat-1", {**line, "Id": "m1", "ParticipantRole": "CUSTOMER", "DisplayName": "Charles",
                    "Content": "My order has not arrived"}],
    )  # fmt: skip
    call(
        page, "chat-1", type="chat", state="connecting", attributes={"zendesk_user": str(customer)}
    )
    call(page, "chat-1", state="connected")
    tickets = eventually(lambda: account.tickets_for("chat-1"), what="the chat's ticket")
    assert tickets[0]["requester_id"] == customer
    page.evaluate(
        "([id, item]) => ccp.say(id, item)",
        ["chat-1", {**line, "Id": "m2", "ParticipantRole": "AGENT", "DisplayName": "Ada",
                    "Content": "Let me look into it"}],
    )  # fmt: skip
    hang_up(page, "chat-1")

    def transcript() -> str:
        comments = account.tickets_for("chat-1")[0].get("comments", [])
        return "\n".join(str(c.get("body") or c.get("html_body") or "") for c in comments)

    text = eventually(
        lambda: (t := transcript()) and "Let me look into it" in t and t, what="the transcript"
    )
    assert "My order has not arrived" in text
    assert len(settle(lambda: account.tickets_for("chat-1"))) == 1


def test_a_transferred_call_joins_the_first_contacts_ticket(
    context: "BrowserContext", account: ZendeskAccount
) -> None:
    page, _ = signed_in(context, account, "Ada Transfer")
    call(page, "xfer-1", type="voice", state="connected", number="+447700900006")
    ticket = eventually(lambda: account.tickets_for("xfer-1"), what="the first ticket")[0]
    hang_up(page, "xfer-1")
    target = {"target": "ticket", "id": ticket["id"]}
    before = settle(lambda: zendesk_shown(page)["routes"]).count(target)
    # the same customer transferred back to this agent: a new contact, same initial contact
    call(page, "xfer-2", initial="xfer-1", type="voice", state="incoming", number="+447700900006")
    call(page, "xfer-2", state="connected")
    view = ticket_of(page, "xfer-2", "the transfer's ticket")
    assert view["ticket_id"] == ticket["id"]
    assert view["initial_contact_id"] == "xfer-1"
    eventually(
        lambda: zendesk_shown(page)["routes"].count(target) > before, what="the ticket popped again"
    )
    assert settle(lambda: account.tickets_for("xfer-2")) == []


def test_the_agent_attaches_a_contact_to_the_ticket_open_in_zendesk(
    context: "BrowserContext", account: ZendeskAccount
) -> None:
    page, _ = signed_in(context, account, "Ada Attach")
    call(page, "first-1", type="voice", state="connected", number="+447700900007")
    ticket = eventually(lambda: account.tickets_for("first-1"), what="a ticket to attach to")[0]
    # the agent handles the next call by hand, with that ticket open in Zendesk
    call(
        page,
        "attach-1",
        type="voice",
        state="connected",
        number="+447700900008",
        attributes={"ticket_assignment": "agent"},
    )
    owned(page, "attach-1")
    page.evaluate("id => ccp.remove(id)", "first-1")
    page.evaluate("t => zaf.fire('switchboard.viewing', {ticketId: t, userId: null})", ticket["id"])
    page.click("#attach")
    view = ticket_of(page, "attach-1", "the contact attached")
    assert view["ticket_id"] == ticket["id"]
    assert settle(lambda: account.tickets_for("attach-1")) == []


def test_without_an_open_ticket_attach_says_what_to_do(
    context: "BrowserContext", account: ZendeskAccount
) -> None:
    page, _ = signed_in(context, account, "Ada Nothing Open")
    call(page, "none-1", type="voice", state="connected", number="+447700900009",
         attributes={"ticket_assignment": "agent"})  # fmt: skip
    owned(page, "none-1")
    page.click("#attach")
    notices = eventually(lambda: zendesk_shown(page)["notices"], what="a notice")
    assert any("open the ticket" in n["text"] for n in notices), notices


def test_the_sidebars_tell_the_top_bar_what_is_open(
    context: "BrowserContext", account: ZendeskAccount
) -> None:
    user_id = account.sandbox.seed_agent("Ada Sidebar")
    context.add_init_script(
        """window.zendeskSays = {
          context: { location: 'ticket_sidebar' },
          data: { 'ticket.id': 321, 'ticket.requester.id': 654, instances: {
            'top-guid': { location: 'top_bar' }, 'side-guid': { location: 'ticket_sidebar' } } },
        };"""
    )
    page = open_app(context, account, zaf_token(account.sandbox.url, user_id), location="sidebar")
    triggered = eventually(lambda: page.evaluate("zaf.triggered"), what="a message to the top bar")
    assert triggered == [
        {
            "guid": "top-guid",
            "name": "switchboard.viewing",
            "data": {"ticketId": 321, "userId": 654},
        }
    ]
    forged = open_app(
        context,
        account,
        zaf_token(account.sandbox.url, user_id, key="attacker"),
        location="sidebar",
    )
    assert "could not sign you in" in forged.locator("h1").inner_text()


def test_a_second_concurrent_chat_is_announced_in_zendesk_once(
    context: "BrowserContext", account: ZendeskAccount
) -> None:
    page, _ = signed_in(context, account, "Ada Two Chats")
    call(page, "chat-a", type="chat", state="connected", attributes={"customer_name": "Al"})
    eventually(lambda: contact_view(page, "chat-a"), what="the first chat")
    call(page, "chat-b", type="chat", state="incoming", attributes={"customer_name": "Bo"})
    call(page, "chat-b", state="connected")  # more events of the refused chat: no new notice

    def second_chat() -> list[dict[str, Any]]:
        notices: list[dict[str, Any]] = zendesk_shown(page)["notices"]
        return [n for n in notices if "Only one chat at a time" in n["text"]]

    eventually(second_chat, what="the second-chat notice")
    (notice,) = settle(second_chat)
    assert notice["kind"] == "error", notice  # the guide: "will display an error message"
    workflow(page, "chat-b", "none")
    assert settle(lambda: account.tickets_for("chat-b")) == []
