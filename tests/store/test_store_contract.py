"""The Store contract: the same assertions against memory, one Redis server and a Redis Cluster.

Anything the daemon relies on is asserted here for every implementation, so a daemon can switch
stores by configuration alone. Redis-only behaviour (server stopped, server restarted empty) is
in `test_redis_outage.py`.
"""

import asyncio
import json
import random
from collections.abc import Sequence
from functools import partial
from typing import Any

import pytest

from daemon.core.writes import StateWrite
from daemon.store.base import (
    NEVER_STORED,
    Envelope,
    Resumed,
    Revision,
    Store,
    StreamEntry,
    Versioned,
)
from daemon.store.redis import RedisStore
from tests.daemons import eventually
from tests.store.conftest import STREAM_MAX, Backend


def env(n: int, tab: str | None = None) -> Envelope:
    return Envelope({"type": "contact", "n": n, "text": "é" * (n % 3)}, to_tab=tab)


# -- agent aggregate ---------------------------------------------------------------------


async def test_version_conflict_writes_nothing(backend: Backend) -> None:
    store = backend.store()
    assert await store.load_agent("A") == Versioned(NEVER_STORED, None)
    first = await store.commit_agent("A", NEVER_STORED, StateWrite(b"one"), [env(1)])
    assert first is not None and first.revision == Revision(first.entries[0].epoch, 1)
    head = await store.stream_head("A")

    assert await store.commit_agent("A", NEVER_STORED, StateWrite(b"stale"), [env(2)]) is None
    future = Revision(first.revision.epoch, 5)
    assert await store.commit_agent("A", future, StateWrite(b"future"), [env(3)]) is None
    loaded = await store.load_agent("A")
    assert (loaded.revision, loaded.head) == (first.revision, b"one")
    assert await store.stream_head("A") == head  # no seq consumed by a refused commit

    second = await store.commit_agent("A", first.revision, StateWrite(b"two"), [])
    assert second is not None and second.entries == []
    assert second.revision == Revision(first.revision.epoch, 2)
    loaded = await store.load_agent("A")
    assert (loaded.revision, loaded.head) == (second.revision, b"two")
    assert await store.load_agent("B") == Versioned(NEVER_STORED, None)  # agents independent


async def test_state_is_binary_safe(backend: Backend) -> None:
    store = backend.store()
    blob = bytes(range(256)) * 9
    await store.commit_agent("A", NEVER_STORED, StateWrite(blob), [])
    assert (await store.load_agent("A")).head == blob


async def test_seqs_are_consecutive_and_ordered(backend: Backend) -> None:
    store = backend.store()
    first = await store.commit_agent("A", NEVER_STORED, StateWrite(b"s"), [env(1), env(2, "tab-1")])
    assert first is not None
    assert [e.seq for e in first.entries] == [1, 2]
    epoch = first.entries[0].epoch
    second = await store.commit_agent("A", first.revision, StateWrite(b"s"), [])
    assert second is not None and second.entries == []
    third = await store.commit_agent(
        "A", second.revision, StateWrite(b"s"), [env(3), env(4), env(5)]
    )
    assert third is not None
    assert [(e.epoch, e.seq) for e in third.entries] == [(epoch, 3), (epoch, 4), (epoch, 5)]
    assert await store.stream_head("A") == (epoch, 5)

    replay = await store.read_stream("A", epoch, 0)
    assert replay == first.entries + third.entries
    assert replay is not None
    assert replay[1].envelope == env(2, "tab-1")
    assert await store.read_stream("A", epoch, 3) == third.entries[1:]


async def test_stream_head_creates_an_epoch(backend: Backend) -> None:
    store = backend.store()
    epoch, seq = await store.stream_head("fresh")
    assert seq == 0 and epoch
    assert await store.stream_head("fresh") == (epoch, 0)
    assert await store.read_stream("fresh", epoch, 0) == []
    committed = await store.commit_agent("fresh", NEVER_STORED, StateWrite(b"s"), [env(1)])
    assert committed is not None and committed.entries[0].epoch == epoch
    assert committed.revision == Revision(epoch, 1)


