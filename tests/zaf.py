"""A stand-in for Zendesk's side of a signed app login: an RSA key pair playing the app's key
(Zendesk keeps the private half; the daemon is configured with the public half) and ZAF JWTs
shaped as Zendesk documents them (iss: the account's host; aud: the installation's API URL;
sub: the user's API URL; RS256)."""

import base64
import functools
import hashlib
import hmac
import json
import time
from typing import Any
from urllib.parse import urlsplit

import jwt
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

INSTALLATION_ID = 360001234


def key_pair(name: str = "zendesk") -> tuple[str, str]:
    """(private PEM, public PEM), one pair per name for the test session."""
    return _key_pair(name)


@functools.cache
def _key_pair(name: str) -> tuple[str, str]:
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    private = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    ).decode()
    public = (
        key.public_key()
        .public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
        .decode()
    )
    return private, public


def claims(account_url: str, user_id: int, **overrides: Any) -> dict[str, Any]:
    now = int(time.time())
    base: dict[str, Any] = {
        "iss": urlsplit(account_url).netloc,
        "aud": f"{account_url}/api/v2/apps/installations/{INSTALLATION_ID}.json",
        "sub": f"{account_url}/api/v2/users/{user_id}.json",
        "iat": now,
        "exp": now + 300,
        "qsh": "ignored-by-switchboard",
    }
    base.update(overrides)
    return {k: v for k, v in base.items() if v is not None}


def zaf_token(account_url: str, user_id: int, *, key: str = "zendesk", **overrides: Any) -> str:
    """A ZAF JWT signed RS256 with the named key (`overrides` replace claims; None drops one)."""
    private, _ = key_pair(key)
    return jwt.encode(claims(account_url, user_id, **overrides), private, algorithm="RS256")


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def unsafe_token(payload: dict[str, Any], alg: str, key: bytes = b"") -> str:
    """A token PyJWT refuses to make: `none`, or HS256 keyed with a public key's PEM (the
    algorithm-confusion forgery)."""
    head = _b64(json.dumps({"alg": alg, "typ": "JWT"}).encode())
    body = _b64(json.dumps(payload).encode())
    signing = f"{head}.{body}".encode()
    signature = "" if alg == "none" else _b64(hmac.new(key, signing, hashlib.sha256).digest())
    return f"{head}.{body}.{signature}"
