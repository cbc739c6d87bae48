"""The wire boundary without sockets: codecs refuse hostile shapes with typed errors only, the
models bound every value, and the token buckets pace an agent's connections together."""

import asyncio
import json
import math
import time
from typing import Any

import msgpack
import pytest
from hypothesis import given
from hypothesis import strategies as st

from daemon.core.ratelimit import TokenBucket
from daemon.server.connection import AgentBudgets, ConnectionLimits
from daemon.server.waits import FrameWaits, Waiting, counting_waits, waited
from protocol.codec import (
    JSON_SUBPROTOCOL,
    MAX_DEPTH,
    MSGPACK_SUBPROTOCOL,
    RECENT_FRAMES,
    Codec,
    RecentFrames,
    json_too_deep,
    too_deep,
)
from protocol.errors import ErrorCode, ProtocolError
from protocol.messages import ChatMessage, ContactEvent, check_clock

JSON = Codec(JSON_SUBPROTOCOL)
MSGPACK = Codec(MSGPACK_SUBPROTOCOL)


def nested(depth: int) -> Any:
    value: Any = 1
    for level in range(depth):
        value = [value] if level % 2 else {"k": value}
    return value


def refusal(codec: Codec, frame: str | bytes) -> ProtocolError:
    with pytest.raises(ProtocolError) as refused:
        codec.decode_client(frame)
    return refused.value


# -- nesting ------------------------------------------------------------------------------


JSON_VALUES = st.recursive(
    st.none() | st.integers() | st.text(alphabet='[]{}"\\ab,:'),
    lambda kids: st.lists(kids) | st.dictionaries(st.text(alphabet='[]{}"\\ab'), kids),
    max_leaves=30,
)


@given(JSON_VALUES)
def test_the_json_depth_scan_agrees_with_the_decoded_depth(value: Any) -> None:
    """Strings full of brackets, quotes and backslashes included."""
    text = json.dumps(value)
    for limit in range(1, 6):
        expected = too_deep(value, limit) if isinstance(value, dict | list) else False
        assert json_too_deep(text, limit) == expected


@pytest.mark.parametrize("codec", [JSON, MSGPACK], ids=["json", "msgpack"])
def test_deep_nesting_is_a_typed_bad_frame(codec: Codec) -> None:
    ok = {"type": "hello", "token": "t", "x": nested(MAX_DEPTH - 1)}
    deep = {"type": "hello", "token": "t", "x": nested(MAX_DEPTH)}
    encode = json.dumps if codec is JSON else msgpack.packb
    # At the limit: decoded, then refused by the model for the unknown field, not the depth.
    assert refusal(codec, encode(ok)).code == ErrorCode.INVALID_MESSAGE
    error = refusal(codec, encode(deep))
    assert error.code == ErrorCode.BAD_FRAME and f"deeper than {MAX_DEPTH}" in error.message


@pytest.mark.parametrize(
    "frame", ["[" * 5000, "[" * 5000 + "]" * 5000, '{"a":' * 3000 + "1" + "}" * 3000]
)
def test_json_nested_past_the_interpreters_recursion_limit_is_refused_quickly(frame: str) -> None:
    started = time.perf_counter()
    assert refusal(JSON, frame).code == ErrorCode.BAD_FRAME
    assert time.perf_counter() - started < 0.5  # generous: about a millisecond here


def test_msgpack_nested_past_its_decoders_stack_is_refused() -> None:
    assert refusal(MSGPACK, b"\x91" * 5000 + b"\xc0").code == ErrorCode.BAD_FRAME


def test_brackets_inside_strings_are_not_structure() -> None:
    frame = json.dumps({"type": "hello", "token": "[" * 100 + '\\"{{{'})
    assert JSON.decode_client(frame).type == "hello"


