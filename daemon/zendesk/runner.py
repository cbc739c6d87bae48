"""The workflow runner: executes the pure policy's plans against Zendesk, step by step.

One run, under the contact's fencing lease: read the journal, `plan`, execute the first step
(or the leading batch of reports to the tabs), journal its result under the step's key, and
plan again, until the plan waits for the contact to change or is done. The journal is the
only memory: a runner that dies anywhere is replaced by one that reads the same journal and
continues with the first step whose result is missing.

Exactly once, by construction, and never by a node's memory:

- identities: every write carries the account, the agent and the contact
  (`daemon.core.workflow.identity`), so another agent's contact never shares its writes;
- a stale runner never reaches Zendesk: `store.lease_is_current` is checked right before
  every Zendesk write, and every journal write is fenced by the store;
- before a write is sent, its exact request and its start time are journaled as an
  *attempt* (``~attempt:KEY``), and the write is given at most `write_window` seconds. Once
  Zendesk has answered that attempt (the ``~retry`` record of a failure names the attempt it
  answers: an earlier attempt's answer says nothing of a resend still in flight), or once
  the attempt's deadline — start + window + `landing_seconds`,
  the longest Zendesk may still apply a request it received — has passed, a runner that
  finds an attempt without a result checks whether it landed (a ticket with our external_id,
  a comment carrying the step's marker line, this contact's voice comment) and resends the
  recorded request (not a re-planned one, so the Idempotency-Key replay matches byte for
  byte) only if it did not. Before the deadline it waits: a paused runner's request still in
  flight cannot be seen yet, and resending would duplicate it. The window is shorter than the
  client's own timeout, so the client never resends such a request by itself either;
- when ticket creation meets a ticket that already exists (an idempotency replay, or found
  by external_id), or the first write to a ticket the contact did not create finds the
  contact's marker already there, the contact's journal was lost (or never written): every
  later write to that ticket is checked against its comments before it is sent. On the happy
  path this costs nothing for a ticket the contact creates, one read for a ticket it attaches.
  A write of the lost journal's runner may still be in flight, unseen by that check (seed
  42522: Zendesk held a voice comment across the loss): it was sent before the loss, so
  before the attempt that met the earlier writes began, and those checked writes wait until
  that start + window + landing. A creation replayed in the same journal (its answer was
  lost) looks the same and waits too: only on that failure path, and never the pop.

Failures (`daemon.zendesk.retry.classify`): transient ones (no answer, 429, 5xx, a 409 for a
few tries) stop the run and set the contact's next attempt time (``~retry``: exponential
backoff with jitter, or Zendesk's Retry-After), which every node's scheduler honours;
permanent ones are journaled as ``{"failed": status}`` so the policy reports them to the
owner tab and carries on without that step, never sending it again; a halt (401 after the
client's refresh, a planning exception, an unexpected error) journals the whole contact as
failed (``~failed``), tells the owner tab, and the contact is never run again.

Limits, stated: a lost journal is known only by meeting its writes, so a lost runner's first
write to a ticket the contact did not create, still in flight, is not waited for. Zendesk
has no fencing token, so a sender paused inside the few synchronous instructions between its
last check and the socket write can still send late (the deadline covers every pause at an
await). Zendesk forgets idempotency keys after about two hours: a contact sent again after a
store loss later than that relies on finding its ticket by external_id only when the replay
is refused. A store loss also loses the sightings, so a transfer leg sent again afterwards
cannot follow its link and files its remaining writes on a ticket of its own (never, on a
guess, on another agent's).
"""

import asyncio
import dataclasses
import random
import time
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, replace
from datetime import datetime
from typing import Any, Literal, NoReturn
from urllib.parse import urlsplit

import structlog

