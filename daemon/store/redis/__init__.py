"""The shared store: Redis (one server or a Redis Cluster) through redis-py's `redis.asyncio`.

One class per role, one module each (`agent_log`, `leases`, `workflows`, `ratelimit`,
`membership`, `once`; pub/sub in `pubsub`, every Lua script in `scripts`), composed here. Each
module's docstring lists its keys. Every operation that `daemon.store.base` promises atomic is
one round trip: a Lua script, registered once and called by SHA (redis-py's `AsyncScript` falls
back to `SCRIPT LOAD` on `NOSCRIPT`, e.g. after a Redis restart), or a single command. Nothing
is read in one round trip and written in a second, so a daemon that dies anywhere leaves no
half-done operation behind.

The idle TTL (default 24 h) is refreshed on every write of an agent, so an agent nobody has
touched for a day costs no memory.

Redis must not evict: a key evicted by `allkeys-lru` or `volatile-*` is a lease, a fencing
counter or a journal silently gone (a duplicate Zendesk ticket, an owner elected twice). The
store checks `maxmemory-policy` before its first command and refuses anything but
`noeviction` (`StoreMisconfigured`); a full Redis then refuses writes with OOM, which — like
READONLY and MISCONF — surfaces as `StoreUnavailable`: readiness false, tabs told, retry later.

All redis-py connection and timeout errors surface as `StoreUnavailable`.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
from typing import Any, cast

import redis.exceptions
from redis.asyncio import BlockingConnectionPool, Redis
from redis.asyncio.cluster import RedisCluster
from redis.asyncio.retry import Retry
from redis.backoff import ExponentialBackoff

from daemon.store import base
from daemon.store.redis import scripts
from daemon.store.redis.agent_log import RedisAgentLog
from daemon.store.redis.common import (
    Batcher,
    RedisClient,
    decode_publication,
    encode_envelope,
    encode_publication,
    ms,
    to_text,
    translated,
)
from daemon.store.redis.leases import RedisLeaseJournal
from daemon.store.redis.membership import RedisMembership
from daemon.store.redis.once import RedisSingleUse
from daemon.store.redis.pubsub import PubSubHub
from daemon.store.redis.ratelimit import RedisRateLimiter
from daemon.store.redis.workflows import RedisWorkflowIndex

__all__ = [
    "RedisClient",
    "RedisStore",
    "decode_publication",
    "encode_envelope",
    "encode_publication",
]

log = logging.getLogger(__name__)

SAFE_POLICY = "noeviction"


class RedisStore(
    RedisAgentLog,
    RedisLeaseJournal,
    RedisWorkflowIndex,
    RedisRateLimiter,
    RedisMembership,
    RedisSingleUse,
    base.Store,
):
    """The Store over Redis or Redis Cluster; see the role modules for the key layout."""

    def __init__(
        self,
        client: RedisClient,
        *,
        prefix: str = "sb",
        stream_max: int = 1000,
        stream_max_age: float = 3600.0,
        idle_ttl: float = 24 * 3600,
        sharded_pubsub: bool | None = None,
        subscribe_timeout: float = 5.0,
        batch_commits: bool | None = None,
        owns_client: bool = True,
    ) -> None:
        """Wrap a client made with `decode_responses=False` (blobs and envelopes are binary).

        `sharded_pubsub` defaults to True on a cluster (SPUBLISH/SSUBSCRIBE, Redis >= 7) and
        False on a single server (plain PUBLISH/SUBSCRIBE, which Redis 6 also has).
        `batch_commits` pipelines concurrent `commit_agent` calls (see `Batcher`); it defaults
        to on for a single server and must stay off on a cluster, where redis-py refuses
        EVALSHA in pipelines.
        """
        self._client = cast(Any, client)
        self._prefix = prefix
        self._stream_max = stream_max
        self._stream_max_age_ms = ms(stream_max_age)
        self._idle_ttl = max(1, math.ceil(idle_ttl))
        self._cluster = isinstance(client, RedisCluster)
        sharded = self._cluster if sharded_pubsub is None else sharded_pubsub
        self._publish = "SPUBLISH" if sharded else "PUBLISH"
        self._owns_client = owns_client
        self._checked = False
        self._init_lock = asyncio.Lock()
        self._pubsub = PubSubHub(client, sharded, subscribe_timeout)
        register = self._client.register_script
        self._commit = register(scripts.COMMIT)
        self._head = register(scripts.HEAD)
        self._heads = register(scripts.HEADS)
        self._read = register(scripts.READ)
        self._resume = register(scripts.RESUME)
        self._claim = register(scripts.CLAIM)
        self._renew = register(scripts.RENEW)
        self._release = register(scripts.RELEASE)
        self._journal = register(scripts.JOURNAL)
        self._rate = register(scripts.RATE)
        self._heartbeat = register(scripts.HEARTBEAT)
        self._live_nodes = register(scripts.LIVE_NODES)
        self._commit_call = (
            Batcher(self._client, self._commit).call
            if (not self._cluster if batch_commits is None else batch_commits)
            else self._commit_direct
        )

    @classmethod
    def from_url(
        cls,
        url: str,
        *,
        cluster: bool = False,
        socket_timeout: float = 2.0,
        socket_connect_timeout: float = 2.0,
        retries: int = 2,
        health_check_interval: float = 15.0,
        max_connections: int | None = None,
        pool_timeout: float = 10.0,
        **options: Any,
    ) -> RedisStore:
        """Connect to `redis://`, `rediss://` or `unix://` (single server) or a cluster.

        Socket timeouts bound how long a call can hang on a dead server before the daemon
        hears `StoreUnavailable`; retries are few and fast for the same reason. A retried
        commit is safe: commits carry an id and a re-sent one is answered, not re-applied.
        Remaining keyword options go to `RedisStore.__init__` (prefix, stream_max, ...).
        """
        retry = Retry(ExponentialBackoff(cap=0.2, base=0.02), retries)
        common: dict[str, Any] = {
            "socket_timeout": socket_timeout,
            "socket_connect_timeout": socket_connect_timeout,
            "health_check_interval": health_check_interval,
            "retry": retry,
            "decode_responses": False,
        }
        client: RedisClient
        if cluster:
            # The cluster client's per-node pools cannot wait for a free connection, so they
            # are sized for a burst from every tab of a busy node at once.
            common["max_connections"] = max_connections or 1024
            client = RedisCluster.from_url(url, **common)
        else:
            # A bounded pool that waits: a burst from a thousand tabs queues for a connection
            # (and is pipelined) instead of failing with "too many connections".
            pool: BlockingConnectionPool = BlockingConnectionPool.from_url(
                url, max_connections=max_connections or 64, timeout=pool_timeout, **common
            )
            client = Redis(connection_pool=pool)
        return cls(client, owns_client=True, subscribe_timeout=socket_timeout * 2, **options)

    async def _ready(self) -> None:
        """Before the first command: load the cluster's slot map and check the eviction policy.

        redis-py 8.1's async RedisCluster initialises lazily, and several first commands
        issued at once (asyncio.gather) race inside that lazy initialisation and fail with
        `AttributeError: 'NoneType' object has no attribute 'writelines'`. One explicit,
        serialised `initialize()` avoids it; afterwards this is a single attribute check.
        """
        if self._checked:
            return
        async with self._init_lock:
            if not self._checked:
                if self._cluster:
                    await self._client.initialize()
                await self._check_policy()
                self._checked = True

    async def _check_policy(self) -> None:
        """Refuse a Redis that evicts keys; where CONFIG is disabled, log and trust the operator."""
        try:
            if self._cluster:
                replies = await self._client.config_get(
                    "maxmemory-policy", target_nodes=RedisCluster.PRIMARIES
                )
            else:
                replies = await self._client.config_get("maxmemory-policy")
        except redis.exceptions.ResponseError as exc:
            log.warning(
                "cannot read maxmemory-policy (%s); make sure it is %s: an evicting Redis "
                "silently drops leases, fencing counters and journals",
                exc,
                SAFE_POLICY,
            )
            return
        policies = {to_text(policy) for policy in _policies(replies)}
        unsafe = policies - {SAFE_POLICY}
        if unsafe:
            raise base.StoreMisconfigured(
                f"Redis maxmemory-policy is {', '.join(sorted(unsafe))}; Switchboard needs "
                f"{SAFE_POLICY}: an evicting Redis silently drops leases, fencing counters and "
                "workflow journals (duplicate tickets, two owners). Set "
                f"`maxmemory-policy {SAFE_POLICY}` (a full Redis then refuses writes, which "
                "Switchboard reports as unavailable, and loses nothing)."
            )

    async def ping(self) -> None:
        with translated():
            await self._ready()
            if self._cluster:
                await self._client.ping(target_nodes=RedisCluster.ALL_NODES)
            else:
                await self._client.ping()

    async def close(self) -> None:
        await self._pubsub.close()
        if self._owns_client:
            with contextlib.suppress(Exception):
                await self._client.aclose()


def _policies(reply: Any) -> list[bytes | str]:
    """The policy values in a CONFIG GET reply: a dict, or (cluster) a dict of them per node."""
    if isinstance(reply, dict):
        found: list[bytes | str] = []
        for key, value in reply.items():
            if isinstance(value, dict | list):
                found.extend(_policies(value))
            elif to_text(key) == "maxmemory-policy":
                found.append(value)
        return found
    if isinstance(reply, list):
        return [value for item in reply for value in _policies(item)]
    return []
