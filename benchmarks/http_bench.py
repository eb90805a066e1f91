#!/usr/bin/env python
"""This crawler's HTTP path against the HTTP floor, Scrapy, Crawlee and its own
browser path: one run, the same static catalogue, the same concurrency.

    .venv/bin/python benchmarks/http_bench.py                      # 2,000 products, C=16, every contender
    .venv/bin/python benchmarks/http_bench.py --pages 200 --browser-pages 100 --repeats 1
    .venv/bin/python benchmarks/http_bench.py --contenders floor,ours-http --repeats 5 --json http.json

The catalogue (``benchmarks/catalogue.py``) is served from a process of its own (an
asyncio server of pre-rendered responses, 127.0.0.1, a free port; it exits with this
one): an index, ``--pages / 20`` listing pages, and ``--pages`` static product pages
(name, price, a few reviews as list items; ~4 KiB).  Each contender starts at the
index, follows the listings to the products, and stores one item per product page:
``--pages + --pages/20 + 1`` pages, ``--pages`` items.

The contenders (each in a process of its own, one after the other, ``--repeats``
times, interleaved):

- ``floor``: ``contenders/http_floor.py``: trio, one ``httpx.AsyncClient``, C tasks,
  selectolax; no store, no framework, none of our code.  The least a Python crawler
  of this site can do;
- ``ours-http``: ``contenders/ours_catalogue.py``: ``python -m crawler --config
  site.toml`` with ``[crawl] fetch = "http"`` and three ``[[route]]`` tables (index,
  listing, product), SQLite, the monitors on, every other key at its default;
- ``ours-browser``: the same site file with ``fetch = "browser"``, on the first
  ``--browser-pages`` products only (``/sub/N/``: it is about ten times slower):
  compare its pages/s and CPU per page, not its wall time;
- ``scrapy``: ``contenders/scrapy_catalogue.py``, a Spider in a ``CrawlerProcess``
  with Scrapy's defaults (AutoThrottle off, no delay), ``CONCURRENT_REQUESTS`` and
  ``CONCURRENT_REQUESTS_PER_DOMAIN`` = C, no robots.txt, ``LOG_LEVEL = INFO``, items
  by its feed export;
- ``crawlee``: ``contenders/crawlee_catalogue.py``, Crawlee for Python's
  ``ParselCrawler`` with its defaults (its HTTP client, file-system storage) and
  its concurrency fixed at C.

Scrapy and Crawlee run from ``benchmarks/peers-venv`` (``benchmarks/setup-peers``);
without it they are skipped with one line.

What is fair here: every contender fetches the same pages from the same server at
the same concurrency (C requests in flight at most), follows the same links by the
same selectors, reads the same fields from each product page, and keeps its items
the way its users do (ours in SQLite, Scrapy in a feed export, Crawlee in its
dataset; the floor only writes a JSON line).  No contender waits between requests or
reads robots.txt.  Every contender's items are checked against the catalogue's truth
(``catalogue.product``): a contender that found fewer items, or wrong ones, is
flagged and makes the exit status 1.  The server runs on the same two cores as the
contender (its CPU is reported apart, per page, and is not in the contender's).

Measured per run (from the contender's ``ready`` line, its imports done, to its
``result`` line, its crawl finished and its browser, if any, closed):

- **pages/s**: pages done / wall seconds;
- **CPU ms/page**: user + system CPU of the contender's whole process tree over the
  same span: its own account (``getrusage`` of itself and of the children it
  reaped) from ``ready`` to ``result``, plus every process its tree left orphaned
  (this process is a child subreaper and reaps them with ``wait4``: Chromium leaves
  its renderers to die orphaned).  Its exports after ``result`` and its
  interpreter's exit are not counted.  ``client`` is the contender's process alone;
- **peak RSS MiB**: the highest sum of RSS over the tree, sampled every
  :data:`MEMORY_INTERVAL_S` (RSS counts shared pages once per process: for a
  Chromium tree read the PSS column, in the JSON and the table);
- **items**: product items found, and how many of them are right;
- **server CPU ms/page**: the catalogue server's CPU over the run, per page; and the
  requests it answered (``/__stats``): a contender asking a page twice shows here.

Then the medians over the repeats, and ours-http's ratios to every other
contender's medians (pages/s, CPU per page, peak RSS).  Read the ratios: the
machine is shared.  The JSON (``--json``) has every run.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import catalogue
import httpx
import psutil
import trio
from compare import LineReader, ServerProcess, become_subreaper

HERE = Path(__file__).resolve().parent
CONTENDERS = HERE / "contenders"
PEERS_PYTHON = HERE / "peers-venv" / "bin" / "python"
# name -> (python, script, extra arguments, crawls the --browser-pages subset)
COMMANDS: dict[str, tuple[str, str, tuple[str, ...], bool]] = {
    "floor": (sys.executable, "http_floor.py", (), False),
    "ours-http": (sys.executable, "ours_catalogue.py", ("--fetch", "http"), False),
    "ours-browser": (sys.executable, "ours_catalogue.py", ("--fetch", "browser"), True),
    "scrapy": (str(PEERS_PYTHON), "scrapy_catalogue.py", (), False),
    "crawlee": (str(PEERS_PYTHON), "crawlee_catalogue.py", (), False),
}
OURS = "ours-http"  # the ratios are this contender's to every other one
DEFAULT_CONTENDERS = "floor,ours-http,ours-browser,scrapy,crawlee"
MEMORY_INTERVAL_S = 0.2
RUN_TIMEOUT_S = 1800
ORPHANS_GRACE_S = 10.0  # after a contender exits, its orphans get this long to exit before SIGKILL


# The catalogue server -----------------------------------------------------------------


class Server(ServerProcess):
    """``catalogue.py serve`` in a process of its own: it exits when this one closes
    its stdin (or dies)."""

    def __init__(self, products: int, subsets: list[int], reviews_every: int = 0):
        argv = [sys.executable, str(HERE / "catalogue.py"), "serve", "--products", str(products)]
        argv += [a for n in subsets for a in ("--subset", str(n))]
        argv += ["--reviews-every", str(reviews_every)]
        super().__init__(argv, "the catalogue server")
        self.port = self.hello["port"]
        self.base = f"http://{catalogue.HOST}:{self.port}"
        self.ps = psutil.Process(self.proc.pid)

    def cpu_s(self) -> float:
        t = self.ps.cpu_times()
        return t.user + t.system

    def stats(self, reset: bool = False) -> dict[str, Any]:
        got = httpx.get(self.base + "/__stats", timeout=10).json()
        if reset:
            httpx.get(self.base + "/__reset", timeout=10)
        return got


# Running one contender and measuring its tree ---------------------------------------------


class Orphans:
    """This process's children other than ``keep`` (the contender, which trio waits
    for; the server): the processes a contender's tree left orphaned, which this
    process, a child subreaper, adopted.  Each is reaped with ``os.wait4``, so the CPU
    it used is counted (:attr:`cpu_s`) however briefly it lived."""

    def __init__(self, keep: set[int]):
        self.keep = keep
        self.cpu_s = 0.0

    def reap(self, *, kill: bool = False) -> int:
        """Reap those that exited; with ``kill``, SIGKILL those still running first.
        Returns how many still run."""
        running = 0
        for child in psutil.Process().children():
            if child.pid in self.keep:
                continue
            try:
                if kill:
                    child.kill()
                pid, _, usage = os.wait4(child.pid, 0 if kill else os.WNOHANG)
            except (psutil.Error, ChildProcessError):
                continue
            if pid == 0:
                running += 1
            else:
                self.cpu_s += usage.ru_utime + usage.ru_stime
        return running


class MemorySampler:
    """Peak RSS and PSS summed over one process tree, sampled from a thread."""

    def __init__(self, pid: int):
        self.pid = pid
        self.peak_rss = 0
        self.peak_pss = 0
        self.peak_processes = 0

    def sample(self) -> None:
        try:
            root = psutil.Process(self.pid)
            procs = [root, *root.children(recursive=True)]
        except psutil.Error:
            return
        rss = pss = 0
        for p in procs:
            try:
                info = p.memory_full_info()
            except psutil.Error:
                continue
            rss += info.rss
            pss += getattr(info, "pss", info.rss)
        self.peak_rss, self.peak_pss = max(self.peak_rss, rss), max(self.peak_pss, pss)
        self.peak_processes = max(self.peak_processes, len(procs))

    async def run(self) -> None:
        while True:
            await trio.to_thread.run_sync(self.sample)
            await trio.sleep(MEMORY_INTERVAL_S)


async def run_process(argv: list[str], tmp: Path, label: str, keep: set[int]) -> dict[str, Any]:
    """Run one contender to its end: its protocol lines, wall time from ``ready`` to
    ``result``, its tree's CPU over the same span, its peak memory.  ``keep``: this
    process's other children (the server), never reaped here.

    The tree's CPU is the contender's own account at ``result`` (itself and every
    descendant it reaped, less its account at ``ready``) plus every orphan of its
    tree that this process reaped (Chromium does not wait for its renderers, GPU and
    utility processes).  What the contender does after ``result`` (ours exports its
    items) and its interpreter's exit are not counted."""
    stderr = open(tmp / f"stderr-{label}.txt", "wb")  # noqa: ASYNC230, SIM115 - closed below
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    proc = await trio.lowlevel.open_process(argv, stdout=-1, stderr=stderr, env=env, cwd=str(tmp))
    orphans = Orphans(keep | {proc.pid})
    sampler = MemorySampler(proc.pid)
    lines = LineReader(proc.stdout)

    async def reap_while_running() -> None:
        while True:
            await trio.to_thread.run_sync(orphans.reap)
            await trio.sleep(0.2)

    try:
        with trio.fail_after(RUN_TIMEOUT_S):
            async with trio.open_nursery() as reaper:
                reaper.start_soon(reap_while_running)
                ready = await lines.next_event("ready")
                t0 = time.monotonic()
                async with trio.open_nursery() as nursery:
                    nursery.start_soon(sampler.run)
                    result = await lines.next_event("result")
                    wall = time.monotonic() - t0
                    nursery.cancel_scope.cancel()
                await proc.wait()
                reaper.cancel_scope.cancel()
            orphans.keep = keep
            with trio.move_on_after(ORPHANS_GRACE_S):
                while await trio.to_thread.run_sync(orphans.reap):  # noqa: ASYNC110 - processes, not a trio event
                    await trio.sleep(0.1)
    finally:
        stderr.close()
        if proc.returncode is None:
            proc.kill()
            await proc.wait()
        orphans.keep = keep
        orphans.reap(kill=True)
    tree_cpu = result["cpu_s"] - ready["cpu_s"] + orphans.cpu_s
    done = result["done"]
    return {
        "done": done,
        "failed": result["failed"],
        "wall_s": wall,
        "pages_per_s": done / wall if wall else None,
        "cpu_s_per_page": tree_cpu / done if done else None,
        "orphans_cpu_s": orphans.cpu_s,
        # the contender's own process alone (no browser, no driver)
        "client_cpu_s_per_page": (result["own_cpu_s"] - ready["own_cpu_s"]) / done if done else None,
        "peak_rss_mib": sampler.peak_rss / 2**20,
        "peak_pss_mib": sampler.peak_pss / 2**20,
        "peak_processes": sampler.peak_processes,
        "exit_code": proc.returncode,
        "result": result,
    }


