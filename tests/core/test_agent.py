"""Examples of the pure agent core: ownership, grace and failover, fencing, media, workflow pops.

Every test drives `handle` directly with explicit time (`Context.now`) and live node sets; no
clock, no sockets. `Harness` keeps the state between events the way the hub does (a refused
event leaves it untouched), and `Stored` what a store holds after the hub's commits.
"""

import copy
from typing import Any

import pytest

from daemon.core.agent import handle, new_agent, next_deadline
from daemon.core.effects import Outcome, Publish, WakeWorkflow
from daemon.core.events import (
    AgentEvent,
    ChatReported,
    CommandIssued,
    ContactReported,
    Context,
    MediaReported,
    NoticeRequest,
    PopRequest,
    Rules,
    TabClosed,
    TabOpened,
    Tick,
    WorkflowReported,
)
from daemon.core.state import AgentState, Tab
from daemon.core.views import contact_view, media_view, snapshot
from protocol.errors import ErrorCode
from protocol.messages import (
    ChatMessage,
    Command,
    ContactEvent,
    ContactMessage,
    ContactSnapshot,
    ContactView,
    Forget,
    Media,
    MediaStatus,
    MediaView,
    Notify,
    Pop,
)

N1, N2 = "n1", "n2"


class Stored:
    """An agent's state as a store holds it (a head and one entry per contact), kept by
    applying the write of each outcome the hub would commit, as the store applies it."""

    def __init__(self) -> None:
        self.head: bytes | None = None
        self.entries: dict[str, bytes] = {}

    def commit(self, out: Outcome) -> None:
        if out.refusal is not None or not out.changed:
            return  # the hub commits nothing
        write = out.state.write(out.touched)
        self.head = write.head
        self.entries.update(write.put)
        for cid in write.dropped:
            self.entries.pop(cid, None)

    def load(self) -> AgentState:
        assert self.head is not None
        return AgentState.decode(self.head, self.entries)


class Harness:
    """One agent, fed events at explicit times, keeping the state like the hub does."""

    def __init__(self, rules: Rules | None = None, nodes: tuple[str, ...] = (N1, N2)) -> None:
        self.rules = rules or Rules()
        self.state: AgentState = new_agent("agent-1", self.rules)
        self.stored = Stored()
        self.now = 1000.0
        self.nodes = frozenset(nodes)
        self.counter = 0

    def apply(
        self, event: AgentEvent, *, at: float | None = None, nodes: tuple[str, ...] | None = None
    ) -> Outcome:
        if at is not None:
            self.now = at
        if nodes is not None:
            self.nodes = frozenset(nodes)
        before = copy.deepcopy(self.state)
        out = handle(self.state, event, Context(now=self.now, live_nodes=self.nodes), self.rules)
        assert self.state == before, "handle mutated its input state"
        self.stored.commit(out)
        if out.refusal is None:
            self.state = out.state
        else:
            assert out.state is self.state and out.effects == () and not out.changed
        return out

    def open(
        self,
        tab_id: str | None = None,
        session: str | None = None,
        *,
        role: str = "embedded",
        node: str = N1,
        at: float | None = None,
        **kw: Any,
    ) -> Outcome:
        self.counter += 1
        return self.apply(
            TabOpened(
                node=node,
                role=role,  # type: ignore[arg-type]
                tab_id=tab_id,
                session=session,
                conn_id=f"conn-{self.counter}",
                fresh_tab_id=f"tab-{self.counter}",
                fresh_session=f"sess-{self.counter}",
                **kw,
            ),
            at=at,
        )

    def new_tab(self, **kw: Any) -> str:
        out = self.open(**kw)
        assert out.assignment is not None
        return out.assignment.tab_id

    def close(self, tab_id: str, *, at: float | None = None) -> Outcome:
        return self.apply(TabClosed(tab_id=tab_id, conn_id=self.state.tabs[tab_id].conn_id), at=at)

    def report(
        self,
        tab_id: str,
        event: str,
        contact_id: str = "c1",
        *,
        at: float | None = None,
        **snap: Any,
    ) -> Outcome:
        report = ContactEvent(
            event=event,  # type: ignore[arg-type]
            contact=ContactSnapshot(contact_id=contact_id, **snap),
        )
        return self.apply(ContactReported(tab_id=tab_id, report=report), at=at)

    def command(
        self, tab_id: str, name: str, epoch: int, contact_id: str = "c1", **kw: Any
    ) -> Outcome:
        cmd = Command(name=name, contact_id=contact_id, epoch=epoch, **kw)  # type: ignore[arg-type]
        return self.apply(CommandIssued(tab_id=tab_id, command=cmd))

    def media(self, tab_id: str, **status: Any) -> Outcome:
        return self.apply(MediaReported(tab_id=tab_id, status=MediaStatus(**status)))

    def tick(self, at: float, nodes: tuple[str, ...] | None = None) -> Outcome:
        return self.apply(Tick(), at=at, nodes=nodes)

    def contact(self, contact_id: str = "c1") -> ContactView:
        return contact_view(self.state.contacts[contact_id])


