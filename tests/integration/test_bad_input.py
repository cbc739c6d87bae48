"""Bad input is contained: a clear error or close code, other tabs unharmed, health green."""

import asyncio
import json
import logging
import math
import time
from collections.abc import AsyncIterator

import jwt
import msgpack
import pytest
from websockets.asyncio.client import connect
from websockets.exceptions import ConnectionClosed, InvalidStatus

from daemon.app import Daemon
from daemon.server.auth import mint_token
from tests.daemons import SECRET, eventually, open_tab, running, token, ws_url
from tests.integration.rawsockets import decode, greeted, healthy, next_error, raw

INCOMING = {"type": "voice", "direction": "inbound"}
CONTACT_AT = (
    '{"type": "contact_event", "event": "incoming",'
    ' "contact": {"contact_id": "t", "occurred_at": %s}}'
)
CHAT_AT = (
    '{"type": "chat_message", "contact_id": "t", "message_id": "m", "participant": "agent",'
    ' "text": "hi", "sent_at": %s}'
)


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
        # Hostile shapes (issue 11): past the interpreter's recursion limit, just past ours.
        ("[" * 4000, "bad_frame", "deeper than 8"),
        ('{"type": "hello", "x": ' + "[" * 8 + "]" * 8 + "}", "bad_frame", "deeper than 8"),
        ('{"type": ["contact_event"]}', "invalid_message", "type must be a string"),
        ('{"type": {"a": 1}}', "invalid_message", "type must be a string"),
        ('{"type": 7}', "invalid_message", "type must be a string"),
        # Timestamps that would poison the contact's workflow: refused at the wire.
        (CONTACT_AT % "NaN", "bad_frame", "NaN"),
        (CONTACT_AT % "Infinity", "bad_frame", "Infinity"),
        (CONTACT_AT % "1e999", "invalid_message", "occurred_at"),
        (CONTACT_AT % "32503680000", "invalid_message", "occurred_at"),  # the year 3000
        (CONTACT_AT % str(int(time.time()) + 3 * 86400), "invalid_message", "occurred_at"),
        (CONTACT_AT % "-1", "invalid_message", "occurred_at"),
        (CHAT_AT % "NaN", "bad_frame", "NaN"),
        (CHAT_AT % "1e308", "invalid_message", "sent_at"),
        (CHAT_AT % "12345", "invalid_message", "sent_at"),  # 1970
        (
            '{"type": "command", "name": "create_ticket", "contact_id": "c", "epoch": 1e400}',
            "invalid_message",
            "epoch",
        ),
        (
            '{"type": "command", "name": "create_ticket", "contact_id": "c", "epoch": '
            + "9" * 30
            + "}",
            "invalid_message",
            "epoch",
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
    await ws.send(b"\x91" * 3000 + b"\xc0")  # lists in lists, past msgpack's own stack
    assert (await next_error(ws))["code"] == "bad_frame"
    await ws.send(msgpack.packb({"type": "hello", "x": [[[[[[[[[]]]]]]]]]}))
    assert "deeper than 8" in (await next_error(ws))["message"]
    await ws.send(msgpack.packb({"type": [1]}))
    assert (await next_error(ws))["code"] == "invalid_message"
    for when in (math.nan, math.inf, 1e12):
        report = {"type": "contact_event", "event": "incoming"}
        await ws.send(msgpack.packb(report | {"contact": {"contact_id": "t", "occurred_at": when}}))
        error = await next_error(ws)
        assert error["code"] == "invalid_message" and "occurred_at" in error["message"]
    await ws.send(
        msgpack.packb(
            {"type": "contact_event", "event": "incoming", "contact": {"contact_id": "ok"}}
        )
    )
    assert decode(await asyncio.wait_for(ws.recv(), 3))["type"] == "contact"
    await ws.close()


@pytest.mark.parametrize(
    ("frame", "code"),
    [
        ("[" * 4000, "bad_frame"),
        ('{"type": "hello", "token": "x", "deep": ' + "[" * 20 + "]" * 20 + "}", "bad_frame"),
        ('{"type": []}', "invalid_message"),
        ('{"type": {"hello": 1}}', "invalid_message"),
        ('{"type": "hello", "token": ["x"]}', "invalid_message"),
        ("{not json", "bad_frame"),
        (b"\x91" * 3000 + b"\xc0", "bad_frame"),  # binary on the JSON subprotocol
    ],
)
async def test_a_frame_that_is_no_hello_closes_1002_before_hello_with_no_traceback(
    daemon: Daemon,
    frame: str | bytes,
    code: str,
    caplog: pytest.LogCaptureFixture,
    capsys: pytest.CaptureFixture[str],
) -> None:
    bystander = await open_tab(daemon, "alice")
    ws = await raw(daemon)
    await ws.send(frame)
    assert (await next_error(ws))["code"] == code
    with pytest.raises(ConnectionClosed):
        await asyncio.wait_for(ws.recv(), 3)
    assert ws.close_code == 1002
    await bystander.report("incoming", "c-1", **INCOMING)
    await eventually(lambda: bystander.owns("c-1"))
    assert await healthy(daemon)
    await bystander.close()
    assert not [r for r in caplog.records if r.levelno >= logging.ERROR or r.exc_info]
    out = capsys.readouterr()
    assert "Traceback" not in out.out + out.err


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
