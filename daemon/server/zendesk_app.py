"""The Zendesk app's pages, on their own public listener: Zendesk-signed login, the embedded
page, tab-token refresh and the media CCP page.

The app (clients/zendesk-app) is a server-side Zendesk app with `signedUrls: true`: Zendesk loads
its location URL with a POST whose form field `token` is a JWT that Zendesk signs (RS256) with
the app's private key. Following Zendesk's "Authenticating Zendesk in your server-side app",
`verify_zendesk_token` checks, with the app's public key:

- the algorithm is RS256 and nothing else (an HS256 token keyed with the public key, the classic
  algorithm-confusion forgery, is refused, as is `none`);
- `exp` and `iat` are present and `exp` has not passed (a little leeway for clock skew);
- `iss` is the configured account's host (`acme.zendesk.com`): another account's token is refused;
- `aud` is this installation, `https://acme.zendesk.com/api/v2/apps/installations/{id}.json`:
  a token for another app or installation of the same account is refused;
- `sub` names the Zendesk user (`.../api/v2/users/{id}.json` on the same account, or the id).

The user becomes the agent `zendesk-{user id}`. The page carries a short-lived tab token (HS256
with SWITCHBOARD_SECRET, as `daemon.server.auth` mints for the WebSocket) whose `auth_time`
records the login; `POST /zendesk/token` exchanges a still-valid tab token for a fresh one until
`app_session_max_seconds` after the login, so a tab lives all day without a new login and a
stolen token dies with its short lifetime. The media CCP page is reached with a one-time link the
embedded page asks for (`POST /zendesk/media-link`): a 60-second signed code that all nodes
together accept once (the store's `SingleUse`, so any node behind a balancer may serve it), and
that an agent may ask for a few times a minute (the store's shared `RateLimiter`).

These routes are public (agents' browsers, framed by Zendesk), unlike the ops port. Every page
is `no-store`, sends no referrer, and may be framed only by the configured Zendesk account.
"""

import html
import json
import math
import secrets
import time
import zipfile
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import jwt
from aiohttp import web
from cryptography.hazmat.primitives.asymmetric.rsa import RSAPublicKey
from cryptography.hazmat.primitives.serialization import load_pem_public_key

from daemon.config import Settings
from daemon.core.settings import AppSettings
from daemon.server.auth import TokenRefused, mint_token, verify_token
from daemon.store.base import RateLimiter, SingleUse, Store, StoreUnavailable

ROOT = Path(__file__).resolve().parents[2]
JS = ROOT / "clients" / "js"
PAGES = ROOT / "clients" / "zendesk-app" / "pages"
STREAMS = JS / "node_modules" / "amazon-connect-streams" / "release" / "connect-streams-min.js"
CLIENT_MODULES = frozenset(
    p.name for p in JS.glob("*.js") if p.name != "fake-connect.js"
)  # the demo's simulated Streams stays out of production pages

LEEWAY_SECONDS = 30
MEDIA_LINK_SECONDS = 60
MEDIA_PURPOSE = "switchboard.media-link"
MEDIA_LINKS_PER_MINUTE, MEDIA_LINKS_BURST = 6, 5  # per agent, across nodes


class LoginRefused(Exception):
    """The request does not prove a Zendesk sign-in to this account and installation."""


@dataclass(frozen=True, slots=True)
class ZendeskLogin:
    user_id: int

    @property
    def agent_id(self) -> str:
        return f"zendesk-{self.user_id}"


@dataclass(frozen=True, slots=True)
class AppAccount:
    """What a Zendesk token must name: the account's host and the app installation."""

    url: str  # https://acme.zendesk.com
    installation_id: int
    public_key: RSAPublicKey

    @classmethod
    def from_settings(cls, settings: Settings) -> "AppAccount":
        if settings.zendesk_url is None or settings.zendesk_app_installation_id is None:
            raise ValueError("the Zendesk app needs a Zendesk account and an installation id")
        try:
            key = load_pem_public_key((settings.zendesk_app_public_key or "").encode())
        except ValueError as e:
            raise ValueError(
                "SWITCHBOARD_ZENDESK_APP_PUBLIC_KEY is not a PEM public key "
                "(Zendesk: GET /api/v2/apps/{app_id}/public_key.pem)"
            ) from e
        if not isinstance(key, RSAPublicKey):
            raise ValueError("SWITCHBOARD_ZENDESK_APP_PUBLIC_KEY is not an RSA key")
        return cls(settings.zendesk_url.rstrip("/"), settings.zendesk_app_installation_id, key)

    @property
    def host(self) -> str:
        return urlsplit(self.url).netloc

    @property
    def audience(self) -> str:
        return f"{self.url}/api/v2/apps/installations/{self.installation_id}.json"


