"""The Zendesk workflow policy: a pure function from what we know to what to do next.

`plan(app, agent, contact, journal, now)` reads the app settings, the contact (its attributes,
events, agent commands, chat lines) and the contact's journal (the results of every step done
so far, keyed by step key), and returns the steps that are ready now. The runner executes
them, journals each result under its key and plans again, so the journal alone determines
what is left: a restarted daemon, or another node, continues where the last runner stopped,
and no step whose result is journaled ever runs twice.

The flow, rule by rule (BEHAVIOUR.md and the administrator guide):

1. Nothing at all for monitoring contacts (a supervisor listening in), a second concurrent
   chat (refused by the agent aggregate), and tasks (the original app did not handle them).
2. Invalid attribute values are reported to the tabs as warnings (each once).
3. Start: on the first event with `pop_incoming` true, else once connected. A contact that
   finishes without ever connecting (missed, abandoned) gets nothing more: no ticket is made
   for a conversation that did not happen.
4. Ticket requested (`zendesk_ticket`, name configurable): 0 = a new ticket; N is looked up;
   missing -> notice "Requested ticket #N was not found" and a new ticket.
5. Transfer (initial contact id differs, not a queue callback) with no requested ticket: the
   initial contact's ticket, by its agent's record then by its `external_id`, if the trust
   rule of `workflow.transfer` allows following it (the first agent that reported it, the
   same account, still going or ended minutes ago); its requester is the customer (no
   identification request). The link is noticed to the tabs and, across agents, named in
   the details note. None -> agent mode + "No ticket was found related to transfer" (or
   "transfer_not_trusted" with the reason).
6. Customer: voice `zendesk_user` -> `customer_number` -> CLI; chat `zendesk_user` ->
   `customer_email` -> `customer_name` (an email with no match falls through to the name).
   Outbound click-to-dial goes to the user/ticket it was started from.
   Phone search: the country prefix (and then a national trunk 0) stripped, end users whose
   phone ends with the digits, shared numbers skipped. If several remain, the one whose phone
   is exactly the number wins; otherwise (silent in the guide for voice) the contact is
   treated like a chat with several matches: agent mode, a notice and a search pop, rather
   than guessing and filing the call under the wrong customer.
   Chat name/email matches are exact (case-insensitive): Zendesk search is fuzzy.
7. A requested ticket whose requester is not the identified user -> notice "Requested ticket
   doesn't belong to this user" (the ticket is still used: the IVR asked for it).
8. Recent ticket (timeout > 0, recognised, no ticket requested, not a transfer): the most
   recently updated not-closed ticket requested by the customer, updated within the timeout
   before the contact arrived (the contact's own time, so the decision never flips on replan).
9. Auto mode: pop the ticket, else the user, before the contact connects; once connected
   attach the known ticket or create one (user first if unrecognised: `customer_name` or
   "new user at NUMBER", phone = the number searched; anonymous: requester = the agent),
   then pop it. Outbound to an unknown number: nothing unless `all_outbound`.
10. Agent mode: pop the ticket if known, else the user (several matches: a search). Commands
   `create_ticket(user_id?)` / `attach_to_current(ticket_id)` in the order given; commands
   apply in auto mode too (an agent correcting the automatic choice). At most one new ticket
   and one new user per contact: a second create_ticket re-attaches the one created (notice).
   `force_ticket_creation` creates a ticket at the end if none was attached.
11. Each attached ticket gets the "Amazon Connect Contact Details" note with the attributes
   (system attributes excluded) once connected; a new ticket carries it as its first comment
   (one request instead of two). Recognised inbound callers whose CLI is numeric and differs
   from their phone get their phone updated after attaching.
12. `pause_recording`: each pause/resume command is carried out through Amazon Connect's API
   (`SetRecording`), the state Connect confirmed is reported to the tabs, and the command is
   noted on the current ticket (kept until a ticket is attached) saying what Connect
   confirmed; a refusal reaches the owner as an urgent notice. Without the attribute each
   command gets a notice instead and nothing is asked of Connect.
13. At the end (on the current ticket): speech analysis results (when enabled) and the
   attributes whose value changed since written, in one note; the voice comment (Talk
   Partner, or a plain note without it) when `voice_comment`; the chat transcript unless
   `chat_transcript` is false; then the agent is routed to the ticket.

Zendesk requests per contact (reads + writes; pops and notices go through the tabs and cost
none; no recording upload, no speech analysis, attributes unchanged at the end):

- recognised caller, auto mode: 3 — phone search, create ticket (Talk Partner, with the
  details note as its first comment), voice comment. +1 if the caller's phone is updated,
  +1 for the recent-ticket lookup when a timeout is set (and then an existing ticket costs
  1 details note instead of the creation), +1 if attributes changed or analysis is enabled.
- unrecognised caller, auto mode: 4 — phone search, create user, create ticket, voice comment.
- agent mode, recognised caller: 3 — phone search, then either the agent's create_ticket /
  the forced ticket at the end (1, with the details) or attach_to_current (1 details note,
  +1 read: see below), and the voice comment.
- chat, recognised by email, auto mode: 3 — user search, create ticket, transcript.

A retry after a crash between a write and its journal entry costs one more read (the
ticket's comments, or the tickets with our external_id) for that step only. The first write
to a ticket the contact did not create (attach_to_current, a requested, recent or transfer
ticket) reads the ticket's comments first: if the contact's own marker is already there, its
journal was lost (the store restarted empty and the contact was sent again), and every later
write to that ticket is checked the same way (see `daemon.zendesk.runner`).
"""

