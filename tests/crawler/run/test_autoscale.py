"""The autoscaler at work, on fakes under trio's MockClock: the workers' slots and the
pace's counts it reads, the one figure it applies to the slots and to the pool, the
memory throttle's cap winning, and what its figures say."""

from __future__ import annotations

import functools
import math
import re
from collections.abc import Callable

import pytest
import trio
import trio.testing
from prometheus_client import generate_latest

from crawler import config as config_mod
from crawler.demo import expected_item, serve_demo
from crawler.observe import metrics
from crawler.observe.stats import MemoryStatistics
from crawler.observe.summary import format_summary
from crawler.policy.autoscale import COOLDOWN_TICKS, Load
from crawler.policy.ratelimit import HostRateLimiter
from crawler.run.autoscale import SETTLE_S, Autoscale
from crawler.run.slots import TimedCount, WatchedPace, WorkerLoad, WorkerSlots
from tests.crawler.conftest import CurrentPool, crawl, make_config


class FakePool:
    """What the autoscaler uses of a TabPool: its concurrency, and who set it."""

    def __init__(self, concurrency: int):
        self.concurrency = concurrency
        self.settings: list[int] = []

    def set_concurrency(self, value: int) -> None:
        self.concurrency = value
        self.settings.append(value)


class FakeWorkers:
    """A job runner's load: every slot busy all the time, with the 429s it is told."""

    def __init__(self, slots: WorkerSlots):
        self.slots = slots
        self.slow_downs = 0
        self.outcomes = 0
        self._busy_s = 0.0
        self._at = 0.0

    def load(self) -> WorkerLoad:
        now = trio.current_time()
        self._busy_s += self.slots.limit * (now - self._at)
        self._at = now
        self.outcomes += 10
        return WorkerLoad(
            at=now,
            limit=self.slots.limit,
            busy=self.slots.limit,
            busy_s=self._busy_s,
            idle=0,
            idle_s=0.0,
            pace_waiting=0,
            pace_waiting_s=0.0,
            slow_downs=self.slow_downs,
            outcomes=self.outcomes,
        )


def memory_stats(*, pss_mb: int = 0, budget_mb: int = 0, cap: int = 16, sampled_at: float | None = None):
    return MemoryStatistics(
        browser_pss=pss_mb * 2**20,
        browser_processes=5,
        crawler_pss=50 * 2**20,
        peak_browser_pss=pss_mb * 2**20,
        budget_bytes=budget_mb * 2**20,
        throttle_level=0,
        concurrency=cap,
        recycle_tab_every=10,
        sampled_at=sampled_at,
    )


def auto_pool(**pool) -> config_mod.PoolSection:
    return config_mod.PoolSection(concurrency="auto", **pool)


def make(slots: WorkerSlots, pool: FakePool | None, memory=lambda: memory_stats(), cpu: float = 0.1, **section):
    workers = FakeWorkers(slots)

    async def read_machine() -> tuple[float, int]:
        await trio.lowlevel.checkpoint()
        return cpu, 8 * 2**30

    scaler = Autoscale(
        auto_pool(**section),
        slots=slots,
        load=workers.load,
        memory=memory,
        pool=lambda: pool,
        read_machine=read_machine,
    )
    return scaler, workers


async def test_slots_gate_the_workers_and_a_raised_limit_lets_the_waiting_ones_in(autojump_clock):
    slots = WorkerSlots(2)
    inside, most = 0, 0

    async def worker():
        nonlocal inside, most
        async with slots.slot():
            inside += 1
            most = max(most, inside)
            await trio.sleep(1)
            inside -= 1

    async with trio.open_nursery() as nursery:
        for _ in range(6):
            nursery.start_soon(worker)
        await trio.sleep(0.5)
        assert (slots.busy.value, most) == (2, 2)
        slots.set_limit(4)
        await trio.sleep(0.1)
        assert slots.busy.value == 4
    assert most == 4
    # 2 slots for 1 s, then 4 for 1 s (the 2 still inside and 2 let in), then what is left.
    assert slots.busy.area() == pytest.approx(6.0)


