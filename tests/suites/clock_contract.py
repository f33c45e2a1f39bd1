"""The Clock contract: the system clock and the virtual one pass these same tests.

``now()`` is an aware UTC datetime, ``time()`` the same instant in Unix seconds, and
``monotonic()`` never goes back and moves with the running loop: a clock must agree with the
loop that does the waiting. A tier provides a ``clock_rig`` fixture: ``clock`` (read in the
test's loop), ``nap_s`` (how long a test sleeps on that loop) and ``tolerance_s`` (how far two
readings of the same instant may differ: a few milliseconds on real time, nothing on virtual).
"""

from __future__ import annotations

import asyncio
from datetime import timedelta
from itertools import pairwise

from herald.types import Clock


async def sleep_and_read(clock, nap_s):
    """Readings of the clock and the loop before and after sleeping ``nap_s`` on the loop."""
    loop = asyncio.get_running_loop()
    before = (clock.monotonic(), loop.time(), clock.now(), clock.time())
    await asyncio.sleep(nap_s)
    after = (clock.monotonic(), loop.time(), clock.now(), clock.time())
    return before, after


class ClockContract:
    """Runs on every clock a tier provides (its ``clock_rig`` fixture)."""

    async def test_is_a_clock(self, clock_rig):
        assert isinstance(clock_rig.clock, Clock)

    async def test_now_is_an_aware_utc_datetime(self, clock_rig):
        now = clock_rig.clock.now()
        assert now.tzinfo is not None
        assert now.utcoffset() == timedelta(0)

    async def test_time_is_now_in_unix_seconds(self, clock_rig):
        clock = clock_rig.clock
        assert abs(clock.time() - clock.now().timestamp()) <= clock_rig.tolerance_s

    async def test_monotonic_never_goes_backwards(self, clock_rig):
        clock = clock_rig.clock
        readings = []
        for n in range(2000):
            readings.append(clock.monotonic())
            if n % 100 == 0:
                await asyncio.sleep(0)
        await asyncio.sleep(clock_rig.nap_s)
        readings.append(clock.monotonic())
        assert all(a <= b for a, b in pairwise(readings))

    async def test_monotonic_advances_by_the_time_slept_on_the_loop(self, clock_rig):
        tolerance, nap = clock_rig.tolerance_s, clock_rig.nap_s
        (mono0, loop0, *_), (mono1, loop1, *_) = await sleep_and_read(clock_rig.clock, nap)
        assert mono1 - mono0 >= nap - tolerance
        assert abs((mono1 - mono0) - (loop1 - loop0)) <= tolerance

    async def test_wall_time_advances_with_monotonic(self, clock_rig):
        tolerance = clock_rig.tolerance_s
        before, after = await sleep_and_read(clock_rig.clock, clock_rig.nap_s)
        (mono0, _, now0, time0), (mono1, _, now1, time1) = before, after
        elapsed = mono1 - mono0
        assert abs((now1 - now0).total_seconds() - elapsed) <= tolerance
        assert abs((time1 - time0) - elapsed) <= tolerance
