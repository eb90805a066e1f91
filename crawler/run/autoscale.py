"""The pool that sizes itself (``[pool] concurrency = "auto"``): one task that reads the
load every :data:`TICK_S`, asks the policy (:class:`crawler.policy.autoscale.Autoscaler`)
for the next concurrency, and applies it, as one number, to the workers' slots
(:class:`crawler.run.slots.WorkerSlots`) and to the tab pool in use.

The readings, each over the last tick:

- the CPU of the whole process tree, this process and the browser's, as a share of the
  usable cores (:class:`crawler.observe.load.TreeCpu`, read in a thread);
- the event loop's lag (:class:`crawler.observe.load.LoopLag`, a probe task);
- memory: the browser tree's PSS as the memory monitor last read it (every ``[monitor]
  sample_interval_s``; a reading takes long, so the autoscaler takes the monitor's
  rather than make its own), against ``[pool] memory_budget_mb``.  Without a budget,
  against what the machine (or the container) has free: the browser may grow into
  :data:`FREE_MEMORY_SHARE` of it.  A reading counts as taken after a change only if
  it began :data:`SETTLE_S` after it;
- the workers (:meth:`crawler.run.jobs.JobRunner.load`): slots busy, workers idle, jobs
  waiting for their host's turn, the hosts' 429/503 answers, outcomes.

A browser reached at ``[browser] cdp_url`` is not in this process's tree: its CPU and
memory are not seen (the memory monitor says so once), and the autoscaler goes by the
rest (the crawler's own CPU, the loop lag, the pace, the 429s).

One owner of the pool's concurrency: with "auto", the memory monitor's throttle does
not set it; its figure (from ``max_concurrency``, lowered above its first level) is a
cap read here, and when it is the lower, the autoscaler comes down to it (counted
``memory``), so that the throttle still wins and its release does not bring back the
figure that caused it.

Each process runs its own (each Redis worker sizes itself to its own machine and
browser); the hosts' pace stays shared through the store, so N workers still send a
host no more than its pace allows.

Task tree: :meth:`Autoscale.run` owns a nursery with the lag probe; its own loop reads
and applies.  Figures: :meth:`Autoscale.statistics` (the progress line, the status
page, the metrics ``crawler_concurrency`` and ``crawler_concurrency_changes_total``).
"""

from __future__ import annotations

import logging
import math
from collections import Counter
from collections.abc import Awaitable, Callable
from typing import Any

import trio

from crawler.browser.pool import TabPool
from crawler.config import PoolSection
from crawler.observe.load import LoopLag, TreeCpu, available_memory
from crawler.observe.stats import AutoscaleStatistics, MemoryStatistics
from crawler.policy.autoscale import MEMORY_TARGET, Autoscaler, Load, Step
from crawler.run.jobs import JobRunner
from crawler.run.slots import WorkerLoad, WorkerSlots

log = logging.getLogger(__name__)

TICK_S = 1.0  # a reading and a decision this often (twice as often while it grows: GROWING_TICK_S)
# After a step up the next reading comes this soon: 1 to 16 slots in about two seconds.
# Why: the ramp is what a short crawl loses to a fixed concurrency (the demo crawl at 16
# tabs lasts 22 s); once it holds, a reading a second costs less (finding the tree scans
# every process's /proc entry: 15 ms a reading among 124 processes on a busy 2-core machine).
GROWING_TICK_S = 0.5
SETTLE_S = 0.5  # a memory reading begun this long after a change is one of the new concurrency
FREE_MEMORY_SHARE = 0.5  # without a budget: the browser may grow into half of what the machine has free

ReadMachine = Callable[[], Awaitable[tuple[float | None, int]]]  # (CPU share since the last call, free bytes)


def autoscale_for(
    pool_section: PoolSection,
    jobs: JobRunner,
    memory: Callable[[], MemoryStatistics],
    pool: Callable[[], TabPool | None],
) -> Autoscale | None:
    """The autoscaler of a crawl whose ``[pool] concurrency`` is "auto", sizing ``jobs``'
    slots (None with a fixed concurrency)."""
    if not pool_section.auto:
        return None
    return Autoscale(pool_section, slots=jobs.slots, load=jobs.load, memory=memory, pool=pool)


def machine_reader(cpu: TreeCpu) -> ReadMachine:
    """The default reader: the tree's CPU share and the free memory, read in a worker
    thread (they read /proc).  Cancellation: the thread runs to its end, its result is
    dropped."""

    async def read() -> tuple[float | None, int]:
        return await trio.to_thread.run_sync(lambda: (cpu.read(), available_memory()))

    return read


