"""How the client proves who it is to Zendesk.

Two schemes: API tokens (``{email}/token:{token}`` basic auth), which Zendesk is retiring (no
new ones from October 2026, all deactivated on April 30, 2027), and OAuth bearer tokens, which
expire and must be refreshed. The client asks its :class:`Auth` for a header before each
attempt and, after a 401, gives it one chance to refresh before giving up.
"""

from __future__ import annotations

import asyncio
import base64
from collections.abc import Awaitable, Callable
from typing import Any, Protocol

import aiohttp
import structlog
from pydantic import BaseModel, ConfigDict

from daemon.zendesk.retry import AuthenticationError, TransportError

log = structlog.get_logger("switchboard.zendesk.auth")


class Auth(Protocol):
    """A source of ``Authorization`` header values."""

    async def authorization(self) -> str:
        """The header value to send now."""
        ...

    async def refresh(self, session: aiohttp.ClientSession, base_url: str, failed: str) -> bool:
        """Called after a 401 answered ``failed``; True when retrying may now succeed."""
        ...


class ApiTokenAuth:
    """``Authorization: Basic base64("{email}/token:{token}")``. Nothing to refresh."""

    def __init__(self, email: str, token: str) -> None:
        raw = f"{email}/token:{token}".encode()
        self._header = "Basic " + base64.b64encode(raw).decode()

    async def authorization(self) -> str:
        return self._header

    async def refresh(self, session: aiohttp.ClientSession, base_url: str, failed: str) -> bool:
        return False


class OAuthTokens(BaseModel):
    """What the token endpoint returned; handed to ``on_refresh`` so it can be persisted."""

    model_config = ConfigDict(frozen=True)

    access_token: str
    refresh_token: str | None = None
    expires_in: int | None = None


class OAuthAuth:
    """``Authorization: Bearer {access_token}``, refreshed on a 401.

    With a refresh token and client credentials, a 401 triggers ``grant_type=refresh_token``
    (Zendesk rotates refresh tokens: the new one replaces the old, and ``on_refresh`` is told so
    it can be stored). With client credentials only, ``grant_type=client_credentials``.
    Concurrent requests that fail together refresh once: a request whose failed header is no
    longer current simply retries with the new token.
    """

    def __init__(
        self,
        access_token: str,
        refresh_token: str | None = None,
        client_id: str | None = None,
        client_secret: str | None = None,
        token_url: str | None = None,
        *,
        scope: str | None = None,
        on_refresh: Callable[[OAuthTokens], Awaitable[None]] | None = None,
    ) -> None:
        self.access_token = access_token
        self.refresh_token = refresh_token
        self.client_id = client_id
        self.client_secret = client_secret
        self.token_url = token_url
        self.scope = scope
        self._on_refresh = on_refresh
        self._lock = asyncio.Lock()
        #: How many times the access token was refreshed (for tests and metrics).
        self.refreshes = 0

    async def authorization(self) -> str:
        return f"Bearer {self.access_token}"

    def _grant(self) -> dict[str, Any] | None:
        if self.client_id is None or self.client_secret is None:
            return None
        grant: dict[str, Any] = {"client_id": self.client_id, "client_secret": self.client_secret}
        if self.refresh_token is not None:
            grant.update(grant_type="refresh_token", refresh_token=self.refresh_token)
        else:
            grant.update(grant_type="client_credentials")
        if self.scope is not None:
            grant["scope"] = self.scope
        return grant

    async def refresh(self, session: aiohttp.ClientSession, base_url: str, failed: str) -> bool:
        async with self._lock:
            if failed != await self.authorization():
                return True  # another request refreshed meanwhile
            grant = self._grant()
            if grant is None:
                return False
            url = self.token_url or f"{base_url}/oauth/tokens"
            try:
                async with session.post(url, json=grant) as resp:
                    body = await resp.json(content_type=None)
                    status = resp.status
            except (aiohttp.ClientError, TimeoutError) as exc:
                raise TransportError(None, None, f"token refresh failed: {exc!r}") from exc
            if status != 200 or not isinstance(body, dict) or "access_token" not in body:
                log.warning(
                    "zendesk.oauth_refresh_refused", status=status, grant=grant["grant_type"]
                )
                if status >= 500:
                    raise TransportError(None, body, f"token endpoint answered {status}")
                raise AuthenticationError(401, body, "OAuth refresh refused")
            tokens = OAuthTokens.model_validate(body)
            self.access_token = tokens.access_token
            if tokens.refresh_token is not None:
                self.refresh_token = tokens.refresh_token
            self.refreshes += 1
            log.info("zendesk.oauth_refreshed", grant=grant["grant_type"])
            if self._on_refresh is not None:
                await self._on_refresh(tokens)
            return True
