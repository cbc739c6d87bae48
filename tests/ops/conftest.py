"""A real daemon on its embedded Zendesk sandbox, and one voice call through it."""

from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import pytest

from clients.python.tab import TabClient
from daemon.app import Daemon
from daemon.zendesk.retry import RetryPolicy
from tests.daemons import eventually, running, token, ws_url

AGENT = "agent-ops"
TIMEOUT = 20.0  # generous: `eventually` returns as soon as the condition holds


@pytest.fixture
async def node() -> AsyncIterator[Daemon]:
    async with running(workflow_lease_seconds=1.5) as daemon:
        # The client's patience is not a setting: shorten it so backoffs fit in a test.
        daemon.zendesk.client.timeout = 2.0
        daemon.zendesk.client.retry = RetryPolicy(max_attempts=5, base_delay=0.05)
        yield daemon


async def open_agent_tab(daemon: Daemon) -> TabClient:
    user_id = daemon.zendesk.agent_user_id(AGENT)
    credential = token(AGENT, zendesk_user_id=user_id, name="Erin Agent")
    return await TabClient(ws_url(daemon), credential, tab_id="tab-1").connect()


async def sandbox_faults(daemon: Daemon, rules: list[dict[str, Any]] | None) -> None:
    """Add fault rules to the embedded sandbox over HTTP, or clear them all (None)."""
    url = f"{daemon.zendesk.client.base_url}/__sandbox/faults"
    async with aiohttp.ClientSession() as http:
        if rules is None:
            async with http.delete(url) as resp:
                assert resp.status == 200
        else:
            async with http.post(url, json=rules) as resp:
                assert resp.status == 201, await resp.text()


async def tickets_of(daemon: Daemon, contact_id: str) -> list[dict[str, Any]]:
    assert daemon.zendesk.sandbox_state is not None
    state = await daemon.zendesk.sandbox_state()
    return [t for t in state["tickets"] if t.get("external_id") == contact_id]


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


async def finished(daemon: Daemon, contact_id: str) -> dict[str, Any]:
    """Wait for the call's workflow to finish; returns its ticket."""

    async def done() -> bool:
        # The voice comment is the last write of the call; then the store forgets the workflow.
        tickets = await tickets_of(daemon, contact_id)
        if not any(c["type"] == "VoiceComment" for t in tickets for c in t["comments"]):
            return False
        pending = await daemon.store.workflows_list()
        return all(c != contact_id for _, c in pending)

    await eventually(done, TIMEOUT)
    (ticket,) = await tickets_of(daemon, contact_id)
    return ticket


async def call(daemon: Daemon, tab: TabClient, contact_id: str) -> dict[str, Any]:
    """One inbound call from an unknown caller, start to end; returns its finished ticket."""
    await report_call(tab, contact_id, unknown_caller())
    return await finished(daemon, contact_id)
