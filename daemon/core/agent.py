"""The agent state machine: tabs, duplicate detection, contact merging, owner election.

`handle(state, event, ctx, rules)` is pure: it never touches the input state, reads no clock
and does no I/O. It returns the new state and the effects.

An event costs what it touches. The state is immutable, so the work is done on a `_Change`
that copies a map only when it first writes to it and replaces only the contacts and tabs it
changes; everything else is shared with the input. Publications are derived from the contacts
actually replaced (their tab views before and after), the media view is rebuilt only when a
tab, the media status or a contact's voice activity changed, and what time alone can change is
found through the aggregate's indexes (owners, open contacts, the finish queue) rather than by
walking every contact. A duplicate report that adds nothing replaces nothing: it is decided
without a copy and comes back unchanged.
"""

from collections.abc import Mapping
from dataclasses import replace
from typing import Any

from daemon.core.confirmation import (
    CONFIRMED,
    REFUSED,
    UNCONFIRMED,
    ConnectAnswer,
    ConnectFacts,
    ConnectUnavailable,
    confirmed_fields,
    refusal,
)
from daemon.core.effects import Outcome, Publish, Refusal, TabAssignment, WakeWorkflow
from daemon.core.events import (
    AgentEvent,
    ChatReported,
    CommandIssued,
    ConnectAnswered,
    ContactReported,
    Context,
    MediaReported,
    Rules,
    TabClosed,
    TabOpened,
    Tick,
    WorkflowReported,
)
from daemon.core.state import (
    EVENT_ORDER,
    FILLED_FIELDS,
    FINISHED_EVENTS,
    REPORTED_FIELDS,
    AgentCommand,
    AgentState,
    ChatLine,
    Contact,
    MediaState,
    Tab,
)
from daemon.core.views import build_media_view, contact_wire, voice_active
from protocol.errors import ErrorCode
from protocol.messages import (
    ContactEvent,
    ContactSnapshot,
    Forget,
    Media,
    MediaView,
    Notify,
    Pop,
)

RECORDING_COMMANDS = ("pause_recording", "resume_recording")


def recording_requested(contact: Contact) -> bool:
    """Whether the agent's latest recording command asked for a pause (confirmed or not)."""
    for issued in reversed(contact.commands):
        if issued.name in RECORDING_COMMANDS:
            return issued.name == "pause_recording"
    return contact.recording_paused


# Events a tab causes by adding to the state: these are refused when the state is full.
_GROWING = (ContactReported, ChatReported, CommandIssued)
ABSORBED_KEPT = 8  # reports each state remembers it absorbs (`absorbs`)


def new_agent(agent_id: str, rules: Rules) -> AgentState:
    return AgentState(
        agent_id=agent_id, media=MediaState(media_less=rules.media_less, gate=rules.media_gate)
    )


def _with(mapping: Mapping[Any, Any] | None, key: Any, value: Any) -> dict[Any, Any]:
    new = dict(mapping or {})
    new[key] = value
    return new


def _wakes(old: Contact, new: Contact) -> bool:
    """Whether the change may give the workflow something to do: anything but the runner's
    own report of where the workflow stands."""
    if old.workflow == new.workflow and old.workflow_reason == new.workflow_reason:
        return old != new
    return old != new.evolve(workflow=old.workflow, workflow_reason=old.workflow_reason)


def _fold(contact: Contact, event: str, snap: ContactSnapshot, now: float) -> dict[str, Any]:
    """What folding one tab's report into the contact changes (empty: the report adds
    nothing): a pure function of the two, so a state can tell which reports it absorbs."""
    updates: dict[str, Any] = {}
    if event not in contact.events_seen:
        updates["events_seen"] = (*contact.events_seen, event)
        updates["event_times"] = _with(contact.event_times, event, now)
    if EVENT_ORDER[event] > EVENT_ORDER[contact.state]:
        updates["state"] = event
    if updates.get("state", contact.state) in FINISHED_EVENTS and contact.finished_at is None:
        updates["finished_at"] = now
    if snap.attributes and contact.confirmation != CONFIRMED:
        attributes = contact.attributes
        new_attributes = {k: v for k, v in snap.attributes.items() if attributes.get(k) != v}
        if new_attributes:
            updates["attributes"] = {**attributes, **new_attributes}
    if snap.analysis:
        analysis = contact.analysis
        new_analysis = {str(k): v for k, v in snap.analysis.items() if analysis.get(str(k)) != v}
        if new_analysis:
            updates["analysis"] = {**analysis, **new_analysis}
    for name in FILLED_FIELDS:
        current = getattr(contact, name)
        merged = current or getattr(snap, name)
        if merged != current:
            updates[name] = merged
    return updates


