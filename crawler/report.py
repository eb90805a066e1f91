"""``python -m crawler report --db PATH [--out PNG]``: a run's figures, and a plot.

Reads the last run of the database (the ``runs`` row, its ``memory_samples`` and
``tab_samples``, and the finish times of the pages it completed), prints its figures,
and writes a PNG with two panels: the browser tree's PSS (and the crawler's) against
pages done, and throughput over time.  Works on the database of a crawl still running
or killed (its run has no summary yet: the figures come from the samples alone).
"""

from __future__ import annotations

import argparse
import json
import sqlite3
import sys
import time
from pathlib import Path
from typing import Any

import attrs

from .config import ConfigError
from .monitor import THROTTLE_HIGH, THROTTLE_LOW, MiB, format_summary

PLOT_SIZE_IN = (10.0, 7.0)  # inches; at PLOT_DPI: 1000 x 700 pixels
PLOT_DPI = 100
THROUGHPUT_BINS = 60  # at most this many bars over the run


@attrs.frozen
class RunData:
    run_id: int
    started_at: float
    finished_at: float | None
    finish_reason: str | None
    summary: dict[str, Any] | None
    samples: list[dict[str, Any]]  # memory_samples rows, in time order
    tabs: list[dict[str, Any]]  # tab_samples rows, in time order
    page_times: list[float]  # finished_at of the pages this run completed, sorted

    @property
    def end(self) -> float:
        candidates = [self.finished_at or 0.0, *(s["t"] for s in self.samples[-1:]), *self.page_times[-1:]]
        return max(self.started_at, *candidates)


def load_run(db_path: str | Path) -> RunData:
    """The last run of a crawl database.  ConfigError if there is no database or no run."""
    path = Path(db_path)
    if not path.is_file():
        raise ConfigError(f"--db: no such database {str(path)!r}")
    try:
        db = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
    except sqlite3.Error as exc:
        raise ConfigError(f"--db: cannot open {str(path)!r}: {exc}") from None
    db.row_factory = sqlite3.Row
    try:
        run = db.execute("SELECT * FROM runs ORDER BY id DESC LIMIT 1").fetchone()
        if run is None:
            raise ConfigError(f"--db: {str(path)!r} holds no run yet")
        samples = [dict(r) for r in db.execute("SELECT * FROM memory_samples WHERE run_id=? ORDER BY t", (run["id"],))]
        tabs = [dict(r) for r in db.execute("SELECT * FROM tab_samples WHERE run_id=? ORDER BY t", (run["id"],))]
        end = run["finished_at"] or time.time()
        page_times = [
            t
            for (t,) in db.execute(
                "SELECT finished_at FROM frontier WHERE state='done' AND finished_at BETWEEN ? AND ? ORDER BY 1",
                (run["started_at"], end),
            )
        ]
    except sqlite3.DatabaseError as exc:
        raise ConfigError(f"--db: {str(path)!r} is not a crawl database: {exc}") from None
    finally:
        db.close()
    return RunData(
        run_id=run["id"],
        started_at=run["started_at"],
        finished_at=run["finished_at"],
        finish_reason=run["finish_reason"],
        summary=json.loads(run["summary"]) if run["summary"] else None,
        samples=samples,
        tabs=tabs,
        page_times=page_times,
    )


def pss_slope_mb_per_1000(samples: list[dict[str, Any]], skip_fraction: float = 0.1) -> float | None:
    """Least-squares slope of browser PSS against pages done, in MiB per 1,000 pages,
    over the samples after the first ``skip_fraction`` of the pages (start-up).  None
    with fewer than two distinct page counts."""
    if not samples:
        return None
    last = max(s["pages_done"] for s in samples)
    points = [(s["pages_done"], s["browser_pss"]) for s in samples if s["pages_done"] >= skip_fraction * last]
    points = [(x, y) for x, y in points if y]
    if len({x for x, _ in points}) < 2:
        return None
    n = len(points)
    mx = sum(x for x, _ in points) / n
    my = sum(y for _, y in points) / n
    sxx = sum((x - mx) ** 2 for x, _ in points)
    sxy = sum((x - mx) * (y - my) for x, y in points)
    return sxy / sxx * 1000 / MiB