# Checking the items -----------------------------------------------------------------------


def read_items(path: Path) -> list[dict[str, Any]]:
    if not path.exists():
        return []
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]


def product_id(url: str) -> int | None:
    parts = urlsplit(url).path.strip("/").split("/")
    return int(parts[1]) if len(parts) == 2 and parts[0] == "product" and parts[1].isdigit() else None


def check_products(items: list[dict[str, Any]], products: int) -> dict[str, int]:
    """Product items (one per product page) against the truth: found (distinct
    product pages with an item), right, wrong, missing, and items beyond one a page."""
    by_id: dict[int, list[dict[str, Any]]] = {}
    for item in items:
        i = product_id(str(item.get("url", "")))
        if i is not None and item.get("_label", "product") == "product":
            by_id.setdefault(i, []).append(item)
    right = wrong = 0
    for i in range(1, products + 1):
        got = by_id.get(i)
        if got:
            want = catalogue.product(i)
            if all(got[0].get(k) == v for k, v in want.items()):
                right += 1
            else:
                wrong += 1
    return {
        "expected": products,
        "found": sum(1 for i in by_id if 1 <= i <= products),
        "right": right,
        "wrong": wrong,
        "missing": sum(1 for i in range(1, products + 1) if i not in by_id),
        "extra": sum(len(v) - 1 for v in by_id.values())
        + sum(len(v) for i, v in by_id.items() if not 1 <= i <= products),
    }


