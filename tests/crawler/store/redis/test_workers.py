"""Several crawler processes share one Redis-backed crawl; one of them is killed."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

import psutil
import pytest
import trio

from crawler import demo
from crawler.store import StoreSettings
from crawler.store.redis.store import open_redis_store
from tests.cdp.conftest import describe, wait_until
from tests.crawler.store.redis.conftest import make_redis_config, write_product_crawl
from tests.procs import become_child_subreaper
from tests.shop import FaultShop, start_shop

PAGES = 120
WORKERS = 3
LEASE_S = 3.0
CRAWL_TIMEOUT_S = 120.0
CLEANUP_TIMEOUT_S = 15.0


def write_config(tmp_path: Path, redis_server, crawl: str, base: str) -> Path:
    return write_product_crawl(
        tmp_path / "crawl.toml",
        redis_server,
        crawl,
        base,
        PAGES,
        store={"lease_s": LEASE_S},
        monitor={"progress_interval_s": 2.0, "sample_interval_s": 2.0, "invariant_interval_s": 5.0},
    )


async def start_worker(config: Path, log: Path) -> trio.Process:
    with open(log, "wb") as out:  # noqa: ASYNC230 - a log file in tmp_path, opened once
        return await trio.lowlevel.open_process(
            [sys.executable, "-m", "crawler", "--config", str(config)],
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=subprocess.STDOUT,
            env={**os.environ, "PYTHONUNBUFFERED": "1"},
        )


def worker_of(workers: list[str], pid: int) -> str | None:
    """The worker id (``host:pid:random``) of process ``pid`` among those registered."""
    return next((w for w in workers if w.split(":")[-2] == str(pid)), None)


def reap_gone(procs: list[psutil.Process]) -> bool:
    """Reap those of ``procs`` that are our children (orphans reparented to us as
    child subreaper); True when none is left, not even as a zombie."""
    for proc in procs:
        try:
            os.waitpid(proc.pid, os.WNOHANG)
        except ChildProcessError:
            pass
    return not any(p.is_running() and p.status() != psutil.STATUS_ZOMBIE for p in procs) and not any(
        p.is_running() for p in procs if _is_our_child(p)
    )


def _is_our_child(proc: psutil.Process) -> bool:
    try:
        return proc.ppid() == os.getpid()
    except psutil.Error:
        return False


@pytest.mark.chromium
async def test_three_workers_share_a_crawl_and_take_over_a_killed_workers_urls(tmp_path, redis_server, crawl_name):
    """Three crawler processes (each with its own Chromium, concurrency 2) crawl 120
    pages of one Redis-backed crawl.  One is frozen once it has finished some pages,
    the URLs it holds are noted, and it is SIGKILLed.  Every URL ends done exactly
    once (done counter 1) with the right item; the killed worker's URLs were taken
    over by the others, not before their leases expired; its Chromium is gone."""
    become_child_subreaper()  # the killed worker's orphans become ours, to be reaped
    shop = FaultShop(products=PAGES)
    cfg = make_redis_config(redis_server, crawl_name, store={"lease_s": LEASE_S})
    async with trio.open_nursery() as nursery, open_redis_store(StoreSettings.of(cfg), renew=False) as store:
        base = await start_shop(nursery, shop)
        config = write_config(tmp_path, redis_server, crawl_name, base)
        procs = [await start_worker(config, tmp_path / f"worker{i}.log") for i in range(WORKERS)]
        victim = procs[0]
        try:
            with trio.fail_after(CRAWL_TIMEOUT_S):
                # 1. Wait until the victim has finished a few pages and the crawl is well under way.
                victim_id = None
                while True:
                    await trio.sleep(0.2)
                    assert all(p.poll() is None for p in procs), _logs(tmp_path)
                    workers = await store.client.zrange(store.key("workers"), 0, -1)
                    victim_id = victim_id or worker_of(list(workers), victim.pid)
                    counts = await store.counts()
                    if victim_id and counts["done"] >= PAGES // 5 and await _done_by(store, victim_id) >= 3:
                        break
                # 2. Freeze it while it holds leases, note them, kill it.
                while True:
                    victim.send_signal(signal.SIGSTOP)
                    held = await store.client.smembers(store.key(f"held:{victim_id}"))
                    if held:
                        break
                    victim.send_signal(signal.SIGCONT)
                    await trio.sleep(0.05)
                leases = {}
                for job_id in held:
                    url, lease_until = await store.client.hmget(store.key(f"u:{job_id}"), ["url", "lease_until"])
                    leases[url] = float(lease_until)
                descendants = psutil.Process(victim.pid).children(recursive=True)
                profiles = {
                    Path(a.split("=", 1)[1])
                    for p in descendants
                    for a in _cmdline(p)
                    if a.startswith("--user-data-dir=")
                }
                killed_at = trio.current_time()
                server_killed_at = await store.server_time()
                victim.kill()
                await victim.wait()
                done_by_victim = await _done_by(store, victim_id)
                # 3. The others finish the crawl.
                for proc in procs[1:]:
                    assert await proc.wait() == 0, _logs(tmp_path)
        finally:
            for proc in procs:
                if proc.poll() is None:
                    proc.kill()
                    with trio.move_on_after(CLEANUP_TIMEOUT_S, shield=True):
                        await proc.wait()
        # The killed worker's Chromium: its guard kills it; its orphans are ours to reap.
        await wait_until(lambda: reap_gone(descendants), timeout_s=CLEANUP_TIMEOUT_S)
        assert not [p for p in descendants if p.is_running()], describe([p.pid for p in descendants])
        assert profiles, "the killed worker had no Chromium"
        await wait_until(
            lambda: not any(p.exists() for p in profiles), timeout_s=CLEANUP_TIMEOUT_S
        )  # the guard removes it

        assert await store.counts() == {"pending": 0, "in_progress": 0, "done": PAGES, "failed": 0}
        items = {item["url"]: item for item in await store.items()}
        expected = {demo.expected_item(base, i)["url"]: demo.expected_item(base, i) for i in range(1, PAGES + 1)}
        wrong = [url for url in expected if items.get(url) != expected[url]]
        assert wrong == [], f"{len(wrong)} wrong items, e.g. {wrong[:3]}"
        done_counts = {url: (await store.url_state(url))["done_count"] for url in expected}
        assert set(done_counts.values()) == {1}, {u: n for u, n in done_counts.items() if n != 1}
        assert done_by_victim >= 3

        # The victim's URLs: taken over by another worker, no sooner than their lease expired.
        assert leases, "the victim held no lease when it was killed"
        for url, lease_until in leases.items():
            state = await store.url_state(url)
            assert state["taken_from"] == victim_id and state["takeovers"] >= 1, state
            assert state["taken_at"] >= lease_until, (url, state, lease_until)
            assert state["done_by"] not in ("", victim_id), state
            # The page was fetched again after the kill, the fetch that made the item no
            # sooner than the lease expired.  (The victim's own Chromium, not frozen with
            # it, may still send a navigation it was given just before the freeze.)
            hits = shop.page_hits("product", int(url.rsplit("/", 1)[1]))
            expired_in = lease_until - server_killed_at
            assert hits and hits[-1] > killed_at, f"{url}: not fetched again after the kill"
            assert hits[-1] - killed_at >= expired_in - 0.25, (
                url,
                [t - killed_at for t in hits],
                expired_in,
                state["taken_at"] - server_killed_at,
            )

        # ``report`` reads a worker's run of the Redis crawl (the last one started).
        report = await trio.run_process(
            [sys.executable, "-m", "crawler", "report", "--config", str(config), "--out", str(tmp_path / "r.png")],
            capture_stdout=True,
            capture_stderr=True,
            check=False,
        )
        assert report.returncode == 0, report.stderr.decode()
        assert f"run {WORKERS}:" in report.stdout.decode() and (tmp_path / "r.png").stat().st_size > 0
        nursery.cancel_scope.cancel()


async def _done_by(store, worker: str) -> int:
    ids = await store.client.zrange(store.key("done"), 0, -1)
    count = 0
    for job_id in ids:
        if await store.client.hget(store.key(f"u:{job_id}"), "done_by") == worker:
            count += 1
    return count


def _cmdline(proc: psutil.Process) -> list[str]:
    try:
        return proc.cmdline()
    except psutil.Error:
        return []


def _logs(tmp_path: Path) -> str:
    return "\n".join(f"--- {p.name}\n{p.read_text()[-3000:]}" for p in sorted(tmp_path.glob("worker*.log")))
