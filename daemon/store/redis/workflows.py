"""The workflow index over Redis (see `WorkflowIndex`).

`<p>:workflows` is one set of msgpack `[agent, contact]`, permanent and global (one slot on a
cluster: every command on it is single-key, so that is legal, just not sharded).
"""

from __future__ import annotations

from typing import cast

import msgpack

from daemon.store.base import WorkflowIndex
from daemon.store.redis.common import RedisBase, translated


def _member(agent: str, contact: str) -> bytes:
    return cast(bytes, msgpack.packb([agent, contact]))


class RedisWorkflowIndex(RedisBase, WorkflowIndex):
    async def workflows_add(self, agent: str, contact: str) -> None:
        with translated():
            await self._ready()
            await self._client.sadd(self._global("workflows"), _member(agent, contact))

    async def workflows_done(self, agent: str, contact: str) -> None:
        with translated():
            await self._ready()
            await self._client.srem(self._global("workflows"), _member(agent, contact))

    async def workflows_list(self) -> list[tuple[str, str]]:
        with translated():
            await self._ready()
            members = await self._client.smembers(self._global("workflows"))
        return sorted(tuple(msgpack.unpackb(member, raw=False)) for member in members)