from daemon.connect.client import ConnectClient, ConnectError
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
    Identity,
    Report,
    Scope,
    SearchUsers,
    SetRecording,
    Step,
    TicketInfo,
    UpdateUserPhone,
    UploadRecording,
    UserInfo,
    current_ticket,
    plan,
    record,
)
from daemon.core.workflow import transfer as transfers
from daemon.store.base import Lease, Store, StoreUnavailable
from daemon.zendesk.client import ZendeskClient
from daemon.zendesk.models import Comment, NewComment, NewTicket, Ticket, User, VoiceComment
from daemon.zendesk.registry import ContactRegistry
from daemon.zendesk.retry import IdempotencyConflict, Verdict, ZendeskError, classify
from protocol.messages import WorkflowStatus

log = structlog.get_logger("switchboard.workflow")

ATTEMPT = "~attempt:"
RETRY = "~retry"  # the contact's next attempt time after a transient failure
FAILED = "~failed"  # the contact's workflow halted for good
DONE = "~done"  # the workflow was finished (a later command revives it)
SEEN = "~seen"  # the contact's sighting is in the registry

FetchRecording = Callable[[str, str], Awaitable[bytes | None]]
#: Wraps one step's Zendesk work: awaits it and returns (or raises) what it does.
ObserveStep = Callable[[Step, Awaitable[Any]], Awaitable[Any]]


#: Where a contact's workflow stands, and the reason of a failure.
Status = tuple[WorkflowStatus, str | None]
#: Counts a contact's workflow reaching an end: (status, reason of a failure).
ObserveStatus = Callable[[WorkflowStatus, str | None], None]


async def _unobserved(step: Step, work: Awaitable[Any]) -> Any:
    return await work


def _uncounted(status: WorkflowStatus, reason: str | None) -> None:
    return None


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
    # The Zendesk account in every identity; None: the host of the client's base URL.
    account: str | None = None
    # The longest Zendesk may still apply a request after the client stopped waiting for it
    # (a paused or timed-out sender). A new runner re-checks an unanswered write only after
    # its start + write window + this.
    landing_seconds: float = 60.0
    # Per-contact backoff after a transient failure: the n-th try waits about
    # min(cap, base * 2**(n-1)), jittered between half and all of it.
    backoff_base: float = 2.0
    backoff_cap: float = 300.0
    rng: Callable[[], float] = random.random
    holder: str = "runner"  # this node, in registry leases
    # The daemon's metrics count each step and its failure by kind here, and each contact
    # whose workflow ends (done, failed, none).
    observe_step: ObserveStep = _unobserved
    observe_status: ObserveStatus = _uncounted
    # Amazon Connect's API, for recording control; None: not configured (commands refused).
    connect: ConnectClient | None = None

    @property
    def write_window(self) -> float:
        """How long one write may take, under the client's own per-request timeout (so the
        client never resends an unanswered write by itself: that is the runner's call)."""
        return self.client.timeout * 0.9

    def account_name(self) -> str:
        return self.account or urlsplit(self.client.base_url).netloc


@dataclass(frozen=True, slots=True)
class RunResult:
    """How a run ended. `done`: the contact needs nothing more (the scheduler forgets it).

    `reason`: done | waiting | gone | stale | error (transient: try again at `retry_at`) |
    backoff (an earlier failure's `retry_at` is still ahead) | failed (halted for good) |
    limit. `failures`: permanent failures journaled by this run (steps, or the contact).
    """

    done: bool
    reason: str
    steps: int = 0  # steps executed by this run (reports count one each)
    error: str | None = None
    retry_at: float | None = None
    failures: int = 0


async def run_contact(deps: RunnerDeps, agent_id: str, contact_id: str, lease: Lease) -> RunResult:
    """Run the contact's workflow as far as it can go now (see the module docstring)."""
    info = await deps.agent_info(agent_id)
    agent = replace(info, scope=Scope(deps.account_name(), agent_id))
    return await _Run(deps, agent_id, contact_id, lease, agent).go()


