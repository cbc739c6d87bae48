"""Settings of a simulated Zendesk account.

A pydantic model so that ``PATCH /__sandbox/config`` can change a running sandbox (an
out-of-process end-to-end test turning Talk Partner Edition off, say) with the same validation
as in-process construction.
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

#: Zendesk's documented account-wide API limits (requests per minute) by plan.
PLAN_RATE_LIMITS: dict[str, int] = {
    "team": 200,
    "professional": 400,
    "enterprise": 700,
    "high_volume": 2500,
}


class ApiCredential(BaseModel):
    """An agent who may call the API with ``{email}/token:{token}`` basic auth."""

    model_config = ConfigDict(frozen=True)

    email: str
    token: str
    name: str = "Sandbox Agent"
    role: Literal["agent", "admin"] = "admin"


class OAuthClient(BaseModel):
    """An OAuth client allowed to use ``POST /oauth/tokens``."""

    model_config = ConfigDict(frozen=True)

    client_id: str
    client_secret: str


class SandboxConfig(BaseModel):
    """Everything that makes one simulated account differ from another."""

    model_config = ConfigDict(validate_assignment=True)

    credentials: list[ApiCredential] = Field(
        default_factory=lambda: [ApiCredential(email="agent@example.com", token="sandbox-token")]
    )
    #: Bearer tokens that never expire, acting as the first credential's agent.
    static_access_tokens: list[str] = Field(default_factory=lambda: ["sandbox-access-token"])
    oauth_clients: list[OAuthClient] = Field(
        default_factory=lambda: [
            OAuthClient(client_id="switchboard", client_secret="sandbox-secret")
        ]
    )
    #: Refresh tokens valid at start (bound to the first OAuth client and first agent).
    initial_refresh_tokens: list[str] = Field(default_factory=lambda: ["sandbox-refresh-token"])
    access_token_ttl: float = 7200.0
    #: Account-wide requests per minute; ``None`` disables the limit.
    rate_limit_per_minute: int | None = PLAN_RATE_LIMITS["enterprise"]
    #: Zendesk's "30 updates per ticket per user per 10 minutes"; ``None`` disables it.
    ticket_updates_per_10_minutes: int | None = 30
    #: Seconds before a new or changed user/ticket becomes visible to search.
    search_index_delay: float = 0.0
    talk_partner_edition: bool = True
    #: What Talk Partner Edition endpoints answer when the add-on is missing (404: body "").
    no_talk_partner_status: Literal[403, 404] = 403
    idempotency_ttl: float = 7200.0
    #: Keep every API request/response pair so tests can validate them against the spec.
    record_exchanges: bool = False
    page_size: int = 100
