"""Delivery that does not depend on Redis pub/sub being reliable, through real daemons.

Daemon processes (or in-process daemons where the test inspects the hub) on real redis-server
processes, tabs over real WebSockets. Each test breaks Redis in one way that used to lose,
leak or duplicate something.
"""

import asyncio
import json
from collections.abc import Iterator
from functools import partial
from pathlib import Path
from typing import Any

import aiohttp
import pytest
import redis
from websockets.asyncio.client import connect
from websockets.exceptions import ConnectionClosed

from clients.python.tab import TabClient
from daemon.app import Daemon
from daemon.store.memory import MemoryStore
from tests.daemons import eventually, open_tab, running, token, ws_url
from tests.processes import DaemonProcess, SandboxProcess
from tests.redis_servers import RedisCluster, RedisServer

CALL = {"type": "voice", "direction": "inbound", "customer_endpoint": "+15551230003"}
NODE_SETTINGS: dict[str, Any] = {"grace_seconds": 2, "node_ttl_seconds": 1.5}
CHANNEL = "sb:{alice}:ch"


@pytest.fixture
def server() -> Iterator[RedisServer]:
    with RedisServer.start() as started:
        yield started


@pytest.fixture
def sandbox(tmp_path: Path) -> Iterator[SandboxProcess]:
    process = SandboxProcess.start(tmp_path)
    yield process
    process.stop()


def admin(port: int) -> redis.Redis:
    return redis.Redis(port=port, single_connection_client=True)


async def ready(http_port: int) -> int:
    async with (
        aiohttp.ClientSession() as http,
        http.get(f"http://127.0.0.1:{http_port}/readyz") as response,
    ):
        return response.status


async def hello_close_code(daemon: Daemon) -> int | None:
    ws = await connect(ws_url(daemon), subprotocols=["switchboard.v1.json"])  # type: ignore[list-item]
    await ws.send(json.dumps({"type": "hello", "token": token("alice")}))
    with pytest.raises(ConnectionClosed):
        while True:
            await ws.recv()
    return ws.close_code


# -- a lost publication --------------------------------------------------------------------


@pytest.fixture(params=["single", "cluster"])
def deployment(request: pytest.FixtureRequest) -> Iterator[tuple[str, list[int]]]:
    """A Redis URL for the daemons and the ports of every server behind it."""
    if request.param == "single":
        with RedisServer.start() as single:
            yield single.url, [single.port]
    else:
        with RedisCluster.start() as cluster:
            yield cluster.url + "?cluster=true", cluster.ports


async def test_a_message_lost_on_pubsub_arrives_without_a_later_commit(
    tmp_path: Path, deployment: tuple[str, list[int]], sandbox: SandboxProcess
) -> None:
    url, ports = deployment
    a = DaemonProcess.start(tmp_path, "node-a", url, sandbox.url, **NODE_SETTINGS)
    b = DaemonProcess.start(tmp_path, "node-b", url, sandbox.url, **NODE_SETTINGS)
    controls = [admin(port) for port in ports]
    try:
        t1 = await TabClient(a.ws_url, token("alice")).connect()
        t2 = await TabClient(b.ws_url, token("alice")).connect()
        await t1.report("incoming", "c-0", **CALL)
        await eventually(lambda: "c-0" in t2.contacts, timeout=10)

        # Pub/sub goes down and cannot come back (SUBSCRIBE refused); commands still work.
        for control in controls:
            control.acl_setuser(
                "default", enabled=True, commands=["-subscribe", "-ssubscribe"], reset=False
            )
            control.client_kill_filter(_type="pubsub")

        def pubsub_clients() -> int:
            return sum(len(control.client_list(_type="pubsub")) for control in controls)

        assert pubsub_clients() == 0
        await t1.report("incoming", "c-1", **CALL)  # published to nobody
        await eventually(lambda: "c-1" in t1.contacts, timeout=5)
        # No later commit, no pub/sub: position sync finds the gap and fills it.
        await eventually(lambda: "c-1" in t2.contacts, timeout=15)
        assert pubsub_clients() == 0  # it did not come through pub/sub
        await t1.close()
        await t2.close()
    finally:
        for control in controls:
            control.acl_setuser("default", enabled=True, commands=["+@all"], reset=False)
        a.stop()
        b.stop()


