"""A simulator of the part of Amazon Connect's API the daemon uses, served by aiohttp.

It speaks Connect's REST-JSON protocol (routes, methods and error shapes from botocore's service
model), so the real AWS SDK talks to it through `SWITCHBOARD_CONNECT_ENDPOINT_URL`. Every request
and response is checked against that model (`daemon.connect.model`); a request that fails the
check is refused as Connect would (400 `InvalidRequestException`) and every problem is kept in
`problems`, which tests assert empty. Test and demo controls live under `/__sandbox/`:
`POST /__sandbox/contacts`, `POST /__sandbox/users`, `POST /__sandbox/contacts/{id}/disconnect`,
`POST /__sandbox/faults`, `GET /__sandbox/state`.

Development part: not used by a production node unless it is pointed at it.
"""

import asyncio
import json
import time
from dataclasses import asdict, dataclass, field
from typing import Any

import structlog
from aiohttp import web

from daemon.connect.model import OPERATIONS, operation, request_problems, response_problems

log = structlog.get_logger("switchboard.connect_sandbox")

DEFAULT_INSTANCE = "00000000-0000-4000-8000-00000000c0de"
ERROR_STATUS = {
    "InvalidRequestException": 400,
    "AccessDeniedException": 403,
    "ResourceNotFoundException": 404,
    "ThrottlingException": 429,
    "InternalServiceException": 500,
}


class ConnectFault(Exception):
    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code


@dataclass
class SandboxContact:
    contact_id: str
    agent_user_id: str | None = None
    channel: str = "VOICE"
    initiation_method: str = "INBOUND"
    initial_contact_id: str | None = None
    previous_contact_id: str | None = None
    customer_endpoint: str | None = None
    attributes: dict[str, str] = field(default_factory=dict)
    initiated_at: float = field(default_factory=time.time)
    disconnected_at: float | None = None
    recording: str = "active"  # or "suspended"
    #: Effective recording changes, in order: ("suspended" | "resumed", at).
    transitions: list[tuple[str, float]] = field(default_factory=list)


@dataclass
class Fault:
    """The next `times` calls of `operation` fail with `error`, or (with `lose_response`) are
    applied and then answered by a dropped connection, as when a reply is lost."""

    operation: str
    times: int = 1
    error: str | None = None
    lose_response: bool = False


@dataclass
class ConnectSandbox:
    instance_id: str = DEFAULT_INSTANCE
    contacts: dict[str, SandboxContact] = field(default_factory=dict)
    users: dict[str, dict[str, str]] = field(default_factory=dict)
    faults: list[Fault] = field(default_factory=list)
    calls: list[dict[str, Any]] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)

    def take_fault(self, name: str) -> Fault | None:
        for fault in self.faults:
            if fault.operation == name and fault.times > 0:
                fault.times -= 1
                return fault
        return None

    def contact(self, params: dict[str, Any], key: str = "ContactId") -> SandboxContact:
        if params["InstanceId"] != self.instance_id:
            raise ConnectFault("ResourceNotFoundException", "Instance not found")
        found = self.contacts.get(params[key])
        if found is None:
            raise ConnectFault("ResourceNotFoundException", f"Contact {params[key]} not found")
        return found

    # -- the operations -------------------------------------------------------------------

    def set_recording(self, params: dict[str, Any], wanted: str) -> dict[str, Any]:
        contact = self.contact(params)
        if contact.disconnected_at is not None:
            raise ConnectFault("InvalidRequestException", "The contact has ended")
        if params["InitialContactId"] != (contact.initial_contact_id or contact.contact_id):
            raise ConnectFault("InvalidRequestException", "InitialContactId does not match")
        if contact.recording != wanted:  # Connect treats a repeat as done
            contact.recording = wanted
            contact.transitions.append(
                ("suspended" if wanted == "suspended" else "resumed", time.time())
            )
        return {}

    def describe_contact(self, params: dict[str, Any]) -> dict[str, Any]:
        c = self.contact(params)
        described: dict[str, Any] = {
            "Id": c.contact_id,
            "Arn": f"arn:aws:connect:eu-west-2:111122223333:instance/{self.instance_id}"
            f"/contact/{c.contact_id}",
            "Channel": c.channel,
            "InitiationMethod": c.initiation_method,
            "InitiationTimestamp": c.initiated_at,
        }
        optional = {
            "InitialContactId": c.initial_contact_id,
            "PreviousContactId": c.previous_contact_id,
            "DisconnectTimestamp": c.disconnected_at,
            "AgentInfo": {"Id": c.agent_user_id} if c.agent_user_id else None,
            "CustomerEndpoint": (
                {"Type": "TELEPHONE_NUMBER", "Address": c.customer_endpoint}
                if c.customer_endpoint
                else None
            ),
        }
        described |= {k: v for k, v in optional.items() if v is not None}
        return {"Contact": described}

    def get_contact_attributes(self, params: dict[str, Any]) -> dict[str, Any]:
        return {"Attributes": dict(self.contact(params, "InitialContactId").attributes)}

    def describe_user(self, params: dict[str, Any]) -> dict[str, Any]:
        user = self.users.get(params["UserId"])
        if params["InstanceId"] != self.instance_id or user is None:
            raise ConnectFault("ResourceNotFoundException", f"User {params['UserId']} not found")
        return {
            "User": {
                "Id": params["UserId"],
                "Username": user["username"],
                "IdentityInfo": {"Email": user.get("email", "")},
            }
        }

    def perform(self, name: str, params: dict[str, Any]) -> dict[str, Any]:
        if name == "SuspendContactRecording":
            return self.set_recording(params, "suspended")
        if name == "ResumeContactRecording":
            return self.set_recording(params, "active")
        if name == "DescribeContact":
            return self.describe_contact(params)
        if name == "GetContactAttributes":
            return self.get_contact_attributes(params)
        return self.describe_user(params)

    def snapshot(self) -> dict[str, Any]:
        return {
            "instance_id": self.instance_id,
            "contacts": [asdict(c) for c in self.contacts.values()],
            "users": self.users,
            "calls": self.calls,
            "problems": self.problems,
        }