async def test_read_stream_is_all_or_nothing(backend: Backend) -> None:
    store = backend.store()
    revision, envelopes = NEVER_STORED, 0
    for _ in range(30):  # 300 entries, far beyond stream_max
        committed = await store.commit_agent(
            "A", revision, StateWrite(b"s"), [env(i) for i in range(10)]
        )
        assert committed is not None
        revision, envelopes = committed.revision, envelopes + 10
    epoch, last = await store.stream_head("A")
    assert last == envelopes == 300

    assert await store.read_stream("A", epoch, 0) is None  # trimmed: not a partial answer
    assert await store.read_stream("A", epoch, last - STREAM_MAX - 100) is None
    recent = await store.read_stream("A", epoch, last - 20)
    assert recent is not None and [e.seq for e in recent] == list(range(last - 19, last + 1))
    assert await store.read_stream("A", epoch, last) == []
    assert await store.read_stream("A", epoch, last + 1) is None  # a future position
    assert await store.read_stream("A", "not-the-epoch", last - 1) is None
    assert await store.read_stream("A", "not-the-epoch", last) is None
    assert await store.read_stream("A", epoch, -1) is None


async def test_entries_older_than_the_max_age_go_on_the_next_append(backend: Backend) -> None:
    store = backend.store(stream_max_age=0.5)
    old = await store.commit_agent("A", NEVER_STORED, StateWrite(b"s"), [env(1), env(2), env(3)])
    assert old is not None
    epoch = old.entries[0].epoch
    await asyncio.sleep(0.7)
    assert await store.read_stream("A", epoch, 0) == old.entries  # trimmed only on append
    quiet = await store.commit_agent("A", old.revision, StateWrite(b"s"), [])
    assert quiet is not None
    assert await store.read_stream("A", epoch, 0) == old.entries  # no append, no trim

    new = await store.commit_agent("A", quiet.revision, StateWrite(b"s"), [env(4), env(5)])
    assert new is not None
    assert await store.read_stream("A", epoch, 0) is None  # in the aged part: a snapshot
    assert await store.read_stream("A", epoch, 2) is None
    assert await store.read_stream("A", epoch, 3) == new.entries  # just after it: kept
    assert await store.resume("A", epoch, 1) == Resumed(epoch, 5, None)
    assert await store.resume("A", epoch, 4) == Resumed(epoch, 5, new.entries[1:])


async def test_a_long_aged_backlog_goes_within_a_few_appends(backend: Backend) -> None:
    """Redis drops at most 100 aged entries per append (bounded work per commit); memory drops
    them all at once. Three appends clear 250 either way."""
    store = backend.store(stream_max=1000, stream_max_age=0.3)
    revision = NEVER_STORED
    for _ in range(5):
        committed = await store.commit_agent("A", revision, StateWrite(b"s"), [env(1)] * 50)
        assert committed is not None
        revision = committed.revision
    await asyncio.sleep(0.5)
    new: list[StreamEntry] = []
    for n in range(3):
        committed = await store.commit_agent("A", revision, StateWrite(b"s"), [env(n)])
        assert committed is not None
        revision, new = committed.revision, new + committed.entries
    epoch, last = await store.stream_head("A")
    assert last == 253
    assert await store.read_stream("A", epoch, 250) == new
    assert await store.read_stream("A", epoch, 249) is None


async def test_lost_stream_gets_a_new_epoch(backend: Backend) -> None:
    store = backend.store()
    committed = await store.commit_agent("A", NEVER_STORED, StateWrite(b"s"), [env(1), env(2)])
    assert committed is not None
    old_epoch = committed.entries[0].epoch

    backend.lose_everything()

    assert await store.read_stream("A", old_epoch, 1) is None
    assert await store.read_stream("A", old_epoch, 2) is None  # even "nothing missed" is stale
    new_epoch, seq = await store.stream_head("A")
    assert new_epoch != old_epoch and seq == 0
    assert await store.load_agent("A") == Versioned(NEVER_STORED, None)
    again = await store.commit_agent("A", NEVER_STORED, StateWrite(b"s"), [env(3)])
    assert again is not None and [(e.epoch, e.seq) for e in again.entries] == [(new_epoch, 1)]


