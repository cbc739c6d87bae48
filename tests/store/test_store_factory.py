"""`open_store`: the URL alone picks memory, one Redis server or a Redis Cluster."""

import pytest

from daemon.core.writes import StateWrite
from daemon.store.base import NEVER_STORED
from daemon.store.factory import open_store, split_cluster_flag
from daemon.store.memory import MemoryStore
from daemon.store.redis import RedisStore
from tests.redis_servers import RedisCluster, RedisServer


@pytest.mark.parametrize("url", [None, "", "memory://", "memory:"])
async def test_memory_by_default(url: str | None) -> None:
    store = open_store(url, stream_max=10)
    assert isinstance(store, MemoryStore)
    await store.close()


def test_cluster_flag_is_removed_from_the_url() -> None:
    assert split_cluster_flag("redis://h:1/0?cluster=true&ssl_cert_reqs=none") == (
        "redis://h:1/0?ssl_cert_reqs=none",
        True,
    )
    assert split_cluster_flag("redis://h:1/0") == ("redis://h:1/0", False)
    assert split_cluster_flag("redis://h:1/0?cluster=0") == ("redis://h:1/0", False)


def test_unknown_scheme_is_refused() -> None:
    with pytest.raises(ValueError, match="scheme"):
        open_store("postgres://localhost/db")
    with pytest.raises(ValueError, match="unix"):
        open_store("unix:///tmp/redis.sock?cluster=true")


async def test_redis_url(redis_server: RedisServer) -> None:
    store = open_store(redis_server.url, prefix="factory")
    assert isinstance(store, RedisStore)
    await store.ping()
    await store.close()


async def test_cluster_url(redis_cluster: RedisCluster) -> None:
    for n, store in enumerate(
        (
            open_store(redis_cluster.url + "?cluster=true", prefix="factory"),
            open_store(redis_cluster.url, cluster=True, prefix="factory"),
        )
    ):
        assert isinstance(store, RedisStore)
        await store.ping()
        committed = await store.commit_agent(f"agent-{n}", NEVER_STORED, StateWrite(b"s"), [])
        assert committed is not None and committed.entries == []
        await store.close()