import dataclasses
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, Literal

from daemon.core.events import NoticeRequest, PopRequest
from daemon.core.settings import (
    AppSettings,
    EffectiveSettings,
    effective_settings,
    normalise_phone,
    system_attributes,
)
from daemon.core.state import AgentCommand, Contact
from daemon.core.workflow import comments
from daemon.core.workflow.identity import Identity, Scope
from daemon.core.workflow.steps import (
    AddComment,
    AddVoiceComment,
    CreateTicket,
    CreateUser,
    FindRecentTickets,
    FindTicket,
    FindTransferTicket,
    FindUser,
    FindUsersByPhone,
    Plan,
    Report,
    SearchUsers,
    SetRecording,
    Step,
    TicketInfo,
    TransferLink,
    UpdateUserPhone,
    UploadRecording,
    UserInfo,
    VoiceData,
)

#: The scope of an AgentInfo built without one (the pure tests); the runner always sets it.
UNSCOPED = Scope("", "")
ANONYMOUS_CLIS = frozenset({"", "anonymous", "private", "unknown"})
VIA_INBOUND = 45
VIA_OUTBOUND = 46
TICKET_CREATE = "ticket:create"
#: A call longer than a day is a clock error, not a call: its duration is capped.
MAX_CALL_SECONDS = 86_400.0
USER_CREATE = "user:create"


@dataclass(frozen=True, slots=True)
class AgentInfo:
    """The agent in Zendesk: submitter/assignee of new tickets, answerer of calls, and the
    account and agent every identity of its writes carries (see `identity`)."""

    user_id: int | None
    name: str | None = None
    scope: Scope = UNSCOPED


Status = Literal["recognised", "unrecognised", "anonymous", "ambiguous"]


@dataclass(slots=True)
class _Customer:
    status: Status
    user: UserInfo | None = None
    number: str | None = None  # the number searched: the new user's phone
    search: str | None = None  # what to search for when several users matched
    email: str | None = None
    name: str | None = None


def _first_time(*candidates: float | None) -> float | None:
    """The first candidate that is a renderable time (see `comments.valid_time`)."""
    return next((t for t in map(comments.valid_time, candidates) if t is not None), None)


@dataclass(slots=True)
class _Choice:
    """What the phases decided so far about the contact's ticket and customer."""

    mode: Literal["auto", "agent"]
    ticket: TicketInfo | None = None
    requested: bool = False  # the contact flow asked for `ticket`
    transfer: bool = False  # the contact names another as its initial contact
    from_transfer: bool = False  # `ticket` is the initial contact's
    customer: _Customer = dataclasses.field(default_factory=lambda: _Customer("unrecognised"))


class _Blocked(Exception):
    """Control flow: nothing further can be planned until the collected steps are done."""


def failed(result: Any) -> bool:
    """True for the journal entry of a write Zendesk refused for good (a 4xx)."""
    return isinstance(result, dict) and "failed" in result


def search_digits(number: str, country_prefix: str) -> str:
    """The digits a phone search matches the end of users' phones against.

    With a country prefix configured (e.g. +44), +44 / 0044 and a national trunk 0 are
    stripped, so +44 7700 900123 and 07700 900123 find the same users.
    """
    digits = number.lstrip("+")
    if country_prefix:
        plain = country_prefix.lstrip("+")
        if number.startswith("+" + plain):
            digits = number[len(plain) + 1 :]
        elif number.startswith("00" + plain):
            digits = number[len(plain) + 2 :]
        digits = digits.lstrip("0") or digits
    return digits


def cli_number(contact: Contact) -> str | None:
    """The caller's number, or None for an anonymous one (or one that is not a number)."""
    raw = (contact.customer_endpoint or "").strip()
    if raw.lower().startswith("tel:"):
        raw = raw[4:]
    if raw.lower() in ANONYMOUS_CLIS:
        return None
    return normalise_phone(raw)


