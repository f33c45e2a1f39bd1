"""Virtual time: an event loop whose clock jumps to the next timer when nothing can run.

Code that waits for seconds or hours (throttle pauses, rate-limit windows, backoff, shutdown
grace) runs in milliseconds, and the waits keep their order and their lengths as the code sees
them, as under trio's ``MockClock(autojump_threshold=0)``:

- :class:`VirtualTimeLoop`: an asyncio loop whose ``time()`` stands still while anything is
  ready to run, and jumps to the earliest timer once nothing is. Work handed to threads
  through the loop's ``run_in_executor`` (the SQLite store's, ``asyncio.to_thread``) is waited
  for in real time first: the loop never jumps over such a result on its way. It knows of no
  other outside work: a thread of your own waking the loop (``call_soon_threadsafe``, a
  future wrapped with ``asyncio.wrap_future``), a subprocess, a socket to another process are
  not waited for, and their timeouts fire at once. Keep such tests on real time.
- :class:`VirtualClock`: the :class:`~herald.types.Clock` of such a loop; wall time starts at
  the loop's creation and moves with its virtual time.
- :func:`running_clock`: a clock that reads whichever loop is running, for building an engine
  in a test that may run on either kind of loop.

With pytest-asyncio (1.4 or later), in a ``conftest.py``::

    def pytest_asyncio_loop_factories(config, item):
        return {"virtual_time": VirtualTimeLoop}

Without pytest: ``with asyncio.Runner(loop_factory=VirtualTimeLoop) as r: r.run(main())``.
"""

from __future__ import annotations

import asyncio
import selectors
from collections.abc import Callable
from concurrent.futures import Executor
from datetime import UTC, datetime, timedelta
from typing import Any, TypeVar, TypeVarTuple

from herald.timing import SystemClock
from herald.types import Clock

__all__ = ["VirtualClock", "VirtualTimeLoop", "running_clock"]

T = TypeVar("T")
Ts = TypeVarTuple("Ts")


class VirtualClock:
    """Implements :class:`herald.types.Clock` on a :class:`VirtualTimeLoop`."""

    def __init__(self, loop: asyncio.AbstractEventLoop, start: datetime) -> None:
        if start.tzinfo is None:
            raise ValueError("a virtual clock starts at an aware datetime")
        self._loop = loop
        self._start = start.astimezone(UTC)
        self._start_s = self._start.timestamp()

    def now(self) -> datetime:
        return self._start + timedelta(seconds=self._loop.time())

    def time(self) -> float:
        return self._start_s + self._loop.time()

    def monotonic(self) -> float:
        return self._loop.time()


class _Selector(selectors.DefaultSelector):
    """The loop's poll for I/O, which is where time passes: a wait that nothing outside the
    loop can end early becomes a jump."""

    def __init__(self, advance: Callable[[float], None], waiting: Callable[[], bool]) -> None:
        super().__init__()
        self._advance = advance
        self._waiting = waiting  # True while work outside the loop will wake it

    def select(self, timeout: float | None = None) -> list[tuple[selectors.SelectorKey, int]]:
        ready = super().select(0)
        if ready or timeout == 0:
            return ready
        if timeout is None or self._waiting():
            # Only something outside the loop can move it on now: a thread's result (it comes
            # through the loop's self-pipe) or I/O. Wait for it in real time; virtual time
            # stands still meanwhile, so thread work takes none.
            return super().select(timeout)
        self._advance(timeout)
        return []


class VirtualTimeLoop(asyncio.SelectorEventLoop):
    """An event loop on virtual time; its :attr:`clock` reads it as wall time, which starts at
    ``start`` (default: the real time now)."""

    def __init__(self, *, start: datetime | None = None) -> None:
        self._virtual_s = 0.0
        self._in_threads: set[asyncio.Future[Any]] = set()
        self._joining = 0  # executor shutdowns under way (their thread is not an executor's)
        super().__init__(_Selector(self._advance, self._outside_work))
        self.clock = VirtualClock(self, start or datetime.now(UTC))

    def time(self) -> float:
        return self._virtual_s

    def _advance(self, seconds: float) -> None:
        self._virtual_s += seconds

    def _outside_work(self) -> bool:
        return bool(self._in_threads) or self._joining > 0

    def run_in_executor(
        self, executor: Executor | None, func: Callable[[*Ts], T], *args: *Ts
    ) -> asyncio.Future[T]:
        future = super().run_in_executor(executor, func, *args)
        self._in_threads.add(future)
        future.add_done_callback(self._in_threads.discard)
        return future

    async def shutdown_default_executor(self, *args: float | None) -> None:
        # Joining the executor's threads happens on a thread of its own, under a timeout
        # (Python 3.12+): no jumping over the join to that timeout.
        self._joining += 1
        try:
            await super().shutdown_default_executor(*args)
        finally:
            self._joining -= 1


class _RunningClock:
    """Implements :class:`herald.types.Clock` by asking, at each reading, which loop runs."""

    @staticmethod
    def _current() -> Clock:
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:
            return _SYSTEM
        return loop.clock if isinstance(loop, VirtualTimeLoop) else _SYSTEM

    def now(self) -> datetime:
        return self._current().now()

    def time(self) -> float:
        return self._current().time()

    def monotonic(self) -> float:
        return self._current().monotonic()


_SYSTEM = SystemClock()


def running_clock() -> Clock:
    """A clock that agrees with whichever event loop is running when it is read: a
    :class:`VirtualTimeLoop`'s own, else (or when no loop runs) the system clock.

    It decides at each reading, not when it is made, so an engine built outside any loop (in
    a synchronous fixture, say) still reads virtual time once it runs on a virtual loop.
    """
    return _RunningClock()
