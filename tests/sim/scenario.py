"""One seed, one run: build a world, play random steps with faults, settle, check.

Every random choice comes from `random.Random(seed)` (the module-level `random` and
`secrets.token_hex` are seeded from it too, so jitter and fresh ids repeat): with
PYTHONHASHSEED=0 (the command line sets it) a seed replays exactly.
"""

import asyncio
import random
import secrets
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

from daemon.core.state import AgentState
from daemon.core.workflow import Scope
from daemon.sandbox import FaultRule
from daemon.sandbox.faults import FaultKind
from daemon.zendesk.runner import DONE
from tests.sim.invariants import check_end, check_step
from tests.sim.tabs import FINAL_CLOSES, SimTab
from tests.sim.vtime import VirtualClock, VirtualLoop, virtual_time
from tests.sim.world import World

DEFAULT_STEPS = 40
LIFECYCLES = (
    ("incoming", "connected", "ended", "destroyed"),
    ("incoming", "connecting", "accepted", "connected", "ended", "acw", "destroyed"),
    ("incoming", "missed", "destroyed"),
)
FAULT_PATHS = ("*", "/api/v2/tickets*", "/api/v2/users*", "/api/v2/tickets/*", "/api/v2/search*")


@dataclass
class CcpContact:
    """A contact as the agent's softphone (and so every tab) sees it."""

    agent: str
    contact_id: str
    phone: str
    name: str
    events: tuple[str, ...]
    reached: int = 0  # how many of `events` have happened
    lost: bool = False  # its workflow state was wiped with the store before it finished
    wiped: bool = False  # its journal was wiped after it finished (nothing left to check)
    #: The daemon recorded the call as answered (a report sent on a connection that died,
    #: with its node or its page, never arrived: then the daemon cannot know).
    answered: bool = False

    def snapshot(self) -> dict[str, Any]:
        return {
            "contact_id": self.contact_id,
            "type": "voice",
            "direction": "inbound",
            "customer_endpoint": self.phone,
            "queue": "Support",
            "attributes": {"customer_name": self.name},
            "agent_name": f"Agent {self.agent}",
        }

    @property
    def event(self) -> str:
        return self.events[self.reached - 1]

    @property
    def done(self) -> bool:
        return self.reached == len(self.events)


