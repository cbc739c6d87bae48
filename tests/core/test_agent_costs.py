"""The agent core's cost model and bounds (DESIGN.md invariant 7).

An event costs what it touches: a duplicate is decided without a copy, a change replaces only
the contact it concerns and shares the rest, and the indexes the core keeps for time agree
with a rebuild from scratch. Every per-agent quantity has a bound with a typed refusal that
changes nothing.
"""

from dataclasses import replace

import orjson
import pytest
from hypothesis import given
from hypothesis import strategies as st

from daemon.core.agent import absorbs, next_deadline
from daemon.core.effects import Outcome, Publish, WakeWorkflow
from daemon.core.events import ChatReported, ContactReported, Context, Rules
from daemon.core.state import (
    FILLED_FIELDS,
    REPORTED_FIELDS,
    VIEW_FIELDS,
    Contact,
)
from daemon.core.views import contact_view, contact_wire
from protocol.errors import ErrorCode
from protocol.messages import (
    ChatMessage,
    ContactEvent,
    ContactMessage,
    ContactSnapshot,
    ContactView,
    Forget,
)
from tests.core.test_agent import Harness, contact_pubs, of_type

N1 = "n1"


def with_history(finished: int, rules: Rules | None = None) -> tuple[Harness, list[str]]:
    """An agent with three tabs and `finished` retained finished contacts."""
    h = Harness(rules)
    tabs = [h.new_tab() for _ in range(3)]
    for n in range(finished):
        h.report(tabs[0], "connected", f"old-{n}", at=1000 + n * 0.01)
        h.report(tabs[0], "ended", f"old-{n}")
    return h, tabs


def assert_indexes_match_a_rebuild(h: Harness) -> None:
    """What the harness's commits stored decodes to its state, indexes and order included."""
    state, rebuilt = h.state, h.stored.load()
    assert rebuilt == state
    assert list(rebuilt.contacts) == list(state.contacts)
    assert dict(rebuilt.order) == dict(state.order)
    assert dict(rebuilt.open_ids) == dict(state.open_ids)
    assert list(rebuilt.open_ids) == list(state.open_ids)  # creation order
    assert dict(rebuilt.finish_order) == dict(state.finish_order)
    assert {k: v for k, v in rebuilt.owned.items() if v} == dict(state.owned)
    assert rebuilt.contact_bytes == state.contact_bytes


# -- cost ----------------------------------------------------------------------------------------


def repeat(h: Harness, tab_id: str, event: ContactReported) -> Outcome:
    """The very report object again, from `tab_id` (the shell decodes identical frames once)."""
    return h.apply(ContactReported(tab_id=tab_id, report=event.report))


def test_the_same_report_from_another_tab_is_absorbed_without_folding_it() -> None:
    h, tabs = with_history(5)
    h.report(tabs[0], "connected", "c1", attributes={"a": "1"})
    first = ContactReported(tab_id=tabs[0], report=h.state.absorbed[0][0])
    assert first.report is not None and first.report.contact.contact_id == "c1"
    ctx = Context(now=h.now, live_nodes=h.nodes)
    assert absorbs(h.state, replace(first, tab_id=tabs[1]), ctx, h.rules)
    before = h.state
    out = repeat(h, tabs[1], first)
    assert out.state is before and not out.changed and out.effects == ()
    # Not for a tab the state does not know, and not once time has work to do.
    assert not absorbs(h.state, replace(first, tab_id="nobody"), ctx, h.rules)
    late = Context(now=h.now + h.rules.finished_retention_seconds + 1, live_nodes=h.nodes)
    assert not absorbs(h.state, replace(first, tab_id=tabs[1]), late, h.rules)


def test_a_report_is_no_longer_absorbed_once_its_contact_changed_since() -> None:
    """A later report overwrote an attribute the first one set: the first, sent again by
    another tab, sets it back (the last report wins), so the state does not absorb it."""
    h, tabs = with_history(0)
    first = ContactEvent(
        event="connected", contact=ContactSnapshot(contact_id="c1", attributes={"a": "1"})
    )
    h.apply(ContactReported(tab_id=tabs[0], report=first))
    h.report(tabs[0], "connected", "c1", attributes={"a": "2"})
    again = ContactReported(tab_id=tabs[1], report=first)
    assert not absorbs(h.state, again, Context(now=h.now, live_nodes=h.nodes), h.rules)
    out = h.apply(again)
    assert out.changed and h.state.contacts["c1"].attributes == {"a": "1"}


