#!/usr/bin/env python
"""What Redis costs per page, and how many workers one Redis or a cluster carries.

    .venv/bin/python benchmarks/redis_scale.py [--pages 500] [--workers 1,2,4]
        [--concurrency 2] [--topologies single,cluster] [--json OUT]

For each topology this process starts its own Redis on 127.0.0.1 (``single``: one
redis-server; ``cluster``: three masters joined by ``redis-cli --cluster create``, the
crawl run with ``[store] cluster = true``) and serves the bundled demo shop.  For each
worker count W a fresh crawl of ``--pages`` product pages (``config/products.toml``, no
rate-limit waits) is crawled by W ``python -m crawler`` processes started together.
Measured per run:

- **wall pages/s**: pages / time from starting the workers until the last exits;
- **steady pages/s**: (pages - 1) / time between the first and the last URL marked done
  (Redis's clock), without Chromium's start and stop;
- **Redis CPU ms/page**: the delta of ``INFO cpu`` ``used_cpu_sys + used_cpu_user``,
  summed over the nodes, per page done;
- **Redis KiB per 1,000 URLs**: the delta of ``INFO memory`` ``used_memory`` (summed over
  the nodes) between before the crawl and its end (frontier, records and items kept),
  per 1,000 URLs;
- correctness: every URL done once (done counter 1) with the expected item.

Then the projection (see benchmarks/README.md): Redis saturates one core at
``1000 / redis_ms_per_page`` pages/s, so it carries that divided by one worker's steady
pages/s workers.  One crawl's keys share one hash slot, so on a cluster one crawl runs
on one master: the cluster multiplies the ceiling only across crawls (and spreads the
per-host pace keys).

Exit status 0 when every run is complete and correct, 1 otherwise, 2 on bad usage.
"""

from __future__ import annotations

import argparse
import json
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

import trio

from crawler import config as config_mod
from crawler.demo import DemoShop, expected_item
from crawler.httpserver import serve_http
from crawler.store import StoreSettings
from crawler.store.redis.store import open_redis_store

sys.path.insert(0, str(Path(__file__).resolve().parent))  # benchmarks/, imported by file as well
from redis_workers import start_workers  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent
RUN_TIMEOUT_S = 900.0
START_TIMEOUT_S = 10.0
TOPOLOGIES = ("single", "cluster")


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--pages", type=int, default=500)
    p.add_argument("--workers", default="1,2,4", help="comma-separated worker counts, run one after the other")
    p.add_argument("--concurrency", type=int, default=2, help="tabs per worker")
    p.add_argument("--topologies", default="single,cluster", help="single, cluster or both")
    p.add_argument("--json", help="write every result here")
    args = p.parse_args(argv)
    try:
        args.worker_counts = [int(w) for w in args.workers.split(",")]
    except ValueError:
        p.error(f"--workers: expected numbers like 1,2,4, got {args.workers!r}")
    args.topology_list = [t.strip() for t in args.topologies.split(",") if t.strip()]
    if not args.topology_list or any(t not in TOPOLOGIES for t in args.topology_list):
        p.error(f"--topologies: expected single and/or cluster, got {args.topologies!r}")
    return args


# -- throwaway Redis servers ------------------------------------------------------------


def _port_pair_free(port: int) -> bool:
    for p in (port, port + 10_000):
        with socket.socket() as sock:
            try:
                sock.bind(("127.0.0.1", p))
            except OSError:
                return False
    return True


def _free_port() -> int:
    for port in range(21_000 + (uuid.uuid4().int % 20_000), 45_000):
        if _port_pair_free(port):  # a cluster node also needs port + 10000 (its bus)
            return port
    raise SystemExit("redis_scale: no free port")


def _cli(port: int, *command: str) -> str:
    out = subprocess.run(
        [shutil.which("redis-cli") or "redis-cli", "-h", "127.0.0.1", "-p", str(port), *command],
        capture_output=True,
        timeout=10,
        check=False,
    )
    return out.stdout.decode(errors="replace")


