"""Property tests: the real engine against a fake browser behind a chaos layer.

Each example is one seed and one fault plan (see ``tests/fake/chaos.py``): the seed
picks the crawl (URLs with hung, busy, unclosable, crashing, popup-opening and never-ready pages
among good ones; concurrency; recycle and rotate intervals; watchdog, command and
close deadlines; latencies); the plan delays, fails, drops the reply of, or cancels
the caller of chosen commands, cuts the websocket, or wedges the browser.  A caller
cancelled inside a job is the job's watchdog expiring at that await; one cancelled
outside a job (leasing, recycling, rotating, the popup closer, the monitors) is the
crawl being stopped there, as by SIGINT.  A stopped crawl is resumed with a new
``Crawler`` on the same store, as the command line would be.  Everything runs under
trio's ``MockClock`` (autojump): minutes of virtual time take milliseconds, and
trio's scheduler is made deterministic, so an example replays exactly.

After every example, whatever happened:

- every URL is in exactly one terminal state: done once with the right item, or
  failed with a reason; no URL was loaded again after it was done; no job is left in
  flight and no URL in progress after any run;
- every lease acquired was released (summed over runs and browser restarts);
- during the crawl, every 20 ms of virtual time, the fake browser's tabs and contexts
  were exactly the pool's, give or take what was in transit at that checkpoint or
  counted as leaked; when the engine was done with a browser, the browser held
  nothing but what was counted as leaked; once the connection closed, it held no
  waiter, session or subscription, and the browser nothing at all.

A failure prints its seed and the faults applied; Hypothesis prints the example
(``seed=..., faults=...``): replay it with ``CHAOS_SEED`` / ``CHAOS_FAULTS`` and
:func:`test_replay`, or pin it with ``@example``.

Examples per run: ``CHAOS_EXAMPLES`` (default 150, about 12 s on one core); the soak
variant runs ``SOAK_EXAMPLES`` (3000, about 7 min: ``pytest -m soak tests/crawler/run/test_chaos.py``).
"""

from __future__ import annotations

import contextlib
import os
import random
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import attrs
import pytest
import trio
import trio.testing
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import cdp
from crawler.config import Config
from crawler.run.engine import Crawler
from crawler.run.supervisor import BROWSER_PING_INTERVAL_S, RESTART_BACKOFF_S
from crawler.store.sqlite import SqliteStore
from tests.crawler.conftest import CurrentPool, make_config
from tests.fake.browser import shop_url
from tests.fake.chaos import KINDS, ChaosPlan, ChaosWatchdog, Fault
from tests.fake.harness import FakeBrowsers, no_memory_reading, outcome_problems, virtual_store_time, watch_pool

CI_EXAMPLES = int(os.environ.get("CHAOS_EXAMPLES", "150"))
SOAK_EXAMPLES = int(os.environ.get("CHAOS_SOAK_EXAMPLES", "3000"))
MAX_RUNS = 20  # resumptions after a stop; a plan holds fewer faults than this
VIRTUAL_BUDGET_S = 4 * 3600.0  # a run that has not finished by then is stuck

faults_strategy = st.dictionaries(
    keys=st.integers(min_value=1, max_value=400),
    values=st.builds(Fault, kind=st.sampled_from(KINDS), delay_s=st.sampled_from([0.01, 0.2, 1.0, 5.0, 60.0])),
    max_size=8,
)


@attrs.define
class Outcome:
    problems: list[str]
    engines: list[Crawler]
    browsers: FakeBrowsers
    plan: ChaosPlan


