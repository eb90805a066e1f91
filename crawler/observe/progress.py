"""The progress output: a bar on a terminal, a log line every few seconds otherwise."""

from __future__ import annotations

import logging
import sys
from typing import TextIO

from crawler.observe.stats import AutoscaleStatistics

log = logging.getLogger(__name__)


def concurrency_text(concurrency: int, autoscale: AutoscaleStatistics | None) -> str:
    """How many jobs run at once, and with "auto" why it last changed and what holds it
    now: ``concurrency 6 (auto: scale_up, held by cpu)``."""
    if autoscale is None:
        return f"concurrency {concurrency}"
    why = autoscale.reason or "starting"
    held = f", held by {autoscale.held_by}" if autoscale.held_by else ""
    return f"concurrency {autoscale.concurrency} (auto: {why}{held})"


class Progress:
    """A progress bar on a terminal; a log line every ``interval_s`` otherwise."""

    def __init__(self, stream: TextIO | None = None, *, interval_s: float = 5.0):
        self.stream = stream or sys.stderr
        self.tty = self.stream.isatty()
        self.interval_s = 0.5 if self.tty else interval_s

    def show(self, *, done: int, failed: int, total: int, rate: float, in_flight: int, concurrency: str = "") -> None:
        """One progress line (or bar); ``concurrency``: :func:`concurrency_text`'s phrase."""
        finished = done + failed
        tail = f", {concurrency}" if concurrency else ""
        if self.tty:
            width = 30
            filled = int(width * finished / total) if total else width
            bar = "#" * filled + "-" * (width - filled)
            self._write(
                f"\r[{bar}] {finished}/{total} done {done} failed {failed} {rate:.1f} pages/s in flight {in_flight}"
                f"{tail} "
            )
        else:
            log.info(
                "progress: %d/%d finished (done %d, failed %d), %.2f pages/s, %d in flight%s",
                finished,
                total,
                done,
                failed,
                rate,
                in_flight,
                tail,
            )

    def end(self) -> None:
        if self.tty:
            self._write("\n")

    def _write(self, text: str) -> None:
        """A closed terminal stops the bar, never the crawl."""
        if not self.tty:
            return
        try:
            self.stream.write(text)
            self.stream.flush()
        except (OSError, ValueError):
            self.tty = False
