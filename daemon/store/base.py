"""The Store: every piece of shared state, as small role interfaces with honest contracts.

Modelled on Centrifuge, which splits its engine into a `Broker` (history and publications) and a
`PresenceManager`: each role says exactly what it promises, so a caller never relies on more
than an implementation gives. `Store` is all the roles together, which is what the daemon
opens; a component that needs one role should name that role in its signature.

Common to every role: each operation is one round trip and atomic in every implementation (a
Lua script in Redis, a synchronous section in memory), so a daemon that dies between two
operations never leaves half of one behind. All keys of an agent live together (`{agent}` hash
tag in Redis) so every atomic operation touches a single Redis Cluster slot. Any failure of
the backing store to serve (unreachable, timed out, out of memory, read-only replica, failing
to persist) raises `StoreUnavailable` *before* anything is written: the caller refuses work
(readiness false, new tabs 1013) and retries later.

Roles:
- `AgentLog`: the agent aggregate under optimistic concurrency, its stream of envelopes, and
  the (lossy) notification that the stream grew. See its docstring for delivery semantics.
- `LeaseJournal`: fencing leases and the per-contact workflow journal written under them.
- `WorkflowIndex`: the set of contacts whose workflow is not finished.
- `RateLimiter`: one shared request budget across nodes (GCRA).
- `Membership`: node liveness.
- `SingleUse`: keys that can be used once across all nodes (one-time links).

Retention: everything of an agent (aggregate, stream, journals, fencing counters) expires after
an idle period (24 h by default) in every implementation, as Redis keys with a TTL do. An agent
that comes back after that starts afresh, with a new stream epoch.
"""

import abc
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from daemon.core.writes import StateWrite


class StoreUnavailable(Exception):
    """The store cannot serve now (down, full, read-only); nothing was written. Retry later."""


class StoreMisconfigured(Exception):
    """The store is set up so that it would lose data silently; refuse to start on it."""


@dataclass(frozen=True, slots=True)
class Revision:
    """Which write of an agent's state a reader saw: its version and the stream epoch it was
    written in. Versions restart at 1 when the store loses the agent (Redis restarted empty,
    the agent expired); the epoch does not come back, so a revision read before the loss never
    matches a state written after it, whatever the version count has reached by then."""

    epoch: str | None  # None: never stored (or stored before revisions carried an epoch)
    version: int  # 0: never stored


NEVER_STORED = Revision(None, 0)


@dataclass(frozen=True, slots=True)
class Versioned:
    """A stored state: its revision, head and every contact entry (None and empty if never
    stored)."""

    revision: Revision
    head: bytes | None
    contacts: Mapping[str, bytes] = field(default_factory=dict)

    @property
    def version(self) -> int:
        return self.revision.version


@dataclass(frozen=True, slots=True)
class Envelope:
    """A message for an agent's stream, and which of the agent's tabs it is for."""

    message: dict[str, Any]  # a protocol StreamedMessage, dumped to JSON-compatible data
    to_tab: str | None = None
    to_role: str | None = None


@dataclass(frozen=True, slots=True)
class StreamEntry:
    epoch: str
    seq: int
    envelope: Envelope


@dataclass(frozen=True, slots=True)
class Committed:
    """What a successful commit wrote: the new revision and the stream entries it appended."""

    revision: Revision
    entries: list[StreamEntry]


@dataclass(frozen=True, slots=True)
class Resumed:
    """Where an agent's stream stands, and what a reader missed since its position."""

    epoch: str
    head: int
    missed: list[StreamEntry] | None  # None: not recoverable (new epoch or trimmed)


@dataclass(frozen=True, slots=True)
class Lease:
    name: str  # what is leased, e.g. "runner:<contact>"
    agent: str  # whose keys it lives with
    holder: str
    epoch: int  # fencing token: strictly greater than any earlier holder's


StreamListener = Callable[[StreamEntry], None]
GapListener = Callable[[], None]


class Subscription(abc.ABC):
    @abc.abstractmethod
    async def close(self) -> None:
        """Stop delivery to this listener; idempotent."""