async def test_a_commit_built_before_the_store_lost_the_agent_is_refused(
    backend: Backend,
) -> None:
    """Versions restart after a loss; a node that read revision (E1, 2) before it, paused,
    and woke when the new life had reached version 2 again must not write its old view over
    the new one: the epoch tells the two lives apart (the simulator's seed 6833)."""
    store, paused = backend.store(), backend.store()
    before = NEVER_STORED
    for n in range(2):
        committed = await store.commit_agent("A", before, StateWrite(b"old %d" % n), [env(n)])
        assert committed is not None
        before = committed.revision
    assert (await paused.load_agent("A")).revision == before

    backend.lose_everything()
    after = NEVER_STORED
    for n in range(2):
        committed = await store.commit_agent("A", after, StateWrite(b"new %d" % n), [env(n)])
        assert committed is not None
        after = committed.revision
    assert after.version == before.version and after.epoch != before.epoch

    assert await paused.commit_agent("A", before, StateWrite(b"stale view"), [env(9)]) is None
    loaded = await paused.load_agent("A")
    assert (loaded.revision, loaded.head) == (after, b"new 1")
    assert await paused.stream_head("A") == (after.epoch, 2)  # nothing appended
    assert await paused.commit_agent("A", loaded.revision, StateWrite(b"rebuilt"), []) is not None


async def test_the_revision_alone_is_what_a_full_load_says_through_commits_and_a_loss(
    backend: Backend,
) -> None:
    store, peer = backend.store(), backend.store()
    assert await peer.load_revision("A") == NEVER_STORED
    revision = NEVER_STORED
    for n in range(3):
        put = {f"c{i}": entry(i) for i in range(n * 50, n * 50 + 50)}
        committed = await store.commit_agent("A", revision, StateWrite(b"h", put), [env(n)])
        assert committed is not None
        revision = committed.revision
        assert await peer.load_revision("A") == revision == (await peer.load_agent("A")).revision
    backend.lose_everything()
    assert await peer.load_revision("A") == NEVER_STORED


# -- the state, per contact --------------------------------------------------------------


def entry(n: int) -> bytes:
    return b"\x00entry %d " % n + bytes(range(256))


async def test_contacts_are_put_and_dropped_per_commit(backend: Backend) -> None:
    store, other = backend.store(), backend.store()
    ids = ["c-1", "é:2", "c 3", "v", "h"]  # any text, even a name the store uses itself
    first = await store.commit_agent(
        "A", NEVER_STORED, StateWrite(b"h1", {cid: entry(n) for n, cid in enumerate(ids)}), []
    )
    assert first is not None
    loaded = await other.load_agent("A")
    assert loaded == Versioned(first.revision, b"h1", {cid: entry(n) for n, cid in enumerate(ids)})

    write = StateWrite(b"h2", {"c-1": b"", "new": entry(9)}, ["é:2", "v", "never-there"])
    second = await store.commit_agent("A", first.revision, write, [env(1)])
    assert second is not None
    expected = {"c-1": b"", "c 3": entry(2), "h": entry(4), "new": entry(9)}
    assert await other.load_agent("A") == Versioned(second.revision, b"h2", expected)

    third = await store.commit_agent("A", second.revision, StateWrite(b"h3"), [])
    assert third is not None  # a head-only commit leaves every contact as it was
    assert await other.load_agent("A") == Versioned(third.revision, b"h3", expected)


