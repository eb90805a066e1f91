"""Fault matrix, part 3: the crawler process itself is interrupted or killed mid-crawl,
while pages with a hung server and a hung renderer are in flight.

``python -m crawler --config ...`` runs as a subprocess against the shop served by the
test.  SIGINT: it exits within a few seconds with code 130, every in-flight URL (the
hung ones included) is pending again without an attempt charged, and the same command
finishes the crawl.  SIGKILL: the browser guard kills
its Chromium and removes its profile, and the same command finishes the crawl with
every URL done (or failed) exactly once.  Checked as in the in-process tests: the
frontier and items (invariants 1, 2), the leases and the engine's own
pool-against-browser checks as each run recorded them in its summary (3, 4), and the
Chromium processes, sampled while the crawler ran, and profiles (5).
"""

from __future__ import annotations

import json
import signal
import sqlite3
import time
from pathlib import Path

import psutil
import pytest
import trio

from tests.faults.conftest import assert_all_gone, assert_outcome, chromium_family
from tests.procs import profile_dirs, site_toml, start_crawler, write_config

pytestmark = pytest.mark.chromium

PAGES = 24
# "Within a few seconds": in-flight jobs cancelled, tabs and contexts closed, Chromium
# stopped, each step bounded.  It takes 1-2 s here; the slack is for a loaded machine.
STOP_BOUND_S = 8.0


def config_text(urls: list[str], db: str) -> str:
    listed = ",\n  ".join(json.dumps(u) for u in urls)
    settings = """
[pool]
concurrency = 4
recycle_tab_every = 4
rotate_context_every = 10
tab_close_timeout_s = 3.0
[watchdog]
timeout_s = 3
jitter_s = 0.5
[retry]
max_attempts = 2
backoff_s = [0.05, 0.2]
"""
    return site_toml("fault-matrix", f"urls = [\n  {listed}\n]", db, settings)


def read_db(db: str) -> tuple[dict[str, dict], dict[str, dict], list[dict]]:
    with sqlite3.connect(db) as conn:
        conn.row_factory = sqlite3.Row
        rows = {r["url"]: dict(r) for r in conn.execute("SELECT * FROM frontier")}
        pairs = conn.execute("SELECT f.url, i.data FROM items i JOIN frontier f ON f.id = i.url_id").fetchall()
        items = {url: json.loads(data) for url, data in pairs}
        assert len(items) == len(pairs), "a page's item was stored twice"
        runs = [dict(r) for r in conn.execute("SELECT * FROM runs ORDER BY id")]
    return rows, items, runs


def states(db: str) -> dict[str, str]:
    try:
        with sqlite3.connect(db) as conn:
            return dict(conn.execute("SELECT url, state FROM frontier"))
    except sqlite3.OperationalError:  # not created yet
        return {}


class Sampler:
    """The crawler's Chromium processes and profiles, sampled while it runs."""

    def __init__(self, pid: int):
        self.root = psutil.Process(pid)
        self.processes: dict[int, psutil.Process] = {}
        self.profiles: set[str] = set()

    def sample(self) -> None:
        family = chromium_family(self.root)
        for proc in family:
            self.processes.setdefault(proc.pid, proc)
        self.profiles |= profile_dirs(family)


async def run_until(proc: trio.Process, db: str, sampler: Sampler, ready, timeout_s: float = 60.0) -> None:
    """Sample while waiting until ``ready(states)`` holds."""
    with trio.fail_after(timeout_s):
        while True:
            assert proc.poll() is None, "the crawler exited before the fault"
            sampler.sample()
            if ready(states(db)):
                return
            await trio.sleep(0.05)


def mix(shop) -> tuple[list[str], str, str]:
    hang, busy = f"{shop.base}/hang/1", f"{shop.base}/busy/2"
    return [hang, busy, *[f"{shop.base}/slow/{i}?s=0.2" for i in range(3, PAGES + 1)]], hang, busy


def faulty_in_flight(hang: str, busy: str):
    def ready(st: dict[str, str]) -> bool:
        done = sum(1 for s in st.values() if s == "done")
        return done >= 5 and st.get(hang) == "in_progress" and st.get(busy) == "in_progress"

    return ready


