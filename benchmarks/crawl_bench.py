#!/usr/bin/env python
"""Crawl benchmark: the real engine against the bundled demo shop, in one process.

    .venv/bin/python benchmarks/crawl_bench.py [--pages N] [--concurrency C]
        [--modes recycle,norecycle] [--json OUT]

For each mode, one after the other in this process: start nothing new but a fresh
SqliteStore in a temporary folder and a :class:`crawler.run.engine.Crawler` whose config is
``config/products.toml`` pointed at the demo shop (served by this same trio process on
127.0.0.1, any free port), ids ``1-N``, ``pool.concurrency = C`` and no rate-limit
waits.  Modes:

- ``recycle``: the config's tab recycling (every 10 pages) and context rotation (every 50);
- ``norecycle``: both set to 10**9, so each worker's tab serves all its pages in one context;
- ``handler``: as ``recycle``, but the pages go through a Python handler that does what
  the config's ``[extract]`` route does (issue 9: the handler path costs no more than
  the TOML path); compare it with ``recycle`` in the same run.

Measured per run (see benchmarks/README.md for the method):

- pages/s: done pages / wall time of ``Crawler.run()`` (browser start and stop included),
  and the steady rate between the 10% and the 100% marks;
- CPU s/page of the crawler process (user+sys; it also serves the demo shop) and of the
  Chromium process tree (live processes plus what the tree's members reaped, so exited
  renderers count), both at the 100% mark, before the browser is closed;
- PSS of the Chromium tree and of this process at every 10% of the pages, sampled
  synchronously when the page that reaches the mark is recorded (so the 100% mark is
  taken before teardown), plus every ``--interval`` seconds for the peak;
- slope of browser PSS against pages over the 10%..100% marks (least squares), and the
  ratio PSS(100%) / PSS(10%);
- every item compared with ``crawler.demo.expected_item``.

Peers (Playwright, Crawlee, a raw CDP floor) are compared in benchmarks/compare.py, each
launched as its own users launch it, not with this engine's Chromium flags.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import logging
import math
import os
import subprocess
import sys
import tempfile
import time
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import attrs
import psutil
import trio

import cdp
import crawler
from crawler import config as config_mod
from crawler.browser.launch import open_configured_browser
from crawler.demo import DemoShop, expected_item
from crawler.httpserver import serve_http
from crawler.observe.pss import process_pss, self_pss
from crawler.run.engine import Crawler
from crawler.store.sqlite import SqliteStore

REPO = Path(__file__).resolve().parent.parent
DEMO_CONFIG = REPO / "config" / "products.toml"  # the flat product-page crawl
MiB = 2**20
HUGE = 10**9
MODES = ("recycle", "norecycle", "handler")
MARKS = 10  # a mark at every 10% of the pages
SHOWN_MISMATCHES = 5


# -- process measurements (blocking: call them from a thread) -----------------------------


def _cpu(proc: psutil.Process) -> tuple[float, float]:
    """(own user+sys, user+sys of the children it reaped) in seconds."""
    t = proc.cpu_times()
    return t.user + t.system, t.children_user + t.children_system


class TreeCpu:
    """CPU seconds used by a process tree since its root started, exited members included.

    A tree member that exits is reaped by its parent (Chromium's browser process reaps
    its renderers), and the kernel adds its times to the parent's "children" times.  So
    the sum over the live members of own + reaped-children times counts every process
    the tree ever had, up to the moment of the sample.  A member reaped while we read
    would be counted twice or not at all, so the root's reaped time is read before and
    after, and the read is repeated when it changed.  Different roots (a restarted
    browser) are added up.  ``lastseen`` is a cross-check: the sum over every pid ever
    seen of its last observed own time (it misses what ran after the last sample).
    """

    def __init__(self) -> None:
        self.by_root: dict[int, float] = {}
        self._seen: dict[tuple[int, float], float] = {}

    def sample(self, root_pid: int | None) -> None:
        if root_pid is None:
            return
        try:
            root = psutil.Process(root_pid)
            for _ in range(3):
                _own, reaped = _cpu(root)
                members = root.children(recursive=True)
                total = 0.0
                for p in members:
                    try:
                        own_p, reaped_p = _cpu(p)
                    except psutil.Error:
                        continue
                    total += own_p + reaped_p
                    self._seen[(p.pid, p.create_time())] = own_p
                own2, reaped2 = _cpu(root)
                if reaped2 == reaped:
                    break
            self._seen[(root.pid, root.create_time())] = own2
            total += own2 + reaped2
        except psutil.Error:
            return
        self.by_root[root_pid] = max(self.by_root.get(root_pid, 0.0), total)

    @property
    def total(self) -> float:
        return sum(self.by_root.values())

    @property
    def lastseen(self) -> float:
        return sum(self._seen.values())


def tree_memory(root_pid: int | None) -> tuple[int, int, int]:
    """(PSS, USS, processes) of ``root_pid`` and its descendants, in bytes.

    PSS is computed exactly as ``crawler.observe.pss.tree_pss`` does (RSS where PSS is
    unreadable), from the same read of /proc/PID/smaps_rollup that gives USS.  USS
    (memory private to the process) is shown beside PSS because PSS also depends on
    other processes: the pages of the Chromium binary are shared with every other
    Chromium on the machine, so the tree's PSS drops when someone else runs one."""
    if root_pid is None:
        return 0, 0, 0
    try:
        root = psutil.Process(root_pid)
        procs = [root, *root.children(recursive=True)]
    except psutil.Error:
        return 0, 0, 0
    pss = uss = 0
    for p in procs:
        try:
            info = p.memory_full_info()
        except psutil.AccessDenied:
            pss += process_pss(p)
            continue
        except psutil.Error:
            continue
        pss += getattr(info, "pss", None) or info.rss
        uss += info.uss
    return pss, uss, len(procs)


