"""A browser tab as the daemon sees it over the wire: hello, resume, reports, and a client
side that checks every message it receives (invariant 4: in order, none twice, a snapshot
when the gap is lost) and keeps the view a real tab would show."""

import json
from typing import Any

from tests.sim.world import Node, Pipe, World

#: Close codes after which a real client does not come back on its own.
FINAL_CLOSES = frozenset({4009, 1008, 4001})
RETRY_SECONDS = 3.0


class SimTab:
    def __init__(self, world: World, agent: str, name: str, violations: list[str]) -> None:
        self.world = world
        self.agent = agent
        self.name = name  # the simulator's handle; tab_id is what the daemon assigned
        self.violations = violations
        self.tab_id: str | None = None
        self.session: str | None = None
        self.position: tuple[str, int] | None = None
        self.view: dict[str, dict[str, Any]] = {}
        self.epochs: dict[str, int] = {}  # highest epoch seen per contact, this stream epoch
        self.pipe: Pipe | None = None
        self.node: Node | None = None
        self.welcomed = False
        self.closed_code: int | None = None
        self.wants_open = False  # the page is open (it reconnects when the socket drops)
        self.errors: list[dict[str, Any]] = []
        self.unsent: dict[str, dict[str, Any]] = {}  # by ref: refused for now, sent again
        self._refs = 0
        self._sent: dict[str, dict[str, Any]] = {}
        self._retry_at = 0.0

    @property
    def connected(self) -> bool:
        return self.pipe is not None and self.closed_code is None and self.welcomed

    def open(self, node: Node, *, resume: bool = True) -> None:
        self.wants_open = True
        self.node = node
        self.welcomed = False
        self.closed_code = None
        pipe = Pipe(
            self.world.clock.monotonic,
            node.store.paused_seconds,
            lambda frame: self._frame(pipe, frame),
            lambda code: self._closed(pipe, code),
        )
        self.pipe = pipe
        node.connect(pipe)
        hello: dict[str, Any] = {"type": "hello", "token": self.world.agent_token(self.agent)}
        if self.tab_id is not None:
            hello["tab_id"] = self.tab_id
        if self.session is not None and resume:
            hello["session"] = self.session
        if self.position is not None and resume:
            hello["resume"] = {"epoch": self.position[0], "seq": self.position[1]}
        pipe.client_send(hello)

    def duplicate(self, name: str) -> "SimTab":
        """The browser's Duplicate Tab: a new page with this one's sessionStorage (tab id)."""
        twin = SimTab(self.world, self.agent, name, self.violations)
        twin.tab_id = self.tab_id
        return twin

    async def close(self) -> None:
        """The page is closed (or reloads: `open` again afterwards)."""
        self.wants_open = False
        if self.pipe is not None:
            await self.pipe.close(1001, "going away")

    def send(self, message: dict[str, Any] | str) -> None:
        if self.pipe is not None and self.closed_code is None:
            self.pipe.client_send(message)
            if isinstance(message, dict) and "ref" in message:
                self._sent[message["ref"]] = message

    def report(self, event: str, snapshot: dict[str, Any]) -> None:
        self._refs += 1
        self.send(
            {"type": "contact_event", "event": event, "contact": snapshot, "ref": f"r{self._refs}"}
        )

    def retry(self, now: float) -> None:
        """Send again, every few seconds, what the daemon could not apply (`unavailable`)."""
        if now < self._retry_at:
            return
        self._retry_at = now + RETRY_SECONDS
        unsent, self.unsent = self.unsent, {}
        for message in unsent.values():
            self.send(message)

    # -- the client side ---------------------------------------------------------------

    def _closed(self, pipe: Pipe, code: int) -> None:
        if pipe is self.pipe:
            self.closed_code = code

    def _fail(self, text: str) -> None:
        self.violations.append(f"tab {self.name} ({self.agent}/{self.tab_id}): {text}")

    def _frame(self, pipe: Pipe, frame: Any) -> None:
        if pipe is not self.pipe:
            self._fail("a frame arrived on a connection the tab had left")
            return
        message = json.loads(frame)
        kind = message["type"]
        if kind == "welcome":
            if message["agent_id"] != self.agent:
                self._fail(f"welcomed as agent {message['agent_id']}")
            self.tab_id, self.session = message["tab_id"], message["session"]
            self.welcomed = True
            return
        if kind == "error":
            self.errors.append(message)
            sent = self._sent.get(message.get("ref") or "")
            if message["code"] == "unavailable" and sent is not None:
                self.unsent[message["ref"]] = sent
            if message["code"] == "internal":
                self._fail(f"internal error: {message['message']}")
            return
        pos = message.get("pos")
        if pos is None:
            return  # out-of-stream news (store down, back)
        position = (pos["epoch"], pos["seq"])
        if kind == "snapshot":
            if self.position is not None and position[0] == self.position[0]:
                if position[1] < self.position[1]:
                    self._fail(f"snapshot at {position} behind {self.position}")
            else:
                self.epochs = {}
            self.position = position
            self.view = {c["contact_id"]: c for c in message["contacts"]}
            for c in message["contacts"]:
                self._epoch(c)
            return
        if self.position is None or position[0] != self.position[0]:
            self._fail(f"{kind} at {position} without a snapshot (had {self.position})")
        elif position[1] <= self.position[1]:
            self._fail(f"{kind} at {position} again or out of order (had {self.position})")
        self.position = position
        if kind == "contact":
            contact = message["contact"]
            self.view[contact["contact_id"]] = contact
            self._epoch(contact)
        elif kind == "forget":
            for cid in message["contact_ids"]:
                self.view.pop(cid, None)

    def _epoch(self, contact: dict[str, Any]) -> None:
        cid, epoch = contact["contact_id"], contact["epoch"]
        if epoch < self.epochs.get(cid, 0):
            self._fail(f"contact {cid}: epoch fell from {self.epochs[cid]} to {epoch}")
        self.epochs[cid] = max(epoch, self.epochs.get(cid, 0))
