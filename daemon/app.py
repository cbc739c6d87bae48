"""The composition root: builds the store, hub, Zendesk side and servers from Settings."""

import asyncio
import contextlib
import gc
import hashlib
import resource
import signal
from collections.abc import Awaitable, Callable
from typing import Any

import structlog
from aiohttp import web
from websockets.asyncio.server import Server

from daemon.config import Settings
from daemon.connect.confirm import ContactConfirmer
from daemon.connect.wiring import ConnectSide, contact_confirmer, start_connect
from daemon.secrets_file import dev_secret_path, load_or_create_dev_secret
from daemon.server.auth import mint_token
from daemon.server.connection import ConnectionLimits
from daemon.server.hub import SYNC_SECONDS, AgentHub
from daemon.server.metrics import Metrics
from daemon.server.ops import Demo, create_ops_app
from daemon.server.waits import counting_waits
from daemon.server.ws import start_ws_server
from daemon.server.zendesk_app import create_app_pages
from daemon.store.base import Store, StoreUnavailable
from daemon.store.factory import open_store
from daemon.store.instrumented import instrumented
from daemon.zendesk.scheduler import WorkflowScheduler
from daemon.zendesk.wiring import ZendeskSide, start_zendesk
from protocol.messages import Notify

log = structlog.get_logger("switchboard.app")


