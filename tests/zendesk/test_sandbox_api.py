"""The sandbox over real HTTP: Zendesk's behaviour, and answers that match Zendesk's OpenAPI.

Every test's traffic is validated against the description at teardown (conftest); the first
test also checks it explicitly, endpoint by endpoint, so a vacuous pass is impossible.
"""

from __future__ import annotations

import asyncio
import base64
import socket
from typing import Any

import aiohttp
import pytest
from aiohttp.test_utils import TestServer

from daemon.sandbox import SANDBOX_KEY, Sandbox, run_sandbox
from tests.oas import assert_exchanges_valid
from tests.zendesk.conftest import StartSandbox, url_of

Answer = tuple[int, dict[str, str], Any]
FORBIDDEN = (
    "You do not have access to this page. Please contact the account owner of this help desk "
    "for further help."
)


def sandbox_of(server: TestServer) -> Sandbox:
    return server.app[SANDBOX_KEY]


async def call(http: aiohttp.ClientSession, method: str, url: str, **kw: Any) -> Answer:
    async with http.request(method, url, **kw) as resp:
        text = await resp.text()
        body: Any = None
        if text:
            try:
                body = await resp.json(content_type=None)
            except ValueError:
                body = text
        return resp.status, dict(resp.headers), body


def voice(agent_id: int, **extra: Any) -> dict[str, Any]:
    return {
        "from": "+442079460018",
        "to": "+442079460999",
        "recording_url": "https://connect.example.com/rec/1.wav",
        "started_at": "2024-05-01T10:00:00Z",
        "call_duration": 42,
        "answered_by_id": agent_id,
        **extra,
    }


async def agent_id(http: aiohttp.ClientSession, base: str) -> int:
    _, _, body = await call(http, "GET", f"{base}/api/v2/users/me")
    return int(body["user"]["id"])


async def new_user(http: aiohttp.ClientSession, base: str, **fields: Any) -> dict[str, Any]:
    status, _, body = await call(http, "POST", f"{base}/api/v2/users", json={"user": fields})
    assert status == 201, body
    user: dict[str, Any] = body["user"]
    return user


async def new_ticket(
    http: aiohttp.ClientSession, base: str, key: str | None = None, **fields: Any
) -> Answer:
    doc = {"subject": "Incoming call", "comment": {"body": "details", "public": False}, **fields}
    headers = {"Idempotency-Key": key} if key else {}
    return await call(http, "POST", f"{base}/api/v2/tickets", json={"ticket": doc}, headers=headers)


# --------------------------------------------------------------------------- every endpoint


