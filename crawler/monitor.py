"""Seeing the crawl: process-tree memory, progress output, the end summary."""

from __future__ import annotations

import logging
import os
import sys
from collections.abc import Iterable
from typing import Any, TextIO

import psutil

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


def format_summary(summary: dict[str, Any]) -> str:
    failed = summary["failed_by_reason"]
    lines = [
        f"items done      {summary['done']}",
        f"failed          {summary['failed']}"
        + (f"  ({', '.join(f'{k}: {v}' for k, v in failed.items())})" if failed else ""),
        f"pending         {summary['pending']}",
        f"retries         {summary['retries']}",
        f"pages/s         {summary['pages_per_s']:.2f}  ({summary['pages']} pages in {summary['elapsed_s']:.1f} s)",
        f"browser peak    {summary['peak_browser_pss_mb']:.0f} MiB PSS",
        f"tabs recycled   {summary['tabs_recycled']}  (discarded after failure: {summary['tabs_discarded']})",
        f"contexts rotated {summary['contexts_rotated']}",
        f"watchdog expiries {summary['watchdog_expiries']}, browser restarts {summary['browser_restarts']}, "
        f"popups closed {summary['popups_closed']}",
    ]
    return "\n".join(lines)


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
