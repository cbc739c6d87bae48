"""Typed keys under which the sandbox keeps things on the app and on each request."""

from __future__ import annotations

from aiohttp import web

from daemon.sandbox.state import Sandbox

#: The account state of a sandbox app: ``app[SANDBOX_KEY]``.
SANDBOX_KEY = web.AppKey("switchboard_sandbox", Sandbox)
#: The id of the user the request authenticated as.
CALLER_KEY = web.RequestKey("switchboard_sandbox_caller", int)
#: Set when a ``drop_after_write`` fault aborted the connection instead of answering.
DROPPED_KEY = web.RequestKey("switchboard_sandbox_dropped", bool)


def sandbox_of(request: web.Request) -> Sandbox:
    return request.app[SANDBOX_KEY]


def caller_of(request: web.Request) -> int:
    return request[CALLER_KEY]


def base_url(request: web.Request) -> str:
    """The origin the client used, for the ``url`` fields of answers."""
    return f"{request.scheme}://{request.host}"


def template_of(request: web.Request) -> str:
    """The route template of a request without its ``.json`` suffix, e.g.
    ``/api/v2/users/{user_id}``; the raw path when no route matched."""
    resource = request.match_info.route.resource
    canonical = resource.canonical if resource is not None else request.path
    return canonical.removesuffix(".json")
