#!/usr/bin/env python
"""One command, one run, the same pages for every contender: this crawler, the raw
CDP floor, Playwright as its users launch it, and Crawlee for Python's PlaywrightCrawler.

    .venv/bin/python benchmarks/compare.py                    # 300 pages, C=8, the three profiles
    .venv/bin/python benchmarks/compare.py --pages 3000 --profiles light --contenders raw,ours

This process serves the demo shop (``crawler.demo``, 127.0.0.1, a free port), wrapped
by ``bench_shop.BenchShop`` (a paint beacon on every page, and the render pages), and
runs each contender in a process of its own, one after the other, on the same URL
list (``/product/{i}`` for the light profile, ``/heavy/product/{i}`` for the heavy
one, ``/render/product/{i}`` for the render one: lazy images down a tall page and
reviews loaded by an IntersectionObserver, which each contender scrolls its own way).
It measures each contender's whole process tree (the contender, any driver it
starts, Chromium and all of Chromium's children):

- **pages/s**: done pages / seconds from the contender's ``ready`` line (its imports
  done) to its result line (its browser closed and reaped);
- **CPU s/page**: user + system seconds of the whole tree over the same span, / done
  pages.  This process is a child subreaper, so every process of a contender's tree
  ends reaped either by its parent or, orphaned, by this process: the growth of this
  process's ``RUSAGE_CHILDREN`` over the contender's run is the CPU of every process
  the tree ever had (less what the contender had used before its ``ready`` line).  A
  contender's own ``RUSAGE_CHILDREN`` would miss the children its browser left to
  die orphaned: Chromium does not wait for its renderers, GPU and utility processes;
- **peak PSS**: the highest sum of PSS over the tree, sampled every 0.25 s;
- **renderers**: distinct renderer processes (``--type=renderer``) seen in the tree,
  sampled every 50 ms (a lower bound: a renderer living under 50 ms can be missed);
- **painted**: the run's pages whose paint beacon came (a ``requestAnimationFrame``
  callback, which runs only when the page renders, requests ``/beacon/paint``).  A
  contender that paints fewer pages than the floor did less work than the floor: its
  row is flagged;
- render profile: **reviews** found in the items over the reviews the pages hold,
  **images** the pages' lazy images requested over their number.

``ours-before`` is this crawler from another checkout (``--before DIR``, e.g. a git
worktree of an older commit), to show what a change bought in the same run.  The JSON
also has CPU by process type (as last sampled: a lower bound).

Before a profile's runs, its first page and static assets are fetched once, untimed
(the shop builds what it caches on first use).  ``--rounds N`` runs the contender list
N times, interleaved, and adds a table of each contender's medians; every row's ratios
are to the median floor of its profile and C.

Every contender's items are checked against the shop's truth
(``crawler.demo.expected_item``).  Read the ratios: the machine is shared.
Playwright and Crawlee run from their own virtual environment, made by
``benchmarks/setup-peers``; without it they are skipped with one line.
"""

from __future__ import annotations

import argparse
import ctypes
import json
import os
import re
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any
from urllib.parse import urljoin

import httpx
import psutil
import trio
from bench_shop import RENDER_IMAGES, RENDER_REVIEWS, BenchShop, RunCounts, render_reviews

from crawler.demo import expected_item
from crawler.httpserver import serve_http
from crawler.observe.pss import tree_pss

