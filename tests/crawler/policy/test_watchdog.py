"""The per-job watchdog, timed exactly with trio's MockClock (autojump).

- a watchdog fires at its timeout plus its own jitter, to the virtual nanosecond, on
  its own and around a real job of the engine (a hung page on the fake browser);
- jitter spreads the deadlines of jobs that start together over the configured
  window, so they do not all expire and clean up at once (thundering herd);
- the cleanup after an expiry is bounded by the tab-close deadline even when the
  browser never answers the close: the lease ends on time, the tab is counted as
  leaked, and it is never leased again.
"""

from __future__ import annotations

import random
from collections import Counter

import pytest
import trio

import crawler.browser.pool
from crawler.policy.watchdog import Watchdog
from crawler.run.engine import Crawler
from crawler.run.router import run_route
from crawler.store.sqlite import SqliteStore
from tests.crawler.conftest import make_config
from tests.fake.browser import shop_url
from tests.fake.harness import FakeBrowsers, no_memory_reading, outcome_problems, virtual_store_time


@pytest.mark.parametrize("seed", [0, 1, 2])
async def test_watchdog_fires_at_timeout_plus_its_own_jitter(autojump_clock, seed):
    """The scope's deadline is now + timeout + a uniform draw in [0, jitter] from the
    watchdog's own generator, and the body is cancelled exactly then."""
    expected_jitter = random.Random(seed).uniform(0, 5.0)
    watchdog = Watchdog(10.0, 5.0, rng=random.Random(seed))
    started = trio.current_time()
    with watchdog.scope() as scope:
        await trio.sleep_forever()
    assert scope.cancelled_caught
    assert trio.current_time() - started == pytest.approx(10.0 + expected_jitter, abs=1e-9)
    assert trio.current_time() == scope.deadline


async def test_watchdog_without_jitter_fires_at_the_timeout(autojump_clock):
    started = trio.current_time()
    with Watchdog(7.5, 0.0).scope() as scope:
        await trio.sleep(100)
    assert scope.cancelled_caught and trio.current_time() - started == 7.5