class _Stop(Exception):
    """Control flow: the run ends with `result`."""

    def __init__(self, result: RunResult) -> None:
        self.result = result


class _Run:
    def __init__(
        self, deps: RunnerDeps, agent_id: str, contact_id: str, lease: Lease, agent: AgentInfo
    ) -> None:
        self.deps = deps
        self.store = deps.store
        self.agent_id = agent_id
        self.contact_id = contact_id
        self.lease = lease
        self.agent = agent
        self.identity = agent.scope.of(contact_id)
        self.executed = 0
        self.failures = 0

    def result(self, done: bool, reason: str, **kw: Any) -> RunResult:
        return RunResult(done, reason, self.executed, failures=self.failures, **kw)

    async def go(self) -> RunResult:
        try:
            for _ in range(self.deps.max_steps):
                await self.once()
        except _Stop as stop:
            return stop.result
        log.error("workflow_step_limit", agent=self.agent_id, contact=self.contact_id)
        return self.result(False, "limit")

    async def journal(self, key: str, value: Any) -> None:
        """A fenced journal write; a stale lease ends the run."""
        if not await self.store.journal_write(self.lease, self.contact_id, key, value):
            raise _Stop(self.result(False, "stale"))

    async def current(self) -> None:
        if not await self.store.lease_is_current(self.lease):
            raise _Stop(self.result(False, "stale"))

    async def once(self) -> None:
        """Plan once and execute what comes first (a batch of reports, or one step)."""
        contact = await self.deps.load_contact(self.agent_id, self.contact_id)
        if contact is None:
            raise _Stop(self.result(True, "gone"))  # pruned: nobody can act on it any more
        journal = await self.store.journal_read(self.agent_id, self.contact_id)
        halted = journal.get(FAILED)
        if halted is not None:  # halted for good: never retried
            if contact.workflow != "failed":  # (the halt's own report was lost)
                await self.current()
                failure: Status = ("failed", _halt_code(halted))
                await self.report(WorkflowReported(contact_id=self.contact_id), failure)
            raise _Stop(self.result(True, "failed"))
        retry = journal.get(RETRY)
        if isinstance(retry, dict) and float(retry.get("at", 0)) > self.deps.clock():
            raise _Stop(self.result(False, "backoff", retry_at=float(retry["at"])))
        try:
            p = plan(self.deps.settings, self.agent, contact, journal, self.deps.clock())
        except Exception as exc:
            log.exception("workflow_planning_failed", agent=self.agent_id, contact=self.contact_id)
            await self.halt("planning_failed", f"the workflow could not be planned: {exc!r}")
        status = p.status if (contact.workflow, contact.workflow_reason) != p.status else None
        reports = _leading_reports(p.steps)
        if status is not None and not reports:
            await self.current()
            await self.report(WorkflowReported(contact_id=self.contact_id), status)
        if not p.steps:
            if p.done and not journal.get(DONE):
                await self.journal(DONE, True)
            raise _Stop(self.result(p.done, "done" if p.done else "waiting"))
        if journal.get(DONE):
            # A change after the end (an agent's command) gave it work again: durable again
            # before anything is sent, so a node dying now leaves it for another's scan.
            await self.store.workflows_add(self.agent_id, self.contact_id)
            await self.journal(DONE, False)
        if not journal.get(SEEN):
            await self.sight(contact)
        if reports:
            await self.tell(reports, status)
        else:
            await self.step(p.steps[0], journal, contact)

    async def report(self, event: WorkflowReported, status: Status | None) -> None:
        """Report to the agent's tabs, with where the contact's workflow now stands if that
        changed (the plan's status against the contact just loaded); count its ends."""
        if status is not None:
            event = replace(event, status=status[0], reason=status[1])
        await self.deps.report(self.agent_id, event)
        if status is not None and status[0] != "pending":
            self.deps.observe_status(*status)

    async def sight(self, contact: Contact) -> None:
        registry = ContactRegistry(self.store, self.deps.account_name(), self.deps.holder)
        if await registry.sight(self.agent_id, self.contact_id, contact.created_at):
            await self.journal(SEEN, True)

    async def tell(self, reports: list[Report], status: Status | None) -> None:
        await self.current()
        merged = merge_reports(self.contact_id, reports)
        if self.deps.pop_via == "zendesk" and self.agent.user_id is not None:
            merged = await _display_in_zendesk(self.deps.client, self.agent.user_id, merged)
        await self.report(merged, status)
        for report in reports:
            await self.journal(report.key, record(report, None))
            self.executed += 1

    async def halt(self, code: str, message: str) -> NoReturn:
        """Nothing more can succeed for this contact: journal it failed, tell the owner."""
        await self.journal(FAILED, {"code": code, "message": message[:300]})
        self.failures += 1
        notice = NoticeRequest(
            "error", "workflow_failed", f"Zendesk work for this contact stopped: {message}"
        )
        report = WorkflowReported(contact_id=self.contact_id, notices=(notice,))
        await self.report(report, ("failed", code))
        log.error("workflow_halted", agent=self.agent_id, contact=self.contact_id, code=code)
        raise _Stop(self.result(True, "failed", error=message))

    async def step(self, step: Step, journal: Mapping[str, Any], contact: Contact) -> None:
        recovering = False
        started: float | None = None  # when this write's attempt began (its identity)
        until: float | None = None
        if step.zendesk_write:
            step, recovering = await self.prepare(step, journal)
            started = self.deps.clock()
            until = started + self.deps.write_window + self.deps.landing_seconds
            attempt = {**step_to_json(step), "started_at": started, "until": until}
            await self.journal(ATTEMPT + step.key, attempt)
            await self.current()
        executor = Executor(self.deps, self.agent_id, contact, self.identity)
        try:
            work = executor.run(step, recovering=recovering)
            if step.zendesk_write:
                async with asyncio.timeout(self.deps.write_window):
                    result = await self.deps.observe_step(step, work)
            else:
                result = await self.deps.observe_step(step, work)
        except TimeoutError:
            await self.transient(
                step, journal, classify(ZendeskError(None)), "timed out", started, until
            )
        except ZendeskError as exc:
            verdict = classify(exc)
            if verdict.kind == "halt":
                await self.halt(verdict.code, str(exc))
            doubt = until if exc.status is None else None
            if verdict.kind == "transient":
                await self.transient(step, journal, verdict, str(exc), started, doubt)
            result = {"failed": exc.status, "code": verdict.code, "message": str(exc)[:300]}
            self.failures += 1
            log.warning(
                "workflow_step_refused", contact=self.contact_id, step=step.key, error=str(exc)
            )
        except ConnectError as exc:
            if not exc.permanent:
                verdict = Verdict("transient", exc.kind)
                await self.transient(step, journal, verdict, str(exc), started, None)
            result = {"failed": exc.kind, "message": str(exc)[:300]}
            self.failures += 1
            log.warning(
                "connect_step_refused", contact=self.contact_id, step=step.key, error=str(exc)
            )
        except StoreUnavailable:
            raise
        except Exception as exc:
            log.exception("workflow_step_crashed", contact=self.contact_id, step=step.key)
            await self.halt("step_failed", f"{step.key}: {exc!r}")
        await self.journal(step.key, record(step, result))
        if isinstance(journal.get(RETRY), dict):
            await self.journal(RETRY, None)
        self.executed += 1

    async def prepare(self, step: Step, journal: Mapping[str, Any]) -> tuple[Step, bool]:
        """The request to send (an earlier attempt's, if any) and whether to check first."""
        prior = journal.get(ATTEMPT + step.key)
        if prior is None:
            check, lost_at = _replaying(step, journal)
            until = lost_at + self.deps.write_window + self.deps.landing_seconds
            if lost_at and until > self.deps.clock():
                # The journal was lost: a write of its runner may still be in flight, unseen.
                waiting = _retry(step.key, until, 0, "a write of a lost journal may land", None)
                await self.journal(RETRY, waiting)
                raise _Stop(self.result(False, "backoff", retry_at=until))
            return step, check
        retry = journal.get(RETRY)
        # Answered: Zendesk answered this very attempt. A ``~retry`` left by an earlier,
        # answered attempt of the step says nothing about the latest one, whose runner may
        # have died (or been paused past its lease) before it could journal the outcome
        # (seed 6419: a 429, then a resend held by Zendesk while its node was paused and
        # killed; the next holder took the 429's record as the answer and wrote twice).
        started = prior.get("started_at") if isinstance(prior, dict) else None
        answered = (
            isinstance(retry, dict)
            and retry.get("step") == step.key
            and not retry.get("doubt")
            and started is not None
            and retry.get("attempt") == started
        )
        until = float(prior.get("until", 0.0)) if isinstance(prior, dict) else 0.0
        if not answered and until > self.deps.clock():
            # Unanswered and maybe still in flight: wait until it can no longer land.
            waiting = _retry(step.key, until, 0, "an earlier attempt may land", started)
            await self.journal(RETRY, waiting)
            raise _Stop(self.result(False, "backoff", retry_at=until))
        return step_from_json(prior, step), True

    async def transient(
        self,
        step: Step,
        journal: Mapping[str, Any],
        verdict: Verdict,
        error: str,
        attempt: float | None,
        doubt_until: float | None,
    ) -> None:
        """Stop the run and set the contact's next attempt; after too many tries of a step
        whose failures are bounded, return so the caller journals it failed. `attempt`: the
        start of the write attempt that failed (None for a read), which the record names."""
        retry = journal.get(RETRY)
        same = isinstance(retry, dict) and retry.get("step") == step.key
        attempts = (int(retry.get("attempts", 0)) if same and isinstance(retry, dict) else 0) + 1
        if verdict.attempts is not None and attempts >= verdict.attempts:
            return
        now = self.deps.clock()
        if verdict.retry_after is not None:
            delay = verdict.retry_after + self.deps.rng() * self.deps.backoff_base
        else:
            ceiling = min(self.deps.backoff_cap, self.deps.backoff_base * 2.0 ** (attempts - 1))
            delay = ceiling / 2 + self.deps.rng() * ceiling / 2
        at = max(now + delay, doubt_until or 0.0)
        doubt = doubt_until is not None
        await self.journal(RETRY, _retry(step.key, at, attempts, error, attempt, doubt=doubt))
        log.warning(
            "workflow_step_failed",
            agent=self.agent_id,
            contact=self.contact_id,
            step=step.key,
            error=error,
            retry_in=round(at - now, 3),
        )
        raise _Stop(self.result(False, "error", error=error, retry_at=at))