async def test_a_refused_commit_puts_and_drops_no_contact(backend: Backend) -> None:
    store = backend.store()
    first = await store.commit_agent(
        "A", NEVER_STORED, StateWrite(b"h1", {"c-1": b"one", "c-2": b"two"}), []
    )
    assert first is not None
    second = await store.commit_agent("A", first.revision, StateWrite(b"h2", {"c-1": b"1"}), [])
    assert second is not None
    stale = StateWrite(b"stale", {"c-1": b"stale", "c-3": b"three"}, ["c-2"])
    assert await store.commit_agent("A", first.revision, stale, [env(1)]) is None
    assert await store.load_agent("A") == Versioned(
        second.revision, b"h2", {"c-1": b"1", "c-2": b"two"}
    )


async def test_a_resent_commit_changes_contacts_once(backend: Backend) -> None:
    store = backend.store()
    write = StateWrite(b"h1", {"c-1": b"one"})
    first = await store.commit_agent("A", NEVER_STORED, write, [env(1)], commit_id="k-1")
    assert first is not None
    moved_on = StateWrite(b"h2", {"c-2": b"two"}, ["c-1"])
    second = await store.commit_agent("A", first.revision, moved_on, [], commit_id="k-2")
    assert second is not None
    assert await store.commit_agent("A", NEVER_STORED, write, [env(1)], commit_id="k-1") == first
    assert await store.load_agent("A") == Versioned(second.revision, b"h2", {"c-2": b"two"})


async def test_a_commit_costs_what_it_changed_not_the_history(backend: Backend) -> None:
    """200 contacts stored, one changed: the commit carries that one (on Redis: the bytes
    sent with the COMMIT script do not grow with the agent's history)."""
    store = backend.store()
    sent: list[int] = []
    if isinstance(store, RedisStore):
        commit_call = store._commit_call

        async def measured(keys: Sequence[Any], args: Sequence[Any]) -> Any:
            sent.append(sum(len(a) for a in args if isinstance(a, bytes | str)))
            return await commit_call(keys, args)

        store._commit_call = measured
    revision = NEVER_STORED
    for n in range(200):
        write = StateWrite(b"head", {f"c-{n:03d}": entry(n % 10)})
        committed = await store.commit_agent("A", revision, write, [env(n)])
        assert committed is not None
        revision = committed.revision
    loaded = await store.load_agent("A")
    assert loaded.contacts == {f"c-{n:03d}": entry(n % 10) for n in range(200)}
    if backend.kind != "memory":
        assert len(sent) == 200
        assert max(sent) - min(sent) < 32, sent  # a few digits of version and ids, no more


# -- subscriptions -----------------------------------------------------------------------


async def test_subscribe_delivers_entries_from_another_node(backend: Backend) -> None:
    writer, reader = backend.store(), backend.store()
    got_a: list[StreamEntry] = []
    got_b: list[StreamEntry] = []
    sub_a = await reader.subscribe("A", got_a.append)
    sub_b = await reader.subscribe("B", got_b.append)

    committed = await writer.commit_agent(
        "A", NEVER_STORED, StateWrite(b"s"), [env(1), env(2, "t")]
    )
    assert committed is not None
    await eventually(lambda: len(got_a) >= 2)
    assert got_a[:2] == committed.entries
    assert got_b == []  # isolation: B's listener never sees A's stream

    await sub_a.close()
    await sub_a.close()  # idempotent
    more = await writer.commit_agent("A", committed.revision, StateWrite(b"s"), [env(3)])
    b_committed = await writer.commit_agent("B", NEVER_STORED, StateWrite(b"s"), [env(4)])
    assert more is not None and b_committed is not None
    await eventually(lambda: len(got_b) == 1)
    assert got_b == b_committed.entries
    assert len(got_a) == 2  # closed: nothing more
    await sub_b.close()


