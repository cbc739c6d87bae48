"""Users: show, create, update, list by external id, search, and a user's requested tickets."""

from __future__ import annotations

from aiohttp import web

from daemon.sandbox import render
from daemon.sandbox.errors import ApiError
from daemon.sandbox.keys import base_url, caller_of, sandbox_of
from daemon.sandbox.payload import envelope
from daemon.sandbox.records import TicketRecord, UserRecord
from daemon.sandbox.routing import add, int_param, json_body, paginate

_SORTABLE = ("created_at", "updated_at", "id", "status", "subject")


async def show_user(request: web.Request) -> web.Response:
    user = sandbox_of(request).get_user(int_param(request, "user_id"))
    return web.json_response({"user": render.user(user, base_url(request))})


async def show_me(request: web.Request) -> web.Response:
    user = sandbox_of(request).get_user(caller_of(request))
    return web.json_response({"user": render.user(user, base_url(request))})


async def create_user(request: web.Request) -> web.Response:
    doc = envelope(await json_body(request), "user")
    user = sandbox_of(request).create_user_from(doc)
    base = base_url(request)
    return web.json_response(
        {"user": render.user(user, base)},
        status=201,
        headers={"Location": f"{base}/api/v2/users/{user.id}.json"},
    )


async def update_user(request: web.Request) -> web.Response:
    doc = envelope(await json_body(request), "user")
    user = sandbox_of(request).update_user(int_param(request, "user_id"), doc)
    return web.json_response({"user": render.user(user, base_url(request))})


async def list_users(request: web.Request) -> web.Response:
    users = sandbox_of(request).users_where(
        external_id=request.query.get("external_id"), role=request.query.get("role")
    )
    base = base_url(request)
    return web.json_response(paginate(request, "users", [render.user(u, base) for u in users]))


async def search_users(request: web.Request) -> web.Response:
    """``/api/v2/users/search``: ``query`` (search syntax, indexed) or ``external_id`` (exact)."""
    sandbox = sandbox_of(request)
    found: list[UserRecord]
    if "external_id" in request.query:
        found = sandbox.users_where(external_id=request.query["external_id"], role=None)
    elif "query" in request.query:
        found = [
            doc
            for _, doc in sandbox.search(request.query["query"], kinds=("user",))
            if isinstance(doc, UserRecord)
        ]
    else:
        raise ApiError(400, "InvalidSearchParameters", "query or external_id is required")
    base = base_url(request)
    return web.json_response(paginate(request, "users", [render.user(u, base) for u in found]))


def sort_tickets(request: web.Request, tickets: list[TicketRecord]) -> list[TicketRecord]:
    """Zendesk's ``sort_by``/``sort_order`` (offset) and ``sort=-field`` (cursor) forms."""
    sort = request.query.get("sort")
    if sort:
        field, descending = sort.lstrip("-"), sort.startswith("-")
    else:
        field = request.query.get("sort_by", "id")
        descending = request.query.get("sort_order", "asc").lower() == "desc"
    if field not in _SORTABLE:
        field = "id"
    return sorted(tickets, key=lambda t: (getattr(t, field), t.id), reverse=descending)


async def requested_tickets(request: web.Request) -> web.Response:
    """``GET /api/v2/users/{user_id}/tickets/requested``.

    Zendesk's API reference lists it under List Tickets (same TicketsResponse shape); the
    July 2024 OpenAPI copy folds those variants into ``/api/v2/tickets`` and omits it.
    It reads the database, so unlike search it sees a ticket created a second ago.
    """
    sandbox = sandbox_of(request)
    tickets = sort_tickets(request, sandbox.tickets_requested_by(int_param(request, "user_id")))
    base = base_url(request)
    return web.json_response(
        paginate(request, "tickets", [render.ticket(t, base) for t in tickets])
    )


def setup(router: web.UrlDispatcher) -> None:
    add(router, "GET", "/api/v2/users/search", search_users)
    add(router, "GET", "/api/v2/users/me", show_me)
    add(router, "GET", "/api/v2/users", list_users)
    add(router, "POST", "/api/v2/users", create_user)
    add(router, "GET", r"/api/v2/users/{user_id:\d+}", show_user)
    add(router, "PUT", r"/api/v2/users/{user_id:\d+}", update_user)
    add(router, "GET", r"/api/v2/users/{user_id:\d+}/tickets/requested", requested_tickets)
