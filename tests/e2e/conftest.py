"""End-to-end rig: a real daemon, real tabs over WebSockets, the Zendesk sandbox over HTTP.

The sandbox runs in the test process (so its state and recorded traffic can be read
directly) with `record_exchanges` on; the daemon talks to it over real HTTP exactly as it
would to Zendesk (`zendesk_url` + API token). At teardown every recorded exchange must
validate against Zendesk's OpenAPI description (`tests/oas.py`).
"""

from __future__ import annotations

import asyncio
import itertools
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

import aiohttp
import pytest
from aiohttp.test_utils import TestServer

from clients.python.tab import TabClient
from daemon.app import Daemon
from daemon.connect.sandbox import (
    CONNECT_SANDBOX_KEY,
    DEFAULT_INSTANCE,
    ConnectSandbox,
    create_connect_app,
)
from daemon.core.state import AgentState
from daemon.core.workflow import Identity, Scope
from daemon.sandbox import SANDBOX_KEY, Sandbox, SandboxConfig, create_app
from daemon.zendesk.retry import RetryPolicy
from protocol.messages import Error, Notify, Pop, WorkflowStatus
from tests.daemons import eventually, settings, token
from tests.oas import assert_exchanges_valid

EMAIL, API_TOKEN = "agent@example.com", "sandbox-token"
AGENT = "agent-e2e"
CLI = "+447700900123"
DETAILS = "Amazon Connect Contact Details"
TRANSCRIPT = "Chat transcript"
#: Short timings so that grace, failover and the workflow scan happen within a test.
FAST: dict[str, Any] = {
    "grace_seconds": 0.5,
    "workflow_scan_seconds": 0.3,
    "workflow_lease_seconds": 1.5,
    "node_ttl_seconds": 1.5,
    "workflow_landing_seconds": 2.0,
}
TIMEOUT = 15.0  # generous: `eventually` returns as soon as the condition holds
CONNECT_ARN = f"arn:aws:connect:eu-west-2:111122223333:instance/{DEFAULT_INSTANCE}"
#: The rig agent's Amazon Connect user (its email is the agent's Zendesk email).
CONNECT_USER = "u-erin"


def voice(cli: str | None = CLI, **extra: Any) -> dict[str, Any]:
    """The contact snapshot every tab's CCP reports for an inbound call."""
    snap: dict[str, Any] = {
        "type": "voice",
        "direction": "inbound",
        "queue": "Support",
        "agent_name": "Erin Agent",
        "routing_profile": "Basic",
    }
    if cli is not None:
        snap["customer_endpoint"] = cli
    snap.update(extra)
    return snap


def chat(**extra: Any) -> dict[str, Any]:
    snap: dict[str, Any] = {"type": "chat", "direction": "inbound", "queue": "Chat"}
    snap.update(extra)
    return snap


