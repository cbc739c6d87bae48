"""Contacts confirmed by Amazon Connect, in the pure core (`daemon.core.confirmation` and its
use by `daemon.core.agent` and `daemon.core.workflow.transfer`)."""

import dataclasses
from typing import Any

from daemon.core.confirmation import (
    ConnectAnswer,
    ConnectDenied,
    ConnectFacts,
    ConnectUnavailable,
)
from daemon.core.effects import Outcome
from daemon.core.events import ConnectAnswered, ContactReported, Rules
from daemon.core.workflow.transfer import TRANSFER_WINDOW_SECONDS, refusal
from protocol.errors import ErrorCode
from protocol.messages import ContactEvent, ContactSnapshot, Notify
from tests.core.test_agent import Harness, of_type, wakes
from tests.core.test_workflow_world import T0, contact

MINE = ConnectFacts(
    agent_is_reporter=True,
    attributes={"customer_name": "From Connect"},
    initial_contact_id="c0",
    customer_endpoint="+447700900999",
)
NOT_MINE = dataclasses.replace(MINE, agent_is_reporter=False, attributes={})
DOWN = ConnectUnavailable("throttled")


def report(h: Harness, tab: str, event: str, answer: ConnectAnswer | None, **snap: Any) -> Outcome:
    snapshot = ContactSnapshot(contact_id="c1", **snap)
    return h.apply(
        ContactReported(tab, ContactEvent(event=event, contact=snapshot), answer)  # type: ignore[arg-type]
    )


def test_a_contact_connect_does_not_know_is_refused_and_nothing_is_kept() -> None:
    h = Harness()
    tab = h.new_tab()
    before = h.state
    out = report(h, tab, "incoming", ConnectDenied("Contact c1 not found"))
    assert out.refusal is not None and out.refusal.code == ErrorCode.CONTACT_NOT_IN_CONNECT
    assert h.state is before and "c1" not in h.state.contacts


def test_another_agents_contact_is_refused_unless_it_is_a_monitoring_leg() -> None:
    h = Harness()
    tab = h.new_tab()
    out = report(h, tab, "incoming", NOT_MINE)
    assert out.refusal is not None and out.refusal.code == ErrorCode.CONTACT_NOT_YOURS
    out = report(h, tab, "connected", NOT_MINE, monitoring=True)
    assert out.refusal is None and h.state.contacts["c1"].monitoring
    assert wakes(out) == []  # a monitoring leg gets no Zendesk work
    # Connect's own MONITOR contact is a monitoring leg whatever the tab says.
    monitor = dataclasses.replace(MINE, monitoring=True)
    h2 = Harness()
    tab2 = h2.new_tab()
    report(h2, tab2, "connected", monitor)
    assert h2.state.contacts["c1"].monitoring


def test_connects_facts_replace_the_tabs_and_later_reports_do_not_change_them() -> None:
    h = Harness()
    t1, t2 = h.new_tab(), h.new_tab()
    forged = {"attributes": {"customer_name": "Mallory", "zendesk_ticket": "7"}}
    out = report(h, t1, "incoming", MINE, initial_contact_id="c-other", **forged)
    c = h.state.contacts["c1"]
    assert c.owner_tab == t1 and wakes(out) == ["c1"]
    assert dict(c.attributes) == {"customer_name": "From Connect"}
    assert c.initial_contact_id == "c0" and c.customer_endpoint == "+447700900999"
    assert h.contact().confirmation == "confirmed"
    report(h, t2, "connected", None, customer_endpoint="+1", **forged)
    c = h.state.contacts["c1"]
    assert dict(c.attributes) == {"customer_name": "From Connect"} and c.state == "connected"
    assert c.customer_endpoint == "+447700900999"


def test_connects_attributes_past_the_bound_are_cut_with_a_warning() -> None:
    h = Harness(Rules(max_attributes=2))
    tab = h.new_tab()
    many = dataclasses.replace(MINE, attributes={"b": "2", "a": "1", "c": "3"})
    report(h, tab, "incoming", many)
    c = h.state.contacts["c1"]
    assert dict(c.attributes) == {"a": "1", "b": "2"}
    assert any("only the first 2" in w for w in c.warnings)


def test_unconfirmed_is_believed_then_confirmed_with_connects_facts() -> None:
    h = Harness()
    tab = h.new_tab()
    report(h, tab, "incoming", DOWN, attributes={"customer_name": "Tab"})
    c = h.state.contacts["c1"]
    assert c.confirmation == "unconfirmed" and c.owner_tab == tab
    assert dict(c.attributes) == {"customer_name": "Tab"}
    report(h, tab, "connected", None, attributes={"x": "more"})  # believed meanwhile
    assert h.state.contacts["c1"].attributes["x"] == "more"
    out = h.apply(ConnectAnswered("c1", MINE))
    c = h.state.contacts["c1"]
    assert c.confirmation == "confirmed" and dict(c.attributes) == dict(MINE.attributes)
    assert wakes(out) == ["c1"]  # the workflow sees Connect's attributes
    assert h.apply(ConnectAnswered("c1", NOT_MINE)).changed is False  # settled for good


def test_unconfirmed_then_refused_stops_its_zendesk_work_and_tells_the_owner() -> None:
    h = Harness()
    tab = h.new_tab()
    report(h, tab, "incoming", DOWN)
    assert h.apply(ConnectAnswered("c1", DOWN)).changed is False  # still cannot say
    out = h.apply(ConnectAnswered("c1", ConnectDenied("not found")))
    c = h.state.contacts["c1"]
    assert c.confirmation == "refused" and c.refused == "contact_not_in_connect"
    assert not c.has_workflow and wakes(out) == []
    assert (c.workflow, c.workflow_reason) == ("failed", "contact_not_in_connect")
    (notice,) = of_type(out, Notify)
    assert notice.to_tab == tab and notice.message.level == "error"
    assert notice.message.code == "contact_not_in_connect"


def test_a_second_tabs_answer_settles_a_contact_the_first_held_unconfirmed() -> None:
    h = Harness()
    t1, t2 = h.new_tab(), h.new_tab()
    report(h, t1, "incoming", DOWN)
    report(h, t2, "incoming", MINE)
    assert h.state.contacts["c1"].confirmation == "confirmed"


def test_without_an_instance_nothing_changes() -> None:
    h = Harness()
    tab = h.new_tab()
    report(h, tab, "incoming", None, attributes={"a": "1"})
    report(h, tab, "connected", None, attributes={"b": "2"})
    c = h.state.contacts["c1"]
    assert c.confirmation is None and dict(c.attributes) == {"a": "1", "b": "2"}


def test_a_link_connect_confirmed_is_followed_past_the_tabs_trust_rule() -> None:
    first = contact(("incoming", "connected", "ended"), contact_id="c-0")  # ended at T0 + 61
    late = dataclasses.replace(
        contact(contact_id="c-1", initial_contact_id="c-0"),
        created_at=T0 + 62 + TRANSFER_WINDOW_SECONDS,
    )
    assert refusal(first, late) is not None  # a tab's word: too late to be that transfer
    confirmed = dataclasses.replace(late, confirmation="confirmed")
    assert refusal(first, confirmed) is None  # Connect's word
    assert refusal(None, confirmed) is None  # even once the first agent's record is pruned
    forged_first = dataclasses.replace(first, confirmation="refused")
    assert refusal(forged_first, confirmed) is not None