# -- a cluster outage ----------------------------------------------------------------------


def shard_subscribers(cluster: RedisCluster) -> int:
    """Subscribers of the agent's shard channel, summed over the nodes (only its owner has any)."""
    total = 0
    for port in cluster.ports:
        try:
            reply = admin(port).execute_command("PUBSUB", "SHARDNUMSUB", CHANNEL)  # type: ignore[no-untyped-call]
        except redis.exceptions.RedisError:
            continue
        total += int(reply[1])
    return total


async def test_cross_node_messages_flow_again_after_a_cluster_outage(
    tmp_path: Path, sandbox: SandboxProcess
) -> None:
    with RedisCluster.start() as cluster:
        url = cluster.url + "?cluster=true"
        a = DaemonProcess.start(tmp_path, "node-a", url, sandbox.url, **NODE_SETTINGS)
        b = DaemonProcess.start(tmp_path, "node-b", url, sandbox.url, **NODE_SETTINGS)
        try:
            t1 = await TabClient(a.ws_url, token("alice"), fallback_urls=(a.ws_url,)).connect()
            t2 = await TabClient(b.ws_url, token("alice"), fallback_urls=(b.ws_url,)).connect()
            assert shard_subscribers(cluster) == 2
            first_epoch = {tab: tab.welcome.position.epoch for tab in (t1, t2)}

            cluster.stop()
            await asyncio.sleep(10)
            for node in cluster.nodes:  # same ports and slots, no data
                node.start_again()

            async def both_ready() -> bool:
                return await ready_url(a.http_url) and await ready_url(b.http_url)

            await eventually(both_ready, timeout=30)
            # Both nodes subscribed again on the shard that owns the agent's channel.
            await eventually(lambda: shard_subscribers(cluster) == 2, timeout=30)
            for tab in (t1, t2):  # the agent's state was lost: both tabs are registered again
                await tab.wait_for(partial(is_snapshot_in_new_epoch, first_epoch[tab]), 30)
            for n in range(10):
                await t1.report("incoming", f"after-{n}", **CALL)
            expected = {f"after-{n}" for n in range(10)}
            await eventually(lambda: expected <= set(t2.contacts), timeout=20)
            await t1.close()
            await t2.close()
        finally:
            a.stop()
            b.stop()


def is_snapshot_in_new_epoch(old_epoch: str, message: Any) -> bool:
    """A snapshot of a stream that began again: the tab was registered afresh."""
    return message.type == "snapshot" and message.pos is not None and message.pos.epoch != old_epoch


async def ready_url(http_url: str) -> bool:
    try:
        async with (
            aiohttp.ClientSession() as http,
            http.get(f"{http_url}/readyz", timeout=aiohttp.ClientTimeout(total=2)) as response,
        ):
            return response.status == 200
    except aiohttp.ClientError:
        return False


# -- concurrent tabs -----------------------------------------------------------------------


@pytest.mark.parametrize("store", ["memory", "redis"])
async def test_concurrent_tabs_share_one_subscription(store: str, server: RedisServer) -> None:
    redis_url = server.url if store == "redis" else None
    control = admin(server.port)

    def server_side() -> int:
        if redis_url is None:
            return 1
        return int(control.pubsub_numsub(CHANNEL)[0][1])

    async with running(redis_url=redis_url) as daemon:
        for _ in range(15):
            tabs = await asyncio.gather(*(open_tab(daemon, "alice") for _ in range(3)))
            assert daemon.store.subscriptions("alice") == 1
            assert server_side() == 1
            await asyncio.gather(*(tab.close() for tab in tabs))
            await eventually(lambda: daemon.store.subscriptions("alice") == 0)
            await eventually(lambda: set(daemon.hub.sizes().values()) == {0})
            if redis_url is not None:
                await eventually(lambda: server_side() == 0)


