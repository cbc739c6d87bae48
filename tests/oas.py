"""Validate HTTP traffic against Zendesk's own OpenAPI description of the Support API.

The description is the reference nobody on this project wrote: the Zendesk client's requests
must match it and the sandbox's answers must match it, so neither can drift into a convenient
fiction. Typical use in an end-to-end test::

    app = create_app(SandboxConfig(record_exchanges=True))
    ...  # run the daemon against it
    assert_exchanges_valid(app[SANDBOX_KEY])

Rules:
- the ``.json`` suffix is stripped before matching (Zendesk answers both forms);
- paths outside the Support API (``/oauth/``, ``/__sandbox/``, attachment downloads) are skipped;
- error answers whose status the description does not list (401, 403, 429, 5xx… Zendesk
  documents mostly successes) are accepted as long as the request itself validates;
- a dropped connection (``status is None``) only has its request validated;
- operations Zendesk serves but this copy of the description omits are listed in
  :data:`UNDOCUMENTED_OPERATIONS` with the schema their answer must match.
"""

from __future__ import annotations

import functools
import json
import os
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

from aiohttp import web
from openapi_core import OpenAPI
from openapi_core.templating.responses.exceptions import ResponseNotFound
from openapi_core.testing import MockRequest, MockResponse
from openapi_schema_validator import OAS30ReadValidator, oas30_format_checker

from daemon.sandbox import SANDBOX_KEY, Exchange, Sandbox

ENV_VAR = "SWITCHBOARD_ZENDESK_OAS"
FIXTURE = Path(__file__).resolve().parent / "fixtures" / "zendesk" / "support-oas.json"
FIXTURE_SHA256 = "49c5c85416f8c6255b14a6f326281e15a35fee0d4177fb829e17cd16210aeaee"
#: The description's server (``https://{subdomain}.{domain}.com``) with its defaults.
SPEC_HOST = "https://example.zendesk.com"
#: Paths that are not part of the Support API description.
OUTSIDE_SUPPORT_API = ("/oauth/", "/__sandbox/", "/attachments/")
#: (method, path template) → response schema, for real Zendesk endpoints this copy omits.
#: ``/users/{id}/tickets/requested`` is one of the List Tickets variants in Zendesk's API
#: reference; the July 2024 description keeps only ``/api/v2/tickets``.
UNDOCUMENTED_OPERATIONS: dict[tuple[str, str], str] = {
    ("GET", "/api/v2/users/{user_id}/tickets/requested"): "TicketsResponse",
}


def spec_path() -> Path:
    """The repository's own copy (``tests/fixtures/zendesk``: source and checksum in its README),
    or ``$SWITCHBOARD_ZENDESK_OAS`` to validate against another release."""
    from_env = os.environ.get(ENV_VAR)
    if from_env:
        return Path(from_env)
    return FIXTURE


@functools.cache
def spec_dict() -> dict[str, Any]:
    """The parsed description (loaded once per test session)."""
    loaded: dict[str, Any] = json.loads(spec_path().read_text())
    return loaded


@functools.cache
def zendesk_openapi() -> OpenAPI:
    """The openapi-core validator (its full spec validation passes on this document)."""
    return OpenAPI.from_dict(spec_dict())


def _mimetype(content_type: str | None) -> str:
    return (content_type or "application/json").split(";")[0].strip()


def _request(ex: Exchange) -> MockRequest:
    return MockRequest(
        SPEC_HOST,
        ex.method,
        ex.path.removesuffix(".json"),
        args=dict(ex.query),
        headers=dict(ex.headers),
        data=ex.body or None,
        content_type=_mimetype(ex.content_type),
    )


def _response(ex: Exchange) -> MockResponse:
    assert ex.status is not None
    return MockResponse(
        ex.response_body,
        status_code=ex.status,
        headers=dict(ex.response_headers),
        content_type=_mimetype(ex.response_content_type),
    )


def _schema_errors(instance: Any, component: str) -> list[str]:
    schema = {
        "$ref": f"#/components/schemas/{component}",
        "components": spec_dict()["components"],
    }
    validator = OAS30ReadValidator(schema, format_checker=oas30_format_checker)
    return [f"{e.json_path}: {e.message}" for e in validator.iter_errors(instance)]


def _describe(error: Exception) -> str:
    cause = error.__cause__
    details = [str(e.message) for e in getattr(cause, "schema_errors", ())]
    text = f"{type(error).__name__}: {error}"
    return text + ("".join(f"\n      - {d}" for d in details) if details else "")


def _undocumented_problems(ex: Exchange, component: str) -> list[str]:
    problems: list[str] = []
    scheme = ex.headers.get("Authorization", "").split(" ")[0].lower()
    if scheme not in ("basic", "bearer"):
        problems.append("request: no Basic or Bearer authorization")
    if ex.status is not None and 200 <= ex.status < 300:
        problems.extend(f"response: {p}" for p in _schema_errors(ex.response_json(), component))
    return problems


def exchange_problems(ex: Exchange) -> list[str]:
    """Everything wrong with one exchange (empty when it validates)."""
    path = ex.path.removesuffix(".json")
    if path.startswith(OUTSIDE_SUPPORT_API):
        return []
    component = UNDOCUMENTED_OPERATIONS.get((ex.method.upper(), ex.template))
    if component is not None:
        return _undocumented_problems(ex, component)
    api = zendesk_openapi()
    request = _request(ex)
    problems: list[str] = []
    try:
        api.validate_request(request)
    except Exception as error:  # openapi-core raises a family of unrelated types
        problems.append(f"request: {_describe(error)}")
    if ex.status is None:
        return problems
    try:
        api.validate_response(request, _response(ex))
    except ResponseNotFound:
        if ex.status < 400:
            problems.append(f"response: status {ex.status} is not documented")
    except Exception as error:
        problems.append(f"response: {_describe(error)}")
    return problems


def validate_exchange(ex: Exchange) -> None:
    """Raise AssertionError when a request or its answer does not match the description."""
    problems = exchange_problems(ex)
    if problems:
        raise AssertionError(_report([(ex, problems)]))


def _report(failures: list[tuple[Exchange, list[str]]]) -> str:
    lines = ["traffic does not match Zendesk's OpenAPI description:"]
    for ex, problems in failures:
        query = "&".join(f"{k}={v}" for k, v in ex.query)
        lines.append(f"  {ex.method} {ex.path}{'?' + query if query else ''} -> {ex.status}")
        lines.extend(f"    {p}" for p in problems)
    return "\n".join(lines)


def _exchanges_of(source: Sandbox | web.Application | Iterable[Exchange]) -> list[Exchange]:
    if isinstance(source, web.Application):
        return list(source[SANDBOX_KEY].exchanges)
    if isinstance(source, Sandbox):
        return list(source.exchanges)
    return list(source)


def assert_exchanges_valid(
    source: Sandbox | web.Application | Iterable[Exchange],
    *,
    ignore: Callable[[Exchange], bool] | None = None,
    min_count: int = 1,
) -> int:
    """Assert every recorded exchange validates; returns how many were checked.

    ``min_count`` guards against a vacuous pass (recording switched off, say); ``ignore``
    skips exchanges a test provoked on purpose (a request without credentials…).
    """
    exchanges = [e for e in _exchanges_of(source) if ignore is None or not ignore(e)]
    assert len(exchanges) >= min_count, (
        f"expected at least {min_count} recorded exchanges, got {len(exchanges)} "
        "(is SandboxConfig.record_exchanges on?)"
    )
    failures = [(e, p) for e in exchanges if (p := exchange_problems(e))]
    if failures:
        raise AssertionError(_report(failures))
    return len(exchanges)
