"""The crawl's figures: what each part counts, and the one snapshot everyone reads.

Each part of the engine owns its own figures and publishes them as a frozen snapshot
from its ``statistics()`` (trio's ``MemoryChannelStatistics`` style); nobody else
moves them, and nobody reads a part's attributes:

- :class:`JobStatistics`, of :class:`crawler.run.jobs.JobRunner`: jobs claimed, in flight,
  done, failed by kind, retries, watchdog expiries;
- :class:`BrowserStatistics`, of :class:`crawler.run.supervisor.BrowserSupervisor`: browser
  restarts, the pool in use, the pool counters summed over the run's pools;
- :class:`MemoryStatistics`, of :class:`crawler.observe.memory.MemoryMonitor`: the last PSS
  reading, its peak, the throttle's level and settings;
- :class:`InvariantStatistics`, of :class:`crawler.observe.invariants.InvariantMonitor`: checks,
  violations, standing mismatches, the browser's own counts;
- :class:`AutoscaleStatistics`, of :class:`crawler.run.autoscale.Autoscale`: the concurrency
  it set, why it last changed, what holds it, its changes by reason, its last readings.

:meth:`crawler.run.engine.Crawler.statistics` puts them together, with the run's own
figures, into one :class:`CrawlStatistics`: the end summary, the progress line and
the Prometheus collector all read that, and nothing else of the crawler.
"""

from __future__ import annotations

from collections.abc import Mapping

import attrs

from crawler.browser.pool import PoolStatistics
from crawler.browser.session import SessionStatistics
from crawler.observe.snapshots import SnapshotStatistics


@attrs.frozen
class LabelPaths:
    """One route's fetch figures (see :mod:`crawler.run.paths`): how it is fetched now, and why."""

    fetch: str  # the route's mode: browser, http or auto
    path: str  # the path its jobs take now: browser or http
    pages: Mapping[str, int]  # jobs done per path (browser, http)
    checks: int  # jobs fetched both ways and compared
    disagreements: int  # checks that differed, and HTTP jobs sent to the browser
    reason: str  # why it is on its path (the last switch), "" if it never switched


@attrs.frozen
class JobStatistics:
    """The job runner's figures, for this run."""

    claimed: int  # jobs claimed from the store
    in_flight: int  # claimed and not yet recorded
    done: int  # pages extracted and stored
    failed: Mapping[str, int]  # URLs failed for good, by failure kind (a copy)
    retries: int  # attempts that failed and were scheduled again
    watchdog_expiries: int  # jobs cancelled by their watchdog
    interrupted: int  # jobs failed because the browser went away under them: pending again, uncharged
    links_skipped: Mapping[str, int]  # links not enqueued, by reason (scheme_mailto, other_host, max_depth...)
    sessions_started: int  # session hook runs that returned (one per browser context that logged in)
    sessions_restored: int = 0  # contexts that restored a saved state ([session] persist) instead of logging in
    session_checks_failed: int = 0  # restored states the session check said no to (then the hook logged in)
    field_errors: Mapping[str, int] = attrs.field(factory=dict)  # js fields that threw, in stored items, by field
    snapshots: SnapshotStatistics = attrs.field(factory=SnapshotStatistics)  # failure snapshots written
    paths: Mapping[str, LabelPaths] = attrs.field(factory=dict)  # fetch paths by route label

    @property
    def pages_finished(self) -> int:
        """Pages that ended (done or failed) in this run."""
        return self.done + sum(self.failed.values())


@attrs.frozen
class PoolTotals:
    """Pool counters that add up across browser restarts (one pool per browser)."""

    tabs_opened: int = 0
    tabs_recycled: int = 0
    tabs_discarded: int = 0
    contexts_rotated: int = 0
    contexts_retired: int = 0
    popups_closed: int = 0
    leases_acquired: int = 0
    leases_released: int = 0

    def plus(self, pool: PoolStatistics) -> PoolTotals:
        """These totals with one more pool's counters added."""
        return PoolTotals(**{f.name: getattr(self, f.name) + getattr(pool, f.name) for f in attrs.fields(PoolTotals)})


@attrs.frozen
class BrowserStatistics:
    """The browser supervisor's figures."""

    restarts: int  # times the browser was lost and started again
    pool: PoolStatistics | None  # the pool in use; None between browsers (and before and after the run)
    pool_totals: PoolTotals  # summed over every pool of the run, the one in use included


@attrs.frozen
class MemoryStatistics:
    """The memory monitor's figures, as of its last reading (bytes)."""

    browser_pss: int  # PSS of the browser's process tree
    browser_processes: int  # processes in that tree
    crawler_pss: int  # PSS of the crawler process
    peak_browser_pss: int  # the highest browser_pss of the run
    budget_bytes: int  # [pool] memory_budget_mb in bytes; 0: no budget, no throttle
    throttle_level: int  # 0 normal, 1 pressure, 2 over budget (0 without a budget)
    concurrency: int  # leases the throttle allows the pool (the configured number, or max_concurrency, at level 0)
    recycle_tab_every: int  # pages per tab the throttle sets (the configured interval at level 0)
    sampled_at: float | None = None  # trio time the last reading of the browser's tree began; None: none yet


@attrs.frozen
class AutoscaleStatistics:
    """The autoscaler's figures (``[pool] concurrency = "auto"``,
    :class:`crawler.run.autoscale.Autoscale`)."""

    concurrency: int  # jobs (and tabs) at once now
    minimum: int  # [pool] min_concurrency
    maximum: int  # [pool] max_concurrency
    reason: str  # why it last changed (scale_up, memory, status_429, loop_lag); "" before the first change
    held_by: str  # what keeps it from growing now (cpu, memory, loop_lag, pace, idle, max, cooldown); "" if nothing
    changes: Mapping[str, int]  # changes so far, by reason
    cpu: float | None  # the process tree's CPU over the last tick, a share of the usable cores
    loop_lag_s: float  # the event loop's mean lateness over the last tick
    memory: float | None  # browser PSS / the budget it is judged against (the last reading); None: none
    busy: float  # slots holding a job, mean over the last tick


@attrs.frozen
class InvariantStatistics:
    """The invariant monitor's figures."""

    checks: int  # invariant checks run
    violations: int  # distinct mismatches found (each counted once, when first confirmed)
    mismatches: int  # mismatches standing at the last check
    browser_page_targets: int  # page targets in the pool's contexts, as the browser listed them at the last check
    browser_contexts: int  # browser contexts, as the browser listed them at the last check


@attrs.frozen
class CrawlStatistics:
    """One snapshot of the whole crawl: the run's figures and each part's."""

    finish_reason: str  # "running" until the run ends
    urls: int  # URLs in the store when the run started
    url_counts: Mapping[str, int]  # URLs by state, as of the last progress line (a copy)
    elapsed_s: float  # since the run started (0 before)
    concurrency: int  # jobs at once: [pool] concurrency, or with "auto" the autoscaler's figure now
    recycle_tab_every: int  # [pool] recycle_tab_every as configured ("auto" resolved)
    memory_budget_mb: int  # [pool] memory_budget_mb; 0: none
    jobs: JobStatistics
    browser: BrowserStatistics
    memory: MemoryStatistics
    invariants: InvariantStatistics
    sessions: SessionStatistics | None = None  # the session pool's (None: a run without one)
    autoscale: AutoscaleStatistics | None = None  # the autoscaler's (None: a fixed concurrency)

    @property
    def pages_per_s(self) -> float:
        return self.jobs.pages_finished / max(1e-9, self.elapsed_s)