@dataclass
class Rig:
    """One sandbox; daemons started on it; tabs of one agent (more agents on demand)."""

    server: TestServer
    sandbox: Sandbox
    base_url: str
    agent_user_id: int
    daemons: list[Daemon] = field(default_factory=list)
    tabs: list[TabClient] = field(default_factory=list)
    _ids: itertools.count[int] = field(default_factory=lambda: itertools.count(1))

    # -- the daemon and its tabs ----------------------------------------------------------

    def daemon_settings(self, **overrides: Any) -> dict[str, Any]:
        return {
            **FAST,
            "zendesk_url": self.base_url,
            "zendesk_email": EMAIL,
            "zendesk_api_token": API_TOKEN,
            **overrides,
        }

    async def start(self, *, fast_client: bool = True, **overrides: Any) -> Daemon:
        daemon = Daemon(settings(**self.daemon_settings(**overrides)))
        await daemon.start()
        self.daemons.append(daemon)
        if fast_client:
            # The Zendesk client's patience is not a setting: shorten it so injected
            # timeouts and backoffs fit in a test (the retry logic itself is unchanged).
            daemon.zendesk.client.timeout = 1.0
            daemon.zendesk.client.retry = RetryPolicy(max_attempts=5, base_delay=0.05)
            # Likewise the runner's backoff: a contact's next attempt after a failure comes
            # after a fifth of a second at first.
            deps = daemon.zendesk.deps
            deps.backoff_base, deps.backoff_cap = 0.2, 2.0
        return daemon

    @property
    def daemon(self) -> Daemon:
        return self.daemons[-1]

    def ws_url(self, daemon: Daemon | None = None) -> str:
        return f"ws://127.0.0.1:{(daemon or self.daemon).ws_port}/ws"

    def token(self, agent: str = AGENT) -> str:
        return token(agent, zendesk_user_id=self.agent_user_id, name="Erin Agent")

    async def tab(
        self, tab_id: str | None = None, *, url: str | None = None, **options: Any
    ) -> TabClient:
        client = TabClient(
            url or self.ws_url(),
            self.token(),
            tab_id=tab_id or f"tab-{next(self._ids)}",
            **options,
        )
        await client.connect()
        self.tabs.append(client)
        return client

    # -- looking at Zendesk -----------------------------------------------------------------

    def identity(self, contact_id: str, agent: str = AGENT) -> Identity:
        """What the daemon's writes for this contact of this agent carry."""
        return Scope(urlsplit(self.base_url).netloc, agent).of(contact_id)

    def customer(self, name: str, phone: str | None = None, **kw: Any) -> int:
        """An end user already in Zendesk (searchable at once)."""
        return self.sandbox.create_user(name=name, phone=phone, indexed=True, **kw).id

    def state(self) -> dict[str, Any]:
        return self.sandbox.snapshot(self.base_url)

    def end_users(self) -> list[dict[str, Any]]:
        return [u for u in self.state()["users"] if u["role"] == "end-user"]

    def tickets(self, contact_id: str | None = None) -> list[dict[str, Any]]:
        found = self.state()["tickets"]
        if contact_id is None:
            return list(found)
        wanted = self.identity(contact_id).external_id
        return [t for t in found if t.get("external_id") == wanted]

    def requests(self) -> dict[str, int]:
        return dict(self.sandbox.requests)

    # -- the sandbox's admin endpoints (over HTTP, as an out-of-process test would) ----------

    async def add_faults(self, rules: list[dict[str, Any]]) -> None:
        url = f"{self.base_url}/__sandbox/faults"
        async with aiohttp.ClientSession() as http, http.post(url, json=rules) as resp:
            assert resp.status == 201, await resp.text()

    async def clear_faults(self) -> None:
        url = f"{self.base_url}/__sandbox/faults"
        async with aiohttp.ClientSession() as http, http.delete(url) as resp:
            assert resp.status == 200

    # -- looking at the daemon ---------------------------------------------------------------

    async def agent_state(self, agent: str = AGENT) -> AgentState:
        _, state = await self.daemon.hub.load(agent, fresh=True)
        return state

    async def finished(
        self,
        contact_id: str,
        timeout: float = TIMEOUT,
        *,
        status: WorkflowStatus = "done",
        reason: str | None = None,
    ) -> None:
        """The daemon's workflow for the contact is over (the store forgot it) and every tab
        of the agent sees it ended as `status` (with `reason`)."""

        async def gone() -> bool:
            pending = await self.daemon.store.workflows_list()
            return all(c != contact_id for _, c in pending)

        def shown() -> bool:
            tabs = [t for t in self.tabs if t.role == "embedded" and not t.closed]
            views = [t.contacts.get(contact_id) for t in tabs]
            return all(
                v is not None and (v.workflow, v.workflow_reason) == (status, reason) for v in views
            )

        await eventually(gone, timeout)
        await eventually(shown, timeout)


