"""The ops HTTP app: liveness, readiness, metrics, the agent state page, and the demo.

Liveness says the process answers; readiness says it can take tabs now (the store answers).
The demo routes exist only when the daemon runs against its embedded Zendesk sandbox.
"""

from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

from aiohttp import web
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from daemon.core.views import contact_view, media_view
from daemon.server.hub import AgentHub
from daemon.server.metrics import Metrics
from daemon.store.base import StoreUnavailable

STATIC = Path(__file__).parent / "static"
JS = Path(__file__).resolve().parents[2] / "clients" / "js"


class Demo:
    """What the demo pages need from the daemon: a token per agent and the sandbox's state."""

    def __init__(
        self,
        ws_url: str,
        mint: Callable[[str], str],
        zendesk_state: Callable[[], Awaitable[dict[str, Any]]],
    ) -> None:
        self.ws_url = ws_url
        self.mint = mint
        self.zendesk_state = zendesk_state


def create_ops_app(
    hub: AgentHub, metrics: Metrics, ready: Callable[[], bool], demo: Demo | None
) -> web.Application:
    app = web.Application()

    async def healthz(_: web.Request) -> web.Response:
        return web.json_response({"status": "ok", "node": hub.node_id})

    async def readyz(_: web.Request) -> web.Response:
        ok = ready()
        return web.json_response({"ready": ok, "node": hub.node_id}, status=200 if ok else 503)

    async def metrics_page(_: web.Request) -> web.Response:
        body = generate_latest(metrics.registry)
        return web.Response(body=body, headers={"Content-Type": CONTENT_TYPE_LATEST})

    async def agent_state(request: web.Request) -> web.Response:
        agent = request.match_info["agent"]
        try:
            version, state = await hub.load(agent, fresh=True)
        except StoreUnavailable:
            raise web.HTTPServiceUnavailable(text="store unavailable") from None
        live = hub.context().live_nodes
        return web.json_response(
            {
                "agent": agent,
                "version": version,
                "tabs": [t.to_dict() for t in state.tabs.values()],
                "contacts": [
                    contact_view(c).model_dump(mode="json") for c in state.contacts.values()
                ],
                "media": media_view(state, live).model_dump(mode="json"),
            }
        )

    async def agents(_: web.Request) -> web.Response:
        """The agents with tabs on this node: where an on-call engineer starts looking."""
        return web.json_response({"node": hub.node_id, "agents": hub.local_agents()})

    app.router.add_get("/healthz", healthz)
    app.router.add_get("/admin/agents", agents)
    app.router.add_get("/readyz", readyz)
    app.router.add_get("/metrics", metrics_page)
    app.router.add_get("/admin/agents/{agent}", agent_state)
    if demo is not None:
        _add_demo_routes(app, demo)
    return app


def _add_demo_routes(app: web.Application, demo: Demo) -> None:
    def page(name: str) -> Callable[[web.Request], Awaitable[web.FileResponse]]:
        async def serve(_: web.Request) -> web.FileResponse:
            return web.FileResponse(STATIC / name)

        return serve

    async def config(request: web.Request) -> web.Response:
        agent = request.query.get("agent", "demo-agent")
        return web.json_response(
            {"ws_url": demo.ws_url, "token": demo.mint(agent), "agent": agent, "sandbox": True}
        )

    async def zendesk(_: web.Request) -> web.Response:
        return web.json_response(await demo.zendesk_state())

    async def index(_: web.Request) -> web.Response:
        raise web.HTTPFound("/demo")

    app.router.add_get("/", index)
    app.router.add_get("/demo", page("demo.html"))
    app.router.add_get("/demo/tab", page("tab.html"))
    app.router.add_get("/demo/media", page("media.html"))
    app.router.add_get("/demo/config", config)
    app.router.add_get("/demo/zendesk", zendesk)
    app.router.add_static("/static", STATIC)
    app.router.add_static("/js", JS)
