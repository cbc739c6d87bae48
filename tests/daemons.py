"""Helpers to run real daemons in the test process and connect real tab clients to them.

The daemons run in production mode (a signing secret, allowed origins, a Zendesk account):
the account is a Zendesk sandbox served over real HTTP on a free port, as `SandboxServer`.
"""

import asyncio
import contextlib
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from typing import Any

from aiohttp.test_utils import TestServer

from clients.python.tab import TabClient
from daemon.app import Daemon
from daemon.config import Settings
from daemon.sandbox import SandboxConfig, create_app
from daemon.server.auth import mint_token
from daemon.store.base import Store

SECRET = "test-secret-not-for-production-0123456789"
ORIGIN = "https://acme.zendesk.com"
SANDBOX_EMAIL, SANDBOX_TOKEN = "agent@example.com", "sandbox-token"


def settings(**overrides: Any) -> Settings:
    """Production settings for a test daemon; `zendesk_url` must be among the overrides."""
    base: dict[str, Any] = {
        "host": "127.0.0.1",
        "ws_port": 0,
        "http_port": 0,
        "secret": SECRET,
        "allowed_origins": [ORIGIN],
        "zendesk_email": SANDBOX_EMAIL,
        "zendesk_api_token": SANDBOX_TOKEN,
        "grace_seconds": 1.0,
        "workflow_scan_seconds": 0.3,
        "node_ttl_seconds": 1.5,
        "log_level": "warning",
    }
    base.update(overrides)
    return Settings(**base)


@asynccontextmanager
async def sandbox_server() -> AsyncIterator[str]:
    """A Zendesk sandbox over HTTP on a free loopback port; yields its base URL."""
    server = TestServer(create_app(SandboxConfig()), host="127.0.0.1")
    await server.start_server()
    try:
        yield str(server.make_url("")).rstrip("/")
    finally:
        await server.close()


@asynccontextmanager
async def running(**overrides: Any) -> AsyncIterator[Daemon]:
    """A daemon on its own sandbox (unless `zendesk_url` names another account)."""
    async with running_on(None, **overrides) as daemon:
        yield daemon


@asynccontextmanager
async def running_on(store: Store | None, /, **overrides: Any) -> AsyncIterator[Daemon]:
    """`running`, on `store` if given (else the one its settings name)."""
    async with contextlib.AsyncExitStack() as stack:
        if "zendesk_url" not in overrides:
            overrides["zendesk_url"] = await stack.enter_async_context(sandbox_server())
        daemon = Daemon(settings(**overrides), store=store)
        await daemon.start()
        stack.push_async_callback(daemon.stop)
        yield daemon


def ws_url(daemon: Daemon) -> str:
    return f"ws://127.0.0.1:{daemon.ws_port}/ws"


def token(agent: str, **claims: Any) -> str:
    return mint_token(SECRET, agent, **claims)


async def open_tab(daemon: Daemon, agent: str, **options: Any) -> TabClient:
    return await TabClient(ws_url(daemon), token(agent), **options).connect()


async def eventually(check: Callable[[], bool | Awaitable[bool]], timeout: float = 5.0) -> None:
    """Poll until `check` holds: for conditions reached through several async hops."""
    deadline = asyncio.get_running_loop().time() + timeout
    while True:
        result = check()
        if not isinstance(result, bool):
            result = await result
        if result:
            return
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError("condition not reached in time")
        await asyncio.sleep(0.02)
