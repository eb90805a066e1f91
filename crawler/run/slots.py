"""How many jobs run at once, and what the workers do meanwhile.

- :class:`WorkerSlots`: the gate a worker passes before it claims a job, a
  :class:`trio.CapacityLimiter` whose size one owner sets (``[pool] concurrency =
  "auto"``: :class:`crawler.run.autoscale.Autoscale`; a fixed concurrency: as many
  slots as workers, so it never waits).  The gate comes before the claim so that a
  worker without a slot claims nothing: no job waits in the in-flight table for a slot.
  Lowering the size takes effect as jobs end (a job holding a slot runs to its end).
- :class:`WatchedPace`: the crawl's per-host pace (:class:`crawler.policy.ratelimit.Pace`,
  shared by every worker on Redis) as it is, counting the jobs waiting for their host's
  turn and the host's "slow down" answers (429 and 503: the retry policy's host pauses).

Each count is a :class:`TimedCount`: its value now and its integral over time, so a
reader takes the mean over any window by differencing two snapshots, and any number of
readers may (:class:`WorkerLoad` is that snapshot).
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable, Iterator
from contextlib import AbstractContextManager, asynccontextmanager, contextmanager

import attrs
import trio

from crawler.policy.ratelimit import Pace


class TimedCount:
    """An integer that goes up and down, with its integral over time (value × seconds),
    on ``clock`` (trio's by default: call it inside trio)."""

    def __init__(self, clock: Callable[[], float] = trio.current_time):
        self._clock = clock
        self.value = 0
        self._area = 0.0
        self._since: float | None = None

    def add(self, n: int) -> None:
        self._area = self.area()
        self._since = self._clock()
        self.value += n

    def area(self) -> float:
        """The integral of the value over time, up to now."""
        if self._since is None:
            return self._area
        return self._area + self.value * (self._clock() - self._since)

    @contextmanager
    def counting(self) -> Iterator[None]:
        """One more for the body of the block."""
        self.add(1)
        try:
            yield
        finally:
            self.add(-1)


@attrs.frozen
class WorkerLoad:
    """What the workers do, now and summed over the run (``*_s``: integrals, job-seconds;
    the mean over a window is the difference of two snapshots over its length)."""

    at: float  # trio time of the snapshot
    limit: int  # slots now
    busy: int  # slots holding a job now
    busy_s: float
    idle: int  # workers now waiting for something to claim (the frontier has nothing ready)
    idle_s: float
    pace_waiting: int  # jobs now waiting for their host's turn (each holds a slot)
    pace_waiting_s: float
    slow_downs: int  # the hosts' 429/503 answers (host pauses), this run
    outcomes: int  # jobs ended this run (done, failed, retried, put back)


class WorkerSlots:
    """The workers' gate and their counts (see the module docstring)."""

    def __init__(self, limit: int):
        self._limiter = trio.CapacityLimiter(max(1, limit))
        self.busy = TimedCount()
        self.idle = TimedCount()

    @property
    def limit(self) -> int:
        return int(self._limiter.total_tokens)

    def set_limit(self, limit: int) -> None:
        """Change how many jobs may run at once (at least one).  Jobs holding a slot run
        to their end; waiting workers go as slots come free (or at once, if raised)."""
        self._limiter.total_tokens = max(1, limit)

    @asynccontextmanager
    async def slot(self) -> AsyncIterator[None]:
        """Hold a slot for the body of the block (waits for one).  Cancellation-safe:
        a worker cancelled while waiting holds nothing."""
        async with self._limiter:
            with self.busy.counting():
                yield

    def idling(self) -> AbstractContextManager[None]:
        """Count a worker as idle for the body of the block."""
        return self.idle.counting()


class WatchedPace:
    """``pace`` as it is (:class:`crawler.policy.ratelimit.Pace`), counting the jobs in
    :meth:`hold` that wait for their turn, and the :meth:`back_off` calls."""

    def __init__(self, pace: Pace):
        self._pace = pace
        self.waiting = TimedCount()
        self.slow_downs = 0

    @asynccontextmanager
    async def hold(self, url: str) -> AsyncIterator[None]:
        self.waiting.add(1)
        turn = False
        try:
            async with self._pace.hold(url):
                self.waiting.add(-1)
                turn = True
                yield
        finally:
            if not turn:
                self.waiting.add(-1)

    async def back_off(self, url: str, delay_s: float) -> None:
        self.slow_downs += 1
        await self._pace.back_off(url, delay_s)