def contact_pubs(out: Outcome) -> list[ContactView]:
    return [
        e.message.contact
        for e in out.effects
        if isinstance(e, Publish) and isinstance(e.message, ContactMessage)
    ]


def of_type(out: Outcome, kind: type) -> list[Any]:
    """The publications of one message type (typed loosely: tests read their fields)."""
    return [e for e in out.effects if isinstance(e, Publish) and isinstance(e.message, kind)]


def wakes(out: Outcome) -> list[str]:
    return [e.contact_id for e in out.effects if isinstance(e, WakeWorkflow)]


def assert_broadcast(pubs: list[Publish]) -> None:
    assert all(p.to_tab is None and p.to_role is None for p in pubs)


# -- election and deduplication ----------------------------------------------------------------


def test_first_reporter_owns_and_repeats_publish_nothing() -> None:
    h = Harness()
    t1, t2, t3 = h.new_tab(), h.new_tab(), h.new_tab()
    out = h.report(t2, "incoming", queue="sales")
    assert h.state.contacts["c1"].owner_tab == t2
    assert h.state.contacts["c1"].epoch == 1
    pubs = of_type(out, ContactMessage)
    assert len(pubs) == 1
    assert_broadcast(pubs)
    assert pubs[0].message.contact == h.contact()
    assert pubs[0].message.contact.owner_tab == t2
    assert wakes(out) == ["c1"]

    for tab in (t1, t3, t2):
        again = h.report(tab, "incoming", queue="sales")
        assert again.effects == ()
        assert not again.changed
    assert h.state.contacts["c1"].owner_tab == t2

    out = h.report(t3, "accepted")
    assert [v.state for v in contact_pubs(out)] == ["accepted"]
    assert h.contact().owner_tab == t2 and h.contact().epoch == 1
    assert h.report(t1, "accepted").effects == ()


def test_late_duplicate_events_never_move_a_contact_backwards() -> None:
    h = Harness()
    t1, t2 = h.new_tab(), h.new_tab()
    h.report(t1, "incoming")
    h.report(t1, "connected")
    for event in ("incoming", "connecting", "accepted"):
        out = h.report(t2, event)
        assert h.contact().state == "connected"
        assert contact_pubs(out) == []
    h.report(t1, "ended")
    out = h.report(t2, "connected")
    assert h.contact().state == "ended"
    assert contact_pubs(out) == []
    assert h.state.contacts["c1"].finished_at is not None


def test_media_tab_reporting_a_contact_is_wrong_role() -> None:
    h = Harness()
    media = h.new_tab(role="media")
    before = h.state
    out = h.report(media, "incoming")
    assert out.refusal is not None and out.refusal.code == ErrorCode.WRONG_ROLE
    assert out.state is before and "c1" not in h.state.contacts


def test_unknown_tab_must_say_hello() -> None:
    h = Harness()
    out = h.report("ghost", "incoming")
    assert out.refusal is not None and out.refusal.code == ErrorCode.HELLO_REQUIRED


# -- tabs: grace, reload, duplicates, superseded connections ----------------------------------


def test_owner_disconnect_sets_and_publishes_grace() -> None:
    h = Harness(Rules(grace_seconds=30))
    t1, _t2 = h.new_tab(), h.new_tab()
    h.report(t1, "connected")
    out = h.close(t1, at=1010)
    assert h.contact().grace_until == 1040
    assert h.contact().owner_tab == t1 and h.contact().epoch == 1
    assert [v.grace_until for v in contact_pubs(out)] == [1040]
    assert next_deadline(h.state, h.rules) == 1040


