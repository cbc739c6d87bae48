"""The Zendesk client against the sandbox over real HTTP.

Every request the client sends, and every answer it gets, is validated against Zendesk's
OpenAPI description at teardown (conftest), so these tests also prove the client speaks the
published API rather than the sandbox's dialect.
"""

from __future__ import annotations

import asyncio
import socket
import time
from datetime import UTC, datetime

import aiohttp
import pytest
import structlog
from aiohttp.test_utils import TestServer

from daemon.sandbox import SANDBOX_KEY, FaultRule, Sandbox
from daemon.zendesk.auth import ApiTokenAuth, OAuthAuth, OAuthTokens
from daemon.zendesk.client import ZendeskClient
from daemon.zendesk.models import (
    VIA_INBOUND_CALL,
    NewComment,
    NewTicket,
    TicketUpdate,
    VoiceComment,
)
from daemon.zendesk.retry import (
    AuthenticationError,
    IdempotencyConflict,
    InvalidRecord,
    LocalRateLimiter,
    RateLimited,
    ServerError,
    TransportError,
)
from tests.zendesk.conftest import EMAIL, StartSandbox, client_for, url_of


def fault(sandbox: Sandbox, **rule: object) -> None:
    sandbox.faults.add([FaultRule.model_validate(rule)])


def seed(sandbox: Sandbox, name: str, phone: str | None = None, **kw: object) -> int:
    return sandbox.create_user_from({"name": name, "phone": phone, **kw}, indexed=True).id


def new_ticket(requester_id: int | None, external_id: str = "contact-1", **kw: object) -> NewTicket:
    return NewTicket.model_validate(
        {
            "subject": "Incoming call from Jo",
            "comment": NewComment(body="Amazon Connect Contact Details"),
            "requester_id": requester_id,
            "external_id": external_id,
            "via_id": VIA_INBOUND_CALL,
            **kw,
        }
    )


def voice(agent_id: int, url: str = "https://connect.example.com/rec/1.wav") -> VoiceComment:
    return VoiceComment.model_validate(
        {
            "from": "+442079460018",
            "to": "+442079460999",
            "started_at": datetime(2024, 5, 1, 10, 0, tzinfo=UTC),
            "call_duration": 42,
            "recording_url": url,
            "answered_by_id": agent_id,
        }
    )


def comments_of(sandbox: Sandbox, ticket_id: int) -> list[str]:
    return [c.type for c in sandbox.tickets[ticket_id].comments]


# --------------------------------------------------------------------------- users


async def test_users(zd: ZendeskClient, sandbox: Sandbox) -> None:
    me = await zd.me()
    assert me.email == EMAIL and me.role == "admin"
    user = await zd.create_user("Jo Caller", phone="+44 20 7946 0018", email="jo@example.org")
    assert user.id in sandbox.users and user.role == "end-user"
    assert await zd.get_user(user.id) == user
    assert await zd.get_user(999_999) is None
    updated = await zd.update_user_phone(user.id, "+442079460019")
    assert updated.phone == "+442079460019" and sandbox.users[user.id].phone == "+442079460019"
    tagged = await zd.create_user("Tagged", external_id="crm-1")
    assert [u.id for u in await zd.users_by_external_id("crm-1")] == [tagged.id]
    with pytest.raises(InvalidRecord):
        await zd.create_user("Dup", email="jo@example.org")


async def test_phone_search_skips_shared_numbers_and_agents(
    zd: ZendeskClient, sandbox: Sandbox
) -> None:
    alice = seed(sandbox, "Alice", "+44 (20) 7946-0018")
    seed(sandbox, "Front desk", "+44 20 7946 0018", shared_phone_number=True)
    seed(sandbox, "Agent", "+44 20 7946 0018", role="agent")
    seed(sandbox, "Other", "+1 555 0100")
    assert [u.id for u in await zd.search_users_by_phone("2079460018")] == [alice]
    assert [u.id for u in await zd.search_users_by_phone("+44 20 7946 0018")] == [alice]
    assert await zd.search_users_by_phone("31337") == []
    assert await zd.search_users_by_phone("anonymous") == []


