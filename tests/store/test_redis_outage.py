"""Redis going away and coming back empty: the daemon must hear `StoreUnavailable` (to flip
readiness), recover without being restarted itself, and tell resuming tabs to take a snapshot.

Each test owns its server (or cluster), because it stops and restarts it.
"""

import time
from collections.abc import Awaitable, Callable, Iterator

import pytest

from daemon.core.writes import StateWrite
from daemon.store.base import NEVER_STORED, Envelope, Store, StoreUnavailable, StreamEntry
from daemon.store.redis import RedisStore
from tests.daemons import eventually
from tests.redis_servers import RedisCluster, RedisServer


@pytest.fixture(params=["redis", "cluster"])
def server(request: pytest.FixtureRequest) -> Iterator[RedisServer | RedisCluster]:
    started: RedisServer | RedisCluster = (
        RedisServer.start() if request.param == "redis" else RedisCluster.start()
    )
    with started:
        yield started


def open_redis(server: RedisServer | RedisCluster) -> RedisStore:
    return RedisStore.from_url(
        server.url,
        cluster=isinstance(server, RedisCluster),
        socket_timeout=0.5,
        socket_connect_timeout=0.3,
    )


async def all_operations_fail(store: Store) -> None:
    operations = [
        store.ping(),
        store.load_agent("A"),
        store.commit_agent("A", NEVER_STORED, StateWrite(b"s"), [Envelope({"n": 1})]),
        store.stream_head("A"),
        store.read_stream("A", "e", 0),
        store.subscribe("B", lambda entry: None),
        store.claim_lease("A", "runner", "h", 1.0),
        store.journal_read("A", "c"),
        store.workflows_add("A", "c"),
        store.workflows_list(),
        store.rate_acquire("k", 60, 1),
        store.heartbeat("n", 1.0),
        store.live_nodes(),
    ]
    for operation in operations:
        started = time.monotonic()
        with pytest.raises(StoreUnavailable):
            await operation
        assert time.monotonic() - started < 5.0  # bounded by the socket timeouts


async def test_unavailable_then_recovers_after_restart(
    server: RedisServer | RedisCluster,
) -> None:
    writer, reader = open_redis(server), open_redis(server)
    try:
        got: list[StreamEntry] = []
        subscription = await reader.subscribe("A", got.append)
        before = await writer.commit_agent(
            "A", NEVER_STORED, StateWrite(b"s"), [Envelope({"n": 1})]
        )
        assert before is not None
        await eventually(lambda: len(got) == 1)
        lease = await writer.claim_lease("A", "runner", "node-1", 30.0)
        assert lease is not None

        server.stop()
        await all_operations_fail(writer)
        with pytest.raises(StoreUnavailable):
            await writer.lease_is_current(lease)

        server.restart()  # same ports, no data
        await eventually(_pings(writer), timeout=10.0)

        # The stream was lost with the data: a new epoch, so resuming tabs get a snapshot.
        old_epoch = before.entries[0].epoch
        assert await writer.read_stream("A", old_epoch, 1) is None
        assert not await writer.lease_is_current(lease)
        after = await writer.commit_agent("A", NEVER_STORED, StateWrite(b"s"), [Envelope({"n": 2})])
        assert after is not None
        new_epoch = after.entries[0].epoch
        assert new_epoch != old_epoch and after.entries[0].seq == 1

        # The reader's subscription came back by itself (redis-py resubscribes on reconnect).
        async def delivered() -> bool:
            revision = (await writer.load_agent("A")).revision
            more = await writer.commit_agent("A", revision, StateWrite(b"s"), [Envelope({"n": 3})])
            assert more is not None
            return any(entry.epoch == new_epoch for entry in got)

        await eventually(delivered, timeout=10.0)
        await subscription.close()
    finally:
        await writer.close()
        await reader.close()


def _pings(store: Store) -> Callable[[], Awaitable[bool]]:
    async def check() -> bool:
        try:
            await store.ping()
        except StoreUnavailable:
            return False
        return True

    return check
