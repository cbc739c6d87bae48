"""Single-use keys over Redis (see `SingleUse`).

`<p>:once:<key>` exists while the key counts as used: `SET NX PX` creates it with its ttl in
one command, so of two nodes using one key at once exactly one creates it.
"""

from __future__ import annotations

from daemon.store.base import SingleUse
from daemon.store.redis.common import RedisBase, ms, translated


class RedisSingleUse(RedisBase, SingleUse):
    async def use_once(self, key: str, ttl: float) -> bool:
        with translated():
            await self._ready()
            created = await self._client.set(self._global(f"once:{key}"), b"1", nx=True, px=ms(ttl))
        return bool(created)
