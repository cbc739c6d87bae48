"""The memory store forgets idle agents with everything they own, as Redis keys expire: memory
follows the agents in use, not every agent ever seen."""

import tracemalloc

from daemon.core.writes import StateWrite
from daemon.store.base import NEVER_STORED, Envelope, StreamEntry
from daemon.store.memory import MemoryStore

IDLE = 60.0


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


async def _come_and_go(store: MemoryStore, agent: str) -> None:
    """Everything a short-lived agent does: commits, heads, a lease, a journal, a listener."""
    state, envelopes = b"state" * 20, [Envelope({"n": 1})]
    assert await store.commit_agent(agent, NEVER_STORED, StateWrite(state), envelopes) is not None
    await store.stream_head(agent)
    lease = await store.claim_lease(agent, "runner:c", "node", 5.0)
    assert lease is not None
    assert await store.journal_write(lease, "c", "ticket", {"id": 1})
    await store.release_lease(lease)
    subscription = await store.subscribe(agent, lambda entry: None)
    await subscription.close()
    await store.rate_acquire(f"account-{hash(agent) % 10}", 600, 5)
    await store.heartbeat(f"node-{hash(agent) % 10}", 1.0)


async def test_a_hundred_thousand_agents_come_and_go() -> None:
    clock = Clock()
    store = MemoryStore(idle_ttl=IDLE, clock=clock)
    for i in range(100_000):
        await _come_and_go(store, f"agent-{i}")
        if i % 1000 == 999:
            clock.now += 1.0  # 1000 agents a second: about 60,000 alive at any time
    assert 50_000 < store.sizes()["agents"] <= 62_000  # not expired early

    clock.now += IDLE + 1
    await store.stream_head("tick")
    await store.rate_acquire("account-x", 600, 5)
    await store.heartbeat("node-x", 1.0)
    assert store.sizes() == {"agents": 1, "workflows": 0, "rates": 1, "nodes": 1}
    # An expired agent starts afresh: nothing of its state or its journal.
    assert (await store.load_agent("agent-5")).version == 0
    assert await store.journal_read("agent-5", "c") == {}


async def test_memory_comes_back_after_a_crowd_leaves() -> None:
    """Measured with tracemalloc (not RSS): what the store still holds once everyone left."""
    clock = Clock()
    store = MemoryStore(idle_ttl=IDLE, clock=clock)
    tracemalloc.start()
    try:
        for i in range(1000):  # warm up allocator caches before the baseline
            await _come_and_go(store, f"warm-{i}")
        clock.now += IDLE + 1
        await store.stream_head("tick")
        baseline, _ = tracemalloc.get_traced_memory()
        for i in range(20_000):
            await _come_and_go(store, f"agent-{i}")
        during, _ = tracemalloc.get_traced_memory()
        clock.now += IDLE + 1
        await store.stream_head("tick")
        after, _ = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert during - baseline > 10 * 1024 * 1024  # the crowd did cost memory while it was here
    assert after - baseline < 256 * 1024, f"{after - baseline} bytes kept after everyone left"


async def test_agents_in_use_are_kept() -> None:
    clock = Clock()
    store = MemoryStore(idle_ttl=IDLE, clock=clock)
    got: list[StreamEntry] = []
    watched = await store.subscribe("watched", got.append)
    await store.commit_agent("watched", NEVER_STORED, StateWrite(b"s"), [])
    lease = await store.claim_lease("leased", "runner:c", "node", IDLE * 3)
    assert lease is not None
    epoch, _ = await store.stream_head("idle")
    clock.now += IDLE * 2
    await store.stream_head("tick")

    assert (await store.load_agent("watched")).version == 1  # a listener: not idle
    assert await store.lease_is_current(lease)  # a live lease: not idle
    assert (await store.stream_head("idle"))[0] != epoch  # idle: gone, a new epoch

    await watched.close()
    clock.now += IDLE * 2
    await store.stream_head("tick")
    assert (await store.load_agent("watched")).version == 0
    assert store.subscriptions("watched") == 0
