"""Tickets: create (idempotent), show, update, list by external id, comments."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from aiohttp import web

from daemon.sandbox import render
from daemon.sandbox.idempotency import StoredAnswer, fingerprint
from daemon.sandbox.keys import base_url, caller_of, sandbox_of, template_of
from daemon.sandbox.payload import envelope
from daemon.sandbox.records import TicketRecord
from daemon.sandbox.routing import add, int_param, json_body, paginate

IDEMPOTENCY_HEADER = "Idempotency-Key"
LOOKUP_HEADER = "x-idempotency-lookup"


async def idempotent_create(
    request: web.Request, create: Callable[[Any], TicketRecord]
) -> web.Response:
    """Run ``create`` once per ``Idempotency-Key`` and replay its answer afterwards."""
    sandbox = sandbox_of(request)
    body = await json_body(request)
    key = request.headers.get(IDEMPOTENCY_HEADER)
    base = base_url(request)
    if key is None:
        ticket = create(body)
        return _created(ticket, base, {})
    print_ = fingerprint(request.method, template_of(request), body)
    stored = sandbox.idempotency.lookup(key, print_, sandbox.now(), sandbox.config.idempotency_ttl)
    if stored is not None:
        return web.json_response(
            stored.body, status=stored.status, headers={**stored.headers, LOOKUP_HEADER: "hit"}
        )
    ticket = create(body)
    response = _created(ticket, base, {LOOKUP_HEADER: "miss"})
    sandbox.idempotency.store(
        key,
        StoredAnswer(
            fingerprint=print_,
            status=201,
            body={"ticket": render.ticket(ticket, base)},
            headers={"Location": response.headers["Location"]},
            stored_at=sandbox.now(),
        ),
    )
    return response


def _created(ticket: TicketRecord, base: str, headers: dict[str, str]) -> web.Response:
    return web.json_response(
        {"ticket": render.ticket(ticket, base)},
        status=201,
        headers={"Location": f"{base}/api/v2/tickets/{ticket.id}.json", **headers},
    )


async def create_ticket(request: web.Request) -> web.Response:
    sandbox = sandbox_of(request)
    caller = caller_of(request)
    return await idempotent_create(
        request,
        lambda body: sandbox.create_ticket(envelope(body, "ticket"), caller_id=caller),
    )


async def show_ticket(request: web.Request) -> web.Response:
    ticket = sandbox_of(request).get_ticket(int_param(request, "ticket_id"))
    return web.json_response({"ticket": render.ticket(ticket, base_url(request))})


async def update_ticket(request: web.Request) -> web.Response:
    doc = envelope(await json_body(request), "ticket")
    ticket, audit = sandbox_of(request).update_ticket(
        int_param(request, "ticket_id"), doc, caller_id=caller_of(request)
    )
    return web.json_response({"ticket": render.ticket(ticket, base_url(request)), "audit": audit})


async def list_tickets(request: web.Request) -> web.Response:
    sandbox = sandbox_of(request)
    external_id = request.query.get("external_id")
    if external_id is not None:
        tickets = sandbox.tickets_by_external_id(external_id)
    else:
        tickets = list(sandbox.tickets.values())
    tickets.sort(key=lambda t: t.id)
    base = base_url(request)
    return web.json_response(
        paginate(request, "tickets", [render.ticket(t, base) for t in tickets])
    )


async def list_comments(request: web.Request) -> web.Response:
    ticket = sandbox_of(request).get_ticket(int_param(request, "ticket_id"))
    comments = list(ticket.comments)
    if request.query.get("sort_order") == "desc" or request.query.get("sort") == "-created_at":
        comments.reverse()
    base = base_url(request)
    return web.json_response(
        paginate(request, "comments", [render.comment(c, base) for c in comments])
    )


def setup(router: web.UrlDispatcher) -> None:
    add(router, "GET", "/api/v2/tickets", list_tickets)
    add(router, "POST", "/api/v2/tickets", create_ticket)
    add(router, "GET", r"/api/v2/tickets/{ticket_id:\d+}", show_ticket)
    add(router, "PUT", r"/api/v2/tickets/{ticket_id:\d+}", update_ticket)
    add(router, "GET", r"/api/v2/tickets/{ticket_id:\d+}/comments", list_comments)