async def crawl_through_chaos(cfg: Config, urls: list[str], plan: ChaosPlan, seed: int) -> Outcome:
    """Crawl ``urls`` on fake browsers behind ``plan``, resuming after each stop, and
    return every broken invariant (the module docstring lists them)."""
    browsers = FakeBrowsers(
        random.Random(seed),
        plan=plan,
        command_timeout_s=cfg.browser.command_timeout_s,
        latency_s=(0.001, random.Random(seed).choice([0.01, 0.05])),
    )
    problems: list[str] = []
    engines: list[Crawler] = []
    store = SqliteStore(cfg.output.db, threads=False)
    try:
        for run in range(MAX_RUNS):
            rng = random.Random(seed + run)
            watchdog = ChaosWatchdog(cfg.watchdog.timeout_s, cfg.watchdog.jitter_s, rng=rng)
            current = CurrentPool()
            engine = Crawler(
                cfg,
                store,
                open_browser=browsers,
                open_pool=current,
                rng=rng,
                watchdog=watchdog,
                read_memory=no_memory_reading,  # the default reads /proc in a thread: real time, not virtual
            )
            engines.append(engine)

            def cancel_caller(watchdog: ChaosWatchdog = watchdog, engine: Crawler = engine) -> None:
                scope = watchdog.current_job_scope()
                if scope is not None:
                    scope.cancel()  # the job's watchdog expires at this await
                else:
                    engine.stop()  # SIGINT at this await

            plan.on_cancel = cancel_caller
            async with trio.open_nursery() as nursery:
                nursery.start_soon(watch_pool, lambda current=current: current.pool, browsers, problems)
                with trio.move_on_after(VIRTUAL_BUDGET_S) as budget:
                    reason = await engine.run()
                nursery.cancel_scope.cancel()
            if budget.cancelled_caught:
                problems.append(f"run {run} did not finish within {VIRTUAL_BUDGET_S} s (virtual)")
                break
            if in_flight := engine.statistics().jobs.in_flight:
                problems.append(f"run {run}: {in_flight} jobs still in flight after the run")
            if in_progress := await store.in_progress_urls():
                problems.append(f"run {run}: URLs still in progress after the run: {sorted(in_progress)}")
            if reason == "finished":
                break
        else:
            problems.append(f"not finished after {MAX_RUNS} runs")
        acquired = sum(e.statistics().browser.pool_totals.leases_acquired for e in engines)
        released = sum(e.statistics().browser.pool_totals.leases_released for e in engines)
        if acquired != released:
            problems.append(f"leases acquired {acquired} != released {released}")
        problems += browsers.problems
        problems += await outcome_problems(store, urls, browsers)
    finally:
        store.close()
    return Outcome(problems, engines, browsers, plan)


def explain(seed: int, outcome: Outcome) -> str:
    return (
        f"seed={seed}: {len(outcome.problems)} problem(s):\n  "
        + "\n  ".join(outcome.problems[:20])
        + f"\nfaults applied: {outcome.plan.describe()}"
    )


def choose_urls(rng: random.Random) -> list[str]:
    urls = [shop_url("product", i) for i in range(1, rng.randint(6, 14))]
    for n, kind in enumerate(("hang", "busy", "crash", "popups", "never", "slow", "status/503", "unclosable")):
        if rng.random() < 0.4:
            query = "times=1&retry_after=1" if kind == "status/503" else ("s=0.5" if kind == "slow" else "")
            urls.append(shop_url(kind, 20 + n, query))
    rng.shuffle(urls)
    return urls


def choose_config(rng: random.Random, tmp: Path, urls: list[str]) -> Config:
    return make_config(
        tmp,
        urls,
        browser={"command_timeout_s": rng.choice([0.5, 2.0, 10.0]), "restart_limit": 8},
        pool={
            "concurrency": rng.choice([1, 2, 3, 4, 6]),
            "recycle_tab_every": rng.choice([1, 2, 3, 5, 100]),
            "rotate_context_every": rng.choice([1, 2, 3, 5, 8]),
            "tab_close_timeout_s": rng.choice([0.3, 1.0, 3.0]),
            "context_dispose_timeout_s": rng.choice([0.5, 2.0]),
        },
        watchdog={"timeout_s": rng.choice([0.15, 0.3, 0.6, 2.0, 30.0]), "jitter_s": rng.choice([0.0, 0.1, 0.5])},
        retry={"max_attempts": rng.choice([1, 2, 3]), "backoff_s": [0.01, 0.5]},
        monitor={"invariant_interval_s": 1.0, "sample_interval_s": 1e6, "progress_interval_s": 1e6},
    )


async def random_scenario(seed: int, faults: dict[Any, Fault], tmp: Path) -> None:
    rng = random.Random(seed)
    urls = choose_urls(rng)
    outcome = await crawl_through_chaos(choose_config(rng, tmp, urls), urls, ChaosPlan(faults), seed)
    assert not outcome.problems, explain(seed, outcome)


@contextmanager
def deterministic_scheduling(seed: int) -> Iterator[None]:
    """Make trio's scheduler deterministic for one run (pytest-trio does this under
    Hypothesis), so that an example replays the same, outside pytest too."""
    run = trio._core._run
    state, allowed = run._r.getstate(), run._ALLOW_DETERMINISTIC_SCHEDULING
    run._ALLOW_DETERMINISTIC_SCHEDULING = True
    run._r.seed(seed)
    try:
        yield
    finally:
        run._r.setstate(state)
        run._ALLOW_DETERMINISTIC_SCHEDULING = allowed


