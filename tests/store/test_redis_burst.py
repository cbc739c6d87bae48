"""A burst of more concurrent operations than the connection pool holds waits, never fails.

A node with a thousand tabs can have a thousand store calls in flight; the pool is bounded
(64 by default) and must queue them rather than refuse with "too many connections".
"""

import asyncio

from daemon.core.writes import StateWrite
from daemon.store.base import NEVER_STORED
from daemon.store.redis import RedisStore
from tests.redis_servers import RedisServer


async def test_a_burst_larger_than_the_pool_queues_instead_of_failing(
    redis_server: RedisServer,
) -> None:
    store = RedisStore.from_url(redis_server.url, max_connections=8, prefix="burst")
    agents = [f"burst-{n}" for n in range(400)]
    results = await asyncio.gather(
        *(store.commit_agent(agent, NEVER_STORED, StateWrite(b"state"), []) for agent in agents),
        *(store.load_agent(agent) for agent in agents),
    )
    assert all(r is not None for r in results[: len(agents)])
    stored = await asyncio.gather(*(store.load_agent(agent) for agent in agents))
    assert {s.version for s in stored} == {1}
    await store.close()