def test_a_repeated_report_from_a_media_tab_is_still_refused() -> None:
    h, tabs = with_history(0)
    media = h.new_tab(role="media")
    h.report(tabs[0], "connected", "c1")
    first = ContactReported(tab_id=tabs[0], report=h.state.absorbed[0][0])
    out = repeat(h, media, first)
    assert out.refusal is not None and out.refusal.code == ErrorCode.WRONG_ROLE


def test_a_report_that_left_its_contact_without_owner_is_not_absorbed() -> None:
    """Folded by a tab that is not live, a released contact stays without owner; the same
    report from a live tab then elects that tab, so the state did not absorb it."""
    h = Harness(Rules(failover=False, grace_seconds=0.0), nodes=(N1,))
    owner, live = h.new_tab(), h.new_tab()
    gone = h.new_tab(node="n9")  # its node is not in the live set
    h.report(owner, "incoming", "c1")
    h.close(owner, at=1000 + h.rules.node_timeout_seconds + 1)  # released: no failover
    assert h.state.contacts["c1"].owner_tab is None
    report = ContactEvent(event="connected", contact=ContactSnapshot(contact_id="c1"))
    h.apply(ContactReported(tab_id=gone, report=report))
    assert h.state.contacts["c1"].state == "connected"
    assert h.state.contacts["c1"].owner_tab is None
    out = h.apply(ContactReported(tab_id=live, report=report))
    assert out.changed and h.state.contacts["c1"].owner_tab == live


def test_a_duplicate_report_is_decided_without_a_copy() -> None:
    h, tabs = with_history(20)
    h.report(tabs[0], "connected", "c1", attributes={"a": "1"})
    before = h.state
    for tab in tabs[1:]:
        out = h.report(tab, "connected", "c1", attributes={"a": "1"})
        assert out.state is before and not out.changed and out.effects == ()
        assert out.touched == ()


def test_an_event_replaces_only_what_it_touches() -> None:
    h, tabs = with_history(200)
    h.report(tabs[0], "incoming", "c1")
    before = h.state
    out = h.report(tabs[1], "connected", "c1")
    after = out.state
    assert out.touched == ("c1",)
    assert after.tabs is before.tabs  # no tab changed: the map itself is shared
    shared = [cid for cid in before.contacts if after.contacts[cid] is before.contacts[cid]]
    assert shared == [cid for cid in before.contacts if cid != "c1"]
    # Their encodings are reused as they are, not recomputed.
    assert all(after.contacts[cid].packed() is before.contacts[cid].packed() for cid in shared)
    assert [v.state for v in contact_pubs(out)] == ["connected"]
    assert_indexes_match_a_rebuild(h)


def test_a_commit_writes_the_head_and_the_touched_contacts_only() -> None:
    """What a commit writes does not grow with the retained history."""
    sizes = []
    for history in (0, 200):
        h, tabs = with_history(history)
        h.report(tabs[0], "incoming", "c1")
        out = h.report(tabs[1], "connected", "c1")
        write = out.state.write(out.touched)
        assert list(write.put) == ["c1"] and not write.dropped
        sizes.append(write.size)
    assert abs(sizes[1] - sizes[0]) <= 8, sizes  # the order key's few bytes at most


def test_a_contact_event_alone_does_not_republish_the_media_view() -> None:
    h, tabs = with_history(0)
    h.report(tabs[0], "incoming", "c1")
    out = h.report(tabs[0], "incoming", "c1", attributes={"x": "y"})
    # Attributes are not in the tab view: the workflow is woken, no tab is told anything.
    assert out.changed and out.effects == (WakeWorkflow("c1"),)
    # A voice call connecting changes the media view's active contact: that one is published.
    out = h.report(tabs[0], "connected", "c1")
    names = [type(e.message).__name__ for e in out.effects if isinstance(e, Publish)]
    assert names == ["ContactMessage", "Media"]