async def test_timed_count_integrates_its_value_over_time(autojump_clock):
    count = TimedCount()
    count.add(2)
    await trio.sleep(1.5)
    count.add(-1)
    await trio.sleep(2.0)
    assert count.area() == pytest.approx(2 * 1.5 + 1 * 2.0)
    with count.counting():
        await trio.sleep(1.0)
    assert (count.value, count.area()) == (1, pytest.approx(5.0 + 2.0))


async def test_watched_pace_counts_jobs_waiting_for_their_hosts_turn_and_the_slow_downs(autojump_clock):
    pace = WatchedPace(HostRateLimiter((1000, 1000)))
    waiting_seen = []

    async def request():
        async with pace.hold("http://shop.test/p"):
            waiting_seen.append(pace.waiting.value)

    async with trio.open_nursery() as nursery:
        for _ in range(3):
            nursery.start_soon(request)
    # Turns a second apart: the first waits 0 s, the second 1 s, the third 2 s.
    assert waiting_seen == [2, 1, 0]
    assert pace.waiting.area() == pytest.approx(3.0)
    await pace.back_off("http://shop.test/p", 5.0)
    assert pace.slow_downs == 1


async def test_tick_applies_one_figure_to_the_slots_and_the_pool_and_says_why(autojump_clock):
    slots, pool = WorkerSlots(1), FakePool(1)
    scaler, _ = make(slots, pool)
    assert (slots.limit, scaler.statistics().reason) == (1, "")
    scaler.tick(Load(busy=1.0, cpu=0.1))
    assert (slots.limit, pool.concurrency, pool.settings) == (2, 2, [2])
    stats = scaler.statistics()
    assert (stats.concurrency, stats.reason, stats.changes, stats.minimum, stats.maximum) == (
        2,
        "scale_up",
        {"scale_up": 1},
        1,
        16,
    )
    scaler.tick(Load(busy=1.0, cpu=0.1))  # half the slots busy: held, nothing applied again
    assert (slots.limit, pool.settings, scaler.statistics().held_by) == (2, [2], "idle")


async def test_the_memory_throttles_cap_wins_and_counts_as_a_memory_change(autojump_clock):
    slots, pool = WorkerSlots(1), FakePool(1)
    cap = [16]
    scaler, _ = make(slots, pool, memory=lambda: memory_stats(cap=cap[0]))
    for _ in range(4):
        scaler.tick(Load(busy=float(slots.limit), cpu=0.1))
    assert slots.limit == 16
    cap[0] = 8  # the throttle's pressure level: half of max_concurrency
    scaler.tick(Load(busy=16.0, cpu=0.1))
    assert (slots.limit, pool.concurrency) == (8, 8)
    stats = scaler.statistics()
    assert (stats.reason, stats.changes) == ("memory", {"scale_up": 4, "memory": 1})
    cap[0] = 16  # the throttle lets go: the autoscaler does not jump back
    scaler.tick(Load(busy=8.0, cpu=0.1))
    assert slots.limit == 8


async def test_run_scales_up_to_the_maximum_and_never_past_it_then_halves_on_429s(autojump_clock):
    """The first tick after a second: 1 to 2; then a tick every half second while it
    grows: 4, 8, then 12 (the maximum) at 2.5 s, held there; a 429 halves it at the next
    tick, once per cooldown."""
    slots, pool = WorkerSlots(1), FakePool(1)
    scaler, workers = make(slots, pool, max_concurrency=12)
    seen = []

    async def watch(until: Callable[[], bool]) -> None:
        with trio.fail_after(60):
            while not until():
                await trio.sleep(0.05)
                seen.append(slots.limit)

    async with trio.open_nursery() as nursery:
        nursery.start_soon(scaler.run)
        await watch(lambda: slots.limit == 12)
        assert sorted(set(seen)) == [1, 2, 4, 8, 12] and pool.concurrency == 12  # doubling, capped
        assert trio.current_time() == pytest.approx(2.5, abs=0.06)
        await trio.sleep(5.0)
        assert slots.limit == 12 and scaler.statistics().held_by == "max"
        workers.slow_downs += 1
        await watch(lambda: slots.limit != 12)
        assert (slots.limit, pool.concurrency, scaler.statistics().reason) == (6, 6, "status_429")
        for _ in range(COOLDOWN_TICKS):
            workers.slow_downs += 1  # the pages already sent: no second decrease
            await trio.sleep(0.5)
        assert slots.limit == 6
        nursery.cancel_scope.cancel()
    assert max(seen) == 12


