"""A pure, in-memory stand-in for Zendesk that executes workflow steps, and a driver.

No I/O and no mocks: `World.execute(step)` answers a step the way the runner would after
talking to Zendesk, and `drive` plays the runner's loop (plan, execute, journal, plan again)
so the policy can be tested end to end in microseconds. The few tests at the bottom check the
world itself behaves like the sandbox where the policy depends on it.
"""

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from daemon.core.events import NoticeRequest, PopRequest
from daemon.core.settings import AppSettings, normalise_phone
from daemon.core.state import AgentCommand, ChatLine, Contact
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
    Plan,
    Report,
    SearchUsers,
    SetRecording,
    Step,
    UpdateUserPhone,
    UploadRecording,
    current_ticket,
    plan,
    record,
)

AGENT = AgentInfo(user_id=900, name="Agnes Agent")
T0 = 1_700_000_000.0  # the contact arrives


@dataclass
class World:
    """Users, tickets and comments, plus everything the workflow told the tabs."""

    users: dict[int, dict[str, Any]] = field(default_factory=dict)
    tickets: dict[int, dict[str, Any]] = field(default_factory=dict)
    writes: list[Step] = field(default_factory=list)
    reads: list[Step] = field(default_factory=list)
    reports: list[Report] = field(default_factory=list)
    journals: dict[str, dict[str, Any]] = field(default_factory=dict)  # other contacts
    fail: dict[str, dict[str, Any]] = field(default_factory=dict)  # step key -> failure
    untrusted: str | None = None  # the trust rule refuses every transfer, saying this
    recordings: list[tuple[str, bool]] = field(default_factory=list)  # Amazon Connect's calls
    connect_refuses: str | None = None  # Amazon Connect refuses recording changes, saying this
    next_id: int = 1000

    # -- building ----------------------------------------------------------------------

    def user(self, name: str, phone: str | None = None, **extra: Any) -> int:
        self.next_id += 1
        self.users[self.next_id] = {
            "id": self.next_id,
            "name": name,
            "phone": phone,
            "email": extra.pop("email", None),
            "role": extra.pop("role", "end-user"),
            "shared_phone_number": extra.pop("shared", False),
            **extra,
        }
        return self.next_id

    def ticket(
        self,
        requester: int,
        *,
        status: str = "open",
        updated_at: float = T0,
        external_id: str | None = None,
    ) -> int:
        self.next_id += 1
        self.tickets[self.next_id] = {
            "id": self.next_id,
            "requester_id": requester,
            "status": status,
            "updated_at": updated_at,
            "external_id": external_id,
            "comments": [],
        }
        return self.next_id

    # -- looking -----------------------------------------------------------------------

    def info(self, tid: int) -> dict[str, Any]:
        t = self.tickets[tid]
        return {k: t[k] for k in ("id", "requester_id", "status", "updated_at", "external_id")}

    def uinfo(self, uid: int) -> dict[str, Any]:
        u = self.users[uid]
        return {k: u[k] for k in ("id", "name", "phone", "email", "role", "shared_phone_number")}

    def created_tickets(self) -> list[CreateTicket]:
        return [w for w in self.writes if isinstance(w, CreateTicket)]

    def created_users(self) -> list[CreateUser]:
        return [w for w in self.writes if isinstance(w, CreateUser)]

    def comments(self, tid: int) -> list[dict[str, Any]]:
        return list(self.tickets[tid]["comments"])

    def notices(self) -> list[NoticeRequest]:
        return [n for r in self.reports for n in r.notices]

    def notice_codes(self) -> list[str]:
        return [n.code for n in self.notices()]

    def pops(self) -> list[PopRequest]:
        return [p for r in self.reports for p in r.pops]

    def modes(self) -> list[str]:
        return [r.mode for r in self.reports if r.mode]

    def reported_tickets(self) -> list[int]:
        return [r.ticket_id for r in self.reports if r.ticket_id is not None]

    def reported_users(self) -> list[int]:
        return [r.user_id for r in self.reports if r.user_id is not None]

    def warnings(self) -> list[str]:
        return [w for r in self.reports for w in r.warnings]

    # -- executing ---------------------------------------------------------------------

    def execute(self, step: Step) -> Any:
        if step.key in self.fail:
            (self.writes if step.zendesk_write else self.reads).append(step)
            return self.fail[step.key]
        match step:
            case Report():
                self.reports.append(step)
                return None
            case FindUser(user_id=uid):
                self.reads.append(step)
                return self.uinfo(uid) if uid in self.users else None
            case FindUsersByPhone(digits=digits):
                self.reads.append(step)
                return [
                    self.uinfo(u["id"])
                    for u in self.users.values()
                    if u["role"] == "end-user"
                    and (normalise_phone(u["phone"] or "") or "x").endswith(digits)
                ]
            case SearchUsers(field=fld, query=query):
                self.reads.append(step)
                q = query.lower()
                return [
                    self.uinfo(u["id"])
                    for u in self.users.values()
                    if (fld == "email" and (u["email"] or "").lower() == q)
                    or (fld == "name" and q in u["name"].lower())  # fuzzy, like Zendesk
                ]
            case FindTicket(ticket_id=tid):
                self.reads.append(step)
                return self.info(tid) if tid in self.tickets else None
            case FindTransferTicket(initial_contact_id=initial):
                # The runner's lookup after the trust rule (tested with the real runner).
                self.reads.append(step)
                if self.untrusted is not None:
                    return {"ticket": None, "agent": "agent-a", "refused": self.untrusted}
                own = current_ticket(self.journals.get(initial, {}))
                external_id = AGENT.scope.of(initial).external_id
                found = [t["id"] for t in self.tickets.values() if t["external_id"] == external_id]
                candidates = [own] if own is not None and own in self.tickets else found
                ticket = self.info(candidates[0]) if candidates else None
                return {"ticket": ticket, "agent": "agent-a", "refused": None}
            case FindRecentTickets(user_id=uid):
                self.reads.append(step)
                return [
                    self.info(t["id"]) for t in self.tickets.values() if t["requester_id"] == uid
                ]
            case CreateUser():
                self.writes.append(step)
                uid = self.user(step.name, step.phone, email=step.email)
                return self.uinfo(uid)
            case CreateTicket():
                self.writes.append(step)
                tid = self.ticket(
                    step.requester_id or 0, status="open", external_id=step.external_id
                )
                t = self.tickets[tid]
                t.update(
                    subject=step.subject,
                    via_id=step.via_id,
                    voice=step.voice,
                    submitter_id=step.submitter_id,
                    assignee_id=step.assignee_id,
                )
                t["comments"].append({"kind": "text", "body": step.body, "key": step.key})
                return self.info(tid)
            case AddComment():
                self.writes.append(step)
                self.tickets[step.ticket_id]["comments"].append(
                    {"kind": "text", "body": step.body, "key": step.key, "uploads": step.uploads}
                )
                return {"ticket_id": step.ticket_id}
            case AddVoiceComment():
                self.writes.append(step)
                self.tickets[step.ticket_id]["comments"].append(
                    {"kind": "voice", "data": dict(step.data), "key": step.key}
                )
                return {"ticket_id": step.ticket_id}
            case UpdateUserPhone():
                self.writes.append(step)
                self.users[step.user_id]["phone"] = step.phone
                return self.uinfo(step.user_id)
            case UploadRecording():
                self.writes.append(step)
                return {"token": "tok-1", "content_url": "https://z/attachments/rec.wav"}
            case SetRecording():
                self.recordings.append((step.contact_id, step.paused))
                if self.connect_refuses is not None:
                    return {"failed": "access_denied", "message": self.connect_refuses}
                return {"confirmed": True}
        raise AssertionError(f"unknown step {step!r}")


