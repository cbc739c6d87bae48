"""The Zendesk rate limiter shared by every node, through the store's GCRA."""

import asyncio

from daemon.store.base import Store


class SharedRateLimiter:
    """All nodes together stay inside the account's per-minute budget (see `rate_acquire`)."""

    def __init__(self, store: Store, key: str, per_minute: int, burst: int | None = None) -> None:
        self.store = store
        self.key = key
        self.per_minute = per_minute
        self.burst = burst if burst is not None else max(1, per_minute // 10)

    async def acquire(self) -> None:
        # Polling is the algorithm here: GCRA answers with exactly how long to wait.
        while (wait := await self.store.rate_acquire(self.key, self.per_minute, self.burst)) > 0:  # noqa: ASYNC110
            await asyncio.sleep(wait)
