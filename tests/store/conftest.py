"""Fixtures for the store contract tests: real redis-server processes and store factories.

Servers are session-scoped (a single node starts in ~20 ms, the 3-node cluster in ~2 s); each
test gets its own key prefix, so tests never see each other's data without flushing.
"""

import uuid
from collections.abc import AsyncIterator, Iterator
from typing import Any

import pytest

from daemon.store.base import Store
from daemon.store.memory import MemoryStore
from daemon.store.redis import RedisStore
from tests.redis_servers import RedisCluster, RedisServer

STREAM_MAX = 50


@pytest.fixture(scope="session")
def redis_server() -> Iterator[RedisServer]:
    with RedisServer.start() as server:
        yield server


@pytest.fixture(scope="session")
def redis_cluster() -> Iterator[RedisCluster]:
    with RedisCluster.start() as cluster:
        yield cluster


class Backend:
    """Hands out store instances that share one backing state, like daemons sharing Redis.

    For memory there is only one process, so "another store" is the same instance.
    """

    def __init__(self, kind: str, server: RedisServer | RedisCluster | None) -> None:
        self.kind = kind
        self.server = server
        self.prefix = f"t{uuid.uuid4().hex[:10]}"
        self._stores: list[Store] = []
        self._memory: MemoryStore | None = None

    def store(self, **options: Any) -> Store:
        options.setdefault("stream_max", STREAM_MAX)
        if self.kind == "memory":
            if self._memory is None:
                self._memory = MemoryStore(**options)
            return self._memory
        assert self.server is not None
        store = RedisStore.from_url(
            self.server.url,
            cluster=self.kind == "cluster",
            prefix=self.prefix,
            socket_timeout=1.0,
            socket_connect_timeout=0.5,
            **options,
        )
        self._stores.append(store)
        return store

    def lose_everything(self) -> None:
        """What a Redis restart with no persistence does to the data (for memory: what the
        store holds after every agent expired, as after a restart of its process)."""
        if self.kind == "memory":
            assert self._memory is not None
            self._memory._agents.clear()
            return
        assert self.server is not None
        self.server.flushall()

    async def close(self) -> None:
        for store in self._stores:
            await store.close()
        if self._memory is not None:
            await self._memory.close()


@pytest.fixture(params=["memory", "redis", "cluster"])
async def backend(
    request: pytest.FixtureRequest,
) -> AsyncIterator[Backend]:
    kind: str = request.param
    server: RedisServer | RedisCluster | None = None
    if kind == "redis":
        server = request.getfixturevalue("redis_server")
    elif kind == "cluster":
        server = request.getfixturevalue("redis_cluster")
    backend = Backend(kind, server)
    try:
        yield backend
    finally:
        await backend.close()
