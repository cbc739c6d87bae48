"""Configuration: every setting is a `SWITCHBOARD_*` environment variable or a CLI flag.

With nothing set the daemon runs on its embedded default: memory store, built-in Zendesk
sandbox, a development signing secret generated at start-up and logged once.
"""

import os
import socket
from typing import Literal

from pydantic import Field, SecretStr
from pydantic_settings import BaseSettings, SettingsConfigDict

from daemon.core.events import Rules


def _default_node_id() -> str:
    return f"{socket.gethostname()}-{os.getpid()}"


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="SWITCHBOARD_", env_nested_delimiter="__")

    # Listening
    host: str = "127.0.0.1"
    ws_port: int = 8765
    http_port: int = 8766
    node_id: str = Field(default_factory=_default_node_id)

    # Tab authentication and connection limits
    secret: SecretStr | None = None  # HS256 key for tab tokens; None: generated per start
    token_ttl_seconds: int = 12 * 3600
    allowed_origins: list[str] = []  # empty: any origin (development); set it in production
    max_message_bytes: int = 64 * 1024
    rate_per_second: float = 50.0
    rate_burst: int = 100
    flood_strikes: int = 20  # refusals for rate before the connection is closed
    hello_timeout_seconds: float = 10.0
    ping_interval_seconds: float = 20.0
    ping_timeout_seconds: float = 20.0
    max_queue: int = 32

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

    # Amazon Connect app settings (see the admin guide)
    connect_instance_url: str = "https://example.my.connect.aws"
    default_country_prefix: str | None = None
    default_dialed_number: str | None = None
    ticket_attribute: str = "zendesk_ticket"
    recent_ticket_minutes: int = 0
    ctr_timezone: str | None = None
    talk_partner_edition: bool = True
    pop_via: Literal["tab", "zendesk"] = "tab"  # zendesk: Talk Partner display, tab fallback

    log_level: str = "info"
    log_format: Literal["json", "console"] = "json"

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