def throughput(run: RunData) -> tuple[list[float], list[float], float]:
    """Pages per second in equal bins over the run (about 5 pages per bin on average, at
    most THROUGHPUT_BINS bins): (bin starts in s since the start, rates, bin width)."""
    duration = max(1e-9, run.end - run.started_at)
    bins = max(1, min(THROUGHPUT_BINS, len(run.page_times) // 5))
    width = duration / bins
    counts = [0] * bins
    for t in run.page_times:
        counts[min(bins - 1, max(0, int((t - run.started_at) / width)))] += 1
    return [i * width for i in range(bins)], [c / width for c in counts], width


def _pss_at(samples: list[dict[str, Any]], pages: float) -> int | None:
    """Browser PSS of the first sample at or after ``pages`` pages done."""
    for s in samples:
        if s["pages_done"] >= pages and s["browser_pss"]:
            return s["browser_pss"]
    return None


def figures(run: RunData) -> str:
    """The run's figures as text: the end summary, then memory and tab figures."""
    lines = [
        f"run {run.run_id}: {run.finish_reason or 'not finished (running, or killed)'}, started "
        f"{time.strftime('%Y-%m-%d %H:%M:%S', time.localtime(run.started_at))}, {run.end - run.started_at:.1f} s"
    ]
    if run.summary:
        lines.append(format_summary(run.summary))
    else:
        lines.append(f"pages done      {len(run.page_times)} (no summary: the run did not finish)")
    samples = run.samples
    browser = [s["browser_pss"] for s in samples if s["browser_pss"]]
    if browser:
        pages = max(s["pages_done"] for s in samples)
        at_10 = _pss_at(samples, 0.1 * pages)
        slope = pss_slope_mb_per_1000(samples)
        lines += [
            f"memory samples  {len(samples)} over {samples[-1]['t'] - samples[0]['t']:.0f} s",
            f"browser PSS     first {browser[0] / MiB:.0f} MiB, at 10% of pages "
            f"{(at_10 or 0) / MiB:.0f} MiB, peak {max(browser) / MiB:.0f} MiB, last {browser[-1] / MiB:.0f} MiB",
            "PSS slope       "
            + (
                f"{slope:+.1f} MiB per 1000 pages after the first 10%" if slope is not None else "n/a (too few samples)"
            ),
            f"crawler PSS     peak {max(s['crawler_pss'] or 0 for s in samples) / MiB:.0f} MiB",
        ]
    else:
        lines.append("memory samples  none with a browser PSS")
    if run.tabs:
        n = len(run.tabs)

        def stat(key: str, scale: float = 1.0, fmt: str = ".0f") -> str:
            values = [(t[key] or 0) / scale for t in run.tabs]
            return f"mean {sum(values) / n:{fmt}}, max {max(values):{fmt}}"

        lines += [
            f"tabs at recycle {n}: JS heap MiB {stat('js_heap_used', MiB, '.1f')}; nodes {stat('nodes')}; "
            f"listeners {stat('listeners')}; documents {stat('documents', fmt='.1f')}"
        ]
    return "\n".join(lines)


def plot(run: RunData, out: str | Path, *, title: str = "") -> Path:
    """Write the two-panel PNG (Agg, no display needed) and return its path."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=PLOT_SIZE_IN, dpi=PLOT_DPI, layout="constrained")
    FigureCanvasAgg(fig)
    memory, rate = fig.subplots(2, 1)
    samples = run.samples
    marker = "o" if len(samples) <= 60 else None
    if samples:
        browser = [s for s in samples if s["browser_pss"]]  # 0: no browser running at that moment
        memory.plot(
            [s["pages_done"] for s in browser],
            [s["browser_pss"] / MiB for s in browser],
            marker=marker,
            label="browser tree PSS",
        )
        memory.plot(
            [s["pages_done"] for s in samples],
            [(s["crawler_pss"] or 0) / MiB for s in samples],
            marker=marker,
            label="crawler PSS",
        )
    else:
        memory.text(0.5, 0.5, "no memory samples", ha="center", va="center", transform=memory.transAxes)
    budget_mb = (run.summary or {}).get("memory_budget_mb") or 0
    if budget_mb:
        memory.axhline(budget_mb, color="red", linestyle="--", label=f"budget {budget_mb} MiB")
        memory.axhline(budget_mb * THROTTLE_HIGH, color="orange", linestyle=":", label="throttle above")
        memory.axhline(budget_mb * THROTTLE_LOW, color="green", linestyle=":", label="restore below")
    memory.set_xlabel("pages done")
    memory.set_ylabel("MiB")
    memory.set_ylim(0, memory.get_ylim()[1] * 1.25)  # headroom for the legend
    memory.set_title("memory against pages done")
    memory.grid(True, alpha=0.3)
    memory.legend(loc="upper left", ncols=2)

    starts, rates, width = throughput(run)
    rate.bar(starts, rates, width=width, align="edge", alpha=0.7, label=f"pages/s in {width:.3g} s bins")
    duration = max(1e-9, run.end - run.started_at)
    mean = len(run.page_times) / duration
    rate.axhline(mean, color="black", linestyle="--", label="mean over the run")
    rate.set_ylim(0, max([mean, *rates]) * 1.3 or 1.0)  # headroom for the legend
    rate.set_xlabel("seconds since the run started")
    rate.set_ylabel("pages/s")
    rate.set_title("throughput over time")
    rate.grid(True, alpha=0.3)
    rate.legend(loc="upper right")
    fig.suptitle(title or f"run {run.run_id}")
    out = Path(out)
    fig.savefig(out, format="png")
    return out


def default_out(db_path: str | Path) -> Path:
    path = Path(db_path)
    return path.with_name(f"{path.stem}-report.png")


def report_command(args: argparse.Namespace) -> int:
    """Print the last run's figures and write its plot.  0 on success; ConfigError
    (exit 2 in the CLI) if the database is missing, has no run, or the output folder
    does not exist."""
    run = load_run(args.db)
    out = Path(args.out) if args.out else default_out(args.db)
    if not out.parent.exists():
        raise ConfigError(f"--out: folder {str(out.parent)!r} does not exist")
    print(figures(run))
    done = len(run.page_times)
    title = f"{Path(args.db).name}, run {run.run_id}: {done} pages in {run.end - run.started_at:.3g} s"
    plot(run, out, title=title)
    print(f"plot            {out}")
    sys.stdout.flush()
    return 0