def _halt_code(record: Any) -> str:
    """The reason a halted contact failed, from its ``~failed`` record."""
    return str(record.get("code") or "halted") if isinstance(record, dict) else "halted"


def _retry(
    key: str, at: float, attempts: int, error: str, attempt: float | None, *, doubt: bool = True
) -> Any:
    """The ``~retry`` record: when the contact may be tried again, and why. `attempt`: the
    ``started_at`` of the step's attempt it is about (None: a read step). `doubt`: that
    attempt got no answer (it may still land), so its deadline must pass."""
    return {
        "step": key,
        "at": at,
        "attempts": attempts,
        "doubt": doubt,
        "attempt": attempt,
        "error": error[:300],
    }


def _replaying(step: Step, journal: Mapping[str, Any]) -> tuple[bool, float]:
    """Whether a first attempt of `step` must check the ticket first, and since when the
    contact's journal is known to have been lost (0.0: not known to be).

    It checks first when the contact met its own earlier writes on the ticket (its journal
    was lost), or when this is its first write to a ticket it did not create (which finds
    out). A write of the lost journal's runner was sent before the loss, so before the start
    of the attempt that met it: it lands by that start + window + landing, and may not be
    seen until then.
    """
    tid = getattr(step, "ticket_id", None)
    if tid is None:
        return False, 0.0
    # Records of writes to tickets say whether they met earlier writes (`existing`).
    writes = {
        key: v for key, v in journal.items()
        if isinstance(v, dict) and v.get("ticket_id") == tid and "existing" in v
    }  # fmt: skip
    met = [key for key, v in writes.items() if v["existing"]]
    starts = [_started(journal.get(ATTEMPT + key)) for key in met]
    return not writes or bool(met), min(filter(None, starts), default=0.0)


