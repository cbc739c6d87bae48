"""Contacts confirmed by Amazon Connect: the shell's half (the core's is
`daemon.core.confirmation`).

Where an instance is configured, a tab's report of a contact the agent's state does not hold
yet is checked with Connect before the core sees it: `check` asks (`DescribeContact`, then for
its agent `DescribeUser`, and `GetContactAttributes`) and hands the report on carrying Connect's
answer, and the core decides (refuse it, hold it with Connect's facts, or hold it unconfirmed).

Why a pre-check in the shell rather than a contact the core holds pending an effect: a contact
Connect refuses must never be held, elected or shown, and the tab that reported it must get its
refusal as the answer to that very report (`error` with its `ref`). The check is keyed on what
the agent's state holds, so it is done once per contact, not per report or per tab; a contact
already held costs one look at the hub's cached state, and a node without an instance has no
confirmer at all (the connection's hook is one `None` test).

Whose contact it is. Connect names the contact's agent as a Connect user (`AgentInfo.Id`); its
`Username` and `IdentityInfo.Email` come from `DescribeUser` (cached by the client). The tab's
agent is known by its token: the agent id (`sub`) and the Zendesk user id (`zd`, which the
Zendesk app's signed request vouches for); that Zendesk user's email is read from Zendesk's API
once and kept for `EMAIL_CACHE_SECONDS`. The contact is the tab's agent's when the Connect
user's username or email equals (case aside) the agent id or that email. Where usernames are
not emails, `SWITCHBOARD_CONNECT_AGENT_MAP` maps a Connect username to a Zendesk user id, and
for a username in the map only the map decides.

When Connect cannot say (throttled past the client's retries, down, access denied, no answer
within `wait_seconds`, no agent named yet, or Zendesk cannot name the agent's email), an agent
on a call expects Switchboard to go on working: the report is believed, the contact is held
`unconfirmed` (tabs see it), the outcome is counted, and this node asks again in the
background, with backoff, until Connect answers (`ConnectAnswered`: confirmed or refused) or the
contact is no longer held unconfirmed. A report of a contact held unconfirmed restarts that
retry on whichever node gets it, so a node that dies does not leave it unconfirmed for good.

Each agent has its own budget of new contacts to check (`checks_per_minute`, a burst of
`CHECK_BURST`): a tab reporting made-up contact ids would otherwise spend the centre's shared
Connect quota, and every other agent's checks would time out to "unconfirmed". Over its budget
a report is refused (`agent_rate_limited`), not believed; Streams reports a real contact again
on its next state change. A working agent gets a few new contacts a minute.

Calls to Connect are paced and cached by the client; here concurrent checks of one contact
(every tab of the agent reports it at once) share one set of calls, and an answer other than
"cannot say" is kept for `ANSWER_CACHE_SECONDS`, so a refused contact's further reports (its
tabs go on reporting its events) do not reach Connect again.
"""

import asyncio
import contextlib
import time
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import replace

import structlog
from cachetools import TTLCache

from daemon.connect.client import ConnectClient, ConnectContact, ConnectError
from daemon.core.confirmation import (
    UNCONFIRMED,
    ConnectAnswer,
    ConnectDenied,
    ConnectFacts,
    ConnectUnavailable,
    refusal,
)
from daemon.core.events import ConnectAnswered, ContactReported
from daemon.core.ratelimit import TokenBucket
from daemon.server.auth import AgentIdentity
from daemon.server.hub import AgentHub
from daemon.store.base import StoreUnavailable
from daemon.zendesk.retry import ZendeskError
from protocol.errors import ErrorCode, ProtocolError

log = structlog.get_logger("switchboard.connect")

ANSWER_CACHE_SECONDS = 60.0
EMAIL_CACHE_SECONDS = 600.0
CHECK_BURST = 10.0

#: The email of a Zendesk user (by id), or None; raises ZendeskError when Zendesk cannot say.
AgentEmail = Callable[[int], Awaitable[str | None]]
#: Counts one answer: (outcome, attempt), attempt "first" or "retry".
Count = Callable[[str, str], None]


