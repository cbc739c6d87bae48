"""Talk Partner Edition: voice tickets and "display in the agent's browser".

Without the add-on (``SandboxConfig.talk_partner_edition = False``) every endpoint here answers
``no_talk_partner_status``: 403 Forbidden by default, or 404 with the empty-string body the
description documents for these endpoints (indistinguishable from a bad agent or ticket id).
Either is the signal a client uses to fall back to its own way of showing the agent a ticket.
"""

from __future__ import annotations

from typing import Any, Literal

from aiohttp import web

from daemon.sandbox.api_tickets import idempotent_create
from daemon.sandbox.errors import ApiError
from daemon.sandbox.keys import caller_of, sandbox_of
from daemon.sandbox.payload import envelope, opt_int
from daemon.sandbox.records import TicketRecord
from daemon.sandbox.routing import add, int_param

_FORBIDDEN = (
    "You do not have access to this page. Please contact the account owner of this help desk "
    "for further help."
)


def _require_talk_partner(request: web.Request) -> None:
    config = sandbox_of(request).config
    if config.talk_partner_edition:
        return
    if config.no_talk_partner_status == 403:
        raise ApiError(403, "Forbidden", _FORBIDDEN)
    # The description documents these 404s with an empty-string body; keep to it.
    raise ApiError(404, "", raw_body="")


async def create_voice_ticket(request: web.Request) -> web.Response:
    _require_talk_partner(request)
    sandbox = sandbox_of(request)
    caller = caller_of(request)

    def create(body: Any) -> TicketRecord:
        doc = envelope(body, "ticket")
        display_to = opt_int(body, "display_to_agent")
        if display_to is not None:
            agent = sandbox.users.get(display_to)
            if agent is None or agent.role == "end-user":
                raise ApiError(404, "", raw_body="")
        ticket = sandbox.create_ticket(doc, caller_id=caller, talk=True)
        if display_to is not None:
            sandbox.display(display_to, "ticket", ticket.id, source="display_to_agent")
        return ticket

    return await idempotent_create(request, create)


async def _display(request: web.Request, kind: Literal["ticket", "user"]) -> web.Response:
    _require_talk_partner(request)
    target = int_param(request, "ticket_id" if kind == "ticket" else "user_id")
    sandbox_of(request).display(int_param(request, "agent_id"), kind, target)
    return web.json_response("")


async def display_ticket(request: web.Request) -> web.Response:
    return await _display(request, "ticket")


async def display_user(request: web.Request) -> web.Response:
    return await _display(request, "user")


def setup(router: web.UrlDispatcher) -> None:
    add(router, "POST", "/api/v2/channels/voice/tickets", create_voice_ticket)
    add(
        router,
        "POST",
        r"/api/v2/channels/voice/agents/{agent_id:\d+}/tickets/{ticket_id:\d+}/display",
        display_ticket,
    )
    add(
        router,
        "POST",
        r"/api/v2/channels/voice/agents/{agent_id:\d+}/users/{user_id:\d+}/display",
        display_user,
    )
