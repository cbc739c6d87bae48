"""The agent aggregate: everything the daemon knows about one agent's tabs and contacts.

One agent's state is one unit of consistency. Every change to it is a pure function of the old
state (see `daemon.core.agent`), and the store commits the result with a version check, so
tabs spread over several daemons still see one history.

Every value here is immutable (frozen dataclasses, tuples, and mappings that are replaced, never
changed in place), so a new state shares everything it did not touch with the old one: an event
costs what it touches, not what the agent has accumulated. Pydantic stays at the wire boundary;
nothing in here is validated twice.

The aggregate is stored per contact (msgpack): a head (tabs, media, tombstones: small and
bounded) and one entry per contact, so a commit writes the head and the contacts the event
touched (`AgentState.write`), not the agent's history. Each contact packs itself once and keeps
the bytes (`Contact.packed`). A hash has no order, so each entry carries the contact's place in
creation order (`AgentState.order`), which `AgentState.decode` restores.
"""

import operator
from collections.abc import Iterable, Mapping
from dataclasses import MISSING, dataclass, field, fields
from typing import Any, Literal

import msgpack

from daemon.core.writes import StateWrite
from protocol.messages import (
    AssignmentMode,
    ClickToDial,
    Confirmation,
    ContactEventName,
    ContactType,
    Direction,
    MediaGate,
    Participant,
    Role,
    WorkflowStatus,
)

# Lifecycle order of Streams events: a late duplicate of an earlier event never moves a
# contact backwards (tabs report the same contact at different times).
EVENT_ORDER: dict[str, int] = {
    "incoming": 0,
    "connecting": 1,
    "accepted": 2,
    "connected": 3,
    "missed": 4,
    "ended": 5,
    "acw": 6,
    "destroyed": 7,
}
FINISHED_EVENTS = frozenset({"missed", "ended", "acw", "destroyed"})


def _pack(data: Any) -> bytes:
    packed: bytes = msgpack.packb(data, use_bin_type=True)
    return packed


@dataclass(frozen=True, slots=True, kw_only=True)
class Tab:
    tab_id: str
    role: Role
    session: str  # private, stable across reconnects of one page
    conn_id: str  # this connection; a late close of an older connection is ignored
    node: str
    connected: bool = True
    connected_at: float
    disconnected_at: float | None = None
    zendesk_user_id: int | None = None  # from the token: who Zendesk pops and assigns go to
    agent_name: str | None = None
    _packed: bytes | None = field(default=None, init=False, repr=False, compare=False)

    def to_dict(self) -> dict[str, Any]:
        return {name: getattr(self, name) for name in _TAB_FIELDS}

    def packed(self) -> bytes:
        """The tab's entry in the encoded tabs map; computed once, kept with the value."""
        if self._packed is None:
            object.__setattr__(self, "_packed", _pack(self.tab_id) + _pack(self.to_dict()))
        assert self._packed is not None
        return self._packed


_TAB_FIELDS = tuple(f.name for f in fields(Tab) if f.init)


@dataclass(frozen=True, slots=True, kw_only=True)
class ChatLine:
    message_id: str
    participant: Participant
    name: str | None = None
    text: str
    sent_at: float | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class AgentCommand:
    """An owner's command, kept for the workflow runner to act on in order."""

    name: str
    at: float
    ticket_id: int | None = None
    user_id: int | None = None


# How a contact field relates to what tabs report (`ContactSnapshot`):
#   "first": taken from the report that creates the contact, never changed by later reports;
#   "fill":  taken from the first report that carries a value (a later one fills a gap);
#   None:    the daemon's own (ownership, workflow results, merged history).
Source = Literal["first", "fill"] | None


def _role(*, source: Source = None, view: bool = False) -> dict[str, Any]:
    """A contact field's metadata: where its value comes from and whether tabs see it."""
    return {"source": source, "view": view}