async def test_memory_from_before_the_last_change_does_not_count_as_fresh(autojump_clock):
    """With a budget, a reading must have begun SETTLE_S after the last change: growth
    waits for it, and then the projection decides."""
    slots = WorkerSlots(1)
    stats = [memory_stats(pss_mb=300, budget_mb=1000, sampled_at=0.0)]
    scaler, _ = make(slots, None, memory=lambda: stats[0])
    await trio.sleep(1.0)
    assert (await scaler.read()).memory == pytest.approx(0.3)
    scaler.tick(Load(busy=1.0, cpu=0.1, memory=0.3, memory_fresh=True))
    assert slots.limit == 2  # 1 + (0.75 - 0.3) / 0.15 = 4: the doubling's 2
    changed = trio.current_time()
    load = await scaler.read()
    assert (load.memory, load.memory_fresh) == (pytest.approx(0.3), False)
    assert scaler.tick(load).held_by == "memory"
    stats[0] = memory_stats(pss_mb=350, budget_mb=1000, sampled_at=changed + SETTLE_S)
    load = await scaler.read()
    assert load.memory_fresh
    assert scaler.tick(Load(busy=2.0, cpu=0.1, memory=load.memory)).concurrency == 4


async def test_without_a_budget_memory_is_judged_against_what_the_machine_has_free(autojump_clock):
    slots = WorkerSlots(1)
    scaler, _ = make(slots, None, memory=lambda: memory_stats(pss_mb=1024, sampled_at=-math.inf))
    load = await scaler.read()
    # 1 GiB used, 8 GiB free of which half is the browser's to take: 1 / (1 + 4).
    assert load.memory == pytest.approx(0.2) and load.memory_fresh
    nothing = make(WorkerSlots(1), None, memory=lambda: memory_stats())[0]
    assert (await nothing.read()).memory is None  # no browser measured: no memory signal


@pytest.mark.chromium
@pytest.mark.timeout(60)
async def test_an_auto_crawl_of_the_demo_shop_finishes_every_page_and_reports_its_changes(tmp_path, nursery):
    """End to end, real Chromium: concurrency = "auto" (1 to 6) on 40 of the demo shop's
    product pages finishes every one with its exact item; it scaled up at least once,
    the metrics say so (crawler_concurrency_changes_total{reason="scale_up"}, the
    crawler_concurrency gauge), the pool never leased more than 6 tabs at once, and the
    summary's settings line gives the bounds, the end figure and the changes."""
    site = await nursery.start(functools.partial(serve_demo, 40))
    urls = [f"{site.url}/product/{i}" for i in range(1, 41)]
    cfg = make_config(tmp_path, urls, pool={"concurrency": "auto", "max_concurrency": 6})
    current = CurrentPool()
    leases = []

    async def watch_leases():
        while True:
            if current.pool is not None:
                leases.append(current.pool.statistics().leases)
            await trio.sleep(0.01)

    nursery.start_soon(watch_leases)
    started = trio.current_time()
    c, store, reason = await crawl(cfg, open_pool=current)
    assert reason == "finished"
    assert trio.current_time() - started < 20
    items = {item["url"]: item for item in await store.items()}
    assert items == {u: expected_item(site.url, i) for i, u in enumerate(urls, 1)}

    text = generate_latest(metrics.build_registry(c.statistics, metrics.Heartbeat())).decode()
    scaled = re.search(r'^crawler_concurrency_changes_total\{reason="scale_up"\} (\S+)$', text, re.M)
    assert scaled and float(scaled.group(1)) >= 1, text
    gauge = re.search(r"^crawler_concurrency (\S+)$", text, re.M)
    assert gauge and 1 <= float(gauge.group(1)) <= 6
    assert leases and max(leases) <= 6
    summary = await c.summary()
    assert summary["concurrency"] == "auto" and summary["autoscale"]["changes"]["scale_up"] >= 1
    assert "settings        concurrency auto (1-6): ended at " in format_summary(summary)