def _started(attempt: Any) -> float:
    """When an attempt began (0.0: not recorded)."""
    return float(attempt.get("started_at", 0.0)) if isinstance(attempt, dict) else 0.0


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


def merge_reports(contact_id: str, reports: Sequence[Report]) -> WorkflowReported:
    """One event for the agent aggregate out of consecutive reports (one commit, not N)."""
    ticket_id = user_id = None
    mode = None
    recording_paused: bool | None = None
    warnings: list[str] = []
    pops: list[PopRequest] = []
    notices: list[NoticeRequest] = []
    for r in reports:
        ticket_id = r.ticket_id if r.ticket_id is not None else ticket_id
        user_id = r.user_id if r.user_id is not None else user_id
        mode = r.mode or mode
        if r.recording_paused is not None:
            recording_paused = r.recording_paused
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
        recording_paused=recording_paused,
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


def _text(comment: Comment) -> str:
    return "\n".join(t for t in (comment.plain_body, comment.body, comment.html_body) if t)


def _voice_landed(comments: Sequence[Comment], wanted: VoiceComment, identity: Identity) -> bool:
    """Whether this contact's voice comment is among the ticket's comments.

    A voice comment carries no marker (its fields are Zendesk's), and its start time and
    duration come from the daemon's clock, which a contact re-sent after the store lost it
    does not reproduce. So: a voice comment with the same parties, answerer and recording,
    after the contact's first marked comment on the ticket (its details note, written when
    it connected, always comes before its voice comment).
    """
    start = next((i for i, c in enumerate(comments) if identity.marker_prefix in _text(c)), 0)
    mine = wanted.to_api()
    keys = [k for k in ("from", "to", "answered_by_id", "recording_url") if k in mine]
    return any(
        c.type == "VoiceComment"
        and c.data is not None
        and all(str(c.data.get(k)) == str(mine[k]) for k in keys)
        for c in comments[start:]
    )