@dataclass(frozen=True, kw_only=True)  # no slots: a copy is one dict copy (see `evolve`)
class Contact:
    """One contact, merged from every tab's reports.

    The declaration is the single list of the contact's fields: `REPORTED_FIELDS` (copied
    from the creating report), `FILLED_FIELDS` (first value wins) and `VIEW_FIELDS` (the
    tab-visible `ContactView`) are derived from the metadata below.
    """

    contact_id: str = field(metadata=_role(view=True))
    initial_contact_id: str | None = field(default=None, metadata=_role(source="first", view=True))
    type: ContactType = field(default="voice", metadata=_role(source="first", view=True))
    direction: Direction = field(default="inbound", metadata=_role(source="first", view=True))
    is_callback: bool = field(default=False, metadata=_role(source="first"))
    monitoring: bool = field(default=False, metadata=_role(source="first"))
    state: ContactEventName = field(metadata=_role(view=True))
    events_seen: tuple[str, ...] = ()
    event_times: Mapping[str, float] = field(default_factory=dict)
    customer_endpoint: str | None = field(default=None, metadata=_role(source="fill", view=True))
    queue: str | None = field(default=None, metadata=_role(source="fill", view=True))
    attributes: Mapping[str, str] = field(default_factory=dict)
    agent_name: str | None = field(default=None, metadata=_role(source="fill"))
    routing_profile: str | None = field(default=None, metadata=_role(source="fill"))
    softphone: bool = field(default=True, metadata=_role(source="first"))
    click_to_dial: ClickToDial | None = field(default=None, metadata=_role(source="first"))
    analysis: Mapping[str, str] = field(default_factory=dict)
    owner_tab: str | None = field(default=None, metadata=_role(view=True))
    epoch: int = field(default=0, metadata=_role(view=True))
    grace_until: float | None = field(default=None, metadata=_role(view=True))
    mode: AssignmentMode = field(default="auto", metadata=_role(view=True))
    ticket_id: int | None = field(default=None, metadata=_role(view=True))
    user_id: int | None = field(default=None, metadata=_role(view=True))
    recording_paused: bool = field(default=False, metadata=_role(view=True))
    refused: str | None = None  # e.g. "second_chat": the workflow leaves it alone
    # Amazon Connect's word on it (`daemon.core.confirmation`): None where no instance is
    # configured; confirmed, unconfirmed (believed on the tabs' word for now), refused.
    confirmation: Confirmation | None = field(default=None, metadata=_role(view=True))
    warnings: tuple[str, ...] = field(default=(), metadata=_role(view=True))
    # Where the contact's Zendesk work stands, as the workflow runner last reported it (a
    # contact that never gets any is `none` from the start); the reason of a `failed` one.
    workflow: WorkflowStatus = field(default="pending", metadata=_role(view=True))
    workflow_reason: str | None = field(default=None, metadata=_role(view=True))
    commands: tuple[AgentCommand, ...] = ()
    chat: tuple[ChatLine, ...] = ()
    created_at: float
    # The last time a tab added something (an event, attributes, a chat line, a command):
    # an open contact quiet for `Rules.idle_contact_seconds` is abandoned. None: created_at.
    active_at: float | None = None
    finished_at: float | None = None
    # This contact's encoding, made once (see `packed`); not part of its value.
    _packed: bytes | None = field(default=None, init=False, repr=False, compare=False)

    @property
    def finished(self) -> bool:
        return self.state in FINISHED_EVENTS

    @property
    def has_workflow(self) -> bool:
        """A supervisor's monitoring leg and a refused second chat never get Zendesk work."""
        return not self.monitoring and self.refused is None

    @property
    def last_active(self) -> float:
        return self.created_at if self.active_at is None else self.active_at

    def evolve(self, **changes: Any) -> "Contact":
        """This contact with `changes` (field names only); a cheap `dataclasses.replace`.

        One dict copy instead of a field-by-field rebuild: contacts are replaced on every
        event that adds something, so this is on the daemon's hottest path.
        """
        assert _CONTACT_FIELD_SET.issuperset(changes), changes
        new = object.__new__(Contact)
        values = new.__dict__
        values.update(self.__dict__)
        values.update(changes)
        values["_packed"] = None
        return new

    def view_values(self) -> tuple[Any, ...]:
        """The values of `VIEW_FIELDS`, in that order: what tabs see of this contact."""
        values: tuple[Any, ...] = _VIEW_GETTER(self.__dict__)
        return values

    @classmethod
    def new(cls, **values: Any) -> "Contact":
        """A contact from field values, the rest defaulted: what `Contact(...)` does, without
        the frozen dataclass's guarded set of each of its 35 fields (contacts are made on the
        hot path, and again for each one when an agent is loaded)."""
        assert _CONTACT_FIELD_SET.issuperset(values) and values.keys() >= _CONTACT_REQUIRED
        contact = object.__new__(cls)
        state = contact.__dict__
        state.update(_CONTACT_DEFAULTS)
        for name, factory in _CONTACT_FACTORIES:
            state[name] = factory()
        state.update(values)
        return contact

    def to_dict(self) -> dict[str, Any]:
        """Plain data for msgpack (tuples pack as arrays; maps are dicts already)."""
        data = dict(self.__dict__)
        data.pop("_packed", None)
        for name in _CONTACT_MAPS:
            if type(data[name]) is not dict:
                data[name] = dict(data[name])
        if self.commands:
            data["commands"] = [_as_dict(c) for c in self.commands]
        if self.chat:
            data["chat"] = [_as_dict(line) for line in self.chat]
        if self.click_to_dial is not None:
            data["click_to_dial"] = self.click_to_dial.model_dump(mode="json")
        return data

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> "Contact":
        """The inverse of `to_dict` (also accepts sequences where tuples are kept)."""
        values = dict(data)
        values["events_seen"] = tuple(values.get("events_seen", ()))
        values["warnings"] = tuple(values.get("warnings", ()))
        values["commands"] = tuple(
            c if isinstance(c, AgentCommand) else AgentCommand(**c)
            for c in values.get("commands", ())
        )
        values["chat"] = tuple(
            c if isinstance(c, ChatLine) else ChatLine(**c) for c in values.get("chat", ())
        )
        ctd = values.get("click_to_dial")
        if isinstance(ctd, Mapping):
            values["click_to_dial"] = ClickToDial.model_validate(ctd)
        return cls.new(**values)

    def packed(self) -> bytes:
        """The contact's fields in msgpack; computed on first use and kept with the value."""
        if self._packed is None:
            object.__setattr__(self, "_packed", _pack(self.to_dict()))
        assert self._packed is not None
        return self._packed