def _own_cpu() -> float:
    t = psutil.Process().cpu_times()
    return t.user + t.system


class OursProbe:
    """Measures our crawler: the browser tree (of the browser :meth:`open_browser`, the
    engine's ``open_browser`` seam, opened last) and this process."""

    def __init__(self, cfg: config_mod.Config):
        self.cfg = cfg
        self.browser: cdp.Browser | None = None
        self.browser_cpu = TreeCpu()

    @contextlib.asynccontextmanager
    async def open_browser(self) -> AsyncIterator[cdp.Browser]:
        async with open_configured_browser(self.cfg.browser) as browser:
            self.browser = browser
            yield browser

    def measure(self) -> dict[str, Any]:
        start = time.thread_time()
        browser = self.browser
        pid = browser.pid if browser is not None and browser.connected else None
        pss, uss, procs = tree_memory(pid)
        mine = self_pss()
        self.browser_cpu.sample(pid)
        return {
            "browser_pss": pss,
            "browser_uss": uss,
            "processes": procs,
            "client_pss": mine,
            "browser_cpu": self.browser_cpu.total,
            "client_cpu": _own_cpu(),
            "overhead_cpu": time.thread_time() - start,
        }


# -- recording ----------------------------------------------------------------------------


@attrs.define
class Recorder:
    """Samples of one run: marks (every 10% of the pages) and periodic ones."""

    pages: int
    probe_measure: Callable[[], dict[str, Any]]
    t0: float = 0.0
    marks: list[dict[str, Any]] = attrs.field(factory=list)
    samples: list[dict[str, Any]] = attrs.field(factory=list)
    overhead_cpu: float = 0.0
    final: trio.Event = attrs.field(factory=trio.Event)

    def mark_points(self) -> list[int]:
        return sorted({max(1, math.ceil(self.pages * k / MARKS)) for k in range(1, MARKS + 1)})

    async def measure(self, pages: int, *, mark: bool) -> dict[str, Any]:
        t = trio.current_time() - self.t0
        with trio.CancelScope(shield=True):  # called from inside the engine's shielded record step
            sample = await trio.to_thread.run_sync(self.probe_measure)
        self.overhead_cpu += sample["overhead_cpu"]
        sample.update(pages=pages, t=t, overhead_total=self.overhead_cpu)
        (self.marks if mark else self.samples).append(sample)
        if mark and pages >= self.pages:
            self.final.set()
        return sample

    async def run_periodic(self, pages_now: Callable[[], int], interval_s: float) -> None:
        """Sample every ``interval_s`` until the final mark is taken."""
        while not self.final.is_set():
            await self.measure(pages_now(), mark=False)
            with trio.move_on_after(interval_s):
                await self.final.wait()