async def test_two_listeners_on_one_agent(backend: Backend) -> None:
    writer, reader = backend.store(), backend.store()
    first: list[StreamEntry] = []
    second: list[StreamEntry] = []
    sub1 = await reader.subscribe("A", first.append)
    sub2 = await reader.subscribe("A", second.append)
    committed = await writer.commit_agent("A", NEVER_STORED, StateWrite(b"s"), [env(1)])
    assert committed is not None
    await eventually(lambda: len(first) == 1 and len(second) == 1)
    await sub1.close()  # the other listener keeps the channel
    await writer.commit_agent("A", committed.revision, StateWrite(b"s"), [env(2)])
    await eventually(lambda: len(second) == 2)
    assert len(first) == 1
    await sub2.close()


async def test_failing_listener_does_not_stop_delivery(backend: Backend) -> None:
    writer, reader = backend.store(), backend.store()
    good: list[StreamEntry] = []

    def bad(entry: StreamEntry) -> None:
        raise RuntimeError("listener bug")

    await reader.subscribe("A", bad)
    await reader.subscribe("A", good.append)
    committed = await writer.commit_agent("A", NEVER_STORED, StateWrite(b"s"), [env(1)])
    assert committed is not None
    assert (
        await writer.commit_agent("A", committed.revision, StateWrite(b"s"), [env(2)]) is not None
    )
    await eventually(lambda: len(good) == 2)


# -- leases and the journal --------------------------------------------------------------


async def test_lease_claim_conflict_renew_release(backend: Backend) -> None:
    one, two = backend.store(), backend.store()
    lease = await one.claim_lease("A", "runner:c1", "node-1", 5.0)
    assert lease is not None and lease.holder == "node-1" and lease.agent == "A"
    assert await two.claim_lease("A", "runner:c1", "node-2", 5.0) is None
    other = await two.claim_lease("A", "runner:c2", "node-2", 5.0)  # another name is free
    assert other is not None

    again = await one.claim_lease("A", "runner:c1", "node-1", 5.0)
    assert again == lease  # the holder re-claiming keeps its epoch
    assert await one.renew_lease(lease, 5.0)
    assert await two.lease_is_current(lease)

    forged = type(lease)(lease.name, lease.agent, "node-2", lease.epoch)
    assert not await two.renew_lease(forged, 5.0)
    await two.release_lease(forged)  # not the holder: no effect
    assert await one.lease_is_current(lease)

    await one.release_lease(lease)
    assert not await one.lease_is_current(lease)
    taken = await two.claim_lease("A", "runner:c1", "node-2", 5.0)
    assert taken is not None and taken.epoch > lease.epoch


async def test_expired_lease_holder_is_fenced(backend: Backend) -> None:
    one, two = backend.store(), backend.store()
    stale = await one.claim_lease("A", "runner:c1", "node-1", 0.15)
    assert stale is not None
    assert await one.journal_write(stale, "c1", "ticket", {"id": 1})
    await asyncio.sleep(0.25)

    assert not await one.lease_is_current(stale)
    fresh = await two.claim_lease("A", "runner:c1", "node-2", 5.0)
    assert fresh is not None and fresh.epoch > stale.epoch

    # The paused holder wakes up: everything it tries is refused.
    assert not await one.lease_is_current(stale)
    assert not await one.renew_lease(stale, 5.0)
    assert not await one.journal_write(stale, "c1", "ticket", {"id": 666})
    await one.release_lease(stale)
    assert await two.lease_is_current(fresh)
    assert await two.journal_read("A", "c1") == {"ticket": {"id": 1}}
    assert await two.journal_write(fresh, "c1", "comment", True)

    # The stale holder claiming again gets a new, greater epoch, never its old one back.
    await two.release_lease(fresh)
    back = await one.claim_lease("A", "runner:c1", "node-1", 5.0)
    assert back is not None and back.epoch > fresh.epoch
    assert not await one.lease_is_current(stale)


async def test_fencing_epochs_strictly_grow(backend: Backend) -> None:
    stores = [backend.store() for _ in range(3)]
    epochs = []
    for i in range(12):
        lease = await stores[i % 3].claim_lease("A", "owner", f"holder-{i}", 5.0)
        assert lease is not None
        epochs.append(lease.epoch)
        await stores[(i + 1) % 3].release_lease(lease)
    assert epochs == sorted(set(epochs))