async def test_every_endpoint_answers_per_the_openapi_description(
    http: aiohttp.ClientSession, base_url: str, sandbox: Sandbox
) -> None:
    b = base_url
    me = await agent_id(http, b)
    user = await new_user(http, b, name="Jo Caller", phone="+44 20 7946 0018", email="jo@x.org")
    uid = user["id"]
    assert (await call(http, "GET", f"{b}/api/v2/users/{uid}"))[0] == 200
    status, _, body = await call(
        http, "PUT", f"{b}/api/v2/users/{uid}", json={"user": {"phone": "+442079460019"}}
    )
    assert status == 200 and body["user"]["phone"] == "+442079460019"
    assert (await call(http, "GET", f"{b}/api/v2/users", params={"external_id": "x"}))[0] == 200
    q = {"query": "type:user role:end-user phone:*79460019"}
    status, _, body = await call(http, "GET", f"{b}/api/v2/search", params=q)
    assert [r["id"] for r in body["results"]] == [uid]
    assert body["results"][0]["result_type"] == "user"
    status, _, body = await call(http, "GET", f"{b}/api/v2/users/search", params={"query": "Jo"})
    assert [u["id"] for u in body["users"]] == [uid]

    status, headers, body = await new_ticket(
        http, b, "key-1", requester_id=uid, assignee_id=me, external_id="contact-1", via_id=45
    )
    assert status == 201 and headers["x-idempotency-lookup"] == "miss"
    ticket = body["ticket"]
    tid = ticket["id"]
    assert ticket["status"] == "open" and ticket["via"]["channel"] == "voice"
    assert ticket["via"]["source"]["rel"] == "inbound"
    assert (await call(http, "GET", f"{b}/api/v2/tickets/{tid}"))[0] == 200
    update = {
        "ticket": {
            "status": "pending",
            "comment": {"html_body": "<p>Contact <b>details</b></p>", "public": False},
            "voice_comment": voice(me),
        }
    }
    status, _, body = await call(http, "PUT", f"{b}/api/v2/tickets/{tid}", json=update)
    assert status == 200 and body["ticket"]["status"] == "pending"
    assert [e["type"] for e in body["audit"]["events"]] == ["Change", "Comment", "VoiceComment"]
    status, _, body = await call(http, "GET", f"{b}/api/v2/tickets/{tid}/comments")
    assert [c["type"] for c in body["comments"]] == ["Comment", "Comment", "VoiceComment"]
    status, _, body = await call(
        http, "GET", f"{b}/api/v2/tickets", params={"external_id": "contact-1"}
    )
    assert [t["id"] for t in body["tickets"]] == [tid]
    status, _, body = await call(http, "GET", f"{b}/api/v2/users/{uid}/tickets/requested")
    assert [t["id"] for t in body["tickets"]] == [tid]
    q = {"query": f"type:ticket requester_id:{uid}"}
    status, _, body = await call(http, "GET", f"{b}/api/v2/search", params=q)
    assert [r["id"] for r in body["results"]] == [tid]

    talk = {
        "display_to_agent": me,
        "ticket": {"via_id": 46, "requester_id": uid, "voice_comment": voice(me)},
    }
    status, _, body = await call(http, "POST", f"{b}/api/v2/channels/voice/tickets", json=talk)
    assert status == 201 and body["ticket"]["via"]["source"]["rel"] == "outbound"
    status, _, body = await call(
        http, "POST", f"{b}/api/v2/channels/voice/agents/{me}/tickets/{tid}/display"
    )
    assert (status, body) == (200, "")
    status, _, _ = await call(
        http, "POST", f"{b}/api/v2/channels/voice/agents/{me}/users/{uid}/display"
    )
    assert status == 200
    status, _, body = await call(
        http,
        "POST",
        f"{b}/api/v2/uploads",
        params={"filename": "call.wav"},
        data=b"RIFF....WAVE",
        headers={"Content-Type": "audio/wav"},
    )
    assert status == 201 and body["upload"]["token"]
    assert body["upload"]["attachment"]["size"] == len(b"RIFF....WAVE")

    checked = assert_exchanges_valid(sandbox, min_count=17)
    assert checked == len(sandbox.exchanges)


async def test_json_suffix_paths_answer_like_plain_paths(
    http: aiohttp.ClientSession, base_url: str, sandbox: Sandbox
) -> None:
    user = await new_user(http, base_url, name="Suffix User")
    plain = await call(http, "GET", f"{base_url}/api/v2/users/{user['id']}")
    suffixed = await call(http, "GET", f"{base_url}/api/v2/users/{user['id']}.json")
    assert plain[0] == suffixed[0] == 200 and plain[2] == suffixed[2]
    status, _, body = await call(
        http,
        "POST",
        f"{base_url}/api/v2/tickets.json",
        json={"ticket": {"subject": "s", "comment": {"body": "b"}, "requester_id": user["id"]}},
    )
    assert status == 201
    tid = body["ticket"]["id"]
    assert (await call(http, "GET", f"{base_url}/api/v2/tickets/{tid}/comments.json"))[0] == 200
    assert (await call(http, "GET", f"{base_url}/api/v2/search.json?query=type:user"))[0] == 200
    # Request counts group both forms under one template.
    assert sandbox.request_count("GET", "/api/v2/users/{user_id}") == 2
    assert sandbox.request_count("POST", "/api/v2/tickets") == 1


# --------------------------------------------------------------------------- idempotency


