"""Bad input is contained: a clear error or close code, other tabs unharmed, health green."""

import asyncio
import json
import time
from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import jwt
import msgpack
import pytest
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed, InvalidStatus

from daemon.app import Daemon
from daemon.server.auth import mint_token
from tests.daemons import SECRET, eventually, open_tab, running, token, ws_url

INCOMING = {"type": "voice", "direction": "inbound"}


@pytest.fixture
async def daemon() -> AsyncIterator[Daemon]:
    async with running(
        rate_per_second=20.0,
        rate_burst=20,
        flood_strikes=5,
        max_message_bytes=4096,
        hello_timeout_seconds=0.5,
        allowed_origins=["https://acme.zendesk.com"],
    ) as d:
        yield d


async def raw(daemon: Daemon, *, binary: bool = False, **kw: Any) -> ClientConnection:
    sub = "switchboard.v1.msgpack" if binary else "switchboard.v1.json"
    return await connect(ws_url(daemon), subprotocols=[sub], **kw)  # type: ignore[list-item]


async def greeted(daemon: Daemon, *, binary: bool = False) -> ClientConnection:
    ws = await raw(daemon, binary=binary)
    hello = {"type": "hello", "token": token("mallory")}
    await ws.send(msgpack.packb(hello) if binary else json.dumps(hello))
    welcome = decode(await ws.recv())
    assert welcome["type"] == "welcome"
    assert decode(await ws.recv())["type"] == "snapshot"
    return ws


def decode(frame: str | bytes) -> dict[str, Any]:
    data: dict[str, Any] = msgpack.unpackb(frame) if isinstance(frame, bytes) else json.loads(frame)
    return data


async def next_error(ws: ClientConnection) -> dict[str, Any]:
    while True:
        message = decode(await asyncio.wait_for(ws.recv(), 3))
        if message["type"] == "error":
            return message


async def healthy(daemon: Daemon) -> bool:
    async with (
        aiohttp.ClientSession() as http,
        http.get(f"http://127.0.0.1:{daemon.http_port}/healthz") as r,
    ):
        return r.status == 200


@pytest.mark.parametrize(
    ("frame", "code", "words"),
    [
        ("{not json", "bad_frame", "malformed JSON"),
        ("[1, 2]", "bad_frame", "map"),
        ('{"type": "teleport"}', "unknown_type", "teleport"),
        ('{"no_type": 1}', "unknown_type", "None"),
        ('{"type": "contact_event", "event": "incoming"}', "invalid_message", "contact"),
        (
            '{"type": "contact_event", "event": "exploded", "contact": {"contact_id": "c"}}',
            "invalid_message",
            "event",
        ),
        (
            '{"type": "command", "name": "create_ticket", "contact_id": "c", "epoch": "one"}',
            "invalid_message",
            "epoch",
        ),
        (
            '{"type": "contact_event", "event": "incoming", "contact": {"contact_id": "c d!"}}',
            "invalid_message",
            "contact_id",
        ),
        ('{"type": "hello", "token": "x"}', "already_greeted", "hello"),
        ('{"type": "media_status", "microphone": true, "signed_in": true}', "wrong_role", "media"),
        (
            '{"type": "command", "name": "create_ticket", "contact_id": "nope", "epoch": 1}',
            "unknown_contact",
            "nope",
        ),
    ],
)
async def test_bad_messages_get_a_typed_error_and_the_connection_goes_on(
    daemon: Daemon, frame: str, code: str, words: str
) -> None:
    bystander = await open_tab(daemon, "alice")
    ws = await greeted(daemon)
    await ws.send(frame)
    error = await next_error(ws)
    assert error["code"] == code and words in error["message"]
    # Still usable afterwards, and nothing leaked into another agent.
    await ws.send(
        json.dumps(
            {"type": "contact_event", "event": "incoming", "contact": {"contact_id": "ok-1"}}
        )
    )
    contact = decode(await asyncio.wait_for(ws.recv(), 3))
    assert contact["type"] == "contact" and contact["contact"]["contact_id"] == "ok-1"
    await asyncio.sleep(0.05)
    assert not bystander.contacts
    assert await healthy(daemon)
    await ws.close()
    await bystander.close()