def assert_runs_balanced(runs: list[dict]) -> None:
    """Each run that recorded its summary: leases balanced, no standing mismatch between
    the pool and the browser's target list found by the engine's own checks."""
    summaries = [json.loads(r["summary"]) for r in runs if r["summary"]]
    assert summaries
    for summary in summaries:
        assert summary["leases_acquired"] == summary["leases_released"], summary
        assert summary.get("invariant_violations", 0) == 0, summary


async def test_sigint_mid_crawl_exits_130_quickly_and_the_rerun_finishes(shop, tmp_path):
    """SIGINT while a hung-server page and a hung-renderer page are in flight: exit code
    130 within a few seconds, nothing left in progress, the
    interrupted URLs pending with no attempt charged, nothing left running; the same
    command then ends every URL (the two hung ones failed 'timeout') exactly once."""
    urls, hang, busy = mix(shop)
    db = str(tmp_path / "crawl.db")
    cfg = write_config(tmp_path / "site.toml", config_text(urls, db))
    offset = time.time() - trio.current_time()
    proc = await start_crawler("--config", str(cfg), cwd=tmp_path)
    sampler = Sampler(proc.pid)
    await run_until(proc, db, sampler, faulty_in_flight(hang, busy))
    in_flight = {u for u, s in states(db).items() if s == "in_progress"}
    signalled = trio.current_time()
    proc.send_signal(signal.SIGINT)
    with trio.fail_after(STOP_BOUND_S):
        code = await proc.wait()
    assert code == 130, (tmp_path / "crawler.err").read_text()[-2000:]
    assert trio.current_time() - signalled < STOP_BOUND_S
    await assert_all_gone(sampler.processes, sampler.profiles)
    rows, _, runs = read_db(db)
    assert not [u for u, r in rows.items() if r["state"] == "in_progress"]
    assert {hang, busy} <= in_flight
    for url in in_flight:  # a good page may have finished before the signal arrived: not interrupted
        interrupted = rows[url]["state"] == "pending" and rows[url]["attempts"] == 0
        assert interrupted or (url not in (hang, busy) and rows[url]["state"] == "done"), rows[url]
    assert_runs_balanced(runs)

    again = await start_crawler("--config", str(cfg), cwd=tmp_path)
    sampler = Sampler(again.pid)
    with trio.fail_after(90):
        while again.poll() is None:
            sampler.sample()
            await trio.sleep(0.05)
    assert again.returncode == 1  # some URLs failed (the hung ones)
    await assert_all_gone(sampler.processes, sampler.profiles)
    rows, items, runs = read_db(db)
    assert_outcome(
        rows, items, shop, urls, offset=offset, done=set(urls[2:]), failed={hang: "timeout", busy: "timeout"}
    )
    assert_runs_balanced(runs)


async def test_sigkill_mid_crawl_then_rerun_ends_every_url_exactly_once(shop, tmp_path):
    """SIGKILL while hung pages are in flight: the browser guard kills the crawler's
    Chromium (we reap what we adopted) and removes its profile; the same command ends
    every URL exactly once - nothing done before the kill is requested again."""
    urls, hang, busy = mix(shop)
    db = str(tmp_path / "crawl.db")
    cfg = write_config(tmp_path / "site.toml", config_text(urls, db))
    offset = time.time() - trio.current_time()
    proc = await start_crawler("--config", str(cfg), cwd=tmp_path)
    sampler = Sampler(proc.pid)
    await run_until(proc, db, sampler, faulty_in_flight(hang, busy))
    sampler.sample()
    proc.kill()
    await proc.wait()
    await assert_all_gone(sampler.processes, sampler.profiles)
    killed_profiles = set(sampler.profiles)
    assert killed_profiles and all(Path(p).name.startswith("cdp-profile-") for p in killed_profiles)

    again = await start_crawler("--config", str(cfg), cwd=tmp_path)
    sampler = Sampler(again.pid)
    with trio.fail_after(90):
        while again.poll() is None:
            sampler.sample()
            await trio.sleep(0.05)
    assert again.returncode == 1, (tmp_path / "crawler.err").read_text()[-2000:]
    await assert_all_gone(sampler.processes, sampler.profiles)
    rows, items, runs = read_db(db)
    assert_outcome(
        rows, items, shop, urls, offset=offset, done=set(urls[2:]), failed={hang: "timeout", busy: "timeout"}
    )
    assert_runs_balanced(runs)
    assert "resuming" in (tmp_path / "crawler.err").read_text()
