"""One tab's WebSocket: greeting, resume, delivery in stream order, and input checking.

Everything a tab can get wrong ends here as an `error` message (the connection goes on) or a
close code (it cannot); nothing a tab sends can reach another tab's state or crash the loop.
Delivery keeps a cursor into the agent's stream and fills any gap from the store, so a
message is sent once, in order, whichever node committed it.

Input is paced, not queued. A connection reads its next frame only when the previous one is
handled, and every frame of an agent draws on one budget shared by all its connections on
this node: over it, the connection waits before handling the frame (its later frames stay in
the client's socket: back-pressure), or, if the wait would be long, the frame is refused.
A connection that is closing handles nothing more: frames it had buffered are dropped, so an
attacker who leaves (or a daemon that stops) leaves no work behind.
"""

import asyncio
import contextlib
import secrets
import time
from collections import deque
from dataclasses import dataclass
from typing import Any

import structlog
from websockets.exceptions import ConnectionClosed
from websockets.protocol import State

from daemon.core.events import (
    AgentEvent,
    ChatReported,
    CommandIssued,
    ContactReported,
    MediaReported,
    TabClosed,
    TabOpened,
)
from daemon.core.ratelimit import TokenBucket
from daemon.core.views import snapshot
from daemon.server.auth import AgentIdentity, TokenRefused, verify_token
from daemon.server.frames import EntryFrames, entry_data
from daemon.server.hub import AgentHub, StoreContention
from daemon.server.metrics import Metrics
from daemon.server.socket import TabSocket
from daemon.server.waits import FrameWaits, Waiting
from daemon.store.base import StoreUnavailable, StreamEntry
from protocol.codec import Codec
from protocol.errors import CloseCode, ErrorCode, ProtocolError
from protocol.messages import (
    ChatMessage,
    ClientMessage,
    Command,
    ContactEvent,
    Error,
    Hello,
    MediaStatus,
    Notify,
    Position,
    Role,
    Welcome,
    check_clock,
)

log = structlog.get_logger("switchboard.connection")

_RESYNC = object()  # backlog marker: re-read the stream from the cursor
# Frames one connection handles from its buffer before it lets the event loop turn: a tab's
# few reports of one event go in one turn; a flood of buffered frames is taken in slices.
FRAMES_PER_TURN = 4


@dataclass(frozen=True, slots=True)
class ConnectionLimits:
    hello_timeout: float
    rate_per_second: float  # per connection: over it, refused (rate_limited), then 4008
    rate_burst: int
    flood_strikes: int
    agent_rate_per_second: float = 150.0  # per agent, all its connections on this node
    agent_rate_burst: int = 300
    agent_max_wait: float = 1.0  # longest a frame is held for the agent's message budget
    agent_busy_share: float = 0.25  # of the node's time, spent handling one agent's frames
    agent_busy_burst: float = 0.5  # seconds of handling an agent may use in one go
    max_backlog: int = 1000


@dataclass(slots=True)
class _Budget:
    messages: TokenBucket  # tokens are frames
    busy: TokenBucket  # tokens are seconds spent handling frames

    def full_at(self) -> float:
        return max(self.messages.full_at(), self.busy.full_at())


