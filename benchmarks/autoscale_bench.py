#!/usr/bin/env python
"""``[pool] concurrency = "auto"`` against a sweep of fixed concurrencies on the demo shop,
in one run; then "auto" under a memory budget that the largest fixed concurrency goes over.

    .venv/bin/python benchmarks/autoscale_bench.py                  # the demo storefront, 60 products
    .venv/bin/python benchmarks/autoscale_bench.py --repeats 3 --json autoscale.json
    .venv/bin/python benchmarks/autoscale_bench.py --profile products --products 400
    .venv/bin/python benchmarks/autoscale_bench.py --quick          # tiny: what tests/test_benchmarks.py runs

The shop is :func:`crawler.demo.serve_demo` (the storefront and its review widget, another
site) in a process of its own (this script's ``serve`` command), so that the crawler's
event loop, whose lag the autoscaler reads, is not the shop's too.  Profiles:

- ``demo``: ``config/demo.toml`` as shipped (the routes of ``config/demo_handlers.py``,
  logged in: home, listings, product pages with their reviews behind clicks, sizes,
  what loads below the fold, questions, the wishlist; ``fetch = "auto"``).  Mostly
  waiting: a product page takes about a second, so more tabs help until the cores fill;
- ``products``: ``config/products.toml``, the flat product pages extracted by TOML rules:
  on two cores the CPU is full at 2 to 4 tabs.

Part 1, the sweep.  Contenders: ``python -m crawler --config site.toml`` with ``[pool]
concurrency = C`` for each C of ``--sweep`` (default 1, 2, 4, 8, 16), and ``"auto"``
(``min_concurrency = 1``, ``max_concurrency`` = the sweep's largest); a fresh database
each, one after the other, the order rotated every round (``--repeats``: medians).
Measured per run: pages/s (the crawl's own summary: pages finished over the run's time,
the browser's start included), CPU seconds per page of the crawler and what it reaped
(the browser and its renderers: ``wait4``'s rusage), the items found
(:func:`crawler.demo.compare` against the shop's truth: every kind complete, nothing
extra), the browser's peak PSS as the crawl's memory monitor saw it (every 2 s), and for
"auto" where it ended and its changes by reason.  Pass: every run complete, and "auto"
at :data:`MIN_RATIO` of the best fixed concurrency's pages/s or more (medians).

Part 2, the budget.  The largest fixed concurrency runs once more while this script
samples the PSS of the browser's tree (every process under the crawler; see
:class:`TreeMemory`: a reading of thirty processes takes 0.1 to 1 s, and slows the crawl,
so part 2's pages/s are not part 1's); the budget is :data:`BUDGET_SHARE` of its peak,
so that concurrency would go over it.  Then "auto" runs with ``[pool]
memory_budget_mb`` = that budget, sampled the same way.  Pass: its peak stays inside the
budget and every page is done.

``--quick`` (3 products, C = 2 and "auto" up to 2) only checks that every run is complete and
that the figures are there: its crawls are too short to judge a ratio or a budget.
Exit status 1 if a verdict fails.
"""

from __future__ import annotations

import argparse
import json
import os
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import tomllib
from pathlib import Path
from typing import Any

import psutil

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
sys.path.insert(0, str(REPO))

from compare import ServerProcess  # noqa: E402  (after the repository is on the path: it imports crawler)

from crawler import demo  # noqa: E402
from crawler.config import to_toml  # noqa: E402

PROFILES = {"demo": REPO / "config" / "demo.toml", "products": REPO / "config" / "products.toml"}
MIN_RATIO = 0.90  # "auto" must reach this share of the best fixed concurrency's pages/s
BUDGET_SHARE = 0.70  # the budget of part 2: this share of the largest fixed concurrency's peak PSS
RUN_TIMEOUT_S = 900
SAMPLE_GAP_S = 0.25  # part 2: the least pause between two readings of the browser tree's PSS
MiB = 2**20


# -- the shop, in a process of its own ---------------------------------------------------------


def serve(products: int) -> None:
    """This script's ``serve`` command: the demo shop on 127.0.0.1 until stdin closes;
    its address as one JSON line on stdout."""
    import trio

    async def main() -> None:
        async with trio.open_nursery() as nursery:
            site = await nursery.start(lambda task_status: demo.serve_demo(products, task_status=task_status))
            print(json.dumps({"base": site.url}), flush=True)
            await trio.to_thread.run_sync(sys.stdin.read)  # until the benchmark closes our stdin (or dies)
            nursery.cancel_scope.cancel()

    trio.run(main)


class Shop(ServerProcess):
    def __init__(self, products: int):
        argv = [sys.executable, str(Path(__file__).resolve()), "serve", "--products", str(products)]
        super().__init__(argv, "autoscale_bench: the demo shop")
        self.base = self.hello["base"]