class BenchStore(SqliteStore):
    """The engine's SqliteStore, plus a hook when a URL is finished (done or failed):
    the run's mark samples are taken there, before the engine goes on, so the last one
    happens while the browser still runs."""

    def __init__(self, path: str | Path, on_finished: Callable[[], Any]):
        super().__init__(path)
        self._on_finished = on_finished

    async def complete(self, job, items, links, status, elapsed_s, recrawl_after_s=0.0):  # type: ignore[override]
        ok = await super().complete(job, items, links, status, elapsed_s, recrawl_after_s)
        if ok:
            await self._on_finished()
        return ok

    async def fail(self, job, reason, status=None):  # type: ignore[override]
        await super().fail(job, reason, status)
        await self._on_finished()


# -- figures ------------------------------------------------------------------------------


def least_squares_slope(xs: list[float], ys: list[float]) -> float | None:
    if len(xs) < 2:
        return None
    mx, my = sum(xs) / len(xs), sum(ys) / len(ys)
    sxx = sum((x - mx) ** 2 for x in xs)
    if sxx == 0:
        return None
    return sum((x - mx) * (y - my) for x, y in zip(xs, ys, strict=True)) / sxx


def verify_items(items: dict[str, dict[str, Any]], base: str, pages: int) -> dict[str, Any]:
    """Compare the crawl's items with the shop's truth. Returns counts and a few diffs."""
    correct, missing, wrong = 0, 0, []
    for i in range(1, pages + 1):
        want = expected_item(base, i)
        got = items.get(want["url"])
        if got is None:
            missing += 1
        elif got == want:
            correct += 1
        else:
            keys = sorted(k for k in set(want) | set(got) if want.get(k, "<absent>") != got.get(k, "<absent>"))
            wrong.append(
                {"id": i, "diff": {k: {"want": want.get(k, "<absent>"), "got": got.get(k, "<absent>")} for k in keys}}
            )
    extra = len(set(items) - {expected_item(base, i)["url"] for i in range(1, pages + 1)})
    return {"correct": correct, "missing": missing, "mismatched": len(wrong), "extra": extra, "mismatches": wrong}


def _smoothed_ratio(samples: list[dict[str, Any]], pages: int) -> float | None:
    """Mean browser PSS over the samples of the last 10% of the pages, over the mean of
    those between 10% and 20%: less sensitive than two single samples to where each
    fell in the tab-recycling cycle."""

    def mean(low: float, high: float) -> float | None:
        values = [s["browser_pss"] for s in samples if low <= s["pages"] <= high and s["browser_pss"] > 0]
        return sum(values) / len(values) if values else None

    early, late = mean(0.1 * pages, 0.2 * pages), mean(0.9 * pages, pages)
    return late / early if early and late else None


