"""The embedded default store: one process, no dependencies, same contract as Redis.

State is kept as the same serialised bytes the Redis store keeps (a head and one entry per
contact), so no caller can come to rely on sharing live objects with the store. Methods never
await between reading and writing, which is what makes each of them atomic under asyncio.

Everything of one agent lives in one `_AgentRecord`, so forgetting an agent is one dict
deletion. Records expire after `idle_ttl` without a write or a head read, as the Redis keys do
(an agent with a live subscription or a live lease is kept: it is evidently not idle). Expiry
is amortised: records sit in least-recently-touched order and each touch pops the expired
ones from the front, so memory follows the agents in use, not every agent ever seen.
"""

import asyncio
import heapq
import secrets
import time
from collections import OrderedDict, deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import structlog

from daemon.core.writes import StateWrite
from daemon.store.base import (
    NEVER_STORED,
    Committed,
    Envelope,
    GapListener,
    Lease,
    Resumed,
    Revision,
    Store,
    StreamEntry,
    StreamListener,
    Subscription,
    Versioned,
)

log = structlog.get_logger("switchboard.store.memory")

RECENT_COMMITS = 16  # how many commit ids an agent remembers (the Redis store keeps as many)


@dataclass
class _LeaseRecord:
    holder: str
    epoch: int
    expires: float


@dataclass
class _AgentRecord:
    epoch: str
    touched: float
    version: int = 0
    head: bytes | None = None
    contacts: dict[str, bytes] = field(default_factory=dict)
    seq: int = 0
    entries: deque[tuple[float, StreamEntry]] = field(default_factory=deque)  # (appended, entry)
    commits: OrderedDict[str, Committed] = field(default_factory=OrderedDict)
    listeners: list[StreamListener] = field(default_factory=list)
    leases: dict[str, _LeaseRecord] = field(default_factory=dict)
    fences: dict[str, int] = field(default_factory=dict)
    journals: dict[str, dict[str, Any]] = field(default_factory=dict)

    @property
    def revision(self) -> Revision:
        """The stored state's revision: the record (and its epoch) lives exactly as long as
        the state, so a state written in this record was written in this epoch."""
        return Revision(self.epoch, self.version) if self.version else NEVER_STORED


class _MemorySubscription(Subscription):
    def __init__(self, store: "MemoryStore", agent: str, listener: StreamListener) -> None:
        self._store = store
        self._agent = agent
        self._listener: StreamListener | None = listener

    async def close(self) -> None:
        if self._listener is not None:
            self._store._unsubscribe(self._agent, self._listener)
            self._listener = None