@dataclass
class Run:
    seed: int
    steps: int
    rng: random.Random
    world: World
    violations: list[str] = field(default_factory=list)
    tabs: list[SimTab] = field(default_factory=list)
    contacts: list[CcpContact] = field(default_factory=list)
    agents: list[str] = field(default_factory=list)
    wipes: int = 0
    log: list[str] = field(default_factory=list)
    stored_epochs: dict[tuple[int, str, str], int] = field(default_factory=dict)
    #: When each open connection was first seen with its tab id held by another connection
    #: (clock, and its node's paused seconds then), by connection id.
    moved_on: dict[str, tuple[float, float]] = field(default_factory=dict)

    # -- helpers -----------------------------------------------------------------------

    def note(self, text: str) -> None:
        self.log.append(f"t={self.world.clock.now:.1f} {text}")

    def live_tabs(self, agent: str | None = None) -> list[SimTab]:
        return [t for t in self.tabs if t.connected and (agent is None or t.agent == agent)]

    def node(self) -> Any:
        return self.rng.choice(self.world.live())

    def new_tab(self, agent: str) -> SimTab:
        tab = SimTab(self.world, agent, f"T{len(self.tabs)}", self.violations)
        self.tabs.append(tab)
        tab.open(self.node())
        return tab

    async def wait(self, seconds: float) -> None:
        """Let virtual time pass; pages whose socket dropped come back as a browser would."""
        end = self.world.clock.now + seconds
        while self.world.clock.now < end:
            await asyncio.sleep(min(1.0, end - self.world.clock.now))
            for tab in self.tabs:
                if tab.connected and tab.unsent:
                    tab.retry(self.world.clock.now)
                gone = tab.pipe is not None and tab.closed_code is not None
                if tab.wants_open and gone and tab.closed_code not in FINAL_CLOSES:
                    tab.open(self.node())
                elif tab.wants_open and gone:
                    tab.wants_open = False

    async def stored(self, agent: str) -> AgentState | None:
        record = self.world.store._agents.get(agent)
        if record is None or record.head is None:
            return None
        return AgentState.decode(record.head, record.contacts)

    # -- the steps ---------------------------------------------------------------------

    async def step(self) -> None:
        r = self.rng
        kind = r.choices(
            [
                "event",
                "event",
                "event",
                "event",
                "new_contact",
                "reload",
                "duplicate",
                "close",
                "open",
                "kill",
                "pause",
                "outage",
                "wipe",
                "drop",
                "zendesk",
                "hostile",
            ],
            weights=[3, 3, 3, 3, 4, 2, 1, 1, 1, 1, 1, 1, 0.5, 1, 4, 1],
        )[0]
        await getattr(self, f"_{kind}")()
        await self.wait(r.choice([0.0, 0.2, 1.0, 3.0, 8.0]))
        await check_step(self)

    async def _new_contact(self) -> None:
        agent = self.rng.choice(self.agents)
        if any(c.agent == agent and not c.done for c in self.contacts):
            return await self._event()
        n = len(self.contacts)
        contact = CcpContact(
            agent,
            f"c-{self.seed}-{n}",
            f"+4477009{n:05d}",
            f"Caller {n}",
            self.rng.choice(LIFECYCLES),
        )
        self.contacts.append(contact)
        self.note(f"contact {contact.contact_id} for {agent}: {'/'.join(contact.events)}")
        await self._advance(contact)

    async def _event(self) -> None:
        pending = [c for c in self.contacts if not c.done]
        if pending:
            await self._advance(self.rng.choice(pending))

    async def _advance(self, contact: CcpContact) -> None:
        """The contact moves on; every tab's CCP sees it, each reports it (a few miss it)."""
        tabs = self.live_tabs(contact.agent)
        if not tabs:
            return  # no tab, no softphone: the call waits for one
        contact.reached += 1
        self.note(f"{contact.contact_id} {contact.event} via {len(tabs)} tabs")
        self.rng.shuffle(tabs)
        for index, tab in enumerate(tabs):
            if index == 0 or self.rng.random() < 0.85:
                tab.report(contact.event, contact.snapshot())

    async def _reload(self) -> None:
        tabs = self.live_tabs()
        if tabs:
            tab = self.rng.choice(tabs)
            self.note(f"reload {tab.name}")
            await tab.close()
            await self.wait(self.rng.choice([0.0, 0.5, 2.0, 15.0]))
            tab.open(self.node(), resume=self.rng.random() < 0.8)

    async def _duplicate(self) -> None:
        tabs = self.live_tabs()
        if tabs:
            twin = self.rng.choice(tabs).duplicate(f"T{len(self.tabs)}")
            self.tabs.append(twin)
            self.note(f"duplicate {twin.name} of {twin.tab_id}")
            twin.open(self.node())

    async def _close(self) -> None:
        tabs = self.live_tabs()
        if len(tabs) > 1:
            tab = self.rng.choice(tabs)
            self.note(f"close {tab.name}")
            await tab.close()

    async def _open(self) -> None:
        self.new_tab(self.rng.choice(self.agents))

    async def _kill(self) -> None:
        world = self.world
        if len(world.live()) == 1 or self.rng.random() < 0.5:
            node = await world.add_node()
            self.note(f"start {node.id}")
        if len(world.live()) > 1:
            node = self.rng.choice(world.live())
            self.note(f"kill {node.id}")
            for tab in self.tabs:
                if tab.node is node and tab.pipe is not None:
                    tab.closed_code = tab.closed_code or 1006
            await node.kill()

    async def _pause(self) -> None:
        node = self.node()
        seconds = self.rng.choice([1.0, 5.0, 20.0, 40.0])
        self.note(f"pause {node.id} {seconds}s")
        node.store.pause(seconds)

    async def _outage(self) -> None:
        seconds = self.rng.choice([0.5, 3.0, 12.0])
        self.note(f"store down {seconds}s")
        self.world.store.down = True
        asyncio.get_running_loop().call_later(seconds, setattr, self.world.store, "down", False)

    async def _wipe(self) -> None:
        self.note("store restarts empty")
        for contact in self.contacts:
            if contact.done and await self._workflow_done(contact):
                contact.wiped = True
            elif contact.reached:
                # its history is gone: what tabs report next is all the daemon will know
                contact.lost = True
                self.note(f"{contact.contact_id} lost")
        self.wipes += 1
        self.world.store.wipe()

    async def _drop(self) -> None:
        rate = self.rng.choice([0.0, 0.3, 1.0])
        self.note(f"pub/sub loses {rate:.0%}")
        self.world.store.drop_rate = rate

    async def _zendesk(self) -> None:
        r = self.rng
        kind: FaultKind = r.choice(["error", "rate_limit", "timeout", "drop_after_write"])
        rule = FaultRule(
            kind=kind,
            method=r.choice(["*", "POST", "PUT", "GET"]),
            path=r.choice(FAULT_PATHS),
            status=r.choice([500, 502, 503]),
            seconds=r.choice([1.0, 8.0, 12.0, 30.0]),
            retry_after=r.choice([1, 5, 30]),
            count=r.choice([1, 2, 5]),
            skip=r.choice([0, 0, 1, 3]),
        )
        self.note(f"zendesk fault {rule.model_dump(exclude={'fired'})}")
        self.world.sandbox.faults.add([rule])

    async def _hostile(self) -> None:
        """A tab sends what no well-behaved tab does: garbage, another agent's contact, a
        command under a made-up epoch."""
        tabs = self.live_tabs()
        if not tabs:
            return
        tab = self.rng.choice(tabs)
        others = [c for c in self.contacts if c.agent != tab.agent]
        choice = self.rng.randrange(4)
        self.note(f"hostile {tab.name} #{choice}")
        if choice == 0:
            tab.send("{not json")
        elif choice == 1:
            tab.send({"type": "contact_event", "event": "exploded", "contact": {}})
        elif choice == 2 and self.contacts:
            target = self.rng.choice(self.contacts)
            tab.send(
                {
                    "type": "command",
                    "name": "create_ticket",
                    "contact_id": target.contact_id,
                    "epoch": self.rng.choice([1, 2, 99]),
                }
            )
        elif others:
            # Another agent's contact id, reported as this agent's own call: it must become
            # this agent's contact with its own ticket, never a write on the other's.
            stolen = self.rng.choice(others)
            twin = CcpContact(
                tab.agent,
                stolen.contact_id,
                stolen.phone,
                stolen.name,
                ("incoming", "missed", "destroyed"),
            )
            if not any(
                c.agent == twin.agent and c.contact_id == twin.contact_id for c in self.contacts
            ):
                self.contacts.append(twin)
                await self._advance(twin)

    async def _workflow_done(self, contact: CcpContact) -> bool:
        journal = await self.world.store.journal_read(contact.agent, contact.contact_id)
        return journal.get(DONE) is True  # False: revived by a later change

    # -- the end -----------------------------------------------------------------------

    async def settle(self) -> None:
        """Faults stop; the CCPs finish their calls; the daemon is given time to catch up."""
        world = self.world
        world.sandbox.faults.clear()
        world.store.down = False
        world.store.drop_rate = 0.0
        for node in world.live():
            node.store.unpause()
        if not world.live():
            await world.add_node()
        await self.wait(25.0)  # past pauses and grace periods
        for agent in self.agents:
            if not self.live_tabs(agent):
                self.new_tab(agent)
        await self.wait(2.0)
        for contact in self.contacts:
            while not contact.done:
                await self._advance(contact)
                await self.wait(0.5)
            # a tab that reconnected re-reports the calls its CCP still shows (onConnected)
            tabs = self.live_tabs(contact.agent)
            if tabs and not contact.lost:
                self.rng.choice(tabs).report(contact.event, contact.snapshot())
        for _ in range(60):
            await self.wait(10.0)
            if not await world.store.workflows_list() and not any(
                n.scheduler._running for n in world.live()
            ):
                break
        await self.wait(10.0)  # a last position sync reaches every tab

    def scope(self, agent: str) -> Scope:
        return Scope(self.world.live()[0].deps.account_name(), agent)


