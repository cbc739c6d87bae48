"""The workflow runner end to end: real sandbox over real HTTP, MemoryStore, fencing leases.

Exact counts of users, tickets and comments on the common paths; exactly-once across a
runner interrupted after any journal write and resumed by a fresh one; a stale lease refused
before any Zendesk write; injected 500s, timeouts and dropped answers; and the number of
Zendesk requests per contact on the three common paths (printed, bounded).
"""

import dataclasses
import time
from typing import Any

import pytest

from daemon.core.state import AgentCommand, ChatLine
from daemon.sandbox import FaultRule
from daemon.store.base import Lease
from daemon.store.memory import MemoryStore
from daemon.zendesk.runner import ATTEMPT, run_contact
from tests.zendesk_runner.conftest import AGENT, LANDING, T0, Rig, contact

VOICE_TICKETS = "/api/v2/channels/voice/tickets"
TICKET = "/api/v2/tickets/*"


def comments_of(rig: Rig, ticket_id: int) -> list[Any]:
    return list(rig.sandbox.tickets[ticket_id].comments)


def voice_comments(rig: Rig) -> int:
    return sum(c.type == "VoiceComment" for t in rig.tickets() for c in t.comments)


def marker_count(rig: Rig, key: str) -> int:
    return sum(f"/{key}" in c.body for t in rig.tickets() for c in t.comments)


def assert_one_call_recorded(rig: Rig) -> Any:
    """Exactly one ticket, one details note, one voice comment."""
    (ticket,) = rig.tickets()
    assert ticket.external_id == rig.identity().external_id
    details = [c for c in ticket.comments if c.body.startswith("Amazon Connect Contact Details")]
    assert len(details) == 1
    assert voice_comments(rig) == 1
    return ticket


# -- the common paths ------------------------------------------------------------------------


async def test_recognised_caller_auto_mode(rig: Rig) -> None:
    uid = rig.customer("Ann Caller", "+44 7700 900123")
    result = await rig.run(contact())
    assert (result.done, result.reason) == (True, "done")
    ticket = assert_one_call_recorded(rig)
    assert (ticket.requester_id, ticket.submitter_id, ticket.assignee_id) == (
        uid,
        rig.agent_id,
        rig.agent_id,
    )
    assert ticket.subject == "Incoming call from Ann Caller"
    assert ticket.via_channel == "voice"
    assert [c.public for c in ticket.comments] == [False, False]
    assert len(rig.end_users()) == 1
    voice = ticket.comments[-1].data or {}
    assert voice["call_duration"] == 42 and voice["answered_by_id"] == rig.agent_id
    # the tabs learnt the user and the ticket, and the agent was routed to it
    assert any(r.user_id == uid for r in rig.reports)
    assert any(r.ticket_id == ticket.id for r in rig.reports)
    *_, routed, last = rig.reports
    assert routed.pops[-1].id == ticket.id
    assert (last.status, last.pops, last.notices) == ("done", (), ())  # then it was done
    assert [r.status for r in rig.reports if r.status] == ["done"]
    assert rig.write_requests() == 2


async def test_unrecognised_caller_auto_mode(rig: Rig) -> None:
    result = await rig.run(contact(attributes={"customer_name": "Newt Caller"}))
    assert result.done
    (user,) = rig.end_users()
    assert (user.name, user.phone, user.external_id) == (
        "Newt Caller",
        "+447700900123",
        rig.identity().external_id,
    )
    ticket = assert_one_call_recorded(rig)
    assert ticket.requester_id == user.id


async def test_agent_mode_with_create_ticket_command(rig: Rig) -> None:
    uid = rig.customer("Ann Caller", "+447700900123")
    attrs = {"ticket_assignment": "agent"}
    first = await rig.run(contact(("incoming", "connected"), attributes=attrs))
    assert (first.done, first.reason) == (False, "waiting")
    assert rig.tickets() == [] and rig.reports[0].mode == "agent"
    assert [(p.target, p.id) for p in rig.reports[0].pops] == [("user", uid)]
    cmd = AgentCommand(name="create_ticket", at=T0 + 5, user_id=uid)
    second = await rig.run(contact(("incoming", "connected"), attributes=attrs, commands=[cmd]))
    assert second.reason == "waiting" and len(rig.tickets()) == 1
    done = await rig.run(contact(attributes=attrs, commands=[cmd]))
    assert done.done
    assert_one_call_recorded(rig)