def test_reload_inside_grace_keeps_ownership_and_epoch() -> None:
    h = Harness(Rules(grace_seconds=30))
    t1, _t2 = h.new_tab(), h.new_tab()
    h.report(t1, "connected")
    h.close(t1, at=1010)
    out = h.open(t1, None, at=1030)  # a reload: same tab id from sessionStorage, no session
    assert out.assignment is not None
    assert out.assignment.tab_id == t1 and not out.assignment.reassigned
    assert h.contact().owner_tab == t1 and h.contact().epoch == 1
    assert h.contact().grace_until is None
    assert [v.grace_until for v in contact_pubs(out)] == [None]
    # Past the old grace deadline nothing happens: the owner is back.
    assert h.tick(1100).effects == ()
    assert h.contact().owner_tab == t1


def test_duplicated_tab_gets_a_fresh_id_and_owns_nothing() -> None:
    h = Harness()
    t1 = h.new_tab()
    h.report(t1, "connected")
    original = h.state.tabs[t1]
    for session in (None, "not-the-session"):
        out = h.open(t1, session)
        assert out.assignment is not None and out.assignment.reassigned
        dup = out.assignment.tab_id
        assert dup != t1 and dup in h.state.tabs
        assert out.assignment.session != original.session
        assert h.state.tabs[t1] == original  # the original keeps its connection
        assert h.contact().owner_tab == t1 and h.contact().epoch == 1
        assert contact_pubs(out) == []


def test_reconnect_with_session_takes_over_and_late_close_is_ignored() -> None:
    h = Harness()
    t1 = h.new_tab()
    h.report(t1, "connected")
    old = h.state.tabs[t1]
    out = h.open(t1, old.session, at=1005)
    assert out.assignment is not None
    assert out.assignment.tab_id == t1 and not out.assignment.reassigned
    assert out.assignment.session == old.session
    assert h.state.tabs[t1].conn_id != old.conn_id
    assert h.contact().owner_tab == t1
    state = h.state
    late = h.apply(TabClosed(tab_id=t1, conn_id=old.conn_id), at=1006)
    assert not late.changed and late.effects == ()
    assert late.state == state
    assert h.state.tabs[t1].connected and h.contact().grace_until is None


def test_the_same_connection_registering_again_keeps_its_tab() -> None:
    """A re-registration (after a store outage, or a lapse of the node) presents the tab id
    and whatever session the connection last heard of: it is the same tab, never a duplicate,
    even when it re-registers twice and the first gave the tab a new session."""
    h = Harness()
    t1 = h.new_tab()
    h.report(t1, "connected")
    held = h.state.tabs[t1]
    again = TabOpened(
        node=N1,
        role="embedded",
        tab_id=t1,
        session="a-session-the-store-forgot",
        conn_id=held.conn_id,
        fresh_tab_id="never-used",
        fresh_session="never-used-either",
    )
    out = h.apply(again, at=1005)
    assert out.assignment is not None
    assert (out.assignment.tab_id, out.assignment.reassigned) == (t1, False)
    assert out.assignment.session == held.session
    assert set(h.state.tabs) == {t1} and h.contact().owner_tab == t1


def registering_again(tab: Tab, conn_id: str) -> TabOpened:
    """The connection `conn_id` of `tab`'s page registering again, as a node does."""
    return TabOpened(
        node=N1,
        role="embedded",
        tab_id=tab.tab_id,
        session=tab.session,
        conn_id=conn_id,
        fresh_tab_id="never-used",
        fresh_session="never-used-either",
        again=True,
    )


def test_a_connection_registering_again_never_takes_back_an_id_that_moved_on() -> None:
    """The page reloaded onto a new connection (same id and session) while the old one's
    node was paused; the old connection registering again when its node wakes must not
    take the tab back (simulator seed 41914), though a hello with that session would."""
    h = Harness()
    t1 = h.new_tab()
    h.report(t1, "connected")
    old = h.state.tabs[t1]
    h.open(t1, old.session, at=1005)  # the reload
    state = h.state
    out = h.apply(registering_again(old, old.conn_id), at=1006)
    assert out.refusal is not None and out.refusal.code == ErrorCode.NOT_OWNER
    assert h.state == state and h.state.tabs[t1].conn_id != old.conn_id


def test_a_tab_the_store_lost_registers_again_with_its_id_and_session() -> None:
    """After the store restarted empty, so a reload that presents the session it holds
    resumes the tab instead of being given another id."""
    h = Harness()
    t1 = h.new_tab()
    held = h.state.tabs[t1]
    h.state = new_agent("agent-1", h.rules)  # the store lost everything
    out = h.apply(registering_again(held, held.conn_id), at=1005)
    assert out.assignment is not None
    assert (out.assignment.tab_id, out.assignment.session) == (t1, held.session)
    out = h.open(t1, held.session, at=1006)
    assert out.assignment is not None and not out.assignment.reassigned


