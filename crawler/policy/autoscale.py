"""The autoscaler's policy: how many jobs run at once next, and why.

Pure logic, no trio and no I/O (like :mod:`crawler.policy.retry`):
:meth:`Autoscaler.step` takes one :class:`Load` (what the last tick measured) and
returns a :class:`Step`; :mod:`crawler.run.autoscale` takes the readings and applies
the step to the workers and the tab pool.

The rule is TCP's congestion control, as Crawlee's AutoscaledPool also does it
(additive or multiplicative increase, multiplicative decrease):

- **Down, fast, on overload**, whatever else the readings say:

  - ``memory``: the browser tree's PSS at :data:`MEMORY_HIGH` of the budget or more.
    Down by as many slots as bring it back to :data:`MEMORY_TARGET` (PSS grows with
    the tabs held; see :meth:`Autoscaler.memory_per_slot`), at least one, and at least
    half of them over the budget.  Judged only on a reading taken since the last
    change: the last one may predate the tabs that change closed.
  - ``status_429``: the site answered 429 (or 503, the same "slow down") in the tick:
    halved, as TCP does on a loss.  The host itself is paused by the retry policy;
    this is the crawl not sending as much once it resumes.
  - ``loop_lag``: the event loop ran timers :data:`LAG_OVERLOAD_S` late on average:
    the crawler cannot keep up with its own tabs.  Times :data:`OVERLOAD_DECREASE`.

  After a decrease nothing grows for :data:`COOLDOWN_TICKS` ticks, and a 429 or a
  lag decrease is not repeated inside that window (the pages already sent answer
  after it, as the old tabs' memory goes only as they close).

- **Up only while every signal is healthy and the slots are used**: the tree's CPU
  under :data:`CPU_TARGET`, the memory projected for the next step under
  :data:`MEMORY_TARGET`, the loop lag under :data:`LAG_TARGET_S`, fewer than
  :data:`PACE_SHARE` of the slots waiting for their host's turn (the rate limit is the
  limit: more tabs would wait too) and at least :data:`SATURATED` of them busy (an
  empty frontier is the limit).  Doubling at first ("slow start": 1 to 16 in four
  ticks), until the first decrease; then a quarter more (at least one) after
  :data:`UP_TICKS` healthy ticks in a row.  A step never goes past what the CPU and
  the memory are projected to carry at their targets (a slot's CPU taken as a
  quarter of the mean per slot; its memory as the measured slope, at least half the
  mean: see :meth:`Autoscaler.memory_per_slot`), except one slot more for the CPU.

- **Hysteresis**: every "up" threshold is below its "down" one (CPU has no "down":
  a CPU-bound crawl holds at the target, where it is fastest, rather than flapping);
  between the two it holds.  A tick that holds says what held it (``held_by``).

The reasons, as the figures name them: ``scale_up``, ``memory``, ``status_429``,
``loop_lag`` (a change), and for a hold also ``cpu``, ``pace``, ``idle``, ``max``,
``cooldown``.
"""

from __future__ import annotations

import math

import attrs

# Share of the usable cores the process tree may use before growth stops: Crawlee's
# default too (maxUsedCpuRatio).  Lower held the demo crawl, which keeps gaining pages/s
# up to 16 tabs on two cores, at 6 to 12 tabs while its tree used 75-85% of the cores.
CPU_TARGET = 0.95
MEMORY_TARGET = 0.75  # share of the budget the next step's projected PSS may reach
MEMORY_HIGH = 0.85  # share of the budget at which it scales down (the throttle's pressure level too)
LAG_TARGET_S = 0.05  # mean event-loop lateness under which it may grow
LAG_OVERLOAD_S = 0.25  # mean event-loop lateness at which it scales down
PACE_SHARE = 0.5  # share of the slots waiting for their host's turn at which the pace is the limit
SATURATED = 0.9  # share of the slots busy (on average over the tick) for the pool to be the limit
OVERLOAD_DECREASE = 0.7  # the factor on loop lag
STATUS_DECREASE = 0.5  # the factor on 429/503
UP_TICKS = 2  # healthy ticks in a row before an additive step (after the slow start)
COOLDOWN_TICKS = 3  # ticks after a decrease with no increase (and no second 429 or lag decrease)

REASONS = ("scale_up", "memory", "status_429", "loop_lag")  # what a change is counted under
HOLDS = ("max", "cooldown", "memory", "cpu", "loop_lag", "pace", "idle")  # what may hold it, in this order


@attrs.frozen
class Load:
    """What one tick measured (means over the tick unless said otherwise)."""

    busy: float  # slots holding a job
    idle: float = 0.0  # workers that found nothing to claim
    pace_waiting: float = 0.0  # jobs waiting for their host's turn (they hold a slot)
    cpu: float | None = None  # the process tree's CPU, as a share of the usable cores; None: not known yet
    loop_lag_s: float = 0.0  # mean lateness of the event loop's timers
    memory: float | None = None  # the browser tree's PSS / the budget, latest reading; None: nothing to judge
    memory_fresh: bool = True  # that reading was taken since the last change
    outcomes: int = 0  # jobs that ended in the tick
    slow_downs: int = 0  # of which the site answered 429 or 503


@attrs.frozen
class Step:
    """The autoscaler's answer to one tick."""

    concurrency: int  # jobs at once from now on
    reason: str | None  # why it changed (one of REASONS); None: unchanged
    held_by: str  # what keeps it from growing (one of HOLDS), "" if nothing does


