"""Builds a node's Amazon Connect side from Settings: a real instance, the demo's embedded
Connect sandbox, or nothing (and the log says which features that turns off)."""

from collections.abc import Awaitable, Callable
from dataclasses import dataclass

import structlog
from aiohttp import web

from daemon.config import Settings
from daemon.connect.client import ConnectClient, Instance
from daemon.connect.confirm import ContactConfirmer
from daemon.connect.sandbox import (
    CONNECT_SANDBOX_KEY,
    DEFAULT_INSTANCE,
    ConnectSandbox,
    create_connect_app,
)
from daemon.server.hub import AgentHub
from daemon.server.metrics import Metrics
from daemon.store.base import Store
from daemon.zendesk.client import ZendeskClient
from daemon.zendesk.limiter import SharedRateLimiter

log = structlog.get_logger("switchboard.connect")


@dataclass
class ConnectSide:
    client: ConnectClient
    #: Contacts are described by Connect before they are believed: only with a real instance.
    confirm_contacts: bool
    #: The demo's embedded Connect, where its simulated calls are created.
    sandbox: ConnectSandbox | None
    close: Callable[[], Awaitable[None]]


def _observer(metrics: Metrics) -> Callable[[str, str, float], None]:
    def observe(operation: str, outcome: str, seconds: float) -> None:
        metrics.connect_requests.labels(operation, outcome).inc()
        metrics.connect_seconds.labels(operation).observe(seconds)

    return observe


async def start_connect(s: Settings, store: Store, metrics: Metrics) -> ConnectSide | None:
    if s.connect_instance_arn is not None:
        instance = Instance.from_arn(s.connect_instance_arn)
        pace = SharedRateLimiter(
            store, f"connect:{instance.instance_id}", s.connect_describe_per_minute
        )
        client = ConnectClient(
            instance,
            endpoint_url=s.connect_endpoint_url,
            observe=_observer(metrics),
            pace=pace.acquire,
        )
        await client.start()
        log.info("connect", instance=instance.instance_id, region=instance.region)
        return ConnectSide(client, True, None, client.close)
    if s.demo:
        return await _embedded_sandbox(metrics)
    log.info(
        "connect_off",
        note="SWITCHBOARD_CONNECT_INSTANCE_ARN is not set: recording pause/resume is refused "
        "and contacts are not confirmed with Amazon Connect",
    )
    return None


async def _embedded_sandbox(metrics: Metrics) -> ConnectSide:
    """The demo's Connect: recording control only (tabs of the demo are not confirmed)."""
    app = create_connect_app()
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", 0).start()
    url = f"http://127.0.0.1:{runner.addresses[0][1]}"
    client = ConnectClient(
        Instance("us-east-1", DEFAULT_INSTANCE),
        endpoint_url=url,
        observe=_observer(metrics),
        static_credentials=("demo", "demo"),
    )
    await client.start()
    log.info("connect_sandbox", url=url, note="demo: the embedded Amazon Connect sandbox")

    async def close() -> None:
        await client.close()
        await runner.cleanup()

    return ConnectSide(client, False, app[CONNECT_SANDBOX_KEY], close)


def contact_confirmer(
    s: Settings,
    side: ConnectSide | None,
    hub: AgentHub,
    zendesk: ZendeskClient,
    metrics: Metrics,
) -> ContactConfirmer | None:
    """The check of new contacts with Connect, where an instance is configured explicitly;
    it learns agents' emails from Zendesk (`daemon.connect.confirm`)."""
    if side is None or not side.confirm_contacts:
        return None

    async def agent_email(user_id: int) -> str | None:
        user = await zendesk.get_user(user_id)
        return user.email if user is not None else None

    def count(outcome: str, attempt: str) -> None:
        metrics.connect_confirmations.labels(outcome, attempt).inc()

    log.info(
        "connect_confirms_contacts",
        wait_seconds=s.connect_confirm_wait_seconds,
        checks_per_minute=s.connect_checks_per_agent_per_minute,
        mapped_users=len(s.connect_agent_map),
    )
    return ContactConfirmer(
        side.client,
        hub,
        agent_email,
        agent_map=s.connect_agent_map,
        wait_seconds=s.connect_confirm_wait_seconds,
        checks_per_minute=s.connect_checks_per_agent_per_minute,
        count=count,
    )
