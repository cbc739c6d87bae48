"""Configuration: every setting is a `SWITCHBOARD_*` environment variable or a CLI flag.

A node runs in one of two modes, and a `Settings` object that mixes them cannot be built:

- **production** (`SWITCHBOARD_ZENDESK_URL` and its credentials): tab tokens are signed with
  `SWITCHBOARD_SECRET` (at least 32 bytes), browsers must come from
  `SWITCHBOARD_ALLOWED_ORIGINS`, and nothing mints a token;
- **demo** (`SWITCHBOARD_DEMO=true`, `switchboard serve --demo`): the embedded Zendesk sandbox
  and the demo pages, whose `/demo/config` mints a token for any agent. That is only safe on
  loopback with a throw-away development secret, so the demo refuses a configured secret, a
  Zendesk account and a non-loopback address.
"""

import ipaddress
import os
import socket
from typing import Literal, Self

from pydantic import Field, SecretStr, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from daemon.core.events import Rules

MIN_SECRET_BYTES = 32


def _default_node_id() -> str:
    return f"{socket.gethostname()}-{os.getpid()}"


def is_loopback(host: str) -> bool:
    """Whether listening on `host` keeps the port on this machine."""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="SWITCHBOARD_", env_nested_delimiter="__")

    # Mode (see the module docstring)
    demo: bool = False
    admin_token: SecretStr | None = None  # bearer for /admin/*; unset: loopback callers only

    # Listening
    host: str = "127.0.0.1"
    ws_port: int = 8765
    http_port: int = 8766
    node_id: str = Field(default_factory=_default_node_id)

    # Tab authentication and connection limits
    secret: SecretStr | None = None  # HS256 key for tab tokens; demo: a generated dev secret
    token_ttl_seconds: int = 12 * 3600
    allowed_origins: list[str] = []  # browser origins; empty (any) only in the demo
    max_message_bytes: int = 64 * 1024
    rate_per_second: float = 50.0
    rate_burst: int = 100
    flood_strikes: int = 20  # refusals for rate before the connection is closed
    hello_timeout_seconds: float = 10.0
    ping_interval_seconds: float = 20.0
    ping_timeout_seconds: float = 20.0
    max_queue: int = 32
    # Per-agent budgets (wire), shared by all of an agent's connections on this node. Messages:
    # over the rate, reading pauses (back-pressure) up to the wait, then frames are refused.
    # Time: an agent's frames may keep the node busy this share of the time (bursts aside),
    # counting what the node spent on them, not their waits (`daemon.server.waits`); over
    # it, its connections are not read until it is paid back.
    agent_rate_per_second: float = 150.0
    agent_rate_burst: int = 300
    agent_max_wait_seconds: float = 1.0
    agent_busy_share: float = 0.25
    agent_busy_burst_seconds: float = 0.5

    # Agent rules
    grace_seconds: float = 30.0
    failover: bool = True
    media_less: bool = False
    media_gate: Literal["warn", "block"] = "warn"
    finished_retention_seconds: float = 900.0
    # Per-agent bounds (a refusal with a typed error past each; see daemon.core.events.Rules)
    max_open_contacts: int = 50
    max_tabs: int = 50
    max_attributes: int = 400  # per contact, across its reports
    max_chat_lines: int = 2000  # per contact
    max_state_bytes: int = 4 * 1024 * 1024  # the agent's encoded contacts
    idle_contact_seconds: float = 12 * 3600.0  # an open contact quiet this long is dropped

    # Store
    redis_url: str | None = None  # redis://, rediss://, unix://; None: in-memory store
    redis_cluster: bool = False
    stream_max: int = 1000
    stream_max_age_seconds: float = Field(default=3600.0, gt=0)
    node_ttl_seconds: float = 6.0

    # Zendesk (None: the embedded sandbox)
    zendesk_url: str | None = None
    zendesk_email: str | None = None
    zendesk_api_token: SecretStr | None = None
    zendesk_oauth_token: SecretStr | None = None
    zendesk_oauth_refresh_token: SecretStr | None = None
    zendesk_oauth_client_id: str | None = None
    zendesk_oauth_client_secret: SecretStr | None = None
    zendesk_plan: Literal["team", "professional", "enterprise", "high_volume"] = "professional"
    workflow_lease_seconds: float = 15.0
    workflow_scan_seconds: float = 2.0
    # The longest Zendesk may still apply a request after the daemon stopped waiting for it
    # (a paused or killed sender): an unanswered write is re-checked only after this.
    workflow_landing_seconds: float = 60.0

    # Amazon Connect's API (unset: recording control and contact confirmation are off).
    # Credentials come from the standard AWS chain; the region from the ARN.
    connect_instance_arn: str | None = None
    connect_endpoint_url: str | None = None  # another endpoint (e.g. the Connect sandbox)
    connect_describe_per_minute: int = 300  # all nodes together, inside Connect's API quota
    # Contact confirmation (daemon/connect/confirm.py): how long a new contact's first report
    # waits for Connect before it is believed unconfirmed, and Connect usernames mapped to
    # Zendesk user ids where the Connect user's username/email is not the agent's email.
    connect_confirm_wait_seconds: float = Field(default=2.0, gt=0)
    # New contacts one agent may have checked with Connect per minute (a burst of 10).
    connect_checks_per_agent_per_minute: float = Field(default=20.0, gt=0)
    connect_agent_map: dict[str, int] = {}

    # Amazon Connect app settings (see the admin guide)
    connect_instance_url: str = "https://example.my.connect.aws"
    default_country_prefix: str | None = None
    default_dialed_number: str | None = None
    ticket_attribute: str = "zendesk_ticket"
    recent_ticket_minutes: int = 0
    ctr_timezone: str | None = None
    talk_partner_edition: bool = True
    pop_via: Literal["tab", "zendesk"] = "tab"  # zendesk: Talk Partner display, tab fallback

    # The Zendesk app (clients/zendesk-app): its pages are public, so they get their own
    # listener, served only once Zendesk's key for the app is configured. See
    # daemon/server/zendesk_app.py.
    app_port: int = 8768
    zendesk_app_public_key: str | None = None  # PEM; Zendesk signs the app's first request
    zendesk_app_installation_id: int | None = None  # the installation the tokens are for
    app_token_ttl_seconds: int = 600  # the app page's tab token; the page refreshes it
    app_session_max_seconds: int = 12 * 3600  # refreshes stop: the agent reopens Zendesk
    public_ws_url: str | None = None  # what agents' browsers dial; default: this host, ws_port
    app_settings_refresh_seconds: float = 60.0  # re-read the installation's app settings

    log_level: Literal["debug", "info", "warning", "error"] = "info"
    log_format: Literal["auto", "json", "console"] = "auto"  # auto: console on a terminal

    @model_validator(mode="after")
    def _one_mode(self) -> Self:
        """Refuse a configuration that could leak access, naming what to set instead."""
        problem = self.demo_problem() if self.demo else self.production_problem()
        if problem:
            raise ValueError(problem)
        return self

    def demo_problem(self) -> str | None:
        if self.secret is not None:
            return (
                "SWITCHBOARD_DEMO mints a token for any agent, so it never runs with "
                "SWITCHBOARD_SECRET: unset one of them"
            )
        if self.zendesk_url is not None:
            return (
                "SWITCHBOARD_DEMO runs the embedded Zendesk sandbox: unset SWITCHBOARD_ZENDESK_URL"
            )
        if not is_loopback(self.host):
            return (
                f"SWITCHBOARD_DEMO serves on loopback only, not {self.host!r}: "
                "set SWITCHBOARD_HOST=127.0.0.1"
            )
        return None

    def production_problem(self) -> str | None:
        if self.zendesk_url is None:
            return (
                "no Zendesk account: set SWITCHBOARD_ZENDESK_URL and its credentials, or run "
                "the local demo on the embedded sandbox with `switchboard serve --demo`"
            )
        if self.zendesk_oauth_token is None and not (self.zendesk_email and self.zendesk_api_token):
            return (
                "SWITCHBOARD_ZENDESK_URL is set: also set SWITCHBOARD_ZENDESK_OAUTH_TOKEN "
                "(preferred) or SWITCHBOARD_ZENDESK_EMAIL and SWITCHBOARD_ZENDESK_API_TOKEN"
            )
        if self.secret is None:
            return (
                "SWITCHBOARD_SECRET is required: the key that signs tab tokens, a random string "
                f"of at least {MIN_SECRET_BYTES} bytes (e.g. `openssl rand -base64 48`)"
            )
        size = len(self.secret.get_secret_value().encode())
        if size < MIN_SECRET_BYTES:
            return f"SWITCHBOARD_SECRET is {size} bytes: use at least {MIN_SECRET_BYTES}"
        if (self.zendesk_app_public_key is None) != (self.zendesk_app_installation_id is None):
            return (
                "the Zendesk app needs both SWITCHBOARD_ZENDESK_APP_PUBLIC_KEY and "
                "SWITCHBOARD_ZENDESK_APP_INSTALLATION_ID (Admin Center → Apps → the app's page)"
            )
        if not self.allowed_origins:
            return (
                "SWITCHBOARD_ALLOWED_ORIGINS is empty: list the Zendesk origins tabs come from, "
                """e.g. '["https://acme.zendesk.com"]'"""
            )
        return None

    def rules(self) -> Rules:
        return Rules(
            grace_seconds=self.grace_seconds,
            failover=self.failover,
            media_less=self.media_less,
            media_gate=self.media_gate,
            finished_retention_seconds=self.finished_retention_seconds,
            node_timeout_seconds=self.node_ttl_seconds,
            max_open_contacts=self.max_open_contacts,
            max_tabs=self.max_tabs,
            max_attributes=self.max_attributes,
            max_chat_lines=self.max_chat_lines,
            max_state_bytes=self.max_state_bytes,
            idle_contact_seconds=self.idle_contact_seconds,
        )
