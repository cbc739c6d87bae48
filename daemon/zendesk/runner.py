"""The workflow runner: executes the pure policy's plans against Zendesk, step by step.

One run, under the contact's fencing lease: read the journal, `plan`, execute the first step
(or the leading batch of reports to the tabs), journal its result under the step's key, and
plan again, until the plan waits for the contact to change or is done. The journal is the
only memory: a runner that dies anywhere is replaced by one that reads the same journal and
continues with the first step whose result is missing.

Exactly once, by construction:

- a stale runner never reaches Zendesk: `store.lease_is_current` is checked right before
  every Zendesk write, and every journal write is fenced by the store;
- before a write is sent, its exact request is journaled as an *attempt* (``~attempt:KEY``).
  A runner that finds an attempt without a result knows the earlier one may have landed: it
  resends the recorded request (not a re-planned one, so the Idempotency-Key replay matches
  byte for byte) after checking whether it landed — a ticket with our external_id, a comment
  carrying the step's marker line, a voice comment with the same call facts, a user with our
  external_id (never Zendesk search, which lags by minutes). On the happy path this costs no
  request at all; only the step that was interrupted pays one read;
- ticket creation also carries the Idempotency-Key and external_id = contact id, so even a
  crash between "request sent" and "attempt journaled" cannot duplicate it.

Zendesk errors: the client retries 429/5xx/timeouts itself. If a step still fails
transiently, the run stops (`RunResult.error`) and the scheduler runs it again later; nothing
is lost. A permanent refusal (400/404/422 on a write) is journaled as ``{"failed": status}``
so the contact is not stuck forever: the policy reports it and carries on.
"""

import dataclasses
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, replace
from datetime import datetime
from typing import Any, Literal

import structlog

from daemon.core.events import NoticeRequest, PopRequest, WorkflowReported
from daemon.core.settings import AppSettings
from daemon.core.state import Contact
from daemon.core.workflow import (
    AddComment,
    AddVoiceComment,
    AgentInfo,
    CreateTicket,
    CreateUser,
    FindRecentTickets,
    FindTicket,
    FindTransferTicket,
    FindUser,
    FindUsersByPhone,
    Report,
    SearchUsers,
    Step,
    TicketInfo,
    UpdateUserPhone,
    UploadRecording,
    UserInfo,
    current_ticket,
    plan,
    record,
)
from daemon.store.base import Lease, Store
from daemon.zendesk.client import ZendeskClient
from daemon.zendesk.models import Comment, NewComment, NewTicket, Ticket, User, VoiceComment
from daemon.zendesk.retry import IdempotencyConflict, ZendeskError

log = structlog.get_logger("switchboard.workflow")

ATTEMPT = "~attempt:"
# Permanent refusals: trying again cannot succeed, so the step is journaled as failed.
PERMANENT = frozenset({400, 404, 422})

FetchRecording = Callable[[str, str], Awaitable[bytes | None]]
#: Wraps one step's Zendesk work: awaits it and returns (or raises) what it does.
ObserveStep = Callable[[Step, Awaitable[Any]], Awaitable[Any]]


async def _unobserved(step: Step, work: Awaitable[Any]) -> Any:
    return await work


@dataclass
class RunnerDeps:
    """What a run needs from the rest of the daemon."""

    store: Store
    client: ZendeskClient
    settings: AppSettings
    agent_info: Callable[[str], Awaitable[AgentInfo]]
    load_contact: Callable[[str, str], Awaitable[Contact | None]]
    report: Callable[[str, WorkflowReported], Awaitable[None]]
    # (contact id, recording url) -> the WAV bytes, for `upload_recordings`; None: link only.
    fetch_recording: FetchRecording | None = None
    clock: Callable[[], float] = time.time
    max_steps: int = 500  # a guard against a policy bug looping, not a working limit
    # "tab": the owning tab routes itself (ZAF routeTo, no API request); "zendesk": Talk
    # Partner Edition's display endpoints, falling back to the tab where the account has none.
    pop_via: Literal["tab", "zendesk"] = "tab"
    # The daemon's metrics count each step and its failure by kind here (Metrics.workflow_step).
    observe_step: ObserveStep = _unobserved