class Servers:
    """One redis-server, or three cluster masters, in ``folder``; ``url`` is the (first) node."""

    def __init__(self, topology: str, folder: Path):
        if shutil.which("redis-server") is None or shutil.which("redis-cli") is None:
            raise SystemExit("redis_scale: redis-server and redis-cli are needed: run scripts/bootstrap")
        self.topology = topology
        self.ports: list[int] = []
        self.processes: list[subprocess.Popen[bytes]] = []
        cluster = topology == "cluster"
        for i in range(3 if cluster else 1):
            port = _free_port()
            node = folder / f"{topology}-{i}"
            node.mkdir(parents=True)
            extra = ["--cluster-enabled", "yes", "--cluster-config-file", "nodes.conf"] if cluster else []
            self.processes.append(
                subprocess.Popen(
                    ["redis-server", "--bind", "127.0.0.1", "--port", str(port), "--dir", str(node)]
                    + ["--save", "", "--appendonly", "no", *extra],
                    stdout=subprocess.DEVNULL,
                    stderr=subprocess.DEVNULL,
                )
            )
            self.ports.append(port)
        for port in self.ports:
            self._wait(lambda port=port: _cli(port, "PING").startswith("PONG"), f"redis-server on {port}")
        if cluster:
            subprocess.run(
                ["redis-cli", "--cluster", "create", *(f"127.0.0.1:{p}" for p in self.ports)]
                + ["--cluster-replicas", "0", "--cluster-yes"],
                capture_output=True,
                timeout=30,
                check=True,
            )
            self._wait(lambda: all("cluster_state:ok" in _cli(p, "CLUSTER", "INFO") for p in self.ports), "cluster")

    def _wait(self, ready, what: str) -> None:
        deadline = time.monotonic() + START_TIMEOUT_S
        while time.monotonic() < deadline:
            if ready():
                return
            time.sleep(0.05)
        self.stop()
        raise SystemExit(f"redis_scale: {what} did not start")

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.ports[0]}/0"

    def info(self, field: str, section: str) -> float:
        """``field`` of ``INFO section``, summed over the nodes."""
        total = 0.0
        for port in self.ports:
            for line in _cli(port, "INFO", section).splitlines():
                if line.startswith(field + ":"):
                    total += float(line.split(":", 1)[1])
        return total

    def cpu_s(self) -> float:
        return self.info("used_cpu_sys", "cpu") + self.info("used_cpu_user", "cpu")

    def memory_bytes(self) -> float:
        return self.info("used_memory", "memory")

    def stop(self) -> None:
        for process in self.processes:
            process.terminate()
        for process in self.processes:
            try:
                process.wait(5)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()


# -- one run ----------------------------------------------------------------------------


def crawl_config(base: str, args: argparse.Namespace, servers: Servers, crawl: str, folder: Path) -> dict[str, Any]:
    data = tomllib.loads((ROOT / "config" / "products.toml").read_text())
    data["site"]["name"] = crawl
    data["input"] = {"url_template": f"{base}/product/{{id}}", "ids": f"1-{args.pages}"}
    data["pool"]["concurrency"] = args.concurrency
    data["rate_limit"] = {"wait_ms": [0, 0]}
    data["output"] = {"db": str(folder / "unused.db")}
    data["store"] = {
        "backend": "redis",
        "url": servers.url,
        "crawl": crawl,
        "lease_s": 30.0,
        "cluster": servers.topology == "cluster",
    }
    return data


