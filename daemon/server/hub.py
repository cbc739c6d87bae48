"""The asyncio shell around the pure agent core, for every agent with tabs on this node.

`apply` is the only way state changes: load (or reuse the cached) aggregate, run the core,
commit with a version check, retry on conflict. Effects come out as stream envelopes (the
store delivers them to every node's subscribers) and workflow wake-ups. Everything that
touches time (ticks, node liveness) is here; the rules are in `daemon.core`.

There is no global sweep. Time-driven work runs from each agent's own deadline
(`next_deadline`, one timer per local agent, re-armed after every event); a change of the
live node set ticks only the agents with a tab on a node that came or went; a change
committed by another node re-reads that agent soon after. Loops over many agents yield to
the event loop every `YIELD_EVERY` agents, so no background job stalls the tabs.
"""

import asyncio
import contextlib
import time
from collections.abc import Callable, Coroutine
from dataclasses import dataclass
from typing import Any, Protocol

import structlog

from daemon.core.agent import handle, new_agent, next_deadline
from daemon.core.effects import Outcome, Publish, WakeWorkflow
from daemon.core.events import AgentEvent, Context, Rules, TabClosed, Tick
from daemon.core.state import AgentState
from daemon.server.metrics import Metrics
from daemon.store.base import Envelope, Store, StreamEntry, Subscription
from protocol.errors import ErrorCode
from protocol.messages import Notify

log = structlog.get_logger("switchboard.hub")

MAX_COMMIT_ATTEMPTS = 16
YIELD_EVERY = 200  # agents handled between two yields to the event loop
# A change another node committed is picked up (deadlines re-read, tabs reconciled) this
# long after it is seen, so a burst of remote events costs one re-read per agent.
REMOTE_REFRESH_SECONDS = 0.5
TICK_RETRY_SECONDS = 1.0  # a tick that failed (store down) is tried again after this
BOUND_CODES = frozenset(
    {
        ErrorCode.TOO_MANY_CONTACTS,
        ErrorCode.TOO_MANY_TABS,
        ErrorCode.TOO_MANY_ATTRIBUTES,
        ErrorCode.TOO_MANY_CHAT_LINES,
        ErrorCode.STATE_TOO_LARGE,
    }
)


class StoreContention(Exception):
    """Too many concurrent writers to one agent; the event was not applied."""


class Sink(Protocol):
    """A local tab connection, as the hub sees it."""

    tab_id: str
    conn_id: str

    async def supersede(self) -> None: ...

    def deliver(self, entry: StreamEntry) -> None: ...

    def resync(self) -> None: ...

    async def tell(self, notice: Notify) -> None: ...

    async def reregister(self) -> None: ...


WakeCallback = Callable[[str, str], None]


@dataclass(frozen=True, slots=True)
class _Cached:
    """An agent's state as this node last saw it, and the newest stream entry it reflects."""

    version: int
    state: AgentState
    epoch: str | None = None
    seq: int | None = None  # None: unknown (loaded, not committed here), so not trusted


