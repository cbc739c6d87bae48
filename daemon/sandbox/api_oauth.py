"""``POST /oauth/tokens``: the OAuth token endpoint (refresh_token and client_credentials).

Zendesk is retiring API tokens (no new ones from October 2026, all off by April 30, 2027), so
the refresh path of a client must be exercised: access tokens issued here expire after
``access_token_ttl`` and refresh tokens rotate on every use.
"""

from __future__ import annotations

from typing import Any

from aiohttp import web

from daemon.sandbox.keys import sandbox_of
from daemon.sandbox.state import Sandbox


def _oauth_error(status: int, error: str, description: str) -> web.Response:
    return web.json_response({"error": error, "error_description": description}, status=status)


async def _params(request: web.Request) -> dict[str, Any]:
    if request.content_type == "application/json":
        try:
            doc = await request.json()
        except ValueError:
            return {}
        return doc if isinstance(doc, dict) else {}
    return dict(await request.post())


def _client_ok(sandbox: Sandbox, client_id: Any, secret: Any) -> bool:
    return any(
        c.client_id == client_id and c.client_secret == secret for c in sandbox.config.oauth_clients
    )


async def tokens(request: web.Request) -> web.Response:
    sandbox = sandbox_of(request)
    sandbox.requests["POST /oauth/tokens"] += 1
    params = await _params(request)
    grant = params.get("grant_type")
    client_id = params.get("client_id")
    if not _client_ok(sandbox, client_id, params.get("client_secret")):
        return _oauth_error(401, "invalid_client", "Client authentication failed.")
    ttl = sandbox.config.access_token_ttl
    if grant == "refresh_token":
        old = sandbox.tokens.refresh.get(str(params.get("refresh_token")))
        if old is None or old.client_id != client_id:
            return _oauth_error(400, "invalid_grant", "The provided refresh token is invalid.")
        del sandbox.tokens.refresh[str(params["refresh_token"])]
        access, refresh = sandbox.tokens.issue(
            old.user_id, old.client_id, sandbox.now(), ttl, with_refresh=True
        )
    elif grant == "client_credentials":
        agents = sandbox.agent_ids()
        if not agents:
            return _oauth_error(400, "invalid_grant", "No user to act as.")
        access, refresh = sandbox.tokens.issue(
            agents[0], str(client_id), sandbox.now(), ttl, with_refresh=False
        )
    else:
        return _oauth_error(400, "unsupported_grant_type", f"Unsupported grant type: {grant}")
    answer: dict[str, Any] = {
        "access_token": access,
        "token_type": "bearer",
        "scope": params.get("scope") or "read write",
        "expires_in": int(ttl),
    }
    if refresh is not None:
        answer["refresh_token"] = refresh
        answer["refresh_token_expires_in"] = 30 * 24 * 3600
    return web.json_response(answer)


def setup(router: web.UrlDispatcher) -> None:
    router.add_post("/oauth/tokens", tokens)