def contact(
    events: Iterable[str] = ("incoming", "connected", "ended"),
    *,
    cli: str | None = "+44 7700 900123",
    attributes: Mapping[str, str] | None = None,
    type: str = "voice",
    direction: str = "inbound",
    contact_id: str = "c-1",
    commands: Iterable[AgentCommand] = (),
    chat: Iterable[ChatLine] = (),
    **extra: Any,
) -> Contact:
    """A contact that went through `events`, one second apart from T0 (ended 60 s after
    connecting)."""
    seen = list(events)
    times: dict[str, float] = {}
    for i, event in enumerate(seen):
        times[event] = T0 + i
    if "connected" in times and "ended" in times:
        times["ended"] = times["connected"] + 60
    order = [
        "incoming",
        "connecting",
        "accepted",
        "connected",
        "missed",
        "ended",
        "acw",
        "destroyed",
    ]
    state = max(seen, key=order.index) if seen else "incoming"
    return Contact.from_dict(
        {
            "contact_id": contact_id,
            "type": type,
            "direction": direction,
            "state": state,
            "events_seen": seen,
            "event_times": times,
            "customer_endpoint": cli,
            "attributes": dict(attributes or {}),
            "queue": "Support",
            "agent_name": "Agnes Agent",
            "routing_profile": "Basic",
            "commands": list(commands),
            "chat": list(chat),
            "created_at": T0,
            "finished_at": times.get("ended"),
            **extra,
        }
    )


def cmd(name: str, at: float, **kw: Any) -> AgentCommand:
    return AgentCommand(name=name, at=at, **kw)


def drive(
    world: World,
    c: Contact,
    *,
    app: AppSettings | None = None,
    agent: AgentInfo = AGENT,
    journal: dict[str, Any] | None = None,
    max_steps: int = 200,
    stop_after: int | None = None,
) -> tuple[Plan, dict[str, Any]]:
    """Play the runner: execute the first planned step, journal it, plan again, until the
    plan has nothing to run (or `stop_after` steps: an interrupted runner). Returns the last
    plan and the journal."""
    app = app or AppSettings(
        instance_url="https://acme.my.connect.aws", default_dialed_number="+441632960000"
    )
    journal = {} if journal is None else journal
    for n in range(max_steps):
        p = plan(app, agent, c, journal, T0 + 3600)
        if not p.steps or n == stop_after:
            return p, journal
        keys = [s.key for s in p.steps]
        assert len(keys) == len(set(keys)), f"duplicate keys in one plan: {keys}"
        step = p.steps[0]
        assert step.key not in journal, f"{step.key} planned again after being journaled"
        journal[step.key] = record(step, world.execute(step))
    raise AssertionError("the plan did not converge")


def test_world_phone_search_matches_the_end_of_the_number() -> None:
    world = World()
    uid = world.user("Ann", "+44 7700 900123")
    found = world.execute(FindUsersByPhone("k", "7700900123"))
    assert [u["id"] for u in found] == [uid]
    assert world.execute(FindUsersByPhone("k2", "1111")) == []


def test_world_name_search_is_fuzzy_like_zendesk() -> None:
    world = World()
    world.user("Ann Smith")
    world.user("Ann Smithers")
    assert len(world.execute(SearchUsers("k", "name", "ann smith"))) == 2
