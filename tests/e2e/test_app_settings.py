"""App settings from Zendesk (issue 8, item 3): the daemon takes the admin guide's app settings
from the app installation an administrator configured (Zendesk's Apps API, in the sandbox over
real HTTP), re-reads them periodically, and lets a SWITCHBOARD_* variable that is set win.
Contact attributes still override both (the workflow policy's own tests)."""

import base64
from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import pytest
from aiohttp.test_utils import TestServer

from clients.python.tab import TabClient
from daemon.config import Settings
from daemon.sandbox import SANDBOX_KEY, SandboxConfig, create_app
from daemon.zendesk.wiring import app_settings
from tests.daemons import eventually
from tests.e2e.conftest import Rig, voice
from tests.integration.test_zendesk_login import login, page_config
from tests.oas import assert_exchanges_valid
from tests.zaf import INSTALLATION_ID, key_pair, zaf_token

IVR = "+442071230000"


@pytest.fixture
async def sandbox_server() -> AsyncIterator[TestServer]:
    """The e2e sandbox, its traffic checked against Zendesk's Support API description except
    for the Apps API, which Zendesk describes in a separate reference (not vendored)."""
    server = TestServer(create_app(SandboxConfig(record_exchanges=True)))
    await server.start_server()
    yield server
    await server.close()
    assert_exchanges_valid(
        server.app[SANDBOX_KEY],
        min_count=0,
        ignore=lambda e: e.path.startswith("/api/v2/apps/"),
    )


async def put_settings(rig: Rig, settings: dict[str, Any]) -> None:
    """What Zendesk's app settings page does when an administrator saves it."""
    url = f"{rig.base_url}/api/v2/apps/installations/{INSTALLATION_ID}.json"
    basic = base64.b64encode(b"agent@example.com/token:sandbox-token").decode()
    headers = {"Authorization": f"Basic {basic}"}
    async with (
        aiohttp.ClientSession() as http,
        http.put(url, json={"settings": settings}, headers=headers) as resp,
    ):
        assert resp.status == 200, await resp.text()


async def install(rig: Rig, settings: dict[str, Any]) -> None:
    url = f"{rig.base_url}/__sandbox/installations"
    body = {"id": INSTALLATION_ID, "app_id": 77, "settings": settings}
    async with aiohttp.ClientSession() as http, http.post(url, json=body) as resp:
        assert resp.status == 201, await resp.text()


async def start(rig: Rig, **overrides: Any) -> None:
    _, public = key_pair()
    await rig.start(
        zendesk_app_public_key=public,
        zendesk_app_installation_id=INSTALLATION_ID,
        app_port=0,
        app_settings_refresh_seconds=0.2,
        **overrides,
    )


async def test_a_setting_saved_in_zendesk_changes_the_next_contact_without_a_restart(
    rig: Rig,
) -> None:
    uid = rig.customer("Ann Caller", "+447700900123")
    earlier = rig.sandbox.create_ticket(
        {"subject": "Earlier issue", "comment": {"body": "It broke"}, "requester_id": uid},
        caller_id=rig.agent_user_id,
    ).id
    await install(rig, {"ticket_attribute": "zendesk_ticket", "connect_instance_url": ""})
    await start(rig)
    tab = await rig.tab()
    # the IVR stores the caller's ticket number under a name the app is not configured for
    await tab.report("connected", "c-1", **voice(attributes={"ivr_ticket": str(earlier)}))
    await eventually(lambda: bool(rig.tickets("c-1")), 15)  # so a new ticket is made

    await put_settings(rig, {"ticket_attribute": "ivr_ticket", "default_dialed_number": IVR})
    await eventually(lambda: rig.daemon.zendesk.app_settings().ticket_attribute == "ivr_ticket")
    assert rig.daemon.zendesk.app_settings().default_dialed_number == IVR

    await tab.report("connected", "c-2", **voice(attributes={"ivr_ticket": str(earlier)}))
    await eventually(lambda: "c-2" in tab.contacts and tab.contacts["c-2"].ticket_id == earlier, 15)
    assert rig.tickets("c-2") == []


async def test_a_variable_that_is_set_wins_over_zendesk_and_a_bad_value_changes_nothing(
    rig: Rig,
) -> None:
    await install(rig, {"ticket_attribute": "ivr_ticket", "recent_ticket_minutes": "15"})
    await start(rig, ticket_attribute="zendesk_ticket")
    await eventually(lambda: rig.daemon.zendesk.app_settings().recent_ticket_timeout == 15)
    assert rig.daemon.zendesk.app_settings().ticket_attribute == "zendesk_ticket"
    await put_settings(rig, {"recent_ticket_minutes": "-3"})  # refused by the settings' rules
    reads = installation_reads(rig)
    await eventually(lambda: installation_reads(rig) >= reads + 2)  # read, and read again
    assert rig.daemon.zendesk.app_settings().recent_ticket_timeout == 15


async def test_media_less_mode_comes_from_the_installation(rig: Rig) -> None:
    await install(rig, {"media_less": True})
    await start(rig)
    await eventually(lambda: rig.daemon.zendesk.app_settings().media_less)
    status, page, _ = await login(rig.daemon, zaf_token(rig.base_url, rig.agent_user_id))
    assert status == 200
    config = page_config(page)
    assert config["mediaLess"] is True  # the panel's CCP starts with its softphone off
    # The panel says so in its hello (clients/js/zendesk-app.js): the agent's tabs are told.
    tab = await TabClient(rig.ws_url(), config["token"], media_less=config["mediaLess"]).connect()
    rig.tabs.append(tab)
    await eventually(lambda: tab.media is not None and tab.media.media_less)

    await put_settings(rig, {"media_less": False})
    await eventually(lambda: not rig.daemon.zendesk.app_settings().media_less)
    _, page, _ = await login(rig.daemon, zaf_token(rig.base_url, rig.agent_user_id))
    assert page_config(page)["mediaLess"] is False


def installation_reads(rig: Rig) -> int:
    return sum(n for k, n in rig.requests().items() if k.startswith("GET /api/v2/apps/"))


def test_without_an_installation_the_variables_and_defaults_apply() -> None:
    s = Settings(
        demo=True, recent_ticket_minutes=5, connect_instance_url="https://acme.my.connect.aws"
    )
    from_zendesk = {"recent_ticket_minutes": 30, "ticket_attribute": "ivr_ticket"}
    assert app_settings(s).ticket_attribute == "zendesk_ticket"
    merged = app_settings(s, from_zendesk)
    assert merged.recent_ticket_timeout == 5  # set as a variable: it wins
    assert merged.ticket_attribute == "ivr_ticket"  # only in Zendesk
    assert merged.instance_url == "https://acme.my.connect.aws"
    assert not merged.media_less and app_settings(s, {"media_less": True}).media_less
    forced = Settings(demo=True, media_less=False)
    assert not app_settings(forced, {"media_less": True}).media_less  # the variable wins
