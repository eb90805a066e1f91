"""The job runner: workers claim URLs from the store and run each as one job.

A job is one attempt at one URL:

1. a worker ``claim``\\ s the URL (the store moves it ``pending → in_progress`` and
   counts the attempt); the job enters the in-flight table; with ``[crawl]
   obey_robots``, a URL its host's robots.txt disallows fails ``robots`` here, before
   any tab (:class:`crawler.policy.robots.RobotsPolicy`);
2. the life of the URL, :func:`crawler.run.job.attempt` (lease, watchdog, route,
   failure named, snapshot of a failure, lease released), on the path the route's
   ``fetch`` gives (:class:`crawler.run.paths.FetchPaths`): in the browser, over HTTP,
   or both for an ``auto`` route's check (the browser's output kept, HTTP's compared);
   an ``auto`` HTTP job that shows the page needs the browser goes there at once;
3. :meth:`JobRunner._record` stores the outcome in one transaction: done with its
   items and its new links, pending again after a backoff (what it pushed dropped), or
   failed with its reason (the decision is :class:`crawler.policy.retry.RetryPolicy`'s).
   Only then does the job leave the in-flight table, so in-flight jobs and the store's
   in-progress rows agree at every checkpoint.

A job cancelled from outside (shutdown, browser restart) goes back to pending without
being charged an attempt, and the Cancelled goes on; so does a job that failed because
the browser's connection went away under it (:meth:`JobRunner._release_interrupted`).

Tasks: :meth:`JobRunner.run_workers` owns a nursery of one task per worker, for one
pool; each job's page work may run tasks of its own, inside its watchdog scope.
"""

from __future__ import annotations

import logging
import random
from collections import Counter
from collections.abc import Awaitable, Callable
from functools import partial

import trio

import cdp
from crawler._trio import task_lineage
from crawler.browser.pool import TabPool
from crawler.browser.session import SessionPool
from crawler.config import Config
from crawler.errors import PageFailure, SessionRetired, StoreError
from crawler.observe.snapshots import Snapshots
from crawler.observe.stats import JobStatistics
from crawler.page.links import LinkFilter
from crawler.page.output import JobOutput
from crawler.page.page import Page
from crawler.policy.failure import SLOW_DOWN_STATUS
from crawler.policy.retry import RetryPolicy
from crawler.policy.robots import RobotsPolicy
from crawler.policy.watchdog import Watchdog
from crawler.run import router as routing
from crawler.run.claims import Claims
from crawler.run.job import Attempt, attempt, page_env, pages_per_browserless_session
from crawler.run.paths import FetchPaths
from crawler.run.router import Router, SessionGate
from crawler.run.session_gate import saved_sessions
from crawler.run.slots import WatchedPace, WorkerLoad, WorkerSlots
from crawler.store.base import Job, Store
from crawler.urls import short_url

log = logging.getLogger(__name__)

RELEASE_TIMEOUT_S = 5.0  # bound on a shielded store write: an outcome, or an interrupted job put back
IDLE_POLL_S = 0.5  # a worker with nothing ready re-checks the frontier this often

# The page work's signature (that of crawler.run.router.run_route): router, sessions, tab,
# request, page env, live context ids -> the Page with the job's output, or raises.
RunRoute = Callable[..., Awaitable[Page]]


