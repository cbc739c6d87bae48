"""Node liveness over Redis (see `Membership`).

`<p>:nodes` is a sorted set node -> expiry (ms, the server's clock); expired members are
dropped on every heartbeat.
"""

from __future__ import annotations

from typing import Any

from daemon.store.base import Membership
from daemon.store.redis.common import RedisBase, ms, to_text, translated


class RedisMembership(RedisBase, Membership):
    _heartbeat: Any  # registered scripts (see RedisStore.__init__)
    _live_nodes: Any

    async def heartbeat(self, node: str, ttl: float) -> None:
        with translated():
            await self._ready()
            await self._heartbeat(keys=[self._global("nodes")], args=[node, ms(ttl)])

    async def live_nodes(self) -> frozenset[str]:
        with translated():
            await self._ready()
            nodes = await self._live_nodes(keys=[self._global("nodes")])
        return frozenset(to_text(node) for node in nodes)