async def test_idempotency_miss_hit_and_conflict(
    http: aiohttp.ClientSession, base_url: str, sandbox: Sandbox
) -> None:
    first = await new_ticket(http, base_url, "contact-7", external_id="contact-7")
    replay = await new_ticket(http, base_url, "contact-7", external_id="contact-7")
    assert first[0] == replay[0] == 201
    assert first[1]["x-idempotency-lookup"] == "miss"
    assert replay[1]["x-idempotency-lookup"] == "hit"
    assert replay[2] == first[2]
    assert len(sandbox.tickets) == 1

    status, _, body = await new_ticket(http, base_url, "contact-7", external_id="other")
    assert status == 400 and body["error"] == "IdempotentRequestError"
    assert len(sandbox.tickets) == 1

    # Keys are kept about two hours, then the same key creates again.
    sandbox.clock.advance(2 * 3600 + 1)
    again = await new_ticket(http, base_url, "contact-7", external_id="contact-7")
    assert again[1]["x-idempotency-lookup"] == "miss"
    assert len(sandbox.tickets) == 2


async def test_failed_create_does_not_burn_the_key(
    http: aiohttp.ClientSession, base_url: str, sandbox: Sandbox
) -> None:
    status, _, _ = await new_ticket(http, base_url, "k", requester_id=999_999)
    assert status == 422
    status, headers, _ = await new_ticket(http, base_url, "k")
    assert status == 201 and headers["x-idempotency-lookup"] == "miss"


# --------------------------------------------------------------------------- search


async def test_phone_suffix_search_skips_shared_numbers(
    http: aiohttp.ClientSession, base_url: str
) -> None:
    status, _, body = await call(
        http,
        "POST",
        f"{base_url}/__sandbox/users",
        json={
            "users": [
                {"name": "Alice", "phone": "+44 (20) 7946-0018"},
                {"name": "Reception", "phone": "+44 20 7946 0018", "shared_phone_number": True},
                {"name": "Bob", "phone": "+1 555 0100"},
                {"name": "Agent Carol", "phone": "+44 20 7946 0018", "role": "agent"},
            ]
        },
    )
    assert status == 201
    alice = body["users"][0]["id"]
    q = {"query": "type:user role:end-user phone:*2079460018"}
    _, _, body = await call(http, "GET", f"{base_url}/api/v2/search", params=q)
    assert [r["id"] for r in body["results"]] == [alice]
    q = {"query": "type:user role:end-user phone:*0018"}
    _, _, body = await call(http, "GET", f"{base_url}/api/v2/search", params=q)
    assert [r["id"] for r in body["results"]] == [alice]
    q = {"query": "type:user phone:*99999"}
    _, _, body = await call(http, "GET", f"{base_url}/api/v2/search", params=q)
    assert body["results"] == [] and body["count"] == 0


async def test_search_by_email_and_name(http: aiohttp.ClientSession, base_url: str) -> None:
    await call(
        http,
        "POST",
        f"{base_url}/__sandbox/users",
        json=[
            {"name": "Dana Scully", "email": "dana@fbi.gov"},
            {"name": "Fox Mulder", "email": "fox@fbi.gov"},
        ],
    )
    q = {"query": "type:user email:DANA@fbi.gov"}
    _, _, body = await call(http, "GET", f"{base_url}/api/v2/search", params=q)
    assert [r["name"] for r in body["results"]] == ["Dana Scully"]
    q = {"query": 'type:user name:"Fox Mulder"'}
    _, _, body = await call(http, "GET", f"{base_url}/api/v2/search", params=q)
    assert [r["name"] for r in body["results"]] == ["Fox Mulder"]


async def test_ticket_search_filters(
    http: aiohttp.ClientSession, base_url: str, sandbox: Sandbox
) -> None:
    me = await agent_id(http, base_url)
    user = await new_user(http, base_url, name="Ticket Searcher")
    ids = []
    for status in ("open", "solved"):
        _, _, body = await new_ticket(
            http, base_url, requester_id=user["id"], assignee_id=me, status=status
        )
        ids.append(body["ticket"]["id"])
    search = f"{base_url}/api/v2/search"

    async def found(query: str) -> list[int]:
        _, _, body = await call(http, "GET", search, params={"query": query})
        return sorted(r["id"] for r in body["results"])

    assert await found(f"type:ticket requester_id:{user['id']}") == ids
    assert await found(f"type:ticket requester:{user['id']} status<solved") == ids[:1]
    assert await found(f"type:ticket requester:{user['id']} -status:open") == ids[1:]
    assert await found("type:ticket status>pending") == ids[1:]