def _due(queue: Mapping[str, float], wait: float, now: float) -> list[str]:
    """The keys at the head of a time-ordered queue that have waited `wait` by `now`."""
    due = []
    for key, at in queue.items():
        if at + wait > now:
            break
        due.append(key)
    return due


class _Change:
    """One event's work: reads fall through to the input state, writes copy on first use."""

    __slots__ = (
        "_copied",
        "assignment",
        "base",
        "contact_bytes",
        "contacts",
        "ctx",
        "dirty",
        "effects",
        "finish_order",
        "forgotten",
        "media",
        "media_dirty",
        "next_order",
        "open_ids",
        "order",
        "owned",
        "pruned",
        "refusal",
        "rules",
        "tabs",
        "touched",
        "writes",
    )

    def __init__(self, state: AgentState, ctx: Context, rules: Rules) -> None:
        self.base = state
        self.ctx = ctx
        self.rules = rules
        # Working maps: the input's own until the first write, then a private copy.
        self.tabs: Mapping[str, Tab] = state.tabs
        self.contacts: Mapping[str, Contact] = state.contacts
        self.open_ids: Mapping[str, None] = state.open_ids
        self.finish_order: Mapping[str, float] = state.finish_order
        self.owned: Mapping[str | None, frozenset[str]] = state.owned
        self.order: Mapping[str, int] = state.order
        self.next_order = state.next_order
        self.forgotten: Mapping[str, float] = state.forgotten
        self.media: MediaState = state.media
        self.contact_bytes = state.contact_bytes
        self._copied: set[str] = set()
        self.touched: dict[str, None] = {}  # contact ids written, in order
        self.pruned: list[str] = []
        self.dirty = False  # anything but the contacts changed
        self.writes = 0  # how many changes were made: none means the input stands as it is
        self.media_dirty = state.published_media is None
        self.effects: list[Publish | WakeWorkflow] = []
        self.refusal: Refusal | None = None
        self.assignment: TabAssignment | None = None

    def _own(self, name: str) -> dict[Any, Any]:
        """The working map `name`, copied from the input the first time it is written."""
        current: Any = getattr(self, name)
        if name not in self._copied:
            current = dict(current)
            setattr(self, name, current)
            self._copied.add(name)
        result: dict[Any, Any] = current
        return result

    # -- writes --------------------------------------------------------------------------

    def put(self, new: Contact) -> None:
        """Replace (or add) one contact and keep the indexes in step."""
        cid = new.contact_id
        old = self.contacts.get(cid)
        self.writes += 1
        self._own("contacts")[cid] = new
        self.touched[cid] = None
        if old is None or old.owner_tab != new.owner_tab:
            owned = self._own("owned")
            if old is not None:
                self._disown(owned, old.owner_tab, cid)
            owned[new.owner_tab] = owned.get(new.owner_tab, frozenset()) | {cid}
        if old is None:
            self._own("order")[cid] = self.next_order
            self.next_order += 1
        if old is None and new.finished_at is None:
            self._own("open_ids")[cid] = None
        if new.finished_at is not None and (old is None or old.finished_at is None):
            self._own("open_ids").pop(cid, None)
            self._own("finish_order")[cid] = new.finished_at
        if voice_active(new) != (old is not None and voice_active(old)):
            self.media_dirty = True
        self.contact_bytes += len(new.packed()) - (len(old.packed()) if old else 0)

    def drop(self, cid: str) -> None:
        """Forget a contact: pruned after retention, or abandoned while open."""
        old = self.contacts[cid]
        self.writes += 1
        del self._own("contacts")[cid]
        self._disown(self._own("owned"), old.owner_tab, cid)
        self._own("open_ids").pop(cid, None)
        self._own("finish_order").pop(cid, None)
        self._own("order").pop(cid)
        self._own("forgotten")[cid] = self.ctx.now
        self.contact_bytes -= len(old.packed())
        self.touched[cid] = None
        self.pruned.append(cid)
        if voice_active(old):
            self.media_dirty = True

    @staticmethod
    def _disown(owned: dict[str | None, frozenset[str]], owner: str | None, cid: str) -> None:
        rest = owned.get(owner, frozenset()) - {cid}
        if rest:
            owned[owner] = rest
        else:
            owned.pop(owner, None)

    def put_tab(self, tab: Tab) -> None:
        self._own("tabs")[tab.tab_id] = tab
        self.dirty = self.media_dirty = True
        self.writes += 1

    def drop_tab(self, tab_id: str) -> None:
        del self._own("tabs")[tab_id]
        self.dirty = self.media_dirty = True
        self.writes += 1

    def set_media(self, media: MediaState) -> None:
        if media != self.media:
            self.media = media
            self.dirty = self.media_dirty = True
        self.writes += 1

    def owned_by(self, tab_id: str | None) -> list[Contact]:
        """The contacts `tab_id` owns (None: without owner), in creation order."""
        contacts = [self.contacts[cid] for cid in self.owned.get(tab_id, ())]
        return sorted(contacts, key=lambda c: (c.created_at, c.contact_id))

    # -- liveness ------------------------------------------------------------------------

    def live(self, tab: Tab | None) -> bool:
        if tab is None or not tab.connected:
            return False
        if tab.node in self.ctx.live_nodes:
            return True
        return self.ctx.now - tab.connected_at < self.rules.node_timeout_seconds

    def successor(self, exclude: str | None) -> str | None:
        """The live embedded tab that connected first: deterministic, and the longest-lived."""
        candidates = [
            t
            for t in self.tabs.values()
            if t.role == "embedded" and t.tab_id != exclude and self.live(t)
        ]
        if not candidates:
            return None
        return min(candidates, key=lambda t: (t.connected_at, t.tab_id)).tab_id

    def refuse(self, code: ErrorCode, message: str) -> None:
        self.refusal = Refusal(code, message)

    # -- time ----------------------------------------------------------------------------

    def expire(self) -> None:
        """Apply everything that time alone decides: dead nodes, grace, failover, pruning.

        Costs the tabs (bounded), the contacts of gone owners or of none, the open contacts
        (bounded) and the due heads of the finish and forget queues: never the whole history.
        One pass reaches a fixed point (each step only feeds the ones after it), so running
        it again at the same instant changes nothing.
        """
        now = self.ctx.now
        for tab in list(self.tabs.values()):
            if tab.connected and not self.live(tab):
                self.put_tab(replace(tab, connected=False, disconnected_at=now))
        for owner in [o for o in self.owned if o is not None]:
            if self.live(self.tabs.get(owner)):
                continue
            for contact in self.owned_by(owner):
                grace_until = contact.grace_until
                if grace_until is None:
                    grace_until = now + self.rules.grace_seconds
                    if grace_until > now:
                        self.put(contact.evolve(grace_until=grace_until))
                        continue
                if grace_until <= now:  # (a zero grace period ends as it starts)
                    # Without failover the contact is released, not handed to another tab.
                    heir = self.successor(owner) if self.rules.failover else None
                    self.transfer(contact, heir)
        if self.rules.failover and None in self.owned:
            heir = self.successor(None)
            if heir is not None:
                for contact in self.owned_by(None):
                    self.transfer(contact, heir)
        idle = self.rules.idle_contact_seconds
        for cid in [c for c in self.open_ids if self.contacts[c].last_active + idle <= now]:
            self.drop(cid)
        retention = self.rules.finished_retention_seconds
        for cid in _due(self.finish_order, retention, now):
            self.drop(cid)
        for cid in _due(self.forgotten, retention, now):
            del self._own("forgotten")[cid]
            self.dirty = True
            self.writes += 1
        for tab in list(self.tabs.values()):
            if (
                not tab.connected
                and tab.tab_id not in self.owned
                and (tab.disconnected_at or now) + self.rules.tab_retention_seconds <= now
            ):
                self.drop_tab(tab.tab_id)

    def transfer(self, contact: Contact, tab_id: str | None) -> Contact:
        """Hand ownership on; every change of owner (even to nobody) takes a new epoch."""
        if tab_id is None and contact.owner_tab is None:
            return contact
        moved = contact.evolve(owner_tab=tab_id, epoch=contact.epoch + 1, grace_until=None)
        self.put(moved)
        return moved

    # -- tabs ----------------------------------------------------------------------------

    def open_tab(self, event: TabOpened) -> None:
        presented = self.tabs.get(event.tab_id) if event.tab_id else None
        if presented is not None and presented.role != event.role:
            presented = None  # an id reused across roles is not the same tab
        if presented is None:
            tab_id = event.tab_id if event.tab_id and event.tab_id not in self.tabs else None
            reassigned = event.tab_id is not None and tab_id is None
            tab_id = tab_id or event.fresh_tab_id
            session = event.session if event.again and event.session else event.fresh_session
        elif presented.conn_id == event.conn_id:
            # The same connection registering again (after a store outage, or a lapse of its
            # node): the same tab, whatever session it last heard of.
            tab_id, session, reassigned = presented.tab_id, presented.session, False
        elif event.again:
            # Its id moved on to another connection (a reload, a duplicate) while this one was
            # paused or closing: it may not take it back.
            self.refuse(
                ErrorCode.NOT_OWNER, f"tab {presented.tab_id} is open on another connection"
            )
            return
        elif self.live(presented) and event.session != presented.session:
            tab_id, session, reassigned = event.fresh_tab_id, event.fresh_session, True
        else:
            tab_id, reassigned = presented.tab_id, False
            session = (
                presented.session if event.session == presented.session else (event.fresh_session)
            )
        if tab_id not in self.tabs and not self.make_room_for_tab():
            return
        self.put_tab(
            Tab(
                tab_id=tab_id,
                role=event.role,
                session=session,
                conn_id=event.conn_id,
                node=event.node,
                connected=True,
                connected_at=self.ctx.now,
                zendesk_user_id=event.zendesk_user_id,
                agent_name=event.agent_name,
            )
        )
        for contact in self.owned_by(tab_id):
            if contact.grace_until is not None:
                self.put(contact.evolve(grace_until=None))
        if event.role == "embedded" and event.media_less is not None:
            self.set_media(replace(self.media, media_less=event.media_less))
        self.assignment = TabAssignment(tab_id=tab_id, session=session, reassigned=reassigned)

    def make_room_for_tab(self) -> bool:
        """At the tab bound, forget the longest-closed tab that owns nothing; else refuse."""
        if len(self.tabs) < self.rules.max_tabs:
            return True
        idle = [t for t in self.tabs.values() if not t.connected and t.tab_id not in self.owned]
        if not idle:
            self.refuse(
                ErrorCode.TOO_MANY_TABS, f"at most {self.rules.max_tabs} tabs per agent: close one"
            )
            return False
        oldest = min(idle, key=lambda t: (t.disconnected_at or 0.0, t.tab_id))
        self.drop_tab(oldest.tab_id)
        return True

    def close_tab(self, event: TabClosed) -> None:
        tab = self.tabs.get(event.tab_id)
        if tab is None or tab.conn_id != event.conn_id or not tab.connected:
            return  # a superseded connection's late close
        self.put_tab(replace(tab, connected=False, disconnected_at=self.ctx.now))
        for contact in self.owned_by(tab.tab_id):
            self.put(contact.evolve(grace_until=self.ctx.now + self.rules.grace_seconds))

    # -- contacts ------------------------------------------------------------------------

    def tab(self, tab_id: str) -> Tab | None:
        """The sending tab, or a refusal if the state no longer knows it (the store lost it)."""
        tab = self.tabs.get(tab_id)
        if tab is None:
            self.refuse(ErrorCode.HELLO_REQUIRED, f"tab {tab_id} is not registered: say hello")
        return tab

    def report(self, event: ContactReported) -> None:
        tab = self.tab(event.tab_id)
        if tab is None:
            return
        if tab.role != "embedded":
            self.refuse(ErrorCode.WRONG_ROLE, "only embedded tabs report contacts")
            return
        snap, answer = event.report.contact, event.answer
        if snap.contact_id in self.forgotten:
            return  # a late repeat of a contact already finished and pruned
        held = self.contacts.get(snap.contact_id)
        if held is None:
            refused = (
                refusal(answer, snap.contact_id, monitoring=snap.monitoring)
                if answer is not None
                else None
            )
            if refused is not None:
                self.refuse(*refused)  # Connect's word: nothing of it is kept, nobody elected
                return
            if len(self.open_ids) >= self.rules.max_open_contacts:
                self.refuse(
                    ErrorCode.TOO_MANY_CONTACTS,
                    f"at most {self.rules.max_open_contacts} open contacts per agent",
                )
                return
            contact = self.create(tab, event.report.event, snap, answer)
        elif answer is not None:
            # Another tab's report made it first, unconfirmed; this one brings Connect's word.
            contact = self.settle(held, answer)
        else:
            contact = held
        merged = self.merge(contact, event.report.event, snap)
        if self.refusal is not None:
            return
        if merged.owner_tab is None and merged.state != "destroyed" and self.live(tab):
            merged = merged.evolve(owner_tab=tab.tab_id, epoch=merged.epoch + 1)
        if merged is not held:
            self.put(merged)

    def create(
        self, tab: Tab, event: str, snap: ContactSnapshot, answer: ConnectAnswer | None
    ) -> Contact:
        """A new contact from the tab's report, and from Connect's facts where it gave them
        (they win: `merge` then leaves a confirmed contact's attributes alone)."""
        reported = {name: getattr(snap, name) for name in REPORTED_FIELDS + FILLED_FIELDS}
        if isinstance(answer, ConnectFacts):
            reported |= confirmed_fields(
                answer, monitoring=snap.monitoring, max_attributes=self.rules.max_attributes
            )
        elif answer is not None:
            reported["confirmation"] = UNCONFIRMED
        contact = Contact.new(
            contact_id=snap.contact_id,
            state=event,
            owner_tab=tab.tab_id,
            epoch=1,
            created_at=self.ctx.now,
            **reported,
        )
        busy_chat = any(
            c.type == "chat" and c.refused is None
            for c in (self.contacts[cid] for cid in self.open_ids)
        )
        if contact.type == "chat" and busy_chat:
            contact = contact.evolve(refused="second_chat")
            self.notify_owner(
                contact,
                "error",
                "second_chat",
                "Only one chat at a time is supported: this chat gets no ticket.",
            )
        if not contact.has_workflow:
            contact = contact.evolve(workflow="none")
        return contact

    def merge(self, contact: Contact, event: str, snap: ContactSnapshot) -> Contact:
        """Fold one tab's report into the contact; a repeat from another tab changes nothing.

        Returns `contact` itself when the report adds nothing, so a duplicate costs no copy.
        """
        updates = _fold(contact, event, snap, self.ctx.now)
        if not updates:
            return contact
        if len(updates.get("attributes", ())) > self.rules.max_attributes:
            self.refuse(
                ErrorCode.TOO_MANY_ATTRIBUTES,
                f"at most {self.rules.max_attributes} attributes per contact",
            )
            return contact
        return contact.evolve(active_at=self.ctx.now, **updates)

    def settle(self, contact: Contact, answer: ConnectAnswer) -> Contact:
        """A contact held unconfirmed, once Connect answered: confirmed, with Connect's facts
        in place of the tabs', or refused: its Zendesk work stops and the owner is told."""
        if contact.confirmation != UNCONFIRMED or isinstance(answer, ConnectUnavailable):
            return contact
        refused = refusal(answer, contact.contact_id, monitoring=contact.monitoring)
        if refused is not None:
            code, text = refused
            self.notify_owner(
                contact, "error", code.value, f"{text}: Switchboard does no Zendesk work for it."
            )
            # The work it got while believed stops here, which an operator must look at.
            return contact.evolve(
                confirmation=REFUSED,
                refused=code.value,
                warnings=(*contact.warnings, text),
                workflow="failed",
                workflow_reason=code.value,
            )
        assert isinstance(answer, ConnectFacts)
        fields = confirmed_fields(
            answer, monitoring=contact.monitoring, max_attributes=self.rules.max_attributes
        )
        fields["warnings"] = contact.warnings + fields.get("warnings", ())
        return contact.evolve(**fields)

    def answered(self, event: ConnectAnswered) -> None:
        contact = self.contacts.get(event.contact_id)
        if contact is not None:
            settled = self.settle(contact, event.answer)
            if settled is not contact:
                self.put(settled)

    def chat(self, event: ChatReported) -> None:
        msg = event.message
        tab = self.tab(event.tab_id)
        if tab is None:
            return
        contact = self.contacts.get(msg.contact_id)
        if tab.role != "embedded":
            self.refuse(ErrorCode.WRONG_ROLE, "only embedded tabs report chat messages")
        elif contact is None:
            self.refuse(ErrorCode.UNKNOWN_CONTACT, f"no contact {msg.contact_id}")
        elif contact.type != "chat":
            self.refuse(ErrorCode.OUT_OF_ORDER, f"contact {msg.contact_id} is not a chat")
        elif any(line.message_id == msg.message_id for line in contact.chat):
            return  # the same line reported by another tab
        elif len(contact.chat) >= self.rules.max_chat_lines:
            self.refuse(
                ErrorCode.TOO_MANY_CHAT_LINES,
                f"at most {self.rules.max_chat_lines} chat lines per contact",
            )
        else:
            line = ChatLine(
                message_id=msg.message_id,
                participant=msg.participant,
                name=msg.name,
                text=msg.text,
                sent_at=msg.sent_at,
            )
            self.put(contact.evolve(chat=(*contact.chat, line), active_at=self.ctx.now))

    def command(self, event: CommandIssued) -> None:
        cmd = event.command
        contact = self.contacts.get(cmd.contact_id)
        if contact is None:
            self.refuse(ErrorCode.UNKNOWN_CONTACT, f"no contact {cmd.contact_id}")
        elif cmd.epoch != contact.epoch:
            self.refuse(
                ErrorCode.STALE_EPOCH,
                f"epoch {cmd.epoch} is stale: contact {cmd.contact_id} is at {contact.epoch}",
            )
        elif contact.owner_tab != event.tab_id:
            self.refuse(ErrorCode.NOT_OWNER, f"tab {contact.owner_tab} owns {cmd.contact_id}")
        elif cmd.name == "attach_to_current" and cmd.ticket_id is None:
            self.refuse(ErrorCode.INVALID_MESSAGE, "attach_to_current needs ticket_id")
        elif cmd.name in RECORDING_COMMANDS and recording_requested(contact) == (
            cmd.name == "pause_recording"
        ):
            self.refuse(ErrorCode.OUT_OF_ORDER, f"recording is already in that state: {cmd.name}")
        else:
            # A recording command is only asked for here: `recording_paused` changes when the
            # workflow reports what Amazon Connect confirmed, never on the tab's word.
            issued = AgentCommand(
                name=cmd.name, at=self.ctx.now, ticket_id=cmd.ticket_id, user_id=cmd.user_id
            )
            self.put(contact.evolve(commands=(*contact.commands, issued), active_at=self.ctx.now))

    def media_status(self, event: MediaReported) -> None:
        tab = self.tab(event.tab_id)
        if tab is None:
            return
        if tab.role != "media":
            self.refuse(ErrorCode.WRONG_ROLE, "media_status comes from the media CCP only")
            return
        status = event.status
        self.set_media(
            replace(
                self.media,
                signed_in=status.signed_in,
                microphone=status.microphone,
                in_call=status.in_call,
                audio_lost=status.audio_lost,
            )
        )

    def workflow(self, event: WorkflowReported) -> None:
        contact = self.contacts.get(event.contact_id)
        if contact is None:
            return
        updates: dict[str, Any] = {}
        if event.ticket_id is not None and event.ticket_id != contact.ticket_id:
            updates["ticket_id"] = event.ticket_id
        if event.user_id is not None and event.user_id != contact.user_id:
            updates["user_id"] = event.user_id
        if event.mode is not None and event.mode != contact.mode:
            updates["mode"] = event.mode
        confirmed = event.recording_paused
        if confirmed is not None and confirmed != contact.recording_paused:
            updates["recording_paused"] = confirmed
        warnings = tuple(dict.fromkeys(w for w in event.warnings if w not in contact.warnings))
        if warnings:
            updates["warnings"] = contact.warnings + warnings
        if event.status is not None and (event.status, event.reason) != (
            contact.workflow,
            contact.workflow_reason,
        ):
            updates["workflow"] = event.status
            updates["workflow_reason"] = event.reason
        if updates:
            self.put(contact.evolve(**updates))
        for pop in event.pops:
            if contact.owner_tab is not None:
                self.effects.append(
                    Publish.of(
                        Pop(
                            contact_id=contact.contact_id,
                            target=pop.target,  # type: ignore[arg-type]
                            id=pop.id,
                            query=pop.query,
                        ),
                        to_tab=contact.owner_tab,
                    )
                )
        for notice in event.notices:
            self.notify_owner(contact, notice.level, notice.code, notice.text)

    def notify_owner(self, contact: Contact, level: str, code: str, text: str) -> None:
        if contact.owner_tab is None:
            return
        note = Notify(contact_id=contact.contact_id, level=level, code=code, text=text)  # type: ignore[arg-type]
        self.effects.append(Publish.of(note, to_tab=contact.owner_tab))

    # -- publication ---------------------------------------------------------------------

    def publish_contacts(self) -> list[Publish | WakeWorkflow]:
        """A view for each contact whose tab view changed; a wake-up for each that changed."""
        effects: list[Publish | WakeWorkflow] = []
        for cid in self.touched:
            new = self.contacts.get(cid)
            if new is None:
                continue
            old = self.base.contacts.get(cid)
            if old is None or old.view_values() != new.view_values():
                effects.append(Publish(contact_wire(new)))
            if new.has_workflow and (old is None or _wakes(old, new)):
                effects.append(WakeWorkflow(cid))
        if self.pruned:
            pruned = tuple(sorted(cid for cid in self.pruned if cid in self.base.contacts))
            if pruned:
                effects.append(Publish.of(Forget(contact_ids=pruned)))
        return effects

    def publish_media(self) -> Mapping[str, Any] | None:
        """Publish the media view if it changed; returns the view last published."""
        published = self.base.published_media
        if not self.media_dirty:
            return published
        # After `expire` every connected tab is live, so presence is a connected media tab.
        view = build_media_view(
            self.media,
            present=any(t.role == "media" and t.connected for t in self.tabs.values()),
            contacts=(self.contacts[cid] for cid in self.open_ids),
        )
        dumped = view.model_dump(mode="json")
        if dumped == published:
            return published
        before = MediaView.model_validate(published) if published else None
        self.effects.append(Publish.of(Media(media=view)))
        if (
            view.media_less
            and before is not None
            and before.ready
            and not view.ready
            and before.active_contact is not None
        ):
            contact = self.contacts.get(before.active_contact)
            if contact is not None:
                self.notify_owner(
                    contact,
                    "urgent",
                    "media_lost",
                    "The media CCP carrying this call's audio was lost: reopen it now.",
                )
        return dumped

    def _head_kept(self, published: Mapping[str, Any] | None) -> bytes | None:
        """The input state's encoded head, if this change left every part of it as it was."""
        base = self.base
        same = (
            self.tabs is base.tabs
            and self.media is base.media
            and published is base.published_media
            and self.forgotten is base.forgotten
        )
        return base.packed_head if same else None

    def result(self, event: AgentEvent) -> Outcome:
        if self.refusal is not None:
            return Outcome(state=self.base, refusal=self.refusal, changed=False)
        if not self.writes and not self.effects and not self.media_dirty:
            return Outcome(state=self.base, changed=False)  # a repeat: decided without a copy
        grew = self.contact_bytes > self.base.contact_bytes
        if grew and self.contact_bytes > self.rules.max_state_bytes and isinstance(event, _GROWING):
            return Outcome(
                state=self.base,
                refusal=Refusal(
                    ErrorCode.STATE_TOO_LARGE,
                    f"the agent's state would exceed {self.rules.max_state_bytes} bytes",
                ),
                changed=False,
            )
        # Contact views first, so a tab learns it owns a contact before it gets its pop.
        effects = self.publish_contacts()
        effects.extend(self.effects)
        self.effects = []
        published = self.publish_media()
        effects.extend(self.effects)
        changed = self.dirty or bool(self.touched) or published is not self.base.published_media
        if not changed:
            return Outcome(state=self.base, effects=tuple(effects), changed=bool(effects))
        state = AgentState(
            agent_id=self.base.agent_id,
            tabs=self.tabs,
            contacts=self.contacts,
            media=self.media,
            published_media=published,
            forgotten=self.forgotten,
            open_ids=self.open_ids,
            finish_order=self.finish_order,
            owned=self.owned,
            order=self.order,
            next_order=self.next_order,
            contact_bytes=self.contact_bytes,
            packed_head=self._head_kept(published),
        )
        return Outcome(
            state=state,
            effects=tuple(effects),
            assignment=self.assignment,
            touched=tuple(self.touched),
        )


