"""The hub's clockwork without a sweep: each agent's own deadline timer, live-set changes.

A real hub on the real memory store and event loop; `sweep` is never called, so whatever time
does here is done by the per-agent timers and by the reaction to the live node set.
"""

import asyncio
from collections.abc import AsyncIterator

import pytest

from daemon.core.events import ContactReported, Rules, TabClosed, TabOpened
from daemon.server.hub import AgentHub
from daemon.server.metrics import Metrics
from daemon.store.base import StreamEntry
from daemon.store.memory import MemoryStore
from protocol.messages import ContactEvent, ContactSnapshot, Notify
from tests.daemons import eventually


class Page:
    """A local tab connection as the hub sees it; it records what it is delivered."""

    def __init__(self, tab_id: str, conn_id: str) -> None:
        self.tab_id, self.conn_id = tab_id, conn_id
        self.entries: list[StreamEntry] = []

    async def supersede(self) -> None:
        raise AssertionError("nothing here resumes elsewhere")

    def deliver(self, entry: StreamEntry) -> None:
        self.entries.append(entry)

    def resync(self) -> None:
        pass

    async def tell(self, notice: Notify) -> None:
        pass

    async def reregister(self) -> None:
        raise AssertionError("no peer marks these tabs gone")


@pytest.fixture
async def store() -> AsyncIterator[MemoryStore]:
    s = MemoryStore()
    yield s
    await s.close()


async def open_page(hub: AgentHub, agent: str, name: str, node: str) -> Page:
    opened = TabOpened(
        node=node,
        role="embedded",
        tab_id=name,
        session=None,
        conn_id=f"conn-{name}",
        fresh_tab_id=f"fresh-{name}",
        fresh_session=f"sess-{name}",
    )
    outcome = await hub.apply(agent, opened)
    assert outcome.assignment is not None
    page = Page(outcome.assignment.tab_id, opened.conn_id)
    await hub.attach(agent, page)
    return page


async def report(hub: AgentHub, agent: str, page: Page, contact: str) -> None:
    event = ContactEvent(event="connected", contact=ContactSnapshot(contact_id=contact))
    await hub.apply(agent, ContactReported(tab_id=page.tab_id, report=event))


async def owner(hub: AgentHub, agent: str, contact: str) -> str | None:
    _, state = await hub.load(agent, fresh=True)
    return state.contacts[contact].owner_tab


async def test_grace_ends_on_the_agents_own_timer(store: MemoryStore) -> None:
    hub = AgentHub(store, Rules(grace_seconds=0.3), "n1", Metrics())
    try:
        first = await open_page(hub, "alice", "a", "n1")
        second = await open_page(hub, "alice", "b", "n1")
        await report(hub, "alice", first, "c1")
        assert await owner(hub, "alice", "c1") == first.tab_id
        await hub.detach("alice", first)
        await hub.apply("alice", TabClosed(tab_id=first.tab_id, conn_id=first.conn_id))
        assert await owner(hub, "alice", "c1") == first.tab_id  # held for its grace period

        async def failed_over() -> bool:
            return await owner(hub, "alice", "c1") == second.tab_id

        await eventually(failed_over, timeout=5)
        # The tab that took over was told, by the stream, with no tab having said anything.
        told = [
            e.envelope.message for e in second.entries if e.envelope.message["type"] == "contact"
        ]
        assert told[-1]["contact"]["owner_tab"] == second.tab_id
    finally:
        await hub.close()


async def test_a_node_leaving_the_live_set_ticks_the_agents_with_tabs_there(
    store: MemoryStore,
) -> None:
    hub = AgentHub(store, Rules(node_timeout_seconds=0.2, grace_seconds=600), "n1", Metrics())
    try:
        hub.live_nodes = frozenset({"n1", "n2"})
        remote = await open_page(hub, "alice", "a", "n2")  # as if it had moved to node n2
        await report(hub, "alice", remote, "c1")
        local = await open_page(hub, "bob", "b", "n1")
        await asyncio.sleep(0.3)  # past the node timeout: only the live set keeps it alive
        _, alice = await hub.load("alice", fresh=True)
        assert alice.tabs[remote.tab_id].connected
        hub.live_nodes = frozenset({"n1"})

        async def marked_gone() -> bool:
            _, state = await hub.load("alice", fresh=True)
            return not state.tabs[remote.tab_id].connected

        await eventually(marked_gone, timeout=5)
        _, alice = await hub.load("alice", fresh=True)
        assert alice.contacts["c1"].grace_until is not None  # its contact is in grace now
        _, bob = await hub.load("bob", fresh=True)
        assert bob.tabs[local.tab_id].connected
    finally:
        await hub.close()


async def test_the_open_contacts_gauge_follows_commits_without_a_walk(store: MemoryStore) -> None:
    metrics = Metrics()
    hub = AgentHub(store, Rules(), "n1", metrics)
    try:
        page = await open_page(hub, "alice", "a", "n1")
        for n in range(3):
            await report(hub, "alice", page, f"c{n}")
        gauge = metrics.registry.get_sample_value("switchboard_contacts")
        assert gauge == 3
        ended = ContactEvent(event="ended", contact=ContactSnapshot(contact_id="c0"))
        await hub.apply("alice", ContactReported(tab_id=page.tab_id, report=ended))
        assert metrics.registry.get_sample_value("switchboard_contacts") == 2
        await hub.detach("alice", page)
        assert metrics.registry.get_sample_value("switchboard_contacts") == 0
    finally:
        await hub.close()


async def test_a_young_tab_on_a_node_gone_from_the_live_set_expires_on_its_timer(
    store: MemoryStore,
) -> None:
    """Still inside the node timeout when its node leaves the set: nothing else happens to
    the agent, yet the tab is declared gone once the timeout passes."""
    hub = AgentHub(store, Rules(node_timeout_seconds=0.5, grace_seconds=600), "n1", Metrics())
    try:
        hub.live_nodes = frozenset({"n1", "n2"})
        remote = await open_page(hub, "alice", "a", "n2")
        hub.live_nodes = frozenset({"n1"})
        await asyncio.sleep(0.1)
        _, alice = await hub.load("alice", fresh=True)
        assert alice.tabs[remote.tab_id].connected  # young: still counted as live

        async def marked_gone() -> bool:
            _, state = await hub.load("alice", fresh=True)
            return not state.tabs[remote.tab_id].connected

        await eventually(marked_gone, timeout=5)
    finally:
        await hub.close()