async def test_search_index_lags_behind_writes(
    start_sandbox: StartSandbox, http: aiohttp.ClientSession
) -> None:
    server = await start_sandbox(search_index_delay=60)
    base, sandbox = url_of(server), sandbox_of(server)
    user = await new_user(http, base, name="Late Indexed", phone="+15550123")
    q = {"query": "type:user role:end-user phone:*5550123"}
    _, _, body = await call(http, "GET", f"{base}/api/v2/search", params=q)
    assert body["results"] == []
    # The database itself is consistent at once.
    assert (await call(http, "GET", f"{base}/api/v2/users/{user['id']}"))[0] == 200
    sandbox.clock.advance(61)
    _, _, body = await call(http, "GET", f"{base}/api/v2/search", params=q)
    assert [r["id"] for r in body["results"]] == [user["id"]]
    # A changed phone is found by its old value until the change is indexed.
    await call(
        http, "PUT", f"{base}/api/v2/users/{user['id']}", json={"user": {"phone": "+15559999"}}
    )
    _, _, body = await call(http, "GET", f"{base}/api/v2/search", params=q)
    assert [r["id"] for r in body["results"]] == [user["id"]]
    sandbox.clock.advance(61)
    _, _, body = await call(http, "GET", f"{base}/api/v2/search", params=q)
    assert body["results"] == []


# --------------------------------------------------------------------------- tickets


async def test_requested_tickets_most_recently_updated_first(
    http: aiohttp.ClientSession, base_url: str, sandbox: Sandbox
) -> None:
    user = await new_user(http, base_url, name="Repeat Caller")
    ids = []
    for _ in range(3):
        _, _, body = await new_ticket(http, base_url, requester_id=user["id"])
        ids.append(body["ticket"]["id"])
        sandbox.clock.advance(1)
    await call(
        http,
        "PUT",
        f"{base_url}/api/v2/tickets/{ids[0]}",
        json={"ticket": {"comment": {"body": "again"}}},
    )
    _, _, body = await call(
        http,
        "GET",
        f"{base_url}/api/v2/users/{user['id']}/tickets/requested",
        params={"sort_by": "updated_at", "sort_order": "desc"},
    )
    assert [t["id"] for t in body["tickets"]] == [ids[0], ids[2], ids[1]]


async def test_comments_keep_their_shape(
    http: aiohttp.ClientSession, base_url: str, sandbox: Sandbox
) -> None:
    me = await agent_id(http, base_url)
    _, _, body = await new_ticket(http, base_url)
    tid = body["ticket"]["id"]
    await call(
        http,
        "PUT",
        f"{base_url}/api/v2/tickets/{tid}",
        json={
            "ticket": {
                "comment": {"html_body": "<p>a &amp; b</p>", "public": True},
                "voice_comment": voice(me),
            }
        },
    )
    _, _, body = await call(http, "GET", f"{base_url}/api/v2/tickets/{tid}/comments")
    first, html, vc = body["comments"]
    assert (
        first["author_id"] == me and first["public"] is False and first["plain_body"] == "details"
    )
    assert html["html_body"] == "<p>a &amp; b</p>" and html["plain_body"] == "a & b"
    assert vc["type"] == "VoiceComment" and vc["public"] is False
    assert vc["data"]["recording_url"] == "https://connect.example.com/rec/1.wav"
    assert vc["data"]["answered_by_id"] == me and vc["data"]["call_duration"] == 42
    assert "Listen to the recording" in vc["body"]


async def test_closed_tickets_refuse_updates(
    http: aiohttp.ClientSession, base_url: str, sandbox: Sandbox
) -> None:
    me = await agent_id(http, base_url)
    _, _, body = await new_ticket(http, base_url, assignee_id=me, status="closed")
    tid = body["ticket"]["id"]
    status, _, body = await call(
        http, "PUT", f"{base_url}/api/v2/tickets/{tid}", json={"ticket": {"status": "open"}}
    )
    assert status == 422 and body["error"] == "RecordInvalid"


async def test_missing_things_answer_404(http: aiohttp.ClientSession, base_url: str) -> None:
    status, _, body = await call(http, "GET", f"{base_url}/api/v2/tickets/424242")
    assert (status, body["error"]) == (404, "RecordNotFound")
    assert (await call(http, "GET", f"{base_url}/api/v2/users/424242"))[0] == 404
    status, _, body = await call(
        http, "POST", f"{base_url}/api/v2/channels/voice/agents/424242/tickets/1/display"
    )
    assert status == 404