async def run_workers(
    args: argparse.Namespace, base: str, servers: Servers, workers: int, folder: Path
) -> dict[str, Any]:
    crawl = f"scale-{servers.topology}-{workers}w-{uuid.uuid4().hex[:6]}"
    path = folder / f"{crawl}.toml"
    path.write_text(config_mod.to_toml(crawl_config(base, args, servers, crawl, folder)))
    cfg = config_mod.load(path)
    cpu_before, memory_before = servers.cpu_s(), servers.memory_bytes()
    started = time.monotonic()
    procs = await start_workers(path, workers, folder, crawl)
    with trio.fail_after(RUN_TIMEOUT_S):
        codes = [await p.wait() for p in procs]
    wall_s = time.monotonic() - started
    redis_cpu_s, redis_memory = servers.cpu_s() - cpu_before, servers.memory_bytes() - memory_before
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
    return {
        "topology": servers.topology,
        "workers": workers,
        "concurrency": args.concurrency,
        "pages": args.pages,
        "exit_codes": codes,
        "done": done,
        "wrong_items": wrong,
        "done_once": all(n == 1 for n in done_counts),
        "wall_s": wall_s,
        "wall_pages_per_s": done / wall_s,
        "steady_pages_per_s": (len(finished) - 1) / (max(finished) - min(finished)) if len(finished) > 1 else 0.0,
        "redis_cpu_ms_per_page": 1000 * redis_cpu_s / max(1, done),
        "redis_kib_per_1000_urls": redis_memory / 1024 / max(1, args.pages) * 1000,
    }


def projection(runs: list[dict[str, Any]]) -> dict[str, float]:
    """From the one-worker run (else the smallest): the pages/s at which Redis's CPU per
    page fills one core, and how many such workers that is."""
    base = min(runs, key=lambda r: r["workers"])
    per_worker = base["steady_pages_per_s"] / base["workers"]
    ms = max(r["redis_cpu_ms_per_page"] for r in runs)  # the dearest measured: a ceiling not flattered
    ceiling = 1000 / ms if ms > 0 else float("inf")
    return {
        "redis_ms_per_page": ms,
        "pages_per_s_per_worker": per_worker,
        "ceiling_pages_per_s": ceiling,
        "workers_at_ceiling": ceiling / per_worker if per_worker > 0 else float("inf"),
    }


def correct(run: dict[str, Any]) -> bool:
    return run["done"] == run["pages"] and not run["wrong_items"] and run["done_once"] and set(run["exit_codes"]) == {0}


async def bench(args: argparse.Namespace, out=sys.stdout) -> dict[str, Any]:
    folder = Path(tempfile.mkdtemp(prefix="redis-scale-"))
    results: dict[str, Any] = {"runs": [], "projection": {}}
    try:
        async with trio.open_nursery() as nursery:
            shop = DemoShop(args.pages)
            port = await nursery.start(lambda task_status: serve_http(shop, port=0, task_status=task_status))
            base = f"http://127.0.0.1:{port}"
            print(f"demo shop {base}, {args.pages} pages, concurrency {args.concurrency} per worker", file=out)
            print(
                f"{'topology':>8} {'workers':>7} {'wall p/s':>9} {'steady p/s':>11} "
                f"{'redis ms/page':>14} {'KiB/1000 URLs':>14}  correct",
                file=out,
            )
            for topology in args.topology_list:
                servers = Servers(topology, folder)
                try:
                    runs = []
                    for workers in args.worker_counts:
                        r = await run_workers(args, base, servers, workers, folder)
                        runs.append(r)
                        print(
                            f"{topology:>8} {workers:>7} {r['wall_pages_per_s']:>9.2f} {r['steady_pages_per_s']:>11.2f} "
                            f"{r['redis_cpu_ms_per_page']:>14.3f} {r['redis_kib_per_1000_urls']:>14.0f}  "
                            f"{'yes' if correct(r) else 'NO'} (exit {r['exit_codes']}, done {r['done']})",
                            file=out,
                        )
                finally:
                    servers.stop()
                results["runs"] += runs
                p = results["projection"][topology] = projection(runs)
                print(
                    f"{topology}: Redis fills one core at {p['ceiling_pages_per_s']:.0f} pages/s "
                    f"({p['redis_ms_per_page']:.3f} ms/page), about {p['workers_at_ceiling']:.0f} workers "
                    f"of {p['pages_per_s_per_worker']:.2f} pages/s",
                    file=out,
                )
            nursery.cancel_scope.cancel()
    finally:
        shutil.rmtree(folder, ignore_errors=True)
    return results


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    results = trio.run(bench, args)
    if args.json:
        Path(args.json).write_text(json.dumps(results, indent=2))
    return 0 if all(correct(r) for r in results["runs"]) else 1


if __name__ == "__main__":
    sys.exit(main())
