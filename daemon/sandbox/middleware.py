"""The request pipeline in front of the simulated API.

Outermost first:

1. ``record``: keep the request/response pair when ``record_exchanges`` is on;
2. ``zendesk_errors``: :class:`ApiError` and unmatched routes become Zendesk error bodies;
3. ``api_gate``: for ``/api/`` requests, count by template, apply fault rules, authenticate,
   enforce the account rate limit, add the ``X-Rate-Limit`` headers, and carry out
   ``drop_after_write``.
"""

from __future__ import annotations

import asyncio

from aiohttp import web
from aiohttp.typedefs import Handler

from daemon.sandbox.errors import ApiError
from daemon.sandbox.faults import FaultRule
from daemon.sandbox.keys import CALLER_KEY, DROPPED_KEY, sandbox_of, template_of
from daemon.sandbox.recorder import Exchange
from daemon.sandbox.security import parse_basic
from daemon.sandbox.state import Sandbox


def _unauthorized() -> ApiError:
    return ApiError(
        401, "Couldn't authenticate you", raw_body={"error": "Couldn't authenticate you"}
    )


def _is_api(request: web.Request) -> bool:
    return request.path.startswith("/api/")


@web.middleware
async def record(request: web.Request, handler: Handler) -> web.StreamResponse:
    sandbox = sandbox_of(request)
    if not (_is_api(request) and sandbox.config.record_exchanges):
        return await handler(request)
    body = await request.read()
    response = await handler(request)
    dropped = request.get(DROPPED_KEY, False)
    raw = response.body if isinstance(response, web.Response) else b""
    sandbox.exchanges.append(
        Exchange(
            method=request.method,
            path=request.path,
            template=template_of(request),
            query=list(request.query.items()),
            headers=dict(request.headers),
            body=body,
            content_type=request.headers.get("Content-Type"),
            status=None if dropped else response.status,
            response_headers=dict(response.headers),
            response_body=raw if isinstance(raw, bytes) else b"",
            response_content_type=response.content_type,
        )
    )
    return response


@web.middleware
async def zendesk_errors(request: web.Request, handler: Handler) -> web.StreamResponse:
    try:
        return await handler(request)
    except ApiError as error:
        return error.response()
    except web.HTTPNotFound:
        return web.json_response(
            {"error": "InvalidEndpoint", "description": "Not found"}, status=404
        )
    except web.HTTPMethodNotAllowed:
        return web.json_response(
            {"error": "InvalidEndpoint", "description": "Method not allowed"}, status=405
        )


def _authenticate(sandbox: Sandbox, request: web.Request) -> int:
    header = request.headers.get("Authorization", "")
    scheme, _, value = header.partition(" ")
    if scheme.lower() == "basic":
        parsed = parse_basic(value.strip())
        if parsed is not None:
            email, token = parsed
            for cred in sandbox.config.credentials:
                if cred.email.lower() == email.lower() and cred.token == token:
                    user = sandbox.user_by_email(cred.email)
                    if user is not None:
                        return user.id
    elif scheme.lower() == "bearer":
        user_id = sandbox.tokens.user_for_access(value.strip(), sandbox.now())
        if user_id is not None:
            return user_id
    raise _unauthorized()


def _rate_headers(sandbox: Sandbox) -> dict[str, str]:
    limit = sandbox.config.rate_limit_per_minute
    if limit is None:
        return {}
    used = sandbox.account_window.used(sandbox.now())
    return {"X-Rate-Limit": str(limit), "X-Rate-Limit-Remaining": str(max(0, limit - used))}


def _rate_limited(retry_after: int, headers: dict[str, str]) -> ApiError:
    return ApiError(
        429,
        "TooManyRequests",
        "You have exceeded the API rate limit",
        headers={**headers, "Retry-After": str(retry_after)},
    )


async def _apply_fault(rule: FaultRule | None) -> None:
    if rule is None:
        return
    if rule.kind == "timeout":
        await asyncio.sleep(rule.seconds)
    elif rule.kind == "error":
        headers = {"Retry-After": str(rule.retry_after)} if rule.retry_after is not None else {}
        raise ApiError(
            rule.status,
            "ServiceUnavailable" if rule.status == 503 else "InternalServerError",
            "Injected fault",
            headers=headers,
        )
    elif rule.kind == "rate_limit":
        raise _rate_limited(rule.retry_after if rule.retry_after is not None else 1, {})


@web.middleware
async def api_gate(request: web.Request, handler: Handler) -> web.StreamResponse:
    if not _is_api(request):
        return await handler(request)
    sandbox = sandbox_of(request)
    template = template_of(request)
    sandbox.requests[f"{request.method} {template}"] += 1
    path = request.path.removesuffix(".json")
    rule = sandbox.faults.take(request.method, path, template)
    if rule is not None and rule.kind == "timeout":
        # Zendesk carries on with a request whose client stopped waiting (timed out, or
        # paused): only the answer is lost. Shielded, so the client going away does not
        # cancel the write; the body is read first, while the client is still there.
        await request.read()
        held = asyncio.ensure_future(_serve(request, handler, sandbox, rule))
        _HELD.add(held)
        held.add_done_callback(_finish_held)
        return await asyncio.shield(held)
    return await _serve(request, handler, sandbox, rule)


#: Held requests still being served after their client left (kept from garbage collection).
_HELD: set[asyncio.Future[web.StreamResponse]] = set()


def _finish_held(task: asyncio.Future[web.StreamResponse]) -> None:
    _HELD.discard(task)
    if not task.cancelled():
        task.exception()  # an answer nobody waits for any more: retrieved, not re-raised


async def _serve(
    request: web.Request, handler: Handler, sandbox: Sandbox, rule: FaultRule | None
) -> web.StreamResponse:
    await _apply_fault(rule)
    request[CALLER_KEY] = _authenticate(sandbox, request)
    limit = sandbox.config.rate_limit_per_minute
    if limit is not None:
        wait = sandbox.account_window.try_take(sandbox.now(), limit)
        if wait is not None:
            raise _rate_limited(wait, _rate_headers(sandbox))
    try:
        response = await handler(request)
    except ApiError as error:
        error.headers = {**_rate_headers(sandbox), **error.headers}
        raise
    response.headers.update(_rate_headers(sandbox))
    if rule is not None and rule.kind == "drop_after_write":
        # The write is done; the client never learns it. Abort rather than close so the
        # client sees a reset connection, not an empty answer.
        if request.transport is not None:
            request.transport.abort()
        request[DROPPED_KEY] = True
    return response
