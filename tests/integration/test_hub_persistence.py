"""The hub persists per contact: a commit writes what its event changed, not the history.

A real hub on the memory store and on a real redis-server; `switchboard_state_bytes` observes
the bytes each commit wrote, and a second node loading the agent from the store sees exactly
the state the first one holds, contact order included.
"""

import contextlib
from collections.abc import AsyncIterator

import pytest

from daemon.core.events import ContactReported, Rules
from daemon.server.hub import AgentHub
from daemon.server.metrics import Metrics
from daemon.store.base import Store
from daemon.store.memory import MemoryStore
from daemon.store.redis import RedisStore
from protocol.messages import ContactEvent, ContactEventName, ContactSnapshot
from tests.integration.test_hub_time import Page, open_page
from tests.redis_servers import RedisServer


@pytest.fixture(params=["memory", "redis"])
async def store(request: pytest.FixtureRequest) -> AsyncIterator[Store]:
    with contextlib.ExitStack() as stack:
        if request.param == "memory":
            s: Store = MemoryStore()
        else:
            s = RedisStore.from_url(stack.enter_context(RedisServer.start()).url)
        yield s
        await s.close()


async def report(hub: AgentHub, page: Page, event: ContactEventName, contact: str) -> None:
    report = ContactEvent(event=event, contact=ContactSnapshot(contact_id=contact))
    outcome = await hub.apply("alice", ContactReported(tab_id=page.tab_id, report=report))
    assert outcome.refusal is None


def written(metrics: Metrics) -> tuple[float, float]:
    """(commits, state bytes written) so far."""
    registry = metrics.registry
    count = registry.get_sample_value("switchboard_state_bytes_count") or 0.0
    return count, registry.get_sample_value("switchboard_state_bytes_sum") or 0.0


async def bytes_of_one_contact_event(
    hub: AgentHub, metrics: Metrics, page: Page, contact: str
) -> float:
    before = written(metrics)
    await report(hub, page, "connected", contact)
    after = written(metrics)
    assert after[0] == before[0] + 1  # one event, one commit
    await report(hub, page, "ended", contact)
    return after[1] - before[1]


async def test_commit_bytes_do_not_grow_with_history(store: Store) -> None:
    metrics = Metrics()
    hub, other = AgentHub(store, Rules(), "n1", metrics), AgentHub(store, Rules(), "n2", Metrics())
    try:
        page = await open_page(hub, "alice", "a", "n1")
        await report(hub, page, "connected", "first")
        small = await bytes_of_one_contact_event(hub, metrics, page, "probe-1")
        for n in range(200):
            await report(hub, page, "ended", f"old-{n}")  # created finished: retained
        _, state = await hub.load("alice")
        assert len(state.contacts) == 202
        large = await bytes_of_one_contact_event(hub, metrics, page, "probe-2")
        assert large - small < 64, (small, large)  # the order key and a longer id, no more

        _, seen = await other.load("alice", fresh=True)
        _, held = await hub.load("alice")
        assert seen == held
        assert list(seen.contacts) == list(held.contacts)  # creation order survives the store
    finally:
        await hub.close()
        await other.close()