class AgentBudgets:
    """Per-agent budgets on this node, drawn on by every connection of the agent.

    Two of them, because a frame's count says little about its cost: a message budget
    (frames per second) and a time budget (the share of the node's time spent handling the
    agent's frames, charged after each frame by how long it took). Whichever is short holds
    the agent's connections back. The time budget is what keeps one agent whose events are
    expensive (a large state, many contacts) from slowing every other agent on the node.
    It charges the frame's wall-clock time less what the frame spent waiting (`waits`: store
    round trips, the agent's turn, Amazon Connect's answer), i.e. the time the event loop
    spent on it; while it waited, the loop was handling other agents' frames, which are
    theirs to pay for. One frame is charged at most the burst (`TabConnection._charge`):
    beyond that, the time was the node stalling (a pause), not work the agent made the node
    do, and charging it in full held the agent's tabs for four times the stall, long enough
    for a tab closing meanwhile to drop the reports it had sent (found by the simulator,
    tests/sim: seed 7 failed without it, when waits were still charged).

    A budget outlives the agent's connections until it has refilled, so closing every tab
    and reconnecting does not buy a fresh burst; idle full budgets are forgotten, so memory
    follows the agents connected recently, not every agent ever seen.
    """

    def __init__(self, limits: ConnectionLimits) -> None:
        self.limits = limits
        self._budgets: dict[str, _Budget] = {}
        self._users: dict[str, int] = {}
        self._idle: deque[tuple[str, float]] = deque()  # (agent, when its last user left)
        self._refill_seconds = max(
            limits.agent_rate_burst / limits.agent_rate_per_second,
            limits.agent_busy_burst / limits.agent_busy_share,
        )

    def join(self, agent: str, now: float) -> None:
        self._forget_idle(now)
        self._users[agent] = self._users.get(agent, 0) + 1
        if agent not in self._budgets:
            limits = self.limits
            self._budgets[agent] = _Budget(
                TokenBucket.full(limits.agent_rate_per_second, limits.agent_rate_burst, now),
                TokenBucket.full(limits.agent_busy_share, limits.agent_busy_burst, now),
            )

    def leave(self, agent: str, now: float) -> None:
        users = self._users.pop(agent, 0) - 1
        if users > 0:
            self._users[agent] = users
        else:
            self._idle.append((agent, now))

    def reserve(self, agent: str, now: float) -> tuple[bool, float]:
        """One frame of a joined agent: (granted, wait) as `TokenBucket.reserve` for its
        message budget, the wait lengthened to pay back any debt of its time budget."""
        budget = self._budgets[agent]
        granted, wait = budget.messages.reserve(now, self.limits.agent_max_wait)
        return granted, max(wait, budget.busy.debt(now))

    def charge(self, agent: str, now: float, seconds: float) -> None:
        """The agent's frame took `seconds` to handle."""
        self._budgets[agent].busy.charge(now, seconds)

    def __len__(self) -> int:
        return len(self._budgets)

    def _forget_idle(self, now: float) -> None:
        # Oldest first; an entry whose agent came back (or left again later) is skipped.
        while self._idle and self._idle[0][1] + self._refill_seconds <= now:
            agent, _ = self._idle.popleft()
            budget = self._budgets.get(agent)
            if agent not in self._users and budget is not None and budget.full_at() <= now:
                del self._budgets[agent]


class _Closing(Exception):
    def __init__(self, code: CloseCode, reason: str) -> None:
        super().__init__(reason)
        self.code = code
        self.reason = reason


