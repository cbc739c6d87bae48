"""Zendesk-shaped error answers.

Handlers raise :class:`ApiError`; the error middleware turns it into the JSON body Zendesk would
send, so every handler reads as the happy path.
"""

from __future__ import annotations

from typing import Any

from aiohttp import web


class ApiError(Exception):
    """An error answer: HTTP status plus Zendesk's ``error``/``description`` body."""

    def __init__(
        self,
        status: int,
        error: str,
        description: str | None = None,
        *,
        details: dict[str, Any] | None = None,
        headers: dict[str, str] | None = None,
        raw_body: Any = None,
    ) -> None:
        super().__init__(f"{status} {error}: {description or ''}")
        self.status = status
        self.error = error
        self.description = description
        self.details = details
        self.headers = headers or {}
        self.raw_body = raw_body

    def body(self) -> Any:
        """The JSON document Zendesk sends with this error."""
        if self.raw_body is not None:
            return self.raw_body
        doc: dict[str, Any] = {"error": self.error}
        if self.description is not None:
            doc["description"] = self.description
        if self.details is not None:
            doc["details"] = self.details
        return doc

    def response(self) -> web.Response:
        return web.json_response(self.body(), status=self.status, headers=self.headers)


def not_found() -> ApiError:
    return ApiError(404, "RecordNotFound", "Not found")


def invalid(field: str, message: str, code: str = "InvalidValue") -> ApiError:
    """422 RecordInvalid for one field, as Zendesk reports validation failures."""
    return ApiError(
        422,
        "RecordInvalid",
        "Record validation errors",
        details={field: [{"description": message, "error": code}]},
    )
