"""A tab id taken over while its node was presumed dead: the old connection can no longer act.

Two real hubs (nodes n1, n2) on one real memory store. A tab on n2 owns a call; n2 stops
renewing its heartbeat (a long GC pause, SIGSTOP), so n1 counts the tab as gone, and a
duplicated browser tab presents the same tab id on n1 and gets it. When n2 wakes, whatever
the old page sent meanwhile must not be taken as the owner's word (simulator seed 186).
"""

import asyncio
from collections.abc import AsyncIterator

import pytest

from daemon.core.events import CommandIssued, ContactReported, Rules, TabClosed, TabOpened
from daemon.server.hub import AgentHub
from daemon.server.metrics import Metrics
from daemon.store.base import StreamEntry
from daemon.store.memory import MemoryStore
from protocol.errors import ErrorCode
from protocol.messages import Command, ContactEvent, ContactSnapshot, Notify
from tests.daemons import eventually

AGENT = "alice"
RULES = Rules(node_timeout_seconds=0.05)


class Page:
    """A tab's connection as the hub sees it; records deliveries and whether it was closed,
    and registers again as the real connection does (`TabConnection.reregister`)."""

    def __init__(self, hub: AgentHub, tab_id: str, conn_id: str) -> None:
        self.hub, self.tab_id, self.conn_id = hub, tab_id, conn_id
        self.entries: list[StreamEntry] = []
        self.superseded = False

    async def supersede(self) -> None:
        self.superseded = True

    def deliver(self, entry: StreamEntry) -> None:
        self.entries.append(entry)

    def resync(self) -> None:
        pass

    async def tell(self, notice: Notify) -> None:
        pass

    async def reregister(self) -> None:
        await self.hub.apply(AGENT, opened(self.hub, self.tab_id, self.conn_id, again=True))


@pytest.fixture
async def hubs() -> AsyncIterator[tuple[AgentHub, AgentHub]]:
    store = MemoryStore()
    n1 = AgentHub(store, RULES, "n1", Metrics())
    n2 = AgentHub(store, RULES, "n2", Metrics())
    n1.live_nodes = n2.live_nodes = frozenset({"n1", "n2"})
    yield n1, n2
    await n1.close()
    await n2.close()
    await store.close()


def opened(hub: AgentHub, tab_id: str, conn_id: str, *, again: bool = False) -> TabOpened:
    return TabOpened(
        node=hub.node_id,
        role="embedded",
        tab_id=tab_id,
        session=None,  # a duplicated page has the tab id (sessionStorage), not the session
        conn_id=conn_id,
        fresh_tab_id=f"fresh-{conn_id}",
        fresh_session=f"session-{conn_id}",
        again=again,
    )


async def open_page(hub: AgentHub, tab_id: str, conn_id: str) -> Page:
    outcome = await hub.apply(AGENT, opened(hub, tab_id, conn_id))
    assert outcome.assignment is not None
    page = Page(hub, outcome.assignment.tab_id, conn_id)
    await hub.attach(AGENT, page)
    return page


def create_ticket(page: Page, epoch: int) -> CommandIssued:
    command = Command(name="create_ticket", contact_id="c1", epoch=epoch)
    return CommandIssued(tab_id=page.tab_id, command=command)


async def test_a_duplicate_that_took_the_id_is_the_only_connection_that_acts(
    hubs: tuple[AgentHub, AgentHub],
) -> None:
    n1, n2 = hubs
    old = await open_page(n2, "t-1", "conn-old")
    report = ContactEvent(event="connected", contact=ContactSnapshot(contact_id="c1"))
    await n2.apply(AGENT, ContactReported(tab_id="t-1", report=report))
    _, state = await n1.load(AGENT, fresh=True)
    assert (state.contacts["c1"].owner_tab, state.contacts["c1"].epoch) == ("t-1", 1)

    n1.live_nodes = frozenset({"n1"})  # n2's heartbeat lapsed: its tabs count as gone
    await asyncio.sleep(RULES.node_timeout_seconds * 2)
    twin = await open_page(n1, "t-1", "conn-twin")
    assert twin.tab_id == "t-1"  # the id of a tab presumed gone is taken, as on a reload

    # n2 wakes up and handles what the old page sent during the pause, as the tab "t-1".
    outcome = await n2.apply(AGENT, create_ticket(old, 1))
    assert outcome.refusal is not None and outcome.refusal.code == ErrorCode.NOT_OWNER
    assert old.superseded  # closed (4009), so it cannot try again
    refused = await n2.apply(AGENT, ContactReported(tab_id="t-1", report=report))
    assert refused.refusal is not None and refused.refusal.code == ErrorCode.NOT_OWNER

    _, state = await n1.load(AGENT, fresh=True)
    assert state.contacts["c1"].commands == ()  # nothing the old page sent was applied
    assert state.tabs["t-1"].conn_id == "conn-twin"

    accepted = await n1.apply(AGENT, create_ticket(twin, 1))
    assert accepted.refusal is None and accepted.changed
    assert not twin.superseded