# -- a full Redis --------------------------------------------------------------------------


def fill_over_the_limit(control: redis.Redis) -> None:
    """8 MiB of data, then a 1 MiB `maxmemory` (noeviction): every write is refused with OOM."""
    pipe = control.pipeline(transaction=False)
    for n in range(128):
        pipe.set(f"filler:{n}", b"x" * 65536)
    pipe.execute()
    control.config_set("maxmemory", 1024 * 1024)
    assert control.config_get("maxmemory-policy") == {"maxmemory-policy": "noeviction"}


async def test_a_full_redis_flips_readiness_and_refuses_new_tabs() -> None:
    with RedisServer.start() as server:
        async with running(redis_url=server.url, node_ttl_seconds=0.6) as daemon:
            tab = await open_tab(daemon, "alice")
            await tab.report("incoming", "c-1", **CALL)
            await eventually(lambda: tab.owns("c-1"))
            assert await ready(daemon.http_port) == 200

            fill = admin(server.port)
            fill_over_the_limit(fill)

            async def not_ready() -> bool:
                return await ready(daemon.http_port) == 503

            await eventually(not_ready, timeout=10)
            await tab.wait_for(lambda m: m.type == "notify" and m.code == "store_unavailable")
            await tab.report("connected", "c-1", **CALL)
            refused = await tab.wait_for(lambda m: m.type == "error")
            assert refused.code == "unavailable"
            assert await hello_close_code(daemon) == 1013  # not 1011 and a traceback

            fill.config_set("maxmemory", 0)

            async def is_ready() -> bool:
                return await ready(daemon.http_port) == 200

            await eventually(is_ready, timeout=10)
            await tab.wait_for(lambda m: m.type == "notify" and m.code == "store_recovered", 10)
            await tab.report("connected", "c-1", **CALL)
            await eventually(lambda: tab.contacts["c-1"].state == "connected", timeout=5)
            await tab.close()


async def test_an_evicting_redis_is_refused_at_start_up(
    tmp_path: Path, sandbox: SandboxProcess
) -> None:
    with (
        RedisServer.start(extra_args=["--maxmemory-policy", "allkeys-lru"]) as server,
        pytest.raises(RuntimeError) as refused,
    ):
        DaemonProcess.start(tmp_path, "node-a", server.url, sandbox.url)
    assert "allkeys-lru" in str(refused.value) and "noeviction" in str(refused.value)


# -- bounded memory ------------------------------------------------------------------------


async def test_hub_and_store_bounded_after_a_hundred_thousand_agents() -> None:
    """The store's own expiry is in tests/store/test_memory_bounds.py; here: the hub keeps
    nothing for agents without local tabs, and reading agents creates nothing in the store."""
    async with running() as daemon:
        hub, store = daemon.hub, daemon.store
        assert isinstance(getattr(store, "_target", store), MemoryStore)
        async with aiohttp.ClientSession() as http:  # the unauthenticated admin page
            for n in range(300):
                url = f"http://127.0.0.1:{daemon.http_port}/admin/agents/random-{n}"
                async with http.get(url) as response:
                    assert response.status == 200
        for n in range(100_000):  # what that page, or a workflow run, does to the hub
            await hub.load(f"agent-{n}", fresh=True)
        assert set(hub.sizes().values()) == {0}
        assert store.sizes()["agents"] == 0  # type: ignore[attr-defined]

        for n in range(40):  # agents with real tabs come and go
            tabs = [await open_tab(daemon, f"tabbed-{n}") for _ in range(2)]
            assert hub.sizes()["subscriptions"] == 1
            assert store.subscriptions(f"tabbed-{n}") == 1
            for tab in tabs:
                await tab.close()
            await eventually(lambda: set(hub.sizes().values()) == {0})
            assert store.subscriptions(f"tabbed-{n}") == 0
        assert store.sizes()["agents"] == 40  # type: ignore[attr-defined]