def _as_dict(value: AgentCommand | ChatLine) -> dict[str, Any]:
    return {f.name: getattr(value, f.name) for f in fields(value)}


_CONTACT_FIELD_SET = frozenset(f.name for f in fields(Contact) if f.init)
_CONTACT_REQUIRED = frozenset(
    f.name for f in fields(Contact) if f.default is MISSING and f.default_factory is MISSING
)
_CONTACT_DEFAULTS = {f.name: f.default for f in fields(Contact) if f.default is not MISSING}
_CONTACT_FACTORIES = tuple(
    (f.name, f.default_factory) for f in fields(Contact) if f.default_factory is not MISSING
)
_CONTACT_MAPS = tuple(name for name, _ in _CONTACT_FACTORIES)
REPORTED_FIELDS = tuple(f.name for f in fields(Contact) if f.metadata.get("source") == "first")
FILLED_FIELDS = tuple(f.name for f in fields(Contact) if f.metadata.get("source") == "fill")
VIEW_FIELDS = tuple(f.name for f in fields(Contact) if f.metadata.get("view"))
_VIEW_GETTER = operator.itemgetter(*VIEW_FIELDS)


@dataclass(frozen=True, slots=True, kw_only=True)
class MediaState:
    media_less: bool
    gate: MediaGate
    signed_in: bool = False
    microphone: bool = False
    in_call: bool = False
    audio_lost: bool = False

    def to_dict(self) -> dict[str, Any]:
        return {f.name: getattr(self, f.name) for f in fields(self)}


