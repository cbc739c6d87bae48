"""The shared store: Redis (one server or a Redis Cluster) through redis-py's `redis.asyncio`.

Every operation that `daemon.store.base` promises atomic is one round trip: a Lua script,
registered once and called by SHA (redis-py's `AsyncScript` falls back to `SCRIPT LOAD` on
`NOSCRIPT`, e.g. after a Redis restart), or a single command. Nothing is read in one round trip
and written in a second, so a daemon that dies anywhere leaves no half-done operation behind.

Key layout (`<p>` is the configurable prefix, default `sb`; `{A}` is the agent id as a Redis
Cluster hash tag, so one agent's keys share one slot and every script touches a single slot):

====================================  ========  =================================================
key                                   type      content / expiry
====================================  ========  =================================================
`<p>:{A}:state`                       hash      `v` version, `b` aggregate blob; idle TTL
`<p>:{A}:meta`                        hash      `e` stream epoch, `s` last seq; idle TTL
`<p>:{A}:stream`                      stream    entry id `<seq>-0`, field `d` = msgpack envelope;
                                                `XADD MAXLEN ~ stream_max`; idle TTL
`<p>:{A}:ch`                          channel   pub/sub (sharded on a cluster); one message
                                                per commit: msgpack `[epoch, first seq,
                                                envelope...]`
`<p>:{A}:lease:<name>`                string    `<epoch>:<holder>`, `PX` = lease ttl
`<p>:{A}:fence:<name>`                string    fencing counter (`INCR`); idle TTL, refreshed on
                                                every claim (see `claim_lease`)
`<p>:{A}:journal:<contact>`           hash      step -> msgpack result; idle TTL
`<p>:workflows`                       set       msgpack `[agent, contact]`; permanent, global
                                                (one slot on a cluster: it is a single-key
                                                command, so that is legal, just not sharded)
`<p>:rate:<key>`                      string    GCRA theoretical arrival time (ms, server clock);
                                                `PX` until it no longer matters
`<p>:nodes`                           zset      node -> expiry (ms, server clock)
====================================  ========  =================================================

The idle TTL (default 24 h) is refreshed on every write of the agent, so an agent nobody has
touched for a day costs no memory; a lost stream (expired, flushed, Redis restarted empty) gets a
*new* epoch on the next access, which tells resuming tabs that they need a snapshot.

Pub/sub: one `RedisStore` holds one pub/sub connection (per cluster master) and one reader
task per connection, multiplexing every agent's channel: `SUBSCRIBE` when an agent gets its
first listener, `UNSUBSCRIBE` after the last one goes. On a cluster the store uses *sharded*
pub/sub (`SPUBLISH` inside the commit script, `SSUBSCRIBE` on the master that owns the agent's
slot), so a publication only travels to one shard instead of being broadcast over the cluster
bus to every node. redis-py re-sends the subscriptions when a connection is re-established, and
the reader retries with backoff, so subscriptions survive a Redis restart.

All redis-py connection and timeout errors surface as `StoreUnavailable`.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
import secrets
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any, TypeAlias, cast

import msgpack
import redis.exceptions
from redis.asyncio import BlockingConnectionPool, ConnectionPool, Redis
from redis.asyncio.client import PubSub
from redis.asyncio.cluster import RedisCluster
from redis.asyncio.retry import Retry
from redis.backoff import ExponentialBackoff

from daemon.store.base import (
    Envelope,
    Lease,
    Store,
    StoreUnavailable,
    StreamEntry,
    StreamListener,
    Subscription,
    Versioned,
)

log = logging.getLogger(__name__)

# What callers pass in. Internally the client is handled as `Any`: the installed `types-redis`
# stubs (4.6) shadow redis-py 8's own annotations and know nothing of its async cluster API
# (`register_script`, `ping(target_nodes=)`, sharded pub/sub, `aclose`).
RedisClient: TypeAlias = "Redis[bytes] | RedisCluster[bytes]"

# -- Lua ---------------------------------------------------------------------------------
# Conventions: KEYS are always of one agent (one slot); numbers that must not be truncated to
# integers come back as strings; `false` from Lua is a nil reply (None in Python).

# Read the stream epoch, creating it (and dropping any orphan stream entries) if it is gone.
_LUA_EPOCH = """
local function epoch_of(meta, stream, candidate)
  local epoch = redis.call('HGET', meta, 'e')
  if not epoch then
    epoch = candidate
    redis.call('DEL', stream)
    redis.call('HSET', meta, 'e', epoch, 's', 0)
  end
  return epoch