# -- one crawl ----------------------------------------------------------------------------------


def site_file(args: argparse.Namespace, base: str, folder: Path, concurrency: int | str, budget_mb: int = 0) -> Path:
    """The profile's site file pointed at the shop, with this run's pool and database."""
    source = PROFILES[args.profile]
    data = tomllib.loads(source.read_text(encoding="utf-8"))
    if "handlers" in data.get("site", {}):
        data["site"]["handlers"] = str(source.parent / data["site"]["handlers"])
    inp = data["input"]
    if "urls" in inp:
        inp["urls"] = [u.replace(demo.CONFIG_BASE_URL, base) for u in inp["urls"]]
    if "url_template" in inp:
        inp["url_template"] = inp["url_template"].replace(demo.CONFIG_BASE_URL, base)
        inp["ids"] = f"1-{args.products}"
    pool = data.setdefault("pool", {})
    pool["concurrency"] = concurrency
    if concurrency == "auto":
        pool["max_concurrency"] = max(args.sweep)
    pool["memory_budget_mb"] = budget_mb
    data["output"] = {"db": str(folder / "crawl.db")}
    path = folder / "site.toml"
    path.write_text(to_toml(data), encoding="utf-8")
    return path


class TreeMemory:
    """Peak PSS of the processes under ``pid`` (the browser's tree; not the crawler
    itself, which the budget does not cover), read in a thread until :meth:`stop`, with
    a pause as long as the last reading (at least :data:`SAMPLE_GAP_S`) between two.

    Why the pause: reading PSS walks every page table of every process (the kernel's
    smaps_rollup) and takes their memory map locks; read back to back, it slowed the
    demo crawl at 16 tabs from 5.9 to 1.9 pages/s on two cores."""

    def __init__(self, pid: int):
        self.pid = pid
        self.peak = 0
        self.readings = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def start(self) -> TreeMemory:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        self._thread.join()

    def _run(self) -> None:
        while not self._stop.is_set():
            started = time.monotonic()
            try:
                procs = psutil.Process(self.pid).children(recursive=True)
            except psutil.Error:
                return
            pss = 0
            for p in procs:
                try:
                    info = p.memory_full_info()
                    pss += getattr(info, "pss", None) or info.rss
                except psutil.Error:
                    continue
            self.peak = max(self.peak, pss)
            self.readings += 1
            self._stop.wait(max(SAMPLE_GAP_S, time.monotonic() - started))


def run_crawl(args: argparse.Namespace, shop: Shop, name: str, concurrency: int | str, *, budget_mb: int = 0,
              sample_memory: bool = False) -> dict[str, Any]:  # fmt: skip
    """One contender's crawl to its end, in a process of its own; its figures."""
    with tempfile.TemporaryDirectory(prefix="autoscale-bench-") as tmp_name:
        folder = Path(tmp_name)
        site = site_file(args, shop.base, folder, concurrency, budget_mb)
        stderr_path = folder / "stderr.txt"
        with open(stderr_path, "wb") as stderr:
            env = {**os.environ, "PYTHONPATH": str(REPO)}
            proc = subprocess.Popen(
                [sys.executable, "-m", "crawler", "--config", str(site)], cwd=folder, stderr=stderr, env=env
            )
            sampler = TreeMemory(proc.pid).start() if sample_memory else None
            deadline = time.monotonic() + RUN_TIMEOUT_S
            while (waited := os.wait4(proc.pid, os.WNOHANG))[0] == 0:
                if time.monotonic() > deadline:
                    proc.kill()
                    waited = os.wait4(proc.pid, 0)
                    break
                time.sleep(0.05)
            _, status, usage = waited
            proc.returncode = os.waitstatus_to_exitcode(status)
            if sampler is not None:
                sampler.stop()
        summary = read_summary(folder / "crawl.db")
        items_path = folder / "items.jsonl"
        subprocess.run(
            [sys.executable, "-m", "crawler", "export", "--db", str(folder / "crawl.db"), "--format", "jsonl",
             "--out", str(items_path)],
            cwd=folder, env=env, capture_output=True, check=False,
        )  # fmt: skip
        items = (
            [json.loads(line) for line in items_path.read_text(encoding="utf-8").splitlines()]
            if items_path.exists()
            else []
        )
        found = demo.compare(items, args.products)
        if args.profile == "products":
            found = {"product": found["product"]}
        tail = stderr_path.read_text(encoding="utf-8", errors="replace").splitlines()[-15:]
    pages = summary.get("pages", 0)
    return {
        "contender": name,
        "concurrency": concurrency,
        "exit_code": proc.returncode,
        "done": summary.get("done", 0),
        "failed": summary.get("failed", 0),
        "pending": summary.get("pending", 0),
        "pages": pages,
        "pages_per_s": summary.get("pages_per_s", 0.0),
        "elapsed_s": summary.get("elapsed_s", 0.0),
        "cpu_s_per_page": (usage.ru_utime + usage.ru_stime) / pages if pages else None,
        "items": len(items),
        "found": found,
        "complete": all(c["found"] == c["expected"] and not c["extra"] for c in found.values())
        and summary.get("failed", 1) == 0
        and summary.get("pending", 1) == 0,
        "monitor_peak_pss_mib": summary.get("peak_browser_pss_mb", 0.0),
        "sampled_peak_pss_mib": sampler.peak / MiB if sampler is not None else None,
        "pss_readings": sampler.readings if sampler is not None else None,
        "budget_mb": budget_mb,
        "autoscale": summary.get("autoscale"),
        "stderr_tail": tail,
    }