@pytest.mark.parametrize(
    ("frame", "words"),
    [
        (b"\xdc\x01\x00" + b"\xc0" * 256, "array"),  # 256 nils: longer than any client list
        (b"\xc4\x03abc", "bin"),  # binary: no client field is
    ],
)
def test_msgpack_containers_and_strings_are_bounded_inside_the_decoder(
    frame: bytes, words: str
) -> None:
    error = refusal(MSGPACK, frame)
    assert error.code == ErrorCode.BAD_FRAME and f"max_{words}_len" in error.message


# -- type and ref -------------------------------------------------------------------------


@pytest.mark.parametrize("kind", [[], {}, ["hello"], 7, 1.5, True, {"a": [1]}])
def test_a_non_string_type_is_a_typed_error(kind: Any) -> None:
    for codec, encode in ((JSON, json.dumps), (MSGPACK, msgpack.packb)):
        error = refusal(codec, encode({"type": kind, "ref": "r-1"}))
        assert error.code == ErrorCode.INVALID_MESSAGE and "type must be a string" in error.message
        assert error.ref == "r-1"


def test_refusals_quote_client_values_shortly() -> None:
    error = refusal(JSON, json.dumps({"type": "x" * 10_000, "ref": "y" * 10_000}))
    assert error.code == ErrorCode.UNKNOWN_TYPE
    assert len(error.message) < 120 and error.ref is None  # an invalid ref is not echoed


# -- numbers and strings --------------------------------------------------------------------


def event(**contact: Any) -> dict[str, Any]:
    return {"type": "contact_event", "event": "incoming", "contact": {"contact_id": "c", **contact}}


def chat(**fields: Any) -> dict[str, Any]:
    base = {"type": "chat_message", "contact_id": "c", "message_id": "m", "participant": "agent"}
    return {**base, "text": "hi", **fields}


@pytest.mark.parametrize("literal", ["NaN", "Infinity", "-Infinity", "1e999", "-1e999"])
def test_json_non_finite_numbers_are_refused(literal: str) -> None:
    for frame in (
        json.dumps(event()).replace('"c"}', f'"c", "occurred_at": {literal}}}'),
        json.dumps(chat()).replace('"hi"', f'"hi", "sent_at": {literal}'),
    ):
        assert refusal(JSON, frame).code in (ErrorCode.BAD_FRAME, ErrorCode.INVALID_MESSAGE)


@pytest.mark.parametrize("value", [math.nan, math.inf, -math.inf, 1e12, -1.0])
def test_msgpack_non_finite_and_absurd_timestamps_are_refused(value: float) -> None:
    error = refusal(MSGPACK, msgpack.packb(event(occurred_at=value)))
    assert error.code == ErrorCode.INVALID_MESSAGE and "occurred_at" in error.message
    error = refusal(MSGPACK, msgpack.packb(chat(sent_at=value)))
    assert error.code == ErrorCode.INVALID_MESSAGE and "sent_at" in error.message


def test_the_clock_check_takes_2000_to_tomorrow() -> None:
    now = 1_800_000_000.0
    for when in (946_684_800.0, now, now + 86_000):
        check_clock(ContactEvent.model_validate(event(occurred_at=when)), now)
        check_clock(ChatMessage.model_validate(chat(sent_at=when)), now)
    for when in (0.0, 946_684_799.0, now + 86_401, 4_000_000_000.0):
        with pytest.raises(ProtocolError) as refused:
            check_clock(ContactEvent.model_validate(event(occurred_at=when)), now)
        assert "contact.occurred_at" in refused.value.message
        with pytest.raises(ProtocolError) as refused:
            check_clock(ChatMessage.model_validate({**chat(sent_at=when), "ref": "r"}), now)
        assert refused.value.code == ErrorCode.INVALID_MESSAGE and refused.value.ref == "r"
    check_clock(ContactEvent.model_validate(event()), now)  # no timestamp: nothing to check