def figures(
    rec: Recorder, *, wall_s: float, done: int, failed: int, check: dict[str, Any], cpu_start: dict[str, float]
):
    """The run's numbers from its samples."""
    marks = rec.marks
    final = marks[-1] if marks and marks[-1]["pages"] >= rec.pages else None
    first = marks[0] if marks else None
    pages = max(done, 1)
    out: dict[str, Any] = {
        "pages": rec.pages,
        "done": done,
        "failed": failed,
        "wall_s": wall_s,
        "pages_per_s": done / wall_s if wall_s > 0 else 0.0,
        "steady_pages_per_s": None,
        "final_mark_taken": final is not None,
        **{k: check[k] for k in ("correct", "missing", "mismatched", "extra")},
        "mismatches": check["mismatches"][:50],
    }
    if final is not None and first is not None and final["t"] > first["t"]:
        out["steady_pages_per_s"] = (final["pages"] - first["pages"]) / (final["t"] - first["t"])
    end = final or (rec.samples[-1] if rec.samples else None)
    if end is not None:
        browser_cpu = end["browser_cpu"] - cpu_start["browser_cpu"]
        # The probe's own CPU ran in threads of the measuring process: take it out.
        client_cpu = end["client_cpu"] - cpu_start["client_cpu"]
        out["cpu_browser_s"] = browser_cpu
        out["cpu_client_s"] = client_cpu - end["overhead_total"]
        out["probe_overhead_cpu_s"] = end["overhead_total"]
        out["cpu_browser_per_page"] = out["cpu_browser_s"] / pages
        out["cpu_client_per_page"] = out["cpu_client_s"] / pages
        out["cpu_total_per_page"] = out["cpu_browser_per_page"] + out["cpu_client_per_page"]
    everything = marks + rec.samples
    out["peak_browser_pss_mib"] = max((s["browser_pss"] for s in everything), default=0) / MiB
    out["peak_browser_uss_mib"] = max((s["browser_uss"] for s in everything), default=0) / MiB
    out["peak_client_pss_mib"] = max((s["client_pss"] for s in everything), default=0) / MiB
    out["marks"] = [
        {
            "pages": m["pages"],
            "t": round(m["t"], 3),
            "browser_pss_mib": round(m["browser_pss"] / MiB, 1),
            "browser_uss_mib": round(m["browser_uss"] / MiB, 1),
            "processes": m["processes"],
            "client_pss_mib": round(m["client_pss"] / MiB, 1),
        }
        for m in marks
    ]
    if first is not None and final is not None:
        out["pss_at_10pct_mib"] = first["browser_pss"] / MiB
        out["pss_final_mib"] = final["browser_pss"] / MiB
        out["pss_final_over_10pct"] = final["browser_pss"] / first["browser_pss"] if first["browser_pss"] else None
        out["pss_final_over_10pct_smoothed"] = _smoothed_ratio(everything, rec.pages)
        slope = least_squares_slope([m["pages"] for m in marks], [m["browser_pss"] / MiB for m in marks])
        out["pss_slope_mib_per_1000_pages"] = None if slope is None else slope * 1000
        out["uss_final_over_10pct"] = final["browser_uss"] / first["browser_uss"] if first["browser_uss"] else None
        slope = least_squares_slope([m["pages"] for m in marks], [m["browser_uss"] / MiB for m in marks])
        out["uss_slope_mib_per_1000_pages"] = None if slope is None else slope * 1000
    out["samples"] = [
        {
            "pages": s["pages"],
            "t": round(s["t"], 3),
            "browser_pss_mib": round(s["browser_pss"] / MiB, 1),
            "browser_uss_mib": round(s["browser_uss"] / MiB, 1),
        }
        for s in rec.samples
    ]
    return out


# -- one run of our crawler ---------------------------------------------------------------


def python_router(cfg: config_mod.Config) -> crawler.Router:
    """The ``handler`` mode's route: what the config's ``[extract]`` route does, written
    as a user's Python handler (the same fields, so the same page-side work)."""
    fields, wait_for = cfg.extract.fields, cfg.extract.wait_for
    captures = cfg.extract.capture
    router = crawler.Router()

    @router.route()
    async def product(page: crawler.Page) -> None:
        item = {"url": page.url, "status": page.status, **await page.extract(fields, wait_for=wait_for)}
        for rule in captures:
            bodies = await page.responses(rule.url_contains)
            item[rule.name] = bodies[0] if bodies else None
        await page.push(item)

    return router


def bench_config(base: str, pages: int, concurrency: int, mode: str, db: Path) -> config_mod.Config:
    cfg = config_mod.load(DEMO_CONFIG)
    pool = attrs.evolve(cfg.pool, concurrency=concurrency)
    if mode == "norecycle":
        pool = attrs.evolve(pool, recycle_tab_every=HUGE, rotate_context_every=HUGE)
    cfg = attrs.evolve(
        cfg,
        input=attrs.evolve(cfg.input, url_template=f"{base}/product/{{id}}", ids=f"1-{pages}", urls=(), url_file=""),
        pool=pool,
        rate_limit=attrs.evolve(cfg.rate_limit, wait_ms=(0, 0)),
        output=attrs.evolve(cfg.output, db=str(db)),
    )
    config_mod.validate(cfg)
    return cfg