def read_summary(db: Path) -> dict[str, Any]:
    """The last run's summary, as the crawl stored it ({} if there is none)."""
    if not db.exists():
        return {}
    with sqlite3.connect(f"file:{db}?mode=ro", uri=True) as conn:
        row = conn.execute("SELECT summary FROM runs ORDER BY id DESC LIMIT 1").fetchone()
    return json.loads(row[0]) if row and row[0] else {}


# -- the benchmark --------------------------------------------------------------------------------


def contenders(args: argparse.Namespace) -> list[tuple[str, int | str]]:
    return [(f"C={c}", c) for c in args.sweep] + [("auto", "auto")]


def bench(args: argparse.Namespace) -> dict[str, Any]:
    sweep: list[dict[str, Any]] = []
    with Shop(args.products) as shop:
        order = contenders(args)
        for round_ in range(args.repeats):
            shift = round_ % len(order)
            for name, concurrency in order[shift:] + order[:shift]:
                row = run_crawl(args, shop, name, concurrency)
                row["round"] = round_ + 1
                sweep.append(row)
                print(format_row(row), flush=True)
        largest = max(args.sweep)
        fixed = run_crawl(args, shop, f"C={largest}", largest, sample_memory=True)
        print(format_row(fixed, budget=True), flush=True)
        budget_mb = max(1, int(BUDGET_SHARE * (fixed["sampled_peak_pss_mib"] or fixed["monitor_peak_pss_mib"])))
        auto = run_crawl(args, shop, "auto", "auto", budget_mb=budget_mb, sample_memory=True)
        print(format_row(auto, budget=True), flush=True)
    return {"sweep": sweep, "budget": {"budget_mb": budget_mb, "fixed": fixed, "auto": auto}}