async def test_renew_extends_the_lease(backend: Backend) -> None:
    store = backend.store()
    lease = await store.claim_lease("A", "owner", "h", 0.3)
    assert lease is not None
    for _ in range(4):
        await asyncio.sleep(0.1)
        assert await store.renew_lease(lease, 0.3)
    assert await store.lease_is_current(lease)  # 0.4 s after a 0.3 s claim


async def test_journal(backend: Backend) -> None:
    store = backend.store()
    lease = await store.claim_lease("A", "runner:c1", "h", 5.0)
    assert lease is not None
    assert await store.journal_read("A", "c1") == {}
    values = {
        "user": {"id": 7, "name": "Zoë", "tags": ["a", "b"]},
        "ticket": 42,
        "comment": None,
        "flag": True,
        "ratio": 0.5,
        "text": "hello",
    }
    for step, value in values.items():
        assert await store.journal_write(lease, "c1", step, value)
    assert await store.journal_write(lease, "c1", "ticket", 43)  # a step can be rewritten
    assert await store.journal_read("A", "c1") == {**values, "ticket": 43}
    assert await store.journal_read("A", "c2") == {}
    assert await store.journal_read("B", "c1") == {}


async def test_workflows_set(backend: Backend) -> None:
    one, two = backend.store(), backend.store()
    await one.workflows_add("A", "c1")
    await one.workflows_add("A", "c1")
    await two.workflows_add("B", "c2")
    await two.workflows_add("A", "c0")
    assert await one.workflows_list() == [("A", "c0"), ("A", "c1"), ("B", "c2")]
    await two.workflows_done("A", "c1")
    await two.workflows_done("Z", "missing")
    assert await one.workflows_list() == [("A", "c0"), ("B", "c2")]


# -- rate limit, nodes -------------------------------------------------------------------


async def test_rate_limiter_grants_burst_then_delays(backend: Backend) -> None:
    """A slow budget (one slot per 10 s) for the refusals, so no pause of a loaded machine
    between two calls can free a slot; a fast one for "granted again after the wait", which a
    pause only makes truer."""
    one, two = backend.store(), backend.store()
    per_minute, burst, interval = 6, 4, 10.0
    grants = 0
    while (wait := await one.rate_acquire("zendesk", per_minute, burst)) == 0:
        grants += 1
        assert grants <= burst + 1
    assert burst <= grants <= burst + 1  # GCRA: `burst` is the tolerance beyond the first
    assert 0 < wait <= interval + 0.02

    # The budget is shared: another node is refused too, and the key is what is shared.
    assert await two.rate_acquire("zendesk", per_minute, burst) > 0
    assert await one.rate_acquire("zendesk", per_minute, burst) > 0
    assert await two.rate_acquire("other-account", per_minute, burst) == 0

    while (wait := await one.rate_acquire("fast", 600, 0)) == 0:
        pass
    assert 0 < wait <= 0.1 + 0.02
    await asyncio.sleep(wait + 0.01)
    assert await two.rate_acquire("fast", 600, 0) == 0


async def test_heartbeat_and_live_nodes(backend: Backend) -> None:
    one, two = backend.store(), backend.store()
    assert await one.live_nodes() == frozenset()
    # A TTL a loaded machine's pause between two calls cannot outlast, and a sleep past it.
    await one.heartbeat("node-1", 1.5)
    await two.heartbeat("node-2", 30.0)
    assert await two.live_nodes() == {"node-1", "node-2"}
    await asyncio.sleep(1.7)
    assert await one.live_nodes() == {"node-2"}
    await one.heartbeat("node-1", 30.0)  # a node that comes back is live again
    assert await two.live_nodes() == {"node-1", "node-2"}