def verify_zendesk_token(account: AppAccount, token: str, now: float | None = None) -> ZendeskLogin:
    """The Zendesk user a ZAF JWT proves, or `LoginRefused` saying why (see the module)."""
    try:
        claims = jwt.decode(
            token,
            account.public_key,
            algorithms=["RS256"],
            audience=account.audience,
            issuer=account.host,
            leeway=LEEWAY_SECONDS,
            options={"require": ["exp", "iat", "iss", "aud", "sub"], "verify_iat": False},
        )
    except jwt.ExpiredSignatureError as e:
        raise LoginRefused("the Zendesk sign-in has expired") from e
    except jwt.InvalidAudienceError as e:
        raise LoginRefused("the Zendesk sign-in is for another app installation") from e
    except jwt.InvalidIssuerError as e:
        raise LoginRefused("the Zendesk sign-in is from another Zendesk account") from e
    except jwt.InvalidTokenError as e:
        raise LoginRefused(f"the Zendesk sign-in is not valid ({e})") from e
    issued = claims["iat"]
    current = time.time() if now is None else now
    if not isinstance(issued, int | float) or issued > current + LEEWAY_SECONDS:
        raise LoginRefused("the Zendesk sign-in is dated in the future")
    return ZendeskLogin(_user_id(account, claims["sub"]))


def _user_id(account: AppAccount, subject: Any) -> int:
    text = str(subject)
    prefix = f"{account.url}/api/v2/users/"
    if text.startswith(prefix) and text.endswith(".json"):
        text = text[len(prefix) : -len(".json")]
    if not text.isdigit() or len(text) > 20:
        raise LoginRefused("the Zendesk sign-in names no user of this account")
    return int(text)


class LinkRefused(Exception):
    """No media CCP link now; `status` is the HTTP status that says why."""

    def __init__(self, reason: str, status: int) -> None:
        super().__init__(reason)
        self.status = status


@dataclass(frozen=True, slots=True)
class MediaLinks:
    """One-time codes for the media CCP page: signed, short-lived, a few per agent a minute,
    and accepted once by all the nodes that share the store."""

    secret: str
    used: SingleUse
    limit: RateLimiter

    async def issue(self, agent_id: str, started: int, zendesk_user_id: int | None) -> str:
        try:
            wait = await self.limit.rate_acquire(
                f"media-link:{agent_id}", MEDIA_LINKS_PER_MINUTE, MEDIA_LINKS_BURST
            )
        except StoreUnavailable as e:
            raise LinkRefused("Switchboard cannot make the link now: try again soon", 503) from e
        if wait > 0:
            raise LinkRefused(f"too many media CCP links: try again in {math.ceil(wait)} s", 429)
        now = int(time.time())
        claims = {
            "sub": agent_id,
            "aud": MEDIA_PURPOSE,
            "exp": now + MEDIA_LINK_SECONDS,
            "jti": secrets.token_urlsafe(16),
            "auth_time": started,
            "zd": zendesk_user_id,
        }
        return jwt.encode(claims, self.secret, algorithm="HS256")

    async def redeem(self, code: str) -> dict[str, Any]:
        """The code's claims if it is valid and no node has accepted it before.

        It is remembered as used until it has expired on any node whose clock is up to
        `LEEWAY_SECONDS` behind this one's, so it cannot be used again after being forgotten.
        """
        try:
            claims: dict[str, Any] = jwt.decode(
                code,
                self.secret,
                algorithms=["HS256"],
                audience=MEDIA_PURPOSE,
                options={"require": ["sub", "exp", "jti", "auth_time"]},
            )
        except jwt.InvalidTokenError as e:
            raise LinkRefused(f"the media CCP link is not valid ({e})", 401) from e
        ttl = float(claims["exp"]) - time.time() + LEEWAY_SECONDS
        try:
            first = await self.used.use_once(f"media-link:{claims['jti']}", ttl)
        except StoreUnavailable as e:
            raise LinkRefused("Switchboard cannot check the link now: try again soon", 503) from e
        if not first:
            raise LinkRefused(
                "the media CCP link was already used: open it again from Zendesk", 401
            )
        return claims


