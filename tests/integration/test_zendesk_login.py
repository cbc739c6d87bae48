"""Zendesk-signed login to the app page (issue 8, item 2), over real HTTP and a real WebSocket.

Zendesk POSTs the app's first page request with a form field `token`, an RS256 JWT signed with
the app's key; a test RSA key stands in for Zendesk's. The page's tab token connects a real tab;
everything that is not this account's and this installation's RS256 token is refused with 401
and a page that says why; the tab token is refreshed without a new login until the maximum
session age.
"""

import json
import re
import time
from collections.abc import AsyncIterator, Callable
from typing import Any

import aiohttp
import pytest

from clients.python.tab import TabClient
from daemon.app import Daemon
from daemon.config import Settings
from daemon.server.auth import mint_token, verify_token
from tests.daemons import SECRET, running, sandbox_server, ws_url
from tests.redis_servers import RedisServer
from tests.zaf import INSTALLATION_ID, claims, key_pair, unsafe_token, zaf_token

USER = 4242


@pytest.fixture
async def daemon() -> AsyncIterator[Daemon]:
    _, public = key_pair()
    async with running(
        zendesk_app_public_key=public,
        zendesk_app_installation_id=INSTALLATION_ID,
        app_port=0,
        app_token_ttl_seconds=60,
        app_session_max_seconds=3600,
    ) as d:
        yield d


def account(daemon: Daemon) -> str:
    url = daemon.settings.zendesk_url
    assert url is not None
    return url


def app_url(daemon: Daemon, path: str) -> str:
    return f"http://127.0.0.1:{daemon.app_port}{path}"


async def login(daemon: Daemon, token: str | None) -> tuple[int, str, dict[str, str]]:
    form = {} if token is None else {"token": token}
    async with (
        aiohttp.ClientSession() as http,
        http.post(app_url(daemon, "/zendesk/app?origin=x&app_guid=y"), data=form) as response,
    ):
        return response.status, await response.text(), dict(response.headers)


def page_config(page: str) -> dict[str, Any]:
    found = re.search(r'id="switchboard-config">(.*?)</script>', page, re.S)
    assert found, "the page carries no config"
    config: dict[str, Any] = json.loads(found.group(1))
    return config


async def post(daemon: Daemon, path: str, bearer: str | None) -> tuple[int, Any]:
    headers = {} if bearer is None else {"Authorization": f"Bearer {bearer}"}
    async with (
        aiohttp.ClientSession() as http,
        http.post(app_url(daemon, path), headers=headers) as r,
    ):
        return r.status, await r.json()


async def test_a_zendesk_signed_request_logs_the_agent_in_and_the_tab_connects(
    daemon: Daemon,
) -> None:
    status, page, headers = await login(daemon, zaf_token(account(daemon), USER))
    assert status == 200, page
    assert headers["Cache-Control"] == "no-store"
    assert f"frame-ancestors 'self' {account(daemon)}" in headers["Content-Security-Policy"]
    config = page_config(page)
    assert config["agent"] == f"zendesk-{USER}"
    assert config["wsUrl"] == ws_url(daemon)
    identity = verify_token(SECRET, config["token"])
    assert identity.agent_id == f"zendesk-{USER}" and identity.zendesk_user_id == USER
    assert identity.session_started is not None
    tab = await TabClient(ws_url(daemon), config["token"], reconnect=False).connect()
    try:
        assert tab.welcome is not None
    finally:
        await tab.close()


@pytest.mark.parametrize(
    ("case", "why"),
    [
        ("forged", "not valid"),
        ("expired", "expired"),
        ("hs256_with_public_key", "not valid"),
        ("unsigned", "not valid"),
        ("other_installation", "another app installation"),
        ("other_account", "another Zendesk account"),
        ("other_account_user", "names no user"),
        ("no_expiry", "not valid"),
        ("issued_in_the_future", "future"),
        ("missing", "no Zendesk sign-in"),
    ],
)
async def test_anything_but_this_installations_rs256_token_is_refused(
    daemon: Daemon, case: str, why: str
) -> None:
    url = account(daemon)
    _, public = key_pair()
    now = int(time.time())
    makers: dict[str, Callable[[], str | None]] = {
        "forged": lambda: zaf_token(url, USER, key="attacker"),
        "expired": lambda: zaf_token(url, USER, iat=now - 900, exp=now - 600),
        "hs256_with_public_key": lambda: unsafe_token(claims(url, USER), "HS256", public.encode()),
        "unsigned": lambda: unsafe_token(claims(url, USER), "none"),
        "other_installation": lambda: zaf_token(
            url, USER, aud=f"{url}/api/v2/apps/installations/{INSTALLATION_ID + 1}.json"
        ),
        "other_account": lambda: zaf_token(
            "https://evil.zendesk.com",
            USER,
            aud=f"{url}/api/v2/apps/installations/{INSTALLATION_ID}.json",
        ),
        "other_account_user": lambda: zaf_token(
            url, USER, sub=f"https://evil.zendesk.com/api/v2/users/{USER}.json"
        ),
        "no_expiry": lambda: zaf_token(url, USER, exp=None),
        "issued_in_the_future": lambda: zaf_token(url, USER, iat=now + 3600, exp=now + 4000),
        "missing": lambda: None,
    }
    token = makers[case]()
    status, page, _ = await login(daemon, token)
    assert status == 401
    assert "could not sign you in" in page and why in page
    assert "switchboard-config" not in page


