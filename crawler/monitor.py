"""Seeing the crawl: process-tree memory, a tab's own figures, the memory throttle,
progress output, the end summary."""

from __future__ import annotations

import logging
import os
import sys
from collections.abc import Iterable
from typing import Any, TextIO

import attrs
import psutil

import cdp

log = logging.getLogger("crawler.monitor")

MiB = 2**20


def tree_pss(root_pid: int | None) -> tuple[int, int]:
    """PSS in bytes summed over ``root_pid`` and all its descendants, and how many
    processes that is.  RSS stands in where PSS is unavailable.  Blocking (reads
    /proc); call it from a thread.  (0, 0) if the process is gone."""
    if root_pid is None:
        return 0, 0
    try:
        root = psutil.Process(root_pid)
        procs = [root, *root.children(recursive=True)]
    except psutil.Error:
        return 0, 0
    return sum(process_pss(p) for p in procs), len(procs)


def process_pss(proc: psutil.Process) -> int:
    try:
        info = proc.memory_full_info()
        return getattr(info, "pss", None) or info.rss
    except psutil.AccessDenied:
        try:
            return proc.memory_info().rss
        except psutil.Error:
            return 0
    except psutil.Error:
        return 0


def self_pss() -> int:
    return process_pss(psutil.Process(os.getpid()))


# -- a tab's own figures ------------------------------------------------------------------


@attrs.frozen
class TabFigures:
    """What ``Performance.getMetrics`` reports for one tab (its renderer's view)."""

    js_heap_used: int  # bytes (JSHeapUsedSize)
    nodes: int  # DOM nodes alive, detached ones included (Nodes)
    listeners: int  # JSEventListeners
    documents: int  # Documents, frames and detached documents included


async def tab_figures(tab: cdp.Tab) -> TabFigures:
    """Ask the tab for its figures: ``Performance.enable`` then ``Performance.getMetrics``
    (the counters are read on demand, so enabling just before is enough).

    Two commands on the tab's session; no task.  Raises the tab's CDP error (crashed,
    closed, connection lost) or ClosedResourceError if the tab is closing; if cancelled,
    nothing is left behind but the enabled domain of a tab about to close.
    """
    await tab.send("Performance.enable")
    result = await tab.send("Performance.getMetrics")
    values = {m["name"]: m["value"] for m in result.get("metrics", ())}
    return TabFigures(
        js_heap_used=int(values.get("JSHeapUsedSize", 0)),
        nodes=int(values.get("Nodes", 0)),
        listeners=int(values.get("JSEventListeners", 0)),
        documents=int(values.get("Documents", 0)),
    )


@attrs.define
class TabFiguresWindow:
    """Tab figures gathered since the last memory line: their count and means."""

    figures: list[TabFigures] = attrs.field(factory=list)
    total: int = 0  # over the whole run

    def add(self, figures: TabFigures) -> None:
        self.figures.append(figures)
        self.total += 1

    def take_summary(self) -> str:
        """A phrase for the memory line; starts a new window."""
        figures, self.figures = self.figures, []
        if not figures:
            return "no tab recycled since the last line"
        n = len(figures)
        return (
            f"{n} tab(s) recycled since the last line, at recycle: JS heap "
            f"{sum(f.js_heap_used for f in figures) / n / MiB:.1f} MiB, "
            f"{sum(f.nodes for f in figures) / n:.0f} nodes, "
            f"{sum(f.listeners for f in figures) / n:.0f} listeners, "
            f"{sum(f.documents for f in figures) / n:.1f} documents (means)"
        )


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