async def test_agent_mode_forced_ticket_at_the_end(rig: Rig) -> None:
    rig.customer("Ann Caller", "+447700900123")
    result = await rig.run(contact(attributes={"ticket_assignment": "agent"}))
    assert result.done
    assert_one_call_recorded(rig)


async def test_chat_transcript(rig: Rig) -> None:
    rig.customer("Ann Chatter", None, email="ann@example.org")
    lines = [
        ChatLine(message_id="1", participant="system", text="Ann joined", sent_at=T0 + 1),
        ChatLine(message_id="2", participant="customer", text="Hello", sent_at=T0 + 2),
        ChatLine(message_id="3", participant="agent", text="Hi Ann", sent_at=T0 + 3),
    ]
    c = contact(type="chat", cli=None, chat=lines, attributes={"customer_email": "ann@example.org"})
    assert (await rig.run(c)).done
    (ticket,) = rig.tickets()
    assert ticket.subject == "Chat with Ann Chatter"
    assert [c.body.splitlines()[0] for c in ticket.comments] == [
        "Amazon Connect Contact Details",
        "Chat transcript",
    ]
    assert "Customer: Hello" in ticket.comments[1].body


async def test_transfer_uses_our_own_record(rig: Rig) -> None:
    rig.customer("Ann Caller", "+447700900123")
    assert (await rig.run(contact())).done
    (ticket,) = rig.tickets()
    second = contact(contact_id="c-2", initial_contact_id="c-1")
    assert (await rig.run(second)).done
    assert len(rig.tickets()) == 1
    assert voice_comments(rig) == 2  # one call each, on the same ticket
    assert rig.reports[-2].pops[-1].id == ticket.id and rig.reports[-1].status == "done"


async def test_transfer_from_another_agent_reaches_the_first_agents_ticket(rig: Rig) -> None:
    """A real transfer: agent A's contact c-0 ended, agent B's c-1 names it (trust rule)."""
    uid = rig.customer("Ann Caller", "+447700900123")
    assert (await rig.run(contact(contact_id="c-0"), agent="agent-a")).done
    (ticket,) = rig.tickets()
    second = contact(contact_id="c-1", initial_contact_id="c-0")
    second = dataclasses.replace(second, created_at=T0 + 50)  # after c-0 ended (T0 + 43)
    assert (await rig.run(second)).done
    assert rig.tickets() == [ticket] and voice_comments(rig) == 2
    assert any(r.ticket_id == ticket.id for r in rig.reports)
    assert ticket.requester_id == uid
    linked = [n for r in rig.reports for n in r.notices if n.code == "transfer_linked"]
    assert len(linked) == 1 and f"#{ticket.id}" in linked[0].text
    journal = await rig.store.journal_read(AGENT, "c-1")
    assert journal["lookup:transfer"]["agent"] == "agent-a"
    details = [c for c in ticket.comments if rig.identity("c-1").marker_prefix in c.body]
    assert len(details) == 1 and "Initial contact ID: c-0" in details[0].body
    assert "Transferred from agent: agent-a" in details[0].body


async def test_recent_ticket_is_reused(rig: Rig) -> None:
    rig.customer("Ann Caller", "+447700900123")
    assert (await rig.run(contact())).done
    again = contact(contact_id="c-2", attributes={"recent_ticket_timeout": "15"})
    # the sandbox clock says the first ticket was updated now; the contact arrives then too
    again = dataclasses.replace(
        again,
        created_at=rig.sandbox.now(),
        event_times={
            "incoming": rig.sandbox.now(),
            "connected": rig.sandbox.now() + 1,
            "ended": rig.sandbox.now() + 30,
        },
    )
    assert (await rig.run(again)).done
    assert len(rig.tickets()) == 1 and voice_comments(rig) == 2


# -- exactly once under interruption -----------------------------------------------------------


class Crash(Exception):
    """The process died here."""


class CrashingStore(MemoryStore):
    """Dies on the n-th journal write (an attempt record or a result)."""

    def __init__(self, base: MemoryStore, crash_at: int) -> None:
        self.__dict__.update(base.__dict__)
        self.crash_at = crash_at
        self.writes = 0

    async def journal_write(self, lease: Lease, contact: str, step: str, result: Any) -> bool:
        self.writes += 1
        if self.writes == self.crash_at:
            # an attempt record: dies before the request; a result: the write already
            # happened in Zendesk and only the record of it is lost
            raise Crash(step)
        return await super().journal_write(lease, contact, step, result)


