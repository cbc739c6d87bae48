"""An asyncio client for the parts of the Zendesk Support API the workflow uses.

Every call goes through one loop (:meth:`ZendeskClient._call`): wait for the rate limiter,
send with a timeout, refresh credentials once on 401, retry 429 (honouring ``Retry-After``),
5xx, dropped connections and timeouts with jittered exponential backoff, and raise a typed
:class:`ZendeskError` otherwise. Each attempt is logged with the path *template*, so logs and
metrics group by operation rather than by ticket id.

Exactly-once writes. Ticket creation carries an ``Idempotency-Key``, so retrying it is safe.
Comments and user creation have no such key; when their answer is lost (connection dropped
after sending, timeout, 5xx) the client first checks whether the write landed (the comment is
on the ticket; a user with that ``external_id`` exists) and only then retries.
"""

from __future__ import annotations

import asyncio
import html
import json
import mimetypes
import re
import time
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from importlib import metadata
from types import TracebackType
from typing import Any, Self
from urllib.parse import parse_qs, urlsplit

import aiohttp
import structlog

from daemon.zendesk.auth import ApiTokenAuth, Auth, OAuthAuth, OAuthTokens
from daemon.zendesk.models import (
    Comment,
    CreatedTicket,
    NewComment,
    NewTicket,
    NewUser,
    Ticket,
    TicketUpdate,
    Upload,
    User,
    VoiceComment,
)
from daemon.zendesk.retry import (
    PLAN_LIMITS,
    AuthenticationError,
    Forbidden,
    IdempotencyConflict,
    InvalidRecord,
    LocalRateLimiter,
    NotFound,
    Observer,
    RateLimited,
    RateLimiter,
    RetryPolicy,
    ServerError,
    TransportError,
    UpdateConflict,
    ZendeskError,
    error_for,
    parse_retry_after,
)

__all__ = [
    "PLAN_LIMITS",
    "ApiTokenAuth",
    "Auth",
    "AuthenticationError",
    "Forbidden",
    "IdempotencyConflict",
    "InvalidRecord",
    "LocalRateLimiter",
    "NotFound",
    "OAuthAuth",
    "OAuthTokens",
    "Observer",
    "RateLimited",
    "RateLimiter",
    "RetryPolicy",
    "ServerError",
    "TransportError",
    "UpdateConflict",
    "ZendeskClient",
    "ZendeskError",
]

log = structlog.get_logger("switchboard.zendesk")

#: Recover = "did the lost write land?" → the answer body it would have had, or None.
Recover = Callable[[], Awaitable[Any | None]]

_TALK_PARTNER_RECHECK = 600.0  # seconds before asking again after "no Talk Partner Edition"
_CLOCK_SKEW = timedelta(seconds=5)


def _version() -> str:
    try:
        return metadata.version("ccp-switchboard")
    except metadata.PackageNotFoundError:
        return "0.1.0"


USER_AGENT = f"switchboard/{_version()} (+aiohttp/{aiohttp.__version__})"


@dataclass(frozen=True)
class ApiResponse:
    status: int
    body: Any
    headers: Mapping[str, str]
    #: True when the body was recovered after a lost answer rather than received.
    recovered: bool = False


def _decode(raw: bytes) -> Any:
    if not raw:
        return None
    try:
        return json.loads(raw)
    except ValueError:
        return raw.decode(errors="replace")


def _no_silent_resend(session: aiohttp.ClientSession) -> None:
    """Stop aiohttp from re-sending a PUT by itself when the server drops the connection.

    aiohttp treats PUT as idempotent and silently sends it a second time after a dropped
    connection; a Zendesk ticket PUT that adds a comment is not idempotent, so that hidden
    resend would duplicate the comment. Retries belong to ``_call``, which first checks
    whether the lost write landed. (aiohttp has no public switch; its own test client flips
    the same attribute.)
    """
    if hasattr(session, "_retry_connection"):
        session._retry_connection = False


def _same_text(a: str | None, b: str | None) -> bool:
    return " ".join((a or "").split()) == " ".join((b or "").split())


