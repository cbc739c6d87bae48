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

Delivery does not trust pub/sub (DESIGN invariant 8). Per local agent the hub remembers the
newest stream position its tabs were handed (`_seen`); `sync_positions`, run on every
resubscription and periodically, compares it with the stream's head and fans out whatever was
missed from the stream itself. So a publication lost while the channel was down, even the last
one before a quiet spell, reaches the tabs within one sync interval.

Memory follows the local tabs: an agent's cache entry, lock, subscription, timer and position
exist while it has tabs here (or an event in flight) and are dropped with the last one.
"""

import asyncio
import contextlib
import time
from collections.abc import Callable, Coroutine, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

import structlog

from daemon.core.agent import absorbs, handle, new_agent, next_deadline
from daemon.core.confirmation import UNCONFIRMED
from daemon.core.effects import Outcome, Publish, Refusal, WakeWorkflow
from daemon.core.events import (
    AgentEvent,
    ChatReported,
    CommandIssued,
    ContactReported,
    Context,
    MediaReported,
    Rules,
    TabClosed,
    TabOpened,
    Tick,
)
from daemon.core.state import AgentState
from daemon.server.auth import AgentIdentity
from daemon.server.metrics import Metrics
from daemon.server.waits import Waiting
from daemon.store.base import (
    Envelope,
    Revision,
    Store,
    StoreUnavailable,
    StreamEntry,
    Subscription,
)
from protocol.errors import ErrorCode
from protocol.messages import Notify

log = structlog.get_logger("switchboard.hub")

MAX_COMMIT_ATTEMPTS = 16
YIELD_EVERY = 200  # agents handled between two yields to the event loop
# A change another node committed is picked up (deadlines re-read, tabs reconciled) this
# long after it is seen, so a burst of remote events costs one re-read per agent.
REMOTE_REFRESH_SECONDS = 0.5
TICK_RETRY_SECONDS = 1.0  # a tick that failed (store down) is tried again after this
SYNC_SECONDS = 3.0  # how often idle agents' positions are compared with their streams
SYNC_BATCH = 200  # agents per batched head read; the loop yields between batches
BOUND_CODES = frozenset(
    {
        ErrorCode.TOO_MANY_CONTACTS,
        ErrorCode.TOO_MANY_TABS,
        ErrorCode.TOO_MANY_ATTRIBUTES,
        ErrorCode.TOO_MANY_CHAT_LINES,
        ErrorCode.STATE_TOO_LARGE,
    }
)
CLOSED_MEANWHILE = Refusal(ErrorCode.NOT_OWNER, "the connection closed before it registered again")


#: Events a tab's connection sends as that tab (it names the tab, not the connection).
_FROM_TAB = (ContactReported, ChatReported, CommandIssued, MediaReported)


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


class ReportCheck(Protocol):
    """Looks at a tab's contact report before it is applied (`daemon.connect.confirm`)."""

    async def check(
        self, agent: str, identity: AgentIdentity, event: ContactReported
    ) -> ContactReported: ...


@dataclass(frozen=True, slots=True)
class _Cached:
    """An agent's state as this node last saw it, and the newest stream entry it reflects."""

    revision: Revision
    state: AgentState
    epoch: str | None = None
    seq: int | None = None  # None: unknown (loaded, not committed here), so not trusted