HERE = Path(__file__).resolve().parent
CONTENDERS = HERE / "contenders"
PEERS_PYTHON = HERE / "peers-venv" / "bin" / "python"
PROFILES = {"light": "/product/{i}", "heavy": "/heavy/product/{i}", "render": "/render/product/{i}"}
FLOOR = "raw"  # every row's ratios and its painted count are read against this contender's medians
# name -> (python, script, extra arguments)
COMMANDS = {
    "raw": (sys.executable, "raw_cdp.py", ()),
    "raw-hidden": (sys.executable, "raw_cdp.py", ("--hidden",)),  # the floor without focus emulation: unpainted
    "raw+context": (sys.executable, "raw_cdp.py", ("--context",)),
    "ours": (sys.executable, "ours.py", ()),
    "ours+block": (sys.executable, "ours.py", ("--block", "image,media,font")),
    "ours-before": (sys.executable, "ours.py", ()),  # with PYTHONPATH=--before (an older checkout)
    "playwright": (str(PEERS_PYTHON), "playwright_pages.py", ()),
    "crawlee": (str(PEERS_PYTHON), "crawlee_playwright.py", ()),
}
PSS_INTERVAL_S = 0.25
RENDERER_INTERVAL_S = 0.05
RUN_TIMEOUT_S = 1800


ORPHANS_GRACE_S = 10.0  # after a contender exits, its orphans get this long to exit before SIGKILL


def become_subreaper() -> None:
    """Orphans of the contenders' trees become this process's children (Linux)."""
    PR_SET_CHILD_SUBREAPER = 36
    if ctypes.CDLL(None, use_errno=True).prctl(PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0) != 0:
        raise SystemExit("compare.py: cannot become a child subreaper (Linux only): CPU could not be counted")


class ServerProcess:
    """A server script in a process of its own (``argv``): it prints one JSON line once
    it listens (``hello``), and exits when this process closes its stdin (or dies).  A
    context manager; ``close`` waits for it, killing it after 10 s."""

    def __init__(self, argv: list[str], what: str):
        self.proc = subprocess.Popen(argv, stdin=subprocess.PIPE, stdout=subprocess.PIPE)
        line = self.proc.stdout.readline()
        if not line:
            raise SystemExit(f"{what} did not start")
        self.hello: dict[str, Any] = json.loads(line)

    def close(self) -> None:
        if self.proc.poll() is None:
            self.proc.stdin.close()
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()

    def __enter__(self):
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def children_cpu_s() -> float:
    """User + system CPU of every process this one has reaped (and of what they reaped)."""
    r = resource.getrusage(resource.RUSAGE_CHILDREN)
    return r.ru_utime + r.ru_stime


def reap_orphans(contender_pid: int | None, *, kill: bool = False) -> int:
    """Reap the adopted orphans that exited (never the contender: trio waits for it);
    with ``kill``, SIGKILL those still running first.  Returns how many still run."""
    running = 0
    for child in psutil.Process().children():
        if child.pid == contender_pid:
            continue
        try:
            if kill:
                child.kill()
            if child.status() == psutil.STATUS_ZOMBIE or kill:
                os.waitpid(child.pid, 0 if kill else os.WNOHANG)
            else:
                running += 1
        except (psutil.Error, ChildProcessError):
            continue
    return running


async def reap_while_running(contender_pid: int) -> None:
    while True:
        await trio.to_thread.run_sync(reap_orphans, contender_pid)
        await trio.sleep(0.2)