def run_example(seed: int, faults: dict[Any, Fault]) -> None:
    """One example in its own trio run, with a fresh mock clock and database."""
    with tempfile.TemporaryDirectory(prefix="chaos-") as tmp, virtual_store_time(), deterministic_scheduling(seed):
        trio.run(random_scenario, seed, faults, Path(tmp), clock=trio.testing.MockClock(autojump_threshold=0))


_SETTINGS: dict[str, Any] = dict(deadline=None, suppress_health_check=[HealthCheck.too_slow], print_blob=True)


@settings(max_examples=CI_EXAMPLES, **_SETTINGS)
@given(seed=st.integers(min_value=0, max_value=2**32 - 1), faults=faults_strategy)
def test_every_url_ends_once_and_nothing_leaks_whatever_the_browser_does(seed, faults):
    """The invariants of the module docstring hold for any seed and fault plan."""
    run_example(seed, faults)


@pytest.mark.soak
@pytest.mark.timeout(3 * 3600)  # the suite's per-test limit is for one example's worth
@settings(max_examples=SOAK_EXAMPLES, **_SETTINGS)
@given(seed=st.integers(min_value=0, max_value=2**32 - 1), faults=faults_strategy)
def test_soak_every_url_ends_once_and_nothing_leaks(seed, faults):
    """The same property over many more examples (``pytest -m soak``)."""
    run_example(seed, faults)


@pytest.mark.skipif("CHAOS_SEED" not in os.environ, reason="set CHAOS_SEED (and CHAOS_FAULTS) to replay one example")
def test_replay():
    """Replay one example: ``CHAOS_SEED=123 CHAOS_FAULTS='{5: Fault("drop")}' pytest tests/crawler/run/test_chaos.py -k replay``."""
    faults = eval(os.environ.get("CHAOS_FAULTS", "{}"), {"Fault": Fault})  # noqa: S307 - the tester's own input
    run_example(int(os.environ["CHAOS_SEED"]), faults)


# -- regressions: each bug the property found, aimed at its command by method ------------


def fixed_config(tmp_path: Path, urls: list[str], **sections: dict[str, Any]) -> Config:
    base = {
        "browser": {"command_timeout_s": 2.0},
        "pool": {"concurrency": 2, "tab_close_timeout_s": 3.0, "context_dispose_timeout_s": 5.0},
        "watchdog": {"timeout_s": 30.0, "jitter_s": 0.0},
        "monitor": {"invariant_interval_s": 1.0, "sample_interval_s": 1e6},
    }
    for name, values in sections.items():
        base[name] = {**base.get(name, {}), **values}
    tmp_path.mkdir(parents=True, exist_ok=True)
    return make_config(tmp_path, urls, **base)


async def test_a_stop_while_pages_load_leaves_every_job_pending(autojump_clock, tmp_path):
    """Stopped while jobs are inside run_route (whose nursery then raises the Cancelled
    of its body and of its tasks together), every in-flight job is released: none is
    left in flight or in progress, and the resumed crawl completes.  (Found with seed
    3280387012: the group of Cancelled slipped past the engine's ``except Cancelled``.)"""
    urls = [shop_url("never", i) for i in range(1, 3)] + [shop_url("product", i) for i in range(1, 5)]
    cfg = fixed_config(tmp_path, urls, watchdog={"timeout_s": 5.0}, retry={"max_attempts": 1})
    plan = ChaosPlan({("Target.getBrowserContexts", 1): Fault("cancel")})  # the engine's own check, at t=1 s
    with virtual_store_time():
        outcome = await crawl_through_chaos(cfg, urls, plan, seed=1)
    assert outcome.problems == [], explain(1, outcome)
    assert len(outcome.engines) == 2 and plan.applied


async def test_a_stop_while_a_tab_is_being_created_leaves_no_stray_target(autojump_clock, tmp_path):
    """Stopped while the browser creates a tab (or a context), the new target is owned
    and closed: the browser never holds a tab nobody knows the id of.  (Found with seed
    1302957853, when a watchdog could expire there.)"""
    urls = [shop_url("product", i) for i in range(1, 7)]
    for method in ("Target.createTarget", "Target.createBrowserContext"):
        plan = ChaosPlan({(method, 2): Fault("cancel")})
        with virtual_store_time():
            outcome = await crawl_through_chaos(
                fixed_config(tmp_path / method.split(".")[1], urls, pool={"rotate_context_every": 2}),
                urls,
                plan,
                seed=2,
            )
        assert outcome.problems == [], explain(2, outcome)
        assert len(outcome.engines) == 2 and plan.applied


