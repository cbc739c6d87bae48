"""Tab tokens: HS256 JWTs naming the agent (`sub`) and, optionally, their Zendesk identity.

The deployment's Zendesk app (or SSO) mints them with the shared secret; `switchboard token`
mints one for development. PyJWT checks signature, expiry and required claims.
"""

import time
from dataclasses import dataclass

import jwt

ALGORITHM = "HS256"
AUDIENCE = "switchboard"


class TokenRefused(Exception):
    pass


@dataclass(frozen=True, slots=True)
class AgentIdentity:
    agent_id: str
    zendesk_user_id: int | None = None
    name: str | None = None
    session_started: int | None = None  # `auth_time`: when the agent logged in (Zendesk app)


def mint_token(
    secret: str,
    agent_id: str,
    *,
    ttl_seconds: int = 12 * 3600,
    zendesk_user_id: int | None = None,
    name: str | None = None,
    session_started: int | None = None,
    now: float | None = None,
) -> str:
    issued = int(now if now is not None else time.time())
    claims: dict[str, object] = {
        "sub": agent_id,
        "aud": AUDIENCE,
        "iat": issued,
        "exp": issued + ttl_seconds,
    }
    if zendesk_user_id is not None:
        claims["zd"] = zendesk_user_id
    if name is not None:
        claims["name"] = name
    if session_started is not None:
        claims["auth_time"] = session_started
    return jwt.encode(claims, secret, algorithm=ALGORITHM)


def verify_token(secret: str, token: str) -> AgentIdentity:
    try:
        claims = jwt.decode(
            token,
            secret,
            algorithms=[ALGORITHM],
            audience=AUDIENCE,
            options={"require": ["sub", "exp", "aud"]},
        )
    except jwt.ExpiredSignatureError as e:
        raise TokenRefused("token expired") from e
    except jwt.InvalidTokenError as e:
        raise TokenRefused(f"invalid token: {e}") from e
    agent = claims["sub"]
    if not isinstance(agent, str) or not agent or len(agent) > 128:
        raise TokenRefused("token names no agent")
    zd = claims.get("zd")
    name = claims.get("name")
    started = claims.get("auth_time")
    return AgentIdentity(
        agent_id=agent,
        zendesk_user_id=zd if isinstance(zd, int) else None,
        name=name if isinstance(name, str) else None,
        session_started=started if isinstance(started, int) else None,
    )
