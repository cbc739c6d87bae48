"""Helpers shared by the API handlers: ``.json`` routes, path ids, bodies, pagination.

Zendesk answers ``/api/v2/users/1`` and ``/api/v2/users/1.json`` alike; registering both forms
here keeps handlers unaware of it.
"""

from __future__ import annotations

from typing import Any

from aiohttp import web
from aiohttp.typedefs import Handler
from yarl import URL

from daemon.sandbox import render
from daemon.sandbox.errors import ApiError
from daemon.sandbox.keys import base_url, sandbox_of


def add(router: web.UrlDispatcher, method: str, path: str, handler: Handler) -> None:
    router.add_route(method, path, handler)
    router.add_route(method, path + ".json", handler)


def int_param(request: web.Request, name: str) -> int:
    """A numeric path parameter (routes restrict them to digits)."""
    return int(request.match_info[name])


async def json_body(request: web.Request) -> Any:
    """The request's JSON document; 400 as Zendesk answers unparseable JSON."""
    if not request.body_exists:
        return None
    try:
        return await request.json()
    except ValueError as exc:
        raise ApiError(400, "InvalidJSON", "The request body is not valid JSON") from exc


def _positive(request: web.Request, name: str, default: int) -> int:
    raw = request.query.get(name)
    if raw is None:
        return default
    if not raw.isdigit() or int(raw) < 1:
        raise ApiError(400, "InvalidPaginationParameter", f"{name} must be a positive integer")
    return int(raw)


def paginate(request: web.Request, key: str, items: list[dict[str, Any]]) -> dict[str, Any]:
    """Zendesk offset pagination (``page``, ``per_page`` ≤ 100) over ``items``."""
    limit = sandbox_of(request).config.page_size
    per_page = min(_positive(request, "per_page", limit), limit)
    page = _positive(request, "page", 1)
    start = (page - 1) * per_page
    chunk = items[start : start + per_page]
    url = base_url(request) + request.path

    def link(n: int) -> str:
        return str(URL(url).with_query({**request.query, "page": str(n)}))

    next_page = link(page + 1) if start + per_page < len(items) else None
    previous_page = link(page - 1) if page > 1 else None
    return render.page(key, chunk, len(items), next_page, previous_page)