def test_role_mismatch_is_not_the_same_tab() -> None:
    h = Harness()
    t1 = h.new_tab()
    h.close(t1)
    out = h.open(t1, None, role="media")
    assert out.assignment is not None and out.assignment.reassigned
    assert h.state.tabs[out.assignment.tab_id].role == "media"
    assert h.state.tabs[t1].role == "embedded"


# -- failover ------------------------------------------------------------------------------


def test_failover_after_grace_to_earliest_live_embedded_tab() -> None:
    h = Harness(Rules(grace_seconds=30))
    h.new_tab(role="media", at=990)  # earliest of all, but never an owner
    t1 = h.new_tab(at=1000)
    t2 = h.new_tab(at=1001)
    t3 = h.new_tab(at=1002)
    h.report(t1, "connected")
    h.close(t1, at=1010)
    assert h.tick(1039.9).effects == ()
    out = h.tick(1040)
    assert h.contact().owner_tab == t2
    assert h.contact().epoch == 2
    assert h.contact().grace_until is None
    assert [(v.owner_tab, v.epoch) for v in contact_pubs(out)] == [(t2, 2)]
    assert wakes(out) == ["c1"]
    # The old owner coming back is an observer now.
    h.open(t1, None, at=1050)
    assert h.contact().owner_tab == t2
    assert t3 in h.state.tabs


def test_command_under_old_epoch_is_refused_and_changes_nothing() -> None:
    h = Harness(Rules(grace_seconds=30))
    t1, t2 = h.new_tab(), h.new_tab(at=1001)
    h.report(t1, "connected")
    h.close(t1, at=1010)
    h.tick(1040)
    assert h.contact().owner_tab == t2 and h.contact().epoch == 2
    before = h.state
    out = h.command(t2, "pause_recording", epoch=1)
    assert out.refusal is not None and out.refusal.code == ErrorCode.STALE_EPOCH
    assert out.state is before and not out.changed and out.effects == ()
    out = h.command(t2, "pause_recording", epoch=2)
    assert out.refusal is None
    assert not h.contact().recording_paused  # asked for; only Amazon Connect's word sets it
    assert [c.name for c in h.state.contacts["c1"].commands] == ["pause_recording"]
    again = h.command(t2, "pause_recording", epoch=2)  # already asked for
    assert again.refusal is not None and again.refusal.code == ErrorCode.OUT_OF_ORDER


def test_observer_command_is_not_owner() -> None:
    h = Harness()
    t1, t2 = h.new_tab(), h.new_tab()
    h.report(t1, "connected")
    out = h.command(t2, "create_ticket", epoch=1)
    assert out.refusal is not None and out.refusal.code == ErrorCode.NOT_OWNER
    assert h.state.contacts["c1"].commands == ()
    out = h.command(t1, "attach_to_current", epoch=1)
    assert out.refusal is not None and out.refusal.code == ErrorCode.INVALID_MESSAGE
    assert h.command(t1, "attach_to_current", epoch=1, ticket_id=7).refusal is None
    out = h.command(t1, "create_ticket", epoch=1, contact_id="nope")
    assert out.refusal is not None and out.refusal.code == ErrorCode.UNKNOWN_CONTACT


def test_no_live_tab_at_grace_end_leaves_contact_ownerless_until_a_tab_opens() -> None:
    h = Harness(Rules(grace_seconds=30))
    t1 = h.new_tab()
    h.report(t1, "connected")
    h.close(t1, at=1010)
    out = h.tick(1040)
    assert h.contact().owner_tab is None and h.contact().epoch == 2
    assert [v.owner_tab for v in contact_pubs(out)] == [None]
    t2 = h.new_tab(at=1050)
    assert h.contact().owner_tab == t2 and h.contact().epoch == 3


def test_failover_disabled_keeps_other_tabs_out() -> None:
    """With failover off, grace expiry releases the contact but no other tab is handed it."""
    h = Harness(Rules(grace_seconds=30, failover=False))
    t1, t2 = h.new_tab(), h.new_tab(at=1001)
    h.report(t1, "connected")
    h.close(t1, at=1010)
    out = h.tick(1040)
    assert h.contact().owner_tab is None, "failover=False must not hand the contact to t2"
    assert h.contact().epoch == 2 and h.contact().grace_until is None
    assert [v.owner_tab for v in contact_pubs(out)] == [None]
    assert next_deadline(h.state, h.rules) == 1010 + h.rules.tab_retention_seconds
    h.new_tab(at=1050)
    h.tick(2000)
    assert h.contact().owner_tab is None
    # Like Streams: the next tab that reports the contact takes it (a new epoch).
    h.report(t2, "connected")
    assert h.contact().owner_tab == t2 and h.contact().epoch == 3