def test_indexes_follow_pruning_failover_and_closing() -> None:
    h, tabs = with_history(5, Rules(finished_retention_seconds=100, grace_seconds=10))
    h.report(tabs[1], "connected", "c1", at=1050)
    h.close(tabs[0], at=1051)  # owns the five finished contacts: they enter grace
    assert_indexes_match_a_rebuild(h)
    h.tick(1062)  # grace over: they fail over to tabs[1]
    assert {c.owner_tab for c in h.state.contacts.values()} == {tabs[1]}
    assert_indexes_match_a_rebuild(h)
    out = h.tick(1101)  # the finished ones are pruned
    assert set(h.state.contacts) == {"c1"}
    assert [f.message.contact_ids for f in of_type(out, Forget)] == [
        tuple(f"old-{n}" for n in range(5))
    ]
    write = out.state.write(out.touched)  # the pruned ones are dropped from the store
    assert sorted(write.dropped) == [f"old-{n}" for n in range(5)] and not write.put
    assert_indexes_match_a_rebuild(h)
    h.report(tabs[1], "incoming", "c2", at=1102)  # after the drops, still in creation order
    assert list(h.stored.load().contacts) == ["c1", "c2"]


def test_fields_are_declared_once_and_match_the_wire() -> None:
    assert set(VIEW_FIELDS) == set(ContactView.model_fields)
    assert set(REPORTED_FIELDS + FILLED_FIELDS) <= set(ContactSnapshot.model_fields)
    h, tabs = with_history(0)
    h.report(tabs[0], "connected", "c1", queue="Support", customer_endpoint="+4420")
    view = contact_view(h.state.contacts["c1"])
    # Built without validation, it is what validation would have built.
    assert ContactView.model_validate(view.model_dump()) == view
    assert view.queue == "Support" and view.customer_endpoint == "+4420"


def test_a_contact_round_trips_through_its_own_bytes() -> None:
    h, tabs = with_history(0)
    h.report(
        tabs[0], "connected", "c1", attributes={"a": "1"}, click_to_dial={"kind": "user", "id": 7}
    )
    h.command(tabs[0], "pause_recording", 1)
    contact = h.state.contacts["c1"]
    assert Contact.from_dict(contact.to_dict()) == contact
    assert_indexes_match_a_rebuild(h)


# -- bounds --------------------------------------------------------------------------------------


def test_open_contacts_are_bounded_per_agent() -> None:
    h = Harness(Rules(max_open_contacts=2))
    t1 = h.new_tab()
    h.report(t1, "incoming", "c1")
    h.report(t1, "incoming", "c2")
    before = h.state
    out = h.report(t1, "incoming", "c3")
    assert out.refusal is not None and out.refusal.code == ErrorCode.TOO_MANY_CONTACTS
    assert h.state is before and "c3" not in h.state.contacts
    assert h.report(t1, "connected", "c2").refusal is None  # known contacts still progress
    h.report(t1, "ended", "c1")  # a finished contact no longer counts
    assert h.report(t1, "incoming", "c3").refusal is None


def test_tabs_are_bounded_and_closed_tabs_that_own_nothing_make_room() -> None:
    h = Harness(Rules(max_tabs=2, grace_seconds=30))
    t1, t2 = h.new_tab(), h.new_tab()
    refused = h.open()
    assert refused.refusal is not None and refused.refusal.code == ErrorCode.TOO_MANY_TABS
    h.report(t1, "connected", "c1")
    h.close(t1)  # owns c1 (in grace): it is kept for its reload
    assert h.open().refusal is not None
    h.close(t2)  # owns nothing: forgotten to make room
    t3 = h.new_tab()
    assert set(h.state.tabs) == {t1, t3}
    # A reload of a known tab is never refused.
    assert h.open(t1).refusal is None


def test_attributes_are_bounded_across_reports() -> None:
    h = Harness(Rules(max_attributes=3))
    t1 = h.new_tab()
    h.report(t1, "incoming", "c1", attributes={"a": "1", "b": "2"})
    h.report(t1, "connected", "c1", attributes={"c": "3"})
    before = h.state
    out = h.report(t1, "ended", "c1", attributes={"d": "4"})
    assert out.refusal is not None and out.refusal.code == ErrorCode.TOO_MANY_ATTRIBUTES
    assert h.state is before
    # At the bound, known attributes may still change.
    assert h.report(t1, "ended", "c1", attributes={"a": "9"}).refusal is None
    assert dict(h.state.contacts["c1"].attributes) == {"a": "9", "b": "2", "c": "3"}


