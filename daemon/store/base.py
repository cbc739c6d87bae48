"""The Store: every piece of shared state, and exactly which operations are atomic.

Each operation below is one round trip and atomic in every implementation (a Lua script in
Redis, a plain synchronous section in memory), so a daemon that dies between two operations
never leaves half of one behind. All keys of an agent live together (`{agent}` hash tag in
Redis) so every atomic operation touches a single Redis Cluster slot.

Operations:
- `load_agent` / `commit_agent`: the agent aggregate (see `daemon.core.state`) under
  optimistic concurrency. `commit_agent` succeeds only if the stored version is still the
  one the caller loaded; in the same step it appends the caller's envelopes to the agent's
  stream, each getting the next seq, and notifies every node's subscribers. On a version
  conflict nothing is written and the caller reloads and re-applies its event.
- `read_stream`: entries after a position, all or nothing. `None` means the gap cannot be
  recovered (the stream's epoch changed because it was lost, or the entries were trimmed).
- `claim_lease` / `renew_lease` / `release_lease` / `lease_is_current`: fencing leases. A
  claim succeeds if the lease is free or expired and hands out a fencing epoch that only
  grows; renew and release compare holder and epoch, so a holder that was paused past its
  lease can neither extend nor drop someone else's.
- `journal_read` / `journal_write`: the workflow journal of one contact. A write carries the
  writer's lease and is refused unless that lease is still current: a stale runner can't
  record anything, and it checks `lease_is_current` before every Zendesk write.
- `workflows_*`: the set of contacts whose workflow is not finished, scanned by every node so
  that a contact whose node died is picked up by another.
- `rate_acquire`: a shared limiter (GCRA) so all nodes together stay inside the Zendesk
  account's request budget.
- `heartbeat` / `live_nodes`: node liveness, so tabs held by a dead node count as gone.
"""

import abc
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any


class StoreUnavailable(Exception):
    """The backing store cannot be reached; the caller should refuse work and retry later."""


@dataclass(frozen=True, slots=True)
class Versioned:
    version: int  # 0: the agent has never been stored
    state: bytes | None


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
class Lease:
    name: str  # what is leased, e.g. "runner:<contact>"
    agent: str  # whose keys it lives with
    holder: str
    epoch: int  # fencing token: strictly greater than any earlier holder's


StreamListener = Callable[[StreamEntry], None]


class Subscription(abc.ABC):
    @abc.abstractmethod
    async def close(self) -> None: ...


class Store(abc.ABC):
    # -- agent aggregate and stream ------------------------------------------------------

    @abc.abstractmethod
    async def load_agent(self, agent: str) -> Versioned: ...

    @abc.abstractmethod
    async def commit_agent(
        self, agent: str, expected_version: int, state: bytes, envelopes: Sequence[Envelope]
    ) -> list[StreamEntry] | None:
        """Write the state and append the envelopes if the version still matches, else None."""

    @abc.abstractmethod
    async def stream_head(self, agent: str) -> tuple[str, int]:
        """(epoch, last seq) of the agent's stream, creating the epoch if there is none."""

    @abc.abstractmethod
    async def read_stream(self, agent: str, epoch: str, after: int) -> list[StreamEntry] | None:
        """Entries with seq > after in that epoch, or None if they cannot all be returned."""

    @abc.abstractmethod
    async def subscribe(self, agent: str, listener: StreamListener) -> Subscription:
        """Call `listener` for each entry committed to the agent's stream by any node.

        Delivery is at-least-once and may be out of order across nodes: readers track seq and
        fill gaps with `read_stream`.
        """

    # -- leases and the workflow journal -------------------------------------------------

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

    @abc.abstractmethod
    async def workflows_add(self, agent: str, contact: str) -> None: ...

    @abc.abstractmethod
    async def workflows_done(self, agent: str, contact: str) -> None: ...

    @abc.abstractmethod
    async def workflows_list(self) -> list[tuple[str, str]]: ...

    # -- shared rate limit, nodes, health ------------------------------------------------

    @abc.abstractmethod
    async def rate_acquire(self, key: str, per_minute: int, burst: int) -> float:
        """Take one request slot; returns 0 if granted, else seconds to wait before retrying."""

    @abc.abstractmethod
    async def heartbeat(self, node: str, ttl: float) -> None: ...

    @abc.abstractmethod
    async def live_nodes(self) -> frozenset[str]: ...

    @abc.abstractmethod
    async def ping(self) -> None:
        """Raise StoreUnavailable if the store cannot serve."""

    @abc.abstractmethod
    async def close(self) -> None: ...
