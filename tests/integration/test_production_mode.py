"""Production mode cannot leak access (issue 11, item 1 and 2).

The attack that was reproduced: the demo routes were on whenever no Zendesk URL was set, so
`/demo/config?agent=X` minted a token for any agent with the production secret; `/admin/agents/X`
answered anyone and showed tab sessions (enough to supersede a real tab), connection ids and
callers' numbers; the generated development secret was logged in full.
"""

import json
import os
import subprocess
import sys
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from aiohttp import web
from aiohttp.test_utils import make_mocked_request
from pydantic import ValidationError

from daemon.app import Daemon
from daemon.config import Settings
from daemon.server.ops import admin_guard, redact_number
from tests.daemons import SECRET, eventually, open_tab, running
from tests.processes import ROOT, DaemonProcess

ADMIN = "admin-token-for-tests-0123456789abcdef"
CALLER = "+447700900123"


def ops(daemon: Daemon, path: str) -> str:
    return f"http://127.0.0.1:{daemon.http_port}{path}"


async def get(url: str, **headers: str) -> tuple[int, Any]:
    async with aiohttp.ClientSession() as http, http.get(url, headers=headers) as response:
        text = await response.text()
        try:
            return response.status, json.loads(text)
        except ValueError:
            return response.status, text


@pytest.fixture
async def guarded() -> AsyncIterator[Daemon]:
    async with running(admin_token=ADMIN) as daemon:
        yield daemon


# -- settings: a configuration that could leak access does not start ----------------------


def production(**overrides: Any) -> dict[str, Any]:
    return {
        "zendesk_url": "https://acme.zendesk.com",
        "zendesk_oauth_token": "oauth",
        "secret": SECRET,
        "allowed_origins": ["https://acme.zendesk.com"],
    } | overrides


@pytest.mark.parametrize(
    ("overrides", "names"),
    [
        ({}, "SWITCHBOARD_ZENDESK_URL"),  # nothing configured: production with no account
        (production(secret=None), "SWITCHBOARD_SECRET"),
        (production(secret="short-secret"), "at least 32"),
        (production(allowed_origins=[]), "SWITCHBOARD_ALLOWED_ORIGINS"),
        (production(zendesk_oauth_token=None), "SWITCHBOARD_ZENDESK_OAUTH_TOKEN"),
        ({"demo": True, "secret": SECRET}, "never runs with SWITCHBOARD_SECRET"),
        ({"demo": True, "zendesk_url": "https://acme.zendesk.com"}, "unset SWITCHBOARD_ZENDESK"),
        ({"demo": True, "host": "0.0.0.0"}, "loopback only"),
        ({"demo": True, "host": "10.1.2.3"}, "loopback only"),
    ],
)
def test_unsafe_configurations_are_refused_naming_what_to_set(
    overrides: dict[str, Any], names: str
) -> None:
    with pytest.raises(ValidationError, match=names):
        Settings(**overrides)


@pytest.mark.parametrize("host", ["127.0.0.1", "localhost", "::1", "127.0.0.2"])
def test_the_demo_runs_on_loopback_without_a_secret(host: str) -> None:
    assert Settings(demo=True, host=host).demo
    assert Settings(**production()).secret is not None


# -- the attack, against a production daemon over HTTP --------------------------------------


async def test_a_production_daemon_has_no_demo_and_mints_no_token(guarded: Daemon) -> None:
    for path in ("/demo/config?agent=victim", "/demo", "/demo/zendesk", "/", "/js/switchboard.js"):
        status, _ = await get(ops(guarded, path))
        assert status == 404, path


async def test_admin_views_need_the_bearer_token(guarded: Daemon) -> None:
    for path in ("/admin/agents", "/admin/agents/alice"):
        assert (await get(ops(guarded, path)))[0] == 401
        assert (await get(ops(guarded, path), Authorization="Bearer wrong"))[0] == 401
        assert (await get(ops(guarded, path), Authorization=ADMIN))[0] == 401  # no scheme
        assert (await get(ops(guarded, path), Authorization=f"Bearer {ADMIN}"))[0] == 200


async def test_admin_views_hold_no_session_connection_id_or_customer_number(
    guarded: Daemon,
) -> None:
    tab = await open_tab(guarded, "alice")
    await tab.report("incoming", "c-1", type="voice", customer_endpoint=CALLER)
    await eventually(lambda: "c-1" in tab.contacts)
    status, view = await get(ops(guarded, "/admin/agents/alice"), Authorization=f"Bearer {ADMIN}")
    assert status == 200
    assert view["tabs"] and view["contacts"]
    text = json.dumps(view)
    assert tab.session is not None and tab.session not in text
    assert CALLER not in text and CALLER[1:] not in text
    for t in view["tabs"]:
        assert "session" not in t and "conn_id" not in t
    assert view["contacts"][0]["customer_endpoint"] == "••••••••••23"
    await tab.close()


async def test_without_an_admin_token_only_loopback_callers_are_answered() -> None:
    guard = admin_guard(None)
    guard(make_mocked_request("GET", "/admin/agents", transport=_peer("127.0.0.1")))
    with pytest.raises(web.HTTPForbidden) as refused:
        guard(make_mocked_request("GET", "/admin/agents", transport=_peer("203.0.113.9")))
    assert "SWITCHBOARD_ADMIN_TOKEN" in (refused.value.text or "")


def _peer(address: str) -> Any:
    class Transport:
        def get_extra_info(self, name: str, default: Any = None) -> Any:
            return (address, 40000) if name == "peername" else default

    return Transport()


@pytest.mark.parametrize(
    ("endpoint", "shown"),
    [
        (CALLER, "••••••••••23"),
        ("+1 (555) 010-9999", "•••••••••99"),
        ("1234", "••••"),
        (None, None),
    ],
)
def test_customer_numbers_are_redacted(endpoint: str | None, shown: str | None) -> None:
    assert redact_number(endpoint) == shown


# -- the command line: one line per problem, the version, the demo's secret ----------------


def switchboard(*args: str, **env: str) -> subprocess.CompletedProcess[str]:
    clean = {k: v for k, v in os.environ.items() if not k.startswith("SWITCHBOARD_")}
    clean["PYTHONPATH"] = str(ROOT)
    return subprocess.run(
        [sys.executable, "-m", "daemon", *args],
        env=clean | env,
        capture_output=True,
        text=True,
        timeout=30,
        cwd=ROOT,
    )


def test_a_bad_setting_is_one_line_naming_it() -> None:
    done = switchboard("serve", "--demo", SWITCHBOARD_WS_PORT="abc")
    assert done.returncode == 2
    assert "Traceback" not in done.stderr
    (line,) = done.stderr.strip().splitlines()
    assert line.startswith("switchboard: configuration error: SWITCHBOARD_WS_PORT='abc'")


def test_serve_without_an_account_or_the_demo_says_what_to_set() -> None:
    done = switchboard("serve")
    assert done.returncode == 2
    assert "SWITCHBOARD_ZENDESK_URL" in done.stderr and "--demo" in done.stderr


def test_version() -> None:
    done = switchboard("--version")
    assert done.returncode == 0
    assert done.stdout.strip() == "switchboard 0.1.0"


def test_the_demo_logs_its_secret_by_fingerprint_only(tmp_path: Path) -> None:
    demo = DaemonProcess.start(tmp_path, "demo")
    try:
        secret = (tmp_path / "switchboard" / "dev-secret").read_text().strip()
        log = demo.log_tail(200)
        assert "development_secret_generated" in log and "sha256:" in log
        assert secret not in log
        assert f"{demo.http_url}/demo" in log  # the first screen says where to go
    finally:
        demo.stop()