def test_tabs_on_a_missing_node_are_gone_only_after_node_timeout() -> None:
    h = Harness(Rules(grace_seconds=30, node_timeout_seconds=10), nodes=(N1,))
    t1 = h.new_tab(node=N2, at=1000)  # N2 just started: not in this node's live set yet
    t2 = h.new_tab(node=N1, at=1001)
    h.report(t1, "connected", at=1002)
    assert h.contact().owner_tab == t1
    assert h.tick(1009.9).effects == ()
    assert h.state.tabs[t1].connected
    out = h.tick(1010)
    assert not h.state.tabs[t1].connected and h.state.tabs[t1].disconnected_at == 1010
    assert h.contact().owner_tab == t1 and h.contact().grace_until == 1040
    assert [v.grace_until for v in contact_pubs(out)] == [1040]
    h.tick(1040)
    assert h.contact().owner_tab == t2 and h.contact().epoch == 2


def test_tab_on_live_node_survives_and_node_back_in_set_keeps_tab() -> None:
    h = Harness(Rules(node_timeout_seconds=10), nodes=(N1,))
    t1 = h.new_tab(node=N2, at=1000)
    h.report(t1, "connected")
    h.tick(1005, nodes=(N1, N2))
    h.tick(5000)
    assert h.state.tabs[t1].connected and h.contact().owner_tab == t1


# -- chats -------------------------------------------------------------------------------


def test_second_concurrent_chat_is_refused_with_an_error_to_its_owner() -> None:
    h = Harness()
    t1, t2 = h.new_tab(), h.new_tab()
    h.report(t1, "connected", "chat-1", type="chat")
    out = h.report(t2, "incoming", "chat-2", type="chat")
    second = h.state.contacts["chat-2"]
    assert second.refused == "second_chat" and second.owner_tab == t2
    notes = of_type(out, Notify)
    assert len(notes) == 1 and notes[0].to_tab == t2
    # The guide: the app "will display an error message"; the chat gets no Zendesk work.
    assert notes[0].message.level == "error" and notes[0].message.code == "second_chat"
    assert second.workflow == "none" and h.state.contacts["chat-1"].workflow == "pending"
    assert notes[0].message.contact_id == "chat-2"
    assert h.state.contacts["chat-1"].refused is None
    # Reports of the refused chat do not warn again; a voice call alongside is fine.
    assert of_type(h.report(t1, "connected", "chat-2", type="chat"), Notify) == []
    h.report(t1, "incoming", "voice-1")
    assert h.state.contacts["voice-1"].refused is None
    # Once the first chat ended a new chat is accepted.
    h.report(t1, "ended", "chat-1", type="chat")
    h.report(t1, "ended", "chat-2", type="chat")
    out = h.report(t1, "incoming", "chat-3", type="chat")
    assert h.state.contacts["chat-3"].refused is None and of_type(out, Notify) == []


def test_chat_messages_are_deduplicated_and_checked() -> None:
    h = Harness()
    t1, t2 = h.new_tab(), h.new_tab()
    h.report(t1, "connected", "chat-1", type="chat")
    h.report(t1, "connected", "voice-1")
    line = ChatMessage(contact_id="chat-1", message_id="m1", participant="customer", text="hi")
    assert h.apply(ChatReported(tab_id=t1, message=line)).refusal is None
    again = h.apply(ChatReported(tab_id=t2, message=line))
    assert again.refusal is None and not again.changed
    assert len(h.state.contacts["chat-1"].chat) == 1
    bad = ChatMessage(contact_id="voice-1", message_id="m2", participant="agent", text="x")
    out = h.apply(ChatReported(tab_id=t1, message=bad))
    assert out.refusal is not None and out.refusal.code == ErrorCode.OUT_OF_ORDER
    unknown = ChatMessage(contact_id="zzz", message_id="m3", participant="agent", text="x")
    out = h.apply(ChatReported(tab_id=t1, message=unknown))
    assert out.refusal is not None and out.refusal.code == ErrorCode.UNKNOWN_CONTACT


