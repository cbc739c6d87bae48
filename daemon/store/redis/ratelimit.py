"""The shared rate limiter over Redis (see `RateLimiter`).

`<p>:rate:<key>` holds the GCRA theoretical arrival time (ms, the server's clock, so nodes with
skewed clocks share one budget), with `PX` until it no longer matters.
"""

from __future__ import annotations

from typing import Any

from daemon.store.base import RateLimiter
from daemon.store.redis.common import RedisBase, translated


class RedisRateLimiter(RedisBase, RateLimiter):
    _rate: Any  # registered script (see RedisStore.__init__)

    async def rate_acquire(self, key: str, per_minute: int, burst: int) -> float:
        with translated():
            await self._ready()
            wait_ms = await self._rate(
                keys=[self._global(f"rate:{key}")], args=[60000.0 / per_minute, burst]
            )
        return float(wait_ms) / 1000.0