def current_ticket(journal: Mapping[str, Any]) -> int | None:
    """The ticket the journal says the contact is attached to (used for transfers)."""
    best: tuple[int, int] | None = None
    for key, value in journal.items():
        if key.startswith("report:ticket:") and isinstance(value, dict):
            idx = int(key.split(":")[2])
            if value.get("ticket_id") is not None and (best is None or idx > best[0]):
                best = (idx, int(value["ticket_id"]))
    return None if best is None else best[1]


class _Planner:
    def __init__(
        self,
        app: AppSettings,
        agent: AgentInfo,
        contact: Contact,
        journal: Mapping[str, Any],
    ) -> None:
        self.app = app
        self.agent = agent
        self.c = contact
        self.journal = journal
        self.s: EffectiveSettings
        self.warnings: list[str]
        self.s, self.warnings = effective_settings(app, contact.attributes)
        self.steps: list[Step] = []
        self.waiting = False
        self.applies = True  # see `Plan.applies`
        self.failures: list[str] = []  # see `Plan.failures`
        self.connected = "connected" in contact.events_seen
        self.identity: Identity = agent.scope.of(contact.contact_id)
        self.transferred_from: str | None = None  # another agent's contact we follow

    # -- plumbing ----------------------------------------------------------------------

    def need(self, step: Step) -> Any:
        """The step's journaled result; if there is none yet, plan the step and stop here.

        A step Zendesk refused for good is reported to the owner tab once (ticket and user
        creation say it in their own words) and is never planned again; a refused lookup
        reads as "nothing found".
        """
        if step.key not in self.journal:
            self.steps.append(step)
            raise _Blocked
        result = self.journal[step.key]
        if not failed(result) or isinstance(step, SetRecording):
            return result  # (Connect's refusals are told in their own words)
        reason = str(result.get("code") or f"http_{result['failed']}")
        if reason not in self.failures:
            self.failures.append(reason)
        if not isinstance(step, CreateTicket | CreateUser):
            self.notice(
                f"refused:{step.key}", "zendesk_refused",
                f"Zendesk refused a step of this contact's workflow ({step.key}): "
                f"{result.get('message') or result['failed']}",
                level="error",
            )  # fmt: skip
        if step.zendesk_write:
            return result
        return [] if isinstance(step, FindUsersByPhone | SearchUsers | FindRecentTickets) else None

    def tell(self, report: Report) -> None:
        """Plan a report to the tabs unless already made; planning goes on (nothing waits)."""
        if report.key not in self.journal and all(s.key != report.key for s in self.steps):
            self.steps.append(report)

    def notice(self, key: str, code: str, text: str, level: str = "warning") -> None:
        """Tell the owner something once; `error` when the agent must act on a failure."""
        self.tell(Report(key=f"notice:{key}", notices=(NoticeRequest(level, code, text),)))

    def pop(self, target: str, ident: int | None = None, query: str | None = None) -> None:
        key = f"pop:{target}:{ident if ident is not None else query}"
        self.tell(Report(key=key, pops=(PopRequest(target, ident, query),)))

    def wait(self) -> None:
        self.waiting = True
        raise _Blocked

    # -- the flow ----------------------------------------------------------------------

    def run(self) -> None:
        """The flow of the module docstring, phase by phase; each phase may stop planning
        (`need` of a step not yet done, `wait`) and the next plan resumes from the journal."""
        if not self.started():
            return
        choice = self.choose_ticket()
        choice.customer = self.customer_for(choice)
        self.check_requester(choice)
        self.reuse_recent_ticket(choice)
        self.decide_mode(choice)
        self.first_pops(choice)
        current = self.during_contact(choice)
        if not self.c.finished:
            self.wait()
        self.at_the_end(choice, current)

    # -- phases ------------------------------------------------------------------------

    def started(self) -> bool:
        """Rules 1-3: whether the contact gets a workflow and it has begun (else `wait`)."""
        c = self.c
        if c.confirmation == "refused" and c.refused is not None:
            # Refused by Amazon Connect after it was believed (Connect could not say at
            # first): the work it got meanwhile stops, which an operator must look at.
            self.failures.append(c.refused)
        if c.refused is not None or c.monitoring or c.type in ("task", "email"):
            self.applies = False
            return False
        self.report_warnings()
        if c.finished and not self.connected:
            self.applies = False
            return False
        if not self.connected and not self.s.pop_incoming:
            self.wait()
        return True

    def choose_ticket(self) -> "_Choice":
        """Rules 4-5: the ticket the contact flow asked for, the transfer's, click to dial."""
        c = self.c
        choice = _Choice(mode=self.s.ticket_assignment)
        choice.ticket, choice.requested = self.requested_ticket()
        choice.transfer = bool(
            c.initial_contact_id and c.initial_contact_id != c.contact_id and not c.is_callback
        )
        if choice.transfer and choice.ticket is None:
            found = self.transfer_ticket(c.initial_contact_id or "")
            if found is not None:
                choice.ticket, choice.from_transfer = found, True
            else:
                choice.mode = "agent"
        if c.click_to_dial is not None and c.click_to_dial.kind == "ticket" and not choice.ticket:
            choice.ticket = {"id": c.click_to_dial.id}
        return choice

    def customer_for(self, choice: "_Choice") -> _Customer:
        """Rule 6: the transfer's requester, the click-to-dial ticket's, or identification."""
        c, ticket = self.c, choice.ticket
        if choice.from_transfer and ticket is not None and ticket.get("requester_id"):
            return _Customer("recognised", user={"id": int(ticket["requester_id"] or 0)})
        if c.click_to_dial is not None and c.click_to_dial.kind == "ticket":
            return _Customer("unrecognised")  # the ticket is the target; no lookup needed
        return self.identify()

    def check_requester(self, choice: "_Choice") -> None:
        """Rule 7: a requested ticket of someone else is still used, with a notice."""
        if not choice.requested or choice.ticket is None:
            return
        requester, customer = choice.ticket.get("requester_id"), choice.customer
        if customer.user is not None and requester and customer.user["id"] != requester:
            self.notice(
                "ticket_user", "ticket_user_mismatch",
                "Requested ticket doesn't belong to this user",
            )  # fmt: skip
        elif customer.user is None and requester:
            choice.customer = _Customer("recognised", user={"id": int(requester)})

    def reuse_recent_ticket(self, choice: "_Choice") -> None:
        """Rule 8: a recent ticket of the recognised customer."""
        user = choice.customer.user
        if (
            choice.ticket is None
            and self.s.zendesk_ticket is None
            and not choice.transfer
            and user is not None
            and self.s.recent_ticket_timeout > 0
        ):
            choice.ticket = self.recent_ticket(user["id"])

    def decide_mode(self, choice: "_Choice") -> None:
        """Rules 6 and 10: several matches (or an unknown chat customer) mean agent mode."""
        c, customer = self.c, choice.customer
        if customer.status == "ambiguous" or (
            c.type == "chat" and customer.status != "recognised" and choice.ticket is None
        ):
            choice.mode = "agent"
        if customer.status == "ambiguous":
            self.notice(
                "multiple_matches", "multiple_matches",
                f"Several Zendesk users match {customer.search}: search for the customer and "
                "open the right profile",
            )  # fmt: skip
        if choice.mode == "agent":
            self.tell(Report(key="report:mode", mode="agent"))
            if self.s.zendesk_ticket == 0:
                self.notice(
                    "new_ticket", "new_ticket_requested", "The customer asked for a new ticket",
                    level="info",
                )  # fmt: skip
        if customer.user is not None:
            uid = customer.user["id"]
            self.tell(Report(key=f"report:user:{uid}", user_id=uid))

    def first_pops(self, choice: "_Choice") -> None:
        """Rules 9-10: what the agent should see first."""
        if choice.mode != "agent" and self.connected:
            return
        customer = choice.customer
        if choice.ticket is not None:
            self.pop("ticket", choice.ticket["id"])
        elif customer.user is not None:
            self.pop("user", customer.user["id"])
        elif customer.status == "ambiguous" and choice.mode == "agent":
            self.pop("search", query=customer.search)

    def during_contact(self, choice: "_Choice") -> int | None:
        """Rules 9-12: attach (and create) tickets, details notes, pause notes; the current
        ticket."""
        attached = self.attachments(choice.mode, choice.ticket, choice.customer)
        self.attach(attached, choice.customer)
        current = attached[-1] if attached else None
        self.pause_notes(current)
        return current

    def at_the_end(self, choice: "_Choice", current: int | None) -> None:
        """Rules 10 and 13: the forced ticket, then the end-of-contact comments."""
        if (
            current is None
            and choice.mode == "agent"
            and self.s.force_ticket_creation
            and self.may_create(choice.customer)
        ):
            current = self.create_ticket(choice.customer, None, origin="forced") or None
            if current is not None:
                self.attach([current], choice.customer)
                self.pause_notes(current)
        if current is not None:
            self.end_of_contact(current)

    def transfer_ticket(self, initial: str) -> TicketInfo | None:
        """Rule 5 and `workflow.transfer`: the initial contact's ticket, if the link may be
        followed; the link is shown to the tabs either way."""
        found = self.need(FindTransferTicket("lookup:transfer", initial))
        if isinstance(found, dict) and "id" in found:
            return found  # type: ignore[return-value]  # journaled by an older daemon
        link: TransferLink = found if found else {"ticket": None, "agent": None, "refused": None}
        ticket = link.get("ticket")
        if link.get("refused"):
            self.notice(
                "transfer", "transfer_not_trusted",
                f"The transfer's first contact {initial} was not followed: {link['refused']}",
            )  # fmt: skip
        elif ticket is None:
            self.notice(
                "transfer", "transfer_ticket_not_found", "No ticket was found related to transfer"
            )
        else:
            self.notice(
                "transfer_linked", "transfer_linked",
                f"Linked to ticket #{ticket['id']} of the transferred contact {initial}",
                level="info",
            )  # fmt: skip
            if link.get("agent") not in (None, self.agent.scope.agent):
                self.transferred_from = link["agent"]
        return ticket

    # -- rules -------------------------------------------------------------------------

    def report_warnings(self) -> None:
        reported: list[str] = []
        for key, value in self.journal.items():
            if key.startswith("report:warnings:") and isinstance(value, dict):
                reported.extend(value.get("warnings") or [])
        new = tuple(w for w in dict.fromkeys(self.warnings) if w not in reported)
        if new:
            self.tell(Report(key=f"report:warnings:{len(reported)}", warnings=new))

    def requested_ticket(self) -> tuple[TicketInfo | None, bool]:
        """The ticket the contact flow asked for, if it exists; True if one was asked for."""
        n = self.s.zendesk_ticket
        if n is None or n == 0:
            return None, False
        found: TicketInfo | None = self.need(FindTicket(f"lookup:ticket:{n}", n))
        if not found:
            self.notice(
                "ticket_not_found", "ticket_not_found", f"Requested ticket #{n} was not found"
            )
            return None, False
        return found, True

    def identify(self) -> _Customer:
        c, s = self.c, self.s
        if c.click_to_dial is not None and c.click_to_dial.kind == "user":
            uid = c.click_to_dial.id
            user: UserInfo | None = self.need(FindUser(f"lookup:user:{uid}", uid))
            if user:
                return _Customer("recognised", user=user)
        if s.zendesk_user is not None:
            uid = s.zendesk_user
            user = self.need(FindUser(f"lookup:user:{uid}", uid))
            if user:
                return _Customer("recognised", user=user)
            self.notice("user_not_found", "user_not_found", f"Zendesk user #{uid} was not found")
            if c.type == "chat":
                return _Customer("unrecognised", email=s.customer_email, name=s.customer_name)
            number = s.customer_number or cli_number(c)
            return _Customer("unrecognised" if number else "anonymous", number=number,
                             name=s.customer_name)  # fmt: skip
        if c.type == "chat":
            return self.identify_chat()
        number = s.customer_number or cli_number(c)
        if number is None:
            return _Customer("anonymous", name=s.customer_name)
        digits = search_digits(number, self.app.country_prefix)
        found: list[UserInfo] = self.need(FindUsersByPhone("lookup:users_by_phone", digits)) or []
        users = [
            u
            for u in found
            if not u.get("shared_phone_number") and u.get("role", "end-user") == "end-user"
        ]
        if len(users) > 1:
            exact = [u for u in users if normalise_phone(u.get("phone") or "") == number]
            users = exact if len(exact) == 1 else users
        if len(users) == 1:
            return _Customer("recognised", user=users[0], number=number)
        if len(users) > 1:
            return _Customer("ambiguous", number=number, search=f"role:end-user phone:*{digits}")
        return _Customer("unrecognised", number=number, name=s.customer_name)

    def identify_chat(self) -> _Customer:
        """By `customer_email`, then `customer_name`: one end user recognises, several ask the
        agent to search. Emails compare case-insensitively, names by Unicode case folding."""
        s = self.s
        lookups: tuple[tuple[Literal["email", "name"], str | None, Callable[[str], str]], ...] = (
            ("email", s.customer_email, str.lower),
            ("name", s.customer_name, str.casefold),
        )
        for field, value, fold in lookups:
            if not value:
                continue
            found: list[UserInfo] = (
                self.need(SearchUsers(f"lookup:users_by_{field}", field, value)) or []
            )
            users = [
                u
                for u in found
                if u.get("role", "end-user") == "end-user"
                and ((known := u.get(field)) is None or fold(known) == fold(value))
            ]
            if len(users) == 1:
                return _Customer("recognised", user=users[0])
            if len(users) > 1:
                return _Customer("ambiguous", search=value)
        return _Customer("unrecognised", email=s.customer_email, name=s.customer_name)

    def recent_ticket(self, user_id: int) -> TicketInfo | None:
        tickets: list[TicketInfo] = (
            self.need(FindRecentTickets(f"lookup:recent_tickets:{user_id}", user_id)) or []
        )
        times = [comments.valid_time(t) for t in self.c.event_times.values()]
        arrived = min((t for t in times if t is not None), default=self.c.created_at)
        cutoff = arrived - self.s.recent_ticket_timeout * 60
        fresh = [
            t
            for t in tickets
            if t.get("status") != "closed" and float(t.get("updated_at") or 0) >= cutoff
        ]
        if not fresh:
            return None
        return max(fresh, key=lambda t: (float(t.get("updated_at") or 0), t["id"]))

    # -- tickets -----------------------------------------------------------------------

    def may_create(self, customer: _Customer) -> bool:
        """Outbound calls to unknown numbers get no ticket unless `all_outbound`."""
        if self.c.direction == "outbound" and customer.status != "recognised":
            return self.s.all_outbound
        return True

    def attachments(self, mode: str, ticket: TicketInfo | None, customer: _Customer) -> list[int]:
        """The tickets the contact was attached to, in order (the last is the current one):
        commands the agent gave before the contact connected, the automatic choice at
        connection (auto mode, unless such a command already chose), later commands."""
        c = self.c
        connected_at = c.event_times.get("connected")
        ticket_cmds = [
            (i, cmd)
            for i, cmd in enumerate(c.commands)
            if cmd.name in ("create_ticket", "attach_to_current")
        ]
        before = [p for p in ticket_cmds if connected_at is None or p[1].at < connected_at]
        after = [p for p in ticket_cmds if p not in before]
        out: list[int] = []
        for i, cmd in before:
            out.append(self.command_ticket(i, cmd, customer))
        if mode == "auto" and self.connected and not out:
            if ticket is not None:
                out.append(ticket["id"])
            elif self.may_create(customer):
                out.append(self.create_ticket(customer, None, origin="auto"))
        for i, cmd in after:
            out.append(self.command_ticket(i, cmd, customer))
        return [t for t in out if t]

    def command_ticket(self, index: int, cmd: AgentCommand, customer: _Customer) -> int:
        """The ticket of the agent's `index`-th command: the one to attach, or the contact's
        one new ticket (created by this command, or earlier: then the agent is told)."""
        if cmd.name == "attach_to_current":
            return cmd.ticket_id or 0
        origin = f"command:{index}"
        if TICKET_CREATE in self.journal:
            created = self.journal[TICKET_CREATE]
            if not failed(created):
                if created.get("origin") != origin:
                    self.notice(
                        f"already_created:{index}", "ticket_already_created",
                        f"A ticket was already created for this contact: "
                        f"#{created['ticket_id']}",
                        level="info",
                    )  # fmt: skip
                return int(created["ticket_id"])
        return self.create_ticket(customer, cmd.user_id, origin=origin)

    def requester(self, customer: _Customer, user_id: int | None) -> tuple[int | None, str]:
        """Who a new ticket is for, creating the user when the rules say so."""
        c, s = self.c, self.s
        if user_id is not None:
            known = customer.user if customer.user and customer.user["id"] == user_id else None
            if known is None or "name" not in known:
                known = self.need(FindUser(f"lookup:user:{user_id}", user_id))
            return user_id, (known or {}).get("name") or f"user #{user_id}"
        if customer.user is not None:
            uid = customer.user["id"]
            user = customer.user
            if "name" not in user:
                user = self.need(FindUser(f"lookup:user:{uid}", uid)) or user
            return uid, user.get("name") or f"user #{uid}"
        if customer.status == "unrecognised" and (
            customer.number or (c.type == "chat" and (customer.email or customer.name))
        ):
            name = (
                s.customer_name
                or customer.name
                or (f"new user at {customer.number}" if customer.number else None)
                or customer.email
                or "new user"
            )
            created = self.need(
                CreateUser(
                    key=USER_CREATE,
                    name=name,
                    external_id=self.identity.external_id,
                    phone=customer.number if c.type == "voice" else None,
                    email=customer.email if c.type == "chat" else None,
                )
            )
            if not failed(created):
                self.tell(Report(key=f"report:user:{created['id']}", user_id=created["id"]))
                return int(created["id"]), str(created.get("name") or name)
            self.notice("user_create_failed", "user_create_failed",
                        f"Could not create the Zendesk user: {created['failed']}",
                        level="error")  # fmt: skip
        label = (
            customer.name
            or customer.number
            or customer.email
            or ("anonymous caller" if c.type == "voice" else "chat customer")
        )
        return self.agent.user_id, label

    def create_ticket(self, customer: _Customer, user_id: int | None, *, origin: str) -> int:
        """Create the contact's one new ticket (0 if Zendesk refused it for good); `origin`
        (auto, forced, command:N) is journaled with it."""
        c = self.c
        requester_id, name = self.requester(customer, user_id)
        if c.type == "chat":
            subject = f"Chat with {name}"
        elif c.direction == "outbound":
            subject = f"Outgoing call to {name}"
        else:
            subject = f"Incoming call from {name}"
        voice = c.type == "voice" and self.app.talk_partner
        if self.connected:
            body, attrs = self.details_body()
        else:
            body, attrs = subject, {}
        result = self.need(
            CreateTicket(
                key=TICKET_CREATE,
                subject=subject,
                body=comments.with_marker(body, self.identity, TICKET_CREATE),
                external_id=self.identity.external_id,
                idempotency_key=self.identity.idempotency_key(TICKET_CREATE),
                voice=voice,
                via_id=(VIA_OUTBOUND if c.direction == "outbound" else VIA_INBOUND)
                if voice
                else None,
                requester_id=requester_id,
                submitter_id=self.agent.user_id,
                assignee_id=self.agent.user_id,
                details=self.connected,
                attributes=attrs,
                origin=origin,
            )
        )
        if failed(result):
            self.notice("ticket_create_failed", "ticket_create_failed",
                        f"Could not create the ticket: {result['failed']}",
                        level="error")  # fmt: skip
            return 0
        return int(result["ticket_id"])

    # -- comments ----------------------------------------------------------------------

    def parties(self) -> tuple[str | None, str | None]:
        """(from, to) of the call as Zendesk shows it."""
        c = self.c
        customer = cli_number(c) or (c.customer_endpoint or None)
        if c.direction == "outbound":
            return self.app.default_dialed_number, customer
        return customer, self.s.dialed_number

    def shown_attributes(self) -> dict[str, str]:
        hidden = system_attributes(self.app)
        return {
            k: v for k, v in self.c.attributes.items() if k not in hidden and str(v).strip() != ""
        }

    def details_body(self) -> tuple[str, dict[str, str]]:
        call_from, call_to = self.parties()
        text = comments.details(
            self.app,
            self.c,
            download_recording=self.s.download_recording,
            call_from=call_from,
            call_to=call_to,
            with_call_parties=self.c.type == "voice" and not self.s.voice_comment,
            transferred_from=self.transferred_from,
        )
        attrs = self.shown_attributes()
        block = comments.attributes(attrs, compact=self.app.compact_attributes)
        return (f"{text}\n\n{block}" if block else text), attrs

    def written(self, ticket_id: int) -> tuple[bool, bool, dict[str, str]]:
        """(details written, analysis written, attribute values as last written) for a
        ticket, from the journal."""
        details = analysis = False
        attrs: dict[str, str] = {}
        keys = [TICKET_CREATE, f"comment:details:{ticket_id}", f"comment:end:{ticket_id}"]
        for key in keys:
            entry = self.journal.get(key)
            if not isinstance(entry, dict) or failed(entry):
                continue
            if entry.get("ticket_id") != ticket_id:
                continue
            details = details or bool(entry.get("details"))
            analysis = analysis or bool(entry.get("analysis"))
            attrs.update(entry.get("attributes") or {})
        return details, analysis, attrs

    def attach(self, attached: list[int], customer: _Customer) -> None:
        """For each attached ticket in order: tell the tabs, pop it, add the details note."""
        for idx, tid in enumerate(attached):
            self.tell(Report(key=f"report:ticket:{idx}:{tid}", ticket_id=tid))
            self.pop("ticket", tid)
            if not self.connected:
                continue
            details, _, _ = self.written(tid)
            if not details:
                key = f"comment:details:{tid}"
                body, attrs = self.details_body()
                self.need(
                    AddComment(
                        key=key,
                        ticket_id=tid,
                        body=comments.with_marker(body, self.identity, key),
                        marker=self.identity.marker(key),
                        details=True,
                        attributes=attrs,
                    )
                )
        if attached:
            self.update_phone(customer)

    def update_phone(self, customer: _Customer) -> None:
        c = self.c
        user = customer.user
        if c.type != "voice" or c.direction != "inbound" or user is None or "phone" not in user:
            return
        cli = cli_number(c)
        if cli is None or user.get("shared_phone_number"):
            return
        if normalise_phone(user.get("phone") or "") == cli:
            return
        uid = user["id"]
        self.need(UpdateUserPhone(key=f"user:phone:{uid}", user_id=uid, phone=cli))

    def pause_notes(self, current: int | None) -> None:
        c = self.c
        toggles = [cmd for cmd in c.commands if cmd.name in ("pause_recording", "resume_recording")]
        for n, cmd in enumerate(toggles):
            if not self.s.pause_recording:
                self.notice(
                    f"pause:{n}", "pause_not_enabled",
                    "Pausing the recording is not enabled for this contact",
                )  # fmt: skip
                continue
            paused = cmd.name == "pause_recording"
            refused = self.set_recording(n, paused)
            if current is None or not self.connected:
                continue
            key = f"comment:pause:{n}"
            body = comments.pause_note(paused, cmd.at, refused)
            self.need(
                AddComment(
                    key=key,
                    ticket_id=current,
                    body=comments.with_marker(body, self.identity, key),
                    marker=self.identity.marker(key),
                )
            )

    def set_recording(self, n: int, paused: bool) -> str | None:
        """The agent's n-th recording command, through Amazon Connect; why it was refused, or
        None when Connect confirmed it (and the tabs are told the confirmed state)."""
        c = self.c
        done = self.need(
            SetRecording(
                key=f"recording:{n}",
                paused=paused,
                contact_id=c.contact_id,
                initial_contact_id=c.initial_contact_id or c.contact_id,
            )
        )
        if not failed(done):
            self.tell(Report(key=f"recording:{n}:confirmed", recording_paused=paused))
            return None
        reason = str(done.get("message") or done.get("failed"))
        verb = "pause" if paused else "resume"
        self.notice(
            f"recording:{n}", "recording_failed",
            f"Amazon Connect did not {verb} the recording: {reason}", level="error",
        )  # fmt: skip
        return reason

    def end_of_contact(self, ticket_id: int) -> None:
        c, s, app = self.c, self.s, self.app
        _, analysed, written = self.written(ticket_id)
        parts: list[str] = []
        analysis_text = ""
        if s.speech_analysis and not analysed and c.type == "voice":
            analysis_text = comments.analysis(c.analysis, sorted(s.speech_analysis))
            if analysis_text:
                parts.append(analysis_text)
        changed = {k: v for k, v in self.shown_attributes().items() if written.get(k) != v}
        if changed:
            parts.append(comments.attributes(changed, compact=app.compact_attributes, changed=True))
        recording = comments.recording_url(app, c.contact_id) if c.type == "voice" else None
        uploads: tuple[str, ...] = ()
        if recording and app.upload_recordings:
            up = self.need(
                UploadRecording(
                    key="upload:recording", source_url=recording, file_name=f"{c.contact_id}.wav"
                )
            )
            if isinstance(up, dict) and up.get("token") and not failed(up):
                uploads = (str(up["token"]),)
                recording = str(up.get("content_url") or recording)
                parts.append("Call recording attached")
        if parts:
            key = f"comment:end:{ticket_id}"
            self.need(
                AddComment(
                    key=key,
                    ticket_id=ticket_id,
                    body=comments.with_marker("\n\n".join(parts), self.identity, key),
                    marker=self.identity.marker(key),
                    analysis=bool(analysis_text),
                    attributes=changed,
                    uploads=uploads,
                )
            )
        if c.type == "voice" and s.voice_comment:
            self.voice_comment(ticket_id, recording)
        if c.type == "chat" and s.chat_transcript and c.chat:
            key = "comment:transcript"
            body = comments.transcript(c.chat, c.agent_name or self.agent.name)
            self.need(
                AddComment(
                    key=key,
                    ticket_id=ticket_id,
                    body=comments.with_marker(body, self.identity, key),
                    marker=self.identity.marker(key),
                )
            )
        self.tell(Report(key="pop:end", pops=(PopRequest("ticket", ticket_id),)))

    def voice_comment(self, ticket_id: int, recording: str | None) -> None:
        c = self.c
        call_from, call_to = self.parties()
        started = _first_time(c.event_times.get("connected"), c.created_at) or 0.0
        ended = _first_time(c.event_times.get("ended"), c.finished_at) or started
        data: VoiceData = {
            "from": call_from or "anonymous",
            "to": call_to or "unknown",
            "started_at": comments.iso(started),
            "call_duration": round(min(max(0.0, ended - started), MAX_CALL_SECONDS)),
        }
        if recording:
            data["recording_url"] = recording
        if self.agent.user_id is not None:
            data["answered_by_id"] = self.agent.user_id
        key = "comment:voice"
        if self.app.talk_partner:
            self.need(AddVoiceComment(key=key, ticket_id=ticket_id, data=data))
            return
        text = comments.voice_text(
            {**data, "answered_by_name": c.agent_name or self.agent.name or ""}
        )
        self.need(
            AddComment(
                key=key,
                ticket_id=ticket_id,
                body=comments.with_marker(text, self.identity, key),
                marker=self.identity.marker(key),
            )
        )


def plan(
    app: AppSettings,
    agent: AgentInfo,
    contact: Contact,
    journal: Mapping[str, Any],
    now: float,
) -> Plan:
    """The steps to take next for one contact, from the journal of what was done.

    `now` is accepted for the shell's uniform call but no rule reads it: every time-dependent
    rule (the recent ticket timeout) measures against the contact's own times, so a plan made
    again later never reverses a decision made earlier.
    """
    del now
    planner = _Planner(app, agent, contact, journal)
    try:
        planner.run()
        finished = True
    except _Blocked:
        finished = False
    steps = tuple(planner.steps)
    return Plan(
        steps=steps,
        done=finished and not steps,
        waiting=not finished and planner.waiting and not steps,
        applies=planner.applies,
        failures=tuple(planner.failures),
    )
