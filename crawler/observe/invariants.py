"""The invariant monitor: what the crawler holds against what the browser and the store say.

Every ``[monitor] invariant_interval_s`` it compares:

- the pool's tabs and contexts with the browser's own lists
  (:meth:`crawler.browser.pool.TabPool.check_invariants`, which already excuses creations and
  closes in flight);
- the pool's lease counts with each other (acquired - released = held);
- the jobs in flight with the store's in-progress rows.

Confirm by a second reading: a mismatch counts only if a second reading
:data:`INVARIANT_CONFIRM_S` later shows it too, with the same ids, because a tab whose
close completes between two CDP reads is in transit, not leaked.  Each new mismatch is
one warning with the numbers and the ids; one still standing is not logged again; one
that cleared is logged at info.  It should never fire.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable

import trio

import cdp
from crawler.browser.pool import TabPool
from crawler.observe.stats import InvariantStatistics
from crawler.store.base import Job, Store
from crawler.urls import short_url

log = logging.getLogger(__name__)

# A mismatch between the pool and the browser (or the workers and the store) is
# reported only if a second reading this much later shows it too, with the same ids:
# a tab whose close completes between two CDP reads is in transit, not leaked.
INVARIANT_CONFIRM_S = 0.25

Reading = dict[str, tuple[set[str], str]]  # kind of mismatch -> (the ids involved, the numbers)


def compare(a: str, x: int, b: str, y: int) -> str:
    """``counter(5) > sessions(3)``: two counts that should agree, side by side."""
    return f"{a}({x}) {'>' if x > y else '<' if x < y else '=='} {b}({y})"


class InvariantMonitor:
    """Checks the invariants of the module docstring; owns the invariant figures.

    ``pool`` returns the pool in use (None between browsers); ``in_flight`` returns
    the jobs claimed and not yet recorded.
    """

    def __init__(
        self,
        store: Store,
        *,
        pool: Callable[[], TabPool | None],
        in_flight: Callable[[], Iterable[Job]],
        interval_s: float,
        confirm_s: float = INVARIANT_CONFIRM_S,
    ):
        self._store = store
        self._pool = pool
        self._in_flight = in_flight
        self._interval_s = interval_s
        self._confirm_s = confirm_s
        self._mismatches: dict[tuple[str, ...], str] = {}  # standing mismatches: key -> message
        self._violations = 0
        self._checks = 0
        self._browser_targets = (0, 0)  # (page targets, contexts) as the browser listed them at the last check

    def statistics(self) -> InvariantStatistics:
        return InvariantStatistics(
            checks=self._checks,
            violations=self._violations,
            mismatches=len(self._mismatches),
            browser_page_targets=self._browser_targets[0],
            browser_contexts=self._browser_targets[1],
        )

    async def run(self) -> None:
        """Check every ``interval_s`` until cancelled.  Starts no task; a store error
        propagates."""
        while True:
            await trio.sleep(self._interval_s)
            await self.check()

    async def check(self) -> list[str]:
        """One check: a reading, and if it shows a mismatch, a second one
        ``confirm_s`` later; logs what changed (see the module docstring) and returns
        the standing mismatches' messages.

        Cancellation: safe at any await (CDP and store reads, one sleep); the standing
        mismatches are only updated at the end, without blocking."""
        first = await self._reading()
        confirmed: dict[tuple[str, ...], str] = {}
        if first:
            await trio.sleep(self._confirm_s)
            second = await self._reading()
            for kind in first.keys() & second.keys():
                ids = sorted(first[kind][0] & second[kind][0])
                if ids:
                    confirmed[(kind, *ids)] = f"{second[kind][1]}; {kind}: {ids_preview(ids)}"
        for key, message in confirmed.items():
            if key not in self._mismatches:
                self._violations += 1
                log.warning("invariant: %s", message)
        for key, message in self._mismatches.items():
            if key not in confirmed:
                log.info("invariant holds again (was: %s)", message)
        self._mismatches = confirmed
        self._checks += 1
        return list(confirmed.values())

    async def _reading(self) -> Reading:
        """One reading: kind of mismatch -> (the ids involved, the numbers)."""
        problems: Reading = {}
        pool = self._pool()
        if pool is not None and pool.browser.connected:
            try:
                report = await pool.check_invariants()
            except (cdp.CDPError, trio.ClosedResourceError):
                report = None
            if report is not None:
                self._browser_targets = (report.browser_tabs, report.browser_contexts)
                numbers = (
                    f"{compare('browser tabs', report.browser_tabs, 'pool tabs', report.tabs)}, "
                    f"{compare('browser contexts', report.browser_contexts, 'pool contexts', report.contexts)}"
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
        in_store = await self._store.in_progress_urls()
        in_flight = {job.url: job.id for job in self._in_flight()}
        numbers = compare("in-flight jobs", len(in_flight), "store in-progress", len(in_store))
        if set(in_flight) - in_store:
            problems["only in flight"] = (
                {f"{short_url(u)} (job {in_flight[u]})" for u in set(in_flight) - in_store},
                numbers,
            )
        if in_store - set(in_flight):
            problems["only in store"] = ({short_url(u) for u in in_store - set(in_flight)}, numbers)
        return problems


def ids_preview(ids: Iterable[str], n: int = 5) -> str:
    """Up to ``n`` ids, and how many more there are."""
    ids = list(ids)
    return ", ".join(ids[:n]) + (f" (+{len(ids) - n} more)" if len(ids) > n else "")