class Autoscale:
    """Sizes the pool (see the module docstring).  ``slots`` and ``load`` are the job
    runner's; ``memory`` is the memory monitor's statistics; ``pool`` returns the tab
    pool in use (None between browsers, or with no browser); ``read_machine`` (the CPU
    share and the free memory) is a seam for tests."""

    def __init__(
        self,
        pool_section: PoolSection,
        *,
        slots: WorkerSlots,
        load: Callable[[], WorkerLoad],
        memory: Callable[[], MemoryStatistics],
        pool: Callable[[], TabPool | None],
        read_machine: ReadMachine | None = None,
        tick_s: float = TICK_S,
        growing_tick_s: float = GROWING_TICK_S,
    ):
        self._policy = Autoscaler(pool_section.min_concurrency, pool_section.max_concurrency)
        self._slots = slots
        self._load = load
        self._memory = memory
        self._pool = pool
        self._read_machine = read_machine or machine_reader(TreeCpu())
        self._tick_s = tick_s
        self._growing_tick_s = growing_tick_s
        self._lag = LoopLag()
        self._applied = self._policy.concurrency
        self._reason = ""
        self._held_by = ""
        self._changes: Counter[str] = Counter()
        self._changed_at = -math.inf  # trio time of the last change
        self._last_load: WorkerLoad | None = None
        self._reading = Load(busy=0.0)
        slots.set_limit(self._applied)

    @property
    def concurrency(self) -> int:
        return self._applied

    def summary(self) -> dict[str, Any]:
        """The run summary's entry: the bounds, the figure it ended at and why it last
        changed, the changes by reason (what the summary's settings line shows)."""
        return {
            "min": self._policy.minimum,
            "max": self._policy.maximum,
            "final": self._applied,
            "reason": self._reason,
            "changes": dict(sorted(self._changes.items())),
        }

    def statistics(self) -> AutoscaleStatistics:
        r = self._reading
        return AutoscaleStatistics(
            concurrency=self._applied,
            minimum=self._policy.minimum,
            maximum=self._policy.maximum,
            reason=self._reason,
            held_by=self._held_by,
            changes=dict(self._changes),
            cpu=r.cpu,
            loop_lag_s=r.loop_lag_s,
            memory=r.memory,
            busy=r.busy,
        )

    async def run(self) -> None:
        """Read, decide and apply every ``tick_s`` (``growing_tick_s`` after a step up)
        until cancelled.  Owns one task (the lag probe); never raises but Cancelled."""
        async with trio.open_nursery() as nursery:
            nursery.start_soon(self._lag.run)
            await self._read_machine()  # the CPU's first reading: a base
            self._last_load = self._load()
            delay_s = self._tick_s
            while True:
                await trio.sleep(delay_s)
                step = self.tick(await self.read())
                delay_s = self._growing_tick_s if step.reason == "scale_up" else self._tick_s

    async def read(self) -> Load:
        """One tick's readings.  Cancellation: nothing changes."""
        cpu, free = await self._read_machine()
        now = self._load()
        before, self._last_load = self._last_load or now, now
        span = now.at - before.at

        def mean(total_s: float, total_before_s: float, value: int) -> float:
            return (total_s - total_before_s) / span if span > 0 else float(value)

        memory, fresh = self._memory_share(free)
        lag_s, _worst_s = self._lag.take()
        return Load(
            busy=mean(now.busy_s, before.busy_s, now.busy),
            idle=mean(now.idle_s, before.idle_s, now.idle),
            pace_waiting=mean(now.pace_waiting_s, before.pace_waiting_s, now.pace_waiting),
            cpu=cpu,
            loop_lag_s=lag_s,
            memory=memory,
            memory_fresh=fresh,
            outcomes=now.outcomes - before.outcomes,
            slow_downs=now.slow_downs - before.slow_downs,
        )

    def tick(self, load: Load) -> Step:
        """Decide on ``load`` and apply the result (never blocks); returns the policy's
        step (with the throttle's cap applied)."""
        self._reading = load
        step = self._policy.step(load)
        capped = self._policy.limit(self._memory().concurrency, "memory")
        if capped is not None:
            step = capped
        self._held_by = step.held_by
        before, after = self._applied, self._policy.concurrency
        if after != before:
            self._applied = after
            self._reason = step.reason or "memory"
            self._changes[self._reason] += 1
            self._changed_at = trio.current_time()
            log.info(
                "concurrency %d -> %d (auto: %s): %s",
                before,
                after,
                self._reason,
                describe(load, before),
            )
        else:
            log.debug("concurrency %d (auto, held by %s): %s", after, step.held_by or "-", describe(load, after))
        self._apply()
        return step

    def _apply(self) -> None:
        """The figure, to the slots and to the pool in use (a new pool after a browser
        restart opens with the slots' figure; this keeps it so)."""
        self._slots.set_limit(self._applied)
        pool = self._pool()
        if pool is not None and pool.concurrency != self._applied:
            pool.set_concurrency(self._applied)

    def _memory_share(self, free: int) -> tuple[float | None, bool]:
        """(the browser tree's PSS as a share of what it may use, whether that reading
        began after the last change); (None, True) with nothing measured (no browser, or
        not ours: cdp_url)."""
        m = self._memory()
        if m.sampled_at is None or m.browser_pss <= 0:
            return None, True
        fresh = m.sampled_at >= self._changed_at + SETTLE_S
        if m.budget_bytes:
            return m.browser_pss / m.budget_bytes, fresh
        share = m.browser_pss / (m.browser_pss + FREE_MEMORY_SHARE * free)
        # Far from the machine's limit, a reading from before the last change is good enough.
        return share, fresh or share < MEMORY_TARGET / 2


def describe(load: Load, concurrency: int) -> str:
    """One tick's readings, for a log line."""
    cpu = f"{load.cpu:.0%}" if load.cpu is not None else "?"
    memory = (
        f"{load.memory:.0%}{'' if load.memory_fresh else ' (before the change)'}" if load.memory is not None else "-"
    )
    return (
        f"cpu {cpu}, loop lag {load.loop_lag_s * 1000:.0f} ms, memory {memory}, "
        f"{load.busy:.1f} of {concurrency} slots busy, {load.pace_waiting:.1f} waiting for their host, "
        f"{load.idle:.1f} workers idle, {load.slow_downs} slow-downs in {load.outcomes} outcomes"
    )