async def run_ours(base: str, mode: str, args: argparse.Namespace) -> dict[str, Any]:
    pages, concurrency = args.pages, args.concurrency
    with tempfile.TemporaryDirectory(prefix="crawl-bench-") as tmp:
        cfg = bench_config(base, pages, concurrency, mode, Path(tmp) / "bench.db")
        finished = 0
        rec: Recorder

        async def on_finished() -> None:
            nonlocal finished
            finished += 1
            if finished in marks:
                await rec.measure(finished, mark=True)

        store = BenchStore(cfg.output.db, on_finished)
        try:
            probe = OursProbe(cfg)
            router = None
            if mode == "handler":  # the same pages through a Python handler instead of the TOML route
                router = python_router(cfg)
                cfg = attrs.evolve(cfg, extract=config_mod.ExtractSection(poll_interval_s=cfg.extract.poll_interval_s))
            crawler = Crawler(cfg, store, open_browser=probe.open_browser, router=router)
            rec = Recorder(pages=pages, probe_measure=probe.measure)
            marks = set(rec.mark_points())
            load_before = os.getloadavg()[0]
            cpu_start = {"client_cpu": _own_cpu(), "browser_cpu": 0.0}
            rec.t0 = trio.current_time()
            async with trio.open_nursery() as nursery:
                nursery.start_soon(rec.run_periodic, lambda: crawler.statistics().jobs.pages_finished, args.interval)
                reason = await crawler.run()
                wall = trio.current_time() - rec.t0
                nursery.cancel_scope.cancel()
            summary = await crawler.summary()
            items = {item["url"]: item for item in await store.items()}
        finally:
            store.close()
    check = verify_items(items, base, pages)
    jobs = crawler.statistics().jobs
    out = figures(rec, wall_s=wall, done=jobs.done, failed=sum(jobs.failed.values()), check=check, cpu_start=cpu_start)
    out.update(
        mode=mode,
        finish_reason=reason,
        recycle_tab_every=cfg.pool.recycle_tab_every,
        rotate_context_every=cfg.pool.rotate_context_every,
        load_avg_1m_before=load_before,
        load_avg_1m_after=os.getloadavg()[0],
        retries=summary["retries"],
        tabs_recycled=summary["tabs_recycled"],
        contexts_rotated=summary["contexts_rotated"],
        watchdog_expiries=summary["watchdog_expiries"],
        browser_restarts=summary["browser_restarts"],
        engine_peak_browser_pss_mib=summary["peak_browser_pss_mb"],
        cpu_browser_lastseen_s=probe.browser_cpu.lastseen,
    )
    return out


def chromium_version() -> str:
    """``chromium --version`` of the binary the engine uses (blocking)."""
    try:
        exe = cdp.find_executable()
        done = subprocess.run([exe, "--version"], capture_output=True, text=True, timeout=30)
        return done.stdout.strip() or exe
    except (cdp.BrowserError, OSError, subprocess.SubprocessError) as exc:
        return f"Chromium (version unknown: {exc})"


# -- the benchmark ------------------------------------------------------------------------


async def bench(args: argparse.Namespace, out=sys.stdout) -> dict[str, Any]:
    """Run the benchmark in the current trio run. Prints the report to ``out`` and
    returns every result (what ``--json`` writes)."""
    modes = args.modes
    results: dict[str, Any] = {
        "meta": {
            "pages": args.pages,
            "concurrency": args.concurrency,
            "modes": modes,
            "cpu_count": os.cpu_count(),
            "memory_gib": round(psutil.virtual_memory().total / 2**30, 1),
            "load_avg_1m_at_start": os.getloadavg()[0],
            "python": sys.version.split()[0],
            "started": time.strftime("%Y-%m-%d %H:%M:%S"),
        },
        "runs": {},
    }
    results["meta"]["chromium"] = await trio.to_thread.run_sync(chromium_version)
    shop = DemoShop(args.pages)
    async with trio.open_nursery() as nursery:
        port = await nursery.start(lambda task_status: serve_http(shop, port=0, task_status=task_status))
        base = f"http://127.0.0.1:{port}"
        meta = results["meta"]
        print(
            f"crawl_bench: N={args.pages} pages, C={args.concurrency}, modes {','.join(modes)}"
            f"; {meta['cpu_count']} cores, {meta['memory_gib']} GiB, "
            f"{meta['chromium']}, "
            f"load avg {meta['load_avg_1m_at_start']:.2f} at start; shop {base} (in this process)",
            file=out,
            flush=True,
        )
        for mode in modes:
            result = await run_ours(base, mode, args)
            results["runs"][mode] = result
            print_run(result, out)
        nursery.cancel_scope.cancel()
    results["comparison"] = print_comparison(results, out)
    return results