class TreeSampler:
    """Peak PSS and the renderer processes of one process tree, sampled from a thread."""

    def __init__(self, pid: int):
        self.pid = pid
        self.peak_pss = 0
        self.renderers: set[tuple[int, float]] = set()
        self.seen_types: set[str] = set()
        self.cpu_seen: dict[tuple[int, float], tuple[str, float]] = {}  # (pid, start) -> (type, CPU s last seen)

    def sample_renderers(self) -> None:
        try:
            procs = psutil.Process(self.pid).children(recursive=True)
        except psutil.Error:
            return
        for p in procs:
            try:
                argv = p.cmdline()
                kind = next((a[7:] for a in argv if a.startswith("--type=")), None)
                if kind:
                    self.seen_types.add(kind)
                times = p.cpu_times()
                self.cpu_seen[(p.pid, p.create_time())] = (
                    kind or ("browser" if "chrom" in p.name() else p.name()),
                    times.user + times.system,
                )
                if kind == "renderer":
                    self.renderers.add((p.pid, p.create_time()))
            except psutil.Error:
                continue

    def cpu_by_type(self) -> dict[str, float]:
        """CPU seconds by process type, as last sampled (a lower bound: a process's last
        50 ms are missed; reaped children are not counted twice)."""
        out: dict[str, float] = {}
        for kind, cpu in self.cpu_seen.values():
            out[kind] = out.get(kind, 0.0) + cpu
        return out

    def sample_pss(self) -> None:
        self.peak_pss = max(self.peak_pss, tree_pss(self.pid)[0])

    async def run(self) -> None:
        next_pss = 0.0
        while True:
            await trio.to_thread.run_sync(self.sample_renderers)
            if trio.current_time() >= next_pss:
                await trio.to_thread.run_sync(self.sample_pss)
                next_pss = trio.current_time() + PSS_INTERVAL_S
            await trio.sleep(RENDERER_INTERVAL_S)


async def run_contender(
    name: str, profile: str, concurrency: int, shop: BenchShop, base: str, args: argparse.Namespace, tmp: Path
) -> dict[str, Any]:
    python, script, extra = COMMANDS[name]
    if not os.path.exists(python):  # noqa: ASYNC240 - a stat, before anything runs
        return {**out_of(name, profile, concurrency), "skipped": "not installed: run benchmarks/setup-peers"}
    urls = tmp / f"urls-{profile}.txt"
    items = tmp / f"items-{name}-{profile}.jsonl"
    argv = [
        python, str(CONTENDERS / script), "--urls", str(urls), "--items", str(items),
        "--concurrency", str(concurrency), "--recycle-tab-every", str(args.recycle_tab_every),
        "--rotate-context-every", str(args.rotate_context_every), "--chromium", args.chromium,
        "--profile", profile, *extra,
    ]  # fmt: skip
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    if name == "ours-before":
        if not args.before:
            return {**out_of(name, profile, concurrency), "skipped": "needs --before DIR (a checkout to compare with)"}
        env["PYTHONPATH"] = args.before
    out: dict[str, Any] = {"contender": name, "profile": profile, "concurrency": concurrency, "pages": args.pages}
    stderr = open(tmp / f"stderr-{name}-{profile}.txt", "wb")  # noqa: ASYNC230, SIM115 - closed below
    cpu_before = children_cpu_s()
    seen = shop.begin_run()
    proc = await trio.lowlevel.open_process(argv, stdout=-1, stderr=stderr, env=env, cwd=str(tmp))
    sampler = TreeSampler(proc.pid)
    lines = LineReader(proc.stdout)
    try:
        with trio.fail_after(RUN_TIMEOUT_S):
            async with trio.open_nursery() as reaper:
                reaper.start_soon(reap_while_running, proc.pid)
                ready = await lines.next_event("ready")
                t0 = time.monotonic()
                async with trio.open_nursery() as nursery:
                    nursery.start_soon(sampler.run)
                    result = await lines.next_event("result")
                    wall = time.monotonic() - t0
                    nursery.cancel_scope.cancel()
                await proc.wait()
                reaper.cancel_scope.cancel()
            with trio.move_on_after(ORPHANS_GRACE_S):
                while await trio.to_thread.run_sync(reap_orphans, None):  # noqa: ASYNC110 - processes, not a trio event
                    await trio.sleep(0.1)
    finally:
        stderr.close()
        if proc.returncode is None:
            proc.kill()
            await proc.wait()
        reap_orphans(None, kill=True)
    tree_cpu = children_cpu_s() - cpu_before - ready["cpu_s"]
    done = result["done"]
    out.update(
        done=done,
        failed=result["failed"],
        wall_s=wall,
        pages_per_s=done / wall if wall else None,
        cpu_s_per_page=tree_cpu / done if done else None,
        # what the contender's own getrusage saw: without the orphans its browser left
        cpu_s_per_page_self_reported=(result["cpu_s"] - ready["cpu_s"]) / done if done else None,
        # the contender's own process (for Playwright and Crawlee: without their node driver)
        client_cpu_s_per_page=(result["own_cpu_s"] - ready["own_cpu_s"]) / done if done else None,
        peak_pss_mib=sampler.peak_pss / 2**20,
        renderers=len(sampler.renderers),
        process_types=sorted(sampler.seen_types),
        cpu_s_per_page_by_type={k: v / done for k, v in sampler.cpu_by_type().items()} if done else {},
        check=check_items(items, base, profile, args.pages),
        painted=painted(seen, profile, args.pages),
        beacons=seen.beacons,
    )
    if profile == "render":
        out["render"] = check_render(items, seen, base, args.pages)
    return out


