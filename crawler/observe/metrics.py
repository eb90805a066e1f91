"""Metrics and health: a Prometheus endpoint and a heartbeat.

The endpoint (``[monitor] metrics_port``, off when 0) is served by a trio task with the
package's small HTTP server, from a private :class:`prometheus_client.CollectorRegistry`
(prometheus_client's own ``start_http_server`` runs threads, and the default registry
is process-global).  Paths:

- ``/metrics``: the text exposition format.  Values are read at scrape time from one
  :class:`~crawler.observe.stats.CrawlStatistics` snapshot and the heartbeat (one custom
  collector, no counters moved on the hot path);
  ``crawler_browser_page_targets`` and ``crawler_browser_contexts`` are the browser's
  own figures as of the last invariant check.
- ``/``: the status page (:mod:`crawler.observe.status`), for a person;
- ``/healthz``: 200 while the heartbeat is fresh, 503 once it is stale (the crawler's
  event loop stopped running its tasks on time) or before the first beat.

The heartbeat is a task that beats every :data:`HEARTBEAT_INTERVAL_S` and, when
``[monitor] heartbeat_file`` is set, touches that file's mtime, for a container health
check or a restarter that watches files rather than ports.
"""

from __future__ import annotations

import hmac
import logging
import os
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import trio
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric

from crawler.httpserver import HttpRequest, Response, serve_http
from crawler.observe.stats import CrawlStatistics
from crawler.policy.autoscale import REASONS as AUTOSCALE_REASONS
from crawler.store.base import STATES

log = logging.getLogger(__name__)

HEARTBEAT_INTERVAL_S = 5.0  # how often the heartbeat task beats (and touches the file)
HEARTBEAT_STALE_S = 30.0  # /healthz answers 503 once the last beat is older than this

# name (without the _total of counters) -> help; one place, so the README can list them
COUNTERS = {
    "crawler_pages_done": "pages extracted and stored in this run",
    "crawler_pages_failed": "URLs failed for good in this run, by reason",
    "crawler_field_errors": "fields that threw (js) in the items stored in this run, by field",
    "crawler_page_retries": "page attempts that failed and were scheduled again",
    "crawler_tabs_recycled": "tabs closed and replaced after recycle_tab_every pages",
    "crawler_tabs_discarded": "tabs closed after a failure (timeout, crash, cancelled)",
    "crawler_contexts_rotated": "browser contexts disposed after rotate_context_every pages",
    "crawler_sessions_retired": "sessions (browser contexts) retired because the site blocked them, by reason",
    "crawler_pages_by_path": "pages done or failed, by route label and fetch path (browser, http)",
    "crawler_fetch_checks": 'fetch = "auto": pages fetched both ways and compared, by route label',
    "crawler_fetch_disagreements": 'fetch = "auto": checks that differed, and HTTP pages sent to the browser, by route label',
    "crawler_proxy_requests": "requests sent through each proxy (scheme://host:port, no credentials; direct: without one)",
    "crawler_popups_closed": "popup targets opened by pages and closed by the pool",
    "crawler_watchdog_expiries": "jobs cancelled by their watchdog",
    "crawler_session_logins": "session hook runs that returned (a browser context logged in)",
    "crawler_session_restores": "[session] persist: contexts that restored a saved state instead of logging in",
    "crawler_session_checks_failed": "[session] persist: restored states the session check said no to",
    "crawler_browser_restarts": "times the browser was lost and started again",
    "crawler_invariant_violations": "distinct resource-invariant mismatches found",
    "crawler_concurrency_changes": 'concurrency = "auto": changes of the concurrency, by reason (scale_up, memory, status_429, loop_lag)',
}
GAUGES = {
    "crawler_pages_in_flight": "jobs claimed and not yet recorded",
    "crawler_urls": "URLs in the store by state, as of the last progress line",
    "crawler_tab_leases": "tabs leased to jobs",
    "crawler_pool_tabs": "tabs the pool holds (leased and idle)",
    "crawler_pool_contexts": "browser contexts the pool holds",
    "crawler_pool_concurrency": "leases allowed at once (lowered by the memory throttle)",
    "crawler_concurrency": "jobs at once: [pool] concurrency (the memory throttle's figure under it); auto: the autoscaler's",
    "crawler_recycle_tab_every": "pages per tab before recycling (lowered by the memory throttle)",
    "crawler_browser_page_targets": "page targets in the pool's contexts, as the browser lists them",
    "crawler_browser_contexts": "browser contexts, as the browser lists them",
    "crawler_browser_pss_bytes": "PSS of the browser's process tree",
    "crawler_browser_processes": "processes in the browser's tree",
    "crawler_process_pss_bytes": "PSS of the crawler process",
    "crawler_memory_budget_bytes": "[pool] memory_budget_mb in bytes; 0: no budget",
    "crawler_memory_throttle_level": "0 normal, 1 pressure (> 85% of the budget), 2 over budget",
    "crawler_invariant_mismatches": "resource-invariant mismatches standing at the last check",
    "crawler_heartbeat_age_seconds": "seconds since the last heartbeat",
}


