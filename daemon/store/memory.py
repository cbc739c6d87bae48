"""The embedded default store: one process, no dependencies, same contract as Redis.

State is kept as the same serialised bytes the Redis store keeps, so no caller can come to
rely on sharing live objects with the store. Methods never await between reading and writing,
which is what makes each of them atomic under asyncio.
"""

import secrets
import time
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import structlog

from daemon.store.base import (
    Envelope,
    Lease,
    Store,
    StreamEntry,
    StreamListener,
    Subscription,
    Versioned,
)

log = structlog.get_logger("switchboard.store.memory")


@dataclass
class _Stream:
    epoch: str
    seq: int = 0
    entries: deque[StreamEntry] = field(default_factory=deque)


@dataclass
class _LeaseRecord:
    holder: str
    epoch: int
    expires: float


class _MemorySubscription(Subscription):
    def __init__(self, listeners: list[StreamListener], listener: StreamListener) -> None:
        self._listeners = listeners
        self._listener = listener

    async def close(self) -> None:
        if self._listener in self._listeners:
            self._listeners.remove(self._listener)


class MemoryStore(Store):
    def __init__(
        self, *, stream_max: int = 1000, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self._stream_max = stream_max
        self._clock = clock
        self._agents: dict[str, Versioned] = {}
        self._streams: dict[str, _Stream] = {}
        self._listeners: dict[str, list[StreamListener]] = {}
        self._leases: dict[tuple[str, str], _LeaseRecord] = {}
        self._fences: dict[tuple[str, str], int] = {}
        self._journals: dict[tuple[str, str], dict[str, Any]] = {}
        self._workflows: set[tuple[str, str]] = set()
        self._tats: dict[str, float] = {}
        self._nodes: dict[str, float] = {}

    async def load_agent(self, agent: str) -> Versioned:
        return self._agents.get(agent, Versioned(0, None))

    async def commit_agent(
        self, agent: str, expected_version: int, state: bytes, envelopes: Sequence[Envelope]
    ) -> list[StreamEntry] | None:
        current = self._agents.get(agent, Versioned(0, None))
        if current.version != expected_version:
            return None
        self._agents[agent] = Versioned(current.version + 1, state)
        stream = self._stream(agent)
        added = []
        for envelope in envelopes:
            stream.seq += 1
            entry = StreamEntry(stream.epoch, stream.seq, envelope)
            stream.entries.append(entry)
            added.append(entry)
        while len(stream.entries) > self._stream_max:
            stream.entries.popleft()
        for entry in added:
            for listener in list(self._listeners.get(agent, ())):
                try:
                    listener(entry)
                except Exception:  # the commit happened; one bad reader must not undo that
                    log.exception("stream_listener_failed", agent=agent, seq=entry.seq)
        return added

    def _stream(self, agent: str) -> _Stream:
        stream = self._streams.get(agent)
        if stream is None:
            stream = self._streams[agent] = _Stream(epoch=secrets.token_hex(8))
        return stream

    async def stream_head(self, agent: str) -> tuple[str, int]:
        stream = self._stream(agent)
        return stream.epoch, stream.seq

    async def read_stream(self, agent: str, epoch: str, after: int) -> list[StreamEntry] | None:
        stream = self._stream(agent)
        if epoch != stream.epoch or after > stream.seq:
            return None
        if after == stream.seq:
            return []
        if not stream.entries or stream.entries[0].seq > after + 1:
            return None
        return [e for e in stream.entries if e.seq > after]

    async def subscribe(self, agent: str, listener: StreamListener) -> Subscription:
        listeners = self._listeners.setdefault(agent, [])
        listeners.append(listener)
        return _MemorySubscription(listeners, listener)

    async def claim_lease(self, agent: str, name: str, holder: str, ttl: float) -> Lease | None:
        key, now = (agent, name), self._clock()
        record = self._leases.get(key)
        if record is not None and record.expires > now and record.holder != holder:
            return None
        if record is not None and record.expires > now:
            record.expires = now + ttl  # the same holder claiming again keeps its epoch
            return Lease(name, agent, holder, record.epoch)
        epoch = self._fences.get(key, 0) + 1
        self._fences[key] = epoch
        self._leases[key] = _LeaseRecord(holder, epoch, now + ttl)
        return Lease(name, agent, holder, epoch)

    def _current(self, lease: Lease) -> _LeaseRecord | None:
        record = self._leases.get((lease.agent, lease.name))
        if record is None or record.expires <= self._clock():
            return None
        if record.holder != lease.holder or record.epoch != lease.epoch:
            return None
        return record

    async def renew_lease(self, lease: Lease, ttl: float) -> bool:
        record = self._current(lease)
        if record is None:
            return False
        record.expires = self._clock() + ttl
        return True

    async def release_lease(self, lease: Lease) -> None:
        if self._current(lease) is not None:
            del self._leases[(lease.agent, lease.name)]

    async def lease_is_current(self, lease: Lease) -> bool:
        return self._current(lease) is not None

    async def journal_read(self, agent: str, contact: str) -> dict[str, Any]:
        return dict(self._journals.get((agent, contact), {}))

    async def journal_write(self, lease: Lease, contact: str, step: str, result: Any) -> bool:
        if self._current(lease) is None:
            return False
        self._journals.setdefault((lease.agent, contact), {})[step] = result
        return True

    async def workflows_add(self, agent: str, contact: str) -> None:
        self._workflows.add((agent, contact))

    async def workflows_done(self, agent: str, contact: str) -> None:
        self._workflows.discard((agent, contact))

    async def workflows_list(self) -> list[tuple[str, str]]:
        return sorted(self._workflows)

    async def rate_acquire(self, key: str, per_minute: int, burst: int) -> float:
        """GCRA: one theoretical arrival time per key, the same algorithm as the Lua script."""
        now, interval = self._clock(), 60.0 / per_minute
        tat = max(self._tats.get(key, now), now)
        allow_at = tat - interval * burst
        if now < allow_at:
            return allow_at - now
        self._tats[key] = tat + interval
        return 0.0

    async def heartbeat(self, node: str, ttl: float) -> None:
        self._nodes[node] = self._clock() + ttl

    async def live_nodes(self) -> frozenset[str]:
        now = self._clock()
        return frozenset(n for n, until in self._nodes.items() if until > now)

    async def ping(self) -> None:
        return None

    async def close(self) -> None:
        self._listeners.clear()
