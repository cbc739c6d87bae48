"""``/__sandbox/``: controls for tests and demos (not part of Zendesk's API, no auth).

- ``GET /__sandbox/state``: users, tickets with comments, pops, uploads, request counts…
- ``POST /__sandbox/reset``: back to a fresh account (config kept).
- ``POST /__sandbox/users``: seed users, searchable at once (``{"users": [...]}`` or a list).
- ``GET|POST|DELETE /__sandbox/faults``: list, add (a rule or a list of rules), clear.
- ``GET|PATCH /__sandbox/config``: read or change settings of the running sandbox.
- ``POST /__sandbox/clock``: ``{"advance": seconds}`` moves the sandbox clock forward.
- ``POST /__sandbox/oauth/expire``: every issued access token is now expired.
- ``GET|DELETE /__sandbox/exchanges``: recorded request/response pairs.
"""

from __future__ import annotations

from typing import Any

from aiohttp import web
from pydantic import TypeAdapter, ValidationError

from daemon.sandbox import render
from daemon.sandbox.clock import iso
from daemon.sandbox.config import SandboxConfig
from daemon.sandbox.errors import ApiError
from daemon.sandbox.faults import FaultRule
from daemon.sandbox.keys import base_url, sandbox_of
from daemon.sandbox.routing import json_body

_RULES = TypeAdapter(list[FaultRule])


def _invalid(exc: ValidationError) -> ApiError:
    return ApiError(400, "InvalidSandboxRequest", str(exc))


async def state(request: web.Request) -> web.Response:
    return web.json_response(sandbox_of(request).snapshot(base_url(request)))


async def reset(request: web.Request) -> web.Response:
    sandbox_of(request).reset()
    return web.json_response({"reset": True})


async def seed_users(request: web.Request) -> web.Response:
    body = await json_body(request)
    docs = body.get("users") if isinstance(body, dict) else body
    if not isinstance(docs, list) or not all(isinstance(d, dict) for d in docs):
        raise ApiError(400, "InvalidSandboxRequest", "expected a list of user objects")
    sandbox = sandbox_of(request)
    base = base_url(request)
    users = [render.user(sandbox.create_user_from(d, indexed=True), base) for d in docs]
    return web.json_response({"users": users}, status=201)


async def get_faults(request: web.Request) -> web.Response:
    rules = sandbox_of(request).faults.rules
    return web.json_response({"faults": [r.model_dump() for r in rules]})


async def add_faults(request: web.Request) -> web.Response:
    body = await json_body(request)
    raw = body if isinstance(body, list) else [body]
    try:
        rules = _RULES.validate_python(raw)
    except ValidationError as exc:
        raise _invalid(exc) from exc
    injector = sandbox_of(request).faults
    injector.add(rules)
    return web.json_response({"faults": [r.model_dump() for r in injector.rules]}, status=201)


async def clear_faults(request: web.Request) -> web.Response:
    sandbox_of(request).faults.clear()
    return web.json_response({"faults": []})


async def get_config(request: web.Request) -> web.Response:
    return web.json_response(sandbox_of(request).config.model_dump(mode="json"))


async def patch_config(request: web.Request) -> web.Response:
    sandbox = sandbox_of(request)
    changes = await json_body(request)
    if not isinstance(changes, dict):
        raise ApiError(400, "InvalidSandboxRequest", "expected an object of settings")
    try:
        sandbox.config = SandboxConfig.model_validate({**sandbox.config.model_dump(), **changes})
    except ValidationError as exc:
        raise _invalid(exc) from exc
    return web.json_response(sandbox.config.model_dump(mode="json"))


async def advance_clock(request: web.Request) -> web.Response:
    body = await json_body(request)
    seconds = body.get("advance") if isinstance(body, dict) else None
    if not isinstance(seconds, int | float) or isinstance(seconds, bool) or seconds < 0:
        raise ApiError(400, "InvalidSandboxRequest", 'expected {"advance": seconds >= 0}')
    sandbox = sandbox_of(request)
    sandbox.clock.advance(float(seconds))
    return web.json_response({"now": iso(sandbox.now())})


async def expire_tokens(request: web.Request) -> web.Response:
    sandbox = sandbox_of(request)
    return web.json_response({"expired": sandbox.tokens.expire_all(sandbox.now())})


async def get_exchanges(request: web.Request) -> web.Response:
    exchanges: list[dict[str, Any]] = [e.summary() for e in sandbox_of(request).exchanges]
    return web.json_response({"exchanges": exchanges})


async def clear_exchanges(request: web.Request) -> web.Response:
    sandbox_of(request).exchanges.clear()
    return web.json_response({"exchanges": []})


def setup(router: web.UrlDispatcher) -> None:
    router.add_get("/__sandbox/state", state)
    router.add_post("/__sandbox/reset", reset)
    router.add_post("/__sandbox/users", seed_users)
    router.add_get("/__sandbox/faults", get_faults)
    router.add_post("/__sandbox/faults", add_faults)
    router.add_delete("/__sandbox/faults", clear_faults)
    router.add_get("/__sandbox/config", get_config)
    router.add_patch("/__sandbox/config", patch_config)
    router.add_post("/__sandbox/clock", advance_clock)
    router.add_post("/__sandbox/oauth/expire", expire_tokens)
    router.add_get("/__sandbox/exchanges", get_exchanges)
    router.add_delete("/__sandbox/exchanges", clear_exchanges)