end
"""

# KEYS: state, meta, stream
# ARGV: expected version, blob, epoch candidate, stream max, idle ttl s, publish cmd, channel,
#       envelope...
COMMIT_LUA = (
    _LUA_EPOCH
    + """
local version = tonumber(redis.call('HGET', KEYS[1], 'v') or '0')
if version ~= tonumber(ARGV[1]) then
  return false
end
redis.call('HSET', KEYS[1], 'v', version + 1, 'b', ARGV[2])
local epoch = epoch_of(KEYS[2], KEYS[3], ARGV[3])
local n = #ARGV - 7
local first = 0
if n > 0 then
  local last = redis.call('HINCRBY', KEYS[2], 's', n)
  first = last - n + 1
  local publication = {epoch, first}
  for i = 1, n do
    local data = ARGV[7 + i]
    redis.call('XADD', KEYS[3], 'MAXLEN', '~', ARGV[4], (first + i - 1) .. '-0', 'd', data)
    publication[2 + i] = data
  end
  redis.call(ARGV[6], ARGV[7], cmsgpack.pack(publication))
end
for i = 1, 3 do
  redis.call('EXPIRE', KEYS[i], ARGV[5])
end
return epoch .. ':' .. first
"""
)

# KEYS: meta, stream   ARGV: epoch candidate, idle ttl s
HEAD_LUA = (
    _LUA_EPOCH
    + """
local epoch = epoch_of(KEYS[1], KEYS[2], ARGV[1])
redis.call('EXPIRE', KEYS[1], ARGV[2])
return {epoch, tonumber(redis.call('HGET', KEYS[1], 's'))}
"""
)

# KEYS: meta, stream   ARGV: epoch, after
# All or nothing: nil unless the epoch matches and entry after+1 is still in the stream.
READ_LUA = """
local meta = redis.call('HMGET', KEYS[1], 'e', 's')
if not meta[1] or meta[1] ~= ARGV[1] then
  return false
end
local last = tonumber(meta[2])
local after = tonumber(ARGV[2])
if after < 0 or after > last then
  return false
end
if after == last then
  return {}
end
local start = string.format('%d-0', after + 1)
local entries = redis.call('XRANGE', KEYS[2], start, '+')
if #entries == 0 or entries[1][1] ~= start then
  return false
end
return entries
"""

# KEYS: lease, fence   ARGV: holder, ttl ms, fence ttl s
# Returns the epoch, or nil if someone else holds a live lease. The fence counter outlives any
# lease by far (idle TTL vs lease TTL), so epochs only grow while anyone can still hold a lease.
CLAIM_LUA = """
local current = redis.call('GET', KEYS[1])
if current then
  local sep = string.find(current, ':', 1, true)
  if string.sub(current, sep + 1) ~= ARGV[1] then
    return false
  end
  redis.call('SET', KEYS[1], current, 'PX', ARGV[2])
  return tonumber(string.sub(current, 1, sep - 1))
end
local epoch = redis.call('INCR', KEYS[2])
redis.call('EXPIRE', KEYS[2], ARGV[3])
redis.call('SET', KEYS[1], epoch .. ':' .. ARGV[1], 'PX', ARGV[2])
return epoch
"""

# KEYS: lease   ARGV: expected value, ttl ms
RENEW_LUA = """
if redis.call('GET', KEYS[1]) ~= ARGV[1] then
  return 0
