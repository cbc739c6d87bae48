"""The daemon process dies (SIGKILL) mid-workflow and a new one takes over from Redis.

Real processes: redis-server, the daemon (`switchboard serve`) as a child process, killed with
SIGKILL so no shutdown code runs; the Zendesk sandbox is shared by both daemon runs (it lives
in the test process, recording its traffic for the OpenAPI check). The tabs reconnect to the
new daemon with their tab id, session and last position, as the browser client does.
"""

import asyncio
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import pytest

from clients.python.tab import TabClient
from tests.e2e.conftest import FAST, Rig, details, report_all, settle, until, voice, voice_comments
from tests.processes import DaemonProcess
from tests.redis_servers import RedisServer

SNAP = voice(attributes={"customer_name": "Newt Caller"})


@pytest.fixture
def redis() -> Iterator[RedisServer]:
    with RedisServer.start() as server:
        yield server


@pytest.fixture
async def nodes(tmp_path: Path, rig: Rig, redis: RedisServer) -> AsyncIterator[Any]:
    started: list[DaemonProcess] = []

    async def start(name: str) -> DaemonProcess:
        node = await asyncio.to_thread(
            DaemonProcess.start, tmp_path, name, redis.url, rig.base_url, **FAST
        )
        started.append(node)
        return node

    yield start
    for tab in rig.tabs:
        await tab.close()
    for node in started:
        await asyncio.to_thread(node.stop)


async def reconnect(rig: Rig, old: TabClient, node: DaemonProcess) -> TabClient:
    """The same browser tab, reaching the new daemon: its id, session, last position and
    what it knew (the TabClient's own reconnect, pointed at another address)."""
    tab = TabClient(
        node.ws_url, rig.token(), tab_id=old.tab_id, resume=old.position, reconnect=False
    )
    tab.session, tab.contacts = old.session, dict(old.contacts)
    await tab.connect()
    rig.tabs.append(tab)
    return tab


def one_call_done(rig: Rig) -> bool:
    found = rig.tickets("c-1")
    return len(found) == 1 and len(voice_comments(found[0])) == 1


def assert_exactly_once(rig: Rig) -> None:
    (ticket,) = rig.tickets("c-1")
    assert len(voice_comments(ticket)) == 1
    assert len(details(ticket)) == 1
    assert len(rig.tickets()) == 1
    (user,) = rig.end_users()
    assert ticket["requester_id"] == user["id"]


async def start_call(rig: Rig, node: DaemonProcess) -> list[TabClient]:
    tabs = [await rig.tab(url=node.ws_url, reconnect=False) for _ in range(2)]
    await report_all(tabs, "incoming", "c-1", SNAP)
    await until(lambda: all("c-1" in t.contacts for t in tabs))
    await report_all(tabs, "connected", "c-1", SNAP)
    await until(lambda: all(t.contacts["c-1"].ticket_id is not None for t in tabs))
    return tabs


async def test_daemon_killed_after_the_ticket_before_the_call_ends(rig: Rig, nodes: Any) -> None:
    first = await nodes("node-a")
    tabs = await start_call(rig, first)
    assert len(rig.tickets("c-1")) == 1 and voice_comments(rig.tickets("c-1")[0]) == []

    await asyncio.to_thread(first.kill)
    await asyncio.gather(*(t.wait_closed() for t in tabs))
    second = await nodes("node-b")
    again = [await reconnect(rig, t, second) for t in tabs]
    for old, new in zip(tabs, again, strict=True):
        assert new.tab_id == old.tab_id and not new.welcome.tab_id_reassigned
        assert new.welcome.resumed  # the stream lives in Redis: gap-free resume
    await report_all(again, "ended", "c-1", SNAP)
    # Every tab hears node b's news (not the views it carried over): ownership and its
    # epoch survived the restart.
    await until(lambda: all(t.contacts["c-1"].state == "ended" for t in again))
    epoch = tabs[1].contacts["c-1"].epoch
    for tab in again:
        assert tab.contacts["c-1"].owner_tab == again[0].tab_id
        assert tab.contacts["c-1"].epoch == epoch

    await until(lambda: one_call_done(rig), timeout=20)
    await settle(1.5)  # a duplicate write from a confused runner would land by now
    assert_exactly_once(rig)


VOICE_PUT = "/api/v2/tickets/*"
IN_FLIGHT: dict[str, list[dict[str, Any]]] = {
    # Zendesk holds the voice comment's request; the daemon dies while it is held, and
    # Zendesk applies it all the same: the new daemon waits until it can have landed.
    "held": [{"kind": "timeout", "method": "PUT", "path": VOICE_PUT, "seconds": 0.5}],
    # The voice comment lands but its answer is lost, and the dying daemon cannot check
    # (reading the comments fails): only a journal attempt without a result is left.
    "landed": [
        {"kind": "drop_after_write", "method": "PUT", "path": VOICE_PUT},
        {"kind": "error", "method": "GET", "path": VOICE_PUT + "/comments", "count": None},
    ],
}


@pytest.mark.parametrize("case", sorted(IN_FLIGHT))
async def test_daemon_killed_while_the_end_of_call_write_is_in_flight(
    rig: Rig, nodes: Any, case: str
) -> None:
    first = await nodes("node-a")
    tabs = await start_call(rig, first)
    await rig.add_faults(IN_FLIGHT[case])
    await report_all(tabs, "ended", "c-1", SNAP)
    if case == "held":
        await until(lambda: rig.sandbox.faults.rules == [])  # the request is being held now
    else:
        await until(lambda: len(voice_comments(rig.tickets("c-1")[0])) == 1)
        await until(lambda: rig.sandbox.faults.rules[0].fired >= 1)  # it tried to check
    await asyncio.to_thread(first.kill)
    if case == "held":
        await until(lambda: len(voice_comments(rig.tickets("c-1")[0])) == 1)  # it lands
    await rig.clear_faults()

    checks = rig.sandbox.request_count("GET", "/api/v2/tickets/{ticket_id}/comments")
    puts = rig.sandbox.request_count("PUT")
    second = await nodes("node-b")
    again = [await reconnect(rig, t, second) for t in tabs]
    assert all(t.contacts["c-1"].state == "ended" for t in again)
    await until(lambda: one_call_done(rig), timeout=20)
    # the new daemon asked Zendesk whether the interrupted write had landed...
    await until(
        lambda: rig.sandbox.request_count("GET", "/api/v2/tickets/{ticket_id}/comments") > checks
    )
    await settle(1.5)  # ...and a duplicate write would have landed by now
    assert_exactly_once(rig)
    # it checked, found the interrupted write landed, and did not write it again
    assert rig.sandbox.request_count("PUT") == puts