def out_of(name: str, profile: str, concurrency: int) -> dict[str, Any]:
    return {"contender": name, "profile": profile, "concurrency": concurrency}


class LineReader:
    def __init__(self, stream: trio.abc.ReceiveStream):
        self.stream, self.buffer = stream, b""

    async def next_event(self, event: str) -> dict[str, Any]:
        while True:
            while b"\n" in self.buffer:
                line, self.buffer = self.buffer.split(b"\n", 1)
                try:
                    msg = json.loads(line)
                except ValueError:
                    continue  # a contender's own output
                if isinstance(msg, dict) and msg.get("event") == event:
                    return msg
            chunk = await self.stream.receive_some()
            if not chunk:
                raise RuntimeError(f"the contender exited before its {event!r} line")
            self.buffer += chunk


def read_items(path: Path) -> dict[str, dict[str, Any]]:
    """The items of a contender's ``--items`` file, by URL (the last one of a URL wins)."""
    got: dict[str, dict[str, Any]] = {}
    if path.exists():
        for line in path.read_text(encoding="utf-8").splitlines():
            if line.strip():
                item = json.loads(line)
                got[item.get("url")] = item
    return got


def check_items(path: Path, base: str, profile: str, pages: int) -> dict[str, int]:
    """Items equal to the truth, wrong ones, and missing ones (by URL)."""
    got = read_items(path)
    right = wrong = missing = 0
    for i in range(1, pages + 1):
        url = base + PROFILES[profile].format(i=i)
        want = {**expected_item(base, i), "url": url}
        item = got.get(url)
        if item is None:
            missing += 1
        elif all(item.get(k) == want[k] for k in ("name", "brand", "price", "image", "stock", "goods")):
            right += 1
        else:
            wrong += 1
    return {"right": right, "wrong": wrong, "missing": missing}


def painted(seen: RunCounts, profile: str, pages: int) -> int:
    """How many of the run's pages sent their paint beacon."""
    return len(seen.painted & {PROFILES[profile].format(i=i) for i in range(1, pages + 1)})


def check_render(path: Path, seen: RunCounts, base: str, pages: int) -> dict[str, int]:
    """The render profile's content: reviews in the items (those of the right product)
    and lazy images requested from the shop, each against what the pages hold."""
    got = read_items(path)
    reviews = 0
    for i in range(1, pages + 1):
        item = got.get(base + PROFILES["render"].format(i=i)) or {}
        found = item.get("reviews") if isinstance(item.get("reviews"), list) else []
        reviews += len(set(found) & {r["id"] for r in render_reviews(i)})
    return {
        "reviews": reviews,
        "reviews_expected": pages * RENDER_REVIEWS,
        "images": sum(1 for i, _ in seen.images if i <= pages),
        "images_expected": pages * RENDER_IMAGES,
    }