async def test_uploads_are_attached_and_downloadable(
    http: aiohttp.ClientSession, base_url: str, sandbox: Sandbox
) -> None:
    _, _, body = await call(
        http,
        "POST",
        f"{base_url}/api/v2/uploads",
        params={"filename": "call.mp3"},
        data=b"ID3-audio",
        headers={"Content-Type": "audio/mpeg"},
    )
    token, url = body["upload"]["token"], body["upload"]["attachment"]["content_url"]
    _, _, body = await new_ticket(
        http, base_url, comment={"body": "recording", "uploads": [token], "public": False}
    )
    ticket = sandbox.tickets[body["ticket"]["id"]]
    assert [a.file_name for a in ticket.comments[0].attachments] == ["call.mp3"]
    async with aiohttp.ClientSession() as anon, anon.get(url) as resp:
        assert await resp.read() == b"ID3-audio"


# --------------------------------------------------------------------------- auth


@pytest.mark.unvalidated_traffic
async def test_authentication(base_url: str) -> None:
    url = f"{base_url}/api/v2/users/me"
    wrong = base64.b64encode(b"agent@example.com/token:nope").decode()
    password = base64.b64encode(b"agent@example.com:sandbox-token").decode()
    async with aiohttp.ClientSession() as s:
        for headers, expected in [
            ({}, 401),
            ({"Authorization": f"Basic {wrong}"}, 401),
            ({"Authorization": f"Basic {password}"}, 401),
            ({"Authorization": "Bearer not-a-token"}, 401),
            ({"Authorization": "Bearer sandbox-access-token"}, 200),
        ]:
            status, _, body = await call(s, "GET", url, headers=headers)
            assert status == expected, headers
            if status == 401:
                assert body == {"error": "Couldn't authenticate you"}


async def test_oauth_refresh_rotates_tokens_and_expiry_answers_401(
    base_url: str, sandbox: Sandbox
) -> None:
    token_url = f"{base_url}/oauth/tokens"
    grant = {
        "grant_type": "refresh_token",
        "refresh_token": "sandbox-refresh-token",
        "client_id": "switchboard",
        "client_secret": "sandbox-secret",
    }
    async with aiohttp.ClientSession() as s:
        status, _, tokens = await call(s, "POST", token_url, json=grant)
        assert status == 200 and tokens["token_type"] == "bearer"
        assert tokens["refresh_token"] != "sandbox-refresh-token"
        # The old refresh token is spent.
        status, _, body = await call(s, "POST", token_url, json=grant)
        assert (status, body["error"]) == (400, "invalid_grant")
        bearer = {"Authorization": f"Bearer {tokens['access_token']}"}
        me = f"{base_url}/api/v2/users/me"
        assert (await call(s, "GET", me, headers=bearer))[0] == 200
        sandbox.clock.advance(sandbox.config.access_token_ttl + 1)
        assert (await call(s, "GET", me, headers=bearer))[0] == 401
        # Form-encoded client_credentials works too; a bad secret does not.
        form = {
            "grant_type": "client_credentials",
            "client_id": "switchboard",
            "client_secret": "sandbox-secret",
        }
        status, _, body = await call(s, "POST", token_url, data=form)
        assert status == 200 and "refresh_token" not in body
        status, _, body = await call(s, "POST", token_url, data={**form, "client_secret": "x"})
        assert (status, body["error"]) == (401, "invalid_client")
    assert sandbox.request_count("POST", "/oauth/tokens") == 4


# --------------------------------------------------------------------------- limits


async def test_account_rate_limit(start_sandbox: StartSandbox, http: aiohttp.ClientSession) -> None:
    server = await start_sandbox(rate_limit_per_minute=3)
    url = f"{url_of(server)}/api/v2/users/me"
    remaining = []
    for _ in range(3):
        status, headers, _ = await call(http, "GET", url)
        assert status == 200 and headers["X-Rate-Limit"] == "3"
        remaining.append(headers["X-Rate-Limit-Remaining"])
    assert remaining == ["2", "1", "0"]
    status, headers, body = await call(http, "GET", url)
    assert status == 429 and 1 <= int(headers["Retry-After"]) <= 60
    assert headers["X-Rate-Limit-Remaining"] == "0" and body["error"] == "TooManyRequests"
    sandbox_of(server).clock.advance(60)
    assert (await call(http, "GET", url))[0] == 200