class AgentLog(abc.ABC):
    """The agent aggregate, its stream, and notification of new entries.

    Durability: a successful `commit_agent` has checked the revision, written the state's head,
    put and dropped its contact entries, appended every envelope (each with the next seq of
    the stream's current epoch) and recorded its commit id in one atomic step. The state is
    kept per contact, so a commit writes only the contacts it changed (`StateWrite`) and a
    load returns the head with every entry. Concurrency is optimistic on the whole
    `Revision`: a commit applies only on top of exactly the state it was built from, which a
    version alone cannot tell after the store lost the agent; that is also what makes a delta
    against that state sound.

    The stream keeps the most recent entries: at most `stream_max` of them, and none appended
    more than `stream_max_age` seconds before the latest append (both trimmed on append, oldest
    first; ages by the clock of the process that commits, and Redis drops at most 100 entries
    per append; an agent that appends nothing keeps what it has until its idle expiry).
    `read_stream` is all-or-nothing over what is kept: a position in the trimmed part gets
    None, and the reader a snapshot.

    Delivery: `subscribe` is a *hint*, at-most-once. Redis pub/sub drops messages when a
    connection breaks, a node restarts, a slot moves or a client is killed; the memory store
    loses nothing but the contract does not promise that. A listener may see an entry late, out
    of order across nodes, twice, or never. Readers therefore track (epoch, seq), fill any gap
    they notice with `read_stream`, and compare with `stream_head` on resubscribe (`on_gap`) and
    periodically, which is what catches a lost *last* message: the stream is the truth, the
    notification only saves a poll.
    """

    @abc.abstractmethod
    async def load_agent(self, agent: str) -> Versioned:
        """The agent's revision, head and every contact entry, read together."""

    @abc.abstractmethod
    async def load_revision(self, agent: str) -> Revision:
        """The revision `load_agent` would return now, without the state: how a reader that
        holds a state checks that it is still the stored one. One small read, whatever the
        agent has accumulated."""

    @abc.abstractmethod
    async def commit_agent(
        self,
        agent: str,
        expected: Revision,
        state: StateWrite,
        envelopes: Sequence[Envelope],
        *,
        commit_id: str | None = None,
    ) -> Committed | None:
        """Write the state (replace the head, put and drop the contact entries) and append the
        envelopes if the stored revision is still `expected` (epoch and version), else None and
        nothing written. The new revision has the next version and the stream's current epoch
        (created if the stream is gone).

        Idempotent per `commit_id` (a fresh random id if not given): the store remembers the
        ids of the agent's recent commits, and a commit whose id it has already applied —
        typically the client library re-sending after the reply was lost — writes nothing and
        returns the entries that the first attempt appended, as if it were that reply.
        """

    @abc.abstractmethod
    async def stream_head(self, agent: str) -> tuple[str, int]:
        """(epoch, last seq) of the agent's stream, creating the epoch if there is none."""

    @abc.abstractmethod
    async def stream_heads(self, agents: Sequence[str]) -> list[tuple[str, int] | None]:
        """`stream_head` of many agents in as few round trips as possible, creating nothing:
        None for an agent whose stream is gone. Used by position sync, so it must be cheap."""

    @abc.abstractmethod
    async def read_stream(self, agent: str, epoch: str, after: int) -> list[StreamEntry] | None:
        """Entries with seq > after in that epoch, or None if they cannot all be returned."""

    @abc.abstractmethod
    async def resume(self, agent: str, epoch: str | None, after: int) -> Resumed:
        """`stream_head` and, if `epoch` is given, `read_stream(epoch, after)` in one step."""

    @abc.abstractmethod
    async def subscribe(
        self, agent: str, listener: StreamListener, *, on_gap: GapListener | None = None
    ) -> Subscription:
        """Call `listener` for entries committed to the agent's stream by any node (a hint,
        see the class docstring). Once this returns, the subscription is in place: an entry
        committed afterwards is delivered unless the channel loses it. `on_gap` is called
        whenever the subscription may have missed entries (it was re-established after a
        broken connection): the caller should compare positions with `stream_head`."""

    def subscriptions(self, agent: str) -> int:
        """How many listeners this store instance holds for the agent (introspection)."""
        return 0


class LeaseJournal(abc.ABC):
    """Fencing leases and the workflow journal of each contact.

    A claim succeeds if the lease is free or expired and hands out a fencing epoch that only
    grows (the counter outlives any lease); renew and release compare holder and epoch, so a
    holder that was paused past its lease can neither extend nor drop someone else's. A journal
    write carries the writer's lease and is refused unless that lease is still current: a stale
    runner can't record anything.
    """

    @abc.abstractmethod
    async def claim_lease(self, agent: str, name: str, holder: str, ttl: float) -> Lease | None: ...

    @abc.abstractmethod
    async def renew_lease(self, lease: Lease, ttl: float) -> bool: ...

    @abc.abstractmethod
    async def release_lease(self, lease: Lease) -> None: ...

    @abc.abstractmethod
    async def lease_is_current(self, lease: Lease) -> bool: ...

    @abc.abstractmethod
    async def journal_read(self, agent: str, contact: str) -> dict[str, Any]: ...

    @abc.abstractmethod
    async def journal_write(self, lease: Lease, contact: str, step: str, result: Any) -> bool:
        """Record a step's result under a current lease; False (and nothing written) if stale."""


class WorkflowIndex(abc.ABC):
    """Contacts whose workflow is not finished, scanned by every node so that a contact whose
    node died is picked up by another. Durable until `workflows_done`; no expiry."""

    @abc.abstractmethod
    async def workflows_add(self, agent: str, contact: str) -> None: ...

    @abc.abstractmethod
    async def workflows_done(self, agent: str, contact: str) -> None: ...

    @abc.abstractmethod
    async def workflows_list(self) -> list[tuple[str, str]]: ...


class RateLimiter(abc.ABC):
    """A shared limiter (GCRA) so all nodes together stay inside an API's request budget."""

    @abc.abstractmethod
    async def rate_acquire(self, key: str, per_minute: int, burst: int) -> float:
        """Take one request slot; returns 0 if granted, else seconds to wait before retrying."""


class Membership(abc.ABC):
    """Node liveness, so tabs held by a dead node count as gone."""

    @abc.abstractmethod
    async def heartbeat(self, node: str, ttl: float) -> None: ...

    @abc.abstractmethod
    async def live_nodes(self) -> frozenset[str]: ...


class SingleUse(abc.ABC):
    """Keys that every node together accepts once: what makes a one-time link one-time when
    any node behind a balancer may be the one that sees it used."""

    @abc.abstractmethod
    async def use_once(self, key: str, ttl: float) -> bool:
        """Record `key` as used for `ttl` seconds if it is not recorded now: True if this call
        recorded it, False if it was already used (by any node, less than `ttl` ago). Atomic:
        of concurrent calls with one key, exactly one gets True.

        After `ttl` the key is forgotten and may be used again, so callers choose keys that
        cannot come back once their ttl is over (the id of a signed code that expires no later
        than that). Keys are global, not an agent's: give them a prefix saying what they are.
        """


class Store(AgentLog, LeaseJournal, WorkflowIndex, RateLimiter, Membership, SingleUse):
    """Every role over one backing store, plus health and lifecycle."""

    @abc.abstractmethod
    async def ping(self) -> None:
        """Raise StoreUnavailable if the store cannot serve."""

    @abc.abstractmethod
    async def close(self) -> None: ...
