"""A real daemon on a Zendesk sandbox over real HTTP, and one voice call through it.

The sandbox is the one the daemon embeds for its demo, served here in the test process (as in
tests/e2e) so its state can be read; the daemon talks to it as it would to Zendesk.
"""

from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

import aiohttp
import pytest
from aiohttp.test_utils import TestServer

from clients.python.tab import TabClient
from daemon.app import Daemon
from daemon.sandbox import SANDBOX_KEY, Sandbox, SandboxConfig, create_app
from daemon.zendesk.retry import RetryPolicy
from tests.daemons import eventually, settings, token, ws_url
from tests.processes import contact_tickets

AGENT = "agent-ops"
EMAIL, API_TOKEN = "agent@example.com", "sandbox-token"
TIMEOUT = 20.0  # generous: `eventually` returns as soon as the condition holds


@dataclass
class Node:
    """A running daemon and the Zendesk account (sandbox) it talks to."""

    daemon: Daemon
    sandbox: Sandbox
    zendesk_url: str


@pytest.fixture
async def node() -> AsyncIterator[Node]:
    server = TestServer(create_app(SandboxConfig()), host="127.0.0.1")
    await server.start_server()
    url = str(server.make_url("")).rstrip("/")
    daemon = Daemon(
        settings(
            zendesk_url=url,
            zendesk_email=EMAIL,
            zendesk_api_token=API_TOKEN,
            workflow_lease_seconds=1.5,
        )
    )
    await daemon.start()
    # The client's patience is not a setting: shorten it so backoffs fit in a test.
    daemon.zendesk.client.timeout = 2.0
    daemon.zendesk.client.retry = RetryPolicy(max_attempts=5, base_delay=0.05)
    try:
        yield Node(daemon, server.app[SANDBOX_KEY], url)
    finally:
        await daemon.stop()
        await server.close()


async def open_agent_tab(node: Node) -> TabClient:
    agent = node.sandbox.create_user(
        name="Erin Agent", email=f"{AGENT}@agents.example", role="agent", indexed=True
    )
    credential = token(AGENT, zendesk_user_id=agent.id, name="Erin Agent")
    return await TabClient(ws_url(node.daemon), credential, tab_id="tab-1").connect()


async def sandbox_faults(node: Node, rules: list[dict[str, Any]] | None) -> None:
    """Add fault rules to the sandbox over HTTP, or clear them all (None)."""
    url = f"{node.zendesk_url}/__sandbox/faults"
    async with aiohttp.ClientSession() as http:
        if rules is None:
            async with http.delete(url) as resp:
                assert resp.status == 200
        else:
            async with http.post(url, json=rules) as resp:
                assert resp.status == 201, await resp.text()


def tickets_of(node: Node, contact_id: str) -> list[dict[str, Any]]:
    return contact_tickets(node.sandbox.snapshot(node.zendesk_url)["tickets"], contact_id)


def unknown_caller(name: str = "Newt Caller", cli: str = "+447700900123") -> dict[str, Any]:
    """The snapshot a tab's CCP reports for an inbound call from a caller Zendesk lacks."""
    return {
        "type": "voice",
        "direction": "inbound",
        "queue": "Support",
        "customer_endpoint": cli,
        "attributes": {"customer_name": name},
    }


async def report_call(tab: TabClient, contact_id: str, snap: dict[str, Any]) -> None:
    for event in ("incoming", "connected", "ended"):
        await tab.report(event, contact_id, **snap)


async def finished(node: Node, contact_id: str) -> dict[str, Any]:
    """Wait for the call's workflow to finish; returns its ticket."""

    async def done() -> bool:
        # The voice comment is the last write of the call; then the store forgets the workflow.
        tickets = tickets_of(node, contact_id)
        if not any(c["type"] == "VoiceComment" for t in tickets for c in t["comments"]):
            return False
        pending = await node.daemon.store.workflows_list()
        return all(c != contact_id for _, c in pending)

    await eventually(done, TIMEOUT)
    (ticket,) = tickets_of(node, contact_id)
    return ticket


async def call(node: Node, tab: TabClient, contact_id: str) -> dict[str, Any]:
    """One inbound call from an unknown caller, start to end; returns its finished ticket."""
    await report_call(tab, contact_id, unknown_caller())
    return await finished(node, contact_id)