def comments(ticket: dict[str, Any], *, kind: str | None = None, starts: str = "") -> list[Any]:
    return [
        c
        for c in ticket["comments"]
        if (kind is None or c["type"] == kind) and c["body"].startswith(starts)
    ]


def voice_comments(ticket: dict[str, Any]) -> list[Any]:
    return comments(ticket, kind="VoiceComment")


def details(ticket: dict[str, Any]) -> list[Any]:
    return comments(ticket, starts=DETAILS)


def transcripts(ticket: dict[str, Any]) -> list[Any]:
    return comments(ticket, starts=TRANSCRIPT)


def live_pops(tab: TabClient, contact_id: str) -> list[tuple[str, int | None]]:
    """Pops the tab received live (a replay is marked and must not pop again)."""
    return [
        (m.target, m.id)
        for m in tab.received
        if isinstance(m, Pop) and m.contact_id == contact_id and not m.replayed
    ]


def notices(tab: TabClient, contact_id: str | None = None) -> list[Notify]:
    return [
        m
        for m in tab.received
        if isinstance(m, Notify) and (contact_id is None or m.contact_id == contact_id)
    ]


def errors(tab: TabClient, code: str) -> list[Error]:
    return [m for m in tab.received if isinstance(m, Error) and m.code == code]


async def report_all(
    tabs: Iterable[TabClient], event: str, contact_id: str, snapshot: dict[str, Any]
) -> None:
    """Every tab's CCP fires the event (the first tab first, as one is always first)."""
    for tab in tabs:
        await tab.report(event, contact_id, **snapshot)


async def until(check: Callable[[], bool | Awaitable[bool]], timeout: float = TIMEOUT) -> None:
    await eventually(check, timeout)


async def settle(seconds: float = 0.6) -> None:
    """Time for a duplicate to appear, before asserting that none did (never for progress)."""
    await asyncio.sleep(seconds)


@pytest.fixture
async def sandbox_server() -> AsyncIterator[TestServer]:
    server = TestServer(create_app(SandboxConfig(record_exchanges=True)))
    await server.start_server()
    yield server
    await server.close()
    assert_exchanges_valid(server.app[SANDBOX_KEY], min_count=0)


@pytest.fixture
async def rig(sandbox_server: TestServer) -> AsyncIterator[Rig]:
    sandbox: Sandbox = sandbox_server.app[SANDBOX_KEY]
    agent = sandbox.create_user(
        name="Erin Agent", email="erin@agents.example", role="agent", indexed=True
    )
    r = Rig(
        server=sandbox_server,
        sandbox=sandbox,
        base_url=str(sandbox_server.make_url("")).rstrip("/"),
        agent_user_id=agent.id,
    )
    yield r
    for tab in r.tabs:
        await tab.close()
    for daemon in r.daemons:
        await daemon.stop()


@pytest.fixture
async def connect(monkeypatch: pytest.MonkeyPatch) -> AsyncIterator[TestServer]:
    """An Amazon Connect sandbox over HTTP that knows the rig agent's Connect user; the AWS
    SDK's standard credential chain finds keys in the environment (and never reaches for
    instance metadata). At teardown all its traffic must have matched botocore's model."""
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "AKIDEXAMPLE")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "secret-for-the-sandbox")
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")
    server = TestServer(create_connect_app(), host="127.0.0.1")
    await server.start_server()
    connect_sandbox(server).users[CONNECT_USER] = {
        "username": "erin",
        "email": "Erin@Agents.Example",  # emails match case aside
    }
    yield server
    assert connect_sandbox(server).problems == []
    await server.close()


def connect_sandbox(server: TestServer) -> ConnectSandbox:
    return server.app[CONNECT_SANDBOX_KEY]


def with_connect(server: TestServer) -> dict[str, Any]:
    """Daemon settings for an Amazon Connect instance served by the sandbox."""
    return {
        "connect_instance_arn": CONNECT_ARN,
        "connect_endpoint_url": str(server.make_url("")).rstrip("/"),
    }