def handle(state: AgentState, event: AgentEvent, ctx: Context, rules: Rules) -> Outcome:
    """Apply one event to an agent; the input state is left untouched."""
    if isinstance(event, ContactReported) and absorbs(state, event, ctx, rules):
        return Outcome(state=state, changed=False)
    change = _Change(state, ctx, rules)
    if not _quiet(state, ctx, rules):
        change.expire()
    before = change.writes
    match event:
        case TabOpened():
            change.open_tab(event)
        case TabClosed():
            change.close_tab(event)
        case ContactReported():
            change.report(event)
        case ChatReported():
            change.chat(event)
        case CommandIssued():
            change.command(event)
        case MediaReported():
            change.media_status(event)
        case WorkflowReported():
            change.workflow(event)
        case ConnectAnswered():
            change.answered(event)
        case Tick():
            pass
    if change.refusal is None and change.writes != before:
        change.expire()  # adoption by a tab that just opened, with the same rules as time
    outcome = change.result(event)
    if outcome.refusal is None:
        # `expire` has just reached its fixed point in this state (one pass does).
        object.__setattr__(outcome.state, "settled", (rules, ctx.live_nodes, ctx.now))
        _keep_absorbed(state, outcome.state, event)
    return outcome


def absorbs(state: AgentState, event: ContactReported, ctx: Context, rules: Rules) -> bool:
    """Whether `handle` would find this report changes nothing, known without folding it.

    True when the very same report (one object: the shell decodes identical frames of an
    agent's tabs once) was folded by `handle` into the contact this state holds, that very
    contact object (`_keep_absorbed`), the sender is one of the state's embedded tabs, and
    time has nothing to do (`_quiet`). Folding a report into the contact it made is
    idempotent once the contact has an owner, whichever embedded tab sends it: every field
    it carries is merged already. The shell may decide a repeat on this alone, without
    taking the agent's turn.
    """
    if event.answer is not None:
        return False
    report = event.report
    contact = next((c for r, c in state.absorbed if r is report), None)
    if contact is None or state.contacts.get(contact.contact_id) is not contact:
        return False
    tab = state.tabs.get(event.tab_id)
    return tab is not None and tab.role == "embedded" and _quiet(state, ctx, rules)