@dataclass(frozen=True, slots=True)
class RunResult:
    """How a run ended. `done`: the contact needs nothing more (the scheduler forgets it)."""

    done: bool
    reason: str  # done | waiting | gone | stale | error | limit
    steps: int = 0  # steps executed by this run (reports count one each)
    error: str | None = None


async def run_contact(deps: RunnerDeps, agent_id: str, contact_id: str, lease: Lease) -> RunResult:
    """Run the contact's workflow as far as it can go now (see the module docstring)."""
    store = deps.store
    agent = await deps.agent_info(agent_id)
    executed = 0
    for _ in range(deps.max_steps):
        contact = await deps.load_contact(agent_id, contact_id)
        if contact is None:
            return RunResult(True, "gone", executed)  # pruned: nobody can act on it any more
        journal = await store.journal_read(agent_id, contact_id)
        p = plan(deps.settings, agent, contact, journal, deps.clock())
        if not p.steps:
            return RunResult(p.done, "done" if p.done else "waiting", executed)

        reports = _leading_reports(p.steps)
        if reports:
            if not await store.lease_is_current(lease):
                return RunResult(False, "stale", executed)
            merged = merge_reports(contact_id, reports)
            if deps.pop_via == "zendesk" and agent.user_id is not None:
                merged = await _display_in_zendesk(deps.client, agent.user_id, merged)
            await deps.report(agent_id, merged)
            for report in reports:
                if not await store.journal_write(
                    lease, contact_id, report.key, record(report, None)
                ):
                    return RunResult(False, "stale", executed)
                executed += 1
            continue

        step = p.steps[0]
        recovering = False
        if step.zendesk_write:
            prior = journal.get(ATTEMPT + step.key)
            if prior is not None:
                step, recovering = step_from_json(prior, step), True
            elif not await store.journal_write(
                lease, contact_id, ATTEMPT + step.key, step_to_json(step)
            ):
                return RunResult(False, "stale", executed)
            if not await store.lease_is_current(lease):
                return RunResult(False, "stale", executed)
        try:
            work = Executor(deps, agent_id, contact).run(step, recovering=recovering)
            result = await deps.observe_step(step, work)
        except ZendeskError as exc:
            if exc.status not in PERMANENT:
                log.warning(
                    "workflow_step_failed",
                    agent=agent_id,
                    contact=contact_id,
                    step=step.key,
                    error=str(exc),
                )
                return RunResult(False, "error", executed, str(exc))
            result = _refused(step, exc)
            log.warning("workflow_step_refused", contact=contact_id, step=step.key, error=str(exc))
        if not await store.journal_write(lease, contact_id, step.key, record(step, result)):
            return RunResult(False, "stale", executed)
        executed += 1
    log.error("workflow_step_limit", agent=agent_id, contact=contact_id)
    return RunResult(False, "limit", executed)


def _leading_reports(steps: Sequence[Step]) -> list[Report]:
    out: list[Report] = []
    for step in steps:
        if not isinstance(step, Report):
            break
        out.append(step)
    return out


async def _display_in_zendesk(
    client: ZendeskClient, agent_user_id: int, reported: WorkflowReported
) -> WorkflowReported:
    """Pop users and tickets through Talk Partner Edition; what it cannot show, the tab does.

    A crash between the display call and the journal write repeats the display: a pop shown
    twice is harmless, a pop lost is not.
    """
    left: list[PopRequest] = []
    for pop in reported.pops:
        shown = False
        if pop.target == "ticket" and pop.id is not None:
            shown = await client.display_ticket(agent_user_id, pop.id)
        elif pop.target == "user" and pop.id is not None:
            shown = await client.display_user(agent_user_id, pop.id)
        if not shown:
            left.append(pop)
    return replace(reported, pops=tuple(left))


def _refused(step: Step, exc: ZendeskError) -> Any:
    """What to journal when Zendesk refused a step for good."""
    if step.zendesk_write:
        return {"failed": exc.status, "message": str(exc)[:300]}
    return [] if isinstance(step, FindUsersByPhone | SearchUsers | FindRecentTickets) else None