async def test_a_connection_whose_id_moved_on_is_closed_by_the_sweep(
    hubs: tuple[AgentHub, AgentHub],
) -> None:
    """Even once the tab that took the id has closed again, the old connection is closed
    rather than left to act as a tab the store no longer gives it."""
    n1, n2 = hubs
    old = await open_page(n2, "t-1", "conn-old")
    n1.live_nodes = frozenset({"n1"})
    await asyncio.sleep(RULES.node_timeout_seconds * 2)
    twin = await open_page(n1, "t-1", "conn-twin")
    await n1.detach(AGENT, twin)
    await n1.apply(AGENT, TabClosed(tab_id="t-1", conn_id="conn-twin"))

    await n2.load(AGENT, fresh=True)  # what n2 learns when it wakes and re-reads
    await n2.sweep()
    assert old.superseded


async def test_a_node_that_lapsed_closes_its_connections_whose_id_moved_on(
    hubs: tuple[AgentHub, AgentHub],
) -> None:
    """The old page sends nothing and its agent has no activity (simulator seed 4042): the
    node notices its own lapse when it next takes the live set, and sorts its tabs out."""
    n1, n2 = hubs
    old = await open_page(n2, "t-1", "conn-old")
    quiet = await open_page(n2, "t-2", "conn-quiet")
    n1.live_nodes = frozenset({"n1"})
    await asyncio.sleep(RULES.node_timeout_seconds * 2)  # n2 is paused meanwhile
    await open_page(n1, "t-1", "conn-twin")
    await n1.apply(
        AGENT,
        ContactReported(
            tab_id="t-1",
            report=ContactEvent(event="incoming", contact=ContactSnapshot(contact_id="c2")),
        ),
    )
    _, state = await n1.load(AGENT, fresh=True)
    assert not state.tabs["t-2"].connected  # n1 counted n2's quiet tab gone too

    n2.live_nodes = frozenset({"n1", "n2"})  # n2 wakes: its first live set after the gap

    async def sorted_out() -> bool:  # n2 re-registers its tabs in a task of its own
        _, state = await n1.load(AGENT, fresh=True)
        return old.superseded and state.tabs["t-2"].connected

    await eventually(sorted_out)
    assert not quiet.superseded
    _, state = await n1.load(AGENT, fresh=True)
    assert state.tabs["t-2"].conn_id == "conn-quiet"
    assert state.tabs["t-1"].conn_id == "conn-twin"


async def test_a_connection_that_closed_before_registering_again_stays_closed(
    hubs: tuple[AgentHub, AgentHub],
) -> None:
    """A node registers its connections again from a list taken before one of them closed
    (simulator seed 41914): the closed one must not bring its tab back as connected, which
    would leave a tab nobody holds, eligible to own calls."""
    n1, n2 = hubs
    page = await open_page(n2, "t-1", "conn-1")
    await n2.detach(AGENT, page)  # the page closes, as `TabConnection._close` does it
    await n2.apply(AGENT, TabClosed(tab_id="t-1", conn_id="conn-1"))
    outcome = await n2.apply(AGENT, opened(n2, "t-1", "conn-1", again=True))
    assert outcome.refusal is not None and outcome.refusal.code == ErrorCode.NOT_OWNER
    _, state = await n1.load(AGENT, fresh=True)
    assert not state.tabs["t-1"].connected
