"""Builds the Zendesk side of a node: the account (real or the embedded sandbox), the client,
the shared rate limiter, and the glue the workflow runner needs from the hub."""

import asyncio
import contextlib
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from typing import Any

import structlog
from aiohttp import web
from pydantic import ValidationError

from daemon.config import Settings
from daemon.connect.client import ConnectClient
from daemon.core.events import WorkflowReported
from daemon.core.settings import AppSettings
from daemon.core.state import Contact
from daemon.core.workflow.policy import AgentInfo
from daemon.sandbox import SANDBOX_KEY, create_app
from daemon.sandbox.config import SandboxConfig
from daemon.server.hub import AgentHub
from daemon.server.metrics import Metrics
from daemon.store.base import Lease, Store
from daemon.zendesk.client import PLAN_LIMITS, ApiTokenAuth, Auth, OAuthAuth, ZendeskClient
from daemon.zendesk.limiter import SharedRateLimiter
from daemon.zendesk.retry import ZendeskError
from daemon.zendesk.runner import RunnerDeps, RunResult, run_contact

log = structlog.get_logger("switchboard.zendesk")


@dataclass
class ZendeskSide:
    client: ZendeskClient
    run_contact: Callable[[str, str, Lease], Awaitable[RunResult]]
    description: str
    sandbox_state: Callable[[], Awaitable[dict[str, Any]]] | None
    agent_user_id: Callable[[str], int | None]
    close: Callable[[], Awaitable[None]]
    deps: RunnerDeps  # the runner's timings (tests shorten them; they are not settings)
    app_settings: Callable[[], AppSettings]  # as the workflow uses them now


#: The app's settings in Zendesk (clients/zendesk-app/manifest.json parameters) -> the
#: SWITCHBOARD_* setting that overrides it and the AppSettings field it sets.
INSTALLATION_SETTINGS = {
    "connect_instance_url": ("connect_instance_url", "instance_url"),
    "recent_ticket_minutes": ("recent_ticket_minutes", "recent_ticket_timeout"),
    "default_dialed_number": ("default_dialed_number", "default_dialed_number"),
    "ticket_attribute": ("ticket_attribute", "ticket_attribute"),
    "media_less": ("media_less", "media_less"),
}


def app_settings(s: Settings, installation: Mapping[str, Any] | None = None) -> AppSettings:
    """The account's app settings: a SWITCHBOARD_* variable that is set wins, then the app
    installation's setting in Zendesk, then the default (contact attributes override all
    three, contact by contact, in the workflow policy). Raises ValidationError on a value
    the workflow cannot use."""
    values: dict[str, Any] = {
        "instance_url": s.connect_instance_url,
        "country_prefix": s.default_country_prefix or "",
        "default_dialed_number": s.default_dialed_number,
        "ticket_attribute": s.ticket_attribute,
        "recent_ticket_timeout": s.recent_ticket_minutes,
        "ctr_time_zone": s.ctr_timezone,
        "talk_partner": s.talk_partner_edition,
        "media_less": s.media_less,
    }
    for name, (variable, field) in INSTALLATION_SETTINGS.items():
        value = (installation or {}).get(name)
        if variable not in s.model_fields_set and value not in (None, ""):
            values[field] = value
    return AppSettings.model_validate(values)


async def follow_installation(
    s: Settings, client: ZendeskClient, installation_id: int, apply: Callable[[AppSettings], None]
) -> None:
    """Re-read the installation's settings every `app_settings_refresh_seconds`, so that an
    administrator's change applies to the next contact without a restart. A failed read or an
    unusable value keeps the settings in force (and says so in the log)."""
    while True:
        try:
            apply(app_settings(s, await client.app_installation_settings(installation_id)))
        except (ZendeskError, ValidationError) as e:
            log.warning("app_settings_unavailable", installation=installation_id, error=str(e))
        await asyncio.sleep(s.app_settings_refresh_seconds)


def _auth(s: Settings) -> Auth:
    if s.zendesk_oauth_token is not None:
        return OAuthAuth(
            access_token=s.zendesk_oauth_token.get_secret_value(),
            refresh_token=(
                s.zendesk_oauth_refresh_token.get_secret_value()
                if s.zendesk_oauth_refresh_token
                else None
            ),
            client_id=s.zendesk_oauth_client_id,
            client_secret=(
                s.zendesk_oauth_client_secret.get_secret_value()
                if s.zendesk_oauth_client_secret
                else None
            ),
        )
    if s.zendesk_email and s.zendesk_api_token is not None:
        return ApiTokenAuth(s.zendesk_email, s.zendesk_api_token.get_secret_value())
    raise ValueError(
        "SWITCHBOARD_ZENDESK_URL is set: also set SWITCHBOARD_ZENDESK_OAUTH_TOKEN "
        "(preferred) or SWITCHBOARD_ZENDESK_EMAIL and SWITCHBOARD_ZENDESK_API_TOKEN"
    )


