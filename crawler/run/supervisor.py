"""The browser supervisor: one browser at a time, its pool, and the workers on it.

Task tree, from :meth:`BrowserSupervisor.run` down::

    BrowserSupervisor.run            one iteration per browser; restarts it, with backoff
    └── open_browser()               cdp.launch or cdp.connect (the seam): owns the
        │                            connection's reader task (and the browser process)
        └── open_pool()              owns the popup closer task; on exit closes every tab
            │                        and disposes every context (shielded, bounded)
            └── watch nursery
                ├── _watch_browser   cancels the workers' scope when the connection drops
                │                    or a heartbeat goes unanswered (it aborts the
                │                    connection first)
                └── JobRunner.run_workers   the workers' nursery (crawler.run.jobs)

Restarts: a browser that dies (its connection closed, or it raised a CDP error) is
replaced after a backoff that doubles with each death in a row without a page
finished; after ``[browser] restart_limit`` such deaths the crawl aborts.  The finish
reason is what :meth:`BrowserSupervisor.run` returns.

An endpoint (``[browser] cdp_url``) that cannot be reached at all (``cdp.EndpointUnavailable``
after ``connect_timeout_s`` of tries) means two things.  Before any browser was ever
opened, the URL is wrong (host, port, a browser container that is not there): the error
propagates, and the command line exits 2 with one line naming the URL.  After a browser
worked, the endpoint went away (its container restarts): the supervisor waits for it,
trying again after a backoff from ENDPOINT_BACKOFF_S with a log line each time, for as
long as it takes (a shutdown still stops it at once); these waits are not deaths and do
not count towards ``restart_limit``.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from contextlib import AbstractAsyncContextManager

import trio

import cdp
from crawler.browser.launch import open_configured_browser
from crawler.browser.pool import TabPool, open_pool
from crawler.config import Config
from crawler.observe.stats import BrowserStatistics, PoolTotals
from crawler.run.job import pages_per_session, pool_options
from crawler.run.jobs import JobRunner

log = logging.getLogger(__name__)

RESTART_BACKOFF_S = (1.0, 30.0)  # (first, cap): the delay before a restart doubles from first up to cap
# (first, cap): between tries to reach an endpoint that worked and went away; each try
# itself polls for [browser] connect_timeout_s, so a restarting container is caught early.
ENDPOINT_BACKOFF_S = (1.0, 10.0)
# The browser watcher sends Browser.getVersion this often; no answer within the command
# deadline means the browser is wedged (it may keep its socket open), and it is replaced.
BROWSER_PING_INTERVAL_S = 5.0

OpenBrowser = Callable[[], AbstractAsyncContextManager[cdp.Browser]]
OpenPool = Callable[..., AbstractAsyncContextManager[TabPool]]


class BrowserSupervisor:
    """Runs ``jobs`` on one browser after another until the work is done.

    ``open_browser`` (default: :func:`open_configured_browser`) and ``open_pool``
    (default: :func:`crawler.browser.pool.open_pool`) are seams for tests; ``on_pool_opened`` is
    called with each new pool before any worker uses it (the memory monitor's hook).
    """

    def __init__(
        self,
        config: Config,
        jobs: JobRunner,
        *,
        recycle_tab_every: int,
        open_browser: OpenBrowser | None = None,
        open_pool: OpenPool = open_pool,
        on_pool_opened: Callable[[TabPool], None] | None = None,
    ):
        self._config = config
        self._jobs = jobs
        self._recycle_tab_every = recycle_tab_every
        self._open_browser = open_browser or (lambda: open_configured_browser(config.browser))
        self._open_pool = open_pool
        self._on_pool_opened = on_pool_opened
        self._browser: cdp.Browser | None = None
        self._pool: TabPool | None = None
        self._closed_pools = PoolTotals()  # the counters of the pools already closed
        self._restarts = 0
        self._opened = 0  # browsers opened (launched or connected) so far

    @property
    def browser(self) -> cdp.Browser | None:
        """The browser in use; None between browsers."""
        return self._browser

    def abort(self, reason: str) -> None:
        """Drop the browser in use at once (a second stop signal): its connection is
        declared lost, so that closing the pool skips it instead of closing each tab
        politely, and the browser's process is killed on the way out.  Idempotent."""
        if self._browser is not None:
            self._browser.connection.abort(reason)

    def forgive(self, seconds: float) -> int:
        """The event loop was blocked ``seconds`` (by a handler: see
        :mod:`crawler.observe.stalls`): the browser's commands in flight get the time
        back, so that neither they nor the heartbeat take the stall for a dead browser.
        Runs in the run loop, never raises; returns how many commands it pushed back."""
        return self._browser.connection.forgive(seconds) if self._browser is not None else 0

    @property
    def pool(self) -> TabPool | None:
        """The pool of the browser in use; None between browsers.  Only the supervisor
        opens and closes it; monitors read it and apply settings to it."""
        return self._pool

    def statistics(self) -> BrowserStatistics:
        pool = self._pool.statistics() if self._pool is not None else None
        return BrowserStatistics(
            restarts=self._restarts,
            pool=pool,
            pool_totals=self._closed_pools.plus(pool) if pool is not None else self._closed_pools,
        )

    async def run(self) -> str:
        """Run the workers on a browser, replacing it whenever it dies, until no work is
        left ("finished"), the job limit is reached ("limit"), or the browser died
        ``restart_limit`` + 1 times in a row without a page finished ("aborted: ...").
        Returns that finish reason.

        Starts tasks only inside (see the module's task tree).  If cancelled, the jobs
        in flight go back to pending, the pool and the browser are closed (shielded,
        bounded) and the Cancelled goes on."""
        if not self._jobs.needs_browser:
            # Every route fetches over HTTP and no hook logs in: no browser to start.
            log.info("every route fetches over HTTP: no browser is started")
            await self._jobs.run_workers(None, self._config.pool.most)
            return self._done_reason()
        failures_in_a_row = 0
        unreachable = 0  # tries in a row that found the endpoint gone
        while True:
            if not await self._jobs.work_left():
                return self._done_reason()
            finished_before = self._jobs.statistics().pages_finished
            try:
                died = await self._run_browser()
            except cdp.EndpointUnavailable as exc:
                if not self._opened:
                    raise  # it never worked: a configuration error, for the caller to report
                unreachable += 1
                delay = _backoff(ENDPOINT_BACKOFF_S, unreachable)
                log.warning("waiting for the browser to come back: %s; next try in %.1f s", exc, delay)
                await trio.sleep(delay)
                continue
            except cdp.CDPError as exc:
                log.error("browser failed: %s", exc)
                died = True
            unreachable = 0
            if not died:
                return self._done_reason()
            self._restarts += 1
            progressed = self._jobs.statistics().pages_finished > finished_before
            failures_in_a_row = 0 if progressed else failures_in_a_row + 1
            if failures_in_a_row > self._config.browser.restart_limit:
                return f"aborted: the browser died {failures_in_a_row} times in a row without finishing a page"
            delay = _backoff(RESTART_BACKOFF_S, failures_in_a_row)
            log.warning("browser lost; restarting in %.1f s (restart %d)", delay, self._restarts)
            await trio.sleep(delay)

    def _done_reason(self) -> str:
        return "limit" if self._jobs.limit_reached() else "finished"

    async def _run_browser(self) -> bool:
        """Run workers on one browser until the work is done (False) or the browser dies (True)."""
        pool_cfg = self._config.pool
        try:
            async with (
                self._open_browser() as browser,
                self._open_pool(
                    browser,
                    concurrency=self._jobs.slots.limit,  # with "auto", the autoscaler's figure now
                    recycle_tab_every=self._recycle_tab_every,
                    rotate_context_every=pages_per_session(self._config),
                    **pool_options(self._config, self._jobs.sessions),
                ) as pool,
            ):
                self._browser, self._pool = browser, pool
                self._opened += 1
                if self._on_pool_opened is not None:
                    self._on_pool_opened(pool)
                try:
                    async with trio.open_nursery() as watch:
                        workers = trio.CancelScope()
                        watch.start_soon(self._watch_browser, browser, workers)
                        with workers:
                            await self._jobs.run_workers(pool, pool_cfg.most)
                        watch.cancel_scope.cancel()
                finally:
                    self._closed_pools = self._closed_pools.plus(pool.statistics())
                    self._pool = None
                return browser.connection.closed
        finally:
            self._browser = None

    async def _watch_browser(self, browser: cdp.Browser, workers: trio.CancelScope) -> None:
        """Cancel the workers when the connection drops, or when the browser leaves a
        heartbeat unanswered for the command deadline: then the connection is aborted
        first, so that closing the pool skips the wedged browser rather than waiting
        out every close, and the browser loop replaces it.  Never raises."""
        conn = browser.connection
        while not conn.closed:
            with trio.move_on_after(BROWSER_PING_INTERVAL_S):
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


def _backoff(first_and_cap: tuple[float, float], in_a_row: int) -> float:
    """The delay after ``in_a_row`` failures: ``first``, doubling with each, up to ``cap``."""
    first, cap = first_and_cap
    return min(cap, first * 2 ** max(0, in_a_row - 1))
