"""A faithful in-memory simulator of the Zendesk Support API, served by aiohttp.

Used by tests (over real HTTP) and by ``switchboard serve`` when no Zendesk account is
configured. Responses follow Zendesk's OpenAPI description; fault injection, request counts and
state inspection live under ``/__sandbox/``.
"""

from daemon.sandbox.app import create_app, run_sandbox
from daemon.sandbox.clock import Clock
from daemon.sandbox.config import PLAN_RATE_LIMITS, ApiCredential, OAuthClient, SandboxConfig
from daemon.sandbox.faults import FaultRule
from daemon.sandbox.keys import SANDBOX_KEY
from daemon.sandbox.recorder import Exchange
from daemon.sandbox.state import Sandbox

__all__ = [
    "PLAN_RATE_LIMITS",
    "SANDBOX_KEY",
    "ApiCredential",
    "Clock",
    "Exchange",
    "FaultRule",
    "OAuthClient",
    "Sandbox",
    "SandboxConfig",
    "create_app",
    "run_sandbox",
]
