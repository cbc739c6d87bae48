"""How the daemon reaches a Zendesk account: OAuth (preferred) or API token, and one shared
request budget for every node."""

import asyncio
import time
from collections.abc import AsyncIterator

import pytest
from aiohttp.test_utils import TestServer
from pydantic import SecretStr, ValidationError

from daemon.sandbox import SANDBOX_KEY, Sandbox, create_app
from daemon.store.memory import MemoryStore
from daemon.zendesk.auth import ApiTokenAuth, OAuthAuth
from daemon.zendesk.limiter import SharedRateLimiter
from daemon.zendesk.wiring import _auth
from tests.daemons import eventually, open_tab, running, settings


@pytest.fixture
async def account() -> AsyncIterator[tuple[str, Sandbox]]:
    server = TestServer(create_app())
    await server.start_server()
    yield str(server.make_url("")).rstrip("/"), server.app[SANDBOX_KEY]
    await server.close()


def test_oauth_is_preferred_then_api_token_and_nothing_else_is_refused() -> None:
    both = settings(zendesk_url="https://acme.zendesk.com", zendesk_oauth_token=SecretStr("o"))
    assert isinstance(_auth(both), OAuthAuth)
    token = settings(zendesk_url="https://acme.zendesk.com")
    assert isinstance(_auth(token), ApiTokenAuth)
    with pytest.raises(ValidationError, match="OAUTH_TOKEN"):
        settings(zendesk_url="https://acme.zendesk.com", zendesk_email=None)


@pytest.mark.parametrize("auth", ["oauth", "api_token"])
async def test_the_daemon_works_a_contact_through_either_credential(
    account: tuple[str, Sandbox], auth: str
) -> None:
    url, sandbox = account
    credentials = (
        {"zendesk_oauth_token": "sandbox-access-token"}
        if auth == "oauth"
        else {"zendesk_email": "agent@example.com", "zendesk_api_token": "sandbox-token"}
    )
    async with running(zendesk_url=url, **credentials) as daemon:
        tab = await open_tab(daemon, "alice")
        call = {"type": "voice", "customer_endpoint": "+15550001111"}
        await tab.report("incoming", "c-1", **call)
        await tab.report("connected", "c-1", **call)
        tickets = sandbox.tickets.values()
        await eventually(lambda: any(str(t.external_id).endswith(":c-1") for t in tickets))
        await tab.close()


async def test_nodes_share_one_request_budget() -> None:
    store = MemoryStore()
    first = SharedRateLimiter(store, "zendesk:acme", per_minute=600, burst=2)
    second = SharedRateLimiter(store, "zendesk:acme", per_minute=600, burst=2)
    for _ in range(3):  # the whole burst, taken by one node
        await first.acquire()
    started = time.monotonic()
    await asyncio.wait_for(second.acquire(), 2)  # the other node waits for the next slot
    assert time.monotonic() - started >= 0.05