# The benchmark ------------------------------------------------------------------------------


async def run_contender(name: str, args: argparse.Namespace, server: Server, tmp: Path, round_: int) -> dict[str, Any]:
    python, script, extra, subset = COMMANDS[name]
    products = catalogue.subset_products(args.browser_pages, args.pages) if subset else args.pages
    out: dict[str, Any] = {"contender": name, "round": round_, "concurrency": args.concurrency, "products": products}
    out["pages"] = catalogue.expected_pages(products)
    if not os.path.exists(python):  # noqa: ASYNC240 - a stat, before anything runs
        return {**out, "skipped": "not installed: run benchmarks/setup-peers"}
    start = f"{server.base}/sub/{args.browser_pages}/" if subset else f"{server.base}/"
    items = tmp / f"items-{name}-{round_}.jsonl"
    argv = [python, str(CONTENDERS / script), "--start", start, "--items", str(items)]
    argv += ["--concurrency", str(args.concurrency), "--chromium", args.chromium, *extra]
    server.stats(reset=True)
    server_cpu = server.cpu_s()
    measured = await run_process(argv, tmp, f"{name}-{round_}", {server.proc.pid})
    server_cpu = server.cpu_s() - server_cpu
    out.update(measured)
    out["server_cpu_ms_per_page"] = 1000 * server_cpu / out["done"] if out["done"] else None
    out["server"] = server.stats()
    out["check"] = check_products(read_items(items), products)
    return out


