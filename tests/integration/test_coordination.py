"""The coordination daemon over real WebSockets: election, resume, duplicates, failover."""

import asyncio
from functools import partial
from typing import Any

from clients.python.tab import TabClient
from daemon.core.events import TabClosed
from protocol.messages import Position
from tests.daemons import eventually, open_tab, running, token, ws_url

INCOMING = {"type": "voice", "direction": "inbound", "customer_endpoint": "+4420700001"}


async def test_three_tabs_elect_one_owner_and_agents_are_isolated() -> None:
    async with running() as daemon:
        tabs = [await open_tab(daemon, "alice") for _ in range(3)]
        other = await open_tab(daemon, "bob")
        for tab in tabs:  # every embedded CCP sees the call and reports it
            await tab.report("incoming", "c-1", **INCOMING)
        for tab in tabs:
            await eventually(partial(lambda t: "c-1" in t.contacts, tab))
        owners = {tab.contacts["c-1"].owner_tab for tab in tabs}
        assert owners == {tabs[0].tab_id}, "every tab is told the same single owner"
        assert [tab.owns("c-1") for tab in tabs] == [True, False, False]
        assert tabs[0].contacts["c-1"].epoch == 1
        # One contact publication for the first report, none for the duplicates.
        assert len([m for m in tabs[1].of_type("contact")]) == 1
        await asyncio.sleep(0.1)
        assert "c-1" not in other.contacts and not other.of_type("contact")
        await other.command("pause_recording", "c-1", epoch=1)
        error = await other.wait_for(lambda m: m.type == "error")
        assert error.code == "unknown_contact"
        for tab in [*tabs, other]:
            await tab.close()


async def test_owner_resumes_inside_grace_with_exactly_the_missed_messages() -> None:
    async with running(grace_seconds=5.0) as daemon:
        owner = await open_tab(daemon, "alice")
        observer = await open_tab(daemon, "alice")
        await owner.report("incoming", "c-1", **INCOMING)
        await eventually(lambda: observer.contacts.get("c-1") is not None)
        seen = owner.position
        assert seen is not None
        await owner.close()  # the page reloads: clean close, then a new page instance
        await eventually(lambda: observer.contacts["c-1"].grace_until is not None)
        await observer.report("connected", "c-1", **INCOMING)
        await observer.report("incoming", "c-2", **INCOMING)
        await eventually(lambda: "c-2" in observer.contacts)

        reloaded = await TabClient(
            ws_url(daemon), token("alice"), tab_id=owner.tab_id, resume=seen
        ).connect()
        assert reloaded.welcome.resumed and not reloaded.welcome.tab_id_reassigned
        assert reloaded.tab_id == owner.tab_id
        await eventually(
            lambda: (
                reloaded.contacts.get("c-1") is not None
                and reloaded.contacts["c-1"].grace_until is None
            )
        )
        replayed = [m for m in reloaded.received if getattr(m, "pos", None) and m.replayed]
        seqs = [m.pos.seq for m in replayed]
        assert seqs == sorted(set(seqs)) and seqs[0] > seen.seq, "in order, none twice"

        # Every broadcast the observer saw after `seen` is replayed, nothing before it; pops
        # and notices addressed to one tab reach that tab only.
        def broadcasts(messages: list[Any]) -> list[int]:
            return [
                m.pos.seq
                for m in messages
                if getattr(m, "pos", None)
                and m.type in ("contact", "media")
                and seen.seq < m.pos.seq <= seqs[-1]
            ]

        assert broadcasts(replayed) == broadcasts(observer.received)
        assert all(m.contact_id == "c-1" for m in replayed if m.type == "pop")
        assert reloaded.owns("c-1") and reloaded.contacts["c-1"].epoch == 1
        assert reloaded.contacts["c-1"].state == "connected"
        assert not reloaded.of_type("snapshot")
        await reloaded.close()
        await observer.close()


async def test_a_position_that_is_too_old_or_unknown_gets_a_snapshot() -> None:
    async with running(stream_max=5) as daemon:
        tab = await open_tab(daemon, "alice")
        first = tab.position
        for n in range(8):
            await tab.report("incoming", f"c-{n}", **INCOMING)
        await eventually(lambda: len(tab.contacts) == 8)
        await tab.close()
        for resume in (first, Position(epoch="not-this-stream", seq=3)):
            again = await TabClient(
                ws_url(daemon), token("alice"), tab_id=tab.tab_id, resume=resume
            ).connect()
            assert again.welcome.resumed is False
            snap = await again.wait_for(lambda m: m.type == "snapshot")
            assert {c.contact_id for c in snap.contacts} == {f"c-{n}" for n in range(8)}
            assert all(c.owner_tab == tab.tab_id for c in snap.contacts)
            await again.close()


async def test_a_duplicated_tab_gets_a_new_id_and_owns_nothing() -> None:
    async with running() as daemon:
        original = await open_tab(daemon, "alice")
        await original.report("incoming", "c-1", **INCOMING)
        await eventually(lambda: original.owns("c-1"))
        # The browser copies sessionStorage (tab id, position) but not page memory (session).
        duplicate = await TabClient(
            ws_url(daemon), token("alice"), tab_id=original.tab_id, resume=original.position
        ).connect()
        assert duplicate.welcome.tab_id_reassigned
        assert duplicate.tab_id != original.tab_id
        await duplicate.report("incoming", "c-1", **INCOMING)
        await duplicate.report("connected", "c-1", **INCOMING)
        await eventually(
            lambda: (
                duplicate.contacts.get("c-1", None) is not None
                and duplicate.contacts["c-1"].state == "connected"
            )
        )
        assert not duplicate.owns("c-1") and original.owns("c-1")
        await duplicate.command("pause_recording", "c-1", epoch=1)
        error = await duplicate.wait_for(lambda m: m.type == "error")
        assert error.code == "not_owner"
        assert not [m for m in duplicate.received if m.type == "pop"]
        await duplicate.close()
        await original.close()