def merge_reports(contact_id: str, reports: Sequence[Report]) -> WorkflowReported:
    """One event for the agent aggregate out of consecutive reports (one commit, not N)."""
    ticket_id = user_id = None
    mode = None
    warnings: list[str] = []
    pops: list[PopRequest] = []
    notices: list[NoticeRequest] = []
    for r in reports:
        ticket_id = r.ticket_id if r.ticket_id is not None else ticket_id
        user_id = r.user_id if r.user_id is not None else user_id
        mode = r.mode or mode
        warnings.extend(w for w in r.warnings if w not in warnings)
        pops.extend(p for p in r.pops if p not in pops)
        notices.extend(r.notices)
    return WorkflowReported(
        contact_id=contact_id,
        ticket_id=ticket_id,
        user_id=user_id,
        mode=mode,
        warnings=tuple(warnings),
        pops=tuple(pops),
        notices=tuple(notices),
    )


# -- the attempt record: the exact request, so a retry resends it unchanged ---------------------

_STEP_TYPES: dict[str, type[Any]] = {
    cls.__name__: cls
    for cls in (
        CreateUser,
        CreateTicket,
        AddComment,
        AddVoiceComment,
        UpdateUserPhone,
        UploadRecording,
    )
}


def step_to_json(step: Step) -> dict[str, Any]:
    fields = {f.name: getattr(step, f.name) for f in dataclasses.fields(step)}
    if isinstance(step, AddComment):
        fields["uploads"] = list(step.uploads)
    return {"type": type(step).__name__, "fields": fields}


def step_from_json(doc: Any, planned: Step) -> Step:
    """The recorded request; the planned step if the record is unreadable (older format)."""
    try:
        cls = _STEP_TYPES[doc["type"]]
        fields = dict(doc["fields"])
        if cls is AddComment:
            fields["uploads"] = tuple(fields.get("uploads") or ())
        step: Step = cls(**fields)
    except (KeyError, TypeError, ValueError):
        return planned
    return step if step.key == planned.key else planned


# -- executing one step ---------------------------------------------------------------------------


def user_info(user: User) -> UserInfo:
    return {
        "id": user.id,
        "name": user.name,
        "phone": user.phone,
        "email": user.email,
        "role": user.role,
        "shared_phone_number": bool(user.shared_phone_number),
    }


def ticket_info(ticket: Ticket) -> TicketInfo:
    updated = ticket.updated_at or ticket.created_at
    return {
        "id": ticket.id,
        "requester_id": ticket.requester_id,
        "status": ticket.status,
        "updated_at": updated.timestamp() if updated else 0.0,
        "external_id": ticket.external_id,
    }


def _voice(data: dict[str, Any]) -> VoiceComment:
    return VoiceComment.model_validate(
        {
            **data,
            "started_at": datetime.fromisoformat(str(data["started_at"]).replace("Z", "+00:00")),
        }
    )


def _voice_landed(comment: Comment, wanted: VoiceComment) -> bool:
    if comment.type != "VoiceComment" or comment.data is None:
        return False
    mine = wanted.to_api()
    keys = [k for k in ("from", "to", "started_at", "call_duration", "recording_url") if k in mine]
    return all(str(comment.data.get(k)) == str(mine[k]) for k in keys)