def test_chat_lines_are_bounded_per_contact() -> None:
    h = Harness(Rules(max_chat_lines=2))
    t1 = h.new_tab()
    h.report(t1, "connected", "chat-1", type="chat")

    def line(mid: str) -> ChatReported:
        msg = ChatMessage(contact_id="chat-1", message_id=mid, participant="customer", text="x")
        return ChatReported(tab_id=t1, message=msg)

    assert h.apply(line("m1")).refusal is None
    assert h.apply(line("m2")).refusal is None
    out = h.apply(line("m3"))
    assert out.refusal is not None and out.refusal.code == ErrorCode.TOO_MANY_CHAT_LINES
    assert not h.apply(line("m2")).changed  # a repeat is still just a repeat
    assert [c.message_id for c in h.state.contacts["chat-1"].chat] == ["m1", "m2"]


def test_state_bytes_are_bounded_and_only_growth_is_refused() -> None:
    h = Harness(Rules(max_state_bytes=6000))
    t1 = h.new_tab()
    big = "x" * 900
    refused = None
    for n in range(20):
        out = h.report(t1, "incoming", f"c{n}", attributes={"note": big})
        if out.refusal is not None:
            refused = out.refusal
            break
    assert refused is not None and refused.code == ErrorCode.STATE_TOO_LARGE
    assert h.state.contact_bytes <= 6000
    # What does not grow the state still happens: a finish, a close.
    assert h.report(t1, "ended", "c0").refusal is None
    assert h.close(t1).refusal is None


def test_an_open_contact_quiet_for_too_long_is_dropped() -> None:
    h = Harness(Rules(idle_contact_seconds=100, finished_retention_seconds=50))
    t1 = h.new_tab()
    h.report(t1, "connected", "c1", at=1000)
    h.report(t1, "connected", "c1", attributes={"a": "1"}, at=1040)  # news: still active
    h.report(t1, "connected", "c1", attributes={"a": "1"}, at=1080)  # a repeat is not news
    assert next_deadline(h.state, h.rules) == 1140
    h.tick(1139)
    assert "c1" in h.state.contacts
    out = h.tick(1140)
    assert "c1" not in h.state.contacts and "c1" in h.state.forgotten
    assert [f.message.contact_ids for f in of_type(out, Forget)] == [("c1",)]
    # A late report of the abandoned contact does not bring it back.
    assert not h.report(t1, "connected", "c1", at=1141).changed


def test_next_deadline_counts_node_timeouts_when_given_the_live_set() -> None:
    h = Harness(nodes=(N1,))
    h.new_tab(node="n9", at=1000)
    assert next_deadline(h.state, h.rules) is None
    assert next_deadline(h.state, h.rules, frozenset({N1})) == 1000 + h.rules.node_timeout_seconds
    h.tick(1000 + h.rules.node_timeout_seconds)
    assert not next(iter(h.state.tabs.values())).connected


@pytest.mark.parametrize("retained", [0, 200])
def test_expiry_work_does_not_walk_the_history(retained: int) -> None:
    """With nothing due, a tick replaces nothing, however many contacts are retained."""
    h, _ = with_history(retained)
    before = h.state
    out = h.tick(h.now + 1)
    assert out.state is before and not out.changed


@given(
    owner=st.none() | st.sampled_from(["t1", "t2"]),
    grace=st.none() | st.floats(0, 1e9, allow_nan=False),
    warnings=st.lists(st.text(max_size=8), max_size=3).map(tuple),
    confirmation=st.none() | st.sampled_from(["confirmed", "unconfirmed", "refused"]),
    ticket=st.none() | st.integers(1, 10**12),
    queue=st.none() | st.text(max_size=8),
    workflow_reason=st.none() | st.text(max_size=8),
    paused=st.booleans(),
)
def test_a_contacts_wire_message_is_what_its_view_model_dumps_to(
    owner: str | None,
    grace: float | None,
    warnings: tuple[str, ...],
    confirmation: str | None,
    ticket: int | None,
    queue: str | None,
    workflow_reason: str | None,
    paused: bool,
) -> None:
    """The contact message the core publishes, made without a model, is what the model
    would have been dumped to (as a tab decodes it), and reads back as the contact's view."""
    contact = Contact.new(
        contact_id="c1",
        state="connected",
        created_at=1000.0,
        owner_tab=owner,
        epoch=3,
        grace_until=grace,
        warnings=warnings,
        confirmation=confirmation,
        ticket_id=ticket,
        queue=queue,
        workflow_reason=workflow_reason,
        recording_paused=paused,
    )
    model = ContactMessage(contact=contact_view(contact))
    wire = contact_wire(contact)
    assert orjson.loads(orjson.dumps(wire)) == model.model_dump(mode="json", exclude_none=True)
    assert Publish(wire).message == model