class TabConnection:
    """One tab's connection, from its hello to its close.

    What an idle tab holds is kept small (a node holds thousands): slots, no task of its own
    while idle (the socket's reader is the handler's task; entries are written inline, a
    task drains the backlog only while there is one), the hello's role and media mode but
    not the hello itself (its token), and a logger bound only when something is logged.
    """

    __slots__ = (
        "_backlog_task",
        "_closer",
        "backlog",
        "bucket",
        "budgets",
        "codec",
        "conn_id",
        "cursor",
        "frames",
        "hub",
        "identity",
        "limits",
        "media_less",
        "metrics",
        "role",
        "secret",
        "session",
        "streaming",
        "strikes",
        "superseded",
        "tab_id",
        "ws",
    )

    def __init__(
        self,
        ws: TabSocket,
        codec: Codec,
        hub: AgentHub,
        secret: str,
        limits: ConnectionLimits,
        budgets: AgentBudgets,
        metrics: Metrics,
        frames: EntryFrames | None = None,
    ) -> None:
        self.ws = ws
        self.codec = codec
        self.hub = hub
        self.secret = secret
        self.limits = limits
        self.budgets = budgets
        self.metrics = metrics
        self.frames = frames if frames is not None else EntryFrames()
        self.conn_id = secrets.token_hex(8)
        self.bucket = TokenBucket.full(limits.rate_per_second, limits.rate_burst, time.monotonic())
        self.strikes = 0
        self.identity: AgentIdentity | None = None
        self.role: Role = "embedded"  # from the hello
        self.media_less: bool | None = None  # from the hello
        self.tab_id = ""
        self.session = ""
        self.cursor = ("", 0)
        # What waits to be sent, in order, and the task sending it (only while there is some).
        self.backlog: deque[StreamEntry | Notify | object] = deque()
        self._backlog_task: asyncio.Task[None] | None = None
        self.streaming = False  # welcomed: stream entries may be sent
        self.superseded = False
        self._closer: asyncio.Task[None] | None = None

    @property
    def log(self) -> Any:
        """The connection's logger, bound to what is known of it (made when something is
        logged, which is rare: a logger kept per connection would cost every idle tab)."""
        if not self.tab_id:
            return log.bind(conn=self.conn_id)
        agent = self.identity.agent_id if self.identity is not None else None
        return log.bind(conn=self.conn_id, agent=agent, tab=self.tab_id, role=self.role)

    # -- lifecycle ---------------------------------------------------------------------

    async def run(self) -> None:
        self.metrics.connections.inc()
        try:
            hello = await self._await_hello()
            await self._welcome(hello)
            del hello  # this frame lasts as long as the connection: keep no token in it
            self.streaming = True
            self._start_backlog()  # whatever was delivered while the tab was being welcomed
            await self._serve()
        except _Closing as closing:
            self.log.info("closing", code=int(closing.code), reason=closing.reason)
            await self.ws.close(int(closing.code), closing.reason[:120])
        except ConnectionClosed:
            pass
        finally:
            self.streaming = False
            sending = self._backlog_task
            if sending is not None:
                sending.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await sending
            if self.identity is not None:
                self.budgets.leave(self.identity.agent_id, time.monotonic())
            await self._close()
            self.metrics.connections.dec()

    async def _close(self) -> None:
        if self.identity is None or not self.tab_id:
            return
        agent = self.identity.agent_id
        self.metrics.tabs.labels(role=self.role).dec()
        await self.hub.detach(agent, self)
        try:
            await self.hub.apply(agent, TabClosed(tab_id=self.tab_id, conn_id=self.conn_id))
        except (StoreUnavailable, StoreContention) as e:
            # The node's liveness covers it: peers see this tab gone when we stop renewing.
            self.hub.remember_close(agent, TabClosed(tab_id=self.tab_id, conn_id=self.conn_id))
            self.log.warning("close_not_recorded", error=repr(e))
        self.log.info("tab_closed")

    # -- greeting ----------------------------------------------------------------------

    async def _welcome(self, hello: Hello) -> None:
        """Open the tab (`_open`), charged to its agent as a frame is."""
        opening = time.monotonic()
        with FrameWaits() as waits:
            await self._open(hello)
        assert self.identity is not None
        self._charge(self.identity.agent_id, opening, time.monotonic(), waits)

    async def _await_hello(self) -> Hello:
        deadline = time.monotonic() + self.limits.hello_timeout
        while True:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise _Closing(CloseCode.HELLO_TIMEOUT, "no hello in time")
            try:
                frame = await asyncio.wait_for(self.ws.recv(), remaining)
            except TimeoutError as e:
                raise _Closing(CloseCode.HELLO_TIMEOUT, "no hello in time") from e
            message = await self._read(frame, greeted=False)
            if message is None:
                continue
            if not isinstance(message, Hello):
                await self._error(ErrorCode.HELLO_REQUIRED, "send hello first", _ref(message))
                continue
            try:
                identity = verify_token(self.secret, message.token)
            except TokenRefused as e:
                await self._error(ErrorCode.UNAUTHORIZED, str(e))
                raise _Closing(CloseCode.UNAUTHORIZED, str(e)) from e
            self.identity = identity
            now = time.monotonic()
            self.budgets.join(identity.agent_id, now)
            # Opening a tab is work for the agent too: a reconnect storm is paced like a flood.
            if not await self._paced(*self.budgets.reserve(identity.agent_id, now), None):
                raise _Closing(CloseCode.FLOODING, "this agent is over its message budget")
            self.role, self.media_less = message.role, message.media_less
            return message

    def _opened_event(
        self, tab_id: str | None, session: str | None, *, again: bool = False
    ) -> TabOpened:
        assert self.identity is not None
        return TabOpened(
            node=self.hub.node_id,
            role=self.role,
            tab_id=tab_id,
            session=session,
            conn_id=self.conn_id,
            fresh_tab_id="t-" + secrets.token_hex(6),
            fresh_session=secrets.token_hex(16),
            media_less=self.media_less,
            zendesk_user_id=self.identity.zendesk_user_id,
            agent_name=self.identity.name,
            again=again,
        )

    async def _open(self, hello: Hello) -> None:
        assert self.identity is not None
        agent = self.identity.agent_id
        try:
            outcome = await self.hub.apply(agent, self._opened_event(hello.tab_id, hello.session))
            if outcome.refusal is not None:  # a per-agent bound: this tab cannot join
                await self._error(outcome.refusal.code, outcome.refusal.message)
                raise _Closing(CloseCode.POLICY_VIOLATION, outcome.refusal.message)
            assert outcome.assignment is not None
            self.tab_id = outcome.assignment.tab_id
            self.session = outcome.assignment.session
            self.metrics.tabs.labels(role=hello.role).inc()  # _close() decrements from here
            await self.hub.attach(agent, self)
            await self.hub.supersede(agent, self)
            position = hello.resume
            resumed = await self.hub.store.resume(  # head and missed entries: one round trip
                agent, position.epoch if position else None, position.seq if position else 0
            )
            epoch, head, missed = resumed.epoch, resumed.head, resumed.missed
        except (StoreUnavailable, StoreContention) as e:
            raise _Closing(CloseCode.TRY_AGAIN_LATER, "store unavailable, retry later") from e
        if outcome.assignment.reassigned:
            self.metrics.duplicates.inc()
        await self._send_model(
            Welcome(
                agent_id=agent,
                tab_id=self.tab_id,
                tab_id_reassigned=outcome.assignment.reassigned,
                session=self.session,
                resumed=missed is not None,
                position=Position(epoch=epoch, seq=head),
            )
        )
        self.log.info(
            "tab_opened", reassigned=outcome.assignment.reassigned, resumed=missed is not None
        )
        if missed is not None and hello.resume is not None:
            self.metrics.resumes.inc()
            self.cursor = (hello.resume.epoch, hello.resume.seq)
            await self._send_entries(missed, replayed=True)
        else:
            await self._send_snapshot()

    # -- delivery ----------------------------------------------------------------------

    def deliver(self, entry: StreamEntry) -> None:
        """A new entry of the agent's stream; sent at once when nothing is pending, so an
        entry reaches the agent's idle tabs in the committing turn, with no task switch."""
        if self.streaming and self._backlog_task is None and self._send_next(entry):
            return
        if len(self.backlog) >= self.limits.max_backlog:
            # A tab this far behind is better served by one re-read than by a long queue.
            self.backlog.clear()
            self._queue(_RESYNC)
        else:
            self._queue(entry)

    def resync(self) -> None:
        self._queue(_RESYNC)

    async def tell(self, notice: Notify) -> None:
        """Out-of-stream news about the daemon itself (store down, store back).

        Put in this connection's backlog, never sent inline: the caller tells every tab
        in turn, and one tab that does not read must not hold up the others.
        """
        self._queue(notice)

    async def supersede(self) -> None:
        """This page resumed on a newer connection: end this one so it cannot act twice.

        It handles no further frame from now on; the close handshake runs on its own, so a
        client that does not answer cannot hold up the caller.
        """
        self.superseded = True
        if self._closer is None:
            self._closer = asyncio.create_task(
                self.ws.close(int(CloseCode.SUPERSEDED), "resumed on another connection")
            )

    async def reregister(self) -> None:
        """Put this tab back into a store that may have lost it, then catch up. Refused (and
        nothing caught up) once the connection has closed or its tab id has moved on."""
        assert self.identity is not None
        outcome = await self.hub.apply(self.identity.agent_id, self._again())
        if outcome.refusal is None:
            self.resync()

    def _again(self) -> TabOpened:
        """This connection registering its tab again (see `TabOpened`)."""
        return self._opened_event(self.tab_id, self.session, again=True)

    def _queue(self, item: StreamEntry | Notify | object) -> None:
        self.backlog.append(item)
        self._start_backlog()

    def _start_backlog(self) -> None:
        """Send the backlog from a task of its own, if there is one to send and none runs."""
        if self.streaming and self.backlog and self._backlog_task is None:
            self._backlog_task = asyncio.get_running_loop().create_task(self._send_backlog())

    def _send_next(self, entry: StreamEntry) -> bool:
        """Send the entry that follows the cursor now, if the socket takes it without waiting.

        False (nothing done) for anything else: an entry out of sequence (the backlog's sender
        fills the gap or sends a snapshot), or a socket that is closing or has unsent data
        (the backlog's sender waits for it to drain).
        """
        epoch, seq = self.cursor
        if entry.epoch != epoch or entry.seq != seq + 1:
            return False
        if not self._for_this_tab(entry):
            self.cursor = (epoch, entry.seq)
            return True
        if not self.ws.send_now(self.frames.live(entry, self.codec)):
            return False
        self.cursor = (epoch, entry.seq)
        self.metrics.sent[entry.envelope.message["type"]].inc()
        return True

    def _for_this_tab(self, entry: StreamEntry) -> bool:
        envelope = entry.envelope
        return envelope.to_tab in (None, self.tab_id) and envelope.to_role in (None, self.role)

    async def _send_backlog(self) -> None:
        """Send the backlog in order; the task ends once it is empty or the socket closed."""
        try:
            while self.backlog:
                item = self.backlog.popleft()
                try:
                    if isinstance(item, StreamEntry):
                        await self._catch_up(item)
                    elif isinstance(item, Notify):
                        await self._send_model(item)
                    else:
                        await self._reread()
                except StoreUnavailable:
                    await asyncio.sleep(0.5)
                    self.backlog.append(_RESYNC)
                except ConnectionClosed:
                    self.streaming = False  # nothing more to send: the handler ends soon
                    self.backlog.clear()
                    return
                except Exception:
                    # A tab that silently stops receiving is worse than one that reconnects
                    # and resumes from its position: end the connection so the client does.
                    self.log.exception("delivery_failed")
                    await self.ws.close(int(CloseCode.INTERNAL_ERROR), "delivery failed: reconnect")
                    return
        finally:
            self._backlog_task = None

    async def _catch_up(self, entry: StreamEntry) -> None:
        epoch, seq = self.cursor
        if entry.epoch != epoch:
            await self._send_snapshot()
        elif entry.seq == seq + 1:
            await self._send_entries([entry], replayed=False)
        elif entry.seq > seq + 1:
            await self._reread()

    async def _reread(self) -> None:
        assert self.identity is not None
        epoch, seq = self.cursor
        entries = await self.hub.store.read_stream(self.identity.agent_id, epoch, seq)
        if entries is None:
            await self._send_snapshot()
        else:
            await self._send_entries(entries, replayed=False)

    async def _send_entries(self, entries: list[StreamEntry], *, replayed: bool) -> None:
        for entry in entries:
            epoch, seq = self.cursor
            if entry.epoch != epoch or entry.seq <= seq:
                continue
            self.cursor = (entry.epoch, entry.seq)
            if not self._for_this_tab(entry):
                continue
            frame = (
                self.codec.dumps(entry_data(entry, replayed=True))
                if replayed
                else self.frames.live(entry, self.codec)
            )
            await self.ws.send(frame)
            self.metrics.sent[entry.envelope.message["type"]].inc()

    async def _send_snapshot(self) -> None:
        assert self.identity is not None
        agent = self.identity.agent_id
        epoch, head = await self.hub.store.stream_head(agent)
        _, state = await self.hub.load(agent, fresh=True)
        message = snapshot(state, self.hub.context().live_nodes).model_copy(
            update={"pos": Position(epoch=epoch, seq=head)}
        )
        self.cursor = (epoch, head)
        self.metrics.snapshots.inc()
        await self._send_model(message)

    # -- serving -----------------------------------------------------------------------

    async def _serve(self) -> None:
        """Handle frames one at a time until the connection closes (ConnectionClosed).

        A connection handles at most `FRAMES_PER_TURN` frames between two turns of the event
        loop: buffered frames are returned by `recv()` without suspending, and the memory
        store never suspends either, so without a yield one connection with a full buffer
        would run frame after frame while every other connection, the health check and even
        SIGTERM waited. A `recv()` that found nothing buffered suspends, which is a turn
        already; a yield is paid only by a connection that has had its share of the turn.
        """
        assert self.identity is not None
        agent = self.identity.agent_id
        run = 0  # frames handled since this connection last let the event loop turn
        while True:
            if not self.ws.frames_buffered():
                run = 0
            elif run >= FRAMES_PER_TURN:
                run = 0
                await asyncio.sleep(0)
            frame = await self.ws.recv()
            run += 1
            if not self._listening():
                return  # closing: whatever is still buffered is dropped, not handled
            started = time.monotonic()
            granted, wait = self.budgets.reserve(agent, started)
            if wait > 0 or not granted:
                if not await self._paced(granted, wait, ErrorCode.AGENT_RATE_LIMITED):
                    continue
                if not self._listening():
                    return
                started = time.monotonic()
            with FrameWaits() as waits:
                try:
                    message = await self._read(frame, greeted=True)
                    if message is None:
                        continue
                    if isinstance(message, Hello):
                        await self._error(ErrorCode.ALREADY_GREETED, "hello was already received")
                        continue
                    if not self._absorbed(agent, message):
                        await self._dispatch(message)
                finally:
                    self._charge(agent, started, time.monotonic(), waits)

    def _charge(self, agent: str, started: float, now: float, waits: FrameWaits) -> None:
        """Charge the agent for the node's time one frame took: its time less its waits, at
        most the busy burst (see `AgentBudgets`)."""
        spent = max(0.0, now - started - waits.seconds)
        self.budgets.charge(agent, now, min(spent, self.limits.agent_busy_burst))

    def _listening(self) -> bool:
        return self.ws.state is State.OPEN and not self.superseded

    async def _paced(self, granted: bool, wait: float, refusal: ErrorCode | None) -> bool:
        """Act on one frame's draw on the agent's budgets (`AgentBudgets.reserve`), waiting
        for it if need be.

        True: go on (after waiting, if the agent's tabs were over their rate together or it
        owes handling time). False: the wait for a message token would have been too long,
        so the frame is refused (with `refusal`, counted as a strike) and the connection
        pauses until one could be taken again. Either way, no frame of this connection is
        read meanwhile, and a close ends the wait.
        """
        if granted and wait > 0:
            self.metrics.throttled["delayed"].inc()
        elif not granted:
            self.metrics.throttled["refused"].inc()
            if refusal is not None:
                await self._strike(refusal, "this agent's tabs together are over its budget")
        if wait > 0:
            await self.ws.closed_within(wait)
        return granted

    async def _strike(self, code: ErrorCode, text: str) -> None:
        self.strikes += 1
        if self.strikes > self.limits.flood_strikes:
            raise _Closing(CloseCode.FLOODING, "message rate limit exceeded repeatedly")
        await self._error(code, f"too many messages: slow down ({text})")

    async def _read(self, frame: str | bytes, *, greeted: bool) -> ClientMessage | None:
        """Rate-check, decode and validate one frame; None when it was refused (answered).

        After hello a refusal is never fatal alone. Before it, a frame that is not even a
        message ends the connection (1002): the client is not speaking this protocol, and
        talking on would only cost the daemon more.
        """
        if not self.bucket.take(time.monotonic()):
            await self._strike(ErrorCode.RATE_LIMITED, "over this connection's rate")
            return None
        try:
            message = self.codec.decode_client(frame)
            check_clock(message, time.time())
        except ProtocolError as e:
            await self._error(e.code, e.message, e.ref)
            if not greeted:
                raise _Closing(CloseCode.PROTOCOL_ERROR, f"not a hello: {e.code}") from e
            return None
        self.metrics.received[message.type].inc()
        return message

    def _event_for(self, message: ClientMessage) -> AgentEvent:
        match message:
            case ContactEvent():
                return ContactReported(tab_id=self.tab_id, report=message)
            case ChatMessage():
                return ChatReported(tab_id=self.tab_id, message=message)
            case Command():
                return CommandIssued(tab_id=self.tab_id, command=message)
            case MediaStatus():
                return MediaReported(tab_id=self.tab_id, status=message)
        raise ProtocolError(ErrorCode.INVALID_MESSAGE, f"unexpected {message.type}")

    def _absorbed(self, agent: str, message: ClientMessage) -> bool:
        """A contact report the agent's state already holds (most are a second or third tab
        repeating the first), decided at once by the hub (`AgentHub.absorbs`): nothing to
        apply and nothing to answer."""
        if not isinstance(message, ContactEvent):
            return False
        return self.hub.absorbs(agent, self, ContactReported(tab_id=self.tab_id, report=message))

    async def _dispatch(self, message: ClientMessage) -> None:
        assert self.identity is not None
        agent = self.identity.agent_id
        ref = _ref(message)
        try:
            event = self._event_for(message)
            check = self.hub.report_check
            if check is not None and isinstance(event, ContactReported):
                with Waiting():
                    event = await check.check(agent, self.identity, event)
            outcome = await self.hub.apply(agent, event)
            if outcome.refusal is not None and outcome.refusal.code == ErrorCode.HELLO_REQUIRED:
                # The store lost this tab (e.g. Redis restarted empty): register it again.
                await self.hub.apply(agent, self._again())
                outcome = await self.hub.apply(agent, event)
            if outcome.refusal is not None:
                await self._error(outcome.refusal.code, outcome.refusal.message, ref)
        except ProtocolError as e:
            await self._error(e.code, e.message, ref)
        except (StoreUnavailable, StoreContention) as e:
            await self._error(ErrorCode.UNAVAILABLE, f"not applied, retry later: {e}", ref)
        except ConnectionClosed:
            raise
        except Exception:
            incident = secrets.token_hex(4)
            self.log.exception("dispatch_failed", incident=incident, type=message.type)
            await self._error(ErrorCode.INTERNAL, f"internal error {incident}", ref)

    # -- sending -----------------------------------------------------------------------

    async def _send_model(self, message: Any) -> None:
        await self.ws.send(self.codec.encode(message))
        self.metrics.sent[message.type].inc()

    async def _error(self, code: ErrorCode, text: str, ref: str | None = None) -> None:
        self.metrics.refused[code.value].inc()
        self.log.info("refused", code=code.value, message=text)
        await self._send_model(Error(code=code, message=text, ref=ref))


def _ref(message: ClientMessage) -> str | None:
    ref = getattr(message, "ref", None)
    return ref if isinstance(ref, str) else None
