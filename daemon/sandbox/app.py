"""Composition of the sandbox: the aiohttp application and a runner for ``switchboard sandbox``."""

from __future__ import annotations

import asyncio

import structlog
from aiohttp import web

from daemon.sandbox import (
    admin,
    api_apps,
    api_oauth,
    api_search,
    api_tickets,
    api_uploads,
    api_users,
    api_voice,
)
from daemon.sandbox.clock import Clock
from daemon.sandbox.config import SandboxConfig
from daemon.sandbox.keys import SANDBOX_KEY
from daemon.sandbox.middleware import api_gate, record, zendesk_errors
from daemon.sandbox.state import Sandbox

log = structlog.get_logger("switchboard.sandbox")


def create_app(
    config: SandboxConfig | None = None, *, clock: Clock | None = None
) -> web.Application:
    """A fresh simulated Zendesk account behind an aiohttp app.

    The account state is ``app[SANDBOX_KEY]`` (a :class:`Sandbox`), for in-process tests and
    the daemon's demo page.
    """
    app = web.Application(middlewares=[record, zendesk_errors, api_gate])
    app[SANDBOX_KEY] = Sandbox(config, clock)
    modules = (api_users, api_tickets, api_voice, api_search, api_uploads, api_oauth, api_apps)
    for module in (*modules, admin):
        module.setup(app.router)
    return app


async def run_sandbox(host: str, port: int, config: SandboxConfig | None = None) -> None:
    """Serve a sandbox until cancelled (``switchboard sandbox --port N``)."""
    runner = web.AppRunner(create_app(config), access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, host, port)
    await site.start()
    log.info("sandbox.listening", addresses=[str(a) for a in runner.addresses])
    try:
        await asyncio.Event().wait()
    finally:
        await runner.cleanup()
