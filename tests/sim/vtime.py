"""Virtual time: an event loop whose clock jumps to the next timer instead of sleeping.

Everything in the daemon reads time through `time.time`, `time.monotonic` or the loop's
clock (asyncio timeouts, `call_later`, aiohttp's timeouts); `virtual_time` points all three
at one `VirtualClock` for the length of a run. The loop's selector first polls the real
sockets without waiting (the sandbox is on loopback, in this process: a byte written is
readable at once); only when nothing is ready does the clock jump by the wait the loop asked
for, so a run takes as long as its computation, not as long as its timeouts.
"""

import asyncio
import contextlib
import selectors
import time
from collections.abc import Iterator
from datetime import datetime, tzinfo
from typing import Any

from daemon.zendesk import client as zendesk_client

EPOCH = 1_700_000_000.0  # the wall clock when a run starts (virtual)
#: A loop with nothing scheduled and nothing ready waits for the sockets this long (real
#: seconds) per turn: only a bug in the simulator leaves it there.
IDLE_POLL = 0.01


class VirtualClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def monotonic(self) -> float:
        return self.now

    def time(self) -> float:
        return EPOCH + self.now

    def advance(self, seconds: float) -> None:
        if seconds > 0:
            self.now += seconds


class _JumpingSelector(selectors.DefaultSelector):
    def __init__(self, clock: VirtualClock) -> None:
        super().__init__()
        self._clock = clock

    def select(self, timeout: float | None = None) -> list[tuple[selectors.SelectorKey, int]]:
        ready = super().select(0)
        if ready or timeout == 0:
            return ready
        ready = super().select(0)  # a second look before declaring the sockets quiet
        if ready:
            return ready
        if timeout is None:
            return super().select(IDLE_POLL)
        self._clock.advance(timeout)
        return []


class VirtualLoop(asyncio.SelectorEventLoop):
    def __init__(self, clock: VirtualClock) -> None:
        super().__init__(selector=_JumpingSelector(clock))
        self._virtual = clock
        self._clock_resolution = 1e-9

    def time(self) -> float:
        return self._virtual.monotonic()


def _virtual_datetime(clock: VirtualClock) -> type[datetime]:
    class VirtualDatetime(datetime):
        @classmethod
        def now(cls, tz: tzinfo | None = None) -> "VirtualDatetime":
            return cls.fromtimestamp(clock.time(), tz)

    return VirtualDatetime


@contextlib.contextmanager
def virtual_time(clock: VirtualClock) -> Iterator[None]:
    """Make `time.time`, `time.monotonic` and the Zendesk client's `datetime.now` read
    `clock` (restored on exit). Tokens are still checked by PyJWT against the real clock."""
    saved: dict[str, Any] = {"time": time.time, "monotonic": time.monotonic}
    time.time = clock.time
    time.monotonic = clock.monotonic
    zendesk_client.datetime = _virtual_datetime(clock)  # type: ignore[attr-defined]
    try:
        yield
    finally:
        time.time = saved["time"]
        time.monotonic = saved["monotonic"]
        zendesk_client.datetime = datetime  # type: ignore[attr-defined]
