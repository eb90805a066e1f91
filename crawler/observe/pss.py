"""Memory figures: PSS summed over a process tree (the browser's, or our own), and a
tab's own figures (``Performance.getMetrics``), gathered between memory lines."""

from __future__ import annotations

import os

import attrs
import psutil

import cdp

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
