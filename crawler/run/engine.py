"""The crawl engine: :class:`Crawler` puts the parts together and runs one crawl.

The parts, each owning one thing and publishing its figures through ``statistics()``:

- :class:`crawler.run.jobs.JobRunner`: the workers and one job (claim, lease, watchdog,
  page work, outcome in the store); the retry decision is
  :class:`crawler.policy.retry.RetryPolicy`'s;
- :class:`crawler.run.supervisor.BrowserSupervisor`: the browser (launch or connect), its
  pool, the browser watcher, restarts;
- :class:`crawler.observe.memory.MemoryMonitor`: PSS samples and the memory-budget throttle;
- :class:`crawler.observe.invariants.InvariantMonitor`: the resource invariants;
- :class:`crawler.run.autoscale.Autoscale`: with ``concurrency = "auto"``, how many jobs run at once;
- here: the run itself (the frontier, the monitor tasks, the finish reason), the
  progress line, the metrics endpoint, signals, and :meth:`Crawler.statistics`, the one
  :class:`crawler.observe.stats.CrawlStatistics` snapshot that the summary, the progress line
  and the metrics read.

Task tree (who owns whom)::

    Crawler.run                        owns (service nursery): heartbeat, metrics endpoint,
    │                                  signals, progress, MemoryMonitor.run, InvariantMonitor.run,
    │                                  Autoscale.run (with "auto": its lag probe),
    │                                  the input feed (crawler.sources.feed: keeps the frontier topped up)
    └── BrowserSupervisor.run          one iteration per browser (launch/connect), restarts it if it dies
        └── open_browser               cdp: the connection's reader task (and the browser process)
            └── open_pool              owns: tabs, contexts, the popup closer task
                ├── browser watcher    cancels the workers if the connection drops or the browser
                │                      stops answering (heartbeat)
                └── JobRunner.run_workers   workers × concurrency (max_concurrency with "auto"),
                                       each: slot → claim → lease → watchdog scope → page work
                                       (run_route: the route's handler);
                                       then a recording task per outcome (the worker goes on)

``Crawler.stop()`` (SIGINT/SIGTERM/SIGHUP) cancels the scope around the supervisor; once the
supervisor returns, the run cancels its monitor tasks.

The life of one URL is written once, in :mod:`crawler.run.job` (lease, watchdog,
route, failure named, lease released); the job runner adds the claim before it and the
outcome's one transaction after it (:mod:`crawler.run.jobs`).  A job cancelled from
outside (shutdown, browser restart) goes back to pending without being charged an
attempt.
"""

from __future__ import annotations

import logging
import random
import signal
from collections.abc import AsyncIterator
from functools import partial
from typing import Any

import trio

from crawler._trio import open_service_nursery
from crawler.browser.pool import TabPool, auto_recycle_every, open_pool
from crawler.config import Config
from crawler.errors import ConfigError, StoreError
from crawler.observe import metrics
from crawler.observe.invariants import InvariantMonitor
from crawler.observe.memory import MemoryMonitor, ReadMemory, read_memory
from crawler.observe.progress import Progress, concurrency_text
from crawler.observe.pss import MiB
from crawler.observe.snapshots import snapshot_summary
from crawler.observe.stalls import LoopStalls
from crawler.observe.stats import CrawlStatistics
from crawler.observe.status import StatusPage
from crawler.policy.watchdog import Watchdog
from crawler.run.autoscale import autoscale_for
from crawler.run.jobs import RELEASE_TIMEOUT_S, JobRunner, RunRoute
from crawler.run.router import Router
from crawler.run.supervisor import BrowserSupervisor, OpenBrowser, OpenPool
from crawler.sources.feed import InputFeed
from crawler.store import StoreSettings, open_store
from crawler.store.base import Store
from crawler.urls import is_loopback_host

log = logging.getLogger(__name__)

STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)  # each stops a crawl run with handle_signals


