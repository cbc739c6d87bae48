"""The daemon's Amazon Connect client, on aiobotocore (the AWS SDK, asyncio-native).

Why aiobotocore rather than botocore in a worker thread: the daemon is one event loop, and a
thread per in-flight call would put a pool size between a busy contact centre and its
recording controls; aiobotocore is botocore (same service model, credential chain, SigV4,
retry modes) with asyncio I/O.

Guarantees:
- credentials come from the standard AWS chain (environment, shared profile, web identity on
  Kubernetes, instance metadata); the region comes from the instance ARN;
- throttling and transient faults are retried by botocore's `standard` retry mode (bounded
  attempts, exponential backoff with jitter); what is left is raised as `ConnectError` with a
  `kind` the caller can act on (`permanent` says whether trying again can help);
- describe calls (`describe_contact`, `describe_user`) are cached for `cache_seconds` in a
  bounded cache and paced by a limiter shared by every node, so a busy centre stays inside
  Connect's API quotas. Recording calls are never cached.
- Suspend and resume are idempotent at Connect (a repeat of the current state is a no-op), so a
  call retried after a lost reply does no harm.
"""

import contextlib
import re
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any, Literal

from aiobotocore.config import AioConfig
from aiobotocore.session import get_session
from botocore.exceptions import (
    BotoCoreError,
    ClientError,
    NoCredentialsError,
    PartialCredentialsError,
)
from cachetools import TTLCache

ErrorKind = Literal["not_found", "access_denied", "throttled", "invalid", "unavailable"]
_KINDS: dict[str, ErrorKind] = {
    "ResourceNotFoundException": "not_found",
    "AccessDeniedException": "access_denied",
    "UnauthorizedException": "access_denied",
    "ThrottlingException": "throttled",
    "TooManyRequestsException": "throttled",
    "LimitExceededException": "throttled",
    "InvalidRequestException": "invalid",
    "InvalidParameterException": "invalid",
}
_ARN = re.compile(r"^arn:aws[\w-]*:connect:(?P<region>[\w-]+):\d{12}:instance/(?P<id>[\w-]+)$")


class ConnectError(Exception):
    def __init__(self, kind: ErrorKind, message: str) -> None:
        super().__init__(message)
        self.kind = kind

    @property
    def permanent(self) -> bool:
        """Trying the same call again cannot help (throttling and outages can pass)."""
        return self.kind not in ("throttled", "unavailable")


@dataclass(frozen=True, slots=True)
class Instance:
    region: str
    instance_id: str

    @classmethod
    def from_arn(cls, arn: str) -> "Instance":
        found = _ARN.match(arn)
        if found is None:
            raise ValueError(
                "expected arn:aws:connect:REGION:ACCOUNT:instance/INSTANCE_ID, got " + repr(arn)
            )
        return cls(found["region"], found["id"])


@dataclass(frozen=True, slots=True)
class ConnectContact:
    """What Connect says about a contact: the facts a tab's report is checked against."""

    contact_id: str
    initial_contact_id: str | None
    previous_contact_id: str | None
    channel: str
    initiation_method: str
    agent_user_id: str | None
    customer_endpoint: str | None
    ended: bool


#: Records one API call: (operation, outcome, seconds). Outcome "ok" or an error kind.
Observe = Callable[[str, str, float], None]
Pace = Callable[[], Awaitable[None]]


async def _no_pacing() -> None:
    return None