class _AgentLock:
    """Serialises one agent's events; exists only while someone holds or waits for it.

    An async context manager written out as a class: one made with `asynccontextmanager` is
    an async generator, which the event loop registers and unregisters (a weak set) every
    time, and this lock is taken for every frame a tab sends.
    """

    __slots__ = ("_agent", "_lock", "_locks", "_users")

    def __init__(self, locks: dict[str, "_AgentLock"], agent: str) -> None:
        self._locks = locks
        self._agent = agent
        self._lock = asyncio.Lock()
        self._users = 0

    @staticmethod
    def of(locks: dict[str, "_AgentLock"], agent: str) -> "_AgentLock":
        entry = locks.get(agent)
        if entry is None:
            entry = locks[agent] = _AgentLock(locks, agent)
        return entry

    async def __aenter__(self) -> None:
        """Wait for the agent's turn; the wait counts as the frame's (`waits`): it is the
        agent's earlier frames' time, charged to them."""
        self._users += 1
        try:
            with Waiting():
                await self._lock.acquire()
        except BaseException:
            self._leave()
            raise

    async def __aexit__(self, *_: object) -> None:
        self._lock.release()
        self._leave()

    def _leave(self) -> None:
        self._users -= 1
        if self._users == 0:
            del self._locks[self._agent]


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
        self._live_at: float | None = None  # when the live set was last taken (clock time)
        self.on_wake: WakeCallback | None = None
        # Contacts confirmed by Amazon Connect, where an instance is configured.
        self.report_check: ReportCheck | None = None
        self._cache: dict[str, _Cached] = {}
        self._locks: dict[str, _AgentLock] = {}
        self._sinks: dict[str, dict[Sink, None]] = {}
        self._subscriptions: dict[str, Subscription] = {}
        self._subscribing: dict[str, asyncio.Future[None]] = {}
        self._seen: dict[str, tuple[str, int]] = {}  # newest entry handed to local tabs
        self._gaps: set[str] = set()
        self._gap_sync: asyncio.Task[None] | None = None
        self._timers: dict[str, asyncio.TimerHandle] = {}
        self._due: dict[str, float] = {}  # when each agent's timer fires (clock time)
        self._planned: dict[str, AgentState] = {}  # the state each timer was set from
        self._open: dict[str, int] = {}  # unfinished contacts per local agent, last seen
        self._open_total = 0
        metrics.contacts.set_function(lambda: self._open_total)  # read when scraped
        self._suspect: set[str] = set()  # agents whose stored tabs disagree with our sockets
        self._background: set[asyncio.Task[None]] = set()
        self._unrecorded_closes: list[tuple[str, TabClosed]] = []

    @property
    def live_nodes(self) -> frozenset[str]:
        return self._live_nodes

    @live_nodes.setter
    def live_nodes(self, nodes: frozenset[str]) -> None:
        """Take the store's live set (after a heartbeat); agents with tabs on a node that came
        or went tick.

        The set is taken about every second. A gap of half a node timeout or more means this
        node stopped (a long pause, SIGSTOP, a store outage) and peers may have counted it
        dead meanwhile: marked its tabs gone, even given their ids to duplicated pages. Every
        local tab then registers again, which puts a tab marked gone back and closes (4009) a
        connection whose id moved on (see `apply`).
        """
        now = self.clock()
        gap = 0.0 if self._live_at is None else now - self._live_at
        self._live_at = now
        changed = nodes ^ self._live_nodes
        self._live_nodes = nodes
        self._live_here = nodes | {self.node_id}
        if changed:
            self._planned.clear()  # node timeouts in every deadline depend on the live set
            self._spawn(self._nodes_changed(changed))
        if gap >= self.rules.node_timeout_seconds / 2:
            log.info("node_lapsed", seconds=round(gap, 1))
            self._spawn(self.reregister_all())

    async def reregister_all(self) -> None:
        """Put every local tab back into a store that may have lost it. A tab that fails is
        logged and left to the sweep, which registers it again when its agent's stored tabs
        are next seen to disagree with this node's sockets."""
        for index, sink in enumerate(self.sinks()):
            if index % YIELD_EVERY == YIELD_EVERY - 1:
                await asyncio.sleep(0)
            try:
                await sink.reregister()
            except Exception as e:  # the sweep reconciles what is still wrong
                log.warning("reregister_failed", tab=sink.tab_id, error=repr(e))

    def _spawn(self, job: Coroutine[Any, Any, None]) -> None:
        task = asyncio.get_running_loop().create_task(job)
        self._background.add(task)
        task.add_done_callback(self._background.discard)

    # -- applying events ----------------------------------------------------------------

    def context(self) -> Context:
        return Context(now=self.clock(), live_nodes=self._live_here)

    async def load(
        self, agent: str, *, fresh: bool = False, changed: bool = False
    ) -> tuple[Revision, AgentState]:
        """The agent's state: cached, or (fresh) re-read, decoding only if it changed.

        A fresh read of a cached agent first asks only for the revision: re-checking a state
        before a refusal must not cost the agent's whole history when nothing changed.
        `changed`: the caller already saw the stored revision move on (a conflict), so the
        state is read at once."""
        cached = self._cache.get(agent)
        if (
            cached is not None
            and not changed
            and (not fresh or await self.store.load_revision(agent) == cached.revision)
        ):
            return cached.revision, cached.state
        stored = await self.store.load_agent(agent)
        if cached is not None and cached.revision == stored.revision:
            return cached.revision, cached.state
        state = (
            AgentState.decode(stored.head, stored.contacts)
            if stored.head is not None
            else new_agent(agent, self.rules)
        )
        self._remember(agent, _Cached(stored.revision, state))
        return stored.revision, state

    def _remember(self, agent: str, cached: _Cached) -> None:
        """Cache an agent's state and keep the open-contacts gauge in step (no walk).

        Only while the agent has tabs here: an admin page, a workflow run or a hostile
        `/admin/agents/<random>` loop must not grow the cache. A state in which one of our
        sockets' tabs is gone, closed or held by another connection (a peer's stale view, a
        resume elsewhere) marks the agent for `sweep`.
        """
        sinks = self._sinks.get(agent)
        if sinks:
            self._cache[agent] = cached
            tabs = cached.state.tabs
            for sink in sinks:
                tab = tabs.get(sink.tab_id)
                if tab is None or not tab.connected or tab.conn_id != sink.conn_id:
                    self._suspect.add(agent)
                    break
            count = len(cached.state.open_ids)
            self._open_total += count - self._open.get(agent, 0)
            self._open[agent] = count

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
        self._seen.pop(agent, None)
        self._gaps.discard(agent)
        self._disarm(agent)

    async def apply(self, agent: str, event: AgentEvent) -> Outcome:
        """Apply one event atomically; on a version conflict reload and re-run the core.

        An event that changes nothing (a second tab reporting what the first already did)
        is decided on the cached state when the cache provably holds every stream entry
        committed so far: reports only ever add to a contact, so one already known to the
        cache is known to the store. Refusals are always re-decided on fresh state.

        One connection per tab id (DESIGN invariant 1): an event from a local connection whose
        tab id the store records under another connection (a duplicate took the id while this
        node was presumed dead) is refused, on fresh state, and that connection is closed
        (4009). Anything it would have done is decided on the state it was built from, and a
        commit only lands on that exact revision, so a stale view cannot get past this check.
        """
        started = time.perf_counter()
        async with _AgentLock.of(self._locks, agent):
            fresh = changed = False
            for _ in range(MAX_COMMIT_ATTEMPTS):
                revision, state = await self.load(agent, fresh=fresh, changed=changed)
                changed = False
                if self._closed_meanwhile(agent, event):
                    return Outcome(state=state, refusal=CLOSED_MEANWHILE, changed=False)
                moved_on = self._moved_on(agent, state, event)
                if moved_on and not fresh:
                    fresh = True
                    continue
                if moved_on:
                    return await self._refuse_moved_on(state, moved_on)
                cached = self._cache.get(agent)
                trusted = cached is not None and cached.seq is not None
                outcome = handle(state, event, self.context(), self.rules)
                unsure = outcome.refusal is not None or (not outcome.changed and not trusted)
                if not fresh and unsure and await self.store.load_revision(agent) != revision:
                    fresh = changed = True
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
                envelopes = [
                    Envelope(message=e.wire, to_tab=e.to_tab, to_role=e.to_role)
                    for e in outcome.effects
                    if isinstance(e, Publish)
                ]
                write = outcome.state.write(outcome.touched)  # a delta against `revision`
                committed = await self.store.commit_agent(agent, revision, write, envelopes)
                if committed is None:
                    self.metrics.conflicts.inc()
                    fresh = changed = True
                    continue
                entries = committed.entries
                last = entries[-1] if entries else None
                self.metrics.state_bytes.observe(write.size)
                self._remember(
                    agent,
                    _Cached(
                        committed.revision,
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

    def absorbs(self, agent: str, sink: Sink, event: ContactReported) -> bool:
        """Whether `apply(agent, event)` from `sink` would change and answer nothing, decided
        at once, on the cached state, without the agent's turn (most reports are a second or
        third tab repeating what the first one said).

        Only when `apply` would decide it the same way on the same state: no event of the
        agent is in flight or waiting (so the cache is the state the next turn would load),
        the cache is trusted (it holds every entry committed so far), the sink still holds
        its tab (not moved on), the core says the state absorbs the report (`absorbs`), and
        no confirmation with Amazon Connect is pending for the contact (the check would
        schedule another attempt). False means only "not known": `apply` decides.
        """
        cached = self._cache.get(agent)
        if agent in self._locks or cached is None or cached.seq is None:
            return False
        state = cached.state
        tab = state.tabs.get(event.tab_id)
        if tab is None or tab.conn_id != sink.conn_id:
            return False
        if not absorbs(state, event, self.context(), self.rules):
            return False
        if self.report_check is not None:
            contact = state.contacts[event.report.contact.contact_id]
            if contact.confirmation == UNCONFIRMED:
                return False
        self._schedule_tick(agent, state)  # as `apply` does for a repeat
        return True

    def _closed_meanwhile(self, agent: str, event: AgentEvent) -> bool:
        """A connection registering again (`TabOpened.again`) that is no longer this node's:
        it closed while the event waited for the agent's turn (its close is applied after it
        leaves the node), so registering it would bring back a tab nobody holds."""
        if not isinstance(event, TabOpened) or not event.again:
            return False
        return not any(s.conn_id == event.conn_id for s in self._sinks.get(agent, ()))

    def _moved_on(self, agent: str, state: AgentState, event: AgentEvent) -> list[Sink]:
        """The local connections `event` came from, if `state` records their tab id under
        another connection; else none.

        A tab event names its tab, so its senders are the local connections with that id; a
        re-registration (`TabOpened` with a local connection's id) names its connection. A
        tab the state does not know is not "moved on" (the store lost it: the core asks for
        a hello, or the re-registration puts it back).
        """
        sinks = self._sinks.get(agent, ())
        if isinstance(event, TabOpened):
            senders = [s for s in sinks if s.conn_id == event.conn_id]
            tab_id = event.tab_id
        elif isinstance(event, _FROM_TAB):
            senders = [s for s in sinks if s.tab_id == event.tab_id]
            tab_id = event.tab_id
        else:
            return []
        tab = state.tabs.get(tab_id) if tab_id else None
        if tab is None or not senders or any(s.conn_id == tab.conn_id for s in senders):
            return []
        return senders

    async def _refuse_moved_on(self, state: AgentState, senders: list[Sink]) -> Outcome:
        for sink in senders:
            log.info("tab_moved_on", tab=sink.tab_id, conn=sink.conn_id)
            await sink.supersede()
        tab_id = senders[0].tab_id
        return Outcome(
            state=state,
            refusal=Refusal(ErrorCode.NOT_OWNER, f"tab {tab_id} is open on another connection"),
            changed=False,
        )

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
        again. The tab may have resumed on another connection since (even one that has
        closed again): this socket is the old one, so close it (4009) rather than let two
        connections act for one tab.
        """
        cached = self._cache.get(agent)
        if cached is None:
            return
        for sink in list(self._sinks.get(agent, ())):
            tab = cached.state.tabs.get(sink.tab_id)
            if tab is not None and tab.conn_id != sink.conn_id:
                await sink.supersede()
            elif tab is None or (tab.conn_id == sink.conn_id and not tab.connected):
                try:
                    await sink.reregister()
                except Exception as e:  # the next sweep tries again
                    log.warning("reregister_failed", agent=agent, tab=sink.tab_id, error=repr(e))
                    self._suspect.add(agent)

    # -- local tabs and delivery ----------------------------------------------------------

    async def attach(self, agent: str, sink: Sink) -> None:
        """Register a local tab and make sure the agent's stream reaches this node.

        Race-free: concurrent attachers of one agent share one subscribing future, so a node
        holds exactly one subscription per agent with local tabs, however many tabs open at
        once. If the subscription fails, the error reaches every attacher (the tabs are told
        to come back later) and the next attach tries again.
        """
        self._sinks.setdefault(agent, {})[sink] = None
        self._attached(agent)
        while agent in self._sinks and agent not in self._subscriptions:
            pending = self._subscribing.get(agent)
            if pending is None:
                pending = asyncio.ensure_future(self._subscribe(agent))
                self._subscribing[agent] = pending
            await asyncio.shield(pending)

    async def _subscribe(self, agent: str) -> None:
        """Subscribe, then take the stream's head as what this node's tabs have seen.

        In that order: an entry committed after the head was read is published after the
        subscription was in place, so it is either delivered or caught by position sync.
        """
        try:
            subscription = await self.store.subscribe(
                agent,
                lambda entry: self._fan_out(agent, entry),
                on_gap=lambda: self._gap(agent),
            )
            try:
                head = await self.store.stream_head(agent)
            except BaseException:
                await subscription.close()
                raise
        finally:
            del self._subscribing[agent]
        if agent not in self._sinks:  # every tab left while we subscribed
            with contextlib.suppress(Exception):
                await subscription.close()
            return
        self._subscriptions[agent] = subscription
        self._advance(agent, head)

    async def detach(self, agent: str, sink: Sink) -> None:
        sinks = self._sinks.get(agent)
        if sinks is None:
            return
        sinks.pop(sink, None)
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
        seen = self._seen.get(agent)
        if seen is not None and seen[0] == entry.epoch and entry.seq <= seen[1]:
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
            self._seen[agent] = (entry.epoch, entry.seq)
            for sink in list(sinks):
                sink.deliver(entry)

    def _advance(self, agent: str, position: tuple[str, int]) -> None:
        """Record that this node's tabs were handed the stream up to `position`."""
        if agent not in self._sinks:
            return
        seen = self._seen.get(agent)
        if seen is None or seen[0] != position[0] or seen[1] < position[1]:
            self._seen[agent] = position

    # -- position sync: delivery that does not depend on pub/sub ---------------------------

    def _gap(self, agent: str) -> None:
        """The subscription was re-established and may have missed entries: sync soon."""
        self._gaps.add(agent)
        if self._gap_sync is None or self._gap_sync.done():
            self._gap_sync = asyncio.get_running_loop().create_task(self._sync_gaps())

    async def _sync_gaps(self) -> None:
        while self._gaps:
            agents = sorted(self._gaps)
            self._gaps.clear()
            try:
                await self.sync_positions(agents)
            except StoreUnavailable:
                self._gaps.update(agents)
                await asyncio.sleep(1.0)
            except Exception:  # the periodic sync covers these agents too
                log.exception("position_sync_failed", agents=len(agents))

    async def sync_positions(self, agents: Sequence[str] | None = None) -> int:
        """Compare each local agent's stream head with what its tabs were handed; fill gaps.

        One batched head read per `SYNC_BATCH` agents (one script on a Redis server, one
        pipeline on a cluster), then a stream read only for agents that are behind; the loop
        yields between batches so a node with thousands of agents stays responsive. A gap that
        can no longer be read (trimmed, or the stream was lost) makes each tab take a snapshot.
        Returns how many agents were behind (for tests and logs).
        """
        todo = list(self._sinks) if agents is None else [a for a in agents if a in self._sinks]
        behind = 0
        for start in range(0, len(todo), SYNC_BATCH):
            batch = todo[start : start + SYNC_BATCH]
            heads = await self.store.stream_heads(batch)
            for agent, head in zip(batch, heads, strict=True):
                seen = self._seen.get(agent)
                if seen is None or agent not in self._sinks:
                    continue  # still subscribing (it reads the head itself), or gone
                if head is not None and head[0] == seen[0] and head[1] <= seen[1]:
                    continue
                behind += 1
                await self._fill(agent, seen)
            await asyncio.sleep(0)
        if behind:
            log.info("position_sync_filled_gaps", agents=behind)
        return behind

    async def _fill(self, agent: str, seen: tuple[str, int]) -> None:
        missed = await self.store.read_stream(agent, seen[0], seen[1])
        if missed is None:
            epoch, head = await self.store.stream_head(agent)
            self._cache.pop(agent, None)
            self._advance(agent, (epoch, head))
            for sink in list(self._sinks.get(agent, ())):
                sink.resync()
            return
        for entry in missed:
            self._fan_out(agent, entry)

    def sizes(self) -> dict[str, int]:
        """How many entries each per-agent map holds (tests assert they follow local tabs)."""
        return {
            "sinks": len(self._sinks),
            "cache": len(self._cache),
            "locks": len(self._locks),
            "subscriptions": len(self._subscriptions),
            "subscribing": len(self._subscribing),
            "seen": len(self._seen),
            "timers": len(self._timers),
            "due": len(self._due),
            "planned": len(self._planned),
            "open": len(self._open),
        }

    def local_agents(self) -> dict[str, int]:
        """Agent id -> number of tab connections on this node."""
        return {agent: len(sinks) for agent, sinks in sorted(self._sinks.items())}

    def sinks(self) -> list[Sink]:
        return [sink for sinks in self._sinks.values() for sink in sinks]

    async def close(self) -> None:
        if self._gap_sync is not None:
            self._gap_sync.cancel()
        for agent in list(self._timers):
            self._disarm(agent)
        for task in list(self._background):
            task.cancel()
        for subscription in self._subscriptions.values():
            with contextlib.suppress(Exception):
                await subscription.close()
        self._subscriptions.clear()
