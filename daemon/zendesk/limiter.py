"""The Zendesk rate limiter shared by every node, through the store's GCRA."""

import asyncio
import time

from daemon.store.base import Store
from daemon.zendesk.retry import Observer


class SharedRateLimiter:
    """All nodes together stay inside the account's per-minute budget (see `rate_acquire`).

    A request that had to wait for the budget is reported once to ``observer`` (cause
    ``rate_limiter``) with the whole time it waited, so a wait count near the request count
    says the account's limit, not Zendesk, is what slows the workflow down.
    """

    def __init__(
        self,
        store: Store,
        key: str,
        per_minute: int,
        burst: int | None = None,
        *,
        observer: Observer | None = None,
    ) -> None:
        self.store = store
        self.key = key
        self.per_minute = per_minute
        self.burst = burst if burst is not None else max(1, per_minute // 10)
        self.observer = observer

    async def acquire(self) -> None:
        started: float | None = None
        # Polling is the algorithm here: GCRA answers with exactly how long to wait.
        while (wait := await self.store.rate_acquire(self.key, self.per_minute, self.burst)) > 0:
            if started is None:
                started = time.monotonic()
            await asyncio.sleep(wait)
        if started is not None and self.observer is not None:
            self.observer.waited("rate_limiter", time.monotonic() - started)
