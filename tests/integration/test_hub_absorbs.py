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


REPORT = connected("k1")  # one object, as the shell decodes one frame sent by three tabs


@pytest.fixture
async def three(hubs: tuple[AgentHub, AgentHub]) -> AsyncIterator[list[Page]]:
    """Three tabs of the agent on n1."""
    n1, _ = hubs
    yield [await open_page(n1, f"t{n}", f"c{n}") for n in range(3)]


@pytest.fixture
async def folded(hubs: tuple[AgentHub, AgentHub], three: list[Page]) -> list[Page]:
    """The three tabs, once the first one's `REPORT` made its contact."""
    await hubs[0].apply(AGENT, reported(three[0], REPORT))
    return three


async def test_a_repeat_is_absorbed_and_nothing_is_committed(
    hubs: tuple[AgentHub, AgentHub], folded: list[Page]
) -> None:
    n1, _ = hubs
    before = await n1.store.stream_head(AGENT)
    assert n1.absorbs(AGENT, folded[1], reported(folded[1], REPORT))
    assert n1.absorbs(AGENT, folded[2], reported(folded[2], REPORT))
    assert await n1.store.stream_head(AGENT) == before
    # Another report is not known to be absorbed: `apply` decides it.
    assert not n1.absorbs(AGENT, folded[1], reported(folded[1], connected("k2")))


async def test_not_while_an_event_of_the_agent_is_in_its_turn(
    hubs: tuple[AgentHub, AgentHub], folded: list[Page], monkeypatch: pytest.MonkeyPatch
) -> None:
    n1, _ = hubs
    release, entered = asyncio.Event(), asyncio.Event()

    # Hold the agent's turn with an apply whose commit waits on the store.
    commit = n1.store.commit_agent

    async def slow_commit(*args: Any, **kwargs: Any) -> Any:
        entered.set()
        await release.wait()
        return await commit(*args, **kwargs)

    monkeypatch.setattr(n1.store, "commit_agent", slow_commit)
    busy = asyncio.create_task(n1.apply(AGENT, reported(folded[0], connected("k2"))))
    await entered.wait()
    assert not n1.absorbs(AGENT, folded[1], reported(folded[1], REPORT))
    release.set()
    await busy
    assert n1.absorbs(AGENT, folded[1], reported(folded[1], REPORT))


async def test_not_on_a_state_another_node_has_moved_on_from(
    hubs: tuple[AgentHub, AgentHub], folded: list[Page]
) -> None:
    n1, n2 = hubs
    remote = await open_page(n2, "t9", "c9")
    await n2.apply(AGENT, reported(remote, connected("k2")))  # another node's entry
    await asyncio.sleep(0)  # its publication reaches n1, whose cache no longer holds it all
    assert not n1.absorbs(AGENT, folded[1], reported(folded[1], REPORT))
    outcome = await n1.apply(AGENT, reported(folded[1], REPORT))  # decided on fresh state
    assert not outcome.changed and outcome.refusal is None
    # A state read back from the store is not known to hold every entry (only one this node
    # committed is): the next repeat is checked against the store again, by `apply`.
    assert not n1.absorbs(AGENT, folded[2], reported(folded[2], REPORT))


async def test_not_from_a_connection_whose_tab_moved_on(
    hubs: tuple[AgentHub, AgentHub], folded: list[Page]
) -> None:
    n1, _ = hubs
    stale = Page(n1, folded[1].tab_id, "an-older-connection")
    assert not n1.absorbs(AGENT, stale, reported(stale, REPORT))


async def test_not_while_connect_has_not_confirmed_the_contact(
    hubs: tuple[AgentHub, AgentHub], three: list[Page]
) -> None:
    """A held unconfirmed contact's repeat goes to the report check (it retries Connect)."""
    n1, _ = hubs
    first = ContactReported(
        tab_id=three[0].tab_id, report=REPORT, answer=ConnectUnavailable("timed out")
    )
    await n1.apply(AGENT, first)
    _, state = await n1.load(AGENT)
    assert state.contacts["k1"].confirmation == UNCONFIRMED
    await n1.apply(AGENT, reported(three[1], REPORT))  # the first repeat, folded: no change
    repeat = reported(three[2], REPORT)
    assert n1.absorbs(AGENT, three[2], repeat)  # no check configured: nothing to retry

    class Check:
        async def check(
            self, agent: str, identity: AgentIdentity, event: ContactReported
        ) -> ContactReported:
            return event

    n1.report_check = Check()
    assert not n1.absorbs(AGENT, three[2], repeat)