@pytest.mark.parametrize("crash_at", range(1, 16))
async def test_interrupted_after_any_journal_write_and_resumed(rig: Rig, crash_at: int) -> None:
    rig.settings = rig.settings.model_copy(update={"country_prefix": "+44"})
    rig.customer("Ann Caller", "07700 900123")  # found via the prefix; the phone gets updated
    c = contact(
        attributes={"a": "1", "speech_analysis": "sentiment"}, analysis={"sentiment": "POSITIVE"}
    )
    crashing = CrashingStore(rig.store, crash_at)
    try:
        first = await rig.run(c, deps=rig.deps(store=crashing))
    except Crash:
        first = None
    rig.store.__dict__.update({k: v for k, v in crashing.__dict__.items() if k.startswith("_")})
    if first is None:
        rig.clock.now += 60  # the dead runner's lease runs out
    # A fresh runner on the same journal (after a replayed write, it waits until a lost
    # journal's writes could have landed: the fake clock jumps there).
    assert (await rig.finish(c))[-1].done
    assert_one_call_recorded(rig)
    assert marker_count(rig, "comment:end:" + str(rig.tickets()[0].id)) == 1
    assert len(rig.end_users()) == 1
    assert rig.sandbox.users[rig.end_users()[0].id].phone == "+447700900123"


async def test_unrecognised_interrupted_after_every_write(rig: Rig) -> None:
    """A fresh runner after each single step: exactly one user, ticket and voice comment."""
    c = contact()
    for n in range(1, 40):
        crashing = CrashingStore(rig.store, n)
        try:
            result = await rig.run(c, deps=rig.deps(store=crashing))
        except Crash:
            rig.store.__dict__.update(
                {k: v for k, v in crashing.__dict__.items() if k.startswith("_")}
            )
            rig.clock.now += 60
            continue
        assert result.done
        break
    assert len(rig.end_users()) == 1
    assert_one_call_recorded(rig)


# -- fencing ---------------------------------------------------------------------------------


async def test_stale_lease_never_reaches_zendesk(rig: Rig) -> None:
    rig.customer("Ann Caller", "+447700900123")
    c = contact()
    rig.contacts[(AGENT, c.contact_id)] = c
    old = await rig.lease(c.contact_id, ttl=5)
    rig.clock.now += 10  # the old holder was paused past its lease
    new = await rig.lease(c.contact_id)
    assert new.epoch > old.epoch
    deps = rig.deps()
    async with deps.client:
        result = await run_contact(deps, AGENT, c.contact_id, old)
    assert result.reason == "stale" and not result.done
    assert rig.write_requests() == 0 and rig.tickets() == []
    assert await rig.store.journal_read(AGENT, c.contact_id) == {}


class ExpiringStore(MemoryStore):
    """The lease runs out right after the attempt is recorded, before the Zendesk write."""

    def __init__(self, base: MemoryStore, clock: Any) -> None:
        self.__dict__.update(base.__dict__)
        self.clock = clock

    async def journal_write(self, lease: Lease, contact: str, step: str, result: Any) -> bool:
        ok = await super().journal_write(lease, contact, step, result)
        if step.startswith(ATTEMPT):
            self.clock.now += 3600
        return ok


async def test_lease_lost_between_attempt_and_write_is_refused(rig: Rig) -> None:
    rig.customer("Ann Caller", "+447700900123")
    result = await rig.run(contact(), deps=rig.deps(store=ExpiringStore(rig.store, rig.clock)))
    assert result.reason == "stale"
    assert rig.write_requests() == 0


# -- faults ----------------------------------------------------------------------------------


async def test_server_errors_are_retried_into_one_ticket(rig: Rig) -> None:
    rig.customer("Ann Caller", "+447700900123")
    rig.sandbox.faults.add(
        [
            FaultRule(kind="error", method="POST", path=VOICE_TICKETS, status=500, count=2),
            FaultRule(kind="error", method="PUT", path=TICKET, status=503, count=2),
        ]
    )
    assert (await rig.run(contact())).done
    assert rig.sandbox.faults.rules == []  # every injected fault fired
    assert_one_call_recorded(rig)