class Executor:
    """Turns one step into Zendesk requests and the result into the policy's small dicts."""

    def __init__(
        self,
        deps: RunnerDeps,
        agent_id: str,
        contact: Contact,
        identity: Identity,
    ) -> None:
        self.deps = deps
        self.zd = deps.client
        self.agent_id = agent_id
        self.contact = contact
        self.identity = identity

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
                return await self.transfer(initial)
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
            case SetRecording():
                return await self.set_recording(step)
            case UploadRecording():
                return await self.upload(step)
        raise TypeError(f"not a step the runner executes: {step!r}")

    async def transfer(self, initial: str) -> dict[str, Any]:
        """The initial contact's ticket, if the trust rule (`core.workflow.transfer`) allows
        following it: {"ticket": TicketInfo | None, "agent": first reporter, "refused": why}."""
        registry = ContactRegistry(self.deps.store, self.deps.account_name(), self.deps.holder)
        owner = transfers.first_reporter(await registry.sightings(initial))
        if owner is None:
            return {"ticket": None, "agent": None, "refused": None}
        if owner != self.agent_id:
            first_leg = await self.deps.load_contact(owner, initial)
            why = transfers.refusal(first_leg, self.contact)
            if why is not None:
                log.warning("transfer_refused", contact=self.contact.contact_id,
                            initial=initial, agent=owner, reason=why)  # fmt: skip
                return {"ticket": None, "agent": owner, "refused": why}
        ticket = await self.ticket_of(owner, initial)
        if ticket is not None:
            log.info("transfer_linked", contact=self.contact.contact_id, initial=initial,
                     agent=owner, ticket=ticket["id"])  # fmt: skip
        return {"ticket": ticket, "agent": owner, "refused": None}

    async def ticket_of(self, agent: str, contact_id: str) -> TicketInfo | None:
        """A contact's current ticket: its journal first, then tickets by its external_id."""
        journal = await self.deps.store.journal_read(agent, contact_id)
        own = current_ticket(journal)
        if own is not None:
            created = journal.get("ticket:create")
            if isinstance(created, dict) and created.get("ticket_id") == own:
                info: TicketInfo = created["ticket"]
                return info
            ticket = await self.zd.get_ticket(own)
            if ticket is not None:
                return ticket_info(ticket)
        external_id = Scope(self.deps.account_name(), agent).of(contact_id).external_id
        found = await self.zd.tickets_by_external_id(external_id)
        return ticket_info(min(found, key=lambda t: t.id)) if found else None

    async def create_user(self, step: CreateUser, recovering: bool) -> UserInfo:
        if recovering:
            found = await self.zd.users_by_external_id(step.external_id)
            if found:
                return user_info(found[0])
        user = await self.zd.create_user(
            step.name, step.phone, step.email, external_id=step.external_id
        )
        return user_info(user)

    async def create_ticket(self, step: CreateTicket, recovering: bool) -> dict[str, Any]:
        """The ticket, and whether it existed already (`existing`: our journal was lost or
        the answer was, so every later write to it checks first)."""
        if recovering:
            found = await self.zd.tickets_by_external_id(step.external_id)
            if found:
                return {**ticket_info(min(found, key=lambda t: t.id)), "existing": True}
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
            # The key went out before with another body (the contact was re-sent after the
            # store lost it, or an older daemon's request): the ticket it made carries our
            # external_id.
            found = await self.zd.tickets_by_external_id(step.external_id)
            if not found:
                raise
            return {**ticket_info(min(found, key=lambda t: t.id)), "existing": True}
        return {**ticket_info(created.ticket), "existing": created.replayed}

    async def add_comment(self, step: AddComment, recovering: bool) -> dict[str, Any]:
        existing = False
        if recovering:
            comments = await self.zd.list_comments(step.ticket_id)
            texts = [_text(c) for c in comments]
            if any(step.marker in t for t in texts):
                return {"ticket_id": step.ticket_id, "existing": True}
            existing = any(self.identity.marker_prefix in t for t in texts)
        await self.zd.add_comment(
            step.ticket_id, step.body, public=False, html=False, uploads=list(step.uploads)
        )
        return {"ticket_id": step.ticket_id, "existing": existing}

    async def add_voice_comment(self, step: AddVoiceComment, recovering: bool) -> dict[str, Any]:
        voice = _voice(step.data)
        if recovering:
            comments = await self.zd.list_comments(step.ticket_id)
            if _voice_landed(comments, voice, self.identity):
                return {"ticket_id": step.ticket_id, "existing": True}
        await self.zd.add_voice_comment(step.ticket_id, voice)
        return {"ticket_id": step.ticket_id}

    async def set_recording(self, step: SetRecording) -> dict[str, Any]:
        connect = self.deps.connect
        if connect is None:
            return {
                "failed": "not_configured",
                "message": "Amazon Connect's API is not configured for recording control",
            }
        call = connect.suspend_recording if step.paused else connect.resume_recording
        await call(step.contact_id, step.initial_contact_id)
        return {"confirmed": True}

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
