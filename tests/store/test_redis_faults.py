"""Redis misbehaving in the ways that used to lose or duplicate data, each against a real
redis-server: a lost reply, a killed pub/sub connection, a cluster outage, a full server and an
evicting one. Each test owns its server, because it breaks it."""

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator, Iterator
from functools import partial

import pytest
import redis

from daemon.core.writes import StateWrite
from daemon.store.base import (
    NEVER_STORED,
    Envelope,
    StoreMisconfigured,
    StoreUnavailable,
    StreamEntry,
)
from daemon.store.redis import RedisStore
from daemon.store.redis.common import refusing
from tests.daemons import eventually
from tests.redis_servers import RedisCluster, RedisServer, free_port


def env(n: int) -> Envelope:
    return Envelope({"type": "contact", "n": n})


@pytest.fixture
def server() -> Iterator[RedisServer]:
    with RedisServer.start() as started:
        yield started


def admin(port: int) -> redis.Redis:
    return redis.Redis(port=port, single_connection_client=True)


def kill_pubsub_clients(port: int) -> None:
    admin(port).client_kill_filter(_type="pubsub")


# -- a lost reply ----------------------------------------------------------------------------


class ReplyDropper:
    """A TCP proxy in front of Redis that, when armed, cuts the connection instead of passing
    on the next reply: the command ran on the server, the client never hears back."""

    def __init__(self, target_port: int) -> None:
        self.target_port = target_port
        self.armed = False
        self.dropped = 0

    async def _pipe(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter,
                    replies: bool) -> None:  # fmt: skip
        with contextlib.suppress(ConnectionError):
            while data := await reader.read(65536):
                if replies and self.armed:
                    self.armed = False
                    self.dropped += 1
                    break
                writer.write(data)
                await writer.drain()
        writer.close()

    async def _serve(self, client_r: asyncio.StreamReader, client_w: asyncio.StreamWriter) -> None:
        server_r, server_w = await asyncio.open_connection("127.0.0.1", self.target_port)
        await asyncio.gather(
            self._pipe(client_r, server_w, replies=False),
            self._pipe(server_r, client_w, replies=True),
        )

    @contextlib.asynccontextmanager
    async def running(self) -> AsyncIterator[int]:
        port = free_port()
        proxy = await asyncio.start_server(self._serve, "127.0.0.1", port)
        try:
            yield port
        finally:
            proxy.close()


async def test_a_commit_whose_reply_is_lost_is_applied_once(server: RedisServer) -> None:
    dropper = ReplyDropper(server.port)
    async with dropper.running() as port:
        store = RedisStore.from_url(f"redis://127.0.0.1:{port}/0", retries=2)
        try:
            first = await store.commit_agent("A", NEVER_STORED, StateWrite(b"one"), [env(1)])
            assert first is not None
            dropper.armed = True
            # redis-py re-sends the commit on a new connection; the script recognises its id.
            second = await store.commit_agent("A", first.revision, StateWrite(b"two"), [env(2)])
            assert dropper.dropped == 1
            assert second is not None and [e.seq for e in second.entries] == [2]
            epoch, head = await store.stream_head("A")
            assert head == 2
            replay = await store.read_stream("A", epoch, 0)
            assert replay is not None and [e.envelope for e in replay] == [env(1), env(2)]
            assert (await store.load_agent("A")).revision == second.revision
        finally:
            await store.close()


# -- pub/sub ---------------------------------------------------------------------------------