async def test_search_users_by_email_and_name(zd: ZendeskClient, sandbox: Sandbox) -> None:
    dana = seed(sandbox, "Dana Scully", email="dana@fbi.gov")
    fox = seed(sandbox, "Fox Mulder", email="fox@fbi.gov")
    assert [u.id for u in await zd.search_users(email="dana@fbi.gov")] == [dana]
    assert [u.id for u in await zd.search_users(name="Fox Mulder")] == [fox]
    with pytest.raises(ValueError):
        await zd.search_users()


async def test_search_lag_is_visible_to_the_client(
    start_sandbox: StartSandbox,
) -> None:
    server = await start_sandbox(search_index_delay=30)
    sandbox = server.app[SANDBOX_KEY]
    async with client_for(url_of(server)) as zd:
        user = await zd.create_user("Fresh", phone="+15550123")
        assert await zd.search_users_by_phone("5550123") == []
        sandbox.clock.advance(31)
        assert [u.id for u in await zd.search_users_by_phone("5550123")] == [user.id]


# --------------------------------------------------------------------------- tickets


async def test_tickets_and_comments(zd: ZendeskClient, sandbox: Sandbox) -> None:
    me = await zd.me()
    jo = seed(sandbox, "Jo", "+442079460018")
    ticket = new_ticket(jo, submitter_id=me.id, assignee_id=me.id)
    created = await zd.create_ticket(ticket, idempotency_key="contact-1")
    assert not created.replayed and not created.talk_partner
    t = created.ticket
    assert (t.requester_id, t.assignee_id, t.external_id, t.status) == (
        jo,
        me.id,
        "contact-1",
        "open",
    )
    assert t.via is not None and t.via.channel == "voice"
    assert await zd.get_ticket(t.id) == t
    assert await zd.get_ticket(999_999) is None
    assert [x.id for x in await zd.tickets_by_external_id("contact-1")] == [t.id]
    assert await zd.tickets_by_external_id("nobody") == []

    await zd.add_comment(t.id, "plain note")
    await zd.add_comment(t.id, "<p>shown to the <b>customer</b></p>", public=True)
    await zd.add_voice_comment(t.id, voice(me.id))
    solved = await zd.update_ticket(t.id, TicketUpdate(status="solved"))
    assert solved.status == "solved"
    comments = await zd.list_comments(t.id)
    assert [(c.type, c.public) for c in comments] == [
        ("Comment", False),
        ("Comment", False),
        ("Comment", True),
        ("VoiceComment", False),
    ]
    assert comments[2].html_body == "<p>shown to the <b>customer</b></p>"
    assert comments[3].data is not None and comments[3].data["call_duration"] == 42
    assert comments[3].data["started_at"] == "2024-05-01T10:00:00Z"


async def test_create_ticket_is_idempotent(zd: ZendeskClient, sandbox: Sandbox) -> None:
    jo = seed(sandbox, "Jo")
    first = await zd.create_ticket(new_ticket(jo), idempotency_key="contact-9")
    again = await zd.create_ticket(new_ticket(jo), idempotency_key="contact-9")
    assert again.replayed and again.ticket == first.ticket
    assert len(sandbox.tickets) == 1
    with pytest.raises(IdempotencyConflict) as info:
        await zd.create_ticket(new_ticket(jo, subject="other"), idempotency_key="contact-9")
    assert info.value.status == 400 and not info.value.retryable


async def test_recent_tickets_most_recently_updated_first(
    zd: ZendeskClient, sandbox: Sandbox
) -> None:
    jo = seed(sandbox, "Jo")
    ids = []
    for n in range(3):
        created = await zd.create_ticket(new_ticket(jo, f"c{n}"), idempotency_key=f"c{n}")
        ids.append(created.ticket.id)
        sandbox.clock.advance(2)
    await zd.add_comment(ids[0], "touched")
    recent = await zd.recent_tickets_of_user(jo)
    assert [t.id for t in recent] == [ids[0], ids[2], ids[1]]
    assert [t.id for t in await zd.recent_tickets_of_user(jo, limit=1)] == [ids[0]]


async def test_upload_and_attach(zd: ZendeskClient, sandbox: Sandbox) -> None:
    jo = seed(sandbox, "Jo")
    upload = await zd.upload("call.wav", b"RIFF....WAVE")
    assert upload.attachment is not None and upload.attachment.content_type == "audio/x-wav"
    created = await zd.create_ticket(new_ticket(jo), idempotency_key="k")
    await zd.add_comment(created.ticket.id, "recording", uploads=[upload.token])
    comments = await zd.list_comments(created.ticket.id)
    assert [a.file_name for a in comments[-1].attachments] == ["call.wav"]