class Executor:
    """Turns one step into Zendesk requests and the result into the policy's small dicts."""

    def __init__(self, deps: RunnerDeps, agent_id: str, contact: Contact) -> None:
        self.deps = deps
        self.zd = deps.client
        self.agent_id = agent_id
        self.contact = contact

    async def run(self, step: Step, *, recovering: bool) -> Any:
        zd = self.zd
        match step:
            case FindUser(user_id=uid):
                user = await zd.get_user(uid)
                return user_info(user) if user else None
            case FindUsersByPhone(digits=digits):
                return [user_info(u) for u in await zd.search_users_by_phone(digits)]
            case SearchUsers(field="email", query=query):
                return [user_info(u) for u in await zd.search_users(email=query)]
            case SearchUsers(query=query):
                return [user_info(u) for u in await zd.search_users(name=query)]
            case FindTicket(ticket_id=tid):
                ticket = await zd.get_ticket(tid)
                return ticket_info(ticket) if ticket else None
            case FindTransferTicket(initial_contact_id=initial):
                return await self.transfer_ticket(initial)
            case FindRecentTickets(user_id=uid):
                return [ticket_info(t) for t in await zd.recent_tickets_of_user(uid)]
            case CreateUser():
                return await self.create_user(step, recovering)
            case CreateTicket():
                return await self.create_ticket(step, recovering)
            case AddComment():
                return await self.add_comment(step, recovering)
            case AddVoiceComment():
                return await self.add_voice_comment(step, recovering)
            case UpdateUserPhone(user_id=uid, phone=phone):
                return user_info(await zd.update_user_phone(uid, phone))
            case UploadRecording():
                return await self.upload(step)
        raise TypeError(f"not a step the runner executes: {step!r}")

    async def transfer_ticket(self, initial: str) -> TicketInfo | None:
        """Our own record of the initial contact (same agent), then tickets by external_id."""
        journal = await self.deps.store.journal_read(self.agent_id, initial)
        own = current_ticket(journal)
        if own is not None:
            created = journal.get("ticket:create")
            if (
                isinstance(created, dict)
                and created.get("ticket_id") == own
                and "ticket" in created
            ):
                info: TicketInfo = created["ticket"]
                return info
            ticket = await self.zd.get_ticket(own)
            if ticket is not None:
                return ticket_info(ticket)
        found = await self.zd.tickets_by_external_id(initial)
        if not found:
            return None
        return ticket_info(min(found, key=lambda t: t.id))

    async def create_user(self, step: CreateUser, recovering: bool) -> UserInfo:
        if recovering:
            found = await self.zd.users_by_external_id(step.external_id)
            if found:
                return user_info(found[0])
        user = await self.zd.create_user(
            step.name, step.phone, step.email, external_id=step.external_id
        )
        return user_info(user)

    async def create_ticket(self, step: CreateTicket, recovering: bool) -> TicketInfo:
        if recovering:
            found = await self.zd.tickets_by_external_id(step.external_id)
            if found:
                return ticket_info(min(found, key=lambda t: t.id))
        ticket = NewTicket(
            subject=step.subject,
            comment=NewComment(body=step.body, html=False, public=False),
            requester_id=step.requester_id,
            submitter_id=step.submitter_id,
            assignee_id=step.assignee_id,
            external_id=step.external_id,
            via_id=step.via_id,
        )
        try:
            created = await self.zd.create_ticket(
                ticket, idempotency_key=step.idempotency_key, talk_partner=step.voice
            )
        except IdempotencyConflict:
            # The key went out before with another body (an older daemon's request): the
            # ticket it made, if any, carries our external_id.
            found = await self.zd.tickets_by_external_id(step.external_id)
            if not found:
                raise
            return ticket_info(min(found, key=lambda t: t.id))
        return ticket_info(created.ticket)

    async def add_comment(self, step: AddComment, recovering: bool) -> dict[str, Any]:
        if recovering:
            for comment in await self.zd.list_comments(step.ticket_id):
                text = comment.plain_body or comment.body or ""
                if step.marker in text or step.marker in (comment.html_body or ""):
                    return {"ticket_id": step.ticket_id}
        await self.zd.add_comment(
            step.ticket_id, step.body, public=False, html=False, uploads=list(step.uploads)
        )
        return {"ticket_id": step.ticket_id}

    async def add_voice_comment(self, step: AddVoiceComment, recovering: bool) -> dict[str, Any]:
        voice = _voice(step.data)
        if recovering:
            comments = await self.zd.list_comments(step.ticket_id)
            if any(_voice_landed(c, voice) for c in comments):
                return {"ticket_id": step.ticket_id}
        await self.zd.add_voice_comment(step.ticket_id, voice)
        return {"ticket_id": step.ticket_id}

    async def upload(self, step: UploadRecording) -> dict[str, Any] | None:
        fetch = self.deps.fetch_recording
        if fetch is None:
            return None
        content = await fetch(self.contact.contact_id, step.source_url)
        if not content:
            return None
        up = await self.zd.upload(step.file_name, content, content_type="audio/wav")
        attachment = up.attachment or (up.attachments[0] if up.attachments else None)
        return {
            "token": up.token,
            "content_url": attachment.content_url if attachment else None,
        }
