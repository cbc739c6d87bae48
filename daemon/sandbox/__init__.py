"""A faithful in-memory simulator of the Zendesk Support API, served by aiohttp.

DEVELOPMENT PART, NOT FOR PRODUCTION. It keeps everything in memory and exposes fault
injection and state under ``/__sandbox/`` to anyone who can reach it. It ships in the
distribution (it needs no dependency beyond the daemon's own) for the test suite, which drives
it over real HTTP, and for the local demo (``switchboard serve --demo``); a production node
talks to a real Zendesk account and never starts it. Responses follow Zendesk's OpenAPI
description.
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