# --------------------------------------------------------------------------- talk partner


async def test_talk_partner_ticket_and_display(zd: ZendeskClient, sandbox: Sandbox) -> None:
    me = await zd.me()
    jo = seed(sandbox, "Jo")
    created = await zd.create_ticket(
        new_ticket(jo, voice_comment=voice(me.id)),
        idempotency_key="contact-1",
        talk_partner=True,
        display_to_agent=me.id,
    )
    assert created.talk_partner and created.displayed
    assert comments_of(sandbox, created.ticket.id) == ["Comment", "VoiceComment"]
    assert await zd.display_ticket(me.id, created.ticket.id)
    assert await zd.display_user(me.id, jo)
    assert [(p.kind, p.source) for p in sandbox.pops_for(me.id)] == [
        ("ticket", "display_to_agent"),
        ("ticket", "display"),
        ("user", "display"),
    ]
    # A bad id is "could not display", not an exception.
    assert not await zd.display_ticket(me.id, 999_999)


@pytest.mark.parametrize("status", [403, 404])
async def test_without_talk_partner_edition_display_returns_false(
    start_sandbox: StartSandbox, status: int
) -> None:
    server = await start_sandbox(talk_partner_edition=False, no_talk_partner_status=status)
    sandbox = server.app[SANDBOX_KEY]
    async with client_for(url_of(server)) as zd:
        me = await zd.me()
        jo = seed(sandbox, "Jo")
        created = await zd.create_ticket(
            new_ticket(jo, voice_comment=voice(me.id)),
            idempotency_key="contact-1",
            talk_partner=True,
            display_to_agent=me.id,
        )
        assert not created.displayed and not created.talk_partner
        assert comments_of(sandbox, created.ticket.id) == ["Comment", "VoiceComment"]
        assert not await zd.display_ticket(me.id, created.ticket.id)
        assert not await zd.display_user(me.id, jo)
        assert sandbox.pops == []
        display = "/api/v2/channels/voice/agents/{agent_id}/users/{user_id}/display"
        # 403 is remembered (no request for the second display); 404 is asked each time.
        assert sandbox.request_count("POST", display) == (0 if status == 403 else 1)


# --------------------------------------------------------------------------- retries


async def test_429_retry_after_is_honoured(zd: ZendeskClient, sandbox: Sandbox) -> None:
    fault(sandbox, kind="rate_limit", path="/api/v2/users/me", retry_after=1)
    started = time.monotonic()
    await zd.me()
    waited = time.monotonic() - started
    assert waited >= 1.0
    assert sandbox.request_count("GET", "/api/v2/users/me") == 2


async def test_too_long_retry_after_is_handed_back(base_url: str, sandbox: Sandbox) -> None:
    fault(sandbox, kind="rate_limit", path="/api/v2/users/me", retry_after=600)
    async with client_for(base_url) as zd:
        with pytest.raises(RateLimited) as info:
            await zd.me()
    assert info.value.retry_after == 600 and info.value.retryable


async def test_5xx_are_retried(zd: ZendeskClient, sandbox: Sandbox) -> None:
    fault(sandbox, kind="error", status=500, path="/api/v2/users/me", count=2)
    fault(sandbox, kind="error", status=503, path="/api/v2/users/me")
    assert (await zd.me()).email == EMAIL
    assert sandbox.request_count("GET", "/api/v2/users/me") == 4


async def test_5xx_give_up_after_max_attempts(base_url: str, sandbox: Sandbox) -> None:
    fault(sandbox, kind="error", status=503, path="/api/v2/users/me", count=None)
    async with client_for(base_url, max_attempts=3) as zd:
        with pytest.raises(ServerError) as info:
            await zd.me()
    assert info.value.status == 503 and info.value.retryable
    assert sandbox.request_count("GET", "/api/v2/users/me") == 3


