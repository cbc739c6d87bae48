"""Property tests of the agent core: random interleavings of tabs, nodes, contacts and time.

A hypothesis state machine plays browser pages against `handle`. Every publication goes into
one stream log; each connected page applies what is addressed to it (its tab id, its role or
everyone), and a page that reconnects either replays what it missed or takes the snapshot from
`views.snapshot`. After every step the invariants of DESIGN.md are checked: one owner that is a
real embedded tab, epochs that only grow, refusals that change nothing, publications that
match the state, and every connected page's view equal to the daemon's.
"""

import copy
from dataclasses import dataclass, field, replace

from hypothesis import HealthCheck, settings
from hypothesis import event as label
from hypothesis import strategies as st
from hypothesis.stateful import (
    RuleBasedStateMachine,
    initialize,
    invariant,
    precondition,
    rule,
)

from daemon.core.agent import absorbs, handle, new_agent, next_deadline
from daemon.core.effects import Outcome, Publish
from daemon.core.events import (
    AgentEvent,
    ChatReported,
    CommandIssued,
    ContactReported,
    Context,
    MediaReported,
    PopRequest,
    Rules,
    TabClosed,
    TabOpened,
    Tick,
    WorkflowReported,
)
from daemon.core.state import EVENT_ORDER, AgentState
from daemon.core.views import contact_view, snapshot
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
)
from tests.core.test_agent import Stored

NODES = ("n1", "n2", "n3")
CONTACT_IDS = ("k1", "k2", "k3")
EVENTS = tuple(EVENT_ORDER)
COMMANDS = ("create_ticket", "attach_to_current", "pause_recording", "resume_recording")


@dataclass
class Page:
    """A browser page: sessionStorage (tab id), page memory (session) and its view of things."""

    role: str
    node: str
    tab_id: str | None = None
    session: str | None = None
    conn: str | None = None  # the live connection, None while disconnected
    cursor: int = 0  # how much of the stream log it has consumed
    contacts: dict[str, ContactView] = field(default_factory=dict)
    media: MediaView | None = None

    def addressed(self, p: Publish) -> bool:
        return p.to_tab in (None, self.tab_id) and p.to_role in (None, self.role)

    def apply(self, p: Publish) -> None:
        if isinstance(p.message, ContactMessage):
            self.contacts[p.message.contact.contact_id] = p.message.contact
        elif isinstance(p.message, Media):
            self.media = p.message.media
        elif isinstance(p.message, Forget):
            for cid in p.message.contact_ids:
                self.contacts.pop(cid, None)