async def bench(args: argparse.Namespace) -> list[dict[str, Any]]:
    results = []
    with (
        tempfile.TemporaryDirectory(prefix="http-bench-") as tmp_name,
        Server(args.pages, [args.browser_pages]) as server,
    ):
        tmp = Path(tmp_name)
        warm_up(server)
        for round_ in range(1, args.repeats + 1):
            for name in args.contenders:
                r = await run_contender(name, args, server, tmp, round_)
                results.append(r)
                print(format_row(r), flush=True)
                if r.get("exit_code") not in (None, 0) or (
                    "check" in r and r["check"]["right"] < r["check"]["expected"]
                ):
                    print(
                        f"  (its stderr: {tmp}/stderr-{name}-{round_}.txt, kept until the end of the run)", flush=True
                    )
                    show_tail(tmp / f"stderr-{name}-{round_}.txt")
    return results


def warm_up(server: Server) -> None:
    """One request, untimed: the server's first answer is not on any contender."""
    httpx.get(server.base + "/", timeout=30)
    server.stats(reset=True)


def show_tail(path: Path, lines: int = 15) -> None:
    try:
        tail = path.read_text(encoding="utf-8", errors="replace").splitlines()[-lines:]
    except OSError:
        return
    for line in tail:
        print(f"    {line}", flush=True)


def format_row(r: dict[str, Any]) -> str:
    head = f"C={r['concurrency']:<3} {r['contender']:<13}"
    if "skipped" in r:
        return f"{head} skipped: {r['skipped']}"
    c, s = r["check"], r["server"]
    return (
        f"{head} {r['pages_per_s']:8.1f} pages/s  {r['cpu_s_per_page'] * 1000:7.2f} CPU ms/page  "
        f"(client {r['client_cpu_s_per_page'] * 1000:.2f})  {r['peak_rss_mib']:6.0f} MiB peak RSS  "
        f"{r['done']}/{r['pages']} pages, {r['failed']} failed  items {c['found']}/{c['expected']} found, {c['right']} right"
        f"{', ' + str(c['extra']) + ' extra' if c['extra'] else ''}  "
        f"server {r['server_cpu_ms_per_page']:.2f} CPU ms/page, {s['requests']} requests"
        f"{', ' + str(s['paths_asked_again']) + ' paths asked again' if s['paths_asked_again'] else ''}"
    )


MEDIAN_KEYS = ("pages_per_s", "cpu_s_per_page", "client_cpu_s_per_page", "peak_rss_mib", "peak_pss_mib")