@pytest.mark.parametrize(
    ("message", "field"),
    [
        ({"type": "command", "name": "create_ticket", "contact_id": "c", "epoch": 2**64}, "epoch"),
        (
            {"type": "command", "name": "attach_to_current", "contact_id": "c", "epoch": 1}
            | {"ticket_id": 2**53},
            "ticket_id",
        ),
        (event(click_to_dial={"kind": "user", "id": 2**60}), "click_to_dial.id"),
        ({"type": "hello", "token": "t", "resume": {"epoch": "e", "seq": 2**63}}, "resume.seq"),
        (event(analysis={"transcript": "x" * 70_000}), "analysis.transcript"),
        (chat(text="x" * 16_385), "text"),
        (event(attributes={"k": "v" * 4097}), "attributes.k"),
        (event(attributes={"k" * 1025: "v"}), "attributes"),
        (event(attributes={f"k{n}": "v" for n in range(201)}), "attributes"),
        (event(queue="q" * 1025), "queue"),
        (chat(text="\ud800"), "surrogate"),
    ],
)
def test_every_number_string_and_map_is_bounded(message: dict[str, Any], field: str) -> None:
    frame = json.dumps(message)  # ensure_ascii: the lone surrogate travels as an escape
    error = refusal(JSON, frame)
    assert error.code in (ErrorCode.INVALID_MESSAGE, ErrorCode.BAD_FRAME)
    assert field in error.message


def test_escaped_surrogate_pairs_are_fine() -> None:
    assert JSON.decode_client(json.dumps(chat(text="call me \U0001f4de"))).type == "chat_message"


# -- budgets --------------------------------------------------------------------------------


def test_reservations_pace_callers_to_the_rate_and_refuse_past_the_wait() -> None:
    bucket = TokenBucket.full(rate=10.0, burst=2.0, now=0.0)
    assert bucket.reserve(0.0, max_wait=0.25) == (True, 0.0)
    assert bucket.reserve(0.0, max_wait=0.25) == (True, 0.0)
    granted = [bucket.reserve(0.0, max_wait=0.25) for _ in range(3)]
    assert [g for g, _ in granted] == [True, True, False]
    assert [round(w, 3) for _, w in granted] == [0.1, 0.2, 0.05]  # refused: retry in 50 ms
    assert bucket.reserve(0.05, max_wait=0.25)[0]  # ... and then it fits


def budgets(**limits: float) -> AgentBudgets:
    defaults = {"agent_rate_per_second": 1.0, "agent_rate_burst": 3, "agent_max_wait": 0.0}
    return AgentBudgets(ConnectionLimits(1.0, 1.0, 1, 1, **(defaults | limits)))  # type: ignore[arg-type]


def test_an_agents_connections_share_one_budget_and_a_reconnect_buys_no_burst() -> None:
    shared = budgets()
    shared.join("a", 0.0)
    shared.join("a", 0.0)
    shared.join("b", 0.0)
    assert [shared.reserve("a", 0.0)[0] for _ in range(4)] == [True, True, True, False]
    assert shared.reserve("b", 0.0)[0]
    shared.leave("a", 0.0)
    shared.leave("a", 0.0)
    shared.join("a", 0.5)  # back before the bucket refilled: the same, empty bucket
    assert not shared.reserve("a", 0.5)[0]
    shared.leave("a", 0.5)
    shared.leave("b", 0.5)
    shared.join("c", 10.0)  # long after: idle full buckets are forgotten
    assert len(shared) == 1


def test_an_agent_that_kept_the_node_busy_waits_until_it_paid_it_back() -> None:
    shared = budgets(agent_rate_burst=100, agent_busy_share=0.25, agent_busy_burst=0.5)
    shared.join("a", 0.0)
    shared.join("b", 0.0)
    assert shared.reserve("a", 0.0) == (True, 0.0)
    shared.charge("a", 0.0, 1.5)  # one expensive frame: a second in debt
    granted, wait = shared.reserve("a", 0.0)
    assert granted and wait == pytest.approx(4.0)  # at a quarter of the time: 4 s
    assert shared.reserve("a", 4.0) == (True, 0.0)
    assert shared.reserve("b", 0.0) == (True, 0.0)  # nobody else pays for it