@attrs.define
class Autoscaler:
    """The concurrency between ``minimum`` and ``maximum``, one :meth:`step` per tick.
    It starts at ``minimum``."""

    minimum: int
    maximum: int
    concurrency: int = attrs.field(default=0)
    slow_start: bool = True  # doubling, until the first decrease
    _healthy: int = 0  # ticks in a row that would let it grow
    _cooldown: int = 0  # ticks left with no increase
    _memory_at: dict[int, float] = attrs.field(factory=dict)  # concurrency -> its latest fresh memory share

    def __attrs_post_init__(self) -> None:
        if not 1 <= self.minimum <= self.maximum:
            raise ValueError(f"expected 1 <= minimum <= maximum, got {self.minimum}, {self.maximum}")
        self.concurrency = min(self.maximum, max(self.minimum, self.concurrency or self.minimum))

    def step(self, load: Load) -> Step:
        """One tick: the next concurrency and why (see the module docstring)."""
        c = self.concurrency
        if load.memory is not None and load.memory_fresh:
            self._memory_at[c] = load.memory
        cooling = self._cooldown > 0
        self._cooldown = max(0, self._cooldown - 1)
        down = self._decrease(load, cooling)
        if down is not None:
            return down
        held = self._held(load, cooling)
        if held:
            self._healthy = 0
            return Step(c, None, held)
        self._healthy += 1
        if not self.slow_start and self._healthy < UP_TICKS:
            return Step(c, None, "")
        self._healthy = 0
        grown = c * 2 if self.slow_start else c + max(1, c // 4)
        grown = min(grown, self.maximum, self._memory_room(load), self._cpu_room(load))
        self.concurrency = grown
        return Step(grown, "scale_up", "")

    def limit(self, most: int, reason: str) -> Step | None:
        """Something outside holds the pool to ``most`` (the memory throttle, over its
        level): the autoscaler comes down to it, as after a decrease of its own, so
        that the throttle's release does not bring back what caused it.  None if it is
        at or under ``most`` already."""
        most = max(self.minimum, most)
        if self.concurrency <= most:
            return None
        return self._down_to(most, reason)

    # -- the rules -------------------------------------------------------------------------

    def _decrease(self, load: Load, cooling: bool) -> Step | None:
        c = self.concurrency
        if load.memory is not None and load.memory_fresh and load.memory >= MEMORY_HIGH:
            slots = math.ceil((load.memory - MEMORY_TARGET) / self.memory_per_slot(load.memory))
            target = c - max(1, slots)
            if load.memory > 1.0:
                target = min(target, c // 2)
            return self._down_to(target, "memory")
        if cooling:
            return None
        if load.slow_downs:
            return self._down_to(math.floor(c * STATUS_DECREASE), "status_429")
        if load.loop_lag_s >= LAG_OVERLOAD_S:
            return self._down_to(math.floor(c * OVERLOAD_DECREASE), "loop_lag")
        return None

    def _down_to(self, target: int, reason: str) -> Step | None:
        """Down to ``target`` (never under the minimum); a decrease ends the slow start
        and starts the cooldown.  None if it is at the minimum already."""
        target = max(self.minimum, min(target, self.concurrency - 1))
        if target >= self.concurrency:
            return None
        self.concurrency = target
        self.slow_start = False
        self._healthy = 0
        self._cooldown = COOLDOWN_TICKS
        return Step(target, reason, reason)

    def _held(self, load: Load, cooling: bool) -> str:
        """What keeps it from growing this tick, "" if nothing does (see HOLDS)."""
        c = self.concurrency
        if c >= self.maximum:
            return "max"
        if cooling:
            return "cooldown"
        if load.memory is not None and (not load.memory_fresh or self._memory_room(load) <= c):
            return "memory"
        if load.cpu is None or load.cpu >= CPU_TARGET:
            return "cpu"
        if load.loop_lag_s >= LAG_TARGET_S:
            return "loop_lag"
        if load.pace_waiting >= PACE_SHARE * c:
            return "pace"
        if load.busy < SATURATED * c:
            return "idle"
        return ""

    def _cpu_room(self, load: Load) -> int:
        """The most slots the CPU is expected to carry under CPU_TARGET (at least one
        more: it is under the target), each slot taken to cost a quarter of the mean per
        slot.  Why so little: the crawler's and the browser's own work does not grow
        with the slots, and a page that mostly waits costs less CPU per page the more
        tabs run (the demo crawl: 174 CPU ms a page at 1 tab, 133 at 16).  Why a limit
        at all: a doubling from just under the target would overshoot far past the
        point where the cores are full, and nothing brings it back (CPU alone never
        scales down)."""
        c = self.concurrency
        if not load.cpu:
            return self.maximum
        per_slot = 0.25 * load.cpu / c
        return max(c + 1, c + math.floor((CPU_TARGET - load.cpu) / per_slot))

    def _memory_room(self, load: Load) -> int:
        """The most slots whose projected PSS stays under MEMORY_TARGET of the budget
        (no limit without a memory reading to judge by)."""
        if load.memory is None:
            return self.maximum
        c = self.concurrency
        return c + max(0, math.floor((MEMORY_TARGET - load.memory) / self.memory_per_slot(load.memory)))

    def memory_per_slot(self, memory: float) -> float:
        """What one more slot is expected to add to the memory share: the slope between
        the readings at this concurrency and the nearest other one, but never less
        than half the mean per slot (the rest is the browser's own processes, which do
        not grow with tabs).  Why the floor: a slope from two readings is noisy (a
        tab recycled just before one of them), and an estimate too low would let one
        step go over the budget; half the mean errs on the side of fewer tabs."""
        c = self.concurrency
        estimate = 0.5 * memory / c
        others = [k for k in self._memory_at if k != c]
        if others:
            k = min(others, key=lambda k: (abs(k - c), k))
            estimate = max(estimate, (memory - self._memory_at[k]) / (c - k))
        return max(estimate, 1e-6)