class MemoryStore(Store):
    def __init__(
        self,
        *,
        stream_max: int = 1000,
        stream_max_age: float = 3600.0,
        idle_ttl: float = 24 * 3600,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._stream_max = stream_max
        self._stream_max_age = stream_max_age
        self._idle_ttl = idle_ttl
        self._clock = clock
        self._agents: OrderedDict[str, _AgentRecord] = OrderedDict()
        self._capacity = 0  # the most agents held since the map was last rebuilt
        self._workflows: set[tuple[str, str]] = set()
        self._tats: dict[str, float] = {}
        self._nodes: dict[str, float] = {}
        self._used: dict[str, float] = {}  # key -> until
        self._used_order: list[tuple[float, str]] = []  # heap of (until, key)

    # -- records and expiry ----------------------------------------------------------------

    def _record(self, agent: str) -> _AgentRecord:
        """The agent's record, created if missing, marked as touched now."""
        now = self._clock()
        self._expire(now)
        record = self._agents.get(agent)
        if record is None:
            record = self._agents[agent] = _AgentRecord(epoch=secrets.token_hex(8), touched=now)
            self._capacity = max(self._capacity, len(self._agents))
        else:
            record.touched = now
            self._agents.move_to_end(agent)
        return record

    def _peek(self, agent: str) -> _AgentRecord | None:
        """The agent's record if it exists, without touching it (reads don't keep it alive)."""
        self._expire(self._clock())
        return self._agents.get(agent)

    def _expire(self, now: float) -> None:
        deadline = now - self._idle_ttl
        while self._agents:
            agent, record = next(iter(self._agents.items()))
            if record.touched > deadline:
                break
            if record.listeners or any(lease.expires > now for lease in record.leases.values()):
                record.touched = now  # in use: not idle, whatever its last write was
                self._agents.move_to_end(agent)
                continue
            del self._agents[agent]
        if self._capacity > 1024 and len(self._agents) < self._capacity // 4:
            # A dict never gives back its table when entries are deleted: after a crowd has
            # come and gone, copy what is left into a table of the right size.
            self._agents = OrderedDict(self._agents)
            self._capacity = len(self._agents)

    def sizes(self) -> dict[str, int]:
        """How many entries each internal map holds (tests assert memory stays bounded)."""
        return {
            "agents": len(self._agents),
            "workflows": len(self._workflows),
            "rates": len(self._tats),
            "nodes": len(self._nodes),
        }

    # -- agent log ---------------------------------------------------------------------------

    async def load_agent(self, agent: str) -> Versioned:
        record = self._peek(agent)
        if record is None:
            return Versioned(NEVER_STORED, None)
        return Versioned(record.revision, record.head, dict(record.contacts))

    async def load_revision(self, agent: str) -> Revision:
        record = self._peek(agent)
        return NEVER_STORED if record is None else record.revision

    async def commit_agent(
        self,
        agent: str,
        expected: Revision,
        state: StateWrite,
        envelopes: Sequence[Envelope],
        *,
        commit_id: str | None = None,
    ) -> Committed | None:
        record = self._record(agent)
        if commit_id is not None and commit_id in record.commits:
            first = record.commits[commit_id]
            return Committed(first.revision, list(first.entries))
        if record.revision != expected:
            return None
        record.version += 1
        record.head = state.head
        record.contacts.update(state.put)
        for contact in state.dropped:
            record.contacts.pop(contact, None)
        added = []
        now = self._clock()
        for envelope in envelopes:
            record.seq += 1
            entry = StreamEntry(record.epoch, record.seq, envelope)
            record.entries.append((now, entry))
            added.append(entry)
        entries, cutoff = record.entries, now - self._stream_max_age
        while len(entries) > self._stream_max or (added and entries[0][0] < cutoff):
            entries.popleft()
        committed = Committed(record.revision, added)
        if commit_id is not None:
            record.commits[commit_id] = committed
            if len(record.commits) > RECENT_COMMITS:
                record.commits.popitem(last=False)
        if added and record.listeners:
            # Published after the commit returns, as a Redis publication arrives: the
            # committing hub hands its own entries to its tabs and caches the state first, so
            # its own publication is then a known copy, not news from elsewhere.
            asyncio.get_running_loop().call_soon(self._publish, agent, record, added)
        return Committed(committed.revision, list(added))

    @staticmethod
    def _publish(agent: str, record: _AgentRecord, entries: list[StreamEntry]) -> None:
        for entry in entries:
            for listener in list(record.listeners):
                try:
                    listener(entry)
                except Exception:  # the commit happened; one bad reader must not undo that
                    log.exception("stream_listener_failed", agent=agent, seq=entry.seq)

    async def stream_head(self, agent: str) -> tuple[str, int]:
        record = self._record(agent)
        return record.epoch, record.seq

    async def stream_heads(self, agents: Sequence[str]) -> list[tuple[str, int] | None]:
        heads: list[tuple[str, int] | None] = []
        for agent in agents:
            record = self._peek(agent)
            heads.append(None if record is None else (record.epoch, record.seq))
        return heads

    async def read_stream(self, agent: str, epoch: str, after: int) -> list[StreamEntry] | None:
        record = self._peek(agent)
        if record is None or epoch != record.epoch or after < 0 or after > record.seq:
            return None
        if after == record.seq:
            return []
        if not record.entries or record.entries[0][1].seq > after + 1:
            return None
        return [e for _, e in record.entries if e.seq > after]

    async def resume(self, agent: str, epoch: str | None, after: int) -> Resumed:
        head_epoch, head = await self.stream_head(agent)
        missed = None if epoch is None else await self.read_stream(agent, epoch, after)
        return Resumed(head_epoch, head, missed)

    async def subscribe(
        self, agent: str, listener: StreamListener, *, on_gap: GapListener | None = None
    ) -> Subscription:
        """In-process delivery loses nothing, so `on_gap` is never called."""
        self._record(agent).listeners.append(listener)
        return _MemorySubscription(self, agent, listener)

    def _unsubscribe(self, agent: str, listener: StreamListener) -> None:
        record = self._agents.get(agent)
        if record is not None and listener in record.listeners:
            record.listeners.remove(listener)

    def subscriptions(self, agent: str) -> int:
        record = self._agents.get(agent)
        return 0 if record is None else len(record.listeners)

    # -- leases and the journal ---------------------------------------------------------------

    async def claim_lease(self, agent: str, name: str, holder: str, ttl: float) -> Lease | None:
        record, now = self._record(agent), self._clock()
        lease = record.leases.get(name)
        if lease is not None and lease.expires > now and lease.holder != holder:
            return None
        if lease is not None and lease.expires > now:
            lease.expires = now + ttl  # the same holder claiming again keeps its epoch
            return Lease(name, agent, holder, lease.epoch)
        epoch = record.fences.get(name, 0) + 1
        record.fences[name] = epoch
        record.leases[name] = _LeaseRecord(holder, epoch, now + ttl)
        return Lease(name, agent, holder, epoch)

    def _current(self, lease: Lease) -> _LeaseRecord | None:
        record = self._peek(lease.agent)
        held = None if record is None else record.leases.get(lease.name)
        if held is None or held.expires <= self._clock():
            return None
        if held.holder != lease.holder or held.epoch != lease.epoch:
            return None
        return held

    async def renew_lease(self, lease: Lease, ttl: float) -> bool:
        held = self._current(lease)
        if held is None:
            return False
        held.expires = self._clock() + ttl
        return True

    async def release_lease(self, lease: Lease) -> None:
        if self._current(lease) is not None:
            del self._record(lease.agent).leases[lease.name]

    async def lease_is_current(self, lease: Lease) -> bool:
        return self._current(lease) is not None

    async def journal_read(self, agent: str, contact: str) -> dict[str, Any]:
        record = self._peek(agent)
        return {} if record is None else dict(record.journals.get(contact, {}))

    async def journal_write(self, lease: Lease, contact: str, step: str, result: Any) -> bool:
        if self._current(lease) is None:
            return False
        self._record(lease.agent).journals.setdefault(contact, {})[step] = result
        return True

    # -- workflow index, rate limit, membership ---------------------------------------------

    async def workflows_add(self, agent: str, contact: str) -> None:
        self._workflows.add((agent, contact))

    async def workflows_done(self, agent: str, contact: str) -> None:
        self._workflows.discard((agent, contact))

    async def workflows_list(self) -> list[tuple[str, str]]:
        return sorted(self._workflows)

    async def rate_acquire(self, key: str, per_minute: int, burst: int) -> float:
        """GCRA: one theoretical arrival time per key, the same algorithm as the Lua script.

        A key whose arrival time has passed holds no information (it would be reset to now),
        so it is dropped, as the Redis key expires.
        """
        now, interval = self._clock(), 60.0 / per_minute
        for stale in [k for k, tat in self._tats.items() if tat <= now and k != key]:
            del self._tats[stale]
        tat = max(self._tats.get(key, now), now)
        allow_at = tat - interval * burst
        if now < allow_at:
            return allow_at - now
        self._tats[key] = tat + interval
        return 0.0

    async def heartbeat(self, node: str, ttl: float) -> None:
        now = self._clock()
        for gone in [n for n, until in self._nodes.items() if until <= now]:
            del self._nodes[gone]
        self._nodes[node] = now + ttl

    async def live_nodes(self) -> frozenset[str]:
        now = self._clock()
        return frozenset(n for n, until in self._nodes.items() if until > now)

    async def use_once(self, key: str, ttl: float) -> bool:
        """Expired keys are dropped first (earliest expiry first, as Redis expires them), so
        what is held is only what was used within its ttl."""
        now = self._clock()
        while self._used_order and self._used_order[0][0] <= now:
            del self._used[heapq.heappop(self._used_order)[1]]
        if key in self._used:
            return False
        self._used[key] = now + ttl
        heapq.heappush(self._used_order, (now + ttl, key))
        return True

    async def ping(self) -> None:
        return None

    async def close(self) -> None:
        for record in self._agents.values():
            record.listeners.clear()