@dataclass(frozen=True, slots=True)
class AppPages:
    settings: Settings
    account: AppAccount
    secret: str
    ws_url: Callable[[web.Request], str]
    links: MediaLinks
    app_settings: Callable[[], AppSettings]  # in force now (installation or variable)

    def tab_token(self, agent_id: str, zendesk_user_id: int | None, started: int) -> str:
        return mint_token(
            self.secret,
            agent_id,
            ttl_seconds=self.settings.app_token_ttl_seconds,
            zendesk_user_id=zendesk_user_id,
            session_started=started,
        )

    def page_config(
        self, request: web.Request, agent_id: str, zendesk_user_id: int | None, started: int
    ) -> dict[str, Any]:
        """What the page's script starts from (clients/js/zendesk-app.js `AppConfig`)."""
        s, app = self.settings, self.app_settings()
        return {
            "agent": agent_id,
            "zendeskUserId": zendesk_user_id,
            "wsUrl": self.ws_url(request),
            "token": self.tab_token(agent_id, zendesk_user_id, started),
            "tokenTtlSeconds": s.app_token_ttl_seconds,
            "refreshUrl": "/zendesk/token",
            "mediaLinkUrl": "/zendesk/media-link",
            "connectInstanceUrl": app.instance_url,
            "mediaLess": app.media_less,
        }


def render(
    page: str, config: dict[str, Any] | None, status: int = 200, **text: str
) -> web.Response:
    """A page of clients/zendesk-app/pages with `{{name}}` filled (HTML-escaped) and the
    config as JSON that cannot close its script element."""
    body = (PAGES / page).read_text()
    for name, value in text.items():
        body = body.replace("{{" + name + "}}", html.escape(value))
    data = json.dumps(config).replace("<", "\\u003c")
    body = body.replace("{{config}}", data)
    return web.Response(text=body, status=status, content_type="text/html")


def _bearer(request: web.Request) -> str:
    header = request.headers.get("Authorization", "")
    scheme, _, token = header.partition(" ")
    if scheme.lower() != "bearer" or not token:
        raise LoginRefused("no tab token")
    return token.strip()


def create_app_pages(
    settings: Settings,
    secret: str,
    ws_port: Callable[[], int],
    app_settings: Callable[[], AppSettings],
    store: Store,
) -> web.Application:
    """The public app: `POST /zendesk/app` (top bar), `POST /zendesk/sidebar` (ticket and user
    sidebars), `POST /zendesk/background` (click-to-dial forwarder), `POST /zendesk/token`,
    `POST /zendesk/media-link`, `GET /zendesk/media`, and the scripts those pages load. The
    store (shared by every node) keeps media links single-use."""
    account = AppAccount.from_settings(settings)

    def ws_url(request: web.Request) -> str:
        if settings.public_ws_url:
            return settings.public_ws_url
        scheme = "wss" if request.secure else "ws"
        return f"{scheme}://{request.url.host}:{ws_port()}/ws"

    pages = AppPages(
        settings,
        account,
        secret,
        ws_url,
        MediaLinks(secret, used=store, limit=store),
        app_settings,
    )
    app = web.Application(middlewares=[_page_headers(account)])

    async def signed(request: web.Request) -> ZendeskLogin:
        """The Zendesk user who signed this location's first request (the form's `token`)."""
        form = await request.post()
        token = form.get("token")
        if not isinstance(token, str) or not token:
            raise LoginRefused("the request carries no Zendesk sign-in (is signedUrls on?)")
        return verify_zendesk_token(account, token)

    async def login(request: web.Request) -> web.Response:
        try:
            who = await signed(request)
        except LoginRefused as e:
            return render("refused.html", None, status=401, reason=str(e))
        config = pages.page_config(request, who.agent_id, who.user_id, int(time.time()))
        return render("app.html", config)

    def messenger(page: str) -> Callable[[web.Request], Awaitable[web.Response]]:
        """A location whose page holds no session and only messages the top bar (the sidebars:
        what is on screen; the background: click-to-dial). It is signed like every location
        of the app, and checked the same way."""

        async def serve(request: web.Request) -> web.Response:
            try:
                await signed(request)
            except LoginRefused as e:
                return render("refused.html", None, status=401, reason=str(e))
            return render(page, None)

        return serve

    def session_of(request: web.Request) -> tuple[str, int | None, int]:
        try:
            identity = verify_token(secret, _bearer(request))
        except TokenRefused as e:
            raise LoginRefused(str(e)) from e
        started = identity.session_started
        if started is None:
            raise LoginRefused("this token was not issued by the Zendesk app")
        if time.time() - started > settings.app_session_max_seconds:
            raise LoginRefused("the session is over: reopen Zendesk to sign in again")
        return identity.agent_id, identity.zendesk_user_id, started

    async def refresh(request: web.Request) -> web.Response:
        try:
            agent, user, started = session_of(request)
        except LoginRefused as e:
            return web.json_response({"error": str(e)}, status=401)
        return web.json_response(
            {
                "token": pages.tab_token(agent, user, started),
                "ttl_seconds": settings.app_token_ttl_seconds,
            }
        )

    async def media_link(request: web.Request) -> web.Response:
        try:
            agent, user, started = session_of(request)
        except LoginRefused as e:
            return web.json_response({"error": str(e)}, status=401)
        try:
            code = await pages.links.issue(agent, started, user)
        except LinkRefused as e:
            return web.json_response({"error": str(e)}, status=e.status)
        return web.json_response({"url": f"/zendesk/media?code={code}"})

    async def media(request: web.Request) -> web.Response:
        try:
            claims = await pages.links.redeem(request.query.get("code", ""))
        except LinkRefused as e:
            return render("refused.html", None, status=e.status, reason=str(e))
        user = claims.get("zd")
        user_id = user if isinstance(user, int) else None
        return render(
            "media.html", pages.page_config(request, claims["sub"], user_id, claims["auth_time"])
        )

    async def streams(_: web.Request) -> web.StreamResponse:
        if not STREAMS.exists():
            raise web.HTTPNotFound(
                text="amazon-connect-streams is not installed: cd clients/js && npm ci"
            )
        return web.FileResponse(STREAMS)

    async def script(request: web.Request) -> web.StreamResponse:
        """The browser client's modules (clients/js/*.js), nothing else of that directory."""
        name = request.match_info["name"]
        if name not in CLIENT_MODULES:
            raise web.HTTPNotFound()
        return web.FileResponse(JS / name)

    app.router.add_post("/zendesk/app", login)
    app.router.add_post("/zendesk/sidebar", messenger("sidebar.html"))
    app.router.add_post("/zendesk/background", messenger("background.html"))
    app.router.add_post("/zendesk/token", refresh)
    app.router.add_post("/zendesk/media-link", media_link)
    app.router.add_get("/zendesk/media", media)
    app.router.add_get("/zendesk/vendor/connect-streams.js", streams)
    app.router.add_get("/zendesk/js/{name}", script)
    return app