def test_chat_message_from_media_tab_or_unknown_tab_is_refused() -> None:
    h = Harness()
    t1, media = h.new_tab(), h.new_tab(role="media")
    h.report(t1, "connected", "chat-1", type="chat")
    line = ChatMessage(contact_id="chat-1", message_id="m1", participant="customer", text="hi")
    out = h.apply(ChatReported(tab_id=media, message=line))
    assert out.refusal is not None and out.refusal.code == ErrorCode.WRONG_ROLE
    out = h.apply(ChatReported(tab_id="ghost", message=line))
    assert out.refusal is not None and out.refusal.code == ErrorCode.HELLO_REQUIRED
    assert h.state.contacts["chat-1"].chat == ()


# -- media -------------------------------------------------------------------------------


def media_views(out: Outcome) -> list[MediaView]:
    pubs = of_type(out, Media)
    assert_broadcast(pubs)
    return [p.message.media for p in pubs]


def test_media_presence_and_readiness_published_on_change_only() -> None:
    h = Harness(Rules(media_less=True))
    first = h.new_tab()
    assert h.state.published_media is not None
    assert h.tick(1001).effects == ()
    out = h.open(role="media")
    assert out.assignment is not None
    media = out.assignment.tab_id
    assert [(v.present, v.ready) for v in media_views(out)] == [(True, False)]
    out = h.media(media, signed_in=True, microphone=False)
    assert media_views(out) == []  # not ready yet: nothing the tabs see changed
    out = h.media(media, signed_in=True, microphone=True)
    assert [(v.present, v.ready) for v in media_views(out)] == [(True, True)]
    again = h.media(media, signed_in=True, microphone=True)
    assert again.effects == () and not again.changed
    out = h.media(media, signed_in=True, microphone=True, in_call=True)
    assert media_views(out) == [] and out.effects == ()
    out = h.close(media)
    assert [(v.present, v.ready) for v in media_views(out)] == [(False, False)]
    assert h.state.published_media == media_view(h.state, h.nodes).model_dump(mode="json")
    out = h.media(first, signed_in=True, microphone=True)
    assert out.refusal is not None and out.refusal.code == ErrorCode.WRONG_ROLE


def test_media_lost_during_connected_voice_call_is_urgent_to_owner() -> None:
    h = Harness(Rules(media_less=True))
    t1, t2 = h.new_tab(), h.new_tab()
    media = h.new_tab(role="media")
    h.media(media, signed_in=True, microphone=True)
    out = h.report(t2, "connected")
    assert [v.active_contact for v in media_views(out)] == ["c1"]
    out = h.media(media, signed_in=True, microphone=True, audio_lost=True)
    notes = of_type(out, Notify)
    assert len(notes) == 1 and notes[0].to_tab == t2
    assert notes[0].message.level == "urgent" and notes[0].message.code == "media_lost"
    assert notes[0].message.contact_id == "c1"
    assert t1 != t2


def test_media_lost_by_closing_the_media_tab() -> None:
    h = Harness(Rules(media_less=True))
    t1 = h.new_tab()
    media = h.new_tab(role="media")
    h.media(media, signed_in=True, microphone=True)
    h.report(t1, "connected")
    out = h.close(media)
    assert [n.to_tab for n in of_type(out, Notify)] == [t1]


def test_no_media_lost_outside_media_less_mode_or_without_a_call() -> None:
    h = Harness(Rules(media_less=False))
    t1 = h.new_tab()
    media = h.new_tab(role="media")
    h.media(media, signed_in=True, microphone=True)
    h.report(t1, "connected")
    assert of_type(h.close(media), Notify) == []

    h = Harness(Rules(media_less=True))
    t1 = h.new_tab()
    media = h.new_tab(role="media")
    h.media(media, signed_in=True, microphone=True)
    h.report(t1, "incoming")
    assert of_type(h.close(media), Notify) == []


def test_hello_media_less_overrides_rules() -> None:
    h = Harness(Rules(media_less=False))
    out = h.open(media_less=True)
    assert [v.media_less for v in media_views(out)] == [True]
    assert h.state.media.media_less


def test_media_tab_on_a_just_started_node_counts_as_present() -> None:
    """Same liveness as everywhere: a peer's older live set must not declare it gone."""
    h = Harness(Rules(media_less=True, node_timeout_seconds=10), nodes=(N1,))
    t1 = h.new_tab(node=N1)
    media = h.new_tab(role="media", node=N2, at=1001)
    h.media(media, signed_in=True, microphone=True)
    assert h.state.published_media is not None and h.state.published_media["present"]
    out = h.report(t1, "connected", at=1002)
    assert of_type(out, Notify) == []
    assert h.state.published_media["ready"]
    out = h.tick(1011)  # N2 still missing after the node timeout: now it is gone
    assert [(v.present, v.ready) for v in media_views(out)] == [(False, False)]
    assert [n.message.code for n in of_type(out, Notify)] == ["media_lost"]


