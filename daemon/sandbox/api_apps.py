"""The Apps API, as far as Switchboard uses it: an app installation and its settings.

- ``GET /api/v2/apps/installations/{id}``: the installation (404 if there is none);
- ``PUT /api/v2/apps/installations/{id}``: ``{"settings": {...}}`` merged into its settings,
  as an administrator saving the app's settings page;
- ``POST /__sandbox/installations``: ``{"id": ..., "app_id": ..., "settings": {...}}`` installs
  an app (in Zendesk, uploading and installing the private app).
"""

from typing import Any

from aiohttp import web

from daemon.sandbox.clock import iso
from daemon.sandbox.errors import ApiError
from daemon.sandbox.keys import sandbox_of
from daemon.sandbox.routing import add, int_param, json_body


def _installation(request: web.Request) -> dict[str, Any]:
    installation = sandbox_of(request).installations.get(int_param(request, "id"))
    if installation is None:
        raise ApiError(404, "RecordNotFound", "Not found")
    return installation


async def show(request: web.Request) -> web.Response:
    return web.json_response(_installation(request))


async def update(request: web.Request) -> web.Response:
    installation = _installation(request)
    body = await json_body(request)
    settings = body.get("settings") if isinstance(body, dict) else None
    if not isinstance(settings, dict):
        raise ApiError(400, "InvalidValue", "settings must be an object")
    installation["settings"] = {**installation["settings"], **settings}
    installation["settings_objects"] = [
        {"name": k, "value": v} for k, v in installation["settings"].items()
    ]
    installation["updated_at"] = iso(sandbox_of(request).clock.now())
    return web.json_response(installation)


async def install(request: web.Request) -> web.Response:
    body = await json_body(request)
    if not isinstance(body, dict) or not isinstance(body.get("id"), int):
        raise ApiError(400, "InvalidSandboxRequest", "expected {id, app_id, settings}")
    settings = body.get("settings") or {}
    now = iso(sandbox_of(request).clock.now())
    installation = {
        "id": body["id"],
        "app_id": int(body.get("app_id") or 1),
        "product": "support",
        "enabled": True,
        "settings": dict(settings),
        "settings_objects": [{"name": k, "value": v} for k, v in settings.items()],
        "created_at": now,
        "updated_at": now,
    }
    sandbox_of(request).installations[body["id"]] = installation
    return web.json_response(installation, status=201)


def setup(router: web.UrlDispatcher) -> None:
    add(router, "GET", r"/api/v2/apps/installations/{id:\d+}", show)
    add(router, "PUT", r"/api/v2/apps/installations/{id:\d+}", update)
    router.add_post("/__sandbox/installations", install)
