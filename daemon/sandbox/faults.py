"""Fault injection rules, set through ``POST /__sandbox/faults``.

Each rule matches requests by method and path and misbehaves ``count`` times (``None`` =
until cleared), optionally letting the first ``skip`` matches through. Kinds:

- ``error``: answer ``status`` (e.g. 500, 503) without doing anything;
- ``timeout``: hold the request ``seconds``, then process it normally, even when the client
  stopped waiting meanwhile (as Zendesk does: a client that gave up finds the write done
  later, which is what makes timeouts and paused senders dangerous);
- ``drop_after_write``: process the request, then abort the connection without answering;
- ``rate_limit``: answer 429 with ``Retry-After: retry_after``.

``path`` is a glob over the request path without its ``.json`` suffix
(``/api/v2/tickets/*``) or a route template (``/api/v2/tickets/{ticket_id}``).
"""

from __future__ import annotations

from fnmatch import fnmatchcase
from typing import Literal

from pydantic import BaseModel, Field

FaultKind = Literal["error", "timeout", "drop_after_write", "rate_limit"]


class FaultRule(BaseModel):
    kind: FaultKind
    method: str = "*"
    path: str = "*"
    status: int = Field(default=500, ge=400, le=599)
    seconds: float = Field(default=5.0, ge=0)
    retry_after: int | None = Field(default=None, ge=0)
    count: int | None = Field(default=1, ge=1)
    skip: int = Field(default=0, ge=0)
    #: How many requests this rule has misbehaved on so far.
    fired: int = 0

    def matches(self, method: str, path: str, template: str) -> bool:
        if self.method != "*" and self.method.upper() != method.upper():
            return False
        return self.path in (template, "*") or fnmatchcase(path, self.path)


class FaultInjector:
    """The active rules; ``take()`` consumes one firing of the first matching rule."""

    def __init__(self) -> None:
        self.rules: list[FaultRule] = []

    def add(self, rules: list[FaultRule]) -> None:
        self.rules.extend(rules)

    def clear(self) -> None:
        self.rules.clear()

    def take(self, method: str, path: str, template: str) -> FaultRule | None:
        for rule in self.rules:
            if not rule.matches(method, path, template):
                continue
            if rule.skip > 0:
                rule.skip -= 1
                continue
            rule.fired += 1
            if rule.count is not None and rule.fired >= rule.count:
                self.rules.remove(rule)
            return rule
        return None
