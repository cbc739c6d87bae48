"""Which node runs which contact's workflow, and when.

A contact's workflow runs under a fencing lease (`runner:<contact>`), so at most one runner
acts for a contact at a time and a runner that was paused past its lease is refused by the
store. Runs start when the hub reports a change (wake) and from a periodic scan of the
store's set of unfinished workflows, which is how a contact whose node died is picked up.
"""

import asyncio
import contextlib
from collections import OrderedDict
from collections.abc import Awaitable, Callable

import structlog

from daemon.server.metrics import Metrics
from daemon.store.base import Lease, Store, StoreUnavailable

log = structlog.get_logger("switchboard.workflow")

RunContact = Callable[[str, str, Lease], Awaitable[bool]]  # -> done
FINISHED_MEMORY = 10_000


class WorkflowScheduler:
    def __init__(
        self,
        store: Store,
        node_id: str,
        run_contact: RunContact,
        metrics: Metrics,
        *,
        lease_seconds: float = 15.0,
    ) -> None:
        self.store = store
        self.node_id = node_id
        self.run_contact = run_contact
        self.metrics = metrics
        self.lease_seconds = lease_seconds
        self._running: dict[tuple[str, str], asyncio.Task[None]] = {}
        self._again: set[tuple[str, str]] = set()
        # Contacts whose workflow finished here: later changes (ACW, destroy) need nothing.
        self._finished: OrderedDict[tuple[str, str], None] = OrderedDict()

    def wake(self, agent: str, contact: str) -> None:
        key = (agent, contact)
        if key in self._finished:
            return
        if key in self._running:
            self._again.add(key)  # the current run re-plans once more when it finishes
            return
        self._running[key] = asyncio.get_running_loop().create_task(self._run(key))

    async def scan(self) -> None:
        for agent, contact in await self.store.workflows_list():
            self.wake(agent, contact)

    async def idle(self) -> None:
        """Wait until no workflow runs here (tests and shutdown)."""
        while self._running:
            await asyncio.gather(*self._running.values(), return_exceptions=True)

    async def close(self) -> None:
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
                    return  # another node runs it; the scan retries if that node dies
                done = await self._run_leased(agent, contact, lease)
                if done:
                    await self.store.workflows_done(agent, contact)
                    self._finished[key] = None
                    if len(self._finished) > FINISHED_MEMORY:
                        self._finished.popitem(last=False)
                    return
                if key not in self._again:
                    return
        except StoreUnavailable as e:
            log.warning("workflow_store_unavailable", agent=agent, contact=contact, error=str(e))
        except Exception:
            self.metrics.workflow_failures.inc()
            log.exception("workflow_failed", agent=agent, contact=contact)
        finally:
            self._running.pop(key, None)

    async def _run_leased(self, agent: str, contact: str, lease: Lease) -> bool:
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
