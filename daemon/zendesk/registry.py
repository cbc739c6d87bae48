"""Sightings of contact ids across agents, kept in the shared store (see
`daemon.core.workflow.transfer` for the rule they serve).

Each agent that runs a workflow for a contact records one sighting — its agent id and the
contact's arrival time — under the account and the contact id. Agents never overwrite each
other: each writes its own field. The store has no cross-agent keys of its own, so the
sightings live in the journal of a per-contact home (`~contact:<account>:<id>`), written
under a lease like any journal entry; that home is its own hash slot in Redis Cluster.

A store that lost its data loses the sightings too: a transfer naming a contact from before
the loss is then refused (agent mode and a notice), never linked on a guess.
"""

import hashlib
from typing import Any

from daemon.store.base import Store

#: A sighting is written in one round trip; the lease only serialises writers of one field.
_LEASE_SECONDS = 10.0


class ContactRegistry:
    def __init__(self, store: Store, account: str, holder: str) -> None:
        self.store = store
        self.account = hashlib.sha256(account.encode()).hexdigest()[:16]
        self.holder = holder

    def _home(self, contact_id: str) -> str:
        return f"~contact:{self.account}:{contact_id}"

    async def sight(self, agent: str, contact_id: str, at: float) -> bool:
        """Record that `agent` has `contact_id` since `at`; False if it could not be now."""
        home = self._home(contact_id)
        lease = await self.store.claim_lease(
            home, f"seen:{agent}", f"{self.holder}:{agent}", _LEASE_SECONDS
        )
        if lease is None:
            return False  # another node is writing this very sighting
        try:
            known = await self.store.journal_read(home, contact_id)
            if agent in known:
                return True  # the first sighting stands: a re-sent contact is not newer
            return await self.store.journal_write(lease, contact_id, agent, {"at": at})
        finally:
            await self.store.release_lease(lease)

    async def sightings(self, contact_id: str) -> dict[str, Any]:
        """Agent id -> {"at": first seen} for every agent that reported the contact."""
        return await self.store.journal_read(self._home(contact_id), contact_id)
