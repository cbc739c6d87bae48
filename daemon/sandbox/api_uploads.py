"""Uploads: store a file (a call recording) with Zendesk and get a token to attach it.

Attaching the recording instead of linking the contact-centre URL keeps it playable after the
source link expires. ``content_url`` is served by the sandbox itself so a test can fetch it.
"""

from __future__ import annotations

from aiohttp import web

from daemon.sandbox import render
from daemon.sandbox.clock import iso
from daemon.sandbox.errors import ApiError, not_found
from daemon.sandbox.keys import base_url, sandbox_of

_TOKEN_TTL = 3 * 24 * 3600.0


async def upload(request: web.Request) -> web.Response:
    sandbox = sandbox_of(request)
    file_name = request.query.get("filename", "")
    if not file_name:
        raise ApiError(400, "ParameterMissing", "param is missing or the value is empty: filename")
    content = await request.read()
    content_type = request.headers.get("Content-Type", "application/binary")
    token, attachment = sandbox.upload(
        file_name, content_type, content, token=request.query.get("token")
    )
    base = base_url(request)
    attachments = [render.attachment(a, base) for a in sandbox.uploads[token]]
    return web.json_response(
        {
            "upload": {
                "token": token,
                "expires_at": iso(attachment.created_at + _TOKEN_TTL),
                "attachment": render.attachment(attachment, base),
                "attachments": attachments,
            }
        },
        status=201,
    )


async def content(request: web.Request) -> web.Response:
    """The bytes behind an attachment's ``content_url``."""
    found = sandbox_of(request).attachment_by_token(request.match_info["token"])
    if found is None:
        raise not_found()
    return web.Response(body=found.content, content_type=found.content_type)


def setup(router: web.UrlDispatcher) -> None:
    router.add_post("/api/v2/uploads", upload)
    router.add_post("/api/v2/uploads.json", upload)
    router.add_get("/attachments/token/{token}/", content)