async def test_a_dropped_connection_reconnects_with_its_session_and_stays_owner() -> None:
    async with running(grace_seconds=5.0) as daemon:
        owner = await open_tab(daemon, "alice")
        await owner.report("incoming", "c-1", **INCOMING)
        await eventually(lambda: owner.owns("c-1"))
        tab_id = owner.tab_id
        await owner.drop()  # network cut: no close frame, the client reconnects by itself
        await eventually(lambda: len(owner.of_type("welcome")) == 2)
        second = owner.of_type("welcome")[1]
        assert second.tab_id == tab_id and not second.tab_id_reassigned and second.resumed
        await eventually(lambda: owner.contacts["c-1"].grace_until is None)
        assert owner.owns("c-1") and owner.contacts["c-1"].epoch == 1
        await owner.close()


async def test_owner_gone_for_good_fails_over_and_old_epoch_is_refused() -> None:
    async with running(grace_seconds=0.5) as daemon:
        owner = await open_tab(daemon, "alice")
        second = await open_tab(daemon, "alice")
        third = await open_tab(daemon, "alice")
        await owner.report("incoming", "c-1", **INCOMING)
        await eventually(lambda: second.contacts.get("c-1") is not None)
        await owner.close()
        await eventually(lambda: second.owns("c-1"), timeout=5)
        assert second.contacts["c-1"].epoch == 2
        # The third tab is told on its own socket, maybe a moment later.
        await eventually(
            lambda: getattr(third.contacts.get("c-1"), "owner_tab", None) == second.tab_id
        )
        await second.command("pause_recording", "c-1", epoch=1)
        error = await second.wait_for(lambda m: m.type == "error")
        assert error.code == "stale_epoch"
        await second.command("pause_recording", "c-1", epoch=2)

        async def accepted() -> bool:  # (paused only once Amazon Connect confirms)
            _, state = await daemon.hub.load("alice", fresh=True)
            return [c.name for c in state.contacts["c-1"].commands] == ["pause_recording"]

        await eventually(accepted)
        # The old owner comes back after the grace period: it is now an observer.
        back = await TabClient(ws_url(daemon), token("alice"), tab_id=owner.tab_id).connect()
        await eventually(lambda: "c-1" in back.contacts)
        assert not back.owns("c-1")
        for tab in (second, third, back):
            await tab.close()


async def test_msgpack_subprotocol_carries_the_same_messages() -> None:
    async with running() as daemon:
        tab = await open_tab(daemon, "alice", binary=True)
        await tab.report("incoming", "c-1", **INCOMING)
        await eventually(lambda: tab.owns("c-1"))
        await tab.close()


async def test_a_page_resuming_on_a_new_connection_closes_the_old_one_with_4009() -> None:
    async with running() as daemon:
        old = await open_tab(daemon, "alice", reconnect=False)
        await old.report("incoming", "c-1", **INCOMING)
        await eventually(lambda: old.owns("c-1"))
        # The same page (it knows the session) reconnects while its old socket looks alive,
        # e.g. a half-open TCP connection after a network change.
        new = TabClient(ws_url(daemon), token("alice"), tab_id=old.tab_id, resume=old.position)
        new.session, new.contacts = old.session, dict(old.contacts)  # the page's memory
        await new.connect()
        assert new.tab_id == old.tab_id and not new.welcome.tab_id_reassigned
        assert await old.wait_closed() == 4009
        await eventually(lambda: new.owns("c-1"))
        await new.report("connected", "c-1", **INCOMING)
        await eventually(lambda: new.contacts["c-1"].state == "connected")
        assert new.contacts["c-1"].epoch == 1 and new.contacts["c-1"].grace_until is None
        await new.close()


async def test_a_tab_wrongly_marked_gone_by_a_peer_is_registered_again() -> None:
    async with running(grace_seconds=30.0) as daemon:
        tab = await open_tab(daemon, "alice")
        await tab.report("incoming", "c-1", **INCOMING)
        await eventually(lambda: tab.owns("c-1"))
        tab_id = tab.welcome.tab_id
        _, state = await daemon.hub.load("alice", fresh=True)
        conn_id = state.tabs[tab_id].conn_id
        # What a peer with a stale list of live nodes would commit about our tab.
        await daemon.hub.apply("alice", TabClosed(tab_id=tab_id, conn_id=conn_id))
        await eventually(lambda: tab.contacts["c-1"].grace_until is not None)

        async def registered() -> bool:
            _, now = await daemon.hub.load("alice", fresh=True)
            return now.tabs[tab_id].connected

        await eventually(registered, timeout=5)
        await eventually(lambda: tab.contacts["c-1"].grace_until is None)
        assert tab.owns("c-1") and tab.contacts["c-1"].epoch == 1
        await tab.close()
