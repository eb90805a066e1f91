"""Memory-aware recycling: auto intervals from the budget, and the budget throttle."""

from __future__ import annotations

import psutil
import pytest
import trio

from crawler.observe.memory import MemoryReading, MemoryThrottle
from crawler.observe.pss import self_pss
from crawler.run.engine import Crawler
from crawler.store.sqlite import SqliteStore
from tests.crawler.conftest import make_config
from tests.crawler.observe.conftest import wait_until, warnings_about

MiB = 2**20


@pytest.mark.parametrize(
    ("budget_mb", "low", "high"),
    [(2048, 3, 5), (4096, 3, 5), (8192, 5, 10), (16384, 10, 15), (65536, 10, 15)],
)
def test_auto_recycle_interval_follows_the_seed_table_for_the_budget(tmp_path, budget_mb, low, high):
    """recycle_tab_every = "auto" with [pool] memory_budget_mb: 3-5 pages per tab on
    4 GB, 5-10 on 8 GB, 10-15 on 16 GB (and no more than 15 above)."""
    cfg = make_config(
        tmp_path, ["http://127.0.0.1:9/x"], pool={"recycle_tab_every": "auto", "memory_budget_mb": budget_mb}
    )
    stats = Crawler(cfg, SqliteStore(cfg.output.db)).statistics()
    assert low <= stats.recycle_tab_every <= high
    # A throttle is set up, and at its normal level it keeps that interval.
    assert stats.memory.budget_bytes == budget_mb * MiB and stats.memory.throttle_level == 0
    assert stats.memory.recycle_tab_every == stats.recycle_tab_every


def test_auto_recycle_interval_without_a_budget_uses_the_machine_memory(tmp_path, monkeypatch):
    """Without a budget, "auto" reads the machine's memory: 8 GB gives 5-10 pages, and
    no throttle is set up."""
    total = psutil.virtual_memory()._replace(total=8192 * MiB)
    monkeypatch.setattr(psutil, "virtual_memory", lambda: total)
    cfg = make_config(tmp_path, ["http://127.0.0.1:9/x"], pool={"recycle_tab_every": "auto"})
    stats = Crawler(cfg, SqliteStore(cfg.output.db)).statistics()
    assert 5 <= stats.recycle_tab_every <= 10
    assert stats.memory.budget_bytes == 0  # no throttle


def test_throttle_levels_rise_at_85_and_100_percent_and_fall_only_below_85_and_70():
    """Hysteresis: pressure above 85% (half the tabs, recycle twice as often), over
    budget above 100% (one tab, recycle every page); down to pressure below 85%, back
    to the configured settings only below 70%."""
    throttle = MemoryThrottle(1000 * MiB, base_concurrency=8, base_recycle_every=10)
    steps = [
        (500, 0, False),
        (840, 0, False),  # between the thresholds, from below: stays normal
        (860, 1, True),
        (750, 1, False),  # between the thresholds, from above: stays throttled
        (1010, 2, True),
        (900, 2, False),
        (800, 1, True),
        (690, 0, True),
        (1200, 2, True),
        (100, 0, True),
    ]
    for pss_mb, level, changed in steps:
        assert throttle.update(pss_mb * MiB) is changed, pss_mb
        assert throttle.level == level, pss_mb
        assert (throttle.concurrency, throttle.recycle_tab_every) == [(8, 10), (4, 5), (1, 1)][level]
    odd = MemoryThrottle(1000 * MiB, base_concurrency=3, base_recycle_every=1, level=1)
    assert (odd.concurrency, odd.recycle_tab_every) == (2, 1)


@pytest.mark.chromium
async def test_budget_throttle_lowers_concurrency_near_the_budget_and_restores_it(shop, tmp_path, nursery, engine_log):
    """With injected browser PSS readings against a 1000 MiB budget: at 90% the pool
    goes to half its tabs and recycles twice as often, over 100% to one lease at a
    time and a tab per page, at 80% back to half, and at 60% to the configured
    settings; each change is one warning line.  Leases held at a change finish their page; tabs left idle serve one more page.
    The crawl goes on throughout."""
    urls = [f"{shop.base}/slow/{i}?s=0.15" for i in range(1, 121)]
    cfg = make_config(
        tmp_path,
        urls,
        pool={"concurrency": 4, "recycle_tab_every": 6, "memory_budget_mb": 1000},
        monitor={"sample_interval_s": 0.05, "invariant_interval_s": 0.2},
    )
    reading = {"pss": 300 * MiB}

    async def read_memory(pid):  # the browser tree's PSS injected; the crawler's own measured
        return MemoryReading(reading["pss"] if pid else 0, 5, await trio.to_thread.run_sync(self_pss))

    crawler = Crawler(cfg, SqliteStore(cfg.output.db), read_memory=read_memory)
    observed: list[tuple[int, int, int]] = []  # (level, pool concurrency, leases held)

    def pool():
        return crawler.statistics().browser.pool

    async def watch():
        while True:
            stats = crawler.statistics()
            if stats.browser.pool is not None:
                observed.append(
                    (stats.memory.throttle_level, stats.browser.pool.concurrency, stats.browser.pool.leases)
                )
            await trio.sleep(0.005)

    async def settle(pss_mb: int, concurrency: int, recycle: int) -> None:
        reading["pss"] = pss_mb * MiB
        await wait_until(
            lambda: (
                (stats := pool()) is not None and (stats.concurrency, stats.recycle_tab_every) == (concurrency, recycle)
            )
        )

    async def drive():
        await wait_until(lambda: crawler.statistics().jobs.done >= 4, timeout_s=30)
        assert pool().concurrency == 4 and pool().recycle_tab_every == 6
        await settle(900, 2, 3)
        await settle(1100, 1, 1)
        # Leases already held finish their page; after that, one at a time.
        await wait_until(lambda: pool().leases <= 1)
        # Tabs left idle before the change serve one more page each; from then on
        # every page gets a fresh tab, recycled after it.
        mark = len(observed)
        opened = pool().tabs_opened
        await wait_until(lambda: pool().tabs_opened >= opened + 3)
        assert max(leases for _, _, leases in observed[mark:]) <= 1
        first_fresh = pool()
        await wait_until(lambda: pool().tabs_recycled >= first_fresh.tabs_recycled + 2)
        now = pool()
        assert now.leases_released - first_fresh.leases_released <= now.tabs_recycled - first_fresh.tabs_recycled
        await settle(800, 2, 3)
        await settle(600, 4, 6)
        crawler.stop()

    nursery.start_soon(watch)
    nursery.start_soon(drive)
    reason = await crawler.run()
    assert reason == "interrupted"  # stopped by drive() once every step was seen
    changes = warnings_about(engine_log, "of the 1000 MiB budget")
    assert len(changes) == 4, changes
    assert "pressure, concurrency 4 -> 2, recycling tabs every 6 -> 3 pages" in changes[0]
    assert "over budget, concurrency 2 -> 1, recycling tabs every 3 -> 1 pages" in changes[1]
    assert "pressure, concurrency 1 -> 2" in changes[2]
    assert "normal, concurrency 2 -> 4, recycling tabs every 3 -> 6 pages" in changes[3]
    stats = crawler.statistics()
    assert not stats.jobs.failed
    assert stats.invariants.violations == 0
