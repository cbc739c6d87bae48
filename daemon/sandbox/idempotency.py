"""Zendesk's ``Idempotency-Key`` semantics for ticket creation.

First use of a key stores the answer (``x-idempotency-lookup: miss``); a replay with the same
request gets that very answer again (``hit``) without creating anything; the same key with a
different request is refused with 400 ``IdempotentRequestError``. Keys expire after a TTL
(Zendesk: about two hours). Only successful answers are stored, so a request that failed can be
retried with the same key.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from typing import Any

from daemon.sandbox.errors import ApiError


@dataclass(frozen=True)
class StoredAnswer:
    fingerprint: str
    status: int
    body: Any
    headers: dict[str, str]
    stored_at: float


def fingerprint(method: str, template: str, body: Any) -> str:
    """What must be identical for a replay: the operation and the canonical JSON body."""
    canonical = json.dumps(body, sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(f"{method} {template}\n{canonical}".encode()).hexdigest()


class IdempotencyStore:
    """Answers stored by key, expiring after ``ttl`` seconds."""

    def __init__(self) -> None:
        self._answers: dict[str, StoredAnswer] = {}

    def clear(self) -> None:
        self._answers.clear()

    def __len__(self) -> int:
        return len(self._answers)

    def lookup(self, key: str, print_: str, now: float, ttl: float) -> StoredAnswer | None:
        """The stored answer for a replay, None for a fresh key; raises on a mismatch."""
        self._purge(now, ttl)
        stored = self._answers.get(key)
        if stored is None:
            return None
        if stored.fingerprint != print_:
            raise ApiError(
                400,
                "IdempotentRequestError",
                "Request parameters do not match the original request for this idempotency key",
            )
        return stored

    def store(self, key: str, answer: StoredAnswer) -> None:
        self._answers[key] = answer

    def _purge(self, now: float, ttl: float) -> None:
        expired = [k for k, a in self._answers.items() if now - a.stored_at >= ttl]
        for key in expired:
            del self._answers[key]