async def test_malformed_msgpack_and_wrong_frame_kind(daemon: Daemon) -> None:
    ws = await greeted(daemon, binary=True)
    await ws.send(b"\xc1\xc1\xc1")
    assert (await next_error(ws))["code"] == "bad_frame"
    await ws.send(json.dumps({"type": "hello"}))  # text on a binary subprotocol
    assert "binary" in (await next_error(ws))["message"]
    await ws.close()


async def test_message_before_hello_is_refused_then_hello_works(daemon: Daemon) -> None:
    ws = await raw(daemon)
    await ws.send(
        json.dumps({"type": "contact_event", "event": "incoming", "contact": {"contact_id": "c"}})
    )
    assert (await next_error(ws))["code"] == "hello_required"
    await ws.send(json.dumps({"type": "hello", "token": token("alice")}))
    assert decode(await ws.recv())["type"] == "welcome"
    await ws.close()


@pytest.mark.parametrize(
    "bad_token",
    [
        "not-a-jwt",
        mint_token("some-other-secret", "alice"),  # forged
        mint_token(SECRET, "alice", ttl_seconds=-10),  # expired
        jwt.encode({"sub": "alice", "exp": int(time.time()) + 60}, SECRET, algorithm="HS256"),
        jwt.encode(
            {"sub": "alice", "aud": "switchboard", "exp": int(time.time()) + 60},
            "x",
            algorithm="HS384",
        ),
    ],
)
async def test_bad_tokens_are_refused_with_4001(daemon: Daemon, bad_token: str) -> None:
    ws = await raw(daemon)
    await ws.send(json.dumps({"type": "hello", "token": bad_token}))
    assert (await next_error(ws))["code"] == "unauthorized"
    with pytest.raises(ConnectionClosed):
        await asyncio.wait_for(ws.recv(), 3)
    assert ws.close_code == 4001


async def test_no_hello_in_time_closes_with_4002(daemon: Daemon) -> None:
    ws = await raw(daemon)
    with pytest.raises(ConnectionClosed):
        await asyncio.wait_for(ws.recv(), 3)
    assert ws.close_code == 4002


async def test_oversized_frame_closes_with_1009_and_others_go_on(daemon: Daemon) -> None:
    bystander = await open_tab(daemon, "alice")
    ws = await greeted(daemon)
    await ws.send("x" * 10_000)
    with pytest.raises(ConnectionClosed):
        await asyncio.wait_for(ws.recv(), 3)
    assert ws.close_code == 1009
    await bystander.report("incoming", "c-1", **INCOMING)
    await eventually(lambda: bystander.owns("c-1"))
    await bystander.close()


async def test_a_flood_is_rate_limited_then_closed_and_others_go_on(daemon: Daemon) -> None:
    bystander = await open_tab(daemon, "alice")
    ws = await greeted(daemon)
    codes = []
    with pytest.raises(ConnectionClosed):
        for n in range(200):  # each answered before the next: far over 20 per second
            await ws.send(
                json.dumps(
                    {
                        "type": "chat_message",
                        "contact_id": "x",
                        "message_id": f"m{n}",
                        "participant": "agent",
                        "text": "spam",
                    }
                )
            )
            codes.append(decode(await asyncio.wait_for(ws.recv(), 3)).get("code"))
    assert "rate_limited" in codes
    assert ws.close_code == 4008
    await bystander.report("incoming", "c-1", **INCOMING)
    await eventually(lambda: bystander.owns("c-1"))
    assert await healthy(daemon)
    await bystander.close()


async def test_handshake_refusals(daemon: Daemon) -> None:
    url = ws_url(daemon)
    with pytest.raises(InvalidStatus) as refused:
        await connect(url, subprotocols=["chat.v2"])  # type: ignore[list-item]
    assert refused.value.response.status_code == 400
    with pytest.raises(InvalidStatus) as refused:
        await connect(url)
    assert refused.value.response.status_code == 400
    with pytest.raises(InvalidStatus) as refused:
        await raw(daemon, origin="https://evil.example")
    assert refused.value.response.status_code == 403
    with pytest.raises(InvalidStatus) as refused:
        await connect(url.replace("/ws", "/other"), subprotocols=["switchboard.v1.json"])  # type: ignore[list-item]
    assert refused.value.response.status_code == 404
    ok = await raw(daemon, origin="https://acme.zendesk.com")
    await ok.close()
    assert await healthy(daemon)