async def test_4xx_are_not_retried(zd: ZendeskClient, sandbox: Sandbox) -> None:
    with pytest.raises(InvalidRecord) as info:
        await zd.create_ticket(new_ticket(999_999), idempotency_key="bad")
    assert info.value.status == 422 and not info.value.retryable
    assert sandbox.request_count("POST", "/api/v2/tickets") == 1


async def test_timeouts_are_retried(base_url: str, sandbox: Sandbox) -> None:
    fault(sandbox, kind="timeout", path="/api/v2/users/me", seconds=1.0)
    async with client_for(base_url, timeout=0.2) as zd:
        started = time.monotonic()
        assert (await zd.me()).email == EMAIL
        assert time.monotonic() - started < 1.0
    assert sandbox.request_count("GET", "/api/v2/users/me") == 2


async def test_timed_out_create_then_retry_yields_one_ticket(
    base_url: str, sandbox: Sandbox
) -> None:
    jo = seed(sandbox, "Jo")
    # The first attempt is held past the client's timeout and then still performed.
    fault(sandbox, kind="timeout", method="POST", path="/api/v2/tickets", seconds=0.5)
    async with client_for(base_url, timeout=0.2) as zd:
        created = await zd.create_ticket(new_ticket(jo), idempotency_key="contact-1")
    await asyncio.sleep(0.5)  # let the held first attempt finish on the server
    assert list(sandbox.tickets) == [created.ticket.id]


async def test_drop_after_write_create_ticket_yields_one_ticket(
    zd: ZendeskClient, sandbox: Sandbox
) -> None:
    jo = seed(sandbox, "Jo")
    fault(sandbox, kind="drop_after_write", method="POST", path="/api/v2/tickets")
    created = await zd.create_ticket(new_ticket(jo), idempotency_key="contact-1")
    assert created.replayed
    assert list(sandbox.tickets) == [created.ticket.id]
    assert sandbox.request_count("POST", "/api/v2/tickets") == 2


async def test_drop_after_write_voice_ticket_yields_one_ticket(
    zd: ZendeskClient, sandbox: Sandbox
) -> None:
    me = await zd.me()
    jo = seed(sandbox, "Jo")
    fault(sandbox, kind="drop_after_write", path="/api/v2/channels/voice/tickets")
    created = await zd.create_ticket(
        new_ticket(jo, voice_comment=voice(me.id)),
        idempotency_key="contact-1",
        talk_partner=True,
        display_to_agent=me.id,
    )
    assert created.replayed and created.talk_partner
    assert list(sandbox.tickets) == [created.ticket.id]
    assert len(sandbox.pops) == 1


async def test_drop_after_write_comment_is_not_duplicated(
    zd: ZendeskClient, sandbox: Sandbox
) -> None:
    me = await zd.me()
    jo = seed(sandbox, "Jo")
    tid = (await zd.create_ticket(new_ticket(jo), idempotency_key="k")).ticket.id
    fault(sandbox, kind="drop_after_write", method="PUT", path="/api/v2/tickets/*", count=2)
    await zd.add_comment(tid, "<p>Contact details</p>")
    await zd.add_voice_comment(tid, voice(me.id))
    assert comments_of(sandbox, tid) == ["Comment", "Comment", "VoiceComment"]
    assert sandbox.request_count("PUT", "/api/v2/tickets/{ticket_id}") == 2


async def test_5xx_after_comment_write_is_not_duplicated(
    zd: ZendeskClient, sandbox: Sandbox
) -> None:
    jo = seed(sandbox, "Jo")
    tid = (await zd.create_ticket(new_ticket(jo), idempotency_key="k")).ticket.id
    # Not applied: the 500 comes before the write, so the retry must add the comment.
    fault(sandbox, kind="error", status=500, method="PUT", path="/api/v2/tickets/*")
    await zd.add_comment(tid, "note")
    assert comments_of(sandbox, tid) == ["Comment", "Comment"]
    assert sandbox.request_count("PUT", "/api/v2/tickets/{ticket_id}") == 2


async def test_drop_after_write_create_user_with_external_id_yields_one_user(
    zd: ZendeskClient, sandbox: Sandbox
) -> None:
    fault(sandbox, kind="drop_after_write", method="POST", path="/api/v2/users")
    user = await zd.create_user("New user at 441234", phone="+441234", external_id="caller-1")
    assert [u.id for u in sandbox.users.values() if u.external_id == "caller-1"] == [user.id]
    assert sandbox.request_count("POST", "/api/v2/users") == 1