def _f(value: Any, fmt: str, none: str = "-") -> str:
    return none if value is None else format(value, fmt)


def print_run(r: dict[str, Any], out) -> None:
    mode = r["mode"]
    if mode == "recycle":
        title = f"recycle (tab every {r['recycle_tab_every']} pages, context every {r['rotate_context_every']})"
    elif mode == "norecycle":
        title = "norecycle (one tab per worker, one context, for the whole run)"
    else:
        title = (
            f"handler (a Python handler; tab every {r['recycle_tab_every']} pages, "
            f"context every {r['rotate_context_every']})"
        )
    lines = [
        f"\n== {title} ==",
        f"{'pages':>7} {'t s':>7} {'browser PSS MiB':>16} {'(USS)':>7} {'procs':>6} {'crawler PSS MiB':>16}",
    ]
    for m in r["marks"]:
        lines.append(
            f"{m['pages']:>7} {m['t']:>7.1f} {m['browser_pss_mib']:>16.1f} {m['browser_uss_mib']:>7.1f} "
            f"{m['processes']:>6} {m['client_pss_mib']:>16.1f}"
        )
    if not r["final_mark_taken"]:
        lines.append("(no 100% mark: not every page finished)")
    lines.append(
        f"pages/s {r['pages_per_s']:.2f} ({r['done']} done in {r['wall_s']:.1f} s, browser start/stop included; "
        f"10%->100%: {_f(r['steady_pages_per_s'], '.2f')}/s)"
    )
    lines.append(
        f"items: {r['correct']}/{r['pages']} correct, {r['mismatched']} wrong, {r['missing']} missing, "
        f"{r['failed']} failed, {r['retries']} retries"
    )
    for m in r["mismatches"][:SHOWN_MISMATCHES]:
        lines.append(f"  wrong item {m['id']}: {json.dumps(m['diff'], ensure_ascii=False)[:300]}")
    if r["mismatched"] > SHOWN_MISMATCHES:
        lines.append(f"  ... {r['mismatched'] - SHOWN_MISMATCHES} more wrong items (see --json)")
    if "cpu_total_per_page" in r:
        lines.append(
            f"CPU ms/page: crawler process (incl. demo shop) {r['cpu_client_per_page'] * 1000:.2f}, "
            f"Chromium tree {r['cpu_browser_per_page'] * 1000:.2f}, sum {r['cpu_total_per_page'] * 1000:.2f}"
        )
    lines.append(
        f"browser PSS MiB: peak {r['peak_browser_pss_mib']:.0f}, at 10% {_f(r.get('pss_at_10pct_mib'), '.0f')}, "
        f"final {_f(r.get('pss_final_mib'), '.0f')}, final/10% {_f(r.get('pss_final_over_10pct'), '.3f')} "
        f"(smoothed {_f(r.get('pss_final_over_10pct_smoothed'), '.3f')}), "
        f"slope 10%..100% {_f(r.get('pss_slope_mib_per_1000_pages'), '+.1f')} MiB/1000 pages"
    )
    lines.append(
        f"browser USS MiB: peak {r['peak_browser_uss_mib']:.0f}, final/10% {_f(r.get('uss_final_over_10pct'), '.3f')}, "
        f"slope 10%..100% {_f(r.get('uss_slope_mib_per_1000_pages'), '+.1f')} MiB/1000 pages"
    )
    lines.append(f"load avg 1m: {r['load_avg_1m_before']:.2f} before, {r['load_avg_1m_after']:.2f} after")
    print("\n".join(lines), file=out, flush=True)