async def start_zendesk(
    s: Settings,
    store: Store,
    hub: AgentHub,
    metrics: Metrics,
    connect: ConnectClient | None = None,
) -> ZendeskSide:
    """`connect`: Amazon Connect's API for the workflow's recording control, if configured."""
    sandbox_runner: web.AppRunner | None = None
    sandbox_state = None
    agent_user_id: Callable[[str], int | None] = lambda _agent: None  # noqa: E731
    if s.zendesk_url is None:
        sandbox_app = create_app(SandboxConfig())
        sandbox_runner = web.AppRunner(sandbox_app, access_log=None)
        await sandbox_runner.setup()
        await web.TCPSite(sandbox_runner, "127.0.0.1", 0).start()
        base = f"http://127.0.0.1:{sandbox_runner.addresses[0][1]}"
        sandbox = sandbox_app[SANDBOX_KEY]
        credential = sandbox.config.credentials[0]
        auth: Auth = ApiTokenAuth(credential.email, credential.token)
        description = f"embedded sandbox at {base}"
        log.info("zendesk_sandbox", url=base, note="demo: the embedded Zendesk sandbox")

        async def state() -> dict[str, Any]:
            return sandbox.snapshot(base)

        def sandbox_agent(agent: str) -> int | None:
            email = f"{agent}@agents.switchboard.example"
            user = sandbox.user_by_email(email)
            if user is None:
                user = sandbox.create_user(
                    name=f"Agent {agent}", email=email, role="agent", indexed=True
                )
            return user.id

        sandbox_state, agent_user_id = state, sandbox_agent
    else:
        base, auth, description = s.zendesk_url.rstrip("/"), _auth(s), s.zendesk_url
    limiter = SharedRateLimiter(
        store, f"zendesk:{base}", PLAN_LIMITS[s.zendesk_plan], observer=metrics.zendesk
    )
    client = ZendeskClient(base, auth, limiter=limiter, observer=metrics.zendesk)
    await client.__aenter__()

    async def load_contact(agent: str, contact_id: str) -> Contact | None:
        _, state = await hub.load(agent, fresh=True)
        return state.contacts.get(contact_id)

    async def agent_info(agent: str) -> AgentInfo:
        # Called right after load_contact's fresh read; an agent's identity rarely changes.
        _, state = await hub.load(agent)
        user_id, name = state.zendesk_identity()
        return AgentInfo(user_id=user_id, name=name)

    async def report(agent: str, event: WorkflowReported) -> None:
        await hub.apply(agent, event)

    deps = RunnerDeps(
        store=store,
        client=client,
        settings=app_settings(s),
        agent_info=agent_info,
        load_contact=load_contact,
        report=report,
        pop_via=s.pop_via,
        observe_step=metrics.workflow_step,
        observe_status=metrics.workflow_status,
        holder=s.node_id,
        landing_seconds=s.workflow_landing_seconds,
        connect=connect,
    )

    def apply(settings: AppSettings) -> None:
        if settings != deps.settings:
            log.info("app_settings_updated", settings=settings.model_dump(mode="json"))
            deps.settings = settings

    follower = (
        asyncio.create_task(follow_installation(s, client, s.zendesk_app_installation_id, apply))
        if s.zendesk_url is not None and s.zendesk_app_installation_id is not None
        else None
    )

    async def run(agent: str, contact_id: str, lease: Lease) -> RunResult:
        result = await run_contact(deps, agent, contact_id, lease)
        metrics.workflow_runs.labels(result=result.reason).inc()
        return result

    async def close() -> None:
        if follower is not None:
            follower.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await follower
        await client.close()
        if sandbox_runner is not None:
            await sandbox_runner.cleanup()

    return ZendeskSide(
        client=client,
        run_contact=run,
        description=description,
        sandbox_state=sandbox_state,
        agent_user_id=agent_user_id,
        close=close,
        deps=deps,
        app_settings=lambda: deps.settings,
    )
