"""Fixtures: a real sandbox on a free localhost port, a raw HTTP session, a Zendesk client.

Every sandbox started here records its traffic, and at teardown all of it must validate
against Zendesk's OpenAPI description (tests that send invalid requests on purpose say so with
``@pytest.mark.unvalidated_traffic``).
"""

from __future__ import annotations

import base64
from collections.abc import AsyncIterator, Awaitable, Callable

import aiohttp
import pytest
from aiohttp.test_utils import TestServer

from daemon.sandbox import SANDBOX_KEY, Sandbox, SandboxConfig, create_app
from daemon.zendesk.auth import ApiTokenAuth, Auth
from daemon.zendesk.client import ZendeskClient
from daemon.zendesk.retry import RateLimiter
from tests.oas import assert_exchanges_valid

EMAIL = "agent@example.com"
TOKEN = "sandbox-token"
BASIC = "Basic " + base64.b64encode(f"{EMAIL}/token:{TOKEN}".encode()).decode()

StartSandbox = Callable[..., Awaitable[TestServer]]


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers", "unvalidated_traffic: the test sends requests the OpenAPI check must not see"
    )


@pytest.fixture
async def start_sandbox(request: pytest.FixtureRequest) -> AsyncIterator[StartSandbox]:
    """Start sandboxes (``await start_sandbox(**config)``); all are stopped and checked after."""
    servers: list[TestServer] = []

    async def start(**config: object) -> TestServer:
        settings = SandboxConfig.model_validate({"record_exchanges": True, **config})
        server = TestServer(create_app(settings))
        await server.start_server()
        servers.append(server)
        return server

    yield start
    for server in servers:
        await server.close()
    if request.node.get_closest_marker("unvalidated_traffic") is None:
        for server in servers:
            assert_exchanges_valid(server.app[SANDBOX_KEY], min_count=0)


@pytest.fixture
async def server(start_sandbox: StartSandbox) -> TestServer:
    return await start_sandbox()


@pytest.fixture
def sandbox(server: TestServer) -> Sandbox:
    return server.app[SANDBOX_KEY]


def url_of(server: TestServer) -> str:
    return str(server.make_url("")).rstrip("/")


@pytest.fixture
def base_url(server: TestServer) -> str:
    return url_of(server)


@pytest.fixture
async def http() -> AsyncIterator[aiohttp.ClientSession]:
    """A plain session carrying the sandbox agent's API-token credentials."""
    async with aiohttp.ClientSession(headers={"Authorization": BASIC}) as session:
        yield session


def client_for(
    base_url: str,
    *,
    auth: Auth | None = None,
    timeout: float = 2.0,
    max_attempts: int = 5,
    limiter: RateLimiter | None = None,
) -> ZendeskClient:
    """A client with test-sized delays: backoff base 10 ms, 2 s timeout."""
    return ZendeskClient(
        base_url,
        auth or ApiTokenAuth(EMAIL, TOKEN),
        timeout=timeout,
        max_attempts=max_attempts,
        limiter=limiter,
        backoff_base=0.01,
    )


@pytest.fixture
async def zd(base_url: str) -> AsyncIterator[ZendeskClient]:
    async with client_for(base_url) as client:
        yield client
