"""What a commit of an agent's state writes.

Declared by the core, which makes it (`AgentState.write`), and taken as it is by the store,
which writes it: the shell depends on the core, never the reverse."""

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field


@dataclass(frozen=True, slots=True)
class StateWrite:
    """What a commit writes of the agent's state: the head (everything but the contacts, small
    and bounded) and, per contact, only what changed since the revision it is built on.

    `put` maps contact ids to their new encoded entries (added or replaced); `dropped` names
    contacts whose entries go. A commit therefore costs what the event touched, not the
    agent's history. The store treats every value as opaque bytes.
    """

    head: bytes
    put: Mapping[str, bytes] = field(default_factory=dict)
    dropped: Sequence[str] = ()

    @property
    def size(self) -> int:
        """The state bytes this write carries (head and put entries)."""
        return len(self.head) + sum(len(entry) for entry in self.put.values())
