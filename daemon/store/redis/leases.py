"""Fencing leases and the workflow journal over Redis (see `LeaseJournal`).

====================================  ========  =================================================
`<p>:{A}:lease:<name>`                string    `<epoch>:<holder>`, `PX` = lease ttl
`<p>:{A}:fence:<name>`                string    fencing counter (`INCR`); idle TTL (at least ten
                                                lease TTLs), refreshed on every claim
`<p>:{A}:journal:<contact>`           hash      step -> msgpack result; idle TTL
====================================  ========  =================================================
"""

from __future__ import annotations

import math
from typing import Any

import msgpack

from daemon.store.base import Lease, LeaseJournal
from daemon.store.redis.common import RedisBase, ms, to_text, translated


class RedisLeaseJournal(RedisBase, LeaseJournal):
    _claim: Any  # registered scripts (see RedisStore.__init__)
    _renew: Any
    _release: Any
    _journal: Any

    def _lease_keys(self, lease: Lease) -> tuple[str, str]:
        return self._key(lease.agent, f"lease:{lease.name}"), f"{lease.epoch}:{lease.holder}"

    async def claim_lease(self, agent: str, name: str, holder: str, ttl: float) -> Lease | None:
        with translated():
            await self._ready()
            epoch = await self._claim(
                keys=[self._key(agent, f"lease:{name}"), self._key(agent, f"fence:{name}")],
                args=[holder, ms(ttl), max(self._idle_ttl, math.ceil(ttl * 10))],
            )
        if epoch is None:
            return None
        return Lease(name, agent, holder, int(epoch))

    async def renew_lease(self, lease: Lease, ttl: float) -> bool:
        key, value = self._lease_keys(lease)
        with translated():
            await self._ready()
            return bool(await self._renew(keys=[key], args=[value, ms(ttl)]))

    async def release_lease(self, lease: Lease) -> None:
        key, value = self._lease_keys(lease)
        with translated():
            await self._ready()
            await self._release(keys=[key], args=[value])

    async def lease_is_current(self, lease: Lease) -> bool:
        key, value = self._lease_keys(lease)
        with translated():
            await self._ready()
            current = await self._client.get(key)
        return current is not None and to_text(current) == value

    async def journal_read(self, agent: str, contact: str) -> dict[str, Any]:
        with translated():
            await self._ready()
            raw = await self._client.hgetall(self._key(agent, f"journal:{contact}"))
        return {to_text(step): msgpack.unpackb(value, raw=False) for step, value in raw.items()}

    async def journal_write(self, lease: Lease, contact: str, step: str, result: Any) -> bool:
        key, value = self._lease_keys(lease)
        with translated():
            await self._ready()
            written = await self._journal(
                keys=[key, self._key(lease.agent, f"journal:{contact}")],
                args=[value, step, msgpack.packb(result), self._idle_ttl],
            )
        return bool(written)