async def test_unreachable_zendesk_raises_transport_error() -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    async with client_for(f"http://127.0.0.1:{port}", max_attempts=2) as zd:
        with pytest.raises(TransportError) as info:
            await zd.me()
    assert info.value.status is None and info.value.retryable


# --------------------------------------------------------------------------- auth


async def test_api_token_auth(base_url: str, sandbox: Sandbox) -> None:
    async with ZendeskClient(base_url, ApiTokenAuth(EMAIL, "sandbox-token")) as zd:
        assert (await zd.me()).email == EMAIL
    async with ZendeskClient(base_url, ApiTokenAuth(EMAIL, "wrong")) as zd:
        with pytest.raises(AuthenticationError):
            await zd.me()
    assert sandbox.request_count("GET", "/api/v2/users/me") == 2  # 401 is not retried


async def test_oauth_refreshes_once_on_401(base_url: str, sandbox: Sandbox) -> None:
    saved: list[OAuthTokens] = []

    async def persist(tokens: OAuthTokens) -> None:
        saved.append(tokens)

    auth = OAuthAuth(
        "expired-access-token",
        refresh_token="sandbox-refresh-token",
        client_id="switchboard",
        client_secret="sandbox-secret",
        on_refresh=persist,
    )
    async with client_for(base_url, auth=auth) as zd:
        results = await asyncio.gather(*(zd.me() for _ in range(5)))
        assert {u.email for u in results} == {EMAIL}
        assert auth.refreshes == 1 and len(saved) == 1
        assert auth.refresh_token == saved[0].refresh_token != "sandbox-refresh-token"
        # The issued token expires in its turn; the rotated refresh token renews it.
        sandbox.tokens.expire_all(sandbox.now())
        assert (await zd.me()).email == EMAIL
        assert auth.refreshes == 2
    assert sandbox.request_count("POST", "/oauth/tokens") == 2


async def test_oauth_client_credentials_and_refusal(base_url: str) -> None:
    auth = OAuthAuth("stale", client_id="switchboard", client_secret="sandbox-secret")
    async with client_for(base_url, auth=auth) as zd:
        assert (await zd.me()).email == EMAIL and auth.refreshes == 1
    no_refresh = OAuthAuth("stale")
    async with client_for(base_url, auth=no_refresh) as zd:
        with pytest.raises(AuthenticationError):
            await zd.me()
    bad_secret = OAuthAuth("stale", refresh_token="x", client_id="switchboard", client_secret="no")
    async with client_for(base_url, auth=bad_secret) as zd:
        with pytest.raises(AuthenticationError):
            await zd.me()


# --------------------------------------------------------------------------- plumbing


async def test_user_agent_and_request_log(zd: ZendeskClient, sandbox: Sandbox) -> None:
    fault(sandbox, kind="error", status=500, path="/api/v2/tickets/{ticket_id}")
    with structlog.testing.capture_logs() as logs:
        assert await zd.get_ticket(123) is None
    requests = [e for e in logs if e["event"] == "zendesk.request"]
    assert [(e["method"], e["path"], e["status"], e["attempt"]) for e in requests] == [
        ("GET", "/api/v2/tickets/{ticket_id}", 500, 1),
        ("GET", "/api/v2/tickets/{ticket_id}", 404, 2),
    ]
    assert all(e["duration_ms"] >= 0 for e in requests)
    assert sandbox.exchanges
    assert all(e.headers["User-Agent"].startswith("switchboard/") for e in sandbox.exchanges)


async def test_rate_limiter_paces_requests(base_url: str) -> None:
    limiter = LocalRateLimiter(600, burst=2)  # 10 per second after a burst of 2
    async with client_for(base_url, limiter=limiter) as zd:
        started = time.monotonic()
        for _ in range(4):
            await zd.me()
        assert time.monotonic() - started >= 0.19


async def test_client_uses_a_given_session(server: TestServer, base_url: str) -> None:
    async with aiohttp.ClientSession() as session:
        zd = ZendeskClient(base_url, ApiTokenAuth(EMAIL, "sandbox-token"), session=session)
        async with zd:
            await zd.me()
        assert not session.closed
