"""The simulated world: nodes (hub + workflow scheduler + Zendesk client) sharing one store,
tabs talking to a node through the real `TabConnection` over an in-memory socket, and the
Zendesk sandbox in process. Fault injectors act on the store (outage, wipe, lost pub/sub),
on a node (kill, pause) and on the sandbox (its fault rules).
"""

import asyncio
import contextlib
import json
import random
from collections import deque
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

from aiohttp.test_utils import TestServer
from websockets.exceptions import ConnectionClosedOK
from websockets.protocol import State

from daemon.core.events import Rules, WorkflowReported
from daemon.core.settings import AppSettings
from daemon.core.state import Contact
from daemon.core.workflow import AgentInfo
from daemon.sandbox import SANDBOX_KEY, Sandbox, SandboxConfig, create_app
from daemon.sandbox.clock import Clock
from daemon.server.auth import mint_token
from daemon.server.connection import AgentBudgets, ConnectionLimits, TabConnection
from daemon.server.hub import AgentHub
from daemon.server.metrics import Metrics
from daemon.server.waits import counting_waits
from daemon.store.base import StoreUnavailable
from daemon.store.instrumented import instrumented
from daemon.store.memory import MemoryStore
from daemon.zendesk.auth import ApiTokenAuth
from daemon.zendesk.client import ZendeskClient
from daemon.zendesk.runner import RunnerDeps, run_contact
from daemon.zendesk.scheduler import WorkflowScheduler
from protocol.codec import JSON_SUBPROTOCOL, Codec

SECRET = "sim-secret-" + "x" * 32
APP = AppSettings(instance_url="https://acme.my.connect.aws", default_dialed_number="+441632960000")
RULES = Rules(grace_seconds=10.0, node_timeout_seconds=6.0)
NODE_TTL = 5.0
LEASE_SECONDS = 15.0
LIMITS = ConnectionLimits(
    hello_timeout=10.0, rate_per_second=50.0, rate_burst=100, flood_strikes=20
)
_STORE_CALLS = [
    "load_agent",
    "load_revision",
    "commit_agent",
    "stream_head",
    "stream_heads",
    "read_stream",
    "resume",
    "subscribe",
    "claim_lease",
    "renew_lease",
    "release_lease",
    "lease_is_current",
    "journal_read",
    "journal_write",
    "workflows_add",
    "workflows_done",
    "workflows_list",
    "rate_acquire",
    "heartbeat",
    "live_nodes",
    "ping",
]


class SimStore(MemoryStore):
    """The shared store ("Redis"): can be down, can restart empty, can lose publications."""

    def __init__(self, rng: random.Random, clock: Callable[[], float]) -> None:
        super().__init__(clock=clock)
        self.rng = rng
        self.down = False
        self.drop_rate = 0.0
        self.dropped = 0
        self._gap_listeners: list[tuple[str, Any, Any]] = []

    async def subscribe(self, agent: str, listener: Any, *, on_gap: Any = None) -> Any:
        def lossy(entry: Any) -> None:
            if self.drop_rate and self.rng.random() < self.drop_rate:
                self.dropped += 1
                return
            listener(entry)

        subscription = await super().subscribe(agent, lossy, on_gap=on_gap)
        self._gap_listeners.append((agent, lossy, on_gap))
        return subscription

    def wipe(self) -> None:
        """Redis restarted without its data: every key is gone, subscribers reconnect and are
        told they may have missed publications (as the Redis store's pub/sub does)."""
        live = [(a, lsn, gap) for a, lsn, gap in self._gap_listeners if self._listening(a, lsn)]
        self._agents.clear()
        self._workflows.clear()
        self._tats.clear()
        self._nodes.clear()
        self._gap_listeners = []
        for agent, listener, on_gap in live:
            self._record(agent).listeners.append(listener)
            self._gap_listeners.append((agent, listener, on_gap))
        for _, _, on_gap in live:
            if on_gap is not None:
                on_gap()

    def _listening(self, agent: str, listener: Any) -> bool:
        record = self._agents.get(agent)
        return record is not None and listener in record.listeners


