"""What every role of the Redis store shares: the client, key names, error translation,
encodings and the commit batcher."""

from __future__ import annotations

import asyncio
import contextlib
import math
from collections.abc import Iterator, Sequence
from typing import Any, TypeAlias, cast

import msgpack
import redis.exceptions
from redis.asyncio import Redis
from redis.asyncio.cluster import RedisCluster

from daemon.store.base import Envelope, StoreUnavailable, StreamEntry

# What callers pass in. Internally the client is handled as `Any`: type stubs for redis-py lag
# behind its async cluster API (`register_script`, `ping(target_nodes=)`, sharded pub/sub).
RedisClient: TypeAlias = "Redis | RedisCluster"

# -- errors ------------------------------------------------------------------------------

_UNREACHABLE: tuple[type[BaseException], ...] = (
    redis.exceptions.ConnectionError,  # includes BusyLoadingError
    redis.exceptions.TimeoutError,
    redis.exceptions.ClusterDownError,
    redis.exceptions.TryAgainError,
    redis.exceptions.MasterDownError,
    redis.exceptions.RedisClusterException,  # "cannot connect to any node" and friends
    OSError,
    asyncio.TimeoutError,
)

# Replies that mean "this server cannot take writes now", whatever command or script got them:
# over maxmemory with noeviction, a replica (or a failed-over old master), a failing RDB save
# with stop-writes-on-bgsave-error. Redis refuses the first write of a script, so nothing was
# written; the right answer is the same as for an unreachable server.
_REFUSING_PREFIXES = ("OOM", "READONLY", "MISCONF", "NOREPLICAS", "MASTERDOWN")


def refusing(exc: BaseException) -> bool:
    """True for a Redis error reply that says the server cannot accept writes now."""
    if isinstance(exc, redis.exceptions.OutOfMemoryError | redis.exceptions.ReadOnlyError):
        return True
    if not isinstance(exc, redis.exceptions.ResponseError):
        return False
    text = str(exc)
    # An error raised inside a script arrives as "ERR Error running script ... : OOM ...".
    return text.startswith(_REFUSING_PREFIXES) or any(
        f" {prefix} " in text or f": {prefix}" in text for prefix in _REFUSING_PREFIXES
    )


@contextlib.contextmanager
def translated() -> Iterator[None]:
    """Turn 'Redis cannot serve' into StoreUnavailable (readiness flips on it)."""
    try:
        yield
    except StoreUnavailable:
        raise
    except _UNREACHABLE as exc:
        raise StoreUnavailable(f"redis unavailable: {exc!r}") from exc
    except redis.exceptions.ResponseError as exc:
        if refusing(exc):
            raise StoreUnavailable(f"redis refuses writes: {exc}") from exc
        raise


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
    text = to_text(epoch)
    return [
        StreamEntry(text, first + i, decode_envelope(envelope))
        for i, envelope in enumerate(envelopes)
    ]


def decode_entries(epoch: str, raw: Sequence[Any]) -> list[StreamEntry]:
    """XRANGE replies (`[id, [field, value, ...]]`) as stream entries of one epoch."""
    entries = []
    for entry_id, fields in raw:
        data = fields[fields.index(b"d") + 1]
        seq = int(entry_id.split(b"-", 1)[0])
        entries.append(StreamEntry(epoch, seq, decode_envelope(data)))
    return entries


def ms(seconds: float) -> int:
    return max(1, math.ceil(seconds * 1000))


def to_text(value: bytes | str) -> str:
    return value.decode() if isinstance(value, bytes) else value


# -- the part every role builds on ---------------------------------------------------------


class RedisBase:
    """The client, the key layout and one-time readiness, shared by the role mixins."""

    _client: Any
    _prefix: str
    _idle_ttl: int
    _cluster: bool

    def _key(self, agent: str, part: str) -> str:
        return f"{self._prefix}:{{{agent}}}:{part}"

    def _global(self, part: str) -> str:
        return f"{self._prefix}:{part}"

    def _channel(self, agent: str) -> bytes:
        return self._key(agent, "ch").encode()

    async def _ready(self) -> None:
        """Whatever must happen once before the first command (see `RedisStore._ready`)."""
        raise NotImplementedError


# -- batching ----------------------------------------------------------------------------


class Batcher:
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