@contextmanager
def seeded(rng: random.Random) -> Iterator[None]:
    """Module-level randomness (retry jitter, fresh ids) follows the seed during a run."""
    state = random.getstate()
    token_hex = secrets.token_hex
    random.seed(rng.random())
    secrets.token_hex = lambda n=None: random.randbytes(n or 32).hex()  # type: ignore[assignment]
    try:
        yield
    finally:
        secrets.token_hex = token_hex
        random.setstate(state)


#: Changes the world after the run settled and before the end checks (tests of the checks).
Tamper = Callable[[Run], None]


async def _play(run: Run, tamper: Tamper | None) -> None:
    r = run.rng
    world = run.world
    await world.start(r.randint(1, 3))
    run.agents = [f"a{i}" for i in range(r.randint(1, 3))]
    for agent in run.agents:
        for _ in range(r.randint(1, 3)):
            run.new_tab(agent)
    await run.wait(1.0)
    for _ in range(run.steps):
        await run.step()
    await run.settle()
    if tamper is not None:
        tamper(run)
    await check_end(run)


def simulate(seed: int, steps: int = DEFAULT_STEPS, tamper: Tamper | None = None) -> Run:
    """Play one seed on a fresh virtual loop; the returned run lists its violations."""
    rng = random.Random(seed)
    clock = VirtualClock()
    loop = VirtualLoop(clock)
    run = Run(seed, steps, rng, World(rng, clock))
    with virtual_time(clock), seeded(rng):
        try:
            loop.run_until_complete(_play(run, tamper))
        except Exception as e:  # a crash is a finding too, reported like a violation
            run.violations.append(f"simulator crashed: {e!r}")
        finally:
            loop.run_until_complete(run.world.close())
            _cancel_all(loop)
            loop.close()
    return run


def _cancel_all(loop: asyncio.AbstractEventLoop) -> None:
    tasks = asyncio.all_tasks(loop)
    for task in tasks:
        task.cancel()
    if tasks:
        loop.run_until_complete(asyncio.gather(*tasks, return_exceptions=True))
    loop.run_until_complete(loop.shutdown_asyncgens())


def reproduction(seed: int, steps: int = DEFAULT_STEPS) -> str:
    extra = "" if steps == DEFAULT_STEPS else f" --steps {steps}"
    return f"python -m tests.sim --seed {seed}{extra}"
