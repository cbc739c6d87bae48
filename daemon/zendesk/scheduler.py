"""Which node runs which contact's workflow, and when.

A contact's workflow runs under a fencing lease (`runner:<contact>`), so at most one runner
acts for a contact at a time and a runner that was paused past its lease is refused by the
store. Runs start when the hub reports a change (wake) and from a periodic scan of the
store's set of unfinished workflows, which is how a contact whose node died is picked up.

Every decision comes from stored state, the same on every node: a wake always runs the
policy (which knows from the journal whether anything is left, e.g. an agent's command after
the contact ended), and a contact in backoff after a transient failure is skipped until the
next attempt time its journal names (`RunResult.retry_at`; this node also remembers it, so it
does not even claim the lease before then).
"""

import asyncio
import contextlib
import random
import time
from collections.abc import Awaitable, Callable

import structlog

from daemon.server.metrics import Metrics
from daemon.store.base import Lease, Store, StoreUnavailable
from daemon.zendesk.runner import RunResult

log = structlog.get_logger("switchboard.workflow")

RunContact = Callable[[str, str, Lease], Awaitable[RunResult]]
#: After an unexpected error outside any step (a bug, a store error), wait about this long
#: before running the contact again here, rather than on every scan.
CRASH_BACKOFF_SECONDS = 30.0


class WorkflowScheduler:
    def __init__(
        self,
        store: Store,
        node_id: str,
        run_contact: RunContact,
        metrics: Metrics,
        *,
        lease_seconds: float = 15.0,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.store = store
        self.node_id = node_id
        self.run_contact = run_contact
        self.metrics = metrics
        self.lease_seconds = lease_seconds
        self.clock = clock
        self._running: dict[tuple[str, str], asyncio.Task[None]] = {}
        self._again: set[tuple[str, str]] = set()
        # Contacts in backoff: not run before this time (a copy of what their journal says).
        self._not_before: dict[tuple[str, str], float] = {}
        self._closed = False

    def wake(self, agent: str, contact: str) -> None:
        if self._closed:
            return
        key = (agent, contact)
        if self._not_before.get(key, 0.0) > self.clock():
            return  # the run at the next attempt time plans with the contact as it is then
        if key in self._running:
            self._again.add(key)  # the current run re-plans once more when it finishes
            return
        self._running[key] = asyncio.get_running_loop().create_task(self._run(key))

    async def scan(self) -> None:
        now = self.clock()
        for key in [k for k, at in self._not_before.items() if at <= now]:
            del self._not_before[key]
        for agent, contact in await self.store.workflows_list():
            self.wake(agent, contact)

    async def idle(self) -> None:
        """Wait until no workflow runs here (tests and shutdown)."""
        while self._running:
            await asyncio.gather(*self._running.values(), return_exceptions=True)

    async def close(self) -> None:
        self._closed = True
        for task in self._running.values():
            task.cancel()
        await asyncio.gather(*self._running.values(), return_exceptions=True)
        self._running.clear()

    async def _run(self, key: tuple[str, str]) -> None:
        agent, contact = key
        try:
            while True:
                self._again.discard(key)
                lease = await self.store.claim_lease(
                    agent, f"runner:{contact}", self.node_id, self.lease_seconds
                )
                if lease is None:
                    # Another node runs it, maybe planning on the contact as it was before
                    # the change that woke us: look again once its lease would have run
                    # out, or a run that ends "done" loses this change (and the scan no
                    # longer lists the contact). Found by the simulator, tests/sim, seed 734.
                    asyncio.get_running_loop().call_later(
                        self.lease_seconds, self.wake, agent, contact
                    )
                    return
                result = await self._run_leased(agent, contact, lease)
                if result.failures:
                    self.metrics.workflow_failures.inc(result.failures)
                if result.retry_at is not None:
                    self._not_before[key] = result.retry_at
                    return
                self._not_before.pop(key, None)
                if result.done and key not in self._again:
                    await self.store.workflows_done(agent, contact)
                    return
                if key not in self._again:
                    return
        except StoreUnavailable as e:
            log.warning("workflow_store_unavailable", agent=agent, contact=contact, error=str(e))
        except Exception:
            self.metrics.workflow_failures.inc()
            log.exception("workflow_crashed", agent=agent, contact=contact)
            delay = CRASH_BACKOFF_SECONDS * (0.5 + random.random() / 2)
            self._not_before[key] = self.clock() + delay
        finally:
            self._running.pop(key, None)

    async def _run_leased(self, agent: str, contact: str, lease: Lease) -> RunResult:
        renewer = asyncio.get_running_loop().create_task(self._renew(lease))
        try:
            return await self.run_contact(agent, contact, lease)
        finally:
            renewer.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await renewer
            with contextlib.suppress(StoreUnavailable):
                await self.store.release_lease(lease)

    async def _renew(self, lease: Lease) -> None:
        while True:
            await asyncio.sleep(self.lease_seconds / 3)
            with contextlib.suppress(StoreUnavailable):
                if not await self.store.renew_lease(lease, self.lease_seconds):
                    return  # lost it: the runner's next fenced write will be refused
