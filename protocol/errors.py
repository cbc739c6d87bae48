"""Error codes and WebSocket close codes: the only failure vocabulary tabs need to know.

Error codes travel in `error` messages and leave the connection open; close codes end it.
Both are stable strings/numbers so a JavaScript client can switch on them.
"""

from enum import IntEnum, StrEnum


class ErrorCode(StrEnum):
    """Why the daemon refused one message; the connection stays usable."""

    BAD_FRAME = "bad_frame"  # not JSON / not msgpack / not a map
    UNKNOWN_TYPE = "unknown_type"  # a `type` this protocol does not define
    INVALID_MESSAGE = "invalid_message"  # missing field, wrong type, out-of-range value
    HELLO_REQUIRED = "hello_required"  # anything but `hello` before the session exists
    ALREADY_GREETED = "already_greeted"  # a second `hello` on one connection
    RATE_LIMITED = "rate_limited"  # over the per-connection message rate
    AGENT_RATE_LIMITED = "agent_rate_limited"  # the agent's tabs together are over its budget
    UNAUTHORIZED = "unauthorized"  # bad, expired or forged token
    WRONG_ROLE = "wrong_role"  # e.g. media_status from an embedded tab
    NOT_OWNER = "not_owner"  # an owner-only command from an observer
    STALE_EPOCH = "stale_epoch"  # a command carrying an older ownership epoch
    UNKNOWN_CONTACT = "unknown_contact"  # a command or message for a contact never reported
    # Where an Amazon Connect instance is configured, a new contact is checked with Connect:
    CONTACT_NOT_IN_CONNECT = "contact_not_in_connect"  # Connect does not know the contact
    CONTACT_NOT_YOURS = "contact_not_yours"  # Connect's agent for it is another agent
    OUT_OF_ORDER = "out_of_order"  # e.g. a chat message for a contact that has ended
    TOO_MANY_CONTACTS = "too_many_contacts"  # the agent's open-contact bound is reached
    TOO_MANY_TABS = "too_many_tabs"  # the agent's tab bound is reached
    TOO_MANY_ATTRIBUTES = "too_many_attributes"  # the contact's attribute bound is reached
    TOO_MANY_CHAT_LINES = "too_many_chat_lines"  # the contact's transcript bound is reached
    STATE_TOO_LARGE = "state_too_large"  # the agent's state would exceed its byte bound
    UNAVAILABLE = "unavailable"  # the store cannot be reached; retry later
    INTERNAL = "internal"  # a bug; logged with the same ref


class CloseCode(IntEnum):
    """Why the daemon ended a connection (RFC 6455 codes where one fits, 4xxx otherwise)."""

    NORMAL = 1000
    GOING_AWAY = 1001  # the daemon is shutting down: reconnect elsewhere
    PROTOCOL_ERROR = 1002  # also: the first message could not be read as a hello
    POLICY_VIOLATION = 1008
    MESSAGE_TOO_BIG = 1009
    INTERNAL_ERROR = 1011
    TRY_AGAIN_LATER = 1013  # the store is unavailable: reconnect with backoff
    UNAUTHORIZED = 4001  # the hello's token was refused: do not retry with it
    HELLO_TIMEOUT = 4002  # no hello within the allowed time
    FLOODING = 4008  # repeatedly over the rate limit
    SUPERSEDED = 4009  # the same tab session resumed on another connection


class ProtocolError(Exception):
    """A client message the daemon refuses, with the code to send back."""

    def __init__(self, code: ErrorCode, message: str, ref: str | None = None) -> None:
        super().__init__(message)
        self.code = code
        self.message = message
        self.ref = ref