class NodeStore:
    """One node's view of the shared store: paused with the node, dead after a kill."""

    def __init__(self, store: SimStore, clock: Callable[[], float]) -> None:
        self.store = store
        self.dead = False
        self.running = asyncio.Event()
        self.running.set()
        self._clock = clock
        self._until = 0.0  # the current pause ends then
        self._since = 0.0  # ... and began then
        self._paused_before = 0.0  # seconds spent in earlier pauses

    def pause(self, seconds: float) -> None:
        """Stop the node (a GC pause, SIGSTOP) for `seconds`; a longer pause extends it."""
        now = self._clock()
        if self.running.is_set():
            self.running.clear()
            self._since = now
        self._until = max(self._until, now + seconds)
        asyncio.get_running_loop().call_later(self._until - now, self._resume_if_last, self._until)

    def _resume_if_last(self, until: float) -> None:
        """End the pause this timer was set for, unless a later pause extended it. Compared
        by value, not against the clock: the loop may wake this timer a rounding error before
        `until` (seed 6833 had a 5 s pause that never ended, as `1070.0 < 1070.0000000000002`).
        """
        if until == self._until:
            self.unpause()

    def unpause(self) -> None:
        if not self.running.is_set():
            self._paused_before += self._clock() - self._since
            self.running.set()

    def paused_seconds(self) -> float:
        """How long the node has been paused in all, so far."""
        ongoing = 0.0 if self.running.is_set() else self._clock() - self._since
        return self._paused_before + ongoing

    def __getattr__(self, name: str) -> Any:
        target = getattr(self.store, name)
        if name not in _STORE_CALLS:
            return target

        async def call(*args: Any, **kwargs: Any) -> Any:
            await self._alive()
            if self.store.down:
                raise StoreUnavailable("simulated store outage")
            result = await target(*args, **kwargs)
            await self._alive()  # a pause right after the answer came back
            return result

        return call

    async def _alive(self) -> None:
        await self.running.wait()
        if self.dead:
            raise StoreUnavailable("this node is dead")


class Node:
    def __init__(self, world: "World", node_id: str) -> None:
        self.world = world
        self.id = node_id
        self.store = NodeStore(world.store, world.clock.monotonic)
        self.metrics = Metrics()
        # Wired as `daemon.app` wires it: store calls timed, each a wait of the frame making it.
        timed = instrumented(self.store, counting_waits(self.metrics.store_operation))
        self.hub = AgentHub(timed, RULES, node_id, self.metrics, clock=world.clock.time)  # type: ignore[arg-type]
        self.client = ZendeskClient(
            world.base_url, ApiTokenAuth("agent@example.com", "sandbox-token"), timeout=10.0
        )
        self.deps = RunnerDeps(
            store=self.store,  # type: ignore[arg-type]
            client=self.client,
            settings=APP,
            agent_info=self._agent_info,
            load_contact=self._load_contact,
            report=self._report,
            holder=node_id,
            clock=world.clock.time,
            backoff_base=1.0,
            backoff_cap=20.0,
        )
        self.scheduler = WorkflowScheduler(
            self.store,  # type: ignore[arg-type]
            node_id,
            lambda agent, contact, lease: run_contact(self.deps, agent, contact, lease),
            self.metrics,
            lease_seconds=LEASE_SECONDS,
            clock=world.clock.time,
        )
        self.hub.on_wake = self.scheduler.wake
        self.budgets = AgentBudgets(LIMITS)
        self.alive = True
        self.ready: bool | None = None
        self.connections: dict[asyncio.Task[None], None] = {}
        self.tasks: list[asyncio.Task[None]] = []

    async def start(self) -> None:
        await self.client.__aenter__()
        await self._check_store()
        loop = asyncio.get_running_loop()
        self.tasks = [
            loop.create_task(self._every(1.0, self._check_store)),
            loop.create_task(self._every(1.0, self.hub.sweep)),
            loop.create_task(self._every(3.0, self.hub.sync_positions)),
            loop.create_task(self._every(5.0, self.scheduler.scan)),
        ]

    async def _load_contact(self, agent: str, contact_id: str) -> Contact | None:
        _, state = await self.hub.load(agent, fresh=True)
        return state.contacts.get(contact_id)

    async def _agent_info(self, agent: str) -> AgentInfo:
        _, state = await self.hub.load(agent)
        user_id, name = state.zendesk_identity()
        return AgentInfo(user_id=user_id, name=name)

    async def _report(self, agent: str, event: WorkflowReported) -> None:
        await self.hub.apply(agent, event)

    async def _every(self, seconds: float, job: Callable[[], Any]) -> None:
        while True:
            await asyncio.sleep(seconds)
            with contextlib.suppress(StoreUnavailable):
                await job()

    async def _check_store(self) -> None:
        """As `daemon.app` does: heartbeat, live set, and re-registration after an outage."""
        try:
            await self.store.heartbeat(self.id, NODE_TTL)
            self.hub.live_nodes = await self.store.live_nodes()
            up = True
        except StoreUnavailable:
            up = False
        if up == self.ready:
            return
        first, self.ready = self.ready is None, up
        if up and not first:
            self.hub.forget_cache()
            for sink in self.hub.sinks():
                with contextlib.suppress(Exception):
                    await sink.reregister()

    def connect(self, pipe: "Pipe") -> None:
        connection = TabConnection(
            pipe,  # type: ignore[arg-type]
            Codec(JSON_SUBPROTOCOL),
            self.hub,
            SECRET,
            LIMITS,
            self.budgets,
            self.metrics,
        )
        task = asyncio.get_running_loop().create_task(connection.run())
        pipe.conn_id = connection.conn_id
        self.connections[task] = None
        task.add_done_callback(lambda t: self.connections.pop(t, None))

    async def kill(self) -> None:
        """The process dies: nothing it does reaches the store or its tabs any more."""
        self.alive = False
        self.store.dead = True
        self.store.unpause()
        for task in [*self.tasks, *self.connections]:
            task.cancel()
        await asyncio.gather(*self.tasks, *self.connections, return_exceptions=True)
        await self.scheduler.close()
        await self.hub.close()
        await self.client.close()

    async def stop(self) -> None:
        if self.alive:
            await self.kill()


