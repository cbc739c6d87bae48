"""Time every round trip to a store, whatever the store is.

`instrumented(store, recorder)` returns a stand-in for `store` whose public coroutine methods
are timed; everything else (plain methods, attributes) is the store's own. It knows nothing of
the store's interface, so it keeps working however the store is split up (one class or several
role objects), and the store implementations carry no metrics code.

Contract: each call of a public coroutine method reports once to the recorder its operation
obtained (``recorder(name)``, called once per method name) with the seconds it took and
whether it returned (``True``) or raised (``False``); a call that is cancelled reports
nothing, since its duration says nothing about the store. Calls the store makes to its own
methods are not counted: only what the daemon asks of it.
"""

import functools
import inspect
import time
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar, cast

S = TypeVar("S")

#: ``(seconds, ok)`` for one call of one operation.
Record = Callable[[float, bool], None]
#: The recorder for an operation name.
Recorder = Callable[[str], Record]


class _Timed:
    """Forwards attribute reads to the target, timing its public coroutine methods."""

    def __init__(self, target: object, recorder: Recorder) -> None:
        self._target = target
        self._recorder = recorder

    def __getattr__(self, name: str) -> Any:
        # Only called for names not found on the proxy; a timed method, once built, is cached
        # in the instance dict so later reads cost a dict lookup.
        attr = getattr(self._target, name)
        if name.startswith("_") or not inspect.iscoroutinefunction(attr):
            return attr
        timed = _timed(attr, self._recorder(name))
        self.__dict__[name] = timed
        return timed

    def __repr__(self) -> str:
        return f"instrumented({self._target!r})"


def _timed(method: Callable[..., Awaitable[Any]], record: Record) -> Callable[..., Any]:
    @functools.wraps(method)
    async def timed(*args: Any, **kwargs: Any) -> Any:
        started = time.perf_counter()
        try:
            result = await method(*args, **kwargs)
        except Exception:
            record(time.perf_counter() - started, False)
            raise
        record(time.perf_counter() - started, True)
        return result

    return timed


def instrumented(store: S, recorder: Recorder) -> S:
    """`store` with every public coroutine method timed (see the module docstring)."""
    return cast(S, _Timed(store, recorder))