end
redis.call('PEXPIRE', KEYS[1], ARGV[2])
return 1
"""

# KEYS: lease   ARGV: expected value
RELEASE_LUA = """
if redis.call('GET', KEYS[1]) ~= ARGV[1] then
  return 0
end
redis.call('DEL', KEYS[1])
return 1
"""

# KEYS: lease, journal   ARGV: expected lease value, step, result, idle ttl s
JOURNAL_LUA = """
if redis.call('GET', KEYS[1]) ~= ARGV[1] then
  return 0
end
redis.call('HSET', KEYS[2], ARGV[2], ARGV[3])
redis.call('EXPIRE', KEYS[2], ARGV[4])
return 1
"""

# KEYS: rate key   ARGV: emission interval ms, burst
# GCRA on the server's clock, so nodes with skewed clocks share one budget. The same algorithm
# as MemoryStore.rate_acquire. Returns the wait in ms as a string ("0" = granted).
RATE_LUA = """
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + tonumber(t[2]) / 1000
local interval = tonumber(ARGV[1])
local tat = tonumber(redis.call('GET', KEYS[1]) or '0')
if tat < now then
  tat = now
end
local allow_at = tat - interval * tonumber(ARGV[2])
if now < allow_at then
  return tostring(allow_at - now)
end
local new_tat = tat + interval
redis.call('SET', KEYS[1], string.format('%.3f', new_tat), 'PX', math.ceil(new_tat - now) + 1000)
return '0'
"""

# KEYS: nodes   ARGV: node, ttl ms
HEARTBEAT_LUA = """
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
redis.call('ZADD', KEYS[1], now + tonumber(ARGV[2]), ARGV[1])
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now)
return 1
"""

# KEYS: nodes
LIVE_NODES_LUA = """
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
return redis.call('ZRANGEBYSCORE', KEYS[1], '(' .. now, '+inf')
"""

# -- errors ------------------------------------------------------------------------------

_UNAVAILABLE: tuple[type[BaseException], ...] = (
    redis.exceptions.ConnectionError,  # includes BusyLoadingError
    redis.exceptions.TimeoutError,
    redis.exceptions.ClusterDownError,
    redis.exceptions.TryAgainError,
    redis.exceptions.MasterDownError,
    redis.exceptions.RedisClusterException,  # "cannot connect to any node" and friends
    OSError,
    asyncio.TimeoutError,
)


@contextlib.contextmanager
def _translated() -> Iterator[None]:
    """Turn any 'Redis is unreachable' error into StoreUnavailable (readiness flips on it)."""
    try:
        yield
    except StoreUnavailable:
        raise
    except _UNAVAILABLE as exc:
        raise StoreUnavailable(f"redis unavailable: {exc!r}") from exc


# -- encoding ----------------------------------------------------------------------------


def encode_envelope(envelope: Envelope) -> bytes:
    return cast(bytes, msgpack.packb([envelope.message, envelope.to_tab, envelope.to_role]))


def decode_envelope(data: bytes) -> Envelope:
    message, to_tab, to_role = msgpack.unpackb(data, raw=False)
    return Envelope(message, to_tab, to_role)


def encode_publication(epoch: str, first: int, envelopes: Sequence[bytes]) -> bytes:
    """The pub/sub payload as the commit script builds it: one message per commit,
    msgpack `[epoch, first seq, envelope, envelope, ...]` (Centrifugo prefixes each
    publication with its epoch and offset the same way)."""
    return cast(bytes, msgpack.packb([epoch, first, *envelopes]))


def decode_publication(data: bytes) -> list[StreamEntry]:
    epoch, first, *envelopes = msgpack.unpackb(data, raw=True)
    text = _text(epoch)
    return [
        StreamEntry(text, first + i, decode_envelope(envelope))
        for i, envelope in enumerate(envelopes)
    ]


def _ms(seconds: float) -> int:
    return max(1, math.ceil(seconds * 1000))


def _text(value: bytes | str) -> str:
    return value.decode() if isinstance(value, bytes) else value


# -- batching ----------------------------------------------------------------------------


class _Batcher:
    """Send concurrent calls of one script as a single pipeline (one round trip per batch).

    Each EVALSHA in the pipeline is still its own atomic script; a non-transactional pipeline
    only saves round trips and per-command client overhead, which is what limits a node that
    commits for hundreds of agents at once. While one batch is in flight the next accumulates
    (like Nagle, without a timer): an idle store adds no latency, a busy one batches more.
    """

    def __init__(self, client: Any, script: Any, max_batch: int = 256) -> None:
        self._client = client
        self._script = script
        self._max_batch = max_batch
        self._pending: list[tuple[list[Any], asyncio.Future[Any]]] = []
        self._flusher: asyncio.Task[None] | None = None

    async def call(self, keys: Sequence[Any], args: Sequence[Any]) -> Any:
        future: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        self._pending.append(([*keys, *args], future))
        if self._flusher is None or self._flusher.done():
            self._flusher = asyncio.create_task(self._flush(len(keys)))
        return await future

    async def _flush(self, numkeys: int) -> None:
        while self._pending:
            batch = self._pending[: self._max_batch]
            del self._pending[: self._max_batch]
            try:
                results = await self._send(numkeys, [arguments for arguments, _ in batch])
            except BaseException as exc:
                for _, future in batch:
                    if not future.done():
                        future.set_exception(exc)
                if isinstance(exc, asyncio.CancelledError):
                    raise
                continue
            for (_, future), result in zip(batch, results, strict=True):
                if future.done():
                    continue
                if isinstance(result, BaseException):
                    future.set_exception(result)
                else:
                    future.set_result(result)

    async def _send(self, numkeys: int, calls: list[list[Any]]) -> list[Any]:
        results: list[Any] = [None] * len(calls)
        todo = list(range(len(calls)))
        for attempt in range(2):
            pipe = self._client.pipeline(transaction=False)
            for i in todo:
                pipe.evalsha(self._script.sha, numkeys, *calls[i])
            replies = await pipe.execute(raise_on_error=False)
            missing = []
            for i, reply in zip(todo, replies, strict=True):
                if isinstance(reply, redis.exceptions.NoScriptError) and attempt == 0:
                    missing.append(i)
                else:
                    results[i] = reply
            if not missing:
                break
            # The server lost its script cache (restart, SCRIPT FLUSH, failover): load, redo.
            self._script.sha = await self._client.script_load(self._script.script)
            todo = missing
        return results


# -- pub/sub -----------------------------------------------------------------------------


class _RedisSubscription(Subscription):
    def __init__(self, hub: _Hub, channel: bytes, listener: StreamListener) -> None:
        self._hub = hub
        self.channel = channel
        self.listener = listener
        self.closed = False

    async def close(self) -> None:
        if not self.closed:
            self.closed = True
            await self._hub.remove(self)


@dataclass(eq=False)
class _Connection:
    """One pub/sub connection (the server, or one cluster master) and its reader task."""

    name: str
    pubsub: Any  # redis.asyncio PubSub; the installed stubs lack the sharded commands
    pool: Any  # ours to close (cluster), or None (the client's pool)
    channels: set[bytes] = field(default_factory=set)
    reader: asyncio.Task[None] | None = None
    broken: bool = False


class _Hub:
    """Multiplexes every agent's channel over as few connections as the deployment allows.

    Local listeners are keyed by channel. `_reconcile` (serialised by a lock) makes the server
    side match: subscribe a channel that has listeners, unsubscribe one that has none. Subscribe
    waits for the server's confirmation, so an entry committed after `subscribe()` returns is
    always delivered.
    """

    def __init__(self, client: RedisClient, sharded: bool, timeout: float) -> None:
        self._client: Any = cast(Any, client)
        self._cluster = isinstance(client, RedisCluster)
        self._sharded = sharded
        self._timeout = timeout
        self._listeners: dict[bytes, list[_RedisSubscription]] = {}
        self._connections: dict[str, _Connection] = {}
        self._where: dict[bytes, _Connection] = {}
        self._confirmations: dict[bytes, asyncio.Future[None]] = {}
        self._lock = asyncio.Lock()
        self._closed = False

    async def add(self, channel: bytes, listener: StreamListener) -> Subscription:
        subscription = _RedisSubscription(self, channel, listener)
        self._listeners.setdefault(channel, []).append(subscription)
        try:
            await self._reconcile(channel)
        except BaseException:
            await subscription.close()
            raise
        return subscription

    async def remove(self, subscription: _RedisSubscription) -> None:
        listeners = self._listeners.get(subscription.channel, [])
        if subscription in listeners:
            listeners.remove(subscription)
        if not listeners:
            self._listeners.pop(subscription.channel, None)
            with contextlib.suppress(StoreUnavailable):  # the server forgets on reconnect
                await self._reconcile(subscription.channel)

    async def _reconcile(self, channel: bytes) -> None:
        async with self._lock:
            if self._closed:
                return
            wanted = bool(self._listeners.get(channel))
            current = self._where.get(channel)
            if wanted and current is not None and not current.broken:
                target = await self._connection_for(channel)
                if target is current:
                    return
            if current is not None:
                await self._unsubscribe(current, channel)
            if wanted:
                await self._subscribe(await self._connection_for(channel), channel)

    async def _subscribe(self, connection: _Connection, channel: bytes) -> None:
        confirmed = asyncio.get_running_loop().create_future()
        self._confirmations[channel] = confirmed
        try:
            with _translated():
                if self._sharded:
                    await connection.pubsub.ssubscribe(channel)
                else:
                    await connection.pubsub.subscribe(channel)
                connection.channels.add(channel)
                self._where[channel] = connection
                if connection.reader is None or connection.reader.done():
                    connection.reader = asyncio.create_task(
                        self._read(connection), name=f"redis-pubsub-{connection.name}"
                    )
                await asyncio.wait_for(asyncio.shield(confirmed), self._timeout)
        finally:
            if self._confirmations.get(channel) is confirmed:
                del self._confirmations[channel]

    async def _unsubscribe(self, connection: _Connection, channel: bytes) -> None:
        connection.channels.discard(channel)
        self._where.pop(channel, None)
        if connection.broken:
            # The channel may be re-homed to another connection; forget it on the dead one so
            # a reconnect does not resubscribe it there.
            connection.pubsub.shard_channels.pop(channel, None)
            connection.pubsub.channels.pop(channel, None)
            return
        with _translated():
            if self._sharded:
                await connection.pubsub.sunsubscribe(channel)
            else:
                await connection.pubsub.unsubscribe(channel)

    async def _connection_for(self, channel: bytes) -> _Connection:
        if not self._cluster:
            connection = self._connections.get("server")
            if connection is None:
                connection = _Connection("server", self._client.pubsub(), None)
                self._connections["server"] = connection
            return connection
        with _translated():
            await self._client.initialize()  # a no-op once the slot map is known
            node = self._client.get_node_from_key(channel)
            if node is None:
                raise StoreUnavailable(f"no cluster node serves {channel!r}")
        connection = self._connections.get(node.name)
        if connection is None:
            node_any: Any = node
            pool = ConnectionPool(
                connection_class=node_any.connection_class, **node_any.connection_kwargs
            )
            connection = _Connection(node.name, PubSub(pool), pool)
            self._connections[node.name] = connection
        return connection

    async def _read(self, connection: _Connection) -> None:
        """Deliver messages until closed; on errors back off and let redis-py reconnect.

        redis-py's PubSub reconnects on the next read and re-sends every subscription in its
        `on_connect` callback, so after a Redis restart nothing needs resubscribing by hand.
        On a cluster, a connection that keeps failing may mean the slot moved: its channels
        are then re-homed to whatever node the client's (refreshed) slot map now names.
        """
        backoff = 0.05
        failures = 0
        while True:
            try:
                message = await connection.pubsub.get_message(timeout=1.0)
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                failures += 1
                log.warning("pub/sub connection %s failed (%r); retrying", connection.name, exc)
                await asyncio.sleep(backoff)
                backoff = min(backoff * 2, 2.0)
                if self._cluster and failures >= 3:
                    await self._rehome(connection)
                continue
            backoff, failures = 0.05, 0
            if message is not None:
                self._handle(connection, message)

    async def _rehome(self, connection: _Connection) -> None:
        with contextlib.suppress(Exception):
            cluster: Any = self._client
            await cluster.nodes_manager.initialize()
        connection.broken = True
        for channel in list(connection.channels):
            with contextlib.suppress(Exception):
                await self._reconcile(channel)
        connection.broken = False

    def _handle(self, connection: _Connection, message: dict[str, Any]) -> None:
        kind = message["type"]
        channel = message["channel"]
        if kind in ("message", "smessage"):
            self._dispatch(channel, message["data"])
        elif kind in ("subscribe", "ssubscribe"):
            confirmed = self._confirmations.get(channel)
            if confirmed is not None and not confirmed.done():
                confirmed.set_result(None)
        elif kind == "sunsubscribe" and channel in connection.channels:
            # The server dropped a shard channel we still want: its slot moved (cluster).
            connection.channels.discard(channel)
            self._where.pop(channel, None)
            asyncio.get_running_loop().create_task(self._reconcile(channel))

    def _dispatch(self, channel: bytes, data: bytes) -> None:
        listeners = self._listeners.get(channel)
        if not listeners:
            return
        try:
            entries = decode_publication(data)
        except Exception:
            log.exception("undecodable publication on %r", channel)
            return
        for entry in entries:
            for subscription in list(listeners):
                try:
                    subscription.listener(entry)
                except Exception:
                    log.exception("stream listener failed on %r", channel)

    async def close(self) -> None:
        async with self._lock:
            self._closed = True
            self._listeners.clear()
            for connection in self._connections.values():
                if connection.reader is not None:
                    connection.reader.cancel()
                    with contextlib.suppress(BaseException):
                        await connection.reader
                with contextlib.suppress(Exception):
                    await connection.pubsub.aclose()
                if connection.pool is not None:
                    with contextlib.suppress(Exception):
                        await connection.pool.aclose()
            self._connections.clear()
            self._where.clear()


# -- the store ---------------------------------------------------------------------------


class RedisStore(Store):
    """The Store over Redis or Redis Cluster; see the module docstring for the key layout."""

    def __init__(
        self,
        client: RedisClient,
        *,
        prefix: str = "sb",
        stream_max: int = 1000,
        idle_ttl: float = 24 * 3600,
        sharded_pubsub: bool | None = None,
        subscribe_timeout: float = 5.0,
        batch_commits: bool | None = None,
        owns_client: bool = True,
    ) -> None:
        """Wrap a client made with `decode_responses=False` (blobs and envelopes are binary).

        `sharded_pubsub` defaults to True on a cluster (SPUBLISH/SSUBSCRIBE, Redis >= 7) and
        False on a single server (plain PUBLISH/SUBSCRIBE, which Redis 6 also has).
        `batch_commits` pipelines concurrent `commit_agent` calls (see `_Batcher`); it defaults
        to on for a single server and must stay off on a cluster, where redis-py refuses
        EVALSHA in pipelines.
        """
        self._client: Any = cast(Any, client)
        self._prefix = prefix
        self._stream_max = stream_max
        self._idle_ttl = max(1, math.ceil(idle_ttl))
        self._cluster = isinstance(client, RedisCluster)
        self._sharded = self._cluster if sharded_pubsub is None else sharded_pubsub
        self._publish = "SPUBLISH" if self._sharded else "PUBLISH"
        self._owns_client = owns_client
        self._initialized = not self._cluster
        self._init_lock = asyncio.Lock()
        self._hub = _Hub(client, self._sharded, subscribe_timeout)
        register = self._client.register_script
        self._commit = register(COMMIT_LUA)
        self._head = register(HEAD_LUA)
        self._read = register(READ_LUA)
        self._claim = register(CLAIM_LUA)
        self._renew = register(RENEW_LUA)
        self._release = register(RELEASE_LUA)
        self._journal = register(JOURNAL_LUA)
        self._rate = register(RATE_LUA)
        self._heartbeat = register(HEARTBEAT_LUA)
        self._live_nodes = register(LIVE_NODES_LUA)
        self._commit_call: Any = (
            _Batcher(self._client, self._commit).call
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
        hears `StoreUnavailable`; retries are few and fast for the same reason. Remaining
        keyword options go to `RedisStore.__init__` (prefix, stream_max, idle_ttl, ...).
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
            pool: BlockingConnectionPool[Any] = BlockingConnectionPool.from_url(
                url, max_connections=max_connections or 64, timeout=pool_timeout, **common
            )
            client = Redis(connection_pool=pool)
        return cls(client, owns_client=True, subscribe_timeout=socket_timeout * 2, **options)

    async def _ready(self) -> None:
        """Load the cluster's slot map once, before any concurrent use.

        redis-py 8.1's async RedisCluster initialises lazily, and several first commands
        issued at once (asyncio.gather) race inside that lazy initialisation and fail with
        `AttributeError: 'NoneType' object has no attribute 'writelines'`. One explicit,
        serialised `initialize()` avoids it; afterwards this is a single attribute check.
        """
        if self._initialized:
            return
        async with self._init_lock:
            if not self._initialized:
                await self._client.initialize()
                self._initialized = True

    # -- keys ----------------------------------------------------------------------------

    def _key(self, agent: str, part: str) -> str:
        return f"{self._prefix}:{{{agent}}}:{part}"

    def _channel(self, agent: str) -> bytes:
        return self._key(agent, "ch").encode()

    def _lease_keys(self, lease: Lease) -> tuple[str, str]:
        return self._key(lease.agent, f"lease:{lease.name}"), f"{lease.epoch}:{lease.holder}"

    # -- agent aggregate and stream ------------------------------------------------------

    async def load_agent(self, agent: str) -> Versioned:
        with _translated():
            await self._ready()
            version, blob = await self._client.hmget(self._key(agent, "state"), ["v", "b"])
        if version is None:
            return Versioned(0, None)
        return Versioned(int(version), blob)

    async def commit_agent(
        self, agent: str, expected_version: int, state: bytes, envelopes: Sequence[Envelope]
    ) -> list[StreamEntry] | None:
        encoded = [encode_envelope(envelope) for envelope in envelopes]
        with _translated():
            await self._ready()
            result = await self._commit_call(
                [
                    self._key(agent, "state"),
                    self._key(agent, "meta"),
                    self._key(agent, "stream"),
                ],
                [
                    expected_version,
                    state,
                    secrets.token_hex(8),
                    self._stream_max,
                    self._idle_ttl,
                    self._publish,
                    self._channel(agent),
                    *encoded,
                ],
            )
        if result is None:
            return None
        epoch, _, first_text = _text(result).partition(":")
        first = int(first_text)
        return [StreamEntry(epoch, first + i, envelope) for i, envelope in enumerate(envelopes)]

    async def _commit_direct(self, keys: Sequence[Any], args: Sequence[Any]) -> Any:
        return await self._commit(keys=keys, args=args)

    async def stream_head(self, agent: str) -> tuple[str, int]:
        with _translated():
            await self._ready()
            epoch, seq = await self._head(
                keys=[self._key(agent, "meta"), self._key(agent, "stream")],
                args=[secrets.token_hex(8), self._idle_ttl],
            )
        return _text(epoch), int(seq)

    async def read_stream(self, agent: str, epoch: str, after: int) -> list[StreamEntry] | None:
        with _translated():
            await self._ready()
            result = await self._read(
                keys=[self._key(agent, "meta"), self._key(agent, "stream")],
                args=[epoch, after],
            )
        if result is None:
            return None
        entries = []
        for entry_id, fields in result:
            data = fields[fields.index(b"d") + 1]
            seq = int(entry_id.split(b"-", 1)[0])
            entries.append(StreamEntry(epoch, seq, decode_envelope(data)))
        return entries

    async def subscribe(self, agent: str, listener: StreamListener) -> Subscription:
        with _translated():
            await self._ready()
        return await self._hub.add(self._channel(agent), listener)

    # -- leases and the workflow journal -------------------------------------------------

    async def claim_lease(self, agent: str, name: str, holder: str, ttl: float) -> Lease | None:
        with _translated():
            await self._ready()
            epoch = await self._claim(
                keys=[self._key(agent, f"lease:{name}"), self._key(agent, f"fence:{name}")],
                args=[holder, _ms(ttl), max(self._idle_ttl, math.ceil(ttl * 10))],
            )
        if epoch is None:
            return None
        return Lease(name, agent, holder, int(epoch))

    async def renew_lease(self, lease: Lease, ttl: float) -> bool:
        key, value = self._lease_keys(lease)
        with _translated():
            await self._ready()
            return bool(await self._renew(keys=[key], args=[value, _ms(ttl)]))

    async def release_lease(self, lease: Lease) -> None:
        key, value = self._lease_keys(lease)
        with _translated():
            await self._ready()
            await self._release(keys=[key], args=[value])

    async def lease_is_current(self, lease: Lease) -> bool:
        key, value = self._lease_keys(lease)
        with _translated():
            await self._ready()
            current = await self._client.get(key)
        return current is not None and _text(current) == value

    async def journal_read(self, agent: str, contact: str) -> dict[str, Any]:
        with _translated():
            await self._ready()
            raw = await self._client.hgetall(self._key(agent, f"journal:{contact}"))
        return {_text(step): msgpack.unpackb(value, raw=False) for step, value in raw.items()}

    async def journal_write(self, lease: Lease, contact: str, step: str, result: Any) -> bool:
        key, value = self._lease_keys(lease)
        with _translated():
            await self._ready()
            written = await self._journal(
                keys=[key, self._key(lease.agent, f"journal:{contact}")],
                args=[value, step, msgpack.packb(result), self._idle_ttl],
            )
        return bool(written)

    def _workflow_member(self, agent: str, contact: str) -> bytes:
        return cast(bytes, msgpack.packb([agent, contact]))

    async def workflows_add(self, agent: str, contact: str) -> None:
        with _translated():
            await self._ready()
            await self._client.sadd(
                f"{self._prefix}:workflows", self._workflow_member(agent, contact)
            )

    async def workflows_done(self, agent: str, contact: str) -> None:
        with _translated():
            await self._ready()
            await self._client.srem(
                f"{self._prefix}:workflows", self._workflow_member(agent, contact)
            )

    async def workflows_list(self) -> list[tuple[str, str]]:
        with _translated():
            await self._ready()
            members = await self._client.smembers(f"{self._prefix}:workflows")
        return sorted(tuple(msgpack.unpackb(member, raw=False)) for member in members)

    # -- shared rate limit, nodes, health ------------------------------------------------

    async def rate_acquire(self, key: str, per_minute: int, burst: int) -> float:
        with _translated():
            await self._ready()
            wait_ms = await self._rate(
                keys=[f"{self._prefix}:rate:{key}"], args=[60000.0 / per_minute, burst]
            )
        return float(wait_ms) / 1000.0

    async def heartbeat(self, node: str, ttl: float) -> None:
        with _translated():
            await self._ready()
            await self._heartbeat(keys=[f"{self._prefix}:nodes"], args=[node, _ms(ttl)])

    async def live_nodes(self) -> frozenset[str]:
        with _translated():
            await self._ready()
            nodes = await self._live_nodes(keys=[f"{self._prefix}:nodes"])
        return frozenset(_text(node) for node in nodes)

    async def ping(self) -> None:
        with _translated():
            await self._ready()
            if self._cluster:
                await self._client.ping(target_nodes=RedisCluster.ALL_NODES)
            else:
                await self._client.ping()

    async def close(self) -> None:
        await self._hub.close()
        if self._owns_client:
            with contextlib.suppress(Exception):
                await self._client.aclose()