CONNECT_SANDBOX_KEY = web.AppKey("connect_sandbox", ConnectSandbox)


def _error(code: str, message: str) -> web.Response:
    return web.json_response(
        {"message": message},
        status=ERROR_STATUS.get(code, 400),
        headers={"x-amzn-ErrorType": code},
    )


def _handler(name: str) -> Any:
    async def handle(request: web.Request) -> web.StreamResponse:
        sandbox = request.app[CONNECT_SANDBOX_KEY]
        params: dict[str, Any] = dict(request.match_info)
        if request.can_read_body:
            params |= await request.json()
        problem = request_problems(name, params)
        sandbox.calls.append({"operation": name, "params": params, "problem": problem})
        if problem:
            sandbox.problems.append(f"request {name}: {problem}")
            return _error("InvalidRequestException", problem)
        if not request.headers.get("Authorization", "").startswith("AWS4-HMAC-SHA256 "):
            return _error("AccessDeniedException", "Missing Signature Version 4 authorization")
        fault = sandbox.take_fault(name)
        if fault is not None and fault.error is not None:
            return _error(fault.error, f"injected {fault.error}")
        try:
            body = sandbox.perform(name, params)
        except ConnectFault as e:
            return _error(e.code, str(e))
        if fault is not None and fault.lose_response and request.transport is not None:
            request.transport.close()  # applied, but the caller never hears so
            return web.Response(status=500)
        problem = response_problems(name, body)
        if problem:
            sandbox.problems.append(f"response {name}: {problem}")
        return web.json_response(body)

    return handle


def create_connect_app(sandbox: ConnectSandbox | None = None) -> web.Application:
    app = web.Application()
    app[CONNECT_SANDBOX_KEY] = sandbox or ConnectSandbox()
    for name in OPERATIONS:
        http = operation(name).http
        app.router.add_route(http["method"], http["requestUri"], _handler(name))
    app.router.add_post("/__sandbox/contacts", _add_contact)
    app.router.add_post("/__sandbox/contacts/{contact_id}/disconnect", _disconnect)
    app.router.add_post("/__sandbox/users", _add_user)
    app.router.add_post("/__sandbox/faults", _add_fault)
    app.router.add_get("/__sandbox/state", _state)
    return app


async def _add_contact(request: web.Request) -> web.Response:
    contact = SandboxContact(**await request.json())
    request.app[CONNECT_SANDBOX_KEY].contacts[contact.contact_id] = contact
    return web.json_response(asdict(contact), status=201)


async def _disconnect(request: web.Request) -> web.Response:
    contact = request.app[CONNECT_SANDBOX_KEY].contacts.get(request.match_info["contact_id"])
    if contact is None:
        raise web.HTTPNotFound()
    contact.disconnected_at = time.time()
    return web.json_response(asdict(contact))


async def _add_user(request: web.Request) -> web.Response:
    user = await request.json()
    request.app[CONNECT_SANDBOX_KEY].users[user.pop("id")] = user
    return web.json_response(user, status=201)


async def _add_fault(request: web.Request) -> web.Response:
    fault = Fault(**await request.json())
    request.app[CONNECT_SANDBOX_KEY].faults.append(fault)
    return web.json_response(asdict(fault), status=201)


async def _state(request: web.Request) -> web.Response:
    return web.Response(
        text=json.dumps(request.app[CONNECT_SANDBOX_KEY].snapshot(), default=str),
        content_type="application/json",
    )


async def run_connect_sandbox(host: str, port: int) -> None:
    """Serve a Connect sandbox until cancelled (`switchboard connect-sandbox --port N`)."""
    runner = web.AppRunner(create_connect_app(), access_log=None)
    await runner.setup()
    await web.TCPSite(runner, host, port).start()
    log.info("connect_sandbox_listening", url=f"http://{host}:{port}", instance=DEFAULT_INSTANCE)
    try:
        await asyncio.Event().wait()
    finally:
        await runner.cleanup()
