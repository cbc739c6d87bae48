"""``GET /api/v2/search``: users and tickets from the (lagging) search index."""

from __future__ import annotations

from typing import Any

from aiohttp import web

from daemon.sandbox import render
from daemon.sandbox.errors import ApiError
from daemon.sandbox.keys import base_url, sandbox_of
from daemon.sandbox.records import UserRecord
from daemon.sandbox.routing import add, paginate


async def search(request: web.Request) -> web.Response:
    query = request.query.get("query", "").strip()
    if not query:
        raise ApiError(400, "invalid", "The query parameter is required")
    found = sandbox_of(request).search(
        query,
        sort_by=request.query.get("sort_by"),
        sort_order=request.query.get("sort_order"),
    )
    base = base_url(request)
    results: list[dict[str, Any]] = []
    for kind, doc in found:
        item = render.user(doc, base) if isinstance(doc, UserRecord) else render.ticket(doc, base)
        item["result_type"] = kind
        results.append(item)
    answer = paginate(request, "results", results)
    answer["facets"] = None
    return web.json_response(answer)


def setup(router: web.UrlDispatcher) -> None:
    add(router, "GET", "/api/v2/search", search)
