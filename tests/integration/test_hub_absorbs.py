"""A repeated report decided at once by the hub (`AgentHub.absorbs`) only where `apply` would
decide it the same way: two real hubs on one real memory store, tabs as the hub sees them."""

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import pytest

from daemon.core.confirmation import UNCONFIRMED, ConnectUnavailable
from daemon.core.events import ContactReported
from daemon.server.auth import AgentIdentity
from daemon.server.hub import AgentHub
from protocol.messages import ContactEvent, ContactSnapshot
from tests.integration.test_moved_on_tab import AGENT, Page, hubs, open_page

__all__ = ["hubs"]  # the fixture, shared with the moved-on tests


def reported(page: Page, report: ContactEvent) -> ContactReported:
    return ContactReported(tab_id=page.tab_id, report=report)


def connected(cid: str) -> ContactEvent:
    return ContactEvent(event="connected", contact=ContactSnapshot(contact_id=cid))


@pytest.fixture
async def three(hubs: tuple[AgentHub, AgentHub]) -> AsyncIterator[list[Page]]:
    n1, _ = hubs
    yield [await open_page(n1, f"t{n}", f"c{n}") for n in range(3)]


async def test_a_repeat_is_absorbed_and_nothing_is_committed(
    hubs: tuple[AgentHub, AgentHub], three: list[Page]
) -> None:
    n1, _ = hubs
    report = connected("k1")
    await n1.apply(AGENT, reported(three[0], report))
    before = await n1.store.stream_head(AGENT)
    assert n1.absorbs(AGENT, three[1], reported(three[1], report))
    assert n1.absorbs(AGENT, three[2], reported(three[2], report))
    assert await n1.store.stream_head(AGENT) == before
    # Another report is not known to be absorbed: `apply` decides it.
    assert not n1.absorbs(AGENT, three[1], reported(three[1], connected("k2")))


async def test_not_while_an_event_of_the_agent_is_in_its_turn(
    hubs: tuple[AgentHub, AgentHub], three: list[Page], monkeypatch: pytest.MonkeyPatch
) -> None:
    n1, _ = hubs
    report = connected("k1")
    await n1.apply(AGENT, reported(three[0], report))
    release, entered = asyncio.Event(), asyncio.Event()

    # Hold the agent's turn with an apply whose commit waits on the store.
    commit = n1.store.commit_agent

    async def slow_commit(*args: Any, **kwargs: Any) -> Any:
        entered.set()
        await release.wait()
        return await commit(*args, **kwargs)

    monkeypatch.setattr(n1.store, "commit_agent", slow_commit)
    busy = asyncio.create_task(n1.apply(AGENT, reported(three[0], connected("k2"))))
    await entered.wait()
    assert not n1.absorbs(AGENT, three[1], reported(three[1], report))
    release.set()
    await busy
    assert n1.absorbs(AGENT, three[1], reported(three[1], report))


async def test_not_on_a_state_another_node_has_moved_on_from(
    hubs: tuple[AgentHub, AgentHub], three: list[Page]
) -> None:
    n1, n2 = hubs
    report = connected("k1")
    await n1.apply(AGENT, reported(three[0], report))
    remote = await open_page(n2, "t9", "c9")
    await n2.apply(AGENT, reported(remote, connected("k2")))  # another node's entry
    await asyncio.sleep(0)  # its publication reaches n1, whose cache no longer holds it all
    assert not n1.absorbs(AGENT, three[1], reported(three[1], report))
    outcome = await n1.apply(AGENT, reported(three[1], report))  # decided on fresh state
    assert not outcome.changed and outcome.refusal is None
    # A state read back from the store is not known to hold every entry (only one this node
    # committed is): the next repeat is checked against the store again, by `apply`.
    assert not n1.absorbs(AGENT, three[2], reported(three[2], report))


async def test_not_from_a_connection_whose_tab_moved_on(
    hubs: tuple[AgentHub, AgentHub], three: list[Page]
) -> None:
    n1, _ = hubs
    report = connected("k1")
    await n1.apply(AGENT, reported(three[0], report))
    stale = Page(n1, three[1].tab_id, "an-older-connection")
    assert not n1.absorbs(AGENT, stale, reported(stale, report))


async def test_not_while_connect_has_not_confirmed_the_contact(
    hubs: tuple[AgentHub, AgentHub], three: list[Page]
) -> None:
    """A held unconfirmed contact's repeat goes to the report check (it retries Connect)."""
    n1, _ = hubs
    report = connected("k1")
    first = ContactReported(
        tab_id=three[0].tab_id, report=report, answer=ConnectUnavailable("timed out")
    )
    await n1.apply(AGENT, first)
    _, state = await n1.load(AGENT)
    assert state.contacts["k1"].confirmation == UNCONFIRMED
    await n1.apply(AGENT, reported(three[1], report))  # the first repeat, folded: no change
    repeat = reported(three[2], report)
    assert n1.absorbs(AGENT, three[2], repeat)  # no check configured: nothing to retry

    class Check:
        async def check(
            self, agent: str, identity: AgentIdentity, event: ContactReported
        ) -> ContactReported:
            return event

    n1.report_check = Check()
    assert not n1.absorbs(AGENT, three[2], repeat)