async def test_ticket_update_limit(
    start_sandbox: StartSandbox, http: aiohttp.ClientSession
) -> None:
    server = await start_sandbox(ticket_updates_per_10_minutes=2)
    base = url_of(server)
    _, _, body = await new_ticket(http, base)
    url = f"{base}/api/v2/tickets/{body['ticket']['id']}"
    for _ in range(2):
        assert (await call(http, "PUT", url, json={"ticket": {"tags": ["x"]}}))[0] == 200
    status, headers, _ = await call(http, "PUT", url, json={"ticket": {"tags": ["y"]}})
    assert status == 429 and int(headers["Retry-After"]) > 0


# --------------------------------------------------------------------------- faults


async def test_fault_injection_kinds(
    http: aiohttp.ClientSession, base_url: str, sandbox: Sandbox
) -> None:
    faults = f"{base_url}/__sandbox/faults"
    rules = [
        {"kind": "error", "method": "GET", "path": "/api/v2/users/me", "status": 503},
        {"kind": "rate_limit", "method": "GET", "path": "/api/v2/users/me", "retry_after": 7},
        {
            "kind": "error",
            "path": "/api/v2/tickets/{ticket_id}",
            "status": 500,
            "count": 2,
            "skip": 1,
        },
    ]
    status, _, body = await call(http, "POST", faults, json=rules)
    assert status == 201 and len(body["faults"]) == 3
    me = f"{base_url}/api/v2/users/me"
    assert (await call(http, "GET", me))[0] == 503
    status, headers, _ = await call(http, "GET", me)
    assert status == 429 and headers["Retry-After"] == "7"
    assert (await call(http, "GET", me))[0] == 200
    _, _, body = await new_ticket(http, base_url)
    ticket = f"{base_url}/api/v2/tickets/{body['ticket']['id']}"
    statuses = [(await call(http, "GET", ticket))[0] for _ in range(4)]
    assert statuses == [200, 500, 500, 200]
    assert (await call(http, "GET", faults))[2] == {"faults": []}

    await call(http, "POST", faults, json={"kind": "error", "path": "/api/v2/*", "count": None})
    assert (await call(http, "GET", me))[0] == 500
    assert (await call(http, "DELETE", faults))[0] == 200
    assert (await call(http, "GET", me))[0] == 200
    status, _, _ = await call(http, "POST", faults, json={"kind": "explode"})
    assert status == 400


async def test_drop_after_write_performs_the_write_then_drops(
    http: aiohttp.ClientSession, base_url: str, sandbox: Sandbox
) -> None:
    await call(
        http,
        "POST",
        f"{base_url}/__sandbox/faults",
        json=[{"kind": "drop_after_write", "method": "POST", "path": "/api/v2/tickets"}],
    )
    with pytest.raises(aiohttp.ServerDisconnectedError):
        await new_ticket(http, base_url, "drop-key")
    assert len(sandbox.tickets) == 1
    status, headers, _ = await new_ticket(http, base_url, "drop-key")
    assert status == 201 and headers["x-idempotency-lookup"] == "hit"
    assert len(sandbox.tickets) == 1
    assert sandbox.exchanges[0].status is None  # recorded as "no answer"


async def test_timeout_fault_holds_the_request(
    http: aiohttp.ClientSession, base_url: str, sandbox: Sandbox
) -> None:
    await call(
        http,
        "POST",
        f"{base_url}/__sandbox/faults",
        json={"kind": "timeout", "path": "/api/v2/users/me", "seconds": 0.3},
    )
    with pytest.raises(TimeoutError):
        await call(
            http,
            "GET",
            f"{base_url}/api/v2/users/me",
            timeout=aiohttp.ClientTimeout(total=0.1),
        )
    assert (await call(http, "GET", f"{base_url}/api/v2/users/me"))[0] == 200


# --------------------------------------------------------------------------- talk partner


