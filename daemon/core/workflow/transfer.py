"""The trust rule for a transfer across agents. Pure: the runner brings the facts.

A transferred contact names its initial contact (`initial_contact_id`), and the workflow
files the new leg on the initial contact's ticket. Where an Amazon Connect instance is
configured, a confirmed contact's initial contact is Connect's own (`InitialContactId`, else
`PreviousContactId`; `daemon.core.confirmation`): the link is followed as Connect gave it,
and a link a tab named that Connect does not give is never seen here (a contact Connect says
is no transfer has none). One exception: the first reporter's own record of the initial
contact was refused by Connect (a forged report, believed during an outage, then refused).

Otherwise (no instance, or Connect could not be asked yet: the contact is `unconfirmed`) the
id comes from a tab, so, left unchecked, any tab could name any contact it has heard of and
get its calls written into another agent's ticket. Such a named initial contact is followed
only when all of these hold:

1. Some agent of the same Zendesk account reported it (every contact with a workflow leaves
   a *sighting* — agent and time — in the store, keyed by account and contact id).
2. Exactly one agent reported it first: the earliest sighting wins (a later reuse of the
   same id by another agent never takes it over); two agents seen at the same first moment
   make the link ambiguous, and it is refused.
3. That agent still has the contact (not yet pruned), it is not a supervisor's monitoring
   leg, it started no later than the new contact, and it is either still going (a warm
   transfer: the first agent is still on the call) or ended at most `window` seconds before
   the new contact arrived (a cold transfer).

A refused link is treated like "no ticket found" (agent mode and a notice), and an accepted
one is recorded in the new contact's journal and shown: the tabs get a notice naming the
first agent's ticket and contact, and the details note on the ticket names them too.
"""

from collections.abc import Mapping
from typing import Any

from daemon.core.confirmation import CONFIRMED, REFUSED
from daemon.core.state import Contact

#: How long after the first leg ended a transfer may still name it.
TRANSFER_WINDOW_SECONDS = 300.0


def first_reporter(sightings: Mapping[str, Any]) -> str | None:
    """The agent that reported the contact first, or None (no sighting, or a tie)."""
    times: dict[str, float] = {}
    for agent, seen in sightings.items():
        if isinstance(seen, Mapping) and isinstance(seen.get("at"), int | float):
            times[agent] = float(seen["at"])
    if not times:
        return None
    first = min(times.values())
    owners = [agent for agent, at in times.items() if at == first]
    return owners[0] if len(owners) == 1 else None


def refusal(
    initial: Contact | None, contact: Contact, window: float = TRANSFER_WINDOW_SECONDS
) -> str | None:
    """Why `contact` may not follow `initial` (the first reporter's record), or None."""
    if contact.confirmation == CONFIRMED:
        if initial is not None and initial.confirmation == REFUSED:
            return "Amazon Connect refused the first agent's report of the initial contact"
        return None  # Connect itself named the initial contact
    if initial is None:
        return "the initial contact is not known (any more) to the agent who had it"
    if initial.monitoring:
        return "the initial contact is a supervisor's monitoring leg"
    if initial.created_at > contact.created_at:
        return "the initial contact started after this one"
    if not initial.finished:
        return None
    ended = initial.finished_at if initial.finished_at is not None else initial.created_at
    if contact.created_at - ended > window:
        return f"the initial contact ended more than {window:.0f} s before this one"
    return None
