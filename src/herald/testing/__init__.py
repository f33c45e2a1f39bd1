"""Test doubles for Herald's plug-in points, shipped for users' own tests.

Everything here runs in one process with no server and no network:

- :class:`FakePlatform` and :class:`FakeConnector` (:mod:`.platform`): a platform that records
  every post it receives, and a connector to it whose answers a test scripts (publish, fail,
  commit the post and then lose the answer, throttle...);
- :class:`StaticCredentials` (:mod:`.credentials`): a credential resolver with a fixed token,
  refusing the channels it is told to;
- :func:`channel` and :func:`new_post` (:mod:`.builders`): domain objects with sensible defaults;
- :func:`memory_engine` (:mod:`.engine`): an engine on the in-memory store, queue and limiter,
  with fake connectors;
- :func:`eventually` (:mod:`.waiting`): wait for a condition, with a deadline;
- :class:`VirtualTimeLoop`, :class:`VirtualClock` and :func:`running_clock`
  (:mod:`.virtual_time`): an event loop whose clock jumps to the next timer when nothing can
  run, so tests of pauses, windows and backoffs take milliseconds rather than seconds.

The in-memory store, queue and limiter themselves are the package's own
(:class:`herald.stores.memory.MemoryStore`, :class:`herald.queues.memory.MemoryQueue`,
:class:`herald.limits.memory.MemoryLimiter`): they pass the same contract suites as the
production back ends.
"""

from herald.testing.builders import channel, new_post
from herald.testing.credentials import StaticCredentials
from herald.testing.engine import memory_engine
from herald.testing.platform import FakeConnector, FakePlatform, Step
from herald.testing.virtual_time import VirtualClock, VirtualTimeLoop, running_clock
from herald.testing.waiting import eventually

__all__ = [
    "FakeConnector",
    "FakePlatform",
    "StaticCredentials",
    "Step",
    "VirtualClock",
    "VirtualTimeLoop",
    "channel",
    "eventually",
    "memory_engine",
    "new_post",
    "running_clock",
]