class JobRunner:
    """Claims jobs from the store and runs them on a pool's tabs; owns the job figures.

    ``rng`` draws the rate limiter's gaps and the retry backoffs (and the default
    watchdog's jitter); ``router`` holds the crawl's handlers; ``sessions`` is the
    crawl's session pool (default: one for ``config``; the supervisor's contexts come
    from it too); ``watchdog`` and ``run_route`` are seams for tests.
    """

    def __init__(
        self,
        config: Config,
        store: Store,
        *,
        rng: random.Random,
        limit: int | None = None,
        watchdog: Watchdog | None = None,
        router: Router | None = None,
        run_route: RunRoute | None = None,
        sessions: SessionPool | None = None,
    ):
        self._config = config
        self.sessions = sessions or SessionPool(config.session, cookies=config.cookies, http=config.http)
        self._store = store
        self._watchdog = watchdog or Watchdog(config.watchdog.timeout_s, config.watchdog.jitter_s, rng=rng)
        self._limiter = WatchedPace(store.host_pace(config.rate_limit.wait_ms, rng=rng))
        # How many jobs run at once: the autoscaler sizes it with concurrency = "auto"
        # (from min_concurrency up); otherwise it is the concurrency, one slot a worker.
        self.slots = WorkerSlots(config.pool.min_concurrency if config.pool.auto else config.pool.most)
        self._retry = RetryPolicy(config.retry.max_attempts, config.retry.backoff_s, SLOW_DOWN_STATUS, rng)
        self._router = routing.router_for(config, router)
        self._sessions = SessionGate(
            self._router.session_hook, self._router.session_check_hook, saved_sessions(config.session, store)
        )
        self._links = LinkFilter(config.crawl)
        self._robots = RobotsPolicy() if config.crawl.obey_robots else None
        self._page_env = page_env(config, self._limiter, self._links, store.known, self.sessions, self._robots)
        self._run_route = run_route or routing.run_route
        self._paths = FetchPaths(
            lambda label: self._router.fetch(label, config.crawl.fetch) or "browser",
            agree_after=config.http.agree_after,
            recheck_ratio=config.http.recheck_ratio,
            rng=rng,
        )
        self._snapshots = Snapshots(config.debug.snapshots_dir, config.debug.snapshot_every)
        self._claims = Claims(store, limit)
        self._changed = trio.Event()  # set (and replaced) whenever a job ends: idle workers look again
        self._recording = trio.Semaphore(1)  # a slot per outcome being recorded (run_workers sizes it)
        self._done = 0
        self._failed: Counter[str] = Counter()
        self._retries = 0
        self._watchdog_expiries = 0
        self._field_errors: Counter[str] = Counter()
        self._input_open = False  # more URLs may still come from the input feed
        self._interrupted = 0
        self._running: dict[trio.lowlevel.Task, Job] = {}  # worker task -> the job it runs

    def statistics(self) -> JobStatistics:
        gate = self._sessions.statistics()
        return JobStatistics(
            claimed=self._claims.claimed,
            in_flight=len(self._claims),
            done=self._done,
            failed=dict(self._failed),
            retries=self._retries,
            watchdog_expiries=self._watchdog_expiries,
            interrupted=self._interrupted,
            links_skipped=dict(self._links.skipped),
            sessions_started=gate.logins,
            sessions_restored=gate.restored,
            session_checks_failed=gate.checks_failed,
            field_errors=dict(self._field_errors),
            snapshots=self._snapshots.statistics(),
            paths=self._paths.statistics(),
        )

    @property
    def needs_browser(self) -> bool:
        """Whether any job of the crawl may need a browser: a route fetched in the
        browser (or "auto"), or a session hook (a login is a browser's).  A crawl whose
        every route fetches over HTTP launches none."""
        if self._router.session_hook is not None:
            return True
        return any(self._paths.plan_mode(label) != "http" for label in self._router.labels)

    def load(self) -> WorkerLoad:
        """What the workers do, now and summed over the run (never blocks): the
        autoscaler's readings of the slots, the pace and the outcomes."""
        slots, pace = self.slots, self._limiter
        return WorkerLoad(
            at=trio.current_time(),
            limit=slots.limit,
            busy=slots.busy.value,
            busy_s=slots.busy.area(),
            idle=slots.idle.value,
            idle_s=slots.idle.area(),
            pace_waiting=pace.waiting.value,
            pace_waiting_s=pace.waiting.area(),
            slow_downs=pace.slow_downs,
            outcomes=self._done + sum(self._failed.values()) + self._retries + self._interrupted,
        )

    def in_flight_jobs(self) -> list[Job]:
        """The jobs claimed and not yet recorded (a copy)."""
        return self._claims.jobs()

    def set_input_open(self, more: bool) -> None:
        """Whether the input feed may still add URLs: while it may, an empty frontier
        is not the end of the crawl, and workers wait for more."""
        self._input_open = more
        self.wake()

    def on_stall(self, task: trio.lowlevel.Task, seconds: float) -> int:
        """The event loop was blocked ``seconds`` by ``task`` (see
        :mod:`crawler.observe.stalls`): every other job gets the time back on its
        watchdog, and one warning names the culprit's handler.  Runs in the run loop,
        never raises; returns how many jobs were given the time back."""
        forgiven = self._watchdog.forgive(seconds, task)
        job = next((self._running[t] for t in task_lineage(task) if t in self._running), None)
        if job is None:
            log.warning("the event loop was blocked for %.1f s by task %s", seconds, task.name)
            return forgiven
        known = job.label in self._router.labels
        handler = getattr(self._router.handler(job.label), "__name__", job.label) if known else job.label
        log.warning(
            "%s: handler %r blocked the event loop for %.1f s: every page and the browser's connection "
            "waited meanwhile; run blocking work in a thread: await trio.to_thread.run_sync(fn, ...)",
            short_url(job.url),
            handler,
            seconds,
        )
        return forgiven

    def wake(self) -> None:
        """Idle workers look at the frontier again (a job ended, URLs were fed)."""
        self._changed.set()
        self._changed = trio.Event()

    def limit_reached(self) -> bool:
        """True once ``limit`` jobs were claimed in this run (and taken by workers)."""
        return self._claims.limit_reached()

    async def work_left(self) -> bool:
        """Whether a worker would find something to do: the limit is not reached and the
        store holds a URL that is (or will become) ready.  Only reads the store."""
        if self.limit_reached() or self.sessions.all_refused:
            return False
        return self._input_open or await self._store.next_ready_in() is not None

    async def run_workers(self, pool: TabPool | None, concurrency: int) -> None:
        """Run ``concurrency`` workers on ``pool`` (None: no browser, every job over HTTP)
        until no work is left (or the limit is reached), in a nursery of their own.  At
        most :attr:`slots` of them hold a job at once (with concurrency = "auto", the
        autoscaler sizes it; ``concurrency`` is then the most it may reach).  If
        cancelled (shutdown, browser lost), every job in flight goes back to pending and
        the Cancelled goes on.  Failed URLs are data; store errors and bugs propagate."""
        self._recording = trio.Semaphore(concurrency)
        try:
            async with trio.open_nursery() as nursery:
                for _ in range(concurrency):
                    nursery.start_soon(self._worker, pool, nursery)
        finally:
            await self._claims.release_unstarted(RELEASE_TIMEOUT_S)

    async def _worker(self, pool: TabPool | None, recorders: trio.Nursery) -> None:
        task = trio.lowlevel.current_task()
        while True:
            if self.limit_reached() or self.sessions.all_refused:
                return
            async with self.slots.slot():
                # Claimed ahead for the workers that may run now, not for every one
                # started: with "auto", most of them may be waiting for a slot.
                self._claims.workers = self.slots.limit
                job = await self._claims.claim()
                if job is not None:
                    self._running[task] = job
                    try:
                        await self._process(pool, job, recorders)
                    finally:
                        del self._running[task]
                    continue
            with self.slots.idling():  # nothing ready: waiting out of the slot
                ready_in = await self._store.next_ready_in()
                if ready_in is None and not len(self._claims) and not self._input_open:
                    return
                with trio.move_on_after(min(ready_in if ready_in is not None else IDLE_POLL_S, IDLE_POLL_S)):
                    await self._changed.wait()

    async def _process(self, pool: TabPool | None, job: Job, recorders: trio.Nursery) -> None:
        """One job (in the in-flight table already): robots.txt, then the one life of a
        URL (:func:`crawler.run.job.attempt`), then its outcome handed to a task of
        ``recorders`` that records it (:meth:`_finish`), while the worker goes on to its
        next job.  Why: waiting for the store's round trip was a third of a worker's time
        in a fast (HTTP) crawl.  At most as many outcomes as workers wait to be recorded
        (the next one waits for a slot)."""
        started = trio.current_time()
        try:
            # Before any tab: a URL robots.txt disallows is never requested from the server.
            refusal = await self._robots.check(job.url) if self._robots is not None else None
            if refusal is None:
                outcome = await self._attempt(pool, job)
            else:
                outcome = Attempt(None, refusal)
        except trio.Cancelled:
            with trio.move_on_after(RELEASE_TIMEOUT_S, shield=True):
                try:
                    await self._store.release(job)
                except StoreError as exc:  # the Cancelled goes on; the next run's recover() puts it back
                    log.debug("%s: could not put it back to pending: %s", short_url(job.url), exc)
            self._claims.leave(job)
            raise
        self._watchdog_expiries += outcome.expired
        elapsed_s = trio.current_time() - started
        # Shielded: the outcome is in hand and must be recorded, even when the workers
        # are being cancelled (a slot comes free within RELEASE_TIMEOUT_S at most).
        with trio.CancelScope(shield=True):
            await self._recording.acquire()
        recorders.start_soon(self._finish, pool, job, outcome, elapsed_s)

    async def _finish(self, pool: TabPool | None, job: Job, outcome: Attempt, elapsed_s: float) -> None:
        """Record one job's outcome (shielded, bounded: also when the workers are being
        cancelled).  The job leaves in_flight only once its outcome is stored, so
        in-flight jobs and the store's in-progress rows agree at every checkpoint."""
        try:
            with trio.move_on_after(RELEASE_TIMEOUT_S, shield=True):
                if outcome.failure is not None and pool is not None and not pool.browser.connected:
                    await self._release_interrupted(job, outcome.failure)
                else:
                    await self._record(job, outcome.page, outcome.failure, elapsed_s)
            self._claims.leave(job)
            self.wake()
        finally:
            self._recording.release()

    async def _attempt(self, pool: TabPool | None, job: Job) -> Attempt:
        """The job on its path (see :mod:`crawler.run.paths`): the browser, HTTP, or
        both (a check: the browser's output is the job's, HTTP's is compared with it).
        An ``auto`` HTTP job whose page needs the browser goes there within the same
        job: the claim, and so the attempt, is the same."""
        label = job.label
        plan = self._paths.plan(label) if pool is not None else "http"
        if plan == "http":
            outcome = await self._attempt_http(pool, job)
            why = self._paths.needs_browser(label, outcome.page, outcome.failure) if pool is not None else None
            if why is None:
                self._paths.done(label, "http", outcome.page)
                return outcome
            self._paths.disagree(label, job.url, why)
        assert pool is not None
        outcome = await attempt(
            pool,
            partial(self._work, pool, job),
            watchdog=self._watchdog,
            sessions=self.sessions,
            after=partial(self._after, pool, job),
        )
        self._paths.done(label, "browser", outcome.page)
        if plan == "check" and outcome.page is not None:
            http = await self._attempt_http(pool, job)
            self._paths.compare(label, job.url, outcome.page, http.page, http.failure)
        return outcome

    async def _attempt_http(self, pool: TabPool | None, job: Job) -> Attempt:
        return await attempt(
            pool,
            partial(self._http_work, pool, job),
            watchdog=self._watchdog,
            sessions=self.sessions,
            serves_page=False,
            browserless_pages=pages_per_browserless_session(self._config),
        )

    async def _work(self, pool: TabPool, job: Job, tab: cdp.Tab | None, session_id: str) -> Page:
        """The page work of one job, on its leased tab, inside its watchdog: the route."""
        assert tab is not None
        return await self._run_route(self._router, self._sessions, tab, job.request, self._page_env, pool.context_ids)

    async def _http_work(self, pool: TabPool | None, job: Job, tab: cdp.Tab | None, session_id: str) -> JobOutput:
        """The work of one job over HTTP, inside its watchdog (its tab, if any, only
        lends its context)."""
        live = pool.context_ids if pool is not None else set()
        return await routing.run_http_route(
            self._router, self._sessions, tab, session_id, job.request, self._page_env, live
        )

    async def _after(self, pool: TabPool, job: Job, tab: cdp.Tab, failure: PageFailure | None) -> None:
        """A failed page's snapshot, taken inside the lease (the tab still open), out of
        the watchdog: its own bounded, shielded deadline, so a hung tab delays closing it
        that long at most."""
        if failure is not None and pool.browser.connected:
            await self._snapshots.after_failure(
                tab,
                url=job.url,
                label=job.label,
                kind=failure.kind,
                reason=failure.reason,
                attempt=job.attempt,
            )

    async def _release_interrupted(self, job: Job, failure: PageFailure) -> None:
        """A job that failed because the browser went away under it (its connection is
        gone: the browser crashed, or its container restarted): back to pending for the
        next browser, the attempt not charged, as for a job cancelled by the restart.  The
        death is the browser's, not the page's; what bounds a page that kills every
        browser it is loaded in is ``[browser] restart_limit``: once it is the only work
        left, its deaths come in a row without a page finished, and the crawl aborts."""
        self._interrupted += 1
        log.info("%s: the browser went away under it (%s); pending again, attempt not charged", job.url, failure.reason)
        await self._store.release(job)

    async def _record(self, job: Job, result: JobOutput | None, failure: PageFailure | None, elapsed_s: float) -> None:
        """Store the job's outcome: done with its items and links, or, for a failure, what the
        retry policy decides (pending again after a delay, or failed with its reason),
        pausing the host first if the failure asks for it."""
        if result is not None:
            # What the handler pushed and enqueued is stored with the outcome, in one transaction.
            recrawl_after_s = self._router.recrawl_after_s(job.label, self._config.crawl.recrawl_after_s) or 0.0
            if await self._store.complete(
                job, result.items, result.links, result.status, elapsed_s, recrawl_after_s=recrawl_after_s
            ):
                self._done += 1
                self._count_field_errors(job, result)
            else:
                log.warning(
                    "%s: finished, but the store no longer holds it in progress (lease lost)", short_url(job.url)
                )
            return
        assert failure is not None
        if isinstance(failure, SessionRetired) and not self.sessions.charge_retirement(job.url, failure.detail):
            # The session was at fault, not the page: another session tries it, uncharged.
            self._retries += 1
            log.info(
                "%s: %s (attempt %d); another session tries it, uncharged",
                short_url(job.url),
                failure.reason,
                job.attempt,
            )
            await self._store.release(job)
            return
        decision = self._retry.decide(
            job.attempt, retryable=failure.retryable, status=failure.status, retry_after_s=failure.retry_after_s
        )
        if decision.host_pause_s is not None:
            await self._limiter.back_off(job.url, decision.host_pause_s)
        if decision.retry:
            self._retries += 1
            log.info(
                "%s: %s (attempt %d); retry in %.1f s",
                short_url(job.url),
                failure.reason,
                job.attempt,
                decision.delay_s,
            )
            await self._store.retry_later(job, failure.reason, decision.delay_s, failure.status)
        else:
            self._failed[failure.kind] += 1
            log.warning("%s: failed after %d attempt(s): %s", short_url(job.url), job.attempt, failure.reason)
            await self._store.fail(job, failure.reason, failure.status)

    def _count_field_errors(self, job: Job, result: JobOutput) -> None:
        """Fields that threw in the stored items: counted for the summary and the
        metrics (a field error is never only in the item's ``_errors``)."""
        for item in result.items:
            errors = item.get("_errors")
            if isinstance(errors, dict):
                for name, error in errors.items():
                    self._field_errors[name] += 1
                    log.warning("%s: field %s: %s", short_url(job.url), name, str(error)[:200])