def medians(sweep: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    by: dict[str, list[dict[str, Any]]] = {}
    for row in sweep:
        by.setdefault(row["contender"], []).append(row)
    return {
        name: {
            "pages_per_s": statistics.median(r["pages_per_s"] for r in rows),
            "cpu_s_per_page": statistics.median(r["cpu_s_per_page"] or 0.0 for r in rows),
            "monitor_peak_pss_mib": statistics.median(r["monitor_peak_pss_mib"] for r in rows),
            "items": statistics.median(r["items"] for r in rows),
            "complete": all(r["complete"] for r in rows),
            "runs": len(rows),
        }
        for name, rows in by.items()
    }


def verdicts(args: argparse.Namespace, results: dict[str, Any]) -> dict[str, Any]:
    table = medians(results["sweep"])
    fixed = {name: m for name, m in table.items() if name != "auto"}
    best = max(fixed, key=lambda name: fixed[name]["pages_per_s"])
    ratio = table["auto"]["pages_per_s"] / fixed[best]["pages_per_s"] if fixed[best]["pages_per_s"] else 0.0
    budget = results["budget"]
    auto = budget["auto"]
    peak = auto["sampled_peak_pss_mib"] or 0.0
    out = {
        "best_fixed": best,
        "ratio": ratio,
        "complete": all(r["complete"] for r in results["sweep"]) and auto["complete"] and budget["fixed"]["complete"],
        "fixed_over_budget": (budget["fixed"]["sampled_peak_pss_mib"] or 0.0) > budget["budget_mb"],
        "inside_budget": peak <= budget["budget_mb"],
    }
    out["ok"] = out["complete"] and (args.quick or (ratio >= MIN_RATIO and out["inside_budget"]))
    return out


def format_row(r: dict[str, Any], *, budget: bool = False) -> str:
    found = ", ".join(f"{demo.ITEM_KINDS[k]} {c['found']}/{c['expected']}" for k, c in r["found"].items())
    auto = r["autoscale"]
    scaled = ""
    if auto:
        changes = ", ".join(f"{k} {n}" for k, n in auto["changes"].items()) or "none"
        scaled = f"  auto {auto['min']}-{auto['max']}: ended at {auto['final']} ({changes})"
    memory = f"peak PSS {r['monitor_peak_pss_mib']:.0f} MiB (its monitor)"
    if budget:
        memory += f", {r['sampled_peak_pss_mib']:.0f} MiB sampled ({r['pss_readings']} readings)"
        memory += f", budget {r['budget_mb']} MiB" if r["budget_mb"] else ", no budget"
    cpu = f"{r['cpu_s_per_page'] * 1000:.0f} CPU ms/page" if r["cpu_s_per_page"] else "? CPU ms/page"
    state = (
        "complete"
        if r["complete"]
        else f"INCOMPLETE (exit {r['exit_code']}, {r['failed']} failed, {r['pending']} pending)"
    )
    return (
        f"{r['contender']:<6} {r['pages_per_s']:6.2f} pages/s  {r['pages']} pages in {r['elapsed_s']:.1f} s  {cpu}  "
        f"{r['items']} items: {found}  {state}  {memory}{scaled}"
    )


def print_report(args: argparse.Namespace, results: dict[str, Any], verdict: dict[str, Any], out=sys.stdout) -> None:
    table = medians(results["sweep"])
    runs = max(m["runs"] for m in table.values())
    print(f"\n{'Medians over ' + str(runs) + ' rounds' if runs > 1 else 'One round'} ({args.profile}, "
          f"{args.products} products):\n", file=out)  # fmt: skip
    print("| concurrency | pages/s | CPU ms/page | items | peak PSS MiB (monitor) | complete |", file=out)
    print("|---|---|---|---|---|---|", file=out)
    for name, m in table.items():
        print(
            f"| {name} | {m['pages_per_s']:.2f} | {m['cpu_s_per_page'] * 1000:.0f} | {m['items']:g} | "
            f"{m['monitor_peak_pss_mib']:.0f} | {'yes' if m['complete'] else '**no**'} |",
            file=out,
        )
    print(
        f"\nauto / best fixed ({verdict['best_fixed']}): {verdict['ratio']:.2f}x pages/s (pass at {MIN_RATIO:.2f})",
        file=out,
    )
    b = results["budget"]
    print(
        f"budget {b['budget_mb']} MiB ({BUDGET_SHARE:.0%} of {b['fixed']['contender']}'s sampled peak "
        f"{b['fixed']['sampled_peak_pss_mib']:.0f} MiB): auto's sampled peak {b['auto']['sampled_peak_pss_mib']:.0f} MiB, "
        f"{'inside' if verdict['inside_budget'] else 'OVER'}; {b['auto']['pages']} pages, "
        f"{'complete' if b['auto']['complete'] else 'INCOMPLETE'}, {b['auto']['pages_per_s']:.2f} pages/s",
        file=out,
    )
    if args.quick:
        print("--quick: only completeness is judged", file=out)
    print(f"verdict: {'pass' if verdict['ok'] else 'FAIL'}", file=out)


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter
    )
    p.add_argument("--profile", choices=sorted(PROFILES), default="demo", help="the crawl (default demo)")
    p.add_argument("--products", type=int, help="the shop's products (default 60; --quick 3)")
    p.add_argument("--sweep", help="fixed concurrencies, comma-separated (default 1,2,4,8,16; --quick 2)")
    p.add_argument("--repeats", type=int, default=1, help="rounds of the sweep, each in a rotated order; medians")
    p.add_argument("--quick", action="store_true", help="a tiny run that only checks completeness")
    p.add_argument("--json", dest="json_out", help="write every run and the verdicts here")
    args = p.parse_args(argv)
    args.products = args.products or (3 if args.quick else 60)
    try:
        args.sweep = sorted({int(x) for x in (args.sweep or ("2" if args.quick else "1,2,4,8,16")).split(",") if x})
    except ValueError:
        p.error(f"--sweep: expected integers, got {args.sweep!r}")
    if args.products < 1 or args.repeats < 1 or not args.sweep or min(args.sweep) < 1:
        p.error("--products, --repeats and every --sweep concurrency must be at least 1")
    return args


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if argv[:1] == ["serve"]:
        serve(int(argv[argv.index("--products") + 1]))
        return 0
    args = parse_args(argv)
    print(
        f"autoscale_bench: {args.profile}, {args.products} products, sweep {args.sweep} and auto, {args.repeats} "
        f"round(s); {len(os.sched_getaffinity(0))} cores, load {os.getloadavg()[0]:.2f}",
        flush=True,
    )
    results = bench(args)
    verdict = verdicts(args, results)
    print_report(args, results, verdict)
    if args.json_out:
        Path(args.json_out).write_text(json.dumps({**results, "verdict": verdict}, indent=2))
    return 0 if verdict["ok"] else 1


if __name__ == "__main__":
    sys.exit(main())