# -- workflow reports --------------------------------------------------------------------


def test_workflow_pops_go_to_owner_only_after_the_contact_view() -> None:
    h = Harness()
    t1, t2 = h.new_tab(), h.new_tab()
    h.report(t2, "incoming")
    out = h.apply(
        WorkflowReported(
            contact_id="c1",
            ticket_id=42,
            user_id=7,
            mode="agent",
            warnings=("bad attribute",),
            pops=(PopRequest("user", id=7), PopRequest("ticket", id=42)),
            notices=(NoticeRequest("warning", "multiple_matches", "3 users match"),),
        )
    )
    kinds = [type(e.message).__name__ for e in out.effects if isinstance(e, Publish)]
    assert kinds[:3] == ["ContactMessage", "Pop", "Pop"]
    pops = of_type(out, Pop)
    assert [(p.to_tab, p.message.target, p.message.id) for p in pops] == [
        (t2, "user", 7),
        (t2, "ticket", 42),
    ]
    assert [n.to_tab for n in of_type(out, Notify)] == [t2]
    view = h.contact()
    assert (view.ticket_id, view.user_id, view.mode, view.warnings) == (
        42,
        7,
        "agent",
        ("bad attribute",),
    )
    again = h.apply(WorkflowReported(contact_id="c1", warnings=("bad attribute",)))
    assert again.effects == ()
    assert t1 != t2


def test_workflow_status_reaches_every_tab_and_wakes_nothing() -> None:
    h = Harness()
    t1, _ = h.new_tab(), h.new_tab()
    created = h.report(t1, "connected")
    assert h.contact().workflow == "pending" and wakes(created) == ["c1"]
    out = h.apply(WorkflowReported(contact_id="c1", status="failed", reason="forbidden"))
    (view,) = contact_pubs(out)
    assert (view.workflow, view.workflow_reason) == ("failed", "forbidden")
    assert wakes(out) == []  # the runner's own report gives the runner nothing to do
    assert (
        h.apply(WorkflowReported(contact_id="c1", status="failed", reason="forbidden")).effects
        == ()
    )
    # With anything else the workflow may act on, it is woken as before.
    both = h.apply(WorkflowReported(contact_id="c1", ticket_id=9, status="pending"))
    assert wakes(both) == ["c1"] and h.contact().workflow_reason is None


def test_a_monitoring_leg_gets_no_workflow() -> None:
    h = Harness()
    out = h.report(h.new_tab(), "connected", monitoring=True)
    assert h.contact().workflow == "none" and wakes(out) == []


def test_workflow_pop_alone_is_reported_as_a_change() -> None:
    """The hub commits (and so publishes) only outcomes with `changed`: a pop must count."""
    h = Harness()
    t1 = h.new_tab()
    h.report(t1, "incoming")
    h.apply(WorkflowReported(contact_id="c1", user_id=7))
    out = h.apply(WorkflowReported(contact_id="c1", pops=(PopRequest("user", id=7),)))
    assert [p.to_tab for p in of_type(out, Pop)] == [t1]
    assert out.changed


def test_workflow_pops_are_dropped_without_an_owner() -> None:
    h = Harness(Rules(grace_seconds=5))
    t1 = h.new_tab()
    h.report(t1, "connected")
    h.close(t1)
    h.tick(h.now + 5)
    assert h.contact().owner_tab is None
    out = h.apply(
        WorkflowReported(
            contact_id="c1",
            pops=(PopRequest("search", query="x"),),
            notices=(NoticeRequest("info", "n", "t"),),
        )
    )
    assert out.effects == ()
    unknown = h.apply(WorkflowReported(contact_id="nope", ticket_id=1))
    assert unknown.refusal is None and unknown.effects == ()


# -- time: pruning and deadlines ---------------------------------------------------------


