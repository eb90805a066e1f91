"""The crawl engine: workers pull URLs from the store and run each as one job.

Task tree (who owns whom)::

    Crawler.run                       owns: monitor tasks (progress, memory, invariants, heartbeat,
                                      metrics endpoint, signals)
    └── browser loop                  one iteration per browser (launch/connect), restarts it if it dies
        └── open_pool                 owns: tabs, contexts, the popup closer task
            ├── browser watcher       cancels the workers if the connection drops or the browser
            │                         stops answering (heartbeat)
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
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from functools import partial
from typing import Any

import attrs
import trio

import cdp

from . import metrics, monitor
from .config import Config, ConfigError
from .failure import SLOW_DOWN_STATUS, PageFailure
from .inputs import iter_urls
from .links import LinkFilter
from .page import Page, PageEnv, prepare_tab
from .pool import TabPool, auto_recycle_every, open_pool
from .ratelimit import HostRateLimiter
from .router import Router, SessionGate, router_for, run_route
from .store import Job, Store
from .watchdog import Watchdog

log = logging.getLogger("crawler.engine")

RELEASE_TIMEOUT_S = 5.0  # bound on putting an interrupted job back in the store
IDLE_POLL_S = 0.5  # a worker with nothing ready re-checks the frontier this often
RESTART_BACKOFF_S = (1.0, 30.0)
# The browser watcher sends Browser.getVersion this often; no answer within the command
# deadline means the browser is wedged (it may keep its socket open), and it is replaced.
HEARTBEAT_INTERVAL_S = 5.0
# A mismatch between the pool and the browser (or the workers and the store) is
# reported only if a second reading this much later shows it too, with the same ids:
# a tab whose close completes between two CDP reads is in transit, not leaked.
INVARIANT_CONFIRM_S = 0.25


class Crawler:
    def __init__(
        self,
        config: Config,
        store: Store,
        *,
        limit: int | None = None,
        rng: random.Random | None = None,
        open_browser: Callable[[], AbstractAsyncContextManager[cdp.Browser]] | None = None,
        router: Router | None = None,
    ):
        """``router``: the crawl's handlers (default: the config's handlers file, its
        ``[[route]]`` tables and ``[extract]``; the config's TOML routes are added to a
        given router too).  ``open_browser`` is the seam for tests (a fake or
        chaos-wrapped browser); by default the config decides: launch Chromium, or
        connect to ``cdp_url``."""
        self.config = config
        self.store = store
        self.limit = limit
        self.rng = rng or random.Random()
        self.watchdog = Watchdog(config.watchdog.timeout_s, config.watchdog.jitter_s, rng=self.rng)
        self.limiter = HostRateLimiter(config.rate_limit.wait_ms, rng=self.rng)
        self.router = router_for(config, router)
        self.sessions = SessionGate(self.router.session_hook)
        self.links = LinkFilter(config.crawl)
        self.page_env = PageEnv(self.limiter, self.links, store.known, config.extract.poll_interval_s)
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
        # -- monitoring state (read by crawler.metrics at scrape time) --
        self.tree_pss: Callable[[int | None], tuple[int, int]] = monitor.tree_pss  # seam: pid -> (PSS, processes)
        budget_mb = config.pool.memory_budget_mb
        self.throttle = (
            monitor.MemoryThrottle(budget_mb * monitor.MiB, config.pool.concurrency, self.recycle_tab_every)
            if budget_mb
            else None
        )
        self.browser_pss = self.crawler_pss = self.browser_processes = 0
        self.browser_targets = (0, 0)  # (page targets, contexts) as the browser listed them at the last check
        self.url_counts: dict[str, int] = {}
        self.tab_figures = monitor.TabFiguresWindow()
        self.invariant_mismatches: dict[tuple[str, ...], str] = {}  # standing mismatches: key -> message
        self.invariant_violations = 0
        self._sample_error: str | None = None
        self.heartbeat = metrics.Heartbeat(config.monitor.heartbeat_file or None)
        self.metrics_registry = metrics.build_registry(self)
        self.metrics_port: int | None = None

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
        if self.config.pool.recycle_tab_every == "auto":
            log.info(
                "recycling tabs every %d pages (auto, for %d MiB)",
                self.recycle_tab_every,
                _memory_budget_mb(self.config),
            )
        async with cdp.open_service_nursery() as nursery:
            await nursery.start(self.heartbeat.run)
            if self.config.monitor.metrics_port:
                await nursery.start(self._serve_metrics)  # first: a port in use is a ConfigError, before any work
            await store.start_run()
            self._started_at = trio.current_time()
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

    @property
    def pages_finished(self) -> int:
        """Pages that ended (done or failed) in this run."""
        return self.done + sum(self.failed.values())

    def stop(self) -> None:
        """Stop gracefully: in-flight jobs are cancelled and left pending."""
        self._stop_scope.cancel()

    async def _browser_loop(self) -> str:
        failures_in_a_row = 0
        while True:
            if not await self._work_left():
                return "limit" if self._limit_reached() else "finished"
            finished_before = self.pages_finished
            try:
                died = await self._run_browser()
            except cdp.CDPError as exc:
                log.error("browser failed: %s", exc)
                died = True
            if not died:
                return "limit" if self._limit_reached() else "finished"
            self.browser_restarts += 1
            progressed = self.pages_finished > finished_before
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
                prepare_tab=lambda tab: prepare_tab(tab, block_urls=cfg.browser.block_urls),
                tab_close_timeout_s=cfg.pool.tab_close_timeout_s,
                context_dispose_timeout_s=cfg.pool.context_dispose_timeout_s,
            ) as pool,
        ):
            self.browser, self.pool = browser, pool
            self._monitor_pool(pool)
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
        """Cancel the workers when the connection drops, or when the browser leaves a
        heartbeat unanswered for the command deadline: then the connection is aborted
        first, so that closing the pool skips the wedged browser rather than waiting
        out every close, and the browser loop replaces it.  Never raises."""
        conn = browser.connection
        while not conn.closed:
            with trio.move_on_after(HEARTBEAT_INTERVAL_S):
                await conn.wait_closed()
            if conn.closed:
                break
            try:
                await browser.send("Browser.getVersion")
            except cdp.CommandTimeout as exc:
                conn.abort(f"the browser stopped answering ({exc})")
            except cdp.CDPError:
                pass  # closed meanwhile: the loop ends
        log.warning("browser connection lost: %s", conn.error)
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
        result: Page | None = None
        failure: PageFailure | None = None
        try:
            async with self.pool.lease() as lease:  # type: ignore[union-attr]
                # The watchdog runs from lease to extracted item: a worker waiting for a
                # tab (the memory throttle lowered concurrency) is not yet on the clock.
                with self.watchdog.scope() as watchdog:
                    budget_s = watchdog.deadline - trio.current_time()
                    try:
                        result = await run_route(
                            self.router, self.sessions, lease.tab, job.request, self.page_env, self.pool.context_ids
                        )
                    except PageFailure as exc:
                        failure = exc
                        if not exc.tab_reusable:
                            lease.discard(exc.kind)
                    except cdp.CDPError:
                        raise
                    except Exception as exc:  # the user's handler raised: the URL fails with it
                        failure = PageFailure("handler", f"{type(exc).__name__}: {exc}"[:500])
                        lease.discard("handler")  # left in whatever state the handler had it
                if watchdog.cancelled_caught:
                    lease.discard("timeout")  # the tab may be hung mid-navigation: never reuse it
                    self.watchdog_expiries += 1
                    failure = PageFailure("timeout", f"no item within {budget_s:.1f} s", retryable=True)
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

    async def _record(self, job: Job, result: Page | None, failure: PageFailure | None, elapsed_s: float) -> None:
        if result is not None:
            # What the handler pushed and enqueued is stored with the outcome, in one transaction.
            if await self.store.complete(job, result.items, result.links, result.status, elapsed_s):
                self.done += 1
            else:
                log.warning("%s: finished, but the store no longer holds it in progress (lease lost)", job.url)
            return
        assert failure is not None
        delay = self._backoff_s(job.attempt)
        if failure.status in SLOW_DOWN_STATUS:
            # The whole host waits: Retry-After if it gave one, else this URL's backoff.
            self.limiter.back_off(job.url, delay if failure.retry_after_s is None else failure.retry_after_s)
        if failure.retry_after_s is not None:
            delay = max(delay, failure.retry_after_s)
        if failure.retryable and job.attempt < self.config.retry.max_attempts:
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
        pages = self.pages_finished
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
            "concurrency": self.config.pool.concurrency,
            "recycle_tab_every": self.recycle_tab_every,
            "memory_budget_mb": self.config.pool.memory_budget_mb,
            "invariant_violations": self.invariant_violations,
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
                self.url_counts = counts
                pages = self.pages_finished
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
        warned_invisible = False
        while True:
            browser = self.browser
            pid = browser.pid if browser is not None and browser.connected else None
            pss, processes = await trio.to_thread.run_sync(self.tree_pss, pid)
            mine = await trio.to_thread.run_sync(monitor.self_pss)
            self.browser_pss, self.browser_processes, self.crawler_pss = pss, processes, mine
            self.peak_browser_pss = max(self.peak_browser_pss, pss)
            if pid is not None:
                self._apply_memory_budget(pss)
            elif self.throttle is not None and browser is not None and browser.connected and not warned_invisible:
                warned_invisible = True
                log.warning(
                    "memory budget set, but the browser's processes are not ours to measure (cdp_url): no throttle"
                )
            pool = self.pool.statistics() if self.pool is not None else None
            await self._store_sample(
                self.store.add_memory_sample,
                {
                    "t": time.time(),
                    "pages_done": self.done,
                    "browser_pss": pss,
                    "crawler_pss": mine,
                    "processes": processes,
                    "tabs": pool.tabs if pool else 0,
                    "contexts": pool.contexts if pool else 0,
                },
            )
            if trio.current_time() - last_log >= cfg.memory_interval_s:
                last_log = trio.current_time()
                budget = ""
                if (throttle := self.throttle) is not None:
                    budget = (
                        f" ({throttle.fraction(pss):.0%} of the {throttle.budget_bytes / monitor.MiB:.0f} MiB budget)"
                    )
                log.info(
                    "memory: browser %.0f MiB PSS in %d processes%s, crawler %.0f MiB, %d tabs, %d contexts, "
                    "%d pages done; %s",
                    pss / monitor.MiB,
                    processes,
                    budget,
                    mine / monitor.MiB,
                    pool.tabs if pool else 0,
                    pool.contexts if pool else 0,
                    self.done,
                    self.tab_figures.take_summary(),
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
        throttle = self.throttle
        if throttle is None:
            return
        before = (throttle.concurrency, throttle.recycle_tab_every)
        if throttle.update(pss):
            log.warning(
                "memory: browser %.0f MiB PSS is %.0f%% of the %.0f MiB budget: %s, concurrency %d -> %d, "
                "recycling tabs every %d -> %d pages",
                pss / monitor.MiB,
                100 * throttle.fraction(pss),
                throttle.budget_bytes / monitor.MiB,
                monitor.THROTTLE_LEVELS[throttle.level],
                before[0],
                throttle.concurrency,
                before[1],
                throttle.recycle_tab_every,
            )
        if self.pool is not None:
            self._throttle_pool(self.pool)

    def _throttle_pool(self, pool: TabPool) -> None:
        if self.throttle is not None:
            if pool.concurrency != self.throttle.concurrency:
                pool.set_concurrency(self.throttle.concurrency)
            pool.recycle_tab_every = self.throttle.recycle_tab_every

    def _monitor_pool(self, pool: TabPool) -> None:
        """A new pool (one per browser): the recycle hook, and the throttle's settings."""
        pool.on_tab_retired = self._on_tab_retired
        self._throttle_pool(pool)

    async def _on_tab_retired(self, tab: cdp.Tab, pages: int) -> None:
        """The pool's hook when it recycles a tab (bounded by the pool): store the tab's
        own figures.  Never raises but Cancelled; a tab that cannot answer is skipped."""
        try:
            figures = await monitor.tab_figures(tab)
        except (cdp.CDPError, trio.ClosedResourceError) as exc:
            log.debug("tab %s: no figures at recycle: %s", tab.target_id, exc)
            return
        self.tab_figures.add(figures)
        await self._store_sample(
            self.store.add_tab_sample,
            {
                "t": time.time(),
                "pages": pages,
                "js_heap_used": figures.js_heap_used,
                "nodes": figures.nodes,
                "listeners": figures.listeners,
                "documents": figures.documents,
            },
        )

    async def _serve_metrics(self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        """Serve the Prometheus endpoint and /healthz until cancelled.  Raises ConfigError
        (before reporting started) if the address cannot be bound; afterwards never raises."""
        mon = self.config.monitor
        serve = partial(metrics.serve_metrics, self.metrics_registry, self.heartbeat, host=mon.metrics_host)
        try:
            async with cdp.open_service_nursery() as nursery:
                try:
                    self.metrics_port = await nursery.start(partial(serve, port=mon.metrics_port))
                except OSError as exc:
                    raise ConfigError(
                        f"{self.config.source}: [monitor] metrics_port: cannot listen on "
                        f"{mon.metrics_host}:{mon.metrics_port}: {exc.strerror or exc}"
                    ) from None
                log.info("metrics on http://%s:%d/metrics (health: /healthz)", mon.metrics_host, self.metrics_port)
                task_status.started()
        except OSError as exc:
            log.error("metrics endpoint stopped: %s", exc)

    async def _check_invariants(self) -> None:
        while True:
            await trio.sleep(self.config.monitor.invariant_interval_s)
            await self.check_invariants()

    async def check_invariants(self) -> list[str]:
        """Compare the pool's tabs and contexts with the browser's own lists, the pool's
        lease counts with each other, and the in-flight jobs with the store's in-progress
        rows.  An id counts as mismatched only if a second reading ``INVARIANT_CONFIRM_S``
        later shows it too.  Each new mismatch is logged once, as one warning with the
        numbers and the ids; one still standing is not logged again, one that cleared
        is logged at info.  Returns the standing mismatches' messages.

        Cancellation: safe at any await (CDP and store reads, one sleep); the standing
        mismatches are only updated at the end, without blocking."""
        first = await self._invariant_reading()
        confirmed: dict[tuple[str, ...], str] = {}
        if first:
            await trio.sleep(INVARIANT_CONFIRM_S)
            second = await self._invariant_reading()
            for kind in first.keys() & second.keys():
                ids = sorted(first[kind][0] & second[kind][0])
                if ids:
                    confirmed[(kind, *ids)] = f"{second[kind][1]}; {kind}: {monitor.ids_preview(ids)}"
        for key, message in confirmed.items():
            if key not in self.invariant_mismatches:
                self.invariant_violations += 1
                log.warning("invariant: %s", message)
        for key, message in self.invariant_mismatches.items():
            if key not in confirmed:
                log.info("invariant holds again (was: %s)", message)
        self.invariant_mismatches = confirmed
        return list(confirmed.values())

    async def _invariant_reading(self) -> dict[str, tuple[set[str], str]]:
        """One reading: kind of mismatch -> (the ids involved, the numbers)."""
        problems: dict[str, tuple[set[str], str]] = {}
        pool = self.pool
        if pool is not None and pool.browser.connected:
            try:
                report = await pool.check_invariants()
            except (cdp.CDPError, trio.ClosedResourceError):
                report = None
            if report is not None:
                self.browser_targets = (report.browser_tabs, report.browser_contexts)
                numbers = (
                    f"{_compare('browser tabs', report.browser_tabs, 'pool tabs', report.tabs)}, "
                    f"{_compare('browser contexts', report.browser_contexts, 'pool contexts', report.contexts)}"
                )
                for kind, ids in (
                    ("stray tabs", report.stray_tabs),
                    ("missing tabs", report.missing_tabs),
                    ("stray contexts", report.stray_contexts),
                    ("missing contexts", report.missing_contexts),
                ):
                    if ids:
                        problems[kind] = (set(ids), numbers)
            stats = pool.statistics()
            unaccounted = stats.leases_acquired - stats.leases_released - stats.leases
            if unaccounted:
                problems["leases unaccounted for"] = (
                    {str(unaccounted)},
                    f"leases acquired({stats.leases_acquired}) - released({stats.leases_released}) "
                    f"!= held({stats.leases})",
                )
        in_store = await self.store.in_progress_urls()
        in_flight = {job.url: job.id for job in self.in_flight.values()}
        numbers = _compare("in-flight jobs", len(in_flight), "store in-progress", len(in_store))
        if set(in_flight) - in_store:
            problems["only in flight"] = ({f"{u} (job {in_flight[u]})" for u in set(in_flight) - in_store}, numbers)
        if in_store - set(in_flight):
            problems["only in store"] = (in_store - set(in_flight), numbers)
        return problems


async def crawl(config: Config, router: Router | None = None, *, limit: int | None = None) -> dict[str, Any]:
    """Crawl ``config`` with ``router``'s handlers (plus the config's TOML routes), in
    the store the config names, resuming whatever an earlier run left; for embedding
    in a trio program (the CLI is this plus signals and printing).  Returns the run's
    summary (``finish_reason``, counts, rates...).  Failed URLs are data in the store,
    not exceptions; raises ConfigError for bad configuration.  If cancelled, in-flight
    URLs go back to pending and the store is closed."""
    from .store import open_store

    async with open_store(config) as store:
        crawler = Crawler(config, store, limit=limit, router=router)
        await crawler.run()
        return await crawler.summary()


def _compare(a: str, x: int, b: str, y: int) -> str:
    """``counter(5) > sessions(3)``: two counts that should agree, side by side."""
    return f"{a}({x}) {'>' if x > y else '<' if x < y else '=='} {b}({y})"


# Pool counters that add up across browser restarts (one pool per browser).
CUMULATIVE_POOL_COUNTERS = (
    "tabs_recycled",
    "tabs_discarded",
    "contexts_rotated",
    "popups_closed",
    "leases_acquired",
    "leases_released",
)


def _pool_counters(pool: TabPool) -> Counter[str]:
    stats = attrs.asdict(pool.statistics())
    return Counter({name: stats[name] for name in CUMULATIVE_POOL_COUNTERS})


def _memory_budget_mb(config: Config) -> int:
    if config.pool.memory_budget_mb:
        return config.pool.memory_budget_mb
    import psutil

    return psutil.virtual_memory().total // 2**20
