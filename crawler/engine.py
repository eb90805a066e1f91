"""The crawl engine: workers pull URLs from the store and run each as one job.

Task tree (who owns whom)::

    Crawler.run                       owns: monitor tasks (progress, memory, invariants, signals)
    └── browser loop                  one iteration per browser (launch/connect), restarts it if it dies
        └── open_pool                 owns: tabs, contexts, the popup closer task
            ├── browser watcher       cancels the workers if the connection drops
            └── workers × concurrency each: claim → watchdog scope → lease → run_page → record

Life of one URL: claimed from the store (``in_progress``) → the worker opens its
watchdog scope (timeout + jitter) → leases a tab → waits for the host's rate-limit
slot → navigates, waits for ``wait_for``, extracts, captures → leaves the lease (tab
given back or closed) → records the outcome in one transaction (done with its item,
pending again with a backoff, or failed with its reason).  If the job is cancelled
from outside (shutdown, browser restart) it goes back to pending without being
charged an attempt.
"""

from __future__ import annotations

import logging
import random
import signal
import time
from collections import Counter
from collections.abc import AsyncIterator, Callable
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from typing import Any

import trio

import cdp

from . import monitor
from .config import Config
from .extract import PageFailure, PageResult, build_expression, prepare_tab, run_page
from .inputs import iter_urls
from .pool import TabPool, auto_recycle_every, open_pool
from .ratelimit import HostRateLimiter
from .store import Job, Store
from .watchdog import Watchdog

log = logging.getLogger("crawler.engine")

RELEASE_TIMEOUT_S = 5.0  # bound on putting an interrupted job back in the store
IDLE_POLL_S = 0.5  # a worker with nothing ready re-checks the frontier this often
RESTART_BACKOFF_S = (1.0, 30.0)


