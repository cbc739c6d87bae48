"""Amazon Connect's word on a contact a tab reported, and what it decides. Pure.

Where an Amazon Connect instance is configured, the shell (`daemon.connect.confirm`) asks
Connect about every contact before the agent's state first holds it (`DescribeContact`,
`GetContactAttributes`, and `DescribeUser` for its agent) and hands the core one of:

- `ConnectFacts`: Connect knows the contact; what it says about it, and whether its agent is
  the reporting tab's agent (the shell resolves who that is: an identity lookup is I/O);
- `ConnectDenied`: Connect does not know the contact (`ResourceNotFoundException`);
- `ConnectUnavailable`: Connect could not be asked within the bounded wait (throttled, down,
  refused us), or it does not yet say whose the contact is.

The core decides (`refusal`, `confirmed_fields`): an unknown contact, or one whose agent is
another agent, is refused and nothing of it is kept; a known contact of the agent's is held
with Connect's attributes and transfer link instead of the tab's; when Connect could not be
asked, the contact is believed on the tab's word for now, held as `unconfirmed`, and settled
when Connect answers later (`ConnectAnswered`): confirmed (Connect's facts replace the tab's)
or refused (its Zendesk work stops and the owner is told).

A supervisor's monitoring leg (the tab says it monitors, or Connect's initiation method is
`MONITOR`) is not the agent's contact: Connect's agent for it is someone else, and that is
no reason to refuse it, but it is held as a monitoring leg, which never gets Zendesk work.
"""

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from protocol.errors import ErrorCode

CONFIRMED = "confirmed"
UNCONFIRMED = "unconfirmed"
REFUSED = "refused"


@dataclass(frozen=True, slots=True)
class ConnectFacts:
    """What Connect says about a contact it knows."""

    agent_is_reporter: bool  # Connect's agent for it is the agent whose tab reported it
    attributes: Mapping[str, str]
    # The transfer's first contact (InitialContactId, else PreviousContactId); None for a
    # contact that is no transfer.
    initial_contact_id: str | None = None
    is_callback: bool = False  # initiation method CALLBACK
    monitoring: bool = False  # initiation method MONITOR
    customer_endpoint: str | None = None


@dataclass(frozen=True, slots=True)
class ConnectDenied:
    """Connect does not know the contact."""

    reason: str


@dataclass(frozen=True, slots=True)
class ConnectUnavailable:
    """Connect could not say, for now (`reason` is for logs)."""

    reason: str


ConnectAnswer = ConnectFacts | ConnectDenied | ConnectUnavailable


def refusal(
    answer: ConnectAnswer, contact_id: str, *, monitoring: bool
) -> tuple[ErrorCode, str] | None:
    """Why the agent may not hold the contact on Connect's word, or None.

    `monitoring`: the tab reported the contact as a monitoring leg.
    """
    if isinstance(answer, ConnectDenied):
        return (
            ErrorCode.CONTACT_NOT_IN_CONNECT,
            f"Amazon Connect does not know contact {contact_id}: {answer.reason}",
        )
    if isinstance(answer, ConnectFacts) and not (
        answer.agent_is_reporter or monitoring or answer.monitoring
    ):
        return (
            ErrorCode.CONTACT_NOT_YOURS,
            f"Amazon Connect routed contact {contact_id} to another agent",
        )
    return None


def confirmed_fields(
    facts: ConnectFacts, *, monitoring: bool, max_attributes: int
) -> dict[str, Any]:
    """The contact's fields as Connect confirmed them: they replace what tabs reported.

    Connect's attributes beyond `max_attributes` (by name) are left out, with a warning.
    """
    names = sorted(facts.attributes)
    fields: dict[str, Any] = {
        "confirmation": CONFIRMED,
        "attributes": {name: facts.attributes[name] for name in names[:max_attributes]},
        "initial_contact_id": facts.initial_contact_id,
        "is_callback": facts.is_callback,
        "monitoring": monitoring or facts.monitoring,
    }
    if facts.customer_endpoint is not None:
        fields["customer_endpoint"] = facts.customer_endpoint
    if len(names) > max_attributes:
        fields["warnings"] = (
            f"Amazon Connect gave {len(names)} attributes: only the first {max_attributes} "
            "(by name) are used",
        )
    return fields
