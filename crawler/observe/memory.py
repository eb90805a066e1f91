"""The memory monitor: PSS readings, the memory-budget throttle, and the samples.

Every ``[monitor] sample_interval_s`` it reads the PSS of the browser's process tree
and of the crawler (:func:`read_memory`, the seam), stores one row in
``memory_samples``, feeds the reading to the throttle (``[pool] memory_budget_mb``) and
applies the throttle's settings to the pool in use; every ``memory_interval_s`` it logs
one memory line.  At each tab recycle (the pool's ``on_tab_retired`` hook, installed
by :meth:`MemoryMonitor.attach_pool`) it stores the tab's own figures in
``tab_samples``.  Monitoring never stops the crawl: a sample that cannot be stored is
logged and dropped.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Awaitable, Callable
from typing import Any

import attrs
import trio

import cdp
from crawler.browser.pool import TabPool
from crawler.config import MonitorSection, PoolSection
from crawler.observe.pss import MiB, TabFiguresWindow, self_pss, tab_figures, tree_pss
from crawler.observe.stats import MemoryStatistics
from crawler.store.base import Store

log = logging.getLogger(__name__)


# -- the memory throttle ------------------------------------------------------------------

# Fractions of [pool] memory_budget_mb.  Above THROTTLE_HIGH the pool works with half
# its tabs and recycles them twice as often; over the budget, with one tab and a fresh
# tab for every page.  Only below THROTTLE_LOW does it go back to the configured
# settings: the gap keeps one reading near a threshold from flapping the pool.
THROTTLE_HIGH = 0.85
THROTTLE_LOW = 0.70
THROTTLE_LEVELS = ("normal", "pressure", "over budget")


@attrs.define
class MemoryThrottle:
    """Pool settings from browser-tree PSS readings against a budget, with hysteresis.

    Level 0 (normal): the configured concurrency and recycle interval.  Level 1
    (pressure, PSS > 85% of the budget): half of each, rounded up.  Level 2 (over
    budget): one tab, recycled after every page.  The level falls to 1 below 85% and
    to 0 only below 70%.  Pure logic: the engine applies the settings to the pool.
    """

    budget_bytes: int
    base_concurrency: int
    base_recycle_every: int
    level: int = 0

    @property
    def concurrency(self) -> int:
        return (self.base_concurrency, max(1, (self.base_concurrency + 1) // 2), 1)[self.level]

    @property
    def recycle_tab_every(self) -> int:
        return (self.base_recycle_every, max(1, (self.base_recycle_every + 1) // 2), 1)[self.level]

    def fraction(self, pss: int) -> float:
        return pss / self.budget_bytes

    def update(self, pss: int) -> bool:
        """Take one PSS reading (bytes); True if the level changed."""
        f = self.fraction(pss)
        if f > 1.0:
            level = 2
        elif f > THROTTLE_HIGH:
            level = max(self.level, 1)
        elif f >= THROTTLE_LOW:
            level = min(self.level, 1)
        else:
            level = 0
        changed, self.level = level != self.level, level
        return changed


@attrs.frozen
class MemoryReading:
    """One reading, in bytes."""

    browser_pss: int  # summed over the browser's process tree; 0 if it is not ours to measure
    browser_processes: int
    crawler_pss: int


async def read_memory(browser_pid: int | None) -> MemoryReading:
    """Read the PSS of ``browser_pid``'s process tree (nothing if None) and of this
    process, each in a worker thread (they read /proc).  Cancellation: the thread
    runs to its end, its result is dropped."""
    browser_pss, processes = await trio.to_thread.run_sync(tree_pss, browser_pid)
    mine = await trio.to_thread.run_sync(self_pss)
    return MemoryReading(browser_pss, processes, mine)


ReadMemory = Callable[[int | None], Awaitable[MemoryReading]]


class MemoryMonitor:
    """Samples memory and throttles the pool near the budget; owns the memory figures.

    ``browser`` and ``pool`` return the browser and pool in use (None between
    browsers); ``pages_done`` the pages done so far, for the samples.
    """

    def __init__(
        self,
        pool_section: PoolSection,
        monitor: MonitorSection,
        store: Store,
        *,
        browser: Callable[[], cdp.Browser | None],
        pool: Callable[[], TabPool | None],
        pages_done: Callable[[], int],
        recycle_tab_every: int,
        read_memory: ReadMemory = read_memory,
    ):
        self._monitor = monitor
        self._store = store
        self._browser = browser
        self._pool = pool
        self._pages_done = pages_done
        self._read_memory = read_memory
        self._settings = (pool_section.most, recycle_tab_every)  # without a throttle
        budget_mb = pool_section.memory_budget_mb
        self._throttle = MemoryThrottle(budget_mb * MiB, pool_section.most, recycle_tab_every) if budget_mb else None
        # With concurrency = "auto" the autoscaler is the one owner of the pool's
        # concurrency: the throttle's figure (from max_concurrency) is a cap it reads
        # (statistics().concurrency) and applies, with its own, as one number.
        self._sets_concurrency = not pool_section.auto
        self._reading = MemoryReading(0, 0, 0)
        self._sampled_at: float | None = None
        self._peak_browser_pss = 0
        self._tab_figures = TabFiguresWindow()
        self._sample_error: str | None = None

    def statistics(self) -> MemoryStatistics:
        throttle = self._throttle
        concurrency, recycle = (
            (throttle.concurrency, throttle.recycle_tab_every) if throttle is not None else self._settings
        )
        return MemoryStatistics(
            browser_pss=self._reading.browser_pss,
            browser_processes=self._reading.browser_processes,
            crawler_pss=self._reading.crawler_pss,
            peak_browser_pss=self._peak_browser_pss,
            budget_bytes=throttle.budget_bytes if throttle is not None else 0,
            throttle_level=throttle.level if throttle is not None else 0,
            concurrency=concurrency,
            recycle_tab_every=recycle,
            sampled_at=self._sampled_at,
        )

    def attach_pool(self, pool: TabPool) -> None:
        """A new pool (one per browser): install the recycle hook, apply the throttle's settings."""
        pool.on_tab_retired = self._on_tab_retired
        self._throttle_pool(pool)

    async def run(self) -> None:
        """Sample every ``sample_interval_s`` until cancelled.  Starts no task (the
        default reader runs threads); never raises but Cancelled."""
        cfg = self._monitor
        last_log = trio.current_time()
        warned_invisible = False
        while True:
            browser = self._browser()
            pid = browser.pid if browser is not None and browser.connected else None
            started = trio.current_time()
            reading = await self._read_memory(pid)
            pss = reading.browser_pss
            self._reading = reading
            self._sampled_at = started if pid is not None else None
            self._peak_browser_pss = max(self._peak_browser_pss, pss)
            if pid is not None:
                self._apply_memory_budget(pss)
            elif self._throttle is not None and browser is not None and browser.connected and not warned_invisible:
                warned_invisible = True
                log.warning(
                    "memory budget set, but the browser's processes are not ours to measure (cdp_url): no throttle"
                )
            pool = self._pool()
            stats = pool.statistics() if pool is not None else None
            await self._store_sample(
                self._store.add_memory_sample,
                {
                    "t": time.time(),
                    "pages_done": self._pages_done(),
                    "browser_pss": pss,
                    "crawler_pss": reading.crawler_pss,
                    "processes": reading.browser_processes,
                    "tabs": stats.tabs if stats else 0,
                    "contexts": stats.contexts if stats else 0,
                },
            )
            if trio.current_time() - last_log >= cfg.memory_interval_s:
                last_log = trio.current_time()
                budget = ""
                if (throttle := self._throttle) is not None:
                    budget = f" ({throttle.fraction(pss):.0%} of the {throttle.budget_bytes / MiB:.0f} MiB budget)"
                log.info(
                    "memory: browser %.0f MiB PSS in %d processes%s, crawler %.0f MiB, %d tabs, %d contexts, "
                    "%d pages done; %s",
                    pss / MiB,
                    reading.browser_processes,
                    budget,
                    reading.crawler_pss / MiB,
                    stats.tabs if stats else 0,
                    stats.contexts if stats else 0,
                    self._pages_done(),
                    self._tab_figures.take_summary(),
                )
            await trio.sleep(cfg.sample_interval_s)

    async def _store_sample(self, add: Callable[[dict[str, Any]], Awaitable[None]], sample: dict[str, Any]) -> None:
        """Write one sample.  A write that fails is logged (once per distinct error) and
        the sample dropped: monitoring never stops the crawl."""
        try:
            await add(sample)
        except Exception as exc:
            message = f"{type(exc).__name__}: {exc}"
            if message != self._sample_error:
                log.warning("sample not stored: %s", message)
            self._sample_error = message

    def _apply_memory_budget(self, pss: int) -> None:
        """Feed one browser-tree PSS reading to the throttle; on a change of level, log
        it; set the current pool's concurrency and recycle interval to the throttle's.

        Why: a renderer's memory is freed only when its tab closes, so near the budget
        the pool closes tabs sooner and keeps fewer of them open, rather than waiting
        for the kernel's OOM killer to pick a process.  Leases already held finish
        their page; extra idle tabs are closed when they come back."""
        throttle = self._throttle
        if throttle is None:
            return
        before = (throttle.concurrency, throttle.recycle_tab_every)
        if throttle.update(pss):
            log.warning(
                "memory: browser %.0f MiB PSS is %.0f%% of the %.0f MiB budget: %s, concurrency %d -> %d, "
                "recycling tabs every %d -> %d pages",
                pss / MiB,
                100 * throttle.fraction(pss),
                throttle.budget_bytes / MiB,
                THROTTLE_LEVELS[throttle.level],
                before[0],
                throttle.concurrency,
                before[1],
                throttle.recycle_tab_every,
            )
        if (pool := self._pool()) is not None:
            self._throttle_pool(pool)

    def _throttle_pool(self, pool: TabPool) -> None:
        if self._throttle is not None:
            if self._sets_concurrency and pool.concurrency != self._throttle.concurrency:
                pool.set_concurrency(self._throttle.concurrency)
            pool.recycle_tab_every = self._throttle.recycle_tab_every

    async def _on_tab_retired(self, tab: cdp.Tab, pages: int) -> None:
        """The pool's hook when it recycles a tab (bounded by the pool): store the tab's
        own figures.  Never raises but Cancelled; a tab that cannot answer is skipped."""
        try:
            figures = await tab_figures(tab)
        except (cdp.CDPError, trio.ClosedResourceError) as exc:
            log.debug("tab %s: no figures at recycle: %s", tab.target_id, exc)
            return
        self._tab_figures.add(figures)
        await self._store_sample(
            self._store.add_tab_sample,
            {
                "t": time.time(),
                "pages": pages,
                "js_heap_used": figures.js_heap_used,
                "nodes": figures.nodes,
                "listeners": figures.listeners,
                "documents": figures.documents,
            },
        )
