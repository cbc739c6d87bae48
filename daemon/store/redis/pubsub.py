"""Pub/sub for the agent log: every agent's channel multiplexed over as few connections as the
deployment allows, kept subscribed through outages of any length.

One connection for a single server; one per cluster master on a cluster, where channels are
*sharded* (`SSUBSCRIBE` on the master that owns the agent's slot), so a publication travels to
one shard instead of over the whole cluster bus.

What this promises (and what it does not): once `add` returns, the channel is subscribed. After
that, delivery is a hint, at-most-once: a broken connection loses whatever was published while
it was down. What it does promise is to *come back* and to *say so*: redis-py reconnects and
re-sends the subscriptions (per slot: a batch spanning slots would be refused with CROSSSLOT),
and every re-established subscription calls its listeners' `on_gap`, so readers compare stream
positions and fill the gap from the stream.

A channel stays in the books (`_where`, the connection's `channels`) until it is really moved or
really unwanted; a move that fails (the cluster is still down) is retried with backoff until it
succeeds, never dropped.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections import defaultdict
from dataclasses import dataclass, field
from typing import Any, cast

from redis.asyncio import ConnectionPool
from redis.asyncio.client import PubSub
from redis.asyncio.cluster import RedisCluster
from redis.crc import key_slot

from daemon.store.base import GapListener, StoreUnavailable, StreamListener, Subscription
from daemon.store.redis.common import RedisClient, decode_publication, translated

log = logging.getLogger(__name__)

RETRY_FIRST, RETRY_MAX = 0.1, 5.0  # seconds between attempts to re-home channels


class _SlotPubSub(PubSub):
    """redis-py's PubSub, re-sending shard subscriptions one slot at a time on reconnect.

    The stock class re-sends every shard channel in one `SSUBSCRIBE`, which a cluster node
    refuses (CROSSSLOT) as soon as the channels of one node span two slots: the reconnected
    connection then receives nothing, for good.
    """

    async def _resubscribe_shard_channels(self) -> None:
        by_slot: defaultdict[int, dict[Any, Any]] = defaultdict(dict)
        for channel, handler in self.shard_channels.items():
            by_slot[key_slot(self.encoder.encode(channel))][channel] = handler
        for subscriptions in by_slot.values():
            await self._resubscribe(subscriptions, self.ssubscribe)


class _RedisSubscription(Subscription):
    def __init__(
        self, hub: PubSubHub, channel: bytes, listener: StreamListener, on_gap: GapListener | None
    ) -> None:
        self._hub = hub
        self.channel = channel
        self.listener = listener
        self.on_gap = on_gap
        self.closed = False

    async def close(self) -> None:
        if not self.closed:
            self.closed = True
            await self._hub.remove(self)


@dataclass(eq=False)
class _Connection:
    """One pub/sub connection (the server, or one cluster master) and its reader task."""

    name: str
    pubsub: Any  # _SlotPubSub; the installed stubs lack the sharded commands
    pool: Any  # ours to close (cluster), or None (the client's pool)
    channels: set[bytes] = field(default_factory=set)
    reader: asyncio.Task[None] | None = None


class PubSubHub:
    """Local listeners keyed by channel, and the server-side subscriptions that serve them.

    `_reconcile` (serialised by a lock) makes the server side match the listeners: subscribe a
    channel that has listeners on the connection its slot maps to, unsubscribe one that has
    none. Subscribe waits for the server's confirmation.
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
        self._unsettled: set[bytes] = set()
        self._repairer: asyncio.Task[None] | None = None
        self._lock = asyncio.Lock()
        self._closed = False

    def count(self, channel: bytes) -> int:
        return len(self._listeners.get(channel, ()))

    async def add(
        self, channel: bytes, listener: StreamListener, on_gap: GapListener | None
    ) -> Subscription:
        subscription = _RedisSubscription(self, channel, listener, on_gap)
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
            try:
                await self._reconcile(subscription.channel)
            except StoreUnavailable as exc:
                log.warning("unsubscribe %r failed (%r); retrying", subscription.channel, exc)
                self._unsettle(subscription.channel)

    async def _reconcile(self, channel: bytes) -> None:
        async with self._lock:
            if self._closed:
                return
            current = self._where.get(channel)
            target = await self._connection_for(channel) if self._listeners.get(channel) else None
            if current is target:
                return  # subscribed there (redis-py re-sends it after a reconnect), or unwanted
            if current is not None:
                await self._unsubscribe(current, channel)
            if target is not None:
                await self._subscribe(target, channel)

    async def _subscribe(self, connection: _Connection, channel: bytes) -> None:
        confirmed = asyncio.get_running_loop().create_future()
        self._confirmations[channel] = confirmed
        try:
            with translated():
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
        """Forget the channel on that connection; tell the server if the connection is up.

        Forgetting locally first means a reconnect will not subscribe it again there; if the
        connection is broken the server has already forgotten it, so a failed `UNSUBSCRIBE`
        leaves nothing behind.
        """
        connection.channels.discard(channel)
        self._where.pop(channel, None)
        connection.pubsub.shard_channels.pop(channel, None)
        connection.pubsub.channels.pop(channel, None)
        try:
            if self._sharded:
                await connection.pubsub.sunsubscribe(channel)
            else:
                await connection.pubsub.unsubscribe(channel)
        except Exception as exc:
            log.info("unsubscribe %r on %s: connection down (%r)", channel, connection.name, exc)

    async def _connection_for(self, channel: bytes) -> _Connection:
        if not self._cluster:
            connection = self._connections.get("server")
            if connection is None:
                pubsub = _SlotPubSub(self._client.connection_pool)
                connection = _Connection("server", pubsub, None)
                self._connections["server"] = connection
            return connection
        with translated():
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
            connection = _Connection(node.name, _SlotPubSub(pool), pool)
            self._connections[node.name] = connection
        return connection

    # -- keeping subscriptions alive -------------------------------------------------------

    def _unsettle(self, channel: bytes) -> None:
        """Queue a channel whose subscription must be moved or dropped, and retry until done."""
        self._unsettled.add(channel)
        if not self._closed and (self._repairer is None or self._repairer.done()):
            self._repairer = asyncio.get_running_loop().create_task(self._repair())

    async def _repair(self) -> None:
        delay = RETRY_FIRST
        while self._unsettled and not self._closed:
            for channel in list(self._unsettled):
                try:
                    await self._reconcile(channel)
                except Exception as exc:  # logged and retried: a subscription is never dropped
                    log.warning("re-homing %r failed (%r); retrying in %.1fs", channel, exc, delay)
                    continue
                self._unsettled.discard(channel)
            if self._unsettled:
                await asyncio.sleep(delay)
                delay = min(delay * 2, RETRY_MAX)

    async def _read(self, connection: _Connection) -> None:
        """Deliver messages until closed; on errors back off and let redis-py reconnect.

        redis-py's PubSub reconnects on the next read and re-sends every subscription, which
        `_handle` notices (a confirmation nobody waits for) and reports as a possible gap. On
        a cluster, a connection that keeps failing may mean the slot moved: its channels are
        checked against the refreshed slot map and re-homed if their node changed.
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
                if self._cluster and failures % 3 == 0:
                    await self._rehome(connection)
                continue
            backoff, failures = 0.05, 0
            if message is not None:
                self._handle(connection, message)

    async def _rehome(self, connection: _Connection) -> None:
        try:
            with translated():
                await self._client.nodes_manager.initialize()
        except StoreUnavailable as exc:
            log.info("cluster slot map not available yet (%r)", exc)
            return
        for channel in list(connection.channels):
            node = self._client.get_node_from_key(channel)
            if node is None or node.name != connection.name:
                self._unsettle(channel)

    def _handle(self, connection: _Connection, message: dict[str, Any]) -> None:
        kind = message["type"]
        channel = message["channel"]
        if kind in ("message", "smessage"):
            self._dispatch(channel, message["data"])
        elif kind in ("subscribe", "ssubscribe"):
            confirmed = self._confirmations.get(channel)
            if confirmed is not None and not confirmed.done():
                confirmed.set_result(None)
            elif channel in connection.channels:
                self._gap(channel)  # re-sent after a reconnect: anything may have been missed
        elif kind == "sunsubscribe" and channel in connection.channels:
            # The server dropped a shard channel we still want: its slot moved (cluster).
            connection.channels.discard(channel)
            connection.pubsub.shard_channels.pop(channel, None)
            self._where.pop(channel, None)
            self._unsettle(channel)
            self._gap(channel)

    def _gap(self, channel: bytes) -> None:
        for subscription in list(self._listeners.get(channel, ())):
            if subscription.on_gap is not None:
                try:
                    subscription.on_gap()
                except Exception:
                    log.exception("gap listener failed on %r", channel)

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
            if self._repairer is not None:
                self._repairer.cancel()
                with contextlib.suppress(BaseException):
                    await self._repairer
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