async def test_a_capture_whose_body_cannot_be_read_is_retried_not_recorded_empty(autojump_clock, tmp_path):
    """``Network.getResponseBody`` fails: the page is retried and done with its capture,
    never recorded done without it.  (Found with seed 2419240808.)"""
    urls = [shop_url("product", i) for i in range(1, 4)]
    plan = ChaosPlan({("Network.getResponseBody", 1): Fault("fail")})
    with virtual_store_time():
        outcome = await crawl_through_chaos(fixed_config(tmp_path, urls), urls, plan, seed=3)
    assert outcome.problems == [], explain(3, outcome)
    assert outcome.engines[0].statistics().jobs.retries == 1


async def test_a_reused_tab_records_none_of_the_previous_pages_late_responses(autojump_clock, tmp_path):
    """Tabs are reused without a reset between jobs: a ``late`` page's fetches of
    another product's API go on arriving, under its loaderId, while the tab loads the
    next page.  Every item still holds its own product's capture: a job counts only the
    responses of its own documents."""
    urls = [shop_url("late", i) for i in range(1, 9)]
    cfg = fixed_config(tmp_path, urls, pool={"concurrency": 1, "recycle_tab_every": 100})
    with virtual_store_time():
        outcome = await crawl_through_chaos(cfg, urls, ChaosPlan({}), seed=5)
    assert outcome.problems == [], explain(5, outcome)
    assert outcome.engines[0].statistics().jobs.done == 8


async def test_a_tab_whose_close_fails_is_closed_another_way_or_counted_leaked(autojump_clock, tmp_path):
    """``Page.close`` and then ``Target.closeTarget`` fail for one tab: the tab is not
    taken for closed; the last step (crash, close again) closes it, so the browser
    holds no tab the pool does not own and none is leaked.  If that fails too, the tab
    is counted in ``leaked_tabs``.  (Found with seeds 53773209 and 1987924596.)"""
    urls = [shop_url("product", i) for i in range(1, 5)]
    cfg = fixed_config(tmp_path / "a", urls, pool={"recycle_tab_every": 1})
    plan = ChaosPlan({("Page.close", 1): Fault("fail"), ("Target.closeTarget", 1): Fault("fail")})
    with virtual_store_time():
        outcome = await crawl_through_chaos(cfg, urls, plan, seed=4)
    assert outcome.problems == [], explain(4, outcome)
    assert outcome.browsers.chromiums[0].commands["Page.crash"] == 1

    cfg = fixed_config(tmp_path / "b", urls, pool={"recycle_tab_every": 1})
    faults = {("Page.close", 1): Fault("fail"), ("Target.closeTarget", 1): Fault("fail")}
    faults[("Target.closeTarget", 2)] = Fault("drop")
    plan = ChaosPlan(faults)
    with virtual_store_time():
        outcome = await crawl_through_chaos(cfg, urls, plan, seed=4)
    assert outcome.browsers.leaked == [(1, 0)]
    # The browser closed it in the end (the dropped reply): the harness saw no stray.
    assert outcome.problems == [], explain(4, outcome)


async def test_concurrent_releases_in_a_rotating_context_retire_each_idle_tab_once(autojump_clock, tmp_path):
    """Six leases, no recycling, a context rotated every five pages: the leases of a
    draining context come back at the same time, and each release retires the
    context's idle tabs while the others do too.  Each idle tab is retired once and the
    context disposed once.  (Found by widening the chaos configurations: the releases
    raced over one list and the crawl died of ``ValueError: list.remove(x)``.)"""
    urls = [shop_url("product", i) for i in range(1, 41)]
    cfg = fixed_config(tmp_path, urls, pool={"concurrency": 6, "recycle_tab_every": 100, "rotate_context_every": 5})
    with virtual_store_time():
        outcome = await crawl_through_chaos(cfg, urls, ChaosPlan({}), seed=10)
    assert outcome.problems == [], explain(10, outcome)
    assert outcome.engines[0].statistics().browser.pool_totals.contexts_rotated >= 5