class Heartbeat:
    """The crawler's sign of life: a time (and optionally a file's mtime) renewed by a task."""

    def __init__(
        self,
        path: str | os.PathLike[str] | None = None,
        *,
        interval_s: float = HEARTBEAT_INTERVAL_S,
        stale_after_s: float = HEARTBEAT_STALE_S,
        clock: Callable[[], float] = time.monotonic,
    ):
        self.path = Path(path) if path else None
        self.interval_s = interval_s
        self.stale_after_s = stale_after_s
        self.clock = clock
        self.last: float | None = None
        self._file_error: str | None = None

    def beat(self) -> None:
        """Record a beat now and touch the file (creating it).  Never raises: a file
        error is logged once, and the in-process heartbeat goes on."""
        self.last = self.clock()
        if self.path is None:
            return
        try:
            self.path.touch()  # creates it, or sets its mtime to now
            self._file_error = None
        except OSError as exc:
            message = f"{exc.strerror or exc}"
            if message != self._file_error:
                log.warning("heartbeat file %s: %s", self.path, message)
            self._file_error = message

    def age_s(self) -> float | None:
        """Seconds since the last beat; None before the first."""
        return None if self.last is None else self.clock() - self.last

    def fresh(self) -> bool:
        age = self.age_s()
        return age is not None and age <= self.stale_after_s

    async def run(self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        """Beat at once, report started, then beat every ``interval_s`` until cancelled.
        Never raises."""
        self.beat()
        task_status.started()
        while True:
            await trio.sleep(self.interval_s)
            self.beat()


class CrawlerCollector:
    """Reads the crawl's figures at scrape time: one :class:`~crawler.observe.stats.CrawlStatistics`
    snapshot (from ``statistics``) and the heartbeat's age, nothing else."""

    def __init__(self, statistics: Callable[[], CrawlStatistics], heartbeat: Heartbeat):
        self.statistics = statistics
        self.heartbeat = heartbeat

    def collect(self) -> Iterator[Metric]:
        s = self.statistics()
        jobs, pool, totals, memory = s.jobs, s.browser.pool, s.browser.pool_totals, s.memory
        counters = {
            "crawler_pages_done": jobs.done,
            "crawler_page_retries": jobs.retries,
            "crawler_tabs_recycled": totals.tabs_recycled,
            "crawler_tabs_discarded": totals.tabs_discarded,
            "crawler_contexts_rotated": totals.contexts_rotated,
            "crawler_popups_closed": totals.popups_closed,
            "crawler_watchdog_expiries": jobs.watchdog_expiries,
            "crawler_session_logins": jobs.sessions_started,
            "crawler_session_restores": jobs.sessions_restored,
            "crawler_session_checks_failed": jobs.session_checks_failed,
            "crawler_browser_restarts": s.browser.restarts,
            "crawler_invariant_violations": s.invariants.violations,
        }
        for name, value in counters.items():
            yield CounterMetricFamily(name, COUNTERS[name], value=value)
        failed = CounterMetricFamily("crawler_pages_failed", COUNTERS["crawler_pages_failed"], labels=["reason"])
        for reason, n in sorted(jobs.failed.items()):
            failed.add_metric([reason], n)
        yield failed
        field_errors = CounterMetricFamily("crawler_field_errors", COUNTERS["crawler_field_errors"], labels=["field"])
        for name, n in sorted(jobs.field_errors.items()):
            field_errors.add_metric([name], n)
        yield field_errors
        retired = CounterMetricFamily(
            "crawler_sessions_retired", COUNTERS["crawler_sessions_retired"], labels=["reason"]
        )
        proxy_requests = CounterMetricFamily(
            "crawler_proxy_requests", COUNTERS["crawler_proxy_requests"], labels=["proxy"]
        )
        if s.sessions is not None:
            for reason, n in sorted(s.sessions.retired.items()):
                retired.add_metric([reason], n)
            for proxy, n in sorted(s.sessions.proxy_requests.items()):
                proxy_requests.add_metric([proxy], n)
        yield retired
        yield proxy_requests
        by_path = CounterMetricFamily(
            "crawler_pages_by_path", COUNTERS["crawler_pages_by_path"], labels=["label", "path"]
        )
        checks = CounterMetricFamily("crawler_fetch_checks", COUNTERS["crawler_fetch_checks"], labels=["label"])
        disagreements = CounterMetricFamily(
            "crawler_fetch_disagreements", COUNTERS["crawler_fetch_disagreements"], labels=["label"]
        )
        for label, paths in sorted(jobs.paths.items()):
            for path in ("browser", "http"):
                by_path.add_metric([label, path], paths.pages.get(path, 0))
            checks.add_metric([label], paths.checks)
            disagreements.add_metric([label], paths.disagreements)
        yield by_path
        yield checks
        yield disagreements
        changes = CounterMetricFamily(
            "crawler_concurrency_changes", COUNTERS["crawler_concurrency_changes"], labels=["reason"]
        )
        if s.autoscale is not None:
            for reason in sorted({*AUTOSCALE_REASONS, *s.autoscale.changes}):
                changes.add_metric([reason], s.autoscale.changes.get(reason, 0))
        yield changes

        age = self.heartbeat.age_s()
        gauges = {
            "crawler_pages_in_flight": jobs.in_flight,
            "crawler_tab_leases": pool.leases if pool else 0,
            "crawler_pool_tabs": pool.tabs if pool else 0,
            "crawler_pool_contexts": pool.contexts if pool else 0,
            "crawler_pool_concurrency": pool.concurrency if pool else s.concurrency,
            "crawler_concurrency": s.concurrency if s.autoscale is not None or not pool else pool.concurrency,
            "crawler_recycle_tab_every": pool.recycle_tab_every if pool else s.recycle_tab_every,
            "crawler_browser_page_targets": s.invariants.browser_page_targets,
            "crawler_browser_contexts": s.invariants.browser_contexts,
            "crawler_browser_pss_bytes": memory.browser_pss,
            "crawler_browser_processes": memory.browser_processes,
            "crawler_process_pss_bytes": memory.crawler_pss,
            "crawler_memory_budget_bytes": memory.budget_bytes,
            "crawler_memory_throttle_level": memory.throttle_level,
            "crawler_invariant_mismatches": s.invariants.mismatches,
            "crawler_heartbeat_age_seconds": age if age is not None else float("nan"),
        }
        for name, value in gauges.items():
            yield GaugeMetricFamily(name, GAUGES[name], value=value)
        urls = GaugeMetricFamily("crawler_urls", GAUGES["crawler_urls"], labels=["state"])
        for state in STATES:
            urls.add_metric([state], s.url_counts.get(state, 0))
        yield urls


def build_registry(statistics: Callable[[], CrawlStatistics], heartbeat: Heartbeat) -> CollectorRegistry:
    """A private registry (never the global one) holding one collector that reads
    ``statistics()`` and ``heartbeat`` at scrape time."""
    registry = CollectorRegistry(auto_describe=False)
    registry.register(CrawlerCollector(statistics, heartbeat))
    return registry


def make_handler(
    registry: CollectorRegistry, heartbeat: Heartbeat, status: Callable[[], bytes] | None = None, token: str = ""
):
    """The endpoint's requests: with ``token``, ``/`` and ``/metrics`` answer 401 to a
    request without ``Authorization: Bearer <token>`` (``/healthz`` says only ok or
    stale: a liveness probe needs no secret)."""
    expected = f"Bearer {token}" if token else ""

    async def handle(request: HttpRequest) -> Response:
        if request.method not in ("GET", "HEAD"):
            return Response(status=405, body=b"GET or HEAD\n", content_type="text/plain; charset=utf-8")
        if (
            expected
            and request.path != "/healthz"
            and not hmac.compare_digest(request.headers.get("authorization", ""), expected)
        ):
            return Response(
                status=401,
                body=b"a bearer token is needed\n",
                content_type="text/plain",
                headers=(("WWW-Authenticate", "Bearer"),),
            )
        if request.path == "/" and status is not None:
            return Response(body=status(), content_type="text/html; charset=utf-8")
        if request.path == "/metrics":
            return Response(body=generate_latest(registry), content_type=CONTENT_TYPE_LATEST)
        if request.path == "/healthz":
            age = heartbeat.age_s()
            if age is None:
                return Response(status=503, body=b"starting: no heartbeat yet\n", content_type="text/plain")
            text = f"heartbeat {age:.1f} s ago (stale after {heartbeat.stale_after_s:g} s)\n"
            if heartbeat.fresh():
                return Response(body=("ok: " + text).encode(), content_type="text/plain")
            return Response(status=503, body=("stale: " + text).encode(), content_type="text/plain")
        return Response(status=404, body=b"not found: try /, /metrics or /healthz\n", content_type="text/plain")

    return handle


async def serve_metrics(
    registry: CollectorRegistry,
    heartbeat: Heartbeat,
    *,
    host: str = "127.0.0.1",
    port: int = 0,
    status: Callable[[], bytes] | None = None,
    token: str = "",
    task_status: trio.TaskStatus[int] = trio.TASK_STATUS_IGNORED,
) -> None:
    """Serve ``/metrics``, ``/healthz`` and, given ``status`` (the HTML of the status
    page, see :mod:`crawler.observe.status`), ``/`` until cancelled; reports the bound port
    through ``task_status``.  Raises OSError (before reporting started) if the
    address cannot be bound; once serving, a client's error only ends its connection."""
    await serve_http(make_handler(registry, heartbeat, status, token), host=host, port=port, task_status=task_status)
