"""Who is calling: API-token basic auth, OAuth bearer tokens and the OAuth token endpoint.

Zendesk takes ``Authorization: Basic base64("{email}/token:{api_token}")`` or
``Authorization: Bearer {access_token}``. Access tokens issued by ``POST /oauth/tokens`` expire
(``SandboxConfig.access_token_ttl``) and answer 401 afterwards, which is what exercises a
client's refresh path. Refresh tokens rotate: each refresh returns a new one and revokes the old.
"""

from __future__ import annotations

import base64
import binascii
import secrets
from dataclasses import dataclass


@dataclass
class AccessToken:
    user_id: int
    expires_at: float | None
    client_id: str | None = None


@dataclass
class RefreshToken:
    user_id: int
    client_id: str


def parse_basic(header: str) -> tuple[str, str] | None:
    """``(email, api_token)`` from an API-token basic header, None for anything else."""
    try:
        decoded = base64.b64decode(header, validate=True).decode()
    except (binascii.Error, UnicodeDecodeError):
        return None
    user, sep, secret = decoded.partition(":")
    if not sep or not user.endswith("/token"):
        return None
    return user.removesuffix("/token"), secret


class TokenRegistry:
    """Issued OAuth access and refresh tokens."""

    def __init__(self) -> None:
        self.access: dict[str, AccessToken] = {}
        self.refresh: dict[str, RefreshToken] = {}

    def clear(self) -> None:
        self.access.clear()
        self.refresh.clear()

    def issue(
        self, user_id: int, client_id: str, now: float, ttl: float, *, with_refresh: bool
    ) -> tuple[str, str | None]:
        access = "zat_" + secrets.token_urlsafe(24)
        self.access[access] = AccessToken(user_id, now + ttl, client_id)
        refresh: str | None = None
        if with_refresh:
            refresh = "zrt_" + secrets.token_urlsafe(24)
            self.refresh[refresh] = RefreshToken(user_id, client_id)
        return access, refresh

    def user_for_access(self, token: str, now: float) -> int | None:
        found = self.access.get(token)
        if found is None or (found.expires_at is not None and now >= found.expires_at):
            return None
        return found.user_id

    def expire_all(self, now: float) -> int:
        """Make every expiring access token stale (static tokens are untouched)."""
        n = 0
        for token in self.access.values():
            if token.expires_at is not None:
                token.expires_at = min(token.expires_at, now)
                n += 1
        return n
