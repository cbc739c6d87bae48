"""Recorded request/response pairs, for validating traffic against Zendesk's OpenAPI.

With ``SandboxConfig(record_exchanges=True)`` every request under ``/api/`` is kept with its
answer, so an end-to-end test can assert afterwards that everything that crossed the sandbox
(what the daemon sent and what the sandbox answered) matches the published description.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True)
class Exchange:
    """One request and its answer; ``status`` is None when the connection was dropped."""

    method: str
    path: str
    template: str
    query: list[tuple[str, str]]
    headers: dict[str, str]
    body: bytes
    content_type: str | None
    status: int | None = None
    response_headers: dict[str, str] = field(default_factory=dict)
    response_body: bytes = b""
    response_content_type: str | None = None

    def request_json(self) -> Any:
        return _json_or_none(self.body)

    def response_json(self) -> Any:
        return _json_or_none(self.response_body)

    def summary(self) -> dict[str, Any]:
        """A JSON-friendly view for ``GET /__sandbox/exchanges``."""
        return {
            "method": self.method,
            "path": self.path,
            "template": self.template,
            "query": self.query,
            "request": self.request_json(),
            "status": self.status,
            "response": self.response_json(),
        }


def _json_or_none(raw: bytes) -> Any:
    if not raw:
        return None
    try:
        return json.loads(raw)
    except ValueError:
        return None