class AgentMachine(RuleBasedStateMachine):
    def __init__(self) -> None:
        super().__init__()
        self.agent_rules = Rules()
        self.state: AgentState = new_agent("agent", self.agent_rules)
        self.stored = Stored()  # what the store holds after every commit's delta
        self.now = 1000.0
        self.nodes: frozenset[str] = frozenset(NODES)
        self.pages: list[Page] = []
        self.log: list[Publish] = []
        self.counter = 0
        self.epochs: dict[str, int] = {}
        self.owners: dict[str, str | None] = {}
        self.pending_closes: list[TabClosed] = []
        self.last: Outcome | None = None
        self.event: AgentEvent | None = None
        self.recent_reports: list[ContactEvent] = []  # newest last

    @initialize(
        failover=st.booleans(),
        media_less=st.booleans(),
        grace=st.sampled_from([0.0, 5.0, 30.0]),
    )
    def configure(self, failover: bool, media_less: bool, grace: float) -> None:
        self.agent_rules = Rules(
            grace_seconds=grace,
            failover=failover,
            media_less=media_less,
            finished_retention_seconds=60.0,
            tab_retention_seconds=120.0,
            node_timeout_seconds=10.0,
        )
        self.state = new_agent("agent", self.agent_rules)

    # -- plumbing ------------------------------------------------------------------------

    def fresh(self, prefix: str) -> str:
        self.counter += 1
        return f"{prefix}{self.counter}"

    def apply(self, event: AgentEvent) -> Outcome:
        before = self.state
        before_copy = copy.deepcopy(before)
        ctx = Context(now=self.now, live_nodes=self.nodes)
        out = handle(before, event, ctx, self.agent_rules)
        assert before == before_copy, "handle mutated its input"
        self.stored.commit(out)
        if out.refusal is not None:
            assert out.state is before and out.effects == () and not out.changed
        else:
            if not out.changed:
                # The hub neither commits nor publishes an unchanged outcome.
                assert out.effects == () and out.state == before
            self.state = out.state
            self.log.extend(e for e in out.effects if isinstance(e, Publish))
        self.last, self.event = out, event
        if out.refusal is not None:
            label(f"refused {out.refusal.code}")
        elif isinstance(event, CommandIssued):
            label("command accepted")
        for cid, contact in self.state.contacts.items():
            old = before.contacts.get(cid)
            if old is not None and old.owner_tab and contact.owner_tab not in (None, old.owner_tab):
                label("owner moved to another tab")
        if any(t.connected and t.node not in self.nodes for t in self.state.tabs.values()):
            label("tab on a node missing from the live set")
        self.sync_pages()
        return out

    def sync_pages(self) -> None:
        """Connections the daemon counts as gone are gone; the live ones consume the log."""
        for page in self.pages:
            if page.conn is None:
                continue
            tab = self.state.tabs.get(page.tab_id or "")
            if tab is None or not tab.connected or tab.conn_id != page.conn:
                page.conn = None
                continue
            for p in self.log[page.cursor :]:
                if page.addressed(p):
                    page.apply(p)
            page.cursor = len(self.log)

    def connect(self, page: Page, tab_id: str | None, session: str | None, replay: bool) -> None:
        conn = self.fresh("conn")
        out = self.apply(
            TabOpened(
                node=page.node,
                role=page.role,  # type: ignore[arg-type]
                tab_id=tab_id,
                session=session,
                conn_id=conn,
                fresh_tab_id=self.fresh("tab"),
                fresh_session=self.fresh("sess"),
            )
        )
        assert out.refusal is None and out.assignment is not None
        a = out.assignment
        tab = self.state.tabs[a.tab_id]
        assert tab.conn_id == conn and tab.connected and tab.session == a.session
        assert a.reassigned == (tab_id is not None and a.tab_id != tab_id)
        page.tab_id, page.session, page.conn = a.tab_id, a.session, conn
        if replay:
            # Gap-free resume: exactly what it missed, addressed to the id it has now.
            for p in self.log[page.cursor :]:
                if page.addressed(p):
                    page.apply(p)
        else:
            snap = snapshot(self.state, self.nodes)
            page.contacts = {c.contact_id: c for c in snap.contacts}
            page.media = snap.media
        page.cursor = len(self.log)

    def pick(
        self, index: int, *, connected: bool | None = None, role: str | None = None
    ) -> Page | None:
        pages = [
            p
            for p in self.pages
            if (connected is None or (p.conn is not None) == connected)
            and (role is None or p.role == role)
        ]
        return pages[index % len(pages)] if pages else None

    # -- tabs ----------------------------------------------------------------------------

    @precondition(lambda self: len(self.pages) < 7)
    @rule(node=st.sampled_from(NODES), media=st.integers(0, 4))
    def open_page(self, node: str, media: int) -> None:
        page = Page(role="media" if media == 0 else "embedded", node=node)
        self.pages.append(page)
        self.connect(page, None, None, replay=False)

    @precondition(lambda self: self.pages)
    @rule(
        index=st.integers(0, 20),
        keep_session=st.booleans(),
        replay=st.booleans(),
        node=st.sampled_from(NODES),
    )
    def reconnect(self, index: int, keep_session: bool, replay: bool, node: str) -> None:
        """A reload (no session) or a network blip (session kept), maybe through another node.

        A still-open old connection is dropped without the daemon hearing of it yet: its
        close arrives later, if at all."""
        page = self.pick(index)
        assert page is not None
        if page.conn is not None and page.tab_id is not None:
            self.pending_closes.append(TabClosed(tab_id=page.tab_id, conn_id=page.conn))
        page.conn = None
        page.node = node
        self.connect(page, page.tab_id, page.session if keep_session else None, replay)

    @precondition(lambda self: self.pages and len(self.pages) < 7)
    @rule(index=st.integers(0, 20))
    def duplicate(self, index: int) -> None:
        """Duplicating a browser tab copies sessionStorage (the tab id), nothing else."""
        original = self.pick(index)
        assert original is not None
        page = Page(role=original.role, node=original.node)
        self.pages.append(page)
        live_before = {
            t.tab_id for t in self.state.tabs.values() if t.connected and t.node in self.nodes
        }
        owned_before = {c.contact_id: c.owner_tab for c in self.state.contacts.values()}
        self.connect(page, original.tab_id, None, replay=False)
        if original.tab_id in live_before and original.conn is not None:
            assert page.tab_id != original.tab_id
            for cid, owner in owned_before.items():
                if cid in self.state.contacts and owner == original.tab_id:
                    # The original keeps what it owned (unless time alone moved it).
                    assert self.state.contacts[cid].owner_tab != page.tab_id

    @precondition(lambda self: any(p.conn for p in self.pages))
    @rule(index=st.integers(0, 20))
    def close(self, index: int) -> None:
        page = self.pick(index, connected=True)
        assert page is not None and page.tab_id is not None and page.conn is not None
        conn, page.conn = page.conn, None
        self.apply(TabClosed(tab_id=page.tab_id, conn_id=conn))

    @precondition(lambda self: self.pending_closes)
    @rule(index=st.integers(0, 20))
    def late_close(self, index: int) -> None:
        closed = self.pending_closes.pop(index % len(self.pending_closes))
        before = self.state
        out = self.apply(closed)
        tab = before.tabs.get(closed.tab_id)
        if tab is not None and tab.conn_id != closed.conn_id:
            # A superseded connection's close changes nothing about the tab.
            assert self.state.tabs.get(closed.tab_id) is None or (
                self.state.tabs[closed.tab_id].conn_id == tab.conn_id
            )
        assert out.refusal is None

    @rule(nodes=st.just(set(NODES)) | st.sets(st.sampled_from(NODES)))
    def live_nodes_change(self, nodes: set[str]) -> None:
        self.nodes = frozenset(nodes)
        self.apply(Tick())

    @rule(dt=st.sampled_from([0.5, 3.0, 6.0, 11.0, 31.0, 70.0, 130.0]))
    def time_passes(self, dt: float) -> None:
        self.now += dt
        self.apply(Tick())

    # -- contacts, commands, media, workflow ---------------------------------------------

    @precondition(lambda self: self.recent_reports and any(p.conn for p in self.pages))
    @rule(index=st.integers(0, 20), back=st.integers(0, 5))
    def repeat_report(self, index: int, back: int) -> None:
        """Another tab sends the very report one of the last ones was (the shell decodes
        identical frames once): where the core says the state absorbs it, a walk of the
        state agrees."""
        page = self.pick(index, connected=True)
        assert page is not None and page.tab_id is not None
        report = self.recent_reports[-1 - back % len(self.recent_reports)]
        event = ContactReported(tab_id=page.tab_id, report=report)
        ctx = Context(self.now, self.nodes)
        if absorbs(self.state, event, ctx, self.agent_rules):
            label("repeat absorbed")
            walked = handle(unmemoized(self.state), event, ctx, self.agent_rules)
            assert walked.refusal is None and not walked.changed and walked.effects == ()
            assert walked.state == self.state
        out = self.apply(event)
        if page.role == "media":
            assert out.refusal is not None and out.refusal.code == ErrorCode.WRONG_ROLE

    @precondition(lambda self: any(p.conn for p in self.pages))
    @rule(
        index=st.integers(0, 20),
        cid=st.sampled_from(CONTACT_IDS),
        event=st.sampled_from(EVENTS),
        chat=st.booleans(),
        attributes=st.sampled_from([{}, {"a": "1"}, {"a": "2"}, {"b": "1"}]),
    )
    def report(
        self, index: int, cid: str, event: str, chat: bool, attributes: dict[str, str]
    ) -> None:
        page = self.pick(index, connected=True)
        assert page is not None and page.tab_id is not None
        before = self.state.contacts.get(cid)
        snap = ContactSnapshot(
            contact_id=cid, type="chat" if chat else "voice", attributes=attributes
        )
        report = ContactEvent(event=event, contact=snap)  # type: ignore[arg-type]
        out = self.apply(ContactReported(tab_id=page.tab_id, report=report))
        self.recent_reports = [*self.recent_reports[-5:], report]
        if page.role == "media":
            assert out.refusal is not None and out.refusal.code == ErrorCode.WRONG_ROLE
            return
        assert out.refusal is None
        if cid in self.state.forgotten:  # a late report of a pruned contact is ignored
            assert cid not in self.state.contacts and not out.effects
            return
        after = self.state.contacts[cid]
        if before is not None:
            assert EVENT_ORDER[after.state] >= EVENT_ORDER[before.state]
        else:
            # A contact nobody had reported is owned by its first reporter (unless a
            # second chat made time move it already: nothing moves it within one event).
            assert after.owner_tab == page.tab_id

    @precondition(lambda self: any(p.conn for p in self.pages))
    @rule(
        index=st.integers(0, 20),
        cid=st.sampled_from(CONTACT_IDS),
        name=st.sampled_from(COMMANDS),
        believe=st.booleans(),
        offset=st.integers(-2, 1),
    )
    def command(self, index: int, cid: str, name: str, believe: bool, offset: int) -> None:
        page = self.pick(index, connected=True)
        assert page is not None and page.tab_id is not None
        current = self.state.contacts.get(cid)
        if believe and cid in page.contacts:
            epoch = page.contacts[cid].epoch  # what the page was told
        else:
            epoch = (current.epoch if current else 1) + offset
        epoch = max(epoch, 1)
        cmd = Command(
            name=name,  # type: ignore[arg-type]
            contact_id=cid,
            epoch=epoch,
            ticket_id=5 if name == "attach_to_current" else None,
        )
        out = self.apply(CommandIssued(tab_id=page.tab_id, command=cmd))
        if out.refusal is None:
            assert current is not None
            assert current.owner_tab == page.tab_id and current.epoch == epoch
            if believe and cid in page.contacts:
                assert page.contacts[cid].owner_tab == page.tab_id
        elif current is not None and epoch != current.epoch:
            assert out.refusal.code == ErrorCode.STALE_EPOCH
        elif current is not None and current.owner_tab != page.tab_id:
            assert out.refusal.code == ErrorCode.NOT_OWNER

    @precondition(
        lambda self: any(
            p.conn and v.owner_tab == p.tab_id and v.contact_id in self.state.contacts
            for p in self.pages
            for v in p.contacts.values()
        )
    )
    @rule(index=st.integers(0, 20), name=st.sampled_from(COMMANDS))
    def owner_command(self, index: int, name: str) -> None:
        """A page that was told it owns a contact acts under the epoch it was told: accepted."""
        owned = [
            (p, v)
            for p in self.pages
            if p.conn
            for v in p.contacts.values()
            # A pruned contact lingers in a page that followed the stream (nothing tells
            # it to drop the contact); commands for it are refused as unknown.
            if v.owner_tab == p.tab_id and v.contact_id in self.state.contacts
        ]
        page, view = owned[index % len(owned)]
        assert page.tab_id is not None
        cmd = Command(
            name=name,  # type: ignore[arg-type]
            contact_id=view.contact_id,
            epoch=view.epoch,
            ticket_id=5 if name == "attach_to_current" else None,
        )
        out = self.apply(CommandIssued(tab_id=page.tab_id, command=cmd))
        if out.refusal is not None:
            assert out.refusal.code == ErrorCode.OUT_OF_ORDER  # pausing a paused recording
            assert name in ("pause_recording", "resume_recording")

    @precondition(lambda self: any(p.conn for p in self.pages))
    @rule(
        index=st.integers(0, 20),
        signed_in=st.booleans(),
        microphone=st.booleans(),
        audio_lost=st.booleans(),
    )
    def media_status(self, index: int, signed_in: bool, microphone: bool, audio_lost: bool) -> None:
        page = self.pick(index, connected=True)
        assert page is not None and page.tab_id is not None
        status = MediaStatus(signed_in=signed_in, microphone=microphone, audio_lost=audio_lost)
        out = self.apply(MediaReported(tab_id=page.tab_id, status=status))
        assert (out.refusal is None) == (page.role == "media")

    @rule(
        cid=st.sampled_from(CONTACT_IDS),
        ticket=st.none() | st.integers(1, 3),
        pop=st.booleans(),
    )
    def workflow(self, cid: str, ticket: int | None, pop: bool) -> None:
        pops = (PopRequest("ticket", id=ticket or 1),) if pop else ()
        owner = self.state.contacts[cid].owner_tab if cid in self.state.contacts else None
        out = self.apply(WorkflowReported(contact_id=cid, ticket_id=ticket, pops=pops))
        sent = [e for e in out.effects if isinstance(e, Publish) and e.message.type == "pop"]
        assert [p.to_tab for p in sent] == ([owner] if pop and owner is not None else [])

    @precondition(lambda self: any(p.conn for p in self.pages))
    @rule(index=st.integers(0, 20), cid=st.sampled_from(CONTACT_IDS), mid=st.integers(0, 3))
    def chat(self, index: int, cid: str, mid: int) -> None:
        page = self.pick(index, connected=True)
        assert page is not None and page.tab_id is not None
        msg = ChatMessage(contact_id=cid, message_id=f"m{mid}", participant="customer", text="x")
        out = self.apply(ChatReported(tab_id=page.tab_id, message=msg))
        contact = self.state.contacts.get(cid)
        if out.refusal is None:
            assert contact is not None and contact.type == "chat" and page.role == "embedded"
            assert len({line.message_id for line in contact.chat}) == len(contact.chat)

    # -- invariants ----------------------------------------------------------------------

    @invariant()
    def one_owner_and_it_is_a_real_embedded_tab(self) -> None:
        for contact in self.state.contacts.values():
            if contact.owner_tab is not None:
                tab = self.state.tabs.get(contact.owner_tab)
                assert tab is not None and tab.role == "embedded"
            if contact.grace_until is not None:
                assert contact.owner_tab is not None

    @invariant()
    def ownership_follows_liveness_and_rules(self) -> None:
        live_embedded = {
            t.tab_id for t in self.state.tabs.values() if t.connected and t.role == "embedded"
        }
        for cid, contact in self.state.contacts.items():
            owner = self.state.tabs.get(contact.owner_tab or "")
            if owner is not None and not owner.connected:
                # A gone owner holds the contact only for its grace period.
                assert contact.grace_until is not None and contact.grace_until > self.now
            if contact.owner_tab is None and self.agent_rules.failover:
                assert not live_embedded, f"{cid} has no owner while a live tab could take it"
            previous = self.owners.get(cid)
            if not self.agent_rules.failover and previous is not None and contact.owner_tab:
                # Failover off: only a tab reporting the released contact may take it.
                reporter = self.event.tab_id if isinstance(self.event, ContactReported) else None
                assert contact.owner_tab in (previous, reporter), "failover is off"
            self.owners[cid] = contact.owner_tab
        for cid in list(self.owners):
            if cid not in self.state.contacts:
                del self.owners[cid]

    @invariant()
    def media_presence_is_tab_liveness(self) -> None:
        if self.state.published_media is None:
            return
        present = any(t.connected and t.role == "media" for t in self.state.tabs.values())
        assert self.state.published_media["present"] == present

    @invariant()
    def epochs_never_decrease(self) -> None:
        for cid in list(self.epochs):
            if cid not in self.state.contacts:
                del self.epochs[cid]  # pruned: see the report on re-created contacts
        for cid, contact in self.state.contacts.items():
            assert contact.epoch >= self.epochs.get(cid, 1)
            self.epochs[cid] = contact.epoch

    @invariant()
    def publications_reflect_the_state(self) -> None:
        last: dict[str, ContactView] = {}
        media: MediaView | None = None
        for p in self.log:
            if isinstance(p.message, ContactMessage):
                last[p.message.contact.contact_id] = p.message.contact
            elif isinstance(p.message, Media):
                media = p.message.media
                assert p.to_tab is None and p.to_role is None
        for cid, contact in self.state.contacts.items():
            assert last[cid] == contact_view(contact)
        if self.state.published_media is not None:
            assert media is not None
            assert media.model_dump(mode="json") == self.state.published_media

    @invariant()
    def every_connected_page_sees_what_the_daemon_sees(self) -> None:
        daemon = {cid: contact_view(c) for cid, c in self.state.contacts.items()}
        connected_ids = []
        for page in self.pages:
            if page.conn is None:
                continue
            connected_ids.append(page.tab_id)
            assert page.cursor == len(self.log)
            assert page.contacts == daemon, page.tab_id  # pruned contacts are forgotten too
            if self.state.published_media is not None:
                assert page.media is not None
                assert page.media.model_dump(mode="json") == self.state.published_media
        assert len(connected_ids) == len(set(connected_ids)), "two live pages share a tab id"

    @invariant()
    def time_has_nothing_left_to_do_right_now(self) -> None:
        """Every event leaves what time decides applied: a tick at once changes nothing."""
        if self.last is None:
            return  # a new agent: its first event of any kind publishes the media view
        state = unmemoized(self.state)  # walked, not answered from what the core kept
        out = handle(state, Tick(), Context(self.now, self.nodes), self.agent_rules)
        assert not out.changed and out.state is state

    @invariant()
    def what_the_core_kept_about_time_decides_as_a_walk_would(self) -> None:
        """A tick decided on the kept `settled`/`deadline` (a repeat's fast path) changes
        exactly what one decided by walking the state changes, before and at the deadline."""
        if self.last is None:
            return
        deadline = next_deadline(self.state, self.agent_rules, self.nodes)
        later = [self.now, self.now + 0.5] if deadline is None else [deadline - 0.001, deadline]
        for at in later:
            ctx = Context(at, self.nodes)
            # On a copy with what was kept: a tick at a later instant keeps that instant,
            # which would turn the machine's clock back for the next rule.
            kept = handle(replace(self.state), Tick(), ctx, self.agent_rules)
            walked = handle(unmemoized(self.state), Tick(), ctx, self.agent_rules)
            assert kept.changed == walked.changed
            assert kept.state == walked.state and kept.effects == walked.effects

    @invariant()
    def indexes_and_encoding_agree_with_a_rebuild(self) -> None:
        """Decoding the head and every entry the commits' deltas left in the store gives the
        state the core keeps, contact order included, and what it keeps incrementally equals
        what a decode computes from scratch."""
        if self.stored.head is None:
            return  # nothing committed yet
        rebuilt = self.stored.load()
        assert rebuilt == self.state
        assert list(rebuilt.contacts) == list(self.state.contacts)  # creation order
        assert self.stored.entries.keys() == self.state.contacts.keys()
        assert all(self.stored.entries[c] == self.state.entry(c) for c in self.state.contacts)
        assert self.stored.head == self.state.head() == unmemoized(self.state).head()
        assert list(rebuilt.open_ids) == list(self.state.open_ids)
        assert dict(rebuilt.finish_order) == dict(self.state.finish_order)
        assert dict(rebuilt.owned) == dict(self.state.owned)
        assert rebuilt.contact_bytes == self.state.contact_bytes

    @invariant()
    def next_deadline_is_when_time_alone_changes_the_agent(self) -> None:
        if self.last is None:
            return
        deadline = next_deadline(self.state, self.agent_rules)
        assert deadline is None or deadline > self.now
        if any(t.connected and t.node not in self.nodes for t in self.state.tabs.values()):
            return  # node timeouts depend on the live set, which the state does not hold
        quiet = self.now + 10_000 if deadline is None else deadline - 0.001
        state = unmemoized(self.state)
        if quiet > self.now:
            out = handle(state, Tick(), Context(quiet, self.nodes), self.agent_rules)
            assert not out.changed, "a Tick before next_deadline changed the agent"
        if deadline is not None:
            out = handle(state, Tick(), Context(deadline, self.nodes), self.agent_rules)
            assert out.changed, "nothing happened at next_deadline"


def unmemoized(state: AgentState) -> AgentState:
    """The same state without what the core kept about it, so `handle` walks it."""
    return replace(state, settled=None, deadline=None, absorbed=(), packed_head=None)


AgentMachine.TestCase.settings = settings(
    max_examples=200,
    stateful_step_count=60,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow],
)
TestAgentMachine = AgentMachine.TestCase