class Crawler:
    def __init__(
        self,
        config: Config,
        store: Store,
        *,
        limit: int | None = None,
        rng: random.Random | None = None,
        open_browser: Callable[[], AbstractAsyncContextManager[cdp.Browser]] | None = None,
    ):
        """``open_browser`` is the seam for tests (a fake or chaos-wrapped browser);
        by default the config decides: launch Chromium, or connect to ``cdp_url``."""
        self.config = config
        self.store = store
        self.limit = limit
        self.rng = rng or random.Random()
        self.watchdog = Watchdog(config.watchdog.timeout_s, config.watchdog.jitter_s, rng=self.rng)
        self.limiter = HostRateLimiter(config.rate_limit.wait_ms, rng=self.rng)
        self.expression = build_expression(config.extract.fields, config.extract.wait_for)
        recycle = config.pool.recycle_tab_every
        self.recycle_tab_every = auto_recycle_every(_memory_budget_mb(config)) if recycle == "auto" else int(recycle)
        self._open_browser = open_browser or self._open_configured_browser
        self.browser: cdp.Browser | None = None
        self.pool: TabPool | None = None
        self.in_flight: dict[int, Job] = {}
        self.claimed = 0
        self.done = 0
        self.failed: Counter[str] = Counter()
        self.retries = 0
        self.watchdog_expiries = 0
        self.browser_restarts = 0
        self.peak_browser_pss = 0
        self.finish_reason = "running"
        self._pool_totals: Counter[str] = Counter()
        self._changed = trio.Event()
        self._started_at = 0.0
        self._stop_scope = trio.CancelScope()
        self.total = 0

    # -- the run -------------------------------------------------------------------------

    async def run(self, *, handle_signals: bool = False) -> str:
        """Crawl until every URL is done or failed, the limit is reached, or stop() is
        called.  Returns the finish reason ("finished", "limit", "interrupted" or
        "aborted: ...").  Failed URLs are data in the store, not exceptions."""
        store = self.store
        recovered = await store.recover()
        if recovered:
            log.info("resuming: %d URLs that were in flight when the last run stopped are pending again", recovered)
        added = await store.add_urls(iter_urls(self.config))
        counts = await store.counts()
        self.total = sum(counts.values())
        log.info(
            "%s: %d URLs (%d new): %d done, %d failed, %d pending",
            self.config.site.name,
            self.total,
            added,
            counts["done"],
            counts["failed"],
            counts["pending"],
        )
        await store.start_run()
        self._started_at = trio.current_time()
        self._wall_started = time.time()
        async with cdp.open_service_nursery() as nursery:
            if handle_signals:
                nursery.start_soon(self._watch_signals)
            nursery.start_soon(self._report_progress)
            nursery.start_soon(self._sample_memory)
            nursery.start_soon(self._check_invariants)
            with self._stop_scope:
                self.finish_reason = await self._browser_loop()
            if self._stop_scope.cancelled_caught:
                self.finish_reason = "interrupted"
            nursery.cancel_scope.cancel()
        with trio.move_on_after(RELEASE_TIMEOUT_S, shield=True):
            await store.finish_run(self.finish_reason, await self.summary())
        return self.finish_reason

    def stop(self) -> None:
        """Stop gracefully: in-flight jobs are cancelled and left pending."""
        self._stop_scope.cancel()

    async def _browser_loop(self) -> str:
        failures_in_a_row = 0
        while True:
            if not await self._work_left():
                return "limit" if self._limit_reached() else "finished"
            finished_before = self.done + sum(self.failed.values())
            try:
                died = await self._run_browser()
            except cdp.CDPError as exc:
                log.error("browser failed: %s", exc)
                died = True
            if not died:
                return "limit" if self._limit_reached() else "finished"
            self.browser_restarts += 1
            progressed = self.done + sum(self.failed.values()) > finished_before
            failures_in_a_row = 0 if progressed else failures_in_a_row + 1
            if failures_in_a_row > self.config.browser.restart_limit:
                return f"aborted: the browser died {failures_in_a_row} times in a row without finishing a page"
            delay = min(RESTART_BACKOFF_S[1], RESTART_BACKOFF_S[0] * 2 ** max(0, failures_in_a_row - 1))
            log.warning("browser lost; restarting in %.1f s (restart %d)", delay, self.browser_restarts)
            await trio.sleep(delay)

    async def _run_browser(self) -> bool:
        """Run workers on one browser until the work is done (False) or the browser dies (True)."""
        cfg = self.config
        async with (
            self._open_browser() as browser,
            open_pool(
                browser,
                concurrency=cfg.pool.concurrency,
                recycle_tab_every=self.recycle_tab_every,
                rotate_context_every=cfg.pool.rotate_context_every,
                prepare_tab=lambda tab: prepare_tab(tab, cfg),
                tab_close_timeout_s=cfg.pool.tab_close_timeout_s,
                context_dispose_timeout_s=cfg.pool.context_dispose_timeout_s,
            ) as pool,
        ):
            self.browser, self.pool = browser, pool
            try:
                async with trio.open_nursery() as watch:
                    workers = trio.CancelScope()
                    watch.start_soon(self._watch_browser, browser, workers)
                    with workers:
                        async with trio.open_nursery() as nursery:
                            for i in range(cfg.pool.concurrency):
                                nursery.start_soon(self._worker, i)
                    watch.cancel_scope.cancel()
            finally:
                self._pool_totals.update(_pool_counters(pool))
                self.pool = None
            return browser.connection.closed

    @asynccontextmanager
    async def _open_configured_browser(self) -> AsyncIterator[cdp.Browser]:
        b = self.config.browser
        if b.cdp_url:
            async with cdp.connect(b.cdp_url, command_timeout_s=b.command_timeout_s) as browser:
                yield browser
        else:
            async with cdp.launch(
                executable=b.executable or None, headless=b.headless, args=b.args, command_timeout_s=b.command_timeout_s
            ) as browser:
                yield browser

    async def _watch_browser(self, browser: cdp.Browser, workers: trio.CancelScope) -> None:
        await browser.connection.wait_closed()
        log.warning("browser connection lost: %s", browser.connection.error)
        workers.cancel()

    # -- workers -------------------------------------------------------------------------

    async def _worker(self, index: int) -> None:
        while True:
            if self._limit_reached():
                return
            job = await self.store.claim()
            if job is None:
                ready_in = await self.store.next_ready_in()
                if ready_in is None and not self.in_flight:
                    return
                with trio.move_on_after(min(ready_in if ready_in is not None else IDLE_POLL_S, IDLE_POLL_S)):
                    await self._changed.wait()
                continue
            self.claimed += 1
            await self._process(job)

    async def _process(self, job: Job) -> None:
        self.in_flight[job.id] = job
        started = trio.current_time()
        result: PageResult | None = None
        failure: PageFailure | None = None
        try:
            with self.watchdog.scope() as watchdog:
                async with self.pool.lease() as lease:  # type: ignore[union-attr]
                    try:
                        result = await run_page(
                            lease.tab,
                            job.url,
                            self.config,
                            self.limiter,
                            self.expression,
                            budget_s=watchdog.deadline - trio.current_time(),
                        )
                    except PageFailure as exc:
                        failure = exc
                        if not exc.tab_reusable:
                            lease.discard(exc.kind)
            if watchdog.cancelled_caught:
                self.watchdog_expiries += 1
                budget = watchdog.deadline - started
                failure = PageFailure("timeout", f"no item within {budget:.1f} s", retryable=True)
        except cdp.TargetCrashed as exc:
            failure = PageFailure("crashed", str(exc), retryable=True)
        except cdp.ConnectionLost as exc:
            failure = PageFailure("browser_lost", str(exc), retryable=True)
        except cdp.CommandTimeout as exc:
            failure = PageFailure("unresponsive", str(exc), retryable=True)
        except cdp.CDPError as exc:
            failure = PageFailure("cdp_error", str(exc), retryable=True)
        except trio.Cancelled:
            with trio.move_on_after(RELEASE_TIMEOUT_S, shield=True):
                await self.store.release(job)
            del self.in_flight[job.id]
            raise
        # The job leaves in_flight only once its outcome is stored, so in-flight jobs and
        # the store's in-progress rows agree at every checkpoint.
        with trio.move_on_after(RELEASE_TIMEOUT_S, shield=True):
            await self._record(job, result, failure, trio.current_time() - started)
        del self.in_flight[job.id]
        self._changed.set()
        self._changed = trio.Event()

    async def _record(self, job: Job, result: PageResult | None, failure: PageFailure | None, elapsed_s: float) -> None:
        if result is not None:
            if await self.store.complete(job, result.item, result.status, elapsed_s):
                self.done += 1
            else:
                log.warning("%s: finished, but the store no longer holds it in progress (lease lost)", job.url)
            return
        assert failure is not None
        if failure.kind in ("http_429", "http_503") or failure.retry_after_s:
            pause = failure.retry_after_s if failure.retry_after_s is not None else self._backoff_s(job.attempt)
            self.limiter.back_off(job.url, pause)
        if failure.retryable and job.attempt < self.config.retry.max_attempts:
            delay = self._backoff_s(job.attempt)
            if failure.retry_after_s is not None:
                delay = max(delay, failure.retry_after_s)
            self.retries += 1
            log.info("%s: %s (attempt %d); retry in %.1f s", job.url, failure.reason, job.attempt, delay)
            await self.store.retry_later(job, failure.reason, delay, failure.status)
        else:
            self.failed[failure.kind] += 1
            log.warning("%s: failed after %d attempt(s): %s", job.url, job.attempt, failure.reason)
            await self.store.fail(job, failure.reason, failure.status)

    def _backoff_s(self, attempt: int) -> float:
        """Exponential backoff with full jitter: uniform(0, min(cap, base * 2^(attempt-1)))."""
        base, cap = self.config.retry.backoff_s
        return self.rng.uniform(0, min(cap, base * 2 ** (attempt - 1)))

    def _limit_reached(self) -> bool:
        return self.limit is not None and self.claimed >= self.limit

    async def _work_left(self) -> bool:
        if self._limit_reached():
            return False
        return await self.store.next_ready_in() is not None

    # -- monitoring ----------------------------------------------------------------------

    def pool_counters(self) -> Counter[str]:
        totals = Counter(self._pool_totals)
        if self.pool is not None:
            totals.update(_pool_counters(self.pool))
        return totals

    async def summary(self) -> dict[str, Any]:
        counts = await self.store.counts()
        elapsed = max(1e-9, trio.current_time() - self._started_at)
        pages = self.done + sum(self.failed.values())
        pool = self.pool_counters()
        return {
            "finish_reason": self.finish_reason,
            "done": counts["done"],
            "failed": counts["failed"],
            "pending": counts["pending"] + counts["in_progress"],
            "failed_by_reason": await self.store.failures_by_reason(),
            "done_this_run": self.done,
            "failed_this_run": dict(self.failed),
            "retries": self.retries,
            "pages": pages,
            "elapsed_s": elapsed,
            "pages_per_s": pages / elapsed,
            "peak_browser_pss_mb": self.peak_browser_pss / monitor.MiB,
            "tabs_recycled": pool["tabs_recycled"],
            "tabs_discarded": pool["tabs_discarded"],
            "contexts_rotated": pool["contexts_rotated"],
            "popups_closed": pool["popups_closed"],
            "leases_acquired": pool["leases_acquired"],
            "leases_released": pool["leases_released"],
            "watchdog_expiries": self.watchdog_expiries,
            "browser_restarts": self.browser_restarts,
        }

    async def _watch_signals(self) -> None:
        with trio.open_signal_receiver(signal.SIGINT, signal.SIGTERM) as signals:
            async for signum in signals:
                log.warning("%s: stopping; in-flight pages go back to pending", signal.Signals(signum).name)
                self.stop()

    async def _report_progress(self) -> None:
        progress = monitor.Progress(interval_s=self.config.monitor.progress_interval_s)
        try:
            while True:
                await trio.sleep(progress.interval_s)
                elapsed = max(1e-9, trio.current_time() - self._started_at)
                counts = await self.store.counts()
                pages = self.done + sum(self.failed.values())
                progress.show(
                    done=counts["done"],
                    failed=counts["failed"],
                    total=self.total,
                    rate=pages / elapsed,
                    in_flight=len(self.in_flight),
                )
        finally:
            progress.end()

    async def _sample_memory(self) -> None:
        cfg = self.config.monitor
        last_log = trio.current_time()
        while True:
            browser = self.browser
            pid = browser.pid if browser is not None and browser.connected else None
            pss, processes = await trio.to_thread.run_sync(monitor.tree_pss, pid)
            mine = await trio.to_thread.run_sync(monitor.self_pss)
            self.peak_browser_pss = max(self.peak_browser_pss, pss)
            pool = self.pool.statistics() if self.pool is not None else None
            await self.store.add_memory_sample(
                {
                    "t": time.time(),
                    "pages_done": self.done,
                    "browser_pss": pss,
                    "crawler_pss": mine,
                    "processes": processes,
                    "tabs": pool.tabs if pool else 0,
                    "contexts": pool.contexts if pool else 0,
                }
            )
            if trio.current_time() - last_log >= cfg.memory_interval_s:
                last_log = trio.current_time()
                log.info(
                    "memory: browser %.0f MiB PSS in %d processes, crawler %.0f MiB, %d tabs, %d contexts, %d pages done",
                    pss / monitor.MiB,
                    processes,
                    mine / monitor.MiB,
                    pool.tabs if pool else 0,
                    pool.contexts if pool else 0,
                    self.done,
                )
            await trio.sleep(cfg.sample_interval_s)

    async def _check_invariants(self) -> None:
        while True:
            await trio.sleep(self.config.monitor.invariant_interval_s)
            await self.check_invariants()

    async def check_invariants(self) -> list[str]:
        """Compare leases with the browser's targets, and in-flight jobs with the store's
        in-progress rows; log one warning per mismatch. Returns the mismatches."""
        problems: list[str] = []
        pool = self.pool
        if pool is not None and pool.browser.connected:
            try:
                report = await pool.check_invariants()
            except cdp.CDPError:
                report = None
            if report is not None and not report.ok:
                problems.append(
                    f"pool holds {report.tabs} tabs / {report.contexts} contexts, browser has "
                    f"{report.browser_tabs} tabs / {report.browser_contexts} contexts; "
                    f"stray tabs: {monitor.ids_preview(report.stray_tabs)}; missing tabs: "
                    f"{monitor.ids_preview(report.missing_tabs)}; stray contexts: "
                    f"{monitor.ids_preview(report.stray_contexts)}; missing contexts: "
                    f"{monitor.ids_preview(report.missing_contexts)}"
                )
            stats = pool.statistics()
            if stats.leases_acquired - stats.leases_released != stats.leases:
                problems.append(
                    f"leases acquired({stats.leases_acquired}) - released({stats.leases_released}) != held({stats.leases})"
                )
        in_store = await self.store.in_progress_urls()
        in_flight = {job.url for job in self.in_flight.values()}
        if in_store != in_flight:
            problems.append(
                f"in-flight jobs({len(in_flight)}) != store in-progress({len(in_store)}); "
                f"only in flight: {monitor.ids_preview(sorted(in_flight - in_store))}; "
                f"only in store: {monitor.ids_preview(sorted(in_store - in_flight))}"
            )
        for problem in problems:
            log.warning("invariant: %s", problem)
        return problems


def _pool_counters(pool: TabPool) -> Counter[str]:
    s = pool.statistics()
    return Counter(
        tabs_recycled=s.tabs_recycled,
        tabs_discarded=s.tabs_discarded,
        contexts_rotated=s.contexts_rotated,
        popups_closed=s.popups_closed,
        leases_acquired=s.leases_acquired,
        leases_released=s.leases_released,
    )


def _memory_budget_mb(config: Config) -> int:
    if config.pool.memory_budget_mb:
        return config.pool.memory_budget_mb
    import psutil

    return psutil.virtual_memory().total // 2**20