def _page_headers(account: AppAccount) -> Callable[..., Awaitable[web.StreamResponse]]:
    @web.middleware
    async def headers(
        request: web.Request, handler: Callable[[web.Request], Awaitable[web.StreamResponse]]
    ) -> web.StreamResponse:
        response = await handler(request)
        response.headers["Cache-Control"] = "no-store"
        response.headers["Referrer-Policy"] = "no-referrer"
        response.headers["X-Content-Type-Options"] = "nosniff"
        response.headers["Content-Security-Policy"] = f"frame-ancestors 'self' {account.url}"
        return response

    return headers


# -- the installable package --------------------------------------------------------------------

PACKAGE = ROOT / "clients" / "zendesk-app"
PACKAGE_FILES = (  # besides manifest.json, which is written with the app's address
    "translations/en.json",
    "assets/logo.png",
    "assets/logo-small.png",
    "assets/icon_top_bar.svg",
)
URL_PLACEHOLDER = "{{switchboard_url}}"


def build_package(out: Path, switchboard_url: str) -> Path:
    """Write the zip an administrator uploads (Admin Center → Apps → Upload private app).

    Zendesk reads a server-side app's location URL before any app setting exists, so the
    address of Switchboard's app listener is written into the manifest here. Nothing else
    goes in: the pages, their scripts and the Streams library are served by the daemon.
    """
    url = switchboard_url.rstrip("/")
    parts = urlsplit(url)
    secure = parts.scheme == "https" or (
        parts.scheme == "http" and parts.hostname in ("localhost", "127.0.0.1")
    )
    if not secure or not parts.hostname or parts.path or parts.query:
        raise ValueError(
            f"{switchboard_url!r}: give the https:// address (no path) at which agents' "
            "browsers reach Switchboard's app listener (SWITCHBOARD_APP_PORT)"
        )
    manifest = json.loads((PACKAGE / "manifest.json").read_text())
    for location in manifest["location"].values():
        for spec in location.values():
            spec["url"] = spec["url"].replace(URL_PLACEHOLDER, url)
    out.mkdir(parents=True, exist_ok=True)
    target = out / f"switchboard-zendesk-app-{manifest['version']}.zip"
    with zipfile.ZipFile(target, "w", zipfile.ZIP_DEFLATED) as archive:
        archive.writestr("manifest.json", json.dumps(manifest, indent=2) + "\n")
        for name in PACKAGE_FILES:
            archive.write(PACKAGE / name, name)
    return target