async def bench(args: argparse.Namespace) -> list[dict[str, Any]]:
    results = []
    with tempfile.TemporaryDirectory(prefix="compare-") as tmp_name:
        tmp = Path(tmp_name)
        async with trio.open_nursery() as nursery:
            shop = BenchShop(args.pages)
            port = await nursery.start(serve_http, shop)
            base = f"http://127.0.0.1:{port}"
            for profile in args.profiles:
                (tmp / f"urls-{profile}.txt").write_text(
                    "".join(base + PROFILES[profile].format(i=i) + "\n" for i in range(1, args.pages + 1))
                )
                await trio.to_thread.run_sync(warm_up, base + PROFILES[profile].format(i=1))
                for concurrency in args.concurrency:
                    for round_ in range(args.rounds):
                        for name in args.contenders:
                            r = await run_contender(name, profile, concurrency, shop, base, args, tmp)
                            results.append({**r, "round": round_ + 1})
                            print(format_row(r), flush=True)
            nursery.cancel_scope.cancel()
    return results


def warm_up(url: str) -> None:
    """Fetch a profile's first page and its static assets once, untimed: the shop builds
    what it caches on first use, and that must not fall on whichever contender runs first."""
    page = httpx.get(url, timeout=60).text
    for asset in sorted(set(re.findall(r'(?:src|href)="(/static/[^"]+)"', page))):
        httpx.get(urljoin(url, asset), timeout=60)


def format_row(r: dict[str, Any]) -> str:
    if "skipped" in r:
        return f"{r['profile']:<6} C={r['concurrency']:<3} {r['contender']:<11} skipped: {r['skipped']}"
    c = r["check"]
    render = r.get("render")
    content = f"  reviews {render['reviews']}/{render['reviews_expected']}, images {render['images']}/{render['images_expected']}" if render else ""  # fmt: skip
    return (
        f"{r['profile']:<6} C={r['concurrency']:<3} {r['contender']:<11} {r['pages_per_s']:7.2f} pages/s  {r['cpu_s_per_page']:.3f} CPU s/page  "
        f"(client {r['client_cpu_s_per_page']:.3f})  {r['peak_pss_mib']:6.0f} MiB peak PSS  {r['renderers']:4d} renderers  "
        f"painted {r['painted']}/{r['pages']}  items {c['right']} right, {c['wrong']} wrong, {c['missing']} missing{content}"
    )