def test_jitter_spreads_budgets_uniformly_over_the_window():
    """1000 budgets of a 300 s watchdog with 30 s jitter lie in [300, 330] and fill the
    window evenly: each 3 s tenth holds 100 of them, give or take 40."""
    watchdog = Watchdog(300.0, 30.0, rng=random.Random(4))
    budgets = [watchdog.budget_s() for _ in range(1000)]
    assert 300.0 <= min(budgets) < 300.5 and 329.5 < max(budgets) <= 330.0
    tenths = Counter(int((b - 300.0) // 3.0) for b in budgets)
    assert sorted(tenths) == list(range(10))
    assert all(60 <= n <= 140 for n in tenths.values()), tenths


def crawl_config(tmp_path, urls, **sections):
    base = {
        "browser": {"command_timeout_s": 30.0},
        "pool": {"concurrency": len(urls), "tab_close_timeout_s": 3.0, "context_dispose_timeout_s": 4.0},
        "retry": {"max_attempts": 1},
        "monitor": {"sample_interval_s": 1e6, "invariant_interval_s": 1e6},
    }
    for name, values in sections.items():
        base[name] = {**base.get(name, {}), **values}
    return make_config(tmp_path, urls, **base)


async def crawl_recording_jobs(cfg, watchdog_seed):
    """Crawl on the fake browser; returns the crawler, the store and, per job, its tab's
    target id, when its page job started (= when its watchdog was armed: nothing awaits
    in between), its deadline, and when it ended."""
    jobs: list[dict] = []

    async def recording_run_route(router, sessions, tab, request, *args):
        job = {"url": request.url, "target": tab.target_id, "started": trio.current_time()}
        job["deadline"] = trio.current_effective_deadline()
        jobs.append(job)
        try:
            return await run_route(router, sessions, tab, request, *args)
        finally:
            job["ended"] = trio.current_time()

    browsers = FakeBrowsers(random.Random(1))
    store = SqliteStore(cfg.output.db, threads=False)
    engine = Crawler(
        cfg,
        store,
        open_browser=browsers,
        rng=random.Random(2),
        watchdog=Watchdog(cfg.watchdog.timeout_s, cfg.watchdog.jitter_s, rng=random.Random(watchdog_seed)),
        run_route=recording_run_route,
        read_memory=no_memory_reading,
    )
    with virtual_store_time():
        assert await engine.run() == "finished"
        problems = browsers.problems + await outcome_problems(store, list(cfg.input.urls), browsers)
    return engine, store, jobs, browsers, problems


async def test_a_hung_job_is_cancelled_exactly_at_its_jittered_deadline(autojump_clock, tmp_path):
    """A page whose server never answers: the engine's job is cancelled at exactly its
    start + timeout + its jitter draw, and recorded as a timeout."""
    url = shop_url("hang", 1)
    cfg = crawl_config(tmp_path, [url], watchdog={"timeout_s": 20.0, "jitter_s": 6.0})
    engine, store, jobs, _, problems = await crawl_recording_jobs(cfg, 11)
    assert problems == []
    (job,) = jobs
    assert job["deadline"] - job["started"] == pytest.approx(20.0 + random.Random(11).uniform(0, 6.0), abs=1e-9)
    assert job["ended"] == job["deadline"]
    assert engine.statistics().jobs.watchdog_expiries == 1
    assert (await store.url_state(url))["last_error"].startswith("timeout")


async def test_jobs_started_together_expire_spread_over_the_jitter_window(autojump_clock, tmp_path):
    """Eight hung jobs start at the same moment; their watchdogs expire at eight
    different moments spread over the 30 s window (not all at 300 s), and each cleans
    up on its own."""
    urls = [shop_url("hang", i) for i in range(1, 9)]
    cfg = crawl_config(tmp_path, urls, watchdog={"timeout_s": 300.0, "jitter_s": 30.0})
    _, _, jobs, _, problems = await crawl_recording_jobs(cfg, 3)
    assert problems == []
    starts = [job["started"] for job in jobs]
    assert max(starts) - min(starts) < 0.5  # started together
    ends = sorted(job["ended"] for job in jobs)
    assert all(300.0 <= job["ended"] - job["started"] <= 330.0 for job in jobs)
    assert ends[-1] - ends[0] > 15.0, ends  # spread over the window
    assert min(b - a for a, b in zip(ends, ends[1:], strict=False)) > 0.5, ends  # no two together


async def test_cleanup_after_expiry_is_bounded_when_the_browser_never_answers_the_close(
    autojump_clock, tmp_path, monkeypatch
):
    """A hung page whose tab the browser will not close (Page.close, Target.closeTarget
    and Page.crash never answer): after the watchdog fires, the lease still ends within
    the tab-close deadline, the tab is counted as leaked, it is never leased again, and
    the crawl goes on with the other pages."""
    urls = [shop_url("unclosable", 1)] + [shop_url("product", i) for i in range(1, 7)]
    cfg = crawl_config(tmp_path, urls, pool={"concurrency": 2}, watchdog={"timeout_s": 5.0, "jitter_s": 0.0})
    released: list[tuple[float, str]] = []
    original_release = crawler.browser.pool.TabPool.release

    async def recording_release(self, lease):
        await original_release(self, lease)
        released.append((trio.current_time(), lease.tab.target_id))

    monkeypatch.setattr(crawler.browser.pool.TabPool, "release", recording_release)
    engine, store, jobs, browsers, problems = await crawl_recording_jobs(cfg, 0)
    assert problems == []
    hung = next(job for job in jobs if "unclosable" in job["url"])
    assert hung["ended"] == hung["deadline"] == hung["started"] + 5.0
    released_at = next(t for t, target in released if target == hung["target"])
    # The close never answered, so it took its whole bound, and not a moment more.
    assert released_at - hung["ended"] == pytest.approx(cfg.pool.tab_close_timeout_s, abs=1e-9)
    assert [job["url"] for job in jobs if job["target"] == hung["target"]] == [hung["url"]]
    assert browsers.leaked[0][0] == 1  # counted, not silently dropped
    stats = engine.statistics()
    assert stats.browser.pool_totals.leases_acquired == stats.browser.pool_totals.leases_released == len(jobs)
    assert stats.jobs.done == 6 and (await store.url_state(urls[0]))["last_error"].startswith("timeout")