async def test_a_wedged_browser_is_replaced_and_the_crawl_goes_on(autojump_clock, tmp_path):
    """The browser stops answering (socket open, nothing comes back) in the middle of a
    crawl: the engine notices within its heartbeat and the command deadline, drops that
    browser without waiting out every close on it, and finishes the crawl on a new one,
    with every URL done exactly once."""
    urls = [shop_url("product", i) for i in range(1, 13)]
    cfg = fixed_config(tmp_path, urls, watchdog={"timeout_s": 60.0})
    plan = ChaosPlan({40: Fault("hang")})
    with virtual_store_time():
        outcome = await crawl_through_chaos(cfg, urls, plan, seed=5)
    assert outcome.problems == [], explain(5, outcome)
    stats = outcome.engines[0].statistics()
    assert [n for n, _, _ in plan.applied] == [40] and len(outcome.browsers.chromiums) == 2
    assert stats.jobs.done == len(urls) and stats.browser.restarts == 1
    # Noticed within heartbeat + command deadline; replaced after the first backoff step;
    # no close on the wedged browser waited out (each would take 3 s).
    assert trio.current_time() < BROWSER_PING_INTERVAL_S + 2.0 + RESTART_BACKOFF_S[0] + 3.0, trio.current_time()


async def test_pool_invariant_check_counts_nothing_in_transit_as_a_mismatch(autojump_clock, tmp_path):
    """``TabPool.check_invariants`` reads the browser's lists with two commands while
    tabs come and go: with a tab recycled after every page, none of many readings taken
    during the crawl reports a stray or missing tab or context, and the fake's own
    state agrees with the pool at every checkpoint."""
    urls = [shop_url("product", i) for i in range(1, 41)]
    cfg = fixed_config(tmp_path, urls, pool={"concurrency": 3, "recycle_tab_every": 1, "rotate_context_every": 4})
    browsers = FakeBrowsers(random.Random(1))
    store = SqliteStore(cfg.output.db, threads=False)
    current = CurrentPool()
    engine = Crawler(
        cfg, store, open_browser=browsers, open_pool=current, rng=random.Random(1), read_memory=no_memory_reading
    )
    reports, exact = [], []

    async def read_reports():
        while True:
            if (pool := current.pool) is not None:
                with contextlib.suppress(cdp.ConnectionLost):  # the last reading, as the crawl ends
                    reports.append(await pool.check_invariants())
            await trio.sleep(0.003)

    with virtual_store_time():
        async with trio.open_nursery() as nursery:
            nursery.start_soon(read_reports)
            nursery.start_soon(watch_pool, lambda: current.pool, browsers, exact)
            assert await engine.run() == "finished"
            nursery.cancel_scope.cancel()
    assert len(reports) > 50
    assert [r for r in reports if not r.ok] == []
    assert exact == [] and browsers.problems == []
    store.close()


@pytest.mark.parametrize("kind", ["cancel", "drop", "fail"])
def test_a_fault_at_each_command_in_turn(kind):
    """Not left to chance: a small crawl that leases, recycles a tab after every page and
    rotates its context every two, run once per command it sends, with that command's
    caller cancelled (the job's watchdog expiring there, or the crawl stopped there
    outside a job), its reply dropped, or an error reply instead.  Every run keeps every
    invariant."""
    urls = [shop_url("product", i) for i in range(1, 6)] + [shop_url("popups", 9)]
    plain = ChaosPlan({})

    async def scenario(tmp: Path, plan: ChaosPlan) -> Outcome:
        cfg = fixed_config(
            tmp,
            urls,
            pool={"concurrency": 2, "recycle_tab_every": 1, "rotate_context_every": 2, "tab_close_timeout_s": 1.5},
            browser={"command_timeout_s": 1.0},
        )
        return await crawl_through_chaos(cfg, urls, plan, seed=7)

    def run(plan: ChaosPlan) -> Outcome:
        with tempfile.TemporaryDirectory(prefix="chaos-") as tmp, virtual_store_time(), deterministic_scheduling(7):
            return trio.run(scenario, Path(tmp), plan, clock=trio.testing.MockClock(autojump_threshold=0))

    baseline = run(plain)
    assert baseline.problems == [], explain(7, baseline)
    total = baseline.plan.sent
    assert total > 60, total
    failures = []
    for n in range(1, total + 1):
        outcome = run(ChaosPlan({n: Fault(kind)}))
        if outcome.problems:
            failures.append(f"#{n}: {explain(7, outcome)}")
    assert not failures, "\n".join(failures[:5])
