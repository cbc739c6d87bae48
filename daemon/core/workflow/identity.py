"""Whose a Zendesk write is: the Zendesk account, the agent and the contact, never less.

Every write the workflow makes carries an identity that Zendesk keeps and that a later runner
can find again without any memory of its own: the ticket's and the new user's `external_id`,
the ticket creation's `Idempotency-Key`, and the marker line at the end of each comment.
Exactly once rests on these alone, so a daemon whose store lost everything (Redis restarted
empty) and is sent the same contact again recognises its own earlier writes.

The contact id alone is not enough: it comes from a tab, and a tab of agent B can report a
contact under agent A's contact id. Were identities made of the contact id only, B's ticket
creation would replay A's (same key) or find A's ticket (same `external_id`), and B's call
would be filed, popped and commented on A's ticket. With the agent in the identity, B's
writes are B's own. The account is in it too, so a store shared by daemons of two Zendesk
accounts (or one re-pointed to another account) never mistakes one account's record for
the other's.

The account and agent enter as a short digest (`scope`): identities stay short enough for
Zendesk's fields whatever an agent id looks like, and the contact id stays readable in the
marker line an agent sees at the end of a private note.
"""

import hashlib
from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class Scope:
    """One agent of one Zendesk account: the part of an identity shared by its contacts."""

    account: str  # the Zendesk account's host, e.g. acme.zendesk.com
    agent: str  # the Switchboard agent id (from the tab's signed token)

    @property
    def digest(self) -> str:
        """16 hex digits of SHA-256 over account and agent (unambiguous: newline-joined,
        and neither contains a newline)."""
        raw = f"{self.account}\n{self.agent}".encode()
        return hashlib.sha256(raw).hexdigest()[:16]

    def of(self, contact_id: str) -> "Identity":
        return Identity(self, contact_id)


@dataclass(frozen=True, slots=True)
class Identity:
    """One contact of one agent of one account."""

    scope: Scope
    contact_id: str

    @property
    def external_id(self) -> str:
        """The `external_id` of the ticket and of the user this contact creates."""
        return f"switchboard:{self.scope.digest}:{self.contact_id}"

    def idempotency_key(self, step_key: str) -> str:
        return f"{self.external_id}:{step_key}"

    @property
    def marker_prefix(self) -> str:
        """What every marker line of this contact starts with."""
        return f"Switchboard {self.scope.digest}/{self.contact_id}/"

    def marker(self, step_key: str) -> str:
        """The last line of a comment written by step `step_key` of this contact."""
        return f"{self.marker_prefix}{step_key}"