async def test_timeouts_end_with_one_ticket_and_one_voice_comment(rig: Rig) -> None:
    rig.customer("Ann Caller", "+447700900123")
    rig.sandbox.faults.add(
        [
            FaultRule(kind="timeout", method="POST", path=VOICE_TICKETS, seconds=0.6),
            FaultRule(kind="timeout", method="PUT", path=TICKET, seconds=0.6),
        ]
    )
    # The sandbox finishes each held request after the client gave up on it (as Zendesk
    # does): the runner must wait until it can no longer land, then check, not resend.
    deps = rig.deps(client=rig.client(timeout=0.3))
    deps.clock, deps.landing_seconds = time.time, 1.5
    results = await rig.finish(contact(), deps=deps)
    assert {r.reason for r in results[:-1]} <= {"error", "backoff"}
    assert len(results) >= 2 and results[-1].done
    assert rig.sandbox.faults.rules == []
    # Each held request landed before its deadline: found, not sent again.
    assert rig.sandbox.request_count("POST", VOICE_TICKETS) == 1
    assert rig.sandbox.request_count("PUT", "/api/v2/tickets/{ticket_id}") == 1
    assert_one_call_recorded(rig)


@pytest.mark.parametrize("path", [VOICE_TICKETS, TICKET, "/api/v2/users"])
async def test_dropped_answers_after_the_write(rig: Rig, path: str) -> None:
    rig.sandbox.faults.add([FaultRule(kind="drop_after_write", method="*", path=path, count=3)])
    assert (await rig.finish(contact()))[-1].done
    assert rig.sandbox.faults.rules == []
    assert len(rig.end_users()) == 1
    assert_one_call_recorded(rig)


async def test_a_step_that_keeps_failing_stops_the_run_and_the_next_run_finishes(rig: Rig) -> None:
    rig.customer("Ann Caller", "+447700900123")
    rig.sandbox.faults.add(
        [
            FaultRule(kind="drop_after_write", method="PUT", path=TICKET, count=None),
            # the client's own "did it land?" check fails too: only the journal can tell
            FaultRule(kind="error", method="GET", path=TICKET + "/comments", count=None),
        ]
    )
    deps = rig.deps(client=rig.client(max_attempts=1))
    first = await rig.run(contact(), deps=deps)
    assert (first.done, first.reason) == (False, "error")
    assert voice_comments(rig) == 1  # it landed; only the answer was lost
    journal = await rig.store.journal_read(AGENT, "c-1")
    assert ATTEMPT + "comment:voice" in journal and "comment:voice" not in journal
    rig.sandbox.faults.clear()
    assert first.retry_at is not None and first.retry_at >= rig.clock.now + LANDING
    assert (await rig.run(contact())).reason == "backoff"  # not before its next attempt
    assert rig.write_requests() == 2
    assert (await rig.finish(contact()))[-1].done
    assert_one_call_recorded(rig)


async def test_transcript_once_despite_dropped_answers(rig: Rig) -> None:
    rig.customer("Ann Chatter", None, email="ann@example.org")
    lines = [ChatLine(message_id="1", participant="customer", text="Hello", sent_at=T0)]
    c = contact(type="chat", cli=None, chat=lines, attributes={"customer_email": "ann@example.org"})
    rig.sandbox.faults.add([FaultRule(kind="drop_after_write", path=TICKET, count=None)])
    first = await rig.run(c, deps=rig.deps(client=rig.client(max_attempts=1)))
    assert not first.done
    rig.sandbox.faults.clear()
    assert (await rig.finish(c))[-1].done
    assert marker_count(rig, "comment:transcript") == 1


async def test_a_refused_write_is_reported_not_retried_forever(rig: Rig) -> None:
    rig.customer("Ann Caller", "+447700900123")
    rig.sandbox.faults.add(
        [FaultRule(kind="error", method="POST", path=VOICE_TICKETS, status=422, count=None)]
    )
    result = await rig.run(contact())
    assert result.done and rig.tickets() == []
    codes = [n.code for r in rig.reports for n in r.notices]
    assert "ticket_create_failed" in codes


# -- request counts ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("path", "bound"),
    [("recognised/auto", 3), ("unrecognised/auto", 4), ("agent mode", 3)],
)
async def test_requests_per_contact(rig: Rig, path: str, bound: int) -> None:
    attrs: dict[str, str] = {}
    if path != "unrecognised/auto":
        rig.customer("Ann Caller", "+447700900123")
    if path == "agent mode":
        attrs = {"ticket_assignment": "agent"}
    before = rig.requests()
    assert (await rig.run(contact(attributes=attrs))).done
    used = rig.requests() - before
    print(f"\nZendesk requests for one contact, {path}: {used}")
    print(dict(rig.sandbox.requests))
    assert used <= bound