@dataclass(frozen=True, slots=True, kw_only=True)
class AgentState:
    """One agent's tabs and contacts, and indexes derived from them.

    `contacts` keeps creation order. The indexes let the core find what time may change
    without walking every contact: `open_ids` (unfinished contacts in creation order, a
    mapping to None used as an ordered set), `finish_order` (finished contacts, oldest finish
    first: the pruning queue) and `owned` (contacts by owning tab, `None` for contacts
    without an owner). `forgotten` is in the order contacts were pruned. `order` gives each
    contact its place in creation order as stored (strictly increasing along `contacts`;
    `next_order` is above all of them), which is how a decode restores the order. The core
    keeps the indexes in step with every change; `build_state` computes them when a state is
    decoded.
    """

    agent_id: str
    tabs: Mapping[str, Tab] = field(default_factory=dict)
    contacts: Mapping[str, Contact] = field(default_factory=dict)
    media: MediaState
    published_media: Mapping[str, Any] | None = None  # last media view sent, to diff against
    # Contacts pruned after retention, and when: Streams re-fires events of old contacts after
    # a CCP reconnects, and those must not bring a finished contact (and its workflow) back.
    forgotten: Mapping[str, float] = field(default_factory=dict)
    open_ids: Mapping[str, None] = field(default_factory=dict, compare=False)
    finish_order: Mapping[str, float] = field(default_factory=dict, compare=False)
    owned: Mapping[str | None, frozenset[str]] = field(default_factory=dict, compare=False)
    order: Mapping[str, int] = field(default_factory=dict, compare=False)
    next_order: int = field(default=0, compare=False)
    contact_bytes: int = field(default=0, compare=False)  # sum of the contacts' encodings
    # What the core learnt about this state (`daemon.core.agent`), kept with it so a repeat
    # decided on it does not redo the work; never part of the value. `settled`: rules,
    # live set and an instant at which `expire` had nothing to do. `deadline`: rules, live
    # set and `next_deadline` for them.
    settled: tuple[Any, frozenset[str], float] | None = field(
        default=None, compare=False, repr=False
    )
    deadline: tuple[Any, frozenset[str] | None, float | None] | None = field(
        default=None, compare=False, repr=False
    )
    # `absorbed`: reports (the very objects) folded into contacts this state holds, each
    # with that contact, so the same report from another tab adds nothing
    # (`daemon.core.agent.absorbs`).
    absorbed: tuple[tuple[Any, "Contact"], ...] = field(default=(), compare=False, repr=False)
    # The encoded head, once computed; a state made by an event that changed none of the
    # head's parts is given its predecessor's (`daemon.core.agent`), so most commits, which
    # change a contact and nothing else, do not encode the tabs, media and tombstones again.
    packed_head: bytes | None = field(default=None, compare=False, repr=False)

    def zendesk_identity(self) -> tuple[int | None, str | None]:
        """The agent's Zendesk user id and name, as the most recent tab's token gave them."""
        tabs = sorted(self.tabs.values(), key=lambda t: t.connected_at, reverse=True)
        for tab in tabs:
            if tab.zendesk_user_id is not None:
                return tab.zendesk_user_id, tab.agent_name
        return None, next((t.agent_name for t in tabs if t.agent_name), None)

    def head(self) -> bytes:
        """Everything but the contacts, as one msgpack map (tabs spliced from their cache);
        computed once per state (or handed on, see `packed_head`)."""
        if self.packed_head is None:
            object.__setattr__(self, "packed_head", self._encode_head())
        assert self.packed_head is not None
        return self.packed_head

    def _encode_head(self) -> bytes:
        head = {
            "agent_id": self.agent_id,
            "media": self.media.to_dict(),
            "published_media": self.published_media,
            "forgotten": dict(self.forgotten),
        }
        packer = msgpack.Packer(use_bin_type=True)
        parts = [packer.pack_map_header(len(head) + 1)]
        parts.extend(packer.pack(k) + packer.pack(v) for k, v in head.items())
        parts.append(packer.pack("tabs") + packer.pack_map_header(len(self.tabs)))
        parts.extend(tab.packed() for tab in self.tabs.values())
        return b"".join(parts)

    def entry(self, contact_id: str) -> bytes:
        """A contact's stored entry: msgpack `[order, fields]`, the fields spliced in."""
        return b"\x92" + _pack(self.order[contact_id]) + self.contacts[contact_id].packed()

    def write(self, changed: Iterable[str]) -> StateWrite:
        """What a commit of this state writes on top of the state it was made from, given
        the contacts created, changed or dropped since (an `Outcome`'s `touched`): the head
        and those contacts' entries. Costs the tabs and tombstones plus what changed."""
        put: dict[str, bytes] = {}
        dropped: list[str] = []
        for cid in changed:
            if cid in self.contacts:
                put[cid] = self.entry(cid)
            else:
                dropped.append(cid)
        return StateWrite(self.head(), put, dropped)

    @classmethod
    def decode(cls, head: bytes, entries: Mapping[str, bytes]) -> "AgentState":
        """The state from its head and every contact entry (in any order)."""
        data: Any = msgpack.unpackb(head, raw=False)
        ordered = sorted(
            (msgpack.unpackb(entry, raw=False) for entry in entries.values()),
            key=operator.itemgetter(0),
        )
        return build_state(
            agent_id=data["agent_id"],
            tabs={tid: Tab(**t) for tid, t in data["tabs"].items()},
            contacts={c["contact_id"]: Contact.from_dict(c) for _, c in ordered},
            order={c["contact_id"]: place for place, c in ordered},
            media=MediaState(**data["media"]),
            published_media=data["published_media"],
            forgotten=data["forgotten"],
        )


def build_state(
    *,
    agent_id: str,
    tabs: Mapping[str, Tab],
    contacts: Mapping[str, Contact],
    order: Mapping[str, int],
    media: MediaState,
    published_media: Mapping[str, Any] | None,
    forgotten: Mapping[str, float],
) -> AgentState:
    """An aggregate with its indexes computed from scratch (loading; the core updates them)."""
    finished = sorted(
        (c for c in contacts.values() if c.finished_at is not None),
        key=lambda c: c.finished_at or 0.0,
    )
    owned: dict[str | None, frozenset[str]] = {}
    for contact in contacts.values():
        owned[contact.owner_tab] = owned.get(contact.owner_tab, frozenset()) | {contact.contact_id}
    return AgentState(
        agent_id=agent_id,
        tabs=tabs,
        contacts=contacts,
        media=media,
        published_media=published_media,
        forgotten=dict(sorted(forgotten.items(), key=lambda item: item[1])),
        open_ids={c.contact_id: None for c in contacts.values() if c.finished_at is None},
        finish_order={c.contact_id: c.finished_at or 0.0 for c in finished},
        owned=owned,
        order=order,
        next_order=max(order.values(), default=-1) + 1,
        contact_bytes=sum(len(c.packed()) for c in contacts.values()),
    )
