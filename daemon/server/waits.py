"""What the frame being handled spent waiting, so that an agent's time budget
(`AgentBudgets`) charges the node's time its frame used, not the time it waited.

A frame's handling suspends at a few places: a store round trip, its agent's turn (behind the
agent's own earlier frames), Amazon Connect's answer. Meanwhile the event loop handles other
agents' frames. Charging a frame its wall-clock time therefore charged its agent for other
agents' work too: under load every agent was paced for the node's work as a whole, and on
Redis, where most of a frame's wall-clock time is the round trip, the daemon kept 0.29 to
0.35 of the memory daemon's event throughput, against 0.59 to 0.64 since (measured with
`tests/bench/daemon_load.py`).

Each place that waits adds the time to the count of the frame its task is handling: each
connection handles its frames in its own task, so the count is that connection's frame's,
and a task the frame starts (a tick, a workflow run) counts for no frame. A count exists
only while its frame is handled, so idle connections hold nothing of it. A wait inside
another (a store call made while Amazon Connect is asked) counts once.
"""

import asyncio
import time
from types import TracebackType
from typing import Any

from daemon.store.instrumented import Record, Recorder


class FrameWaits:
    """Seconds waited by the frame being handled: `with FrameWaits() as waits:` counts the
    waits of the current task inside the block."""

    __slots__ = ("_task", "depth", "seconds")

    def __init__(self) -> None:
        self.seconds = 0.0
        self.depth = 0  # inside a `Waiting` block: the waits within it are its own

    def __enter__(self) -> "FrameWaits":
        self._task = asyncio.current_task()
        _FRAMES[self._task] = self
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        trace: TracebackType | None,
    ) -> None:
        del _FRAMES[self._task]


# The frames being handled, by the task handling each: a task handles one frame at a time.
_FRAMES: dict[asyncio.Task[Any] | None, FrameWaits] = {}


def _current() -> FrameWaits | None:
    return _FRAMES.get(asyncio.current_task()) if _FRAMES else None


def waited(seconds: float) -> None:
    """Count `seconds` as waited by the frame this task is handling, if it handles one."""
    waits = _current()
    if waits is not None and not waits.depth:
        waits.seconds += seconds


class Waiting:
    """`with Waiting(): await ...`: the time inside counts as waited, whatever waits within
    it report."""

    __slots__ = ("_started", "_waits")

    def __enter__(self) -> None:
        self._waits = _current()
        if self._waits is not None:
            self._waits.depth += 1
        self._started = time.monotonic()

    def __exit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        trace: TracebackType | None,
    ) -> None:
        if self._waits is not None:
            self._waits.depth -= 1
        waited(time.monotonic() - self._started)


def counting_waits(recorder: Recorder) -> Recorder:
    """`recorder`, whose records also count as the current frame's waiting: given to
    `instrumented`, every store call a frame makes is a wait. With Redis that is the round
    trip; with the memory store it is a dictionary write, a small part of a frame's time."""

    def operation(name: str) -> Record:
        record = recorder(name)

        def both(seconds: float, ok: bool) -> None:
            record(seconds, ok)
            waited(seconds)

        return both

    return operation
