#!/usr/bin/env python
"""Throughput of 1, 2, 3... crawler processes sharing one Redis-backed crawl.

    .venv/bin/python benchmarks/redis_workers.py [--pages 300] [--workers 1,2,3]
        [--concurrency 2] [--redis-url redis://...] [--json OUT]

This process starts a throwaway ``redis-server`` on 127.0.0.1 (unless ``--redis-url``
is given) and serves the bundled demo shop (127.0.0.1, a free port).  For each worker
count W, a fresh crawl of ``--pages`` product pages (``config/products.toml`` with
``[store] backend = "redis"``, ``pool.concurrency = C``, no rate-limit waits) is
crawled by W ``python -m crawler --config FILE`` processes started together, each
launching its own Chromium.  Measured per run:

- **wall pages/s**: pages / time from starting the processes until the last exits
  (Chromium start and stop included, as a user sees it);
- **steady pages/s**: (pages - 1) / time between the first and the last URL marked
  done in Redis (server clock), without start-up and teardown;
- **CPU ms/page**: user+sys of the workers and all their descendants (each Chromium
  tree is reaped inside its worker, so its time reaches us when the worker is reaped),
  of this process (the demo shop; it also runs the benchmark's bookkeeping), and of
  redis-server (only when this script started it);
- correctness: every item equals ``crawler.demo.expected_item`` and every URL's done
  counter is 1.

Exit status 0 when every run is complete and correct, 1 otherwise, 2 on bad usage.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import tomllib
import uuid
from pathlib import Path
from typing import Any

import psutil
import trio

from crawler import config as config_mod
from crawler.demo import DemoShop, expected_item
from crawler.httpserver import serve_http
from crawler.store import StoreSettings
from crawler.store.redis.store import open_redis_store

ROOT = Path(__file__).resolve().parent.parent
RUN_TIMEOUT_S = 600.0


async def start_workers(path: Path, workers: int, folder: Path, crawl: str) -> list[trio.Process]:
    """``workers`` crawler processes on the config at ``path``, each logging to
    ``<folder>/<crawl>-<i>.log``."""
    procs = []
    for i in range(workers):
        with open(folder / f"{crawl}-{i}.log", "wb") as log:  # noqa: ASYNC230 - opened once per worker
            procs.append(
                await trio.lowlevel.open_process(
                    [sys.executable, "-m", "crawler", "--config", str(path)],
                    stdin=subprocess.DEVNULL,
                    stdout=log,
                    stderr=subprocess.STDOUT,
                )
            )
    return procs


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--pages", type=int, default=300)
    p.add_argument("--workers", default="1,2,3", help="comma-separated worker counts, run one after the other")
    p.add_argument("--concurrency", type=int, default=2, help="tabs per worker")
    p.add_argument("--redis-url", default="", help="use this Redis instead of starting one")
    p.add_argument("--json", help="write every result here")
    args = p.parse_args(argv)
    try:
        args.worker_counts = [int(w) for w in args.workers.split(",")]
    except ValueError:
        p.error(f"--workers: expected numbers like 1,2,3, got {args.workers!r}")
    return args


# -- a throwaway redis-server -----------------------------------------------------------


class RedisServer:
    def __init__(self, folder: Path):
        executable = shutil.which("redis-server")
        if executable is None:
            raise SystemExit("redis_workers: redis-server is not installed: run scripts/bootstrap")
        with socket.socket() as sock:
            sock.bind(("127.0.0.1", 0))
            self.port = sock.getsockname()[1]
        self.process = subprocess.Popen(
            [
                executable,
                "--bind",
                "127.0.0.1",
                "--port",
                str(self.port),
                "--save",
                "",
                "--appendonly",
                "no",
                "--dir",
                str(folder),
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=0.5) as s:
                    s.sendall(b"PING\r\n")
                    if s.recv(16).startswith(b"+PONG"):
                        return
            except OSError:
                time.sleep(0.05)
        self.stop()
        raise SystemExit(f"redis_workers: redis-server did not start on port {self.port}")

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def stop(self) -> None:
        self.process.terminate()
        try:
            self.process.wait(5)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()


# -- configuration ----------------------------------------------------------------------


def crawl_config(base: str, pages: int, concurrency: int, redis_url: str, crawl: str, folder: Path) -> dict[str, Any]:
    data = tomllib.loads((ROOT / "config" / "products.toml").read_text())
    data["site"]["name"] = crawl
    data["input"] = {"url_template": f"{base}/product/{{id}}", "ids": f"1-{pages}"}
    data["pool"]["concurrency"] = concurrency
    data["rate_limit"] = {"wait_ms": [0, 0]}
    data["output"] = {"db": str(folder / "unused.db")}
    data["store"] = {"backend": "redis", "url": redis_url, "crawl": crawl, "lease_s": 30.0}
    return data


# -- one run --------------------------------------------------------------------------


def _cpu(who: int) -> float:
    usage = resource.getrusage(who)
    return usage.ru_utime + usage.ru_stime


def _redis_cpu(server: RedisServer | None) -> float:
    if server is None:
        return float("nan")
    times = psutil.Process(server.process.pid).cpu_times()
    return times.user + times.system


async def run_workers(
    args: argparse.Namespace, base: str, redis_url: str, workers: int, folder: Path, server: RedisServer | None
) -> dict[str, Any]:
    crawl = f"bench-{workers}w-{uuid.uuid4().hex[:6]}"
    data = crawl_config(base, args.pages, args.concurrency, redis_url, crawl, folder)
    path = folder / f"{crawl}.toml"
    path.write_text(config_mod.to_toml(data))
    cfg = config_mod.load(path)

    children_cpu, own_cpu, redis_cpu = _cpu(resource.RUSAGE_CHILDREN), _cpu(resource.RUSAGE_SELF), _redis_cpu(server)
    started = time.monotonic()
    procs = await start_workers(path, workers, folder, crawl)
    with trio.fail_after(RUN_TIMEOUT_S):
        codes = [await p.wait() for p in procs]
    wall_s = time.monotonic() - started
    children_cpu = _cpu(resource.RUSAGE_CHILDREN) - children_cpu
    own_cpu = _cpu(resource.RUSAGE_SELF) - own_cpu
    redis_cpu = _redis_cpu(server) - redis_cpu

    async with open_redis_store(StoreSettings.of(cfg), renew=False) as store:
        counts = await store.counts()
        items = {item["url"]: item for item in await store.items()}
        finished, done_counts = [], []
        for i in range(1, args.pages + 1):
            state = await store.url_state(f"{base}/product/{i}")
            done_counts.append(state.get("done_count"))
            if state.get("finished_at"):
                finished.append(state["finished_at"])
        await store.reset()
    wrong = sum(1 for i in range(1, args.pages + 1) if items.get(f"{base}/product/{i}") != expected_item(base, i))
    done = counts["done"]
    steady = (len(finished) - 1) / (max(finished) - min(finished)) if len(finished) > 1 else 0.0
    return {
        "workers": workers,
        "concurrency": args.concurrency,
        "pages": args.pages,
        "exit_codes": codes,
        "done": done,
        "wrong_items": wrong,
        "done_once": all(n == 1 for n in done_counts),
        "wall_s": wall_s,
        "wall_pages_per_s": done / wall_s,
        "steady_pages_per_s": steady,
        "cpu_ms_per_page_workers": 1000 * children_cpu / max(1, done),
        "cpu_ms_per_page_shop": 1000 * own_cpu / max(1, done),
        "cpu_ms_per_page_redis": 1000 * redis_cpu / max(1, done),
    }


async def main_async(args: argparse.Namespace) -> list[dict[str, Any]]:
    folder = Path(tempfile.mkdtemp(prefix="redis-workers-"))
    server = None if args.redis_url else RedisServer(folder)
    redis_url = args.redis_url or server.url  # type: ignore[union-attr]
    results = []
    try:
        async with trio.open_nursery() as nursery:
            shop = DemoShop(args.pages)
            port = await nursery.start(lambda task_status: serve_http(shop, port=0, task_status=task_status))
            base = f"http://127.0.0.1:{port}"
            print(f"demo shop {base}, redis {redis_url}, {args.pages} pages, concurrency {args.concurrency} per worker")
            print(f"cores: {os.cpu_count()}; every worker, its Chromium, the shop and Redis share them")
            print(
                f"{'workers':>7} {'wall s':>7} {'wall p/s':>9} {'steady p/s':>11} "
                f"{'CPU ms/page':>12} {'shop ms/page':>13} {'redis ms/page':>14}  correct"
            )
            for workers in args.worker_counts:
                r = await run_workers(args, base, redis_url, workers, folder, server)
                results.append(r)
                ok = r["done"] == args.pages and not r["wrong_items"] and r["done_once"]
                print(
                    f"{workers:>7} {r['wall_s']:>7.1f} {r['wall_pages_per_s']:>9.2f} {r['steady_pages_per_s']:>11.2f} "
                    f"{r['cpu_ms_per_page_workers']:>12.0f} {r['cpu_ms_per_page_shop']:>13.1f} {r['cpu_ms_per_page_redis']:>14.2f}  "
                    f"{'yes' if ok else 'NO'} (exit {r['exit_codes']}, done {r['done']}, wrong {r['wrong_items']})"
                )
            nursery.cancel_scope.cancel()
    finally:
        if server is not None:
            server.stop()
        shutil.rmtree(folder, ignore_errors=True)
    return results


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    results = trio.run(main_async, args)
    if args.json:
        Path(args.json).write_text(json.dumps(results, indent=2))
    good = all(r["done"] == r["pages"] and not r["wrong_items"] and r["done_once"] for r in results)
    return 0 if good else 1


if __name__ == "__main__":
    sys.exit(main())