ROWS = (
    ("pages/s", "pages_per_s", ".2f", True),
    ("pages/s 10%->100%", "steady_pages_per_s", ".2f", True),
    ("CPU ms/page crawler|client", "cpu_client_per_page", ".2f", False),
    ("CPU ms/page Chromium tree", "cpu_browser_per_page", ".2f", False),
    ("CPU ms/page sum", "cpu_total_per_page", ".2f", False),
    ("peak browser PSS MiB", "peak_browser_pss_mib", ".0f", False),
    ("final browser PSS MiB", "pss_final_mib", ".0f", False),
    ("final/10% browser PSS", "pss_final_over_10pct", ".3f", False),
    ("  same, smoothed", "pss_final_over_10pct_smoothed", ".3f", False),
    ("PSS slope MiB/1000 pages", "pss_slope_mib_per_1000_pages", "+.1f", False),
    ("peak browser USS MiB", "peak_browser_uss_mib", ".0f", False),
    ("final/10% browser USS", "uss_final_over_10pct", ".3f", False),
    ("USS slope MiB/1000 pages", "uss_slope_mib_per_1000_pages", "+.1f", False),
    ("peak crawler|client PSS MiB", "peak_client_pss_mib", ".0f", False),
    ("items correct", "correct", "d", False),
)
NO_RATIO = {"correct", "pss_slope_mib_per_1000_pages", "uss_slope_mib_per_1000_pages"}  # signed or counts
PER_PAGE_MS = {"cpu_client_per_page", "cpu_browser_per_page", "cpu_total_per_page"}


def print_comparison(results: dict[str, Any], out) -> dict[str, Any]:
    runs = results["runs"]
    if len(runs) < 2:
        return {}
    names = list(runs)
    pairs = [(n, names[0]) for n in names[1:]]
    meta = results["meta"]
    width = 28
    head = f"{'':<{width}}" + "".join(f"{n:>12}" for n in names) + "".join(f"{a + '/' + b:>22}" for a, b in pairs)
    lines = [f"\n== comparison: N={meta['pages']}, C={meta['concurrency']}, {meta['cpu_count']} cores ==", head]
    table: dict[str, Any] = {}
    for label, key, fmt, _higher_better in ROWS:
        values = [runs[n].get(key) for n in names]
        if all(v is None for v in values):
            continue
        scale = 1000 if key in PER_PAGE_MS else 1
        cells = "".join(f"{_f(None if v is None else v * scale, fmt):>12}" for v in values)
        ratios = {}
        for a, b in pairs:
            va, vb = runs[a].get(key), runs[b].get(key)
            meaningful = key not in NO_RATIO
            ratios[f"{a}/{b}"] = va / vb if meaningful and va is not None and vb not in (None, 0) else None
        cells += "".join(f"{_f(ratios[f'{a}/{b}'], '.2f'):>22}" for a, b in pairs)
        lines.append(f"{label:<{width}}" + cells)
        table[key] = {"values": dict(zip(names, values, strict=True)), "ratios": ratios}
    print("\n".join(lines), file=out, flush=True)
    return table


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="crawl_bench", description=__doc__.split("\n\n")[0])
    p.add_argument("--pages", type=int, default=1000, help="pages to crawl per run (default 1000)")
    p.add_argument("--concurrency", type=int, default=8, help="tabs working at once (default 8)")
    p.add_argument("--modes", default="recycle,norecycle", help="comma-separated: recycle, norecycle, handler")
    p.add_argument("--json", dest="json_out", help="write every result to this JSON file")
    p.add_argument("--interval", type=float, default=1.0, help="seconds between periodic PSS samples (default 1)")
    p.add_argument("-v", "--verbose", action="store_true", help="show the engine's log (INFO)")
    args = p.parse_args(argv)
    args.modes = [m.strip() for m in args.modes.split(",") if m.strip()]
    unknown = [m for m in args.modes if m not in MODES]
    if unknown or not args.modes:
        p.error(
            f"--modes: expected a comma-separated list of {', '.join(MODES)}, got {','.join(args.modes) or 'nothing'}"
        )
    if args.pages < MARKS:
        p.error(f"--pages: at least {MARKS}")
    if args.concurrency < 1:
        p.error("--concurrency: at least 1")
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    logging.basicConfig(
        level=logging.INFO if args.verbose else logging.WARNING,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        stream=sys.stderr,
    )
    results = trio.run(bench, args)
    if args.json_out:
        with open(args.json_out, "w", encoding="utf-8") as f:
            json.dump(results, f, indent=1, ensure_ascii=False)
        print(f"\nresults written to {args.json_out}")
    runs = results["runs"].values()
    all_good = all(r["correct"] == r["pages"] for r in runs)
    return 0 if all_good else 1


if __name__ == "__main__":
    sys.exit(main())
