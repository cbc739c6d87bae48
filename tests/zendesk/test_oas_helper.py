"""The OpenAPI check itself: it must catch what it exists to catch."""

from __future__ import annotations

import hashlib
import json
from typing import Any

import pytest

from daemon.sandbox import Exchange
from tests.oas import (
    FIXTURE,
    FIXTURE_SHA256,
    assert_exchanges_valid,
    exchange_problems,
    spec_path,
    validate_exchange,
)
from tests.zendesk.conftest import BASIC

TICKET = {
    "id": 1,
    "requester_id": 2,
    "subject": "s",
    "status": "open",
    "created_at": "2024-01-01T00:00:00Z",
    "updated_at": "2024-01-01T00:00:00Z",
}


def exchange(
    method: str,
    path: str,
    request: Any = None,
    status: int | None = 200,
    response: Any = None,
    *,
    template: str = "",
    auth: bool = True,
    query: list[tuple[str, str]] | None = None,
) -> Exchange:
    return Exchange(
        method=method,
        path=path,
        template=template or path,
        query=query or [],
        headers={"Authorization": BASIC} if auth else {},
        body=json.dumps(request).encode() if request is not None else b"",
        content_type="application/json",
        status=status,
        response_body=json.dumps(response).encode() if response is not None else b"",
        response_content_type="application/json",
    )


def test_spec_is_the_vendored_fixture_unchanged() -> None:
    """The contract's reference lives in the repository, with the checksum its README notes."""
    assert spec_path() == FIXTURE
    assert hashlib.sha256(FIXTURE.read_bytes()).hexdigest() == FIXTURE_SHA256


def test_valid_exchange_passes_with_json_suffix() -> None:
    validate_exchange(exchange("GET", "/api/v2/tickets/1.json", response={"ticket": TICKET}))


@pytest.mark.parametrize(
    ("bad", "fragment"),
    [
        (
            exchange("GET", "/api/v2/tickets/1", response={"ticket": {**TICKET, "id": "1"}}),
            "response",
        ),
        (
            exchange("GET", "/api/v2/tickets/1", response={"ticket": {**TICKET, "via_id": 45}}),
            "write-only",
        ),
        (
            exchange(
                "POST",
                "/api/v2/tickets",
                request={"ticket": {"comment": {"body": "x"}, "via": {"channel": "voice"}}},
                status=201,
                response={"ticket": TICKET},
            ),
            "read-only",
        ),
        (
            exchange(
                "POST",
                "/api/v2/tickets",
                request={"ticket": {"subject": 5, "comment": {"body": "x"}}},
                status=201,
                response={"ticket": TICKET},
            ),
            "request",
        ),
        (exchange("GET", "/api/v2/tickets/1", response={"ticket": TICKET}, auth=False), "Security"),
        (exchange("GET", "/api/v2/made/up", response={}), "request"),
        (exchange("GET", "/api/v2/tickets/1", status=204), "not documented"),
        (
            exchange(
                "GET",
                "/api/v2/users/5/tickets/requested",
                template="/api/v2/users/{user_id}/tickets/requested",
                response={"tickets": [{"id": "x"}]},
            ),
            "response",
        ),
    ],
)
def test_violations_are_caught(bad: Exchange, fragment: str) -> None:
    problems = exchange_problems(bad)
    assert problems and fragment.lower() in " ".join(problems).lower(), problems
    with pytest.raises(AssertionError):
        validate_exchange(bad)


def test_undocumented_errors_and_dropped_answers_are_accepted() -> None:
    validate_exchange(exchange("GET", "/api/v2/tickets/1", status=503, response={"error": "x"}))
    validate_exchange(exchange("GET", "/api/v2/tickets/1", status=None))
    validate_exchange(exchange("POST", "/oauth/tokens", request={"grant_type": "x"}))


def test_assert_refuses_a_vacuous_pass() -> None:
    with pytest.raises(AssertionError, match="record_exchanges"):
        assert_exchanges_valid([])
    assert assert_exchanges_valid([], min_count=0) == 0
