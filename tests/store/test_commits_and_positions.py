"""Idempotent commits, one-round-trip resume and batched heads: the same assertions against
memory, one Redis server and a Redis Cluster (see `test_store_contract.py` for the rest)."""

import asyncio

from daemon.core.writes import StateWrite
from daemon.store.base import NEVER_STORED, Envelope, Resumed, StreamEntry
from tests.daemons import eventually
from tests.store.conftest import STREAM_MAX, Backend


def env(n: int) -> Envelope:
    return Envelope({"type": "contact", "n": n})


async def test_a_resent_commit_is_applied_once(backend: Backend) -> None:
    """What redis-py does when a reply is lost: send the very same commit again."""
    writer, reader = backend.store(), backend.store()
    seen: list[StreamEntry] = []
    subscription = await reader.subscribe("A", seen.append)
    one = [env(1), env(2)]
    first = await writer.commit_agent("A", NEVER_STORED, StateWrite(b"one"), one, commit_id="c-1")
    again = await writer.commit_agent("A", NEVER_STORED, StateWrite(b"one"), one, commit_id="c-1")
    assert first is not None and len(first.entries) == 2
    assert again == first  # answered as the first attempt was, not "conflict"
    stored = await writer.load_agent("A")
    assert (stored.revision, stored.head) == (first.revision, b"one")
    epoch, head = await writer.stream_head("A")
    assert head == 2
    assert await writer.read_stream("A", epoch, 0) == first.entries  # no duplicate entries

    # Still recognised after other commits (the reply may come back late); a new id with
    # the same stale revision is a real conflict.
    second = await writer.commit_agent(
        "A", first.revision, StateWrite(b"two"), [env(3)], commit_id="c-2"
    )
    assert second is not None and [e.seq for e in second.entries] == [3]
    assert (
        await writer.commit_agent("A", NEVER_STORED, StateWrite(b"one"), one, commit_id="c-1")
        == first
    )
    assert (
        await writer.commit_agent("A", NEVER_STORED, StateWrite(b"x"), [env(9)], commit_id="c-3")
        is None
    )
    assert await writer.stream_head("A") == (epoch, 3)
    assert (await writer.load_agent("A")).revision == second.revision

    # Commit ids are per agent: the same id on another agent is another commit.
    other = await writer.commit_agent(
        "B", NEVER_STORED, StateWrite(b"b"), [env(4)], commit_id="c-1"
    )
    assert other is not None and other.entries[0].seq == 1 and other.revision.epoch != epoch

    await eventually(lambda: len(seen) >= 3)
    await asyncio.sleep(0.1)
    assert sorted(e.seq for e in seen) == [1, 2, 3]  # the replay published nothing
    await subscription.close()


async def test_concurrent_resends_apply_once(backend: Backend) -> None:
    stores = [backend.store() for _ in range(3)]
    results = await asyncio.gather(
        *(
            s.commit_agent("A", NEVER_STORED, StateWrite(b"s"), [env(1)], commit_id="same")
            for s in stores * 4
        )
    )
    assert all(r == results[0] for r in results) and results[0] is not None
    assert (await stores[0].stream_head("A"))[1] == 1
    assert (await stores[1].load_agent("A")).version == 1


async def test_resume_is_head_and_missed_entries(backend: Backend) -> None:
    store = backend.store()
    fresh = await store.resume("A", None, 0)
    assert fresh.head == 0 and fresh.missed is None and fresh.epoch
    assert await store.stream_head("A") == (fresh.epoch, 0)  # the epoch was created, once

    committed = await store.commit_agent(
        "A", NEVER_STORED, StateWrite(b"s"), [env(i) for i in range(5)]
    )
    assert committed is not None
    epoch = fresh.epoch
    assert await store.resume("A", epoch, 2) == Resumed(epoch, 5, committed.entries[2:])
    assert await store.resume("A", epoch, 5) == Resumed(epoch, 5, [])
    assert await store.resume("A", epoch, 6) == Resumed(epoch, 5, None)  # a future position
    assert await store.resume("A", "other-epoch", 1) == Resumed(epoch, 5, None)
    assert await store.resume("A", epoch, -1) == Resumed(epoch, 5, None)

    revision = committed.revision
    for _ in range(STREAM_MAX // 5 + 30):  # trim the start away
        more = await store.commit_agent("A", revision, StateWrite(b"s"), [env(0)] * 5)
        assert more is not None
        revision = more.revision
    trimmed = await store.resume("A", epoch, 1)
    assert trimmed.missed is None and trimmed.head == 5 * revision.version


async def test_stream_heads_are_batched_and_create_nothing(backend: Backend) -> None:
    store = backend.store()
    assert (
        await store.commit_agent("A", NEVER_STORED, StateWrite(b"s"), [env(1), env(2)]) is not None
    )
    epoch_b, _ = await store.stream_head("B")
    agents = ["A", "B", "nobody"] + [f"x{i}" for i in range(1200)]
    heads = await store.stream_heads(agents)
    assert len(heads) == len(agents)
    epoch_a, head_a = await store.stream_head("A")
    assert heads[:3] == [(epoch_a, head_a), (epoch_b, 0), None]
    assert head_a == 2
    assert set(heads[3:]) == {None}
    assert await store.stream_heads(["nobody"]) == [None]  # reading did not create it