def test_finished_contacts_are_pruned_after_retention() -> None:
    h = Harness(Rules(finished_retention_seconds=100))
    t1 = h.new_tab()
    h.report(t1, "connected", at=1000)
    h.report(t1, "ended", at=1010)
    h.report(t1, "incoming", "c2", at=1020)
    assert next_deadline(h.state, h.rules) == 1110
    h.tick(1109)
    assert "c1" in h.state.contacts
    out = h.tick(1110)
    assert "c1" not in h.state.contacts and "c2" in h.state.contacts
    assert out.changed and contact_pubs(out) == []
    forgets = of_type(out, Forget)  # every tab is told to drop it from its view
    assert [(f.to_tab, f.message.contact_ids) for f in forgets] == [(None, ("c1",))]
    # Its tombstone is kept as long again, then dropped: nothing left to wait for but
    # the open c2's idle expiry.
    assert next_deadline(h.state, h.rules) == 1210
    h.tick(1210)
    assert not h.state.forgotten
    assert next_deadline(h.state, h.rules) == 1020 + h.rules.idle_contact_seconds


def test_next_deadline_is_the_earliest_time_change() -> None:
    rules = Rules(grace_seconds=30, finished_retention_seconds=100, tab_retention_seconds=500)
    h = Harness(rules)
    assert next_deadline(h.state, rules) is None
    t1, t2 = h.new_tab(), h.new_tab()
    assert next_deadline(h.state, rules) is None
    h.report(t1, "connected", "c1", at=1000)
    h.report(t2, "connected", "c2", at=1000)
    h.report(t2, "ended", "c2", at=1005)
    h.close(t1, at=1020)
    assert next_deadline(h.state, rules) == 1050  # t1's grace, before c2's retention at 1105
    h.tick(1050)
    assert h.contact("c1").owner_tab == t2
    assert next_deadline(h.state, rules) == 1105
    h.tick(1105)
    assert next_deadline(h.state, rules) == 1205  # c2's tombstone is dropped
    h.tick(1205)
    # t1 is closed and owns nothing: it is forgotten after the tab retention.
    assert next_deadline(h.state, rules) == 1520
    h.tick(1519)
    assert t1 in h.state.tabs
    h.tick(1520)
    assert t1 not in h.state.tabs


def test_tab_retention_keeps_owners() -> None:
    h = Harness(Rules(grace_seconds=30, tab_retention_seconds=50, failover=False))
    t1 = h.new_tab()
    h.report(t1, "connected")
    h.close(t1, at=1001)
    h.tick(1020)
    assert t1 in h.state.tabs  # still the owner (in grace)


# -- views and serialisation -------------------------------------------------------------


def test_snapshot_lists_contacts_in_creation_order_with_media() -> None:
    h = Harness()
    t1 = h.new_tab()
    h.report(t1, "incoming", "b", at=1001)
    h.report(t1, "incoming", "a", at=1002)
    snap = snapshot(h.state, h.nodes)
    assert [c.contact_id for c in snap.contacts] == ["b", "a"]
    assert snap.contacts[0] == h.contact("b")
    assert snap.media.model_dump(mode="json") == h.state.published_media


def test_state_round_trips_through_the_stored_writes() -> None:
    h = Harness()
    t1 = h.new_tab()
    h.report(t1, "connected", attributes={"zendesk_user": "5"})
    h.command(t1, "pause_recording", epoch=1)
    assert h.stored.load() == h.state


@pytest.mark.parametrize("event", ["missed", "ended", "acw", "destroyed"])
def test_finished_events_set_finished_at_once(event: str) -> None:
    h = Harness()
    t1 = h.new_tab()
    h.report(t1, "connected", at=1000)
    h.report(t1, event, at=1001)
    h.report(t1, "destroyed", at=1002)
    assert h.state.contacts["c1"].finished_at == 1001


def test_late_report_of_a_pruned_contact_does_not_resurrect_it() -> None:
    h = Harness(Rules(finished_retention_seconds=100))
    t1, t2 = h.new_tab(), h.new_tab()
    h.report(t1, "connected", at=1000)
    h.close(t1, at=1001)
    h.tick(1031)  # failover: epoch 2 on t2
    h.report(t2, "ended", at=1040)
    h.tick(1140)
    assert "c1" not in h.state.contacts
    out = h.report(t2, "acw", at=1150)  # Streams re-fires events after a reconnect
    assert wakes(out) == [] and "c1" not in h.state.contacts


def test_contacts_that_can_never_have_zendesk_work_wake_no_workflow() -> None:
    h = Harness()
    t1 = h.new_tab()
    monitored = h.report(t1, "connected", "m1", monitoring=True)
    assert wakes(monitored) == [] and of_type(monitored, ContactMessage)
    first = h.report(t1, "connected", "chat-1", type="chat")
    assert wakes(first) == ["chat-1"]
    second = h.report(t1, "connected", "chat-2", type="chat")
    assert h.state.contacts["chat-2"].refused == "second_chat" and wakes(second) == []
