"""A workflow runner wired to a real sandbox over real HTTP and a MemoryStore.

`Rig` plays the daemon around the runner: it holds the contacts (as the agent aggregate
would), collects what the runner reports to the tabs, hands out fencing leases and runs a
contact the way the scheduler does. Every sandbox records its traffic, and at teardown all of
it must validate against Zendesk's OpenAPI description.
"""

from __future__ import annotations

import asyncio
import itertools
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

import pytest
from aiohttp.test_utils import TestServer

from daemon.core.events import WorkflowReported
from daemon.core.settings import AppSettings
from daemon.core.state import AgentCommand, Contact
from daemon.core.workflow import AgentInfo, Identity, Scope
from daemon.sandbox import SANDBOX_KEY, Sandbox, SandboxConfig, create_app
from daemon.store.base import Lease, Store
from daemon.store.memory import MemoryStore
from daemon.zendesk.auth import ApiTokenAuth
from daemon.zendesk.client import ZendeskClient
from daemon.zendesk.runner import RunnerDeps, RunResult, run_contact
from tests.oas import assert_exchanges_valid

EMAIL = "agent@example.com"
TOKEN = "sandbox-token"
AGENT = "agent-1"
T0 = 1_700_000_000.0
APP = AppSettings(instance_url="https://acme.my.connect.aws", default_dialed_number="+441632960000")
WRITES = ("POST", "PUT", "PATCH", "DELETE")
#: The runner's "longest Zendesk may still apply a request" (fake-clock seconds).
LANDING = 5.0


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@dataclass
class Rig:
    sandbox: Sandbox
    base_url: str
    store: MemoryStore
    clock: FakeClock
    agent_id: int
    contacts: dict[tuple[str, str], Contact] = field(default_factory=dict)  # (agent, id)
    reports: list[WorkflowReported] = field(default_factory=list)
    clients: list[ZendeskClient] = field(default_factory=list)
    holders: itertools.count[int] = field(default_factory=lambda: itertools.count(1))
    settings: AppSettings = APP

    def identity(self, contact_id: str = "c-1", agent: str = AGENT) -> Identity:
        """What the runner's writes for this contact of this agent carry."""
        return Scope(urlsplit(self.base_url).netloc, agent).of(contact_id)

    def client(self, **kw: Any) -> ZendeskClient:
        opts: dict[str, Any] = {"timeout": 2.0, "max_attempts": 5, "backoff_base": 0.01}
        opts.update(kw)
        client = ZendeskClient(self.base_url, ApiTokenAuth(EMAIL, TOKEN), **opts)
        self.clients.append(client)
        return client

    def deps(self, store: Store | None = None, client: ZendeskClient | None = None) -> RunnerDeps:
        async def agent_info(agent: str) -> AgentInfo:
            return AgentInfo(user_id=self.agent_id, name="Sandbox Agent")

        async def load_contact(agent: str, contact_id: str) -> Contact | None:
            return self.contacts.get((agent, contact_id))

        async def report(agent: str, event: WorkflowReported) -> None:
            self.reports.append(event)
            known = self.contacts.get((agent, event.contact_id))
            if event.status is not None and known is not None:  # as the agent's state keeps it
                status = {"workflow": event.status, "workflow_reason": event.reason}
                self.contacts[(agent, event.contact_id)] = known.evolve(**status)

        return RunnerDeps(
            store=store or self.store,
            client=client or self.client(),
            settings=self.settings,
            agent_info=agent_info,
            load_contact=load_contact,
            report=report,
            clock=self.clock,
            landing_seconds=LANDING,
            backoff_base=0.5,
            backoff_cap=4.0,
        )

    async def lease(self, contact_id: str, ttl: float = 30.0, agent: str = AGENT) -> Lease:
        lease = await self.store.claim_lease(
            agent, f"runner:{contact_id}", f"node-{next(self.holders)}", ttl
        )
        assert lease is not None
        return lease

    async def run(
        self,
        contact: Contact,
        *,
        deps: RunnerDeps | None = None,
        lease: Lease | None = None,
        agent: str = AGENT,
    ) -> RunResult:
        """One scheduler run: claim, run, release."""
        self.contacts[(agent, contact.contact_id)] = contact
        held = lease or await self.lease(contact.contact_id, agent=agent)
        d = deps or self.deps()
        try:
            async with d.client:
                return await run_contact(d, agent, contact.contact_id, held)
        finally:
            await self.store.release_lease(held)

    async def finish(
        self, contact: Contact, *, agent: str = AGENT, runs: int = 20, **kw: Any
    ) -> list[RunResult]:
        """Run as the scheduler would until done: after a transient failure the next run
        comes at the contact's next attempt time (the fake clock jumps there; a runner on
        the real clock really waits, so a held request can land meanwhile)."""
        results: list[RunResult] = []
        deps: RunnerDeps | None = kw.get("deps")
        for _ in range(runs):
            result = await self.run(contact, agent=agent, **kw)
            results.append(result)
            if result.done or result.retry_at is None:
                return results
            if deps is not None and deps.clock is time.time:
                await asyncio.sleep(max(0.0, result.retry_at - time.time()))
            else:
                self.clock.now = max(self.clock.now, result.retry_at)
        raise AssertionError(f"not done after {runs} runs: {results[-1]}")

    # -- looking at the sandbox ------------------------------------------------------------

    def customer(self, name: str, phone: str | None = None, **kw: Any) -> int:
        return self.sandbox.create_user(name=name, phone=phone, indexed=True, **kw).id

    def tickets(self) -> list[Any]:
        return sorted(self.sandbox.tickets.values(), key=lambda t: t.id)

    def end_users(self) -> list[Any]:
        return [u for u in self.sandbox.users.values() if u.role == "end-user"]

    def requests(self) -> int:
        return self.sandbox.request_count()

    def write_requests(self) -> int:
        return sum(self.sandbox.request_count(method=m) for m in WRITES)


@pytest.fixture
async def rig() -> AsyncIterator[Rig]:
    server = TestServer(create_app(SandboxConfig(record_exchanges=True)))
    await server.start_server()
    sandbox: Sandbox = server.app[SANDBOX_KEY]
    clock = FakeClock()
    r = Rig(
        sandbox=sandbox,
        base_url=str(server.make_url("")).rstrip("/"),
        store=MemoryStore(clock=clock),
        clock=clock,
        agent_id=sandbox.agent_ids()[0],
    )
    yield r
    for client in r.clients:
        await client.close()
    await server.close()
    assert_exchanges_valid(sandbox, min_count=0)


def contact(
    events: tuple[str, ...] = ("incoming", "connected", "ended"),
    *,
    contact_id: str = "c-1",
    cli: str | None = "+447700900123",
    attributes: dict[str, str] | None = None,
    commands: list[AgentCommand] | None = None,
    **extra: Any,
) -> Contact:
    order = [
        "incoming",
        "connecting",
        "accepted",
        "connected",
        "missed",
        "ended",
        "acw",
        "destroyed",
    ]
    times = {e: T0 + i for i, e in enumerate(events)}
    if "connected" in times and "ended" in times:
        times["ended"] = times["connected"] + 42
    return Contact.from_dict(
        {
            "contact_id": contact_id,
            "state": max(events, key=order.index),
            "events_seen": list(events),
            "event_times": times,
            "customer_endpoint": cli,
            "attributes": attributes or {},
            "queue": "Support",
            "agent_name": "Sandbox Agent",
            "routing_profile": "Basic",
            "commands": commands or [],
            "created_at": T0,
            "finished_at": times.get("ended"),
            **extra,
        }
    )