async def test_the_tab_token_is_refreshed_without_a_new_login_until_the_session_ends(
    daemon: Daemon,
) -> None:
    _, page, _ = await login(daemon, zaf_token(account(daemon), USER))
    first = page_config(page)["token"]
    started = verify_token(SECRET, first).session_started
    status, body = await post(daemon, "/zendesk/token", first)
    assert status == 200 and body["ttl_seconds"] == 60
    renewed = verify_token(SECRET, body["token"])
    assert renewed.agent_id == f"zendesk-{USER}" and renewed.session_started == started
    # the renewed token renews in turn, and connects
    status, again = await post(daemon, "/zendesk/token", body["token"])
    assert status == 200
    tab = await TabClient(ws_url(daemon), again["token"], reconnect=False).connect()
    await tab.close()


@pytest.mark.parametrize(
    "case", ["none", "expired", "not_from_the_app", "session_too_old", "forged"]
)
async def test_refresh_refuses_what_is_not_a_live_app_session(daemon: Daemon, case: str) -> None:
    agent, now = f"zendesk-{USER}", int(time.time())
    bearer = {
        "none": None,
        "expired": mint_token(SECRET, agent, ttl_seconds=60, session_started=now, now=now - 600),
        "not_from_the_app": mint_token(SECRET, agent),
        "session_too_old": mint_token(SECRET, agent, session_started=now - 3601),
        "forged": mint_token("another-secret-of-at-least-32-bytes!!", agent, session_started=now),
    }[case]
    status, body = await post(daemon, "/zendesk/token", bearer)
    assert status == 401 and body["error"]


async def test_the_media_page_link_works_once(daemon: Daemon) -> None:
    _, page, _ = await login(daemon, zaf_token(account(daemon), USER))
    token = page_config(page)["token"]
    status, body = await post(daemon, "/zendesk/media-link", token)
    assert status == 200
    async with aiohttp.ClientSession() as http:
        async with http.get(app_url(daemon, body["url"])) as first:
            media_page = await first.text()
            assert first.status == 200
        async with http.get(app_url(daemon, body["url"])) as second:
            assert second.status == 401
            assert "already used" in await second.text()
        async with http.get(app_url(daemon, "/zendesk/media?code=nonsense")) as bad:
            assert bad.status == 401
    config = page_config(media_page)
    assert verify_token(SECRET, config["token"]).agent_id == f"zendesk-{USER}"


async def test_a_media_link_used_on_one_node_is_refused_by_another() -> None:
    """Two daemons behind a balancer share a Redis: "once" holds across them."""
    _, public = key_pair()
    app = {
        "zendesk_app_public_key": public,
        "zendesk_app_installation_id": INSTALLATION_ID,
        "app_port": 0,
    }
    with RedisServer.start() as redis:
        async with (
            sandbox_server() as zendesk,
            running(redis_url=redis.url, zendesk_url=zendesk, node_id="a", **app) as a,
            running(redis_url=redis.url, zendesk_url=zendesk, node_id="b", **app) as b,
        ):
            _, page, _ = await login(a, zaf_token(zendesk, USER))
            token = page_config(page)["token"]
            links = [(await post(node, "/zendesk/media-link", token))[1]["url"] for node in (a, b)]
            async with aiohttp.ClientSession() as http:
                async with http.get(app_url(a, links[0])) as first:
                    assert first.status == 200
                async with http.get(app_url(b, links[0])) as again:
                    assert again.status == 401
                    assert "already used" in await again.text()
                # a link issued by B, used first on A, is refused by B
                async with http.get(app_url(a, links[1])) as first:
                    assert first.status == 200
                async with http.get(app_url(b, links[1])) as again:
                    assert again.status == 401


async def test_an_agent_gets_a_few_media_links_a_minute(daemon: Daemon) -> None:
    _, page, _ = await login(daemon, zaf_token(account(daemon), USER))
    token = page_config(page)["token"]
    statuses = [(await post(daemon, "/zendesk/media-link", token))[0] for _ in range(12)]
    assert statuses[:6] == [200] * 6  # a burst, then one per 10 s
    status, body = await post(daemon, "/zendesk/media-link", token)
    assert status == 429 and "try again" in body["error"]


async def test_the_page_serves_the_client_modules_but_nothing_else_of_that_directory(
    daemon: Daemon,
) -> None:
    async with aiohttp.ClientSession() as http:
        async with http.get(app_url(daemon, "/zendesk/js/zendesk-app.js")) as ok:
            assert ok.status == 200
        for path in ("fake-connect.js", "package.json", "..%2F..%2Fpyproject.toml", "test"):
            async with http.get(app_url(daemon, f"/zendesk/js/{path}")) as refused:
                assert refused.status == 404, path


def test_the_app_settings_come_in_pairs_and_the_key_must_be_rsa() -> None:
    _, public = key_pair()
    base: dict[str, Any] = {
        "zendesk_url": "https://acme.zendesk.com",
        "zendesk_email": "a@example.com",
        "zendesk_api_token": "t",
        "secret": SECRET,
        "allowed_origins": ["https://acme.zendesk.com"],
    }
    with pytest.raises(ValueError, match="SWITCHBOARD_ZENDESK_APP_INSTALLATION_ID"):
        Settings(**base, zendesk_app_public_key=public)
    from daemon.server.zendesk_app import AppAccount

    bad = Settings(**base, zendesk_app_public_key="not a key", zendesk_app_installation_id=1)
    with pytest.raises(ValueError, match="not a PEM public key"):
        AppAccount.from_settings(bad)