def _keep_absorbed(before: AgentState, after: AgentState, event: AgentEvent) -> None:
    """Record in `after` the reports it absorbs (the newest `ABSORBED_KEPT`): this event's
    report if folding it left its contact settled, and `before`'s whose contact `after`
    still holds as the very same object or as one they still fold into without change.

    Tabs send each event in their own turn, so another tab repeats a contact's reports of
    several events after the first tab's last one changed the contact again: its earlier
    reports are then kept, re-checked against the new contact (`_fold`), not forgotten.
    """
    contacts = after.contacts
    kept: list[tuple[ContactEvent, Contact]] = []
    folded = None
    if isinstance(event, ContactReported) and event.answer is None:
        folded = event.report
    if folded is not None and _settled(contacts, folded):
        kept.append((folded, contacts[folded.contact.contact_id]))
    for report, contact in before.absorbed:
        held = contacts.get(contact.contact_id)
        if held is None or report is folded:
            continue
        # (`_fold` is asked only whether the report changes anything: no time is recorded.)
        if held is contact or (
            _settled(contacts, report) and not _fold(held, report.event, report.contact, 0.0)
        ):
            kept.append((report, held))
    object.__setattr__(after, "absorbed", tuple(kept[:ABSORBED_KEPT]))


def _settled(contacts: Mapping[str, Contact], report: ContactEvent) -> bool:
    """Folding `report` (with no Connect answer) can elect nobody any more: its contact is
    held with an owner, or destroyed."""
    contact = contacts.get(report.contact.contact_id)
    return contact is not None and (contact.owner_tab is not None or contact.state == "destroyed")