class ContactConfirmer:
    def __init__(
        self,
        client: ConnectClient,
        hub: AgentHub,
        agent_email: AgentEmail,
        *,
        agent_map: Mapping[str, int] | None = None,
        wait_seconds: float = 2.0,
        checks_per_minute: float = 20.0,
        count: Count | None = None,
        retry_base: float = 2.0,
        retry_cap: float = 60.0,
        retry_for: float = 3600.0,
    ) -> None:
        self.client = client
        self.hub = hub
        self.agent_email = agent_email
        self.agent_map = dict(agent_map or {})
        self.wait_seconds = wait_seconds
        self.count = count or (lambda _outcome, _attempt: None)
        self.retry_base, self.retry_cap, self.retry_for = retry_base, retry_cap, retry_for
        self._asking: dict[tuple[str, str], asyncio.Future[ConnectAnswer]] = {}
        self._answers: TTLCache[tuple[str, str], ConnectAnswer] = TTLCache(
            10_000, ANSWER_CACHE_SECONDS
        )
        self._emails: TTLCache[int, str | None] = TTLCache(10_000, EMAIL_CACHE_SECONDS)
        self._retrying: dict[tuple[str, str], asyncio.Task[None]] = {}
        self.checks_per_minute = checks_per_minute
        # Per agent, forgotten once full again (a bucket idle that long is full anyway).
        self._budgets: TTLCache[str, TokenBucket] = TTLCache(
            100_000, 60.0 * CHECK_BURST / checks_per_minute
        )

    async def check(
        self, agent: str, identity: AgentIdentity, event: ContactReported
    ) -> ContactReported:
        """The report, carrying Connect's answer when the agent's state does not hold the
        contact yet; as it is otherwise."""
        snap = event.report.contact
        _, state = await self.hub.load(agent)
        held = state.contacts.get(snap.contact_id)
        if held is not None or snap.contact_id in state.forgotten:
            if held is not None and held.confirmation == UNCONFIRMED:
                self._retry_later(agent, identity, snap.contact_id)
            return event
        key = (agent, snap.contact_id)
        answer = self._answers.get(key)
        if answer is None:
            asking = self._asking.get(key)
            if asking is None:
                self._spend_check(agent)
                asking = asyncio.ensure_future(
                    self._first_answer(agent, identity, snap.contact_id, snap.monitoring)
                )
                self._asking[key] = asking
                asking.add_done_callback(lambda _: self._asking.pop(key, None))
            answer = await asyncio.shield(asking)
        return replace(event, answer=answer)

    def _spend_check(self, agent: str) -> None:
        """Take one new-contact check from the agent's budget; ProtocolError when it is spent."""
        now = time.monotonic()
        budget = self._budgets.get(agent)
        if budget is None:
            budget = TokenBucket.full(self.checks_per_minute / 60.0, CHECK_BURST, now)
        took = budget.take(now)
        self._budgets[agent] = budget
        if not took:
            self.count("agent_rate_limited", "first")
            raise ProtocolError(
                ErrorCode.AGENT_RATE_LIMITED,
                f"more than {self.checks_per_minute:g} new contacts a minute to check with "
                "Amazon Connect: report it again later",
            )

    async def _first_answer(
        self, agent: str, identity: AgentIdentity, contact_id: str, monitoring: bool
    ) -> ConnectAnswer:
        answer = await self.ask(identity, contact_id)
        self._counted(answer, contact_id, monitoring, "first")
        if isinstance(answer, ConnectUnavailable):
            log.warning("contact_unconfirmed", agent=agent, contact=contact_id, why=answer.reason)
            self._retry_later(agent, identity, contact_id)
        else:
            self._answers[(agent, contact_id)] = answer
        return answer

    async def ask(self, identity: AgentIdentity, contact_id: str) -> ConnectAnswer:
        """What Connect says about the contact, as far as it can say within `wait_seconds`."""
        try:
            async with asyncio.timeout(self.wait_seconds):
                described = await self.client.describe_contact(contact_id)
                if described.agent_user_id is None:
                    return ConnectUnavailable("Amazon Connect names no agent for it yet")
                mine = await self._is_agent(identity, described.agent_user_id)
                # Attributes are read only for the agent's own contact: a monitoring leg
                # gets no Zendesk work, and another agent's contact is refused.
                attributes = await self.client.contact_attributes(contact_id) if mine else {}
        except TimeoutError:
            return ConnectUnavailable(f"no answer from Amazon Connect in {self.wait_seconds} s")
        except ConnectError as e:
            if e.kind == "not_found":
                return ConnectDenied(str(e))
            return ConnectUnavailable(f"{e.kind}: {e}")
        except ZendeskError as e:
            return ConnectUnavailable(f"the agent's Zendesk email is unknown for now: {e}")
        return _facts(described, mine, attributes)

    async def _is_agent(self, identity: AgentIdentity, connect_user_id: str) -> bool:
        """Whether the Connect user is the tab's agent (see the module docstring)."""
        try:
            user = await self.client.describe_user(connect_user_id)
        except ConnectError as e:
            if e.kind == "not_found":
                return False  # a Connect user that no longer exists is nobody's
            raise
        username, email = user.get("username"), user.get("email")
        if username in self.agent_map:
            return self.agent_map[username] == identity.zendesk_user_id
        names = {identity.agent_id.casefold()}
        if identity.zendesk_user_id is not None:
            own = await self._email(identity.zendesk_user_id)
            if own:
                names.add(own.casefold())
        return any(isinstance(n, str) and n and n.casefold() in names for n in (username, email))

    async def _email(self, zendesk_user_id: int) -> str | None:
        if zendesk_user_id not in self._emails:
            self._emails[zendesk_user_id] = await self.agent_email(zendesk_user_id)
        return self._emails.get(zendesk_user_id)

    def _counted(
        self, answer: ConnectAnswer, contact_id: str, monitoring: bool, attempt: str
    ) -> None:
        if isinstance(answer, ConnectUnavailable):
            outcome = "unconfirmed"
        else:
            refused = refusal(answer, contact_id, monitoring=monitoring)
            outcome = "confirmed" if refused is None else refused[0].value
        self.count(outcome, attempt)

    # -- contacts held unconfirmed: asked again in the background ---------------------------

    def _retry_later(self, agent: str, identity: AgentIdentity, contact_id: str) -> None:
        key = (agent, contact_id)
        if key not in self._retrying:
            task = asyncio.get_running_loop().create_task(self._settle(agent, identity, contact_id))
            self._retrying[key] = task
            task.add_done_callback(lambda _: self._retrying.pop(key, None))

    async def _settle(self, agent: str, identity: AgentIdentity, contact_id: str) -> None:
        """Ask Connect again, with backoff, until it answers or the contact is settled."""
        delay = self.retry_base
        give_up = time.monotonic() + self.retry_for
        while time.monotonic() < give_up:
            await asyncio.sleep(delay)
            delay = min(delay * 2, self.retry_cap)
            try:
                _, state = await self.hub.load(agent, fresh=True)
                held = state.contacts.get(contact_id)
                if held is None or held.confirmation != UNCONFIRMED:
                    return
                answer = await self.ask(identity, contact_id)
                self._counted(answer, contact_id, held.monitoring, "retry")
                if not isinstance(answer, ConnectUnavailable):
                    await self.hub.apply(agent, ConnectAnswered(contact_id, answer))
                    log.info("contact_settled", agent=agent, contact=contact_id,
                             answer=type(answer).__name__)  # fmt: skip
                    return
            except StoreUnavailable:
                continue
            except Exception:
                log.exception("contact_confirmation_failed", agent=agent, contact=contact_id)
        log.warning("contact_left_unconfirmed", agent=agent, contact=contact_id)

    async def close(self) -> None:
        tasks = list(self._retrying.values()) + list(self._asking.values())
        for task in tasks:
            task.cancel()
        for task in tasks:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task


def _facts(described: ConnectContact, mine: bool, attributes: Mapping[str, str]) -> ConnectFacts:
    initial = described.initial_contact_id or described.previous_contact_id
    return ConnectFacts(
        agent_is_reporter=mine,
        attributes=dict(attributes),
        initial_contact_id=initial if initial != described.contact_id else None,
        is_callback=described.initiation_method == "CALLBACK",
        monitoring=described.initiation_method == "MONITOR",
        customer_endpoint=described.customer_endpoint,
    )
