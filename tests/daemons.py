"""Helpers to run real daemons in the test process and connect real tab clients to them."""

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from typing import Any

from clients.python.tab import TabClient
from daemon.app import Daemon
from daemon.config import Settings
from daemon.server.auth import mint_token

SECRET = "test-secret-not-for-production-0123456789"


def settings(**overrides: Any) -> Settings:
    base: dict[str, Any] = {
        "host": "127.0.0.1",
        "ws_port": 0,
        "http_port": 0,
        "secret": SECRET,
        "grace_seconds": 1.0,
        "workflow_scan_seconds": 0.3,
        "node_ttl_seconds": 1.5,
        "log_level": "warning",
    }
    base.update(overrides)
    return Settings(**base)


@asynccontextmanager
async def running(**overrides: Any) -> AsyncIterator[Daemon]:
    daemon = Daemon(settings(**overrides))
    await daemon.start()
    try:
        yield daemon
    finally:
        await daemon.stop()


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
