"""What a greeted idle tab holds on the daemon, and how a stream entry reaches it.

A node holds thousands of idle tabs (tests/bench/idle_scale.py), so the footprint is a
property worth keeping: no task or queue of its own while nothing waits to be sent, no copy
of the hello (its token), no per-instance dict; and each entry is encoded once per
subprotocol, however many tabs it goes to.
"""

import asyncio
import json
from functools import partial

import msgpack

from daemon.server.connection import TabConnection
from daemon.server.frames import EntryFrames
from daemon.store.base import Envelope, StreamEntry
from protocol.codec import JSON_SUBPROTOCOL, MSGPACK_SUBPROTOCOL, Codec
from tests.daemons import eventually, open_tab, running, token

INCOMING = {"type": "voice", "direction": "inbound", "customer_endpoint": "+4420700001"}


def backlog_senders() -> list[asyncio.Task[object]]:
    return [
        task
        for task in asyncio.all_tasks()
        if task.get_coro().__qualname__ == TabConnection._send_backlog.__qualname__  # type: ignore[union-attr]
    ]


async def test_an_idle_greeted_tab_holds_no_task_no_queue_and_no_token() -> None:
    async with running() as daemon:
        tabs = [await open_tab(daemon, "alice") for _ in range(3)]
        await tabs[0].report("incoming", "c-1", **INCOMING)
        for tab in tabs:
            await eventually(partial(lambda t: "c-1" in t.contacts, tab))
        connections = daemon.hub.sinks()
        assert len(connections) == 3
        assert not backlog_senders(), "entries went out inline: no task was needed"
        secret = token("alice")
        for connection in connections:
            assert isinstance(connection, TabConnection)
            assert not connection.backlog
            assert not hasattr(connection, "__dict__")
            values = [getattr(connection, name) for name in TabConnection.__slots__]
            assert secret not in repr(values), "the hello's token is not kept"
        for tab in tabs:
            await tab.close()


def test_an_entry_is_encoded_once_per_subprotocol_and_the_cache_is_bounded() -> None:
    frames = EntryFrames(capacity=4)
    json_codec, msgpack_codec = Codec(JSON_SUBPROTOCOL), Codec(MSGPACK_SUBPROTOCOL)
    entries = [
        StreamEntry("e1", seq, Envelope({"type": "forget", "contact_ids": ["c"]}))
        for seq in range(1, 6)
    ]
    first = frames.live(entries[0], json_codec)
    assert frames.live(entries[0], json_codec) is first
    assert json.loads(first) == {
        "type": "forget",
        "contact_ids": ["c"],
        "pos": {"epoch": "e1", "seq": 1},
        "replayed": False,
    }
    packed = frames.live(entries[0], msgpack_codec)
    assert isinstance(packed, bytes) and msgpack.unpackb(packed) == json.loads(first)
    for entry in entries[1:]:
        frames.live(entry, json_codec)
    assert len(frames) == 4
    again = frames.live(entries[0], json_codec)
    assert again == first and again is not first  # evicted, encoded again