class Crawler:
    """One crawl: the composition of the job runner, the browser supervisor and the
    monitors.  Public surface: :meth:`run`, :meth:`stop`, :meth:`statistics`,
    :meth:`summary`, :meth:`check_invariants`, :attr:`metrics_port`."""

    def __init__(
        self,
        config: Config,
        store: Store,
        *,
        limit: int | None = None,
        rng: random.Random | None = None,
        open_browser: OpenBrowser | None = None,
        open_pool: OpenPool = open_pool,
        watchdog: Watchdog | None = None,
        router: Router | None = None,
        run_route: RunRoute | None = None,
        read_memory: ReadMemory = read_memory,
    ):
        """One crawl of ``config``'s URLs into ``store``; at most ``limit`` jobs.

        ``router``: the crawl's handlers (default: the config's handlers file); the
        config's ``[[route]]`` tables are added to it, and ``[extract]`` is the default
        route when nothing else defines one.  ``rng`` draws every random choice (watchdog jitter, rate-limit gaps, retry
        backoffs).  Seams for tests: ``open_browser`` (by default the config decides:
        launch Chromium, or connect to ``cdp_url``), ``open_pool``, ``watchdog``,
        ``run_route`` (the page work, :func:`crawler.run.router.run_route` by default) and
        ``read_memory`` (the PSS sampler)."""
        self._config = config
        self._store = store
        rng = rng or random.Random()
        recycle = config.pool.recycle_tab_every
        self._recycle_tab_every = auto_recycle_every(_memory_budget_mb(config)) if recycle == "auto" else int(recycle)
        self._jobs = JobRunner(
            config, store, rng=rng, limit=limit, watchdog=watchdog, router=router, run_route=run_route
        )
        self._supervisor = supervisor = BrowserSupervisor(
            config,
            self._jobs,
            recycle_tab_every=self._recycle_tab_every,
            open_browser=open_browser,
            open_pool=open_pool,
            on_pool_opened=self._on_pool_opened,
        )
        self._memory = MemoryMonitor(
            config.pool,
            config.monitor,
            store,
            browser=lambda: supervisor.browser,
            pool=lambda: supervisor.pool,
            pages_done=lambda: self._jobs.statistics().done,
            recycle_tab_every=self._recycle_tab_every,
            read_memory=read_memory,
        )
        # [pool] concurrency = "auto": the one owner of how many jobs run at once (None: a fixed number)
        self._autoscale = autoscale_for(config.pool, self._jobs, self._memory.statistics, lambda: supervisor.pool)
        self._invariants = InvariantMonitor(
            store,
            pool=lambda: supervisor.pool,
            in_flight=self._jobs.in_flight_jobs,
            interval_s=config.monitor.invariant_interval_s,
        )
        self._feed = InputFeed(
            config.input,
            store,
            base_dir=config.base_dir,
            source=config.source,
            max_urls=config.crawl.max_pages,
            on_fed=self._jobs.wake,
        )
        self._stalls = LoopStalls(self._on_stall)
        self._abort_reason: str | None = None  # set by a part that must stop the crawl (a bad input entry)
        self._finish_reason = "running"
        self._started_at: float | None = None
        self._stop_scope = trio.CancelScope()
        self._urls = 0
        self._url_counts: dict[str, int] = {}
        self._heartbeat = metrics.Heartbeat(config.monitor.heartbeat_file or None)
        self._metrics_registry = metrics.build_registry(self.statistics, self._heartbeat)
        self._metrics_port: int | None = None
        self._status = StatusPage()

    # -- the run -------------------------------------------------------------------------

    async def run(self, *, handle_signals: bool = False, signals: AsyncIterator[int] | None = None) -> str:
        """Crawl until every URL is done or failed, the limit is reached, or stop() is
        called.  Returns the finish reason ("finished", "limit", "interrupted" or
        "aborted: ...").  Failed URLs are data in the store, not exceptions.

        Owns every task of the crawl (see the task tree) and ends them all before it
        returns.  Raises ConfigError if the metrics port cannot be bound or the first
        batch of input holds a bad URL (before any browser starts); if cancelled,
        in-flight jobs go back to pending and the Cancelled goes on.  A store that fails
        (disk full) ends the run "aborted: <the error>", its tasks ended, nothing
        half-written.

        With ``handle_signals``, SIGINT, SIGTERM and SIGHUP stop the crawl (a second one
        stops it at once), received from this method's first line; ``signals`` is the
        same with a receiver of :data:`STOP_SIGNALS` the caller opened, as early in its
        trio run as it can (the command line: before it opens the store).  Why early: a
        signal while the frontier is read or the browser starts must be held until the
        crawl can stop; outside a receiver, trio turns SIGINT into a KeyboardInterrupt
        for the main task, and one that arrived while the crawl's task tree was starting
        was never seen (the crawl went on, deaf to the next signals too)."""
        if signals is not None or not handle_signals:
            return await self._run(signals)
        with trio.open_signal_receiver(*STOP_SIGNALS) as received:
            return await self._run(received)

    async def _run(self, signals: AsyncIterator[int] | None) -> str:
        store = self._store
        recovered = await store.recover()
        if recovered:
            log.info("resuming: %d URLs that were in flight when the last run stopped are pending again", recovered)
        due = await store.requeue_due()
        if due:
            log.info("recrawling: %d done URLs are due again (recrawl_after_s)", due)
        added = await self._feed.fill()  # the first batch: a bad URL in it stops the crawl before any page
        self._jobs.set_input_open(not self._feed.exhausted)
        counts = await store.counts()
        self._urls = sum(counts.values())
        self._url_counts = counts  # until the first progress line (the status page, crawler_urls)
        log.info(
            "%s: %d URLs (%d new, input at entry %d%s): %d done, %d failed, %d pending",
            self._config.site.name,
            self._urls,
            added,
            self._feed.statistics().position,
            "" if self._feed.exhausted else ", more streaming in",
            counts["done"],
            counts["failed"],
            counts["pending"],
        )
        if self._config.pool.recycle_tab_every == "auto":
            log.info(
                "recycling tabs every %d pages (auto, for %d MiB)",
                self._recycle_tab_every,
                _memory_budget_mb(self._config),
            )
        try:
            await self._run_tasks(signals)
        except* StoreError as group:
            self._finish_reason = f"aborted: {_first(group)}"  # the one line the CLI prints
        finally:
            await self._jobs.sessions.aclose()  # the sessions' HTTP clients (shielded, bounded)
        with trio.move_on_after(RELEASE_TIMEOUT_S, shield=True):
            try:
                await store.finish_run(self._finish_reason, await self.summary())
            except StoreError as exc:  # the store failing is the finish reason already
                log.debug("the run's summary could not be stored: %s", exc)
        return self._finish_reason

    async def _run_tasks(self, signals: AsyncIterator[int] | None) -> None:
        trio.lowlevel.add_instrument(self._stalls)
        try:
            await self._run_service_tasks(signals)
        finally:
            trio.lowlevel.remove_instrument(self._stalls)

    def _on_stall(self, task: trio.lowlevel.Task, seconds: float) -> None:
        commands = self._supervisor.forgive(seconds)
        jobs = self._jobs.on_stall(task, seconds)
        log.debug("stall of %.1f s: %d commands and %d jobs given the time back", seconds, commands, jobs)

    async def _run_service_tasks(self, signals: AsyncIterator[int] | None) -> None:
        async with open_service_nursery() as nursery:
            await nursery.start(self._heartbeat.run)
            if self._config.monitor.metrics_port:
                await nursery.start(self._serve_metrics)  # first: a port in use is a ConfigError, before any work
            await self._store.start_run()
            self._started_at = trio.current_time()
            if signals is not None:
                nursery.start_soon(self._watch_signals, signals)
            nursery.start_soon(self._feed_input)
            nursery.start_soon(self._report_progress)
            nursery.start_soon(self._memory.run)
            nursery.start_soon(self._invariants.run)
            if self._autoscale is not None:
                nursery.start_soon(self._autoscale.run)
            with self._stop_scope:
                self._finish_reason = await self._supervisor.run()
            if self._jobs.sessions.all_refused and self._abort_reason is None:
                self._abort_reason = f"aborted: {self._jobs.sessions.all_refused}"
                log.error("%s", self._jobs.sessions.all_refused)
            if self._abort_reason is not None:
                self._finish_reason = self._abort_reason
            elif self._stop_scope.cancelled_caught:
                self._finish_reason = "interrupted"
            nursery.cancel_scope.cancel()

    def stop(self) -> None:
        """Stop gracefully: in-flight jobs are cancelled and left pending."""
        self._stop_scope.cancel()

    @property
    def metrics_port(self) -> int | None:
        """The port the metrics endpoint listens on, once it does; None before (or if off)."""
        return self._metrics_port

    def statistics(self) -> CrawlStatistics:
        """The crawl's figures now, one frozen snapshot (never blocks)."""
        elapsed = trio.current_time() - self._started_at if self._started_at is not None else 0.0
        return CrawlStatistics(
            finish_reason=self._finish_reason,
            urls=self._urls,
            url_counts=dict(self._url_counts),
            elapsed_s=elapsed,
            concurrency=self._autoscale.concurrency if self._autoscale is not None else self._config.pool.most,
            recycle_tab_every=self._recycle_tab_every,
            memory_budget_mb=self._config.pool.memory_budget_mb,
            jobs=self._jobs.statistics(),
            browser=self._supervisor.statistics(),
            memory=self._memory.statistics(),
            invariants=self._invariants.statistics(),
            sessions=self._jobs.sessions.statistics(),
            autoscale=self._autoscale.statistics() if self._autoscale is not None else None,
        )

    async def summary(self) -> dict[str, Any]:
        """The run's summary, as stored with the run and printed at the end: the store's
        counts and this run's figures.  Only reads.  If the store cannot be read (it
        failed: the run was aborted for it), the counts are the last ones read."""
        try:
            counts = await self._store.counts()
            failed_by_reason = await self._store.failures_by_reason()
        except StoreError as exc:
            # The store is gone (what ended the run): the last counts read, and this
            # run's own figures, are all there is to report.
            log.debug("the summary's counts are the last ones read: %s", exc)
            counts = {"pending": 0, "in_progress": 0, "done": 0, "failed": 0, **self._url_counts}
            failed_by_reason = {}
        s = self.statistics()
        totals = s.browser.pool_totals
        return {
            "finish_reason": s.finish_reason,
            "done": counts["done"],
            "failed": counts["failed"],
            "pending": counts["pending"] + counts["in_progress"],
            "input_exhausted": self._feed.exhausted,
            "input_position": self._feed.statistics().position,
            "failed_by_reason": failed_by_reason,
            "done_this_run": s.jobs.done,
            "failed_this_run": dict(s.jobs.failed),
            "retries": s.jobs.retries,
            "field_errors": dict(s.jobs.field_errors),
            "links_skipped": dict(sorted(s.jobs.links_skipped.items())),
            "fetch_paths": {
                label: {
                    "fetch": p.fetch,
                    "now": p.path,
                    "browser": p.pages.get("browser", 0),
                    "http": p.pages.get("http", 0),
                    "checks": p.checks,
                    "disagreements": p.disagreements,
                }
                for label, p in sorted(s.jobs.paths.items())
            },
            "pages": s.jobs.pages_finished,
            "elapsed_s": max(1e-9, s.elapsed_s),
            "pages_per_s": s.pages_per_s,
            "peak_browser_pss_mb": s.memory.peak_browser_pss / MiB,
            "tabs_recycled": totals.tabs_recycled,
            "tabs_discarded": totals.tabs_discarded,
            "contexts_rotated": totals.contexts_rotated,
            "popups_closed": totals.popups_closed,
            "leases_acquired": totals.leases_acquired,
            "leases_released": totals.leases_released,
            "watchdog_expiries": s.jobs.watchdog_expiries,
            "browser_restarts": s.browser.restarts,
            "concurrency": self._config.pool.concurrency,  # as configured: a number or "auto"
            "autoscale": self._autoscale.summary() if self._autoscale is not None else None,
            "recycle_tab_every": s.recycle_tab_every,
            "memory_budget_mb": s.memory_budget_mb,
            "invariant_violations": s.invariants.violations,
            "snapshots": snapshot_summary(s.jobs.snapshots),
            "sessions": s.sessions.sessions if s.sessions else 0,
            "logins": {
                "logins": s.jobs.sessions_started,
                "restored": s.jobs.sessions_restored,
                "checks_failed": s.jobs.session_checks_failed,
            },
            "sessions_retired": dict(s.sessions.retired) if s.sessions else {},
            "proxy_requests": dict(s.sessions.proxy_requests) if s.sessions else {},
            "contexts_retired": totals.contexts_retired,
        }

    async def check_invariants(self) -> list[str]:
        """Run one invariant check now (see :meth:`crawler.observe.invariants.InvariantMonitor.check`);
        returns the standing mismatches' messages."""
        return await self._invariants.check()

    # -- monitor tasks -------------------------------------------------------------------

    def _on_pool_opened(self, pool: TabPool) -> None:
        self._memory.attach_pool(pool)

    async def _watch_signals(self, signals: AsyncIterator[int]) -> None:
        async for signum in signals:
            name = signal.Signals(signum).name
            if not self._stop_scope.cancel_called:
                log.warning("%s: stopping; in-flight pages go back to pending (a second signal: at once)", name)
                self.stop()
            else:  # the operator will not wait for polite closes: kill the browser, finish the rest
                log.warning("%s again: stopping at once; the browser is killed", name)
                self._supervisor.abort("stopping at once (a second signal)")

    async def _feed_input(self) -> None:
        """Keep the frontier fed from the input.  A bad entry stops the feeding: the
        workers finish what was fed before it (no page is cut off and fetched again
        later), and the run ends with the entry's one-line error as its finish reason
        ("refused: ..."); a store error propagates (fatal, see :meth:`run`)."""
        try:
            await self._feed.run()
        except ConfigError as exc:
            log.error("input: %s; finishing the URLs fed before it", exc)
            self._abort_reason = f"refused: {exc}"
        finally:
            self._jobs.set_input_open(False)

    async def _report_progress(self) -> None:
        progress = Progress(interval_s=self._config.monitor.progress_interval_s)
        try:
            while True:
                await trio.sleep(progress.interval_s)
                counts = await self._store.counts()
                self._url_counts = counts
                s = self.statistics()
                self._status.record(s)
                progress.show(
                    done=counts["done"],
                    failed=counts["failed"],
                    total=sum(counts.values()),  # the frontier grows as pages enqueue links
                    rate=s.pages_per_s,
                    in_flight=s.jobs.in_flight,
                    concurrency=concurrency_text(s.concurrency, s.autoscale) if s.autoscale is not None else "",
                )
        finally:
            progress.end()

    async def _serve_metrics(self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        """Serve the Prometheus endpoint and /healthz until cancelled.  Raises ConfigError
        (before reporting started) if the address cannot be bound; afterwards never raises."""
        mon = self._config.monitor
        serve = partial(
            metrics.serve_metrics,
            self._metrics_registry,
            self._heartbeat,
            host=mon.metrics_host,
            status=lambda: self._status.render(self.statistics(), site=self._config.site.name),
            token=mon.metrics_token,
        )
        try:
            async with open_service_nursery() as nursery:
                try:
                    self._metrics_port = await nursery.start(partial(serve, port=mon.metrics_port))
                except OSError as exc:
                    raise ConfigError(
                        f"{self._config.source}: [monitor] metrics_port: cannot listen on "
                        f"{mon.metrics_host}:{mon.metrics_port}: {exc.strerror or exc}"
                    ) from None
                log.info(
                    "metrics on http://%s:%d/metrics (status page: /, health: /healthz)",
                    mon.metrics_host,
                    self._metrics_port,
                )
                if mon.metrics_allow_public and not mon.metrics_token and not is_loopback_host(mon.metrics_host):
                    log.warning(
                        "the metrics and the status page are served on %s without a token (metrics_allow_public)",
                        mon.metrics_host,
                    )
                task_status.started()
        except OSError as exc:
            log.error("metrics endpoint stopped: %s", exc)


async def crawl(config: Config, router: Router | None = None, *, limit: int | None = None) -> dict[str, Any]:
    """Crawl ``config`` with ``router``'s handlers (plus the config's TOML routes), in
    the store the config names, resuming whatever an earlier run left; for embedding
    in a trio program (the CLI is this plus signals and printing).  Returns the run's
    summary (``finish_reason``, counts, rates...).  Failed URLs are data in the store,
    not exceptions; raises ConfigError for bad configuration.  If cancelled, in-flight
    URLs go back to pending and the store is closed."""
    async with open_store(StoreSettings.of(config)) as store:
        crawler = Crawler(config, store, limit=limit, router=router)
        await crawler.run()
        return await crawler.summary()


def _first(group: BaseExceptionGroup) -> BaseException:
    """The first leaf exception of a (nested) group."""
    first = group.exceptions[0]
    return _first(first) if isinstance(first, BaseExceptionGroup) else first


def _memory_budget_mb(config: Config) -> int:
    if config.pool.memory_budget_mb:
        return config.pool.memory_budget_mb
    import psutil

    return psutil.virtual_memory().total // 2**20