@pytest.mark.parametrize("no_tpe_status", [403, 404])
async def test_without_talk_partner_edition(
    start_sandbox: StartSandbox, http: aiohttp.ClientSession, no_tpe_status: int
) -> None:
    server = await start_sandbox(talk_partner_edition=False, no_talk_partner_status=no_tpe_status)
    base = url_of(server)
    me = await agent_id(http, base)
    _, _, body = await new_ticket(http, base)
    tid = body["ticket"]["id"]
    status, _, body = await call(
        http, "POST", f"{base}/api/v2/channels/voice/agents/{me}/tickets/{tid}/display"
    )
    assert status == no_tpe_status
    assert body == (
        {"error": "Forbidden", "description": FORBIDDEN} if no_tpe_status == 403 else ""
    )
    talk = {"ticket": {"via_id": 45, "voice_comment": voice(me)}}
    status, _, _ = await call(http, "POST", f"{base}/api/v2/channels/voice/tickets", json=talk)
    assert status == no_tpe_status
    assert sandbox_of(server).pops == []


async def test_pops_are_recorded_per_agent(
    http: aiohttp.ClientSession, base_url: str, sandbox: Sandbox
) -> None:
    me = await agent_id(http, base_url)
    user = await new_user(http, base_url, name="Popped")
    talk = {
        "display_to_agent": me,
        "ticket": {"via_id": 45, "requester_id": user["id"], "voice_comment": voice(me)},
    }
    _, _, body = await call(http, "POST", f"{base_url}/api/v2/channels/voice/tickets", json=talk)
    tid = body["ticket"]["id"]
    await call(
        http, "POST", f"{base_url}/api/v2/channels/voice/agents/{me}/users/{user['id']}/display"
    )
    pops = [(p.kind, p.target_id, p.source) for p in sandbox.pops_for(me)]
    assert pops == [("ticket", tid, "display_to_agent"), ("user", user["id"], "display")]
    _, _, state = await call(http, "GET", f"{base_url}/__sandbox/state")
    assert [p["target_id"] for p in state["pops"]] == [tid, user["id"]]


# --------------------------------------------------------------------------- admin


async def test_admin_state_counts_reset_config_and_clock(
    http: aiohttp.ClientSession, base_url: str, sandbox: Sandbox
) -> None:
    user = await new_user(http, base_url, name="Counted")
    for _ in range(2):
        await call(http, "GET", f"{base_url}/api/v2/users/{user['id']}.json")
    _, _, body = await new_ticket(http, base_url)
    _, _, state = await call(http, "GET", f"{base_url}/__sandbox/state")
    assert state["requests"]["GET /api/v2/users/{user_id}"] == 2
    assert state["requests"]["POST /api/v2/users"] == 1
    assert [t["id"] for t in state["tickets"]] == [body["ticket"]["id"]]
    assert state["tickets"][0]["comments"][0]["plain_body"] == "details"
    assert {u["name"] for u in state["users"]} == {"Sandbox Agent", "Counted"}

    status, _, config = await call(
        http, "PATCH", f"{base_url}/__sandbox/config", json={"talk_partner_edition": False}
    )
    assert status == 200 and config["talk_partner_edition"] is False
    assert sandbox.config.talk_partner_edition is False
    status, _, _ = await call(
        http, "PATCH", f"{base_url}/__sandbox/config", json={"rate_limit_per_minute": "lots"}
    )
    assert status == 400

    before = sandbox.now()
    await call(http, "POST", f"{base_url}/__sandbox/clock", json={"advance": 3600})
    assert sandbox.now() - before >= 3600

    _, _, exchanges = await call(http, "GET", f"{base_url}/__sandbox/exchanges")
    assert exchanges["exchanges"][0]["template"] == "/api/v2/users"

    assert (await call(http, "POST", f"{base_url}/__sandbox/reset"))[0] == 200
    assert sandbox.tickets == {} and [u.name for u in sandbox.users.values()] == ["Sandbox Agent"]
    assert sandbox.request_count() == 0


async def test_run_sandbox_serves_until_cancelled() -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    task = asyncio.create_task(run_sandbox("127.0.0.1", port))
    try:
        async with aiohttp.ClientSession() as session:
            for _ in range(100):
                try:
                    status, _, state = await call(
                        session, "GET", f"http://127.0.0.1:{port}/__sandbox/state"
                    )
                    break
                except aiohttp.ClientConnectorError:
                    await asyncio.sleep(0.02)
            assert status == 200 and state["users"][0]["email"] == "agent@example.com"
    finally:
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