async def test_a_key_is_used_once_across_nodes_until_its_ttl_is_over(backend: Backend) -> None:
    one, two = backend.store(), backend.store()
    assert await one.use_once("link:a", 1.5) is True
    assert await two.use_once("link:a", 30.0) is False  # another node: still used
    assert await one.use_once("link:a", 30.0) is False  # nor does a refusal extend it
    assert await two.use_once("link:b", 30.0) is True  # keys are independent
    await asyncio.sleep(1.7)
    assert await two.use_once("link:a", 30.0) is True  # forgotten after its ttl
    assert await one.use_once("link:a", 30.0) is False
    assert await one.use_once("link:b", 30.0) is False  # a longer ttl is still running

    # Nodes racing for one key: exactly one wins.
    stores = [backend.store() for _ in range(4)]
    won = await asyncio.gather(*(s.use_once("link:race", 30.0) for s in stores * 5))
    assert won.count(True) == 1


async def test_ping(backend: Backend) -> None:
    await backend.store().ping()


# -- randomised concurrency ---------------------------------------------------------------


async def _committer(
    store: Store, agent: str, update: int, rng: random.Random, accepted: list[StreamEntry]
) -> int:
    """Apply one update with reload-and-retry on conflict, as the daemon does."""
    attempts = 0
    while True:
        attempts += 1
        loaded = await store.load_agent(agent)
        applied = json.loads(loaded.head or b"[]")
        applied.append(update)
        await asyncio.sleep(rng.random() * 0.002)  # widen the race window
        envelopes = [env(update)] * rng.randint(0, 2)
        write = StateWrite(json.dumps(applied).encode(), {f"u{update}": b"%d" % update})
        committed = await store.commit_agent(agent, loaded.revision, write, envelopes)
        if committed is not None:
            accepted.extend(committed.entries)
            return attempts


@pytest.mark.parametrize("seed", [1, 2, 3])
async def test_concurrent_committers_lose_nothing(backend: Backend, seed: int) -> None:
    rng = random.Random(seed)
    stores = [backend.store() for _ in range(4)]
    agents = ["A", "B", "C"]
    seen: dict[str, list[StreamEntry]] = {agent: [] for agent in agents}
    subs = [await stores[0].subscribe(agent, seen[agent].append) for agent in agents]
    accepted: dict[str, list[StreamEntry]] = {agent: [] for agent in agents}
    jobs = []
    expected: dict[str, list[int]] = {agent: [] for agent in agents}
    for update in range(60):
        agent = rng.choice(agents)
        expected[agent].append(update)
        store = rng.choice(stores)
        jobs.append(_committer(store, agent, update, random.Random(rng.random()), accepted[agent]))
    attempts = await asyncio.gather(*jobs)
    assert sum(attempts) > len(jobs)  # there were conflicts, so the retry path ran

    for agent in agents:
        loaded = await stores[1].load_agent(agent)
        assert loaded.version == len(expected[agent])
        assert sorted(json.loads(loaded.head or b"[]")) == expected[agent]  # nothing lost
        # ... and a refused commit put no contact: exactly the applied ones are there.
        assert loaded.contacts == {f"u{u}": b"%d" % u for u in expected[agent]}

        seqs = sorted(e.seq for e in accepted[agent])
        assert seqs == list(range(1, len(seqs) + 1))  # unique and gap-free
        epoch, last = await stores[2].stream_head(agent)
        assert last == len(seqs)
        assert {e.epoch for e in accepted[agent]} <= {epoch}
        replay = await stores[3].read_stream(agent, epoch, 0)
        assert replay is not None
        assert replay == sorted(accepted[agent], key=lambda e: e.seq)
        await eventually(
            partial(lambda a, want: {e.seq for e in seen[a]} >= want, agent, set(seqs))
        )
        delivered = {e.seq: e for e in seen[agent]}  # at-least-once: duplicates allowed
        assert sorted(delivered.values(), key=lambda e: e.seq) == replay
    for sub in subs:
        await sub.close()