class Daemon:
    """One Switchboard node. `start()` returns once it serves; `stop()` undoes it all."""

    def __init__(self, settings: Settings, *, store: Store | None = None) -> None:
        self.settings = settings
        self.metrics = Metrics()
        self._given_store = store
        self.store: Store
        self.hub: AgentHub
        self.zendesk: ZendeskSide
        self.connect: ConnectSide | None = None
        self.confirmer: ContactConfirmer | None = None
        self.workflows: WorkflowScheduler
        self.secret = ""
        self.ready = False
        self._store_seen: bool | None = None  # None until the first check
        self.ws_port = 0
        self.http_port = 0
        self._ws: Server | None = None
        self._ops: web.AppRunner | None = None
        self.app_port = 0  # the Zendesk app's public pages; 0: not served
        self._app_pages: web.AppRunner | None = None
        self._tasks: list[asyncio.Task[None]] = []

    async def start(self) -> None:
        s = self.settings
        self.secret = self._secret()
        self.store = self._given_store or open_store(
            s.redis_url,
            cluster=s.redis_cluster or None,
            stream_max=s.stream_max,
            stream_max_age=s.stream_max_age_seconds,
        )
        self.store = instrumented(self.store, counting_waits(self.metrics.store_operation))
        self.hub = AgentHub(self.store, s.rules(), s.node_id, self.metrics)
        self.connect = await start_connect(s, self.store, self.metrics)
        self.zendesk = await start_zendesk(
            s, self.store, self.hub, self.metrics, self.connect.client if self.connect else None
        )
        self.workflows = WorkflowScheduler(
            self.store,
            s.node_id,
            self.zendesk.run_contact,
            self.metrics,
            lease_seconds=s.workflow_lease_seconds,
        )
        self.hub.on_wake = self.workflows.wake
        self.confirmer = contact_confirmer(
            s, self.connect, self.hub, self.zendesk.client, self.metrics
        )
        self.hub.report_check = self.confirmer
        await self._check_store()
        self._ws = await start_ws_server(
            host=s.host,
            port=s.ws_port,
            hub=self.hub,
            secret=self.secret,
            limits=ConnectionLimits(
                hello_timeout=s.hello_timeout_seconds,
                rate_per_second=s.rate_per_second,
                rate_burst=s.rate_burst,
                flood_strikes=s.flood_strikes,
                agent_rate_per_second=s.agent_rate_per_second,
                agent_rate_burst=s.agent_rate_burst,
                agent_max_wait=s.agent_max_wait_seconds,
                agent_busy_share=s.agent_busy_share,
                agent_busy_burst=s.agent_busy_burst_seconds,
            ),
            metrics=self.metrics,
            allowed_origins=s.allowed_origins,
            max_message_bytes=s.max_message_bytes,
            max_queue=s.max_queue,
            ping_interval=s.ping_interval_seconds,
            ping_timeout=s.ping_timeout_seconds,
        )
        self.ws_port = next(iter(self._ws.sockets)).getsockname()[1]
        demo = None
        if s.demo and self.zendesk.sandbox_state is not None:
            demo = Demo(
                ws_url=f"ws://{s.host}:{self.ws_port}/ws",
                mint=self._demo_token,
                zendesk_state=self.zendesk.sandbox_state,
                connect=self.connect.sandbox if self.connect else None,
            )
        self._ops = web.AppRunner(
            create_ops_app(
                self.hub,
                self.metrics,
                lambda: self.ready,
                demo,
                admin_token=s.admin_token.get_secret_value() if s.admin_token else None,
            ),
            access_log=None,
        )
        await self._ops.setup()
        site = web.TCPSite(self._ops, s.host, s.http_port)
        await site.start()
        self.http_port = self._ops.addresses[0][1]
        if s.zendesk_app_public_key is not None:
            self._app_pages = web.AppRunner(
                create_app_pages(
                    s,
                    self.secret,
                    lambda: self.ws_port,
                    self.zendesk.app_settings,
                    self.store,
                ),
                access_log=None,
            )
            await self._app_pages.setup()
            await web.TCPSite(self._app_pages, s.host, s.app_port).start()
            self.app_port = self._app_pages.addresses[0][1]
        interval = max(0.2, s.node_ttl_seconds / 3)
        self._tasks = [
            asyncio.create_task(self._every(interval, self._check_store)),
            asyncio.create_task(self._every(1.0, self.hub.sweep)),
            asyncio.create_task(self._every(SYNC_SECONDS, self.hub.sync_positions)),
            asyncio.create_task(self._every(s.workflow_scan_seconds, self.workflows.scan)),
        ]
        ops = f"http://{s.host}:{self.http_port}"
        log.info(
            "serving",
            node=s.node_id,
            ws=f"ws://{s.host}:{self.ws_port}/ws",
            ops=ops,
            demo=f"{ops}/demo" if demo else None,
            zendesk_app=f"http://{s.host}:{self.app_port}/zendesk/app" if self.app_port else None,
            store="redis" if s.redis_url else "memory",
            zendesk=self.zendesk.description,
        )

    def _secret(self) -> str:
        """The production secret, or (demo only: Settings refuses anything else) the machine's
        development secret, which is logged by fingerprint, never in full."""
        if self.settings.secret is not None:
            return self.settings.secret.get_secret_value()
        secret, created = load_or_create_dev_secret()
        log.info(
            "development_secret_generated" if created else "development_secret_in_use",
            fingerprint=fingerprint(secret),
            path=str(dev_secret_path()),
        )
        return secret

    def _demo_token(self, agent: str) -> str:
        return mint_token(
            self.secret,
            agent,
            ttl_seconds=self.settings.token_ttl_seconds,
            zendesk_user_id=self.zendesk.agent_user_id(agent),
            name=f"Agent {agent}",
        )

    async def _check_store(self) -> None:
        """Heartbeat and readiness; tabs are told when the store goes and comes back."""
        try:
            await self.store.heartbeat(self.settings.node_id, self.settings.node_ttl_seconds)
            self.hub.live_nodes = await self.store.live_nodes()
            up = True
        except StoreUnavailable:
            up = False
        self.metrics.store_up.set(1 if up else 0)
        if up == self.ready:
            return
        first = self._store_seen is None
        self.ready, self._store_seen = up, True
        if first and up:
            log.info("store_ready")
            return
        log.warning("store_up" if up else "store_down")
        if up:
            self.hub.forget_cache()
        text = (
            "Switchboard is connected to its store again."
            if up
            else "Switchboard lost its store: changes are paused and will resume on their own."
        )
        notice = Notify(
            level="info" if up else "warning",
            code="store_recovered" if up else "store_unavailable",
            text=text,
        )
        for sink in self.hub.sinks():
            await sink.tell(notice)
        if up:
            await self.hub.reregister_all()

    async def _every(self, seconds: float, job: Callable[[], Awaitable[Any]]) -> None:
        while True:
            await asyncio.sleep(seconds)
            try:
                await job()
            except StoreUnavailable:
                pass  # readiness already says so; the next round tries again
            except Exception:
                log.exception("background_job_failed", job=getattr(job, "__name__", "job"))

    async def stop(self) -> None:
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        if self._ws is not None:
            self._ws.close(close_connections=True)
            await self._ws.wait_closed()
        if self._ops is not None:
            await self._ops.cleanup()
        if self._app_pages is not None:
            await self._app_pages.cleanup()
        await self.workflows.close()
        if self.confirmer is not None:
            await self.confirmer.close()
        await self.hub.close()
        await self.zendesk.close()
        if self.connect is not None:
            await self.connect.close()
        await self.store.close()

    async def serve_forever(self) -> None:
        """Serve until SIGTERM or SIGINT, then close tabs with 1001 so they reconnect elsewhere."""
        raise_file_limit()
        await self.start()
        gc.freeze()  # start-up's objects live for ever: keep the collector from walking them
        stopping = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, stopping.set)
        try:
            await stopping.wait()
            log.info("stopping")
        finally:
            await self.stop()


def fingerprint(secret: str) -> str:
    """What a log may say about a secret: enough to tell two apart, nothing to sign with."""
    return "sha256:" + hashlib.sha256(secret.encode()).hexdigest()[:12]


def raise_file_limit() -> tuple[int, int]:
    """Raise the soft open-file limit to the hard limit: every tab is a file descriptor, and
    systemd's default soft limit (1,024) would cap a node near a thousand tabs."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft != hard:
        with contextlib.suppress(ValueError, OSError):
            resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    raised, _ = resource.getrlimit(resource.RLIMIT_NOFILE)
    log.info("file_limit", soft=raised, hard=hard, was=soft)
    return raised, hard
