"""``python -m crawler report --db PATH | --config FILE [--run N] [--out PNG]``: a run's
figures, and a plot.

Reads a run of the crawl (:meth:`~crawler.store.Store.run_record`: its record, memory
and tab samples, and on SQLite the finish times of the pages it completed), prints its figures,
and writes a PNG with two panels: the browser tree's PSS (and the crawler's) against
pages done, and throughput over time.  Works on the database of a crawl still running
or killed (its run has no summary yet: the figures come from the samples alone).
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path
from typing import Any

import attrs
import trio

from crawler import config as config_mod
from crawler.config import Config
from crawler.errors import ConfigError
from crawler.observe.memory import THROTTLE_HIGH, THROTTLE_LOW
from crawler.observe.pss import MiB
from crawler.observe.summary import format_summary
from crawler.store import StoreSettings, open_store
from crawler.store.base import RunRecord

PLOT_SIZE_IN = (10.0, 7.0)  # inches; at PLOT_DPI: 1000 x 700 pixels
PLOT_DPI = 100
THROUGHPUT_BINS = 60  # at most this many bars over the run
PLOT_NEEDS_MATPLOTLIB = "the memory plot needs matplotlib: pip install 'trio-cdp-crawler[plot]'"


async def load_run(cfg: Config, run: int | None = None) -> RunRecord:
    """Run ``run`` (default: the last) of the crawl a config's store holds, SQLite or
    Redis.  ConfigError if there is no such run (or no crawler database)."""
    async with open_store(StoreSettings.of(cfg), exclusive=False) as store:  # a reader: allowed while the crawl runs
        record = await store.run_record(run)
    if record is None:
        where = cfg.output.db if cfg.store.backend != "redis" else cfg.source
        raise ConfigError(f"--run: {where!r} has no run {run}" if run else f"--db: {where!r} holds no run yet")
    if not record.page_times:
        record = attrs.evolve(record, page_times=estimated_page_times(record))
    return record


def estimated_page_times(run: RunRecord) -> list[float]:
    """When the run's pages were done, for a store that keeps no per-page times
    (Redis): spread evenly between the memory samples by their ``pages_done``, so the
    throughput is as fine as the sampling."""
    times: list[float] = []
    before_t, before_pages = run.started_at, 0
    for sample in run.samples:
        done = sample["pages_done"] - before_pages
        times += [before_t + (sample["t"] - before_t) * (i + 1) / done for i in range(max(0, done))]
        before_t, before_pages = sample["t"], max(before_pages, sample["pages_done"])
    return times


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


def throughput(run: RunRecord) -> tuple[list[float], list[float], float]:
    """Pages per second in equal bins over the run (about 5 pages per bin on average, at
    most THROUGHPUT_BINS bins): (bin starts in s since the start, rates, bin width)."""
    duration = max(1e-9, run.end - run.started_at)
    done = run.page_times
    bins = max(1, min(THROUGHPUT_BINS, len(done) // 5))
    width = duration / bins
    counts = [0] * bins
    for t in done:
        counts[min(bins - 1, max(0, int((t - run.started_at) / width)))] += 1
    return [i * width for i in range(bins)], [c / width for c in counts], width


def _pss_at(samples: list[dict[str, Any]], pages: float) -> int | None:
    """Browser PSS of the first sample at or after ``pages`` pages done."""
    for s in samples:
        if s["pages_done"] >= pages and s["browser_pss"]:
            return s["browser_pss"]
    return None


def figures(run: RunRecord) -> str:
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


def plot(run: RunRecord, out: str | Path, *, title: str = "") -> Path:
    """Write the two-panel PNG (Agg, no display needed) and return its path.  Raises
    ConfigError (one line saying how to install it) without matplotlib."""
    try:
        from matplotlib.backends.backend_agg import FigureCanvasAgg
        from matplotlib.figure import Figure
    except ImportError:
        raise ConfigError(PLOT_NEEDS_MATPLOTLIB) from None

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


def default_out(cfg: Config) -> Path:
    """Next to the database (SQLite), else ``<site>-report.png`` in the working folder."""
    if cfg.store.backend == "redis":
        return Path(f"{cfg.site.name}-report.png")
    path = Path(cfg.output.db)
    return path.with_name(f"{path.stem}-report.png")


def report_command(args: argparse.Namespace) -> int:
    """Print a run's figures (``--run N``, default the last) and write its plot.  0 on
    success; ConfigError (exit 2 in the CLI) if the store is missing, has no such run,
    or the output folder does not exist.  ``--db`` reads a SQLite crawl; ``--config``
    the store the config names (Redis included: there a run is one worker's)."""
    if args.config:
        cfg = config_mod.load(args.config)
        name = cfg.site.name if cfg.store.backend == "redis" else Path(cfg.output.db).name
    else:
        cfg = config_mod.Config(source="--db", output=config_mod.OutputSection(db=args.db))
        name = Path(args.db).name
    if cfg.store.backend != "redis" and not Path(cfg.output.db).is_file():
        raise ConfigError(f"--db: no such database {cfg.output.db!r}")
    out = Path(args.out) if args.out else default_out(cfg)
    if not out.parent.exists():
        raise ConfigError(f"--out: folder {str(out.parent)!r} does not exist")
    run = trio.run(load_run, cfg, getattr(args, "run", None))
    print(figures(run))
    done = len(run.page_times)
    title = f"{name}, run {run.run_id}: {done} pages in {run.end - run.started_at:.3g} s"
    try:
        plot(run, out, title=title)
    except ConfigError as exc:  # without matplotlib: the figures stand, the plot says how to get it
        print(f"plot            not written: {exc}")
    else:
        print(f"plot            {out}")
    sys.stdout.flush()
    return 0