class ZendeskClient:
    """Typed access to one Zendesk account; use as ``async with ZendeskClient(...) as zd``."""

    def __init__(
        self,
        base_url: str,
        auth: Auth,
        *,
        limiter: RateLimiter | None = None,
        timeout: float = 10.0,
        max_attempts: int = 5,
        session: aiohttp.ClientSession | None = None,
        backoff_base: float = 0.5,
        backoff_max: float = 30.0,
        max_retry_after: float = 120.0,
        user_agent: str = USER_AGENT,
        observer: Observer | None = None,
    ) -> None:
        self.base_url = base_url.rstrip("/")
        self.auth = auth
        self.limiter = limiter
        self.observer = observer
        self.timeout = timeout
        self.retry = RetryPolicy(
            max_attempts=max(1, max_attempts),
            base_delay=backoff_base,
            max_delay=backoff_max,
            max_retry_after=max_retry_after,
        )
        self.user_agent = user_agent
        self._session = session
        self._owns_session = session is None
        if session is not None:
            _no_silent_resend(session)
        self._talk_partner_missing_since: float | None = None

    # ------------------------------------------------------------------ lifecycle

    async def __aenter__(self) -> Self:
        if self._session is None:
            self._session = aiohttp.ClientSession()
            _no_silent_resend(self._session)
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.close()

    async def close(self) -> None:
        if self._owns_session and self._session is not None:
            await self._session.close()
            self._session = None

    @property
    def session(self) -> aiohttp.ClientSession:
        if self._session is None:
            raise RuntimeError("ZendeskClient used outside 'async with' and without a session")
        return self._session

    # ------------------------------------------------------------------ the request loop

    async def _call(
        self,
        method: str,
        template: str,
        *,
        path: Mapping[str, int | str] | None = None,
        params: Mapping[str, str] | None = None,
        json_body: Any = None,
        data: bytes | None = None,
        content_type: str | None = None,
        headers: Mapping[str, str] | None = None,
        recover: Recover | None = None,
    ) -> ApiResponse:
        """Send one logical request, retrying transient failures; raise ZendeskError."""
        url = self.base_url + template.format(**(path or {}))
        refreshed = False
        attempt = 0
        while True:
            attempt += 1
            if self.limiter is not None:
                await self.limiter.acquire()
            authorization = await self.auth.authorization()
            sent_headers = {
                "Authorization": authorization,
                "User-Agent": self.user_agent,
                "Accept": "application/json",
                **(headers or {}),
            }
            if content_type is not None:
                sent_headers["Content-Type"] = content_type
            started = time.monotonic()
            try:
                async with self.session.request(
                    method,
                    url,
                    params=params,
                    json=json_body,
                    data=data,
                    headers=sent_headers,
                    timeout=aiohttp.ClientTimeout(total=self.timeout),
                ) as resp:
                    raw = await resp.read()
                    status, resp_headers = resp.status, resp.headers
            except (aiohttp.ClientError, TimeoutError) as exc:
                self._attempted(method, template, None, attempt, started, type(exc).__name__)
                # Refused connections never reached Zendesk; anything else may have been applied.
                maybe_applied = not isinstance(exc, aiohttp.ClientConnectorError)
                if maybe_applied and recover is not None:
                    landed = await self._recover(recover)
                    if landed is not None:
                        return landed
                if attempt >= self.retry.max_attempts:
                    raise TransportError(None, None, f"{method} {template}: {exc!r}") from exc
                await self._pause("backoff", self.retry.backoff(attempt))
                continue

            self._attempted(method, template, status, attempt, started)
            body = _decode(raw)
            if status < 400:
                return ApiResponse(status, body, resp_headers)
            if status == 401 and not refreshed:
                refreshed = True
                if await self.auth.refresh(self.session, self.base_url, authorization):
                    attempt -= 1  # the refresh is not the server's fault
                    continue
            if status == 429:
                retry_after = parse_retry_after(resp_headers.get("Retry-After"))
                wait = retry_after if retry_after is not None else self.retry.backoff(attempt)
                if attempt >= self.retry.max_attempts or wait > self.retry.max_retry_after:
                    raise RateLimited(status, body, retry_after)
                log.info("zendesk.rate_limited", path=template, wait_s=wait, attempt=attempt)
                await self._pause("too_many_requests", wait)
                continue
            if status >= 500:
                if recover is not None:
                    landed = await self._recover(recover)
                    if landed is not None:
                        return landed
                if attempt >= self.retry.max_attempts:
                    raise error_for(status, body)
                retry_after = parse_retry_after(resp_headers.get("Retry-After"))
                delay = self.retry.backoff(attempt)
                if retry_after is not None and retry_after <= self.retry.max_retry_after:
                    delay = max(delay, retry_after)
                await self._pause("backoff", delay)
                continue
            raise error_for(status, body)

    def _attempted(
        self,
        method: str,
        template: str,
        status: int | None,
        attempt: int,
        started: float,
        error: str | None = None,
    ) -> None:
        """Log and measure one attempt, by path template so ids never become labels."""
        duration = time.monotonic() - started
        fields = {"method": method, "path": template, "status": status, "attempt": attempt}
        if error is None:
            log.info("zendesk.request", **fields, duration_ms=round(duration * 1000, 1))
        else:
            log.warning(
                "zendesk.request", **fields, duration_ms=round(duration * 1000, 1), error=error
            )
        if self.observer is not None:
            self.observer.request(method, template, status, duration)

    async def _pause(self, cause: str, seconds: float) -> None:
        """Sleep before the next attempt, reporting why and for how long."""
        if self.observer is not None:
            self.observer.waited(cause, seconds)
        await asyncio.sleep(seconds)

    async def _recover(self, recover: Recover) -> ApiResponse | None:
        """Ask whether a write whose answer was lost landed: the recovered answer, or None
        when it did not (then it is safe to send again).

        When the question itself fails, nobody knows: raise (transient) rather than send
        the write again, which duplicated a comment that had landed (found by the
        simulator, tests/sim, seed 362). The caller's retry checks again before resending.
        """
        try:
            body = await recover()
        except ZendeskError as exc:
            log.warning("zendesk.recover_failed", error=str(exc))
            raise TransportError(None, None, f"a lost write's landing is unknown: {exc}") from exc
        if body is None:
            return None
        log.info("zendesk.recovered_lost_answer")
        return ApiResponse(200, body, {}, recovered=True)

    async def _get(self, template: str, **kw: Any) -> ApiResponse:
        return await self._call("GET", template, **kw)

    async def _pages(
        self, template: str, key: str, path: Mapping[str, int | str], params: dict[str, str]
    ) -> list[Any]:
        """Every item of an offset-paginated list (follows ``next_page``)."""
        items: list[Any] = []
        query = dict(params)
        while True:
            resp = await self._get(template, path=path, params=query)
            items.extend(resp.body.get(key) or [])
            next_page = resp.body.get("next_page")
            if not next_page:
                return items
            page = parse_qs(urlsplit(next_page).query).get("page")
            if not page or page[0] == query.get("page"):
                return items
            query["page"] = page[0]

    # ------------------------------------------------------------------ apps

    async def app_installation_settings(self, installation_id: int) -> dict[str, Any]:
        """The settings an administrator saved for an app installation (Apps API)."""
        resp = await self._get("/api/v2/apps/installations/{id}", path={"id": installation_id})
        settings = resp.body.get("settings") if isinstance(resp.body, dict) else None
        return dict(settings) if isinstance(settings, dict) else {}

    # ------------------------------------------------------------------ users

    async def me(self) -> User:
        """The user the credentials act as."""
        resp = await self._get("/api/v2/users/me")
        return User.model_validate(resp.body["user"])

    async def get_user(self, user_id: int) -> User | None:
        """The user, or None when it does not exist."""
        try:
            resp = await self._get("/api/v2/users/{user_id}", path={"user_id": user_id})
        except NotFound:
            return None
        return User.model_validate(resp.body["user"])

    async def users_by_external_id(self, external_id: str) -> list[User]:
        """Users with this ``external_id`` (read from the database: no search lag)."""
        resp = await self._get("/api/v2/users", params={"external_id": external_id})
        return [User.model_validate(u) for u in resp.body.get("users") or []]

    async def create_user(
        self,
        name: str,
        phone: str | None = None,
        email: str | None = None,
        *,
        external_id: str | None = None,
        locale: str | None = None,
    ) -> User:
        """Create an end user.

        With ``external_id`` (unique per account in Zendesk) a lost answer is recovered by
        looking the user up, so a retry cannot create a second user.
        """
        new = NewUser(name=name, phone=phone, email=email, external_id=external_id, locale=locale)
        recover: Recover | None = None
        if external_id is not None:

            async def recover_user() -> Any | None:
                found = await self.users_by_external_id(external_id)
                return {"user": found[0].model_dump(mode="json")} if found else None

            recover = recover_user
        try:
            resp = await self._call(
                "POST", "/api/v2/users", json_body={"user": new.to_api()}, recover=recover
            )
        except InvalidRecord:
            # A retry after a lost answer meets its own first attempt ("already taken").
            if recover is not None and (landed := await recover()) is not None:
                return User.model_validate(landed["user"])
            raise
        return User.model_validate(resp.body["user"])

    async def update_user_phone(self, user_id: int, phone: str) -> User:
        resp = await self._call(
            "PUT",
            "/api/v2/users/{user_id}",
            path={"user_id": user_id},
            json_body={"user": {"phone": phone}},
        )
        return User.model_validate(resp.body["user"])

    async def _search(self, query: str, **params: str) -> list[dict[str, Any]]:
        found: list[dict[str, Any]] = await self._pages(
            "/api/v2/search", "results", {}, {"query": query, **params}
        )
        return found

    async def search_users_by_phone(self, digits: str) -> list[User]:
        """End users whose phone ends with ``digits`` (``role:end-user phone:*DIGITS``).

        Users flagged ``shared_phone_number`` are skipped (a shared line identifies nobody).
        Search is eventually consistent: a user created moments ago may not be found yet.
        """
        only_digits = "".join(ch for ch in digits if ch.isdigit())
        if not only_digits:
            return []
        results = await self._search(f"type:user role:end-user phone:*{only_digits}")
        users = [User.model_validate(r) for r in results if r.get("result_type", "user") == "user"]
        return [u for u in users if not u.shared_phone_number and u.role == "end-user"]

    async def search_users(
        self, *, email: str | None = None, name: str | None = None
    ) -> list[User]:
        """Users by exact email or by name (``type:user email:X`` / ``name:"X"``)."""
        terms = ["type:user"]
        if email:
            terms.append(f"email:{email}")
        if name:
            terms.append('name:"{}"'.format(name.replace('"', "")))
        if len(terms) == 1:
            raise ValueError("search_users needs email= or name=")
        results = await self._search(" ".join(terms))
        return [User.model_validate(r) for r in results if r.get("result_type", "user") == "user"]

    # ------------------------------------------------------------------ tickets

    async def get_ticket(self, ticket_id: int) -> Ticket | None:
        """The ticket, or None when it does not exist."""
        try:
            resp = await self._get("/api/v2/tickets/{ticket_id}", path={"ticket_id": ticket_id})
        except NotFound:
            return None
        return Ticket.model_validate(resp.body["ticket"])

    async def tickets_by_external_id(self, external_id: str) -> list[Ticket]:
        """Tickets linked to our record (external ids need not be unique)."""
        found = await self._pages("/api/v2/tickets", "tickets", {}, {"external_id": external_id})
        return [Ticket.model_validate(t) for t in found]

    async def recent_tickets_of_user(self, user_id: int, *, limit: int = 100) -> list[Ticket]:
        """Tickets the user requested, most recently updated first (no search lag)."""
        resp = await self._get(
            "/api/v2/users/{user_id}/tickets/requested",
            path={"user_id": user_id},
            params={
                "sort_by": "updated_at",
                "sort_order": "desc",
                "per_page": str(max(1, min(limit, 100))),
            },
        )
        tickets = [Ticket.model_validate(t) for t in resp.body.get("tickets") or []]
        epoch = datetime.min.replace(tzinfo=UTC)
        tickets.sort(key=lambda t: t.updated_at or epoch, reverse=True)
        return tickets[:limit]

    def _talk_partner_known_missing(self) -> bool:
        since = self._talk_partner_missing_since
        return since is not None and time.monotonic() - since < _TALK_PARTNER_RECHECK

    def _note_talk_partner_missing(self) -> None:
        self._talk_partner_missing_since = time.monotonic()
        log.info("zendesk.talk_partner_edition_missing")

    async def create_ticket(
        self,
        ticket: NewTicket,
        *,
        idempotency_key: str,
        talk_partner: bool = False,
        display_to_agent: int | None = None,
    ) -> CreatedTicket:
        """Create a ticket once, however often this is retried with the same key.

        ``talk_partner`` uses Talk Partner Edition's voice ticket endpoint (``via_id`` 44/45/46;
        ``display_to_agent`` opens it in the agent's browser). When that endpoint answers 403
        (no add-on) or 404, the ticket is created through ``/api/v2/tickets`` with the same key
        and ``displayed`` is False, so the caller knows to show it through the browser tab.
        """
        headers = {"Idempotency-Key": idempotency_key}
        doc = ticket.to_api()
        if talk_partner and not self._talk_partner_known_missing():
            body: dict[str, Any] = {"ticket": doc}
            if display_to_agent is not None:
                body["display_to_agent"] = display_to_agent
            try:
                resp = await self._call(
                    "POST", "/api/v2/channels/voice/tickets", json_body=body, headers=headers
                )
            except Forbidden:
                self._note_talk_partner_missing()
            except NotFound:
                # Documented as "agent or ticket id invalid"; some accounts without the add-on
                # answer it too. Either way the plain endpoint still creates the ticket.
                log.warning("zendesk.voice_ticket_not_found", display_to_agent=display_to_agent)
            else:
                return CreatedTicket(
                    ticket=Ticket.model_validate(resp.body["ticket"]),
                    replayed=resp.headers.get("x-idempotency-lookup") == "hit",
                    displayed=display_to_agent is not None,
                    talk_partner=True,
                )
        resp = await self._call(
            "POST", "/api/v2/tickets", json_body={"ticket": doc}, headers=headers
        )
        return CreatedTicket(
            ticket=Ticket.model_validate(resp.body["ticket"]),
            replayed=resp.headers.get("x-idempotency-lookup") == "hit",
        )

    async def update_ticket(self, ticket_id: int, update: TicketUpdate) -> Ticket:
        """Change fields of a ticket. Safe to retry unless it carries a comment (see below)."""
        has_comment = update.comment is not None or update.voice_comment is not None
        recover = self._comment_recovery(ticket_id, update) if has_comment else None
        resp = await self._call(
            "PUT",
            "/api/v2/tickets/{ticket_id}",
            path={"ticket_id": ticket_id},
            json_body={"ticket": update.to_api()},
            recover=recover,
        )
        return Ticket.model_validate(resp.body["ticket"])

    def _comment_recovery(self, ticket_id: int, update: TicketUpdate) -> Recover:
        """Did a comment whose answer was lost land on the ticket? (Then don't add it again.)"""
        since = datetime.now(UTC) - _CLOCK_SKEW

        async def recover() -> Any | None:
            comments = await self.list_comments(ticket_id)
            recent = [c for c in comments if c.created_at is None or c.created_at >= since]
            if update.voice_comment is not None and not any(
                _voice_matches(c, update.voice_comment) for c in recent
            ):
                return None
            if update.comment is not None and not any(
                _comment_matches(c, update.comment) for c in recent
            ):
                return None
            ticket = await self.get_ticket(ticket_id)
            return {"ticket": ticket.model_dump(mode="json")} if ticket else None

        return recover

    async def add_comment(
        self,
        ticket_id: int,
        html_or_text: str,
        public: bool = False,
        *,
        html: bool | None = None,
        uploads: list[str] | None = None,
        author_id: int | None = None,
    ) -> Ticket:
        """Add a comment (private by default). ``html`` defaults to "starts with a tag"."""
        is_html = html if html is not None else html_or_text.lstrip().startswith("<")
        comment = NewComment(
            body=html_or_text,
            html=is_html,
            public=public,
            author_id=author_id,
            uploads=uploads or [],
        )
        return await self.update_ticket(ticket_id, TicketUpdate(comment=comment))

    async def add_voice_comment(self, ticket_id: int, voice: VoiceComment) -> Ticket:
        """Add a voice comment (call facts and recording link) with a ticket update."""
        return await self.update_ticket(ticket_id, TicketUpdate(voice_comment=voice))

    async def list_comments(self, ticket_id: int) -> list[Comment]:
        """All comments of a ticket, oldest first."""
        found = await self._pages(
            "/api/v2/tickets/{ticket_id}/comments", "comments", {"ticket_id": ticket_id}, {}
        )
        return [Comment.model_validate(c) for c in found]

    # ------------------------------------------------------------------ talk partner edition

    async def _display(self, template: str, path: Mapping[str, int]) -> bool:
        if self._talk_partner_known_missing():
            return False
        try:
            await self._call("POST", template, path=path)
        except Forbidden:
            self._note_talk_partner_missing()
            return False
        except NotFound:
            # A bad agent/ticket/user id, or no add-on: Zendesk shows nothing either way.
            log.warning("zendesk.display_not_found", path=template, **path)
            return False
        return True

    async def display_ticket(self, agent_id: int, ticket_id: int) -> bool:
        """Open the ticket in the agent's browser.

        False when Zendesk could not (no Talk Partner Edition: 403, remembered for ten minutes;
        or 404), so the caller shows it through the agent's browser tab instead.
        """
        return await self._display(
            "/api/v2/channels/voice/agents/{agent_id}/tickets/{ticket_id}/display",
            {"agent_id": agent_id, "ticket_id": ticket_id},
        )

    async def display_user(self, agent_id: int, user_id: int) -> bool:
        """Open the user's profile in the agent's browser; False without Talk Partner Edition."""
        return await self._display(
            "/api/v2/channels/voice/agents/{agent_id}/users/{user_id}/display",
            {"agent_id": agent_id, "user_id": user_id},
        )

    # ------------------------------------------------------------------ uploads

    async def upload(
        self, filename: str, content: bytes, *, content_type: str | None = None
    ) -> Upload:
        """Store a file (a call recording) with Zendesk; attach it with the returned token."""
        kind = content_type or mimetypes.guess_type(filename)[0] or "application/octet-stream"
        resp = await self._call(
            "POST",
            "/api/v2/uploads",
            params={"filename": filename},
            data=content,
            content_type=kind,
        )
        return Upload.model_validate(resp.body["upload"])


def _comment_matches(found: Comment, wanted: NewComment) -> bool:
    if found.type != "Comment" or found.public != wanted.public:
        return False
    if wanted.html:
        return _same_text(found.html_body, wanted.body) or _same_text(
            found.plain_body or found.body, _strip_tags(wanted.body)
        )
    return _same_text(found.plain_body or found.body, wanted.body)


def _voice_matches(found: Comment, wanted: VoiceComment) -> bool:
    if found.type != "VoiceComment" or found.data is None:
        return False
    mine = wanted.to_api()
    return all(
        str(found.data.get(k)) == str(mine[k])
        for k in ("from", "to", "started_at", "recording_url")
        if k in mine
    )


def _strip_tags(markup: str) -> str:
    text = re.sub(r"<br\s*/?>|</p>|</div>", "\n", markup, flags=re.IGNORECASE)
    return html.unescape(re.sub(r"<[^>]+>", "", text))