class AgentHub:
    def __init__(
        self,
        store: Store,
        rules: Rules,
        node_id: str,
        metrics: Metrics,
        *,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.store = store
        self.rules = rules
        self.node_id = node_id
        self.metrics = metrics
        self.clock = clock
        self._live_nodes: frozenset[str] = frozenset({node_id})
        self._live_here = self._live_nodes  # the live set, always with this node in it
        self.on_wake: WakeCallback | None = None
        self._cache: dict[str, _Cached] = {}
        self._locks: dict[str, asyncio.Lock] = {}
        self._sinks: dict[str, set[Sink]] = {}
        self._subscriptions: dict[str, Subscription] = {}
        self._timers: dict[str, asyncio.TimerHandle] = {}
        self._due: dict[str, float] = {}  # when each agent's timer fires (clock time)
        self._planned: dict[str, AgentState] = {}  # the state each timer was set from
        self._open: dict[str, int] = {}  # unfinished contacts per local agent, last seen
        self._open_total = 0
        self._suspect: set[str] = set()  # agents whose stored tabs disagree with our sockets
        self._background: set[asyncio.Task[None]] = set()
        self._delivered: dict[str, tuple[str, int]] = {}  # newest entry given to local tabs
        self._unrecorded_closes: list[tuple[str, TabClosed]] = []

    @property
    def live_nodes(self) -> frozenset[str]:
        return self._live_nodes

    @live_nodes.setter
    def live_nodes(self, nodes: frozenset[str]) -> None:
        """Take the store's live set; agents with tabs on a node that came or went tick."""
        changed = nodes ^ self._live_nodes
        self._live_nodes = nodes
        self._live_here = nodes | {self.node_id}
        if changed:
            self._planned.clear()  # node timeouts in every deadline depend on the live set
            self._spawn(self._nodes_changed(changed))

    def _spawn(self, job: Coroutine[Any, Any, None]) -> None:
        task = asyncio.get_running_loop().create_task(job)
        self._background.add(task)
        task.add_done_callback(self._background.discard)

    # -- applying events ----------------------------------------------------------------

    def context(self) -> Context:
        return Context(now=self.clock(), live_nodes=self._live_here)

    async def load(self, agent: str, *, fresh: bool = False) -> tuple[int, AgentState]:
        """The agent's state: cached, or (fresh) re-read, decoding only if it changed."""
        cached = self._cache.get(agent)
        if cached is not None and not fresh:
            return cached.version, cached.state
        stored = await self.store.load_agent(agent)
        if cached is not None and cached.version == stored.version:
            return cached.version, cached.state
        state = (
            AgentState.from_bytes(stored.state)
            if stored.state is not None
            else new_agent(agent, self.rules)
        )
        self._remember(agent, _Cached(stored.version, state))
        return stored.version, state

    def _remember(self, agent: str, cached: _Cached) -> None:
        """Cache an agent's state and keep the open-contacts gauge in step (no walk).

        A state in which one of our sockets' tabs is gone, closed or held by another
        connection (a peer's stale view, a resume elsewhere) marks the agent for `sweep`.
        """
        self._cache[agent] = cached
        sinks = self._sinks.get(agent)
        if sinks:
            tabs = cached.state.tabs
            for sink in sinks:
                tab = tabs.get(sink.tab_id)
                if tab is None or not tab.connected or tab.conn_id != sink.conn_id:
                    self._suspect.add(agent)
                    break
            count = len(cached.state.open_ids)
            self._open_total += count - self._open.get(agent, 0)
            self._open[agent] = count
            self.metrics.contacts.set(self._open_total)

    def _attached(self, agent: str) -> None:
        """A local tab of `agent` exists: count its contacts and arm its deadline."""
        cached = self._cache.get(agent)
        if cached is None:
            self._arm(agent, self.clock() + REMOTE_REFRESH_SECONDS)
        elif agent not in self._open:
            self._remember(agent, cached)
            self._schedule_tick(agent, cached.state)

    def _forget(self, agent: str) -> None:
        """The agent has no tab here any more: drop its cache, timer and gauge share."""
        self._cache.pop(agent, None)
        self._suspect.discard(agent)
        self._open_total -= self._open.pop(agent, 0)
        self._planned.pop(agent, None)
        self._delivered.pop(agent, None)
        self.metrics.contacts.set(self._open_total)
        self._disarm(agent)

    async def apply(self, agent: str, event: AgentEvent) -> Outcome:
        """Apply one event atomically; on a version conflict reload and re-run the core.

        An event that changes nothing (a second tab reporting what the first already did)
        is decided on the cached state when the cache provably holds every stream entry
        committed so far: reports only ever add to a contact, so one already known to the
        cache is known to the store. Refusals are always re-decided on fresh state.
        """
        lock = self._locks.get(agent) or self._locks.setdefault(agent, asyncio.Lock())
        started = time.perf_counter()
        async with lock:
            fresh = False
            for _ in range(MAX_COMMIT_ATTEMPTS):
                version, state = await self.load(agent, fresh=fresh)
                cached = self._cache.get(agent)
                trusted = cached is not None and cached.seq is not None
                outcome = handle(state, event, self.context(), self.rules)
                unsure = outcome.refusal is not None or (not outcome.changed and not trusted)
                if not fresh and unsure:
                    stored = await self.store.load_agent(agent)
                    if stored.version != version:
                        fresh = True
                        continue
                if outcome.refusal is not None:
                    if outcome.refusal.code in BOUND_CODES:
                        self.metrics.bound_refusals.labels(bound=outcome.refusal.code.value).inc()
                    return outcome
                if not outcome.changed:
                    self._schedule_tick(agent, state)  # a tick may have fired a bit early
                    return outcome
                for effect in outcome.effects:
                    if isinstance(effect, WakeWorkflow) and effect.contact_id not in state.contacts:
                        # Durable before the contact exists, so a crash right after the
                        # commit still leaves the workflow for some node's scan to find.
                        await self.store.workflows_add(agent, effect.contact_id)
                publishes = [e for e in outcome.effects if isinstance(e, Publish)]
                envelopes = [
                    Envelope(
                        message=p.message.model_dump(mode="json", exclude_none=True),
                        to_tab=p.to_tab,
                        to_role=p.to_role,
                    )
                    for p in publishes
                ]
                blob = outcome.state.to_bytes()
                entries = await self.store.commit_agent(agent, version, blob, envelopes)
                if entries is None:
                    self.metrics.conflicts.inc()
                    fresh = True
                    continue
                last = entries[-1] if entries else None
                self.metrics.state_bytes.observe(len(blob))
                self._remember(
                    agent,
                    _Cached(
                        version + 1,
                        outcome.state,
                        last.epoch if last else (cached.epoch if cached else None),
                        last.seq if last else (cached.seq if cached else None),
                    ),
                )
                # Local tabs get our own entries now, not via the store's pub/sub: faster, and
                # nothing waits on a subscription that is still reconnecting. Each tab's cursor
                # drops the second copy.
                for entry in entries:
                    self._fan_out(agent, entry, ours=True)
                self._after_commit(agent, state, outcome)
                self.metrics.event_seconds.observe(time.perf_counter() - started)
                return outcome
        raise StoreContention(f"agent {agent}: {MAX_COMMIT_ATTEMPTS} conflicting commits")

    def _after_commit(self, agent: str, before: AgentState, outcome: Outcome) -> None:
        after = outcome.state
        for cid in outcome.touched:
            contact, old = after.contacts.get(cid), before.contacts.get(cid)
            if contact is None:
                continue  # pruned
            if old is None:
                self.metrics.elections.inc()
                log.info("contact_elected", agent=agent, contact=cid, owner=contact.owner_tab)
            elif old.owner_tab != contact.owner_tab and old.owner_tab is not None:
                if contact.owner_tab is not None:
                    self.metrics.failovers.inc()
                log.info(
                    "contact_owner_changed",
                    agent=agent,
                    contact=cid,
                    owner=contact.owner_tab,
                    previous=old.owner_tab,
                    epoch=contact.epoch,
                )
        self._schedule_tick(agent, after)
        if self.on_wake is not None:
            for effect in outcome.effects:
                if isinstance(effect, WakeWorkflow):
                    self.on_wake(agent, effect.contact_id)

    # -- time ----------------------------------------------------------------------------

    def _schedule_tick(self, agent: str, state: AgentState) -> None:
        """Arm the agent's timer for its next deadline (only local agents have one)."""
        if agent not in self._sinks:
            self._disarm(agent)
            return
        if self._planned.get(agent) is state:
            return
        self._planned[agent] = state
        deadline = next_deadline(state, self.rules, self._live_here)
        if deadline is not None:
            # A timer set for sooner stays: if it fires early, that tick changes nothing
            # and schedules again from the state it finds.
            self._arm(agent, deadline)

    def _arm(self, agent: str, when: float) -> None:
        """Tick the agent at `when` (clock time), unless its timer already fires sooner."""
        if agent in self._timers and self._due[agent] <= when:
            return
        self._disarm(agent)
        delay = max(0.0, when - self.clock()) + 0.01
        self._timers[agent] = asyncio.get_running_loop().call_later(delay, self._tick_soon, agent)
        self._due[agent] = when

    def _disarm(self, agent: str) -> None:
        timer = self._timers.pop(agent, None)
        self._due.pop(agent, None)
        if timer is not None:
            timer.cancel()

    def _tick_soon(self, agent: str) -> None:
        self._timers.pop(agent, None)
        self._due.pop(agent, None)
        self._planned.pop(agent, None)
        self._spawn(self.tick(agent))

    async def tick(self, agent: str) -> None:
        try:
            await self.apply(agent, Tick())
        except Exception as e:  # a tick must never kill the loop: try again a little later
            log.warning("tick_failed", agent=agent, error=repr(e))
            if agent in self._sinks:
                self._arm(agent, self.clock() + TICK_RETRY_SECONDS)

    async def _nodes_changed(self, nodes: frozenset[str]) -> None:
        """Tick the local agents with a tab on one of `nodes` (or whose state is unknown)."""
        for index, agent in enumerate(list(self._sinks)):
            if index % YIELD_EVERY == YIELD_EVERY - 1:
                await asyncio.sleep(0)
            cached = self._cache.get(agent)
            if cached is None or any(t.node in nodes for t in cached.state.tabs.values()):
                await self.tick(agent)

    def remember_close(self, agent: str, closed: TabClosed) -> None:
        """A close the store could not take now; `sweep` records it once the store is back."""
        self._unrecorded_closes.append((agent, closed))

    async def sweep(self) -> None:
        """Record closes the store missed, and reconcile the agents whose stored tabs
        disagree with our sockets (noticed whenever a state is cached).

        Costs the agents that need it, not every local agent: deadlines have their own
        timers.
        """
        pending, self._unrecorded_closes = self._unrecorded_closes, []
        for index, (agent, closed) in enumerate(pending):
            try:
                await self.apply(agent, closed)
            except Exception:
                self._unrecorded_closes.extend(pending[index:])
                return
        suspects, self._suspect = self._suspect, set()
        for index, agent in enumerate(suspects):
            if index % YIELD_EVERY == YIELD_EVERY - 1:
                await asyncio.sleep(0)
            await self._reconcile(agent)

    async def _reconcile(self, agent: str) -> None:
        """Make the stored tabs agree with the sockets this node really holds.

        A peer with a stale view of live nodes may have marked our tab gone: register it
        again. The tab may have resumed on another node since: this socket is the old one,
        so close it (4009) rather than let two connections act for one tab.
        """
        cached = self._cache.get(agent)
        if cached is None:
            return
        for sink in list(self._sinks.get(agent, ())):
            tab = cached.state.tabs.get(sink.tab_id)
            if tab is not None and tab.conn_id != sink.conn_id and tab.connected:
                await sink.supersede()
            elif tab is None or (tab.conn_id == sink.conn_id and not tab.connected):
                try:
                    await sink.reregister()
                except Exception as e:  # the next sweep tries again
                    log.warning("reregister_failed", agent=agent, tab=sink.tab_id, error=repr(e))
                    self._suspect.add(agent)

    # -- local tabs and delivery ----------------------------------------------------------

    async def attach(self, agent: str, sink: Sink) -> None:
        sinks = self._sinks.setdefault(agent, set())
        sinks.add(sink)
        self._attached(agent)
        if agent not in self._subscriptions:
            self._subscriptions[agent] = await self.store.subscribe(
                agent, lambda entry: self._fan_out(agent, entry)
            )

    async def detach(self, agent: str, sink: Sink) -> None:
        sinks = self._sinks.get(agent)
        if sinks is None:
            return
        sinks.discard(sink)
        if not sinks:
            del self._sinks[agent]
            self._forget(agent)
            subscription = self._subscriptions.pop(agent, None)
            if subscription is not None:
                with contextlib.suppress(Exception):
                    await subscription.close()

    async def supersede(self, agent: str, current: Sink) -> None:
        """Close older local connections of a tab that resumed on a newer one (4009)."""
        for sink in list(self._sinks.get(agent, ())):
            if sink is not current and sink.tab_id == current.tab_id:
                await sink.supersede()

    def forget_cache(self) -> None:
        """Drop every cached aggregate: after a store outage, versions may have restarted."""
        self._cache.clear()

    def _fan_out(self, agent: str, entry: StreamEntry, *, ours: bool = False) -> None:
        """Hand a stream entry to the agent's local tabs, once.

        Our own entries come twice (from the commit, `ours`, and from the store's pub/sub,
        before or after it): the second copy is not delivered. Nor is an older entry that
        arrives after a newer one was delivered: a tab that missed it sees the gap at the
        newer one and re-reads the stream.
        """
        delivered = self._delivered.get(agent)
        if delivered is not None and delivered[0] == entry.epoch and entry.seq <= delivered[1]:
            return
        cached = self._cache.get(agent)
        # An entry the cache does not reflect was committed by another node (or the store
        # lost its history and started again): the cache can no longer be trusted.
        if (
            not ours
            and cached is not None
            and (cached.seq is None or entry.epoch != cached.epoch or entry.seq > cached.seq)
        ):
            del self._cache[agent]
            if agent in self._sinks:  # re-read it soon: its deadlines may have changed
                self._arm(agent, self.clock() + REMOTE_REFRESH_SECONDS)
        sinks = self._sinks.get(agent)
        if sinks:
            self._delivered[agent] = (entry.epoch, entry.seq)
            for sink in list(sinks):
                sink.deliver(entry)

    def local_agents(self) -> dict[str, int]:
        """Agent id -> number of tab connections on this node."""
        return {agent: len(sinks) for agent, sinks in sorted(self._sinks.items())}

    def sinks(self) -> list[Sink]:
        return [sink for sinks in self._sinks.values() for sink in sinks]

    async def close(self) -> None:
        for agent in list(self._timers):
            self._disarm(agent)
        for task in list(self._background):
            task.cancel()
        for subscription in self._subscriptions.values():
            with contextlib.suppress(Exception):
                await subscription.close()
        self._subscriptions.clear()