class Pipe:
    """An in-memory WebSocket: what `TabConnection` needs of one, both ends in this process.

    It remembers when each frame the tab sent was written, so the checks can see how long
    the daemon leaves a live tab's frames unread.
    """

    def __init__(
        self,
        clock: Callable[[], float],
        paused: Callable[[], float],
        on_frame: Callable[[Any], None],
        on_close: Callable[[int], None],
    ) -> None:
        self.inbox: asyncio.Queue[str | None] = asyncio.Queue()
        # when each unread frame was written, and how long its node had been paused then
        self.sent_at: deque[tuple[float, float]] = deque()
        self._paused = paused
        self.state = State.OPEN
        self.close_code: int | None = None
        self._clock = clock
        self._closed = asyncio.Event()
        self._on_frame = on_frame
        self._on_close = on_close
        self.conn_id = ""  # the daemon's id for this connection

    async def recv(self) -> str:
        if self.state is not State.OPEN:
            raise ConnectionClosedOK(None, None)
        item = await self.inbox.get()
        if item is None:
            raise ConnectionClosedOK(None, None)
        self.sent_at.popleft()
        return item

    async def send(self, frame: Any) -> None:
        if self.state is not State.OPEN:
            raise ConnectionClosedOK(None, None)
        self._on_frame(frame)

    def frames_buffered(self) -> bool:
        return not self.inbox.empty()

    def send_now(self, frame: Any) -> bool:
        if self.state is not State.OPEN:
            return False
        self._on_frame(frame)
        return True

    async def close(self, code: int = 1000, reason: str = "") -> None:
        if self.state is State.OPEN:
            self.state = State.CLOSED
            self.close_code = code
            self.inbox.put_nowait(None)
            self._closed.set()
            self._on_close(code)

    async def wait_closed(self) -> None:
        await self._closed.wait()

    async def closed_within(self, seconds: float) -> None:
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._closed.wait(), seconds)

    def client_send(self, data: Any) -> None:
        if self.state is State.OPEN:
            self.inbox.put_nowait(data if isinstance(data, str) else json.dumps(data))
            self.sent_at.append((self._clock(), self._paused()))

    def unread_for(self) -> float:
        """How long the oldest frame the daemon has not read yet has been waiting while its
        node was not paused (0: none)."""
        if not self.sent_at:
            return 0.0
        sent, paused = self.sent_at[0]
        return self._clock() - sent - (self._paused() - paused)


class World:
    def __init__(self, rng: random.Random, clock: Any) -> None:
        self.rng = rng
        self.clock = clock
        self.store = SimStore(rng, clock.time)
        self.nodes: list[Node] = []
        self.server: TestServer | None = None
        self.sandbox: Sandbox
        self.base_url = ""
        self._node_ids = 0

    async def start(self, nodes: int) -> None:
        self.server = TestServer(create_app(SandboxConfig(), clock=Clock(self.clock.time)))
        await self.server.start_server()
        self.sandbox = self.server.app[SANDBOX_KEY]
        self.base_url = str(self.server.make_url("")).rstrip("/")
        for _ in range(nodes):
            await self.add_node()

    async def add_node(self) -> Node:
        self._node_ids += 1
        node = Node(self, f"n{self._node_ids}")
        self.nodes.append(node)
        await node.start()
        return node

    def live(self) -> list[Node]:
        return [n for n in self.nodes if n.alive]

    def agent_token(self, agent: str) -> str:
        email = f"{agent}@agents.example"
        user = self.sandbox.user_by_email(email) or self.sandbox.create_user(
            name=f"Agent {agent}", email=email, role="agent", indexed=True
        )
        # PyJWT checks expiry against the real clock (datetime.now), not `time.time`.
        issued = datetime.now(UTC).timestamp()
        return mint_token(SECRET, agent, zendesk_user_id=user.id, name=f"Agent {agent}", now=issued)

    async def close(self) -> None:
        for node in self.nodes:
            await node.stop()
        if self.server is not None:
            await self.server.close()