def format_summary(summary: dict[str, Any]) -> str:
    failed = summary["failed_by_reason"]
    lines = [
        f"items done      {summary['done']}",
        f"failed          {summary['failed']}"
        + (f"  ({', '.join(f'{k}: {v}' for k, v in failed.items())})" if failed else ""),
        f"pending         {summary['pending']}",
        f"retries         {summary['retries']}",
        *(
            [f"input           {summary['input_position']} entries fed so far; the rest streams in on resume"]
            if summary.get("input_exhausted") is False
            else []
        ),
        *_field_errors_line(summary.get("field_errors")),
        f"pages/s         {summary['pages_per_s']:.2f}  ({summary['pages']} pages in {summary['elapsed_s']:.1f} s)",
        f"browser peak    {summary['peak_browser_pss_mb']:.0f} MiB PSS",
        f"tabs recycled   {summary['tabs_recycled']}  (discarded after failure: {summary['tabs_discarded']})",
        f"contexts rotated {summary['contexts_rotated']}",
        *_sessions_line(summary),
        f"watchdog expiries {summary['watchdog_expiries']}, browser restarts {summary['browser_restarts']}, "
        f"popups closed {summary['popups_closed']}",
    ]
    if "invariant_violations" in summary:  # absent from runs recorded before monitoring
        budget = summary["memory_budget_mb"]
        lines.append(
            f"settings        concurrency {summary['concurrency']}, recycle every {summary['recycle_tab_every']} "
            f"pages, memory budget {f'{budget} MiB' if budget else 'none'}"
        )
        lines.append(f"invariant violations {summary['invariant_violations']}")
    lines += _snapshot_lines(summary.get("snapshots"))
    return "\n".join(lines)


def _snapshot_lines(snapshots: dict[str, Any] | None) -> list[str]:
    """The summary's snapshot files, by reason kind (the latest few of each)."""
    lines = []
    for kind, entry in (snapshots or {}).items():
        files = ", ".join(f"{s['stem']}.{{{','.join(s['files'])}}}" for s in entry["latest"])
        earlier = entry["taken"] - len(entry["latest"])
        lines.append(
            f"snapshots       {kind} ({entry['taken']}): {files}" + (f" (+{earlier} earlier)" if earlier else "")
        )
    return lines


def _sessions_line(summary: dict[str, Any]) -> list[str]:
    """The summary's line of sessions retired (by reason) and requests per proxy, if any."""
    retired, proxies = summary.get("sessions_retired") or {}, summary.get("proxy_requests") or {}
    if not retired and not (set(proxies) - {"direct"}):
        return []
    by_reason = ", ".join(f"{k}: {v}" for k, v in sorted(retired.items()))
    through = ", ".join(f"{k}: {v}" for k, v in sorted(proxies.items()))
    return [
        f"sessions        {summary.get('sessions', 0)}, retired {sum(retired.values())}"
        + (f" ({by_reason})" if by_reason else "")
        + (f"; requests by proxy: {through}" if through else "")
    ]


def _field_errors_line(errors: dict[str, int] | None) -> list[str]:
    """The summary's line of field errors (js fields that threw in stored items), if any."""
    if not errors:
        return []
    return [f"field errors    {sum(errors.values())}  ({', '.join(f'{k}: {v}' for k, v in errors.items())})"]


class Progress:
    """A progress bar on a terminal; a log line every ``interval_s`` otherwise."""

    def __init__(self, stream: TextIO | None = None, *, interval_s: float = 5.0):
        self.stream = stream or sys.stderr
        self.tty = self.stream.isatty()
        self.interval_s = 0.5 if self.tty else interval_s

    def show(self, *, done: int, failed: int, total: int, rate: float, in_flight: int) -> None:
        finished = done + failed
        if self.tty:
            width = 30
            filled = int(width * finished / total) if total else width
            bar = "#" * filled + "-" * (width - filled)
            self.stream.write(
                f"\r[{bar}] {finished}/{total} done {done} failed {failed} {rate:.1f} pages/s in flight {in_flight} "
            )
            self.stream.flush()
        else:
            log.info(
                "progress: %d/%d finished (done %d, failed %d), %.2f pages/s, %d in flight",
                finished,
                total,
                done,
                failed,
                rate,
                in_flight,
            )

    def end(self) -> None:
        if self.tty:
            self.stream.write("\n")
            self.stream.flush()


def ids_preview(ids: Iterable[str], n: int = 5) -> str:
    ids = list(ids)
    return ", ".join(ids[:n]) + (f" (+{len(ids) - n} more)" if len(ids) > n else "")