@pytest.mark.parametrize("kind", ["redis", "cluster"])
async def test_a_killed_pubsub_connection_reports_a_gap_and_resumes(kind: str) -> None:
    started: RedisServer | RedisCluster = (
        RedisServer.start() if kind == "redis" else RedisCluster.start()
    )
    with started:
        ports = [started.port] if isinstance(started, RedisServer) else started.ports
        writer = RedisStore.from_url(started.url, cluster=kind == "cluster")
        reader = RedisStore.from_url(started.url, cluster=kind == "cluster")
        try:
            agents = [f"agent-{i}" for i in range(8)]  # several slots on each cluster node
            got: dict[str, list[StreamEntry]] = {a: [] for a in agents}
            gaps: dict[str, int] = dict.fromkeys(agents, 0)

            def gap(agent: str) -> None:
                gaps[agent] += 1

            for agent in agents:
                await reader.subscribe(agent, got[agent].append, on_gap=partial(gap, agent))
            for port in ports:
                kill_pubsub_clients(port)
            await eventually(lambda: all(gaps.values()), timeout=10)
            for agent in agents:
                assert (
                    await writer.commit_agent(agent, NEVER_STORED, StateWrite(b"s"), [env(1)])
                    is not None
                )
            await eventually(lambda: all(len(entries) == 1 for entries in got.values()), 10)
        finally:
            await writer.close()
            await reader.close()


async def test_cluster_subscriptions_survive_a_ten_second_outage() -> None:
    with RedisCluster.start() as cluster:
        writer = RedisStore.from_url(cluster.url, cluster=True, socket_timeout=0.5)
        reader = RedisStore.from_url(cluster.url, cluster=True, socket_timeout=0.5)
        try:
            agents = [f"agent-{i}" for i in range(12)]
            got: dict[str, list[StreamEntry]] = {a: [] for a in agents}
            for agent in agents:
                await reader.subscribe(agent, got[agent].append)

            cluster.stop()
            await asyncio.sleep(10)
            for node in cluster.nodes:  # same ports, same slots (nodes.conf kept), no data
                node.start_again()

            async def committed(agent: str) -> bool:
                try:
                    return (
                        await writer.commit_agent(agent, NEVER_STORED, StateWrite(b"s"), [env(1)])
                    ) is not None
                except StoreUnavailable:
                    return False

            for agent in agents:
                await eventually(lambda a=agent: committed(a), timeout=30)  # type: ignore[misc]
            # No position sync at this level: only the resubscription can deliver these.
            await eventually(lambda: all(len(entries) >= 1 for entries in got.values()), 30)
        finally:
            await writer.close()
            await reader.close()


# -- a full or evicting Redis ------------------------------------------------------------------


@pytest.mark.parametrize(
    ("reply", "refused"),
    [
        ("MISCONF Redis is configured to save RDB snapshots, but it's currently unable", True),
        ("ERR Error running script (call to f_1): @user_script:3: MISCONF Errors writing", True),
        ("NOREPLICAS Not enough good replicas to write.", True),
        ("MASTERDOWN Link with MASTER is down and replica-serve-stale-data is set to 'no'.", True),
        ("WRONGTYPE Operation against a key holding the wrong kind of value", False),
        ("ERR unknown command 'CONFIG'", False),
        ("ERR value mentions OOMPH and READONLYISH", False),
    ],
)
def test_which_error_replies_mean_unavailable(reply: str, refused: bool) -> None:
    """Replies without a redis-py class of their own (MISCONF needs a failing disk to provoke)
    are recognised by their error code, also when wrapped by a script error."""
    assert refusing(redis.exceptions.ResponseError(reply)) is refused
    assert refusing(redis.exceptions.OutOfMemoryError("command not allowed"))
    assert refusing(redis.exceptions.ReadOnlyError("You can't write against a read only replica"))