def medians(results: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """One row per (profile, C, contender): the median of each figure over its runs."""
    groups: dict[tuple[str, int, str], list[dict[str, Any]]] = {}
    for r in results:
        if "skipped" not in r:
            groups.setdefault((r["profile"], r["concurrency"], r["contender"]), []).append(r)
    keys = ("pages_per_s", "cpu_s_per_page", "peak_pss_mib", "renderers", "painted")
    rows = []
    for (p, c, name), rs in groups.items():
        row = {"profile": p, "concurrency": c, "contender": name, "pages": rs[0]["pages"], "runs": len(rs)}
        row.update({k: statistics.median(r[k] for r in rs) for k in keys})
        if "render" in rs[0]:
            row["render"] = {k: statistics.median(r["render"][k] for r in rs) for k in rs[0]["render"]}
        rows.append(row)
    return rows


def print_table(results: list[dict[str, Any]], title: str = "") -> None:
    """Each row with its ratios to the floor (the median of the raw rows of its profile
    and C, so that with several rounds every row is read against the same floor), and
    its pages painted, flagged when fewer than the floor's: it did less work.  Then, for
    the render profile, what each row's scrolling reached."""
    print(f"\n{title}" if title else "")
    print(
        "| profile | C | contender | pages/s | CPU s/page | peak PSS MiB | renderers | painted | × floor pages/s | × floor CPU/page |"
    )
    print("|---|---|---|---|---|---|---|---|---|---|")
    floors = {(r["profile"], r["concurrency"]): r for r in medians(results) if r["contender"] == FLOOR}
    rows = [r for r in results if "skipped" not in r]
    for r in rows:
        f = floors.get((r["profile"], r["concurrency"]))
        speed = f"{r['pages_per_s'] / f['pages_per_s']:.2f}" if f else "-"
        cpu = f"{r['cpu_s_per_page'] / f['cpu_s_per_page']:.2f}" if f else "-"
        print(
            f"| {r['profile']} | {r['concurrency']} | {r['contender']} | {r['pages_per_s']:.2f} | {r['cpu_s_per_page']:.3f} | "
            f"{r['peak_pss_mib']:.0f} | {r['renderers']:g} | {painted_cell(r, f)} | {speed} | {cpu} |"
        )
    render = [r for r in rows if "render" in r]
    if render:
        print(
            "\n| render: C | contender | pages/s | painted | reviews found / expected | images requested / expected |"
        )
        print("|---|---|---|---|---|---|")
        for r in render:
            c = r["render"]
            print(
                f"| {r['concurrency']} | {r['contender']} | {r['pages_per_s']:.2f} | "
                f"{painted_cell(r, floors.get((r['profile'], r['concurrency'])))} | "
                f"{c['reviews']:g} / {c['reviews_expected']:g} ({c['reviews'] / c['reviews_expected']:.0%}) | "
                f"{c['images']:g} / {c['images_expected']:g} ({c['images'] / c['images_expected']:.0%}) |"
            )


def painted_cell(row: dict[str, Any], floor: dict[str, Any] | None) -> str:
    """``painted/pages``, flagged when fewer than the floor's (its median): less work done."""
    cell = f"{row['painted']:g}/{row['pages']}"
    if floor is not None and row["painted"] < floor["painted"]:
        cell += f" **fewer than the floor's {floor['painted']:g}**"
    return cell


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--pages", type=int, default=300)
    p.add_argument("--concurrency", default="8", help="tabs at once; a comma-separated list runs each in turn")
    p.add_argument("--recycle-tab-every", type=int, default=10)
    p.add_argument("--rotate-context-every", type=int, default=50)
    p.add_argument("--profiles", default="light,heavy,render", help=f"comma-separated: {', '.join(PROFILES)}")
    p.add_argument("--contenders", default="raw,ours,ours+block,playwright,crawlee")
    p.add_argument("--chromium", default=os.environ.get("CHROME_PATH", "/usr/bin/chromium"))
    p.add_argument(
        "--rounds",
        type=int,
        default=1,
        help="run the contender list this many times, interleaved; adds a table of medians",
    )
    p.add_argument("--json", dest="json_out")
    p.add_argument("--before", help="a checkout of this project (git worktree) for the ours-before contender")
    args = p.parse_args(argv)
    args.profiles = [x for x in args.profiles.split(",") if x]
    try:
        args.concurrency = [int(x) for x in args.concurrency.split(",") if x]
    except ValueError:
        p.error(f"--concurrency: expected integers, got {args.concurrency!r}")
    args.contenders = [x for x in args.contenders.split(",") if x]
    for name in args.contenders:
        if name not in COMMANDS:
            p.error(f"unknown contender {name!r}; choose from {', '.join(COMMANDS)}")
    for name in args.profiles:
        if name not in PROFILES:
            p.error(f"unknown profile {name!r}; choose from {', '.join(PROFILES)}")
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    print(f"{args.pages} pages, concurrency {args.concurrency}, tabs recycled every {args.recycle_tab_every}, "
          f"contexts rotated every {args.rotate_context_every}; load {os.getloadavg()[0]:.2f}", flush=True)  # fmt: skip
    become_subreaper()
    results = trio.run(bench, args)
    print_table(results)
    summary = medians(results)
    if any(r["runs"] > 1 for r in summary):
        print_table(summary, "Medians over the runs of each contender:")
    if args.json_out:
        Path(args.json_out).write_text(json.dumps(results, indent=2))
    ok = all("skipped" in r or (r["check"]["wrong"] == 0 and r["check"]["missing"] == 0) for r in results)
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