def _quiet(state: AgentState, ctx: Context, rules: Rules) -> bool:
    """Whether `expire` would find nothing to do in `state` now, known without walking it.

    True when `expire` found nothing to do in this very state at an earlier instant, with the
    same rules and live set, and `next_deadline` has not come: between those two instants
    only time moved, and time alone changes nothing before that deadline (what else could
    give `expire` work, a tab opening or a node coming back, is a new state or a new live
    set). Most events are repeats decided on the state the previous event made, so the
    walk is paid once per state, by the timer that the hub arms from the same deadline.
    """
    settled = state.settled
    if settled is None or settled[0] is not rules or settled[1] != ctx.live_nodes:
        return False
    if ctx.now < settled[2]:
        return False  # a clock that went back: no promise
    deadline = next_deadline(state, rules, ctx.live_nodes)
    return deadline is None or ctx.now < deadline


def next_deadline(
    state: AgentState, rules: Rules, live_nodes: frozenset[str] | None = None
) -> float | None:
    """When time alone will next change this agent, so the shell can schedule a Tick.

    Reads the same indexes as `expire`, so it costs the tabs, the open contacts and the
    contacts of gone owners, not the agent's history. With `live_nodes`, a connected tab on
    a node outside that set counts too (it is declared gone after the node timeout). The
    answer is kept with the state for the same rules and live set.
    """
    memo = state.deadline
    if memo is not None and memo[0] is rules and memo[1] == live_nodes:
        return memo[2]
    deadline = _next_deadline(state, rules, live_nodes)
    object.__setattr__(state, "deadline", (rules, live_nodes, deadline))
    return deadline


def _next_deadline(
    state: AgentState, rules: Rules, live_nodes: frozenset[str] | None
) -> float | None:
    times: list[float] = []
    for owner, cids in state.owned.items():
        tab = state.tabs.get(owner) if owner is not None else None
        if owner is not None and (tab is None or not tab.connected):
            times += [g for cid in cids if (g := state.contacts[cid].grace_until) is not None]
    times += [
        state.contacts[cid].last_active + rules.idle_contact_seconds for cid in state.open_ids
    ]
    for at in (
        next(iter(state.finish_order.values()), None),
        next(iter(state.forgotten.values()), None),
    ):
        if at is not None:
            times.append(at + rules.finished_retention_seconds)
    for tab in state.tabs.values():
        if not tab.connected and tab.disconnected_at is not None and tab.tab_id not in state.owned:
            times.append(tab.disconnected_at + rules.tab_retention_seconds)
        elif tab.connected and live_nodes is not None and tab.node not in live_nodes:
            times.append(tab.connected_at + rules.node_timeout_seconds)
    return min(times) if times else None