async def test_a_full_redis_is_unavailable_and_nothing_is_half_written() -> None:
    with RedisServer.start() as server:
        store = RedisStore.from_url(server.url)
        try:
            contacts = {"c-1": b"one", "c-2": b"two"}
            first = await store.commit_agent(
                "A", NEVER_STORED, StateWrite(b"one", contacts), [env(1)]
            )
            assert first is not None
            head = await store.stream_head("A")
            lease = await store.claim_lease("A", "runner", "h", 30.0)
            assert lease is not None
            control = admin(server.port)
            for n in range(64):  # 4 MiB of data, then a 1 MiB limit that does not evict
                control.set(f"filler:{n}", b"x" * 65536)
            control.config_set("maxmemory", 1024 * 1024)

            writes = [
                store.commit_agent(
                    "A",
                    first.revision,
                    StateWrite(b"two", {"c-1": b"changed", "c-3": b"new"}, ["c-2"]),
                    [env(2)],
                ),
                store.commit_agent("B", NEVER_STORED, StateWrite(b"new"), [env(1)]),
                store.heartbeat("node", 5.0),
                store.journal_write(lease, "c", "ticket", {"id": 1}),
                store.workflows_add("A", "c"),
            ]
            for write in writes:
                with pytest.raises(StoreUnavailable, match="refuses writes"):
                    await write
            # Reads still work, and nothing of the refused writes is there.
            stored = await store.load_agent("A")
            assert (stored.revision, stored.head) == (first.revision, b"one")
            assert stored.contacts == contacts  # no contact put, changed or dropped
            assert await store.stream_head("A") == head
            assert await store.journal_read("A", "c") == {}
            assert await store.workflows_list() == []
            assert (await store.load_agent("B")).version == 0

            control.config_set("maxmemory", 0)  # room again: writes go through
            assert (
                await store.commit_agent("B", NEVER_STORED, StateWrite(b"new"), [env(1)])
                is not None
            )
        finally:
            await store.close()


async def test_a_read_only_replica_is_unavailable(server: RedisServer) -> None:
    """What a node pointed at a replica (or at an old master after a failover) hears."""
    admin(server.port).config_set("repl-diskless-sync-delay", 0)
    replica_of = ["--replicaof", "127.0.0.1", str(server.port)]
    with RedisServer.start(extra_args=replica_of) as replica:
        primary = RedisStore.from_url(server.url)
        store = RedisStore.from_url(replica.url)
        try:
            first = await primary.commit_agent("A", NEVER_STORED, StateWrite(b"one"), [env(1)])
            assert first is not None
            await eventually(lambda: admin(replica.port).exists("sb:{A}:state") == 1, 10)
            assert (await store.load_agent("A")).version == 1  # reads are served
            for write in (
                store.commit_agent(
                    "A",
                    first.revision,
                    StateWrite(b"two", {"c-1": b"changed", "c-3": b"new"}, ["c-2"]),
                    [env(2)],
                ),
                store.heartbeat("node", 5.0),
                store.workflows_add("A", "c"),
            ):
                with pytest.raises(StoreUnavailable, match="read only replica"):
                    await write
        finally:
            await primary.close()
            await store.close()


@pytest.mark.parametrize("policy", ["allkeys-lru", "volatile-ttl"])
async def test_an_evicting_redis_is_refused(policy: str) -> None:
    with RedisServer.start(extra_args=["--maxmemory-policy", policy]) as server:
        store = RedisStore.from_url(server.url)
        try:
            with pytest.raises(StoreMisconfigured, match="noeviction") as refused:
                await store.ping()
            assert policy in str(refused.value)
            with pytest.raises(StoreMisconfigured):
                await store.commit_agent("A", NEVER_STORED, StateWrite(b"s"), [])
            assert admin(server.port).dbsize() == 0  # refused before writing anything
        finally:
            await store.close()


async def test_an_evicting_cluster_node_is_refused() -> None:
    with RedisCluster.start() as cluster:
        admin(cluster.ports[1]).config_set("maxmemory-policy", "allkeys-lfu")
        store = RedisStore.from_url(cluster.url, cluster=True)
        try:
            with pytest.raises(StoreMisconfigured, match="allkeys-lfu"):
                await store.ping()
        finally:
            await store.close()


async def test_without_config_the_store_logs_and_goes_on(
    caplog: pytest.LogCaptureFixture,
) -> None:
    with RedisServer.start(extra_args=["--rename-command", "CONFIG", '""']) as server:
        store = RedisStore.from_url(server.url)
        try:
            with caplog.at_level(logging.WARNING):
                await store.ping()
            assert "maxmemory-policy" in caplog.text
            assert (
                await store.commit_agent("A", NEVER_STORED, StateWrite(b"s"), [env(1)]) is not None
            )
        finally:
            await store.close()