class ConnectClient:
    def __init__(
        self,
        instance: Instance,
        *,
        endpoint_url: str | None = None,
        observe: Observe | None = None,
        pace: Pace = _no_pacing,
        cache_seconds: float = 60.0,
        max_attempts: int = 5,
        static_credentials: tuple[str, str] | None = None,
    ) -> None:
        """`static_credentials` (key id, secret) replace the AWS chain: for a sandbox only."""
        self.instance = instance
        self._endpoint_url = endpoint_url
        self._static = static_credentials
        self._observe = observe or (lambda _op, _outcome, _seconds: None)
        self._pace = pace
        self._config = AioConfig(
            retries={"mode": "standard", "max_attempts": max_attempts},
            connect_timeout=3,
            read_timeout=10,
        )
        self._contacts: TTLCache[str, ConnectContact] = TTLCache(10_000, cache_seconds)
        self._users: TTLCache[str, dict[str, Any]] = TTLCache(10_000, cache_seconds)
        self._stack = contextlib.AsyncExitStack()
        self._client: Any = None

    async def start(self) -> "ConnectClient":
        self._client = await self._stack.enter_async_context(
            get_session().create_client(
                "connect",
                region_name=self.instance.region,
                endpoint_url=self._endpoint_url,
                config=self._config,
                aws_access_key_id=self._static[0] if self._static else None,
                aws_secret_access_key=self._static[1] if self._static else None,
            )
        )
        return self

    async def close(self) -> None:
        await self._stack.aclose()

    # -- recording ----------------------------------------------------------------------

    async def suspend_recording(self, contact_id: str, initial_contact_id: str) -> None:
        await self._call("SuspendContactRecording", contact_id, initial_contact_id)

    async def resume_recording(self, contact_id: str, initial_contact_id: str) -> None:
        await self._call("ResumeContactRecording", contact_id, initial_contact_id)

    async def _call(self, operation: str, contact_id: str, initial_contact_id: str) -> None:
        method = getattr(self._client, _snake(operation))
        await self._timed(
            operation,
            method(
                InstanceId=self.instance.instance_id,
                ContactId=contact_id,
                InitialContactId=initial_contact_id,
            ),
        )

    # -- descriptions (cached, paced) -------------------------------------------------------

    async def describe_contact(self, contact_id: str) -> ConnectContact:
        cached = self._contacts.get(contact_id)
        if cached is not None:
            return cached
        await self._pace()
        reply = await self._timed(
            "DescribeContact",
            self._client.describe_contact(
                InstanceId=self.instance.instance_id, ContactId=contact_id
            ),
        )
        contact = _contact(reply["Contact"])
        if contact.agent_user_id is not None:  # until Connect names its agent, ask again
            self._contacts[contact_id] = contact
        return contact

    async def contact_attributes(self, initial_contact_id: str) -> dict[str, str]:
        await self._pace()
        reply = await self._timed(
            "GetContactAttributes",
            self._client.get_contact_attributes(
                InstanceId=self.instance.instance_id, InitialContactId=initial_contact_id
            ),
        )
        return dict(reply.get("Attributes", {}))

    async def describe_user(self, user_id: str) -> dict[str, Any]:
        """The Connect user's `Username` and `Email` (to map it to a Zendesk agent)."""
        cached = self._users.get(user_id)
        if cached is not None:
            return cached
        await self._pace()
        reply = await self._timed(
            "DescribeUser",
            self._client.describe_user(InstanceId=self.instance.instance_id, UserId=user_id),
        )
        user = {
            "username": reply["User"].get("Username"),
            "email": reply["User"].get("IdentityInfo", {}).get("Email"),
        }
        self._users[user_id] = user
        return user

    async def _timed(self, operation: str, call: Awaitable[Any]) -> Any:
        started = time.perf_counter()
        try:
            reply = await call
        except ConnectError as e:
            self._observe(operation, e.kind, time.perf_counter() - started)
            raise
        except (ClientError, BotoCoreError) as e:
            error = _classify(e)
            self._observe(operation, error.kind, time.perf_counter() - started)
            raise error from e
        self._observe(operation, "ok", time.perf_counter() - started)
        return reply


def _classify(e: ClientError | BotoCoreError) -> ConnectError:
    if isinstance(e, ClientError):
        code = e.response.get("Error", {}).get("Code", "")
        kind = _KINDS.get(code)
        if kind is None:
            status = e.response.get("ResponseMetadata", {}).get("HTTPStatusCode", 500)
            kind = "invalid" if 400 <= status < 500 else "unavailable"
        return ConnectError(kind, f"{code}: {e.response.get('Error', {}).get('Message', '')}")
    if isinstance(e, NoCredentialsError | PartialCredentialsError):
        return ConnectError("access_denied", f"no AWS credentials: {e}")
    return ConnectError("unavailable", str(e))


def _contact(described: dict[str, Any]) -> ConnectContact:
    return ConnectContact(
        contact_id=described["Id"],
        initial_contact_id=described.get("InitialContactId"),
        previous_contact_id=described.get("PreviousContactId"),
        channel=described.get("Channel", "VOICE"),
        initiation_method=described.get("InitiationMethod", "INBOUND"),
        agent_user_id=described.get("AgentInfo", {}).get("Id"),
        customer_endpoint=described.get("CustomerEndpoint", {}).get("Address"),
        ended="DisconnectTimestamp" in described,
    )


def _snake(operation: str) -> str:
    return re.sub(r"(?<!^)(?=[A-Z])", "_", operation).lower()