def medians(results: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    """One row per contender: the median of each figure over its runs; the worst
    item check of its runs."""
    groups: dict[str, list[dict[str, Any]]] = {}
    for r in results:
        if "skipped" not in r:
            groups.setdefault(r["contender"], []).append(r)
    rows = {}
    for name, rs in groups.items():
        row = {"contender": name, "runs": len(rs), "pages": rs[0]["pages"], "products": rs[0]["products"]}
        row.update({k: statistics.median(r[k] for r in rs) for k in MEDIAN_KEYS})
        row["server_cpu_ms_per_page"] = statistics.median(r["server_cpu_ms_per_page"] for r in rs)
        row["items_found"] = min(r["check"]["found"] for r in rs)
        row["items_right"] = min(r["check"]["right"] for r in rs)
        rows[name] = row
    return rows


def print_tables(results: list[dict[str, Any]], ours: str = OURS, out=sys.stdout) -> None:
    rows = medians(results)
    runs = max((r["runs"] for r in rows.values()), default=0)
    title = f"Medians over {runs} runs" if runs > 1 else "One run"
    print(f"\n{title}:\n", file=out)
    print("| contender | pages | pages/s | CPU ms/page | client CPU ms/page | peak RSS MiB | peak PSS MiB | items found / right / expected | server CPU ms/page |", file=out)  # fmt: skip
    print("|---|---|---|---|---|---|---|---|---|", file=out)
    for r in rows.values():
        flag = "" if r["items_right"] == r["products"] else " **short**"
        print(
            f"| {r['contender']} | {r['pages']} | {r['pages_per_s']:.1f} | {r['cpu_s_per_page'] * 1000:.2f} | "
            f"{r['client_cpu_s_per_page'] * 1000:.2f} | {r['peak_rss_mib']:.0f} | {r['peak_pss_mib']:.0f} | "
            f"{r['items_found']} / {r['items_right']} / {r['products']}{flag} | {r['server_cpu_ms_per_page']:.2f} |",
            file=out,
        )
    if ours not in rows:
        return
    o = rows[ours]
    print(f"\n{ours} / each other contender (medians): above 1 is more pages/s, CPU or memory than theirs\n", file=out)
    print("| ratio | pages/s | CPU per page | peak RSS |", file=out)
    print("|---|---|---|---|", file=out)
    for name, r in rows.items():
        if name != ours:
            print(
                f"| {ours} / {name} | {o['pages_per_s'] / r['pages_per_s']:.2f} | "
                f"{o['cpu_s_per_page'] / r['cpu_s_per_page']:.2f} | {o['peak_rss_mib'] / r['peak_rss_mib']:.2f} |",
                file=out,
            )


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter
    )
    p.add_argument("--pages", type=int, default=2000, help="product pages in the catalogue (default 2000)")
    p.add_argument(
        "--browser-pages",
        type=int,
        default=300,
        help="product pages ours-browser crawls (rounded up to whole listings of 20; default 300)",
    )
    p.add_argument("--concurrency", type=int, default=16, help="requests (or tabs) at once, every contender")
    p.add_argument("--contenders", default=DEFAULT_CONTENDERS, help=f"comma-separated: {', '.join(COMMANDS)}")
    p.add_argument("--repeats", type=int, default=3, help="runs of the contender list, interleaved; medians")
    p.add_argument("--chromium", default=os.environ.get("CHROME_PATH", "/usr/bin/chromium"))
    p.add_argument("--json", dest="json_out", help="write every run here")
    args = p.parse_args(argv)
    args.contenders = [x for x in args.contenders.split(",") if x]
    for name in args.contenders:
        if name not in COMMANDS:
            p.error(f"unknown contender {name!r}; choose from {', '.join(COMMANDS)}")
    if args.pages < 1 or args.browser_pages < 1 or args.concurrency < 1 or args.repeats < 1:
        p.error("--pages, --browser-pages, --concurrency and --repeats must be at least 1")
    args.browser_pages = min(args.browser_pages, args.pages)
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    print(
        f"{args.pages} products ({catalogue.expected_pages(args.pages)} pages), ours-browser on "
        f"{catalogue.subset_products(args.browser_pages, args.pages)}, concurrency {args.concurrency}, "
        f"{args.repeats} repeats; {os.cpu_count()} cores, load {os.getloadavg()[0]:.2f}",
        flush=True,
    )
    become_subreaper()
    results = trio.run(bench, args)
    print_tables(results)
    if args.json_out:
        Path(args.json_out).write_text(json.dumps(results, indent=2))
    ok = all("skipped" in r or r["check"]["right"] == r["check"]["expected"] for r in results)
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