async def test_a_frame_counts_each_wait_once_and_only_its_own() -> None:
    recorded: list[tuple[str, float, bool]] = []
    operation = counting_waits(lambda name: lambda s, ok: recorded.append((name, s, ok)))
    commit = operation("commit_agent")

    async def elsewhere() -> None:  # another task: not the frame's, whoever started it
        commit(5.0, True)

    with FrameWaits() as frame:
        commit(0.5, True)
        assert frame.seconds == 0.5 and recorded == [("commit_agent", 0.5, True)]
        with Waiting():  # a store call inside another wait is part of it, not counted again
            commit(10.0, True)
            await asyncio.sleep(0.01)
        await asyncio.create_task(elsewhere())
        assert 0.51 <= frame.seconds < 0.6
    commit(1.0, True)  # no frame is being handled: recorded, counted nowhere
    assert len(recorded) == 4 and frame.seconds < 0.6
    with FrameWaits() as following:  # the next frame starts afresh
        waited(1.0)
    assert following.seconds == 1.0 and frame.seconds < 0.6


def test_the_daemons_own_frames_are_not_held_to_client_bounds() -> None:
    """A snapshot lists every contact: far more entries than any client map or list."""
    view = {"type": "voice", "direction": "inbound", "state": "incoming", "epoch": 1}
    contacts = [{"contact_id": f"c-{n}", "owner_tab": "t", **view} for n in range(300)]
    media = {"media_less": False, "present": False, "ready": False, "gate": "warn"}
    snapshot = {"type": "snapshot", "contacts": contacts, "media": media}
    for codec, encode in ((JSON, json.dumps), (MSGPACK, msgpack.packb)):
        decoded = codec.decode_server(encode(snapshot))
        assert decoded.type == "snapshot" and len(decoded.contacts) == 300


def test_a_ref_is_echoed_only_when_it_is_an_id() -> None:
    for ref, echoed in (("r-1", "r-1"), ("r-1\n", None), ("x" * 129, None), (7, None)):
        assert refusal(JSON, json.dumps({"type": "teleport", "ref": ref})).ref == echoed


def test_a_recently_decoded_frame_is_answered_from_memory_with_the_same_message() -> None:
    frame = json.dumps(
        {"type": "contact_event", "event": "incoming", "contact": {"contact_id": "memo-1"}}
    )
    first = JSON.decode_client(frame)
    assert JSON.decode_client(frame) is first
    # The same bytes in the other subprotocol's frame kind are still refused, not remembered.
    assert refusal(MSGPACK, frame).code == ErrorCode.BAD_FRAME
    assert refusal(JSON, frame.encode()).code == ErrorCode.BAD_FRAME


def test_frames_that_fail_are_refused_each_time_and_hellos_are_never_kept() -> None:
    bad = json.dumps({"type": "contact_event", "event": "incoming", "contact": {}})
    for _ in range(2):
        assert refusal(JSON, bad).code == ErrorCode.INVALID_MESSAGE
    assert (JSON_SUBPROTOCOL, bad) not in RECENT_FRAMES._messages
    hello = json.dumps({"type": "hello", "token": "t" * 40})
    JSON.decode_client(hello)
    assert (JSON_SUBPROTOCOL, hello) not in RECENT_FRAMES._messages


def test_the_memo_stays_bounded_under_a_flood_of_distinct_and_huge_frames() -> None:
    memo = RecentFrames(capacity=8, max_frame=100)
    message = JSON.decode_client(
        json.dumps({"type": "media_status", "signed_in": True, "microphone": True})
    )
    for n in range(1000):
        memo.put((JSON_SUBPROTOCOL, f"frame-{n}"), message)
    memo.put((JSON_SUBPROTOCOL, "x" * 101), message)
    assert len(memo) == 8
    assert memo.get((JSON_SUBPROTOCOL, "frame-999")) is message
    assert memo.get((JSON_SUBPROTOCOL, "frame-0")) is None
    assert memo.get((JSON_SUBPROTOCOL, "x" * 101)) is None
