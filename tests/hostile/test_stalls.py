"""Blame the true cause (issue 26): a handler that blocks the event loop is named as
the culprit, and is not taken for a dead browser.

Before: with ``time.sleep`` in a handler, the CDP connection's write and command
deadlines ran out while the loop was blocked ("could not write to the browser within
N s"), the healthy browser was restarted, the other page in flight failed as a
timeout, and the blocking URL ran again and again, uncharged, past ``max_attempts``.
"""

from __future__ import annotations

import logging
import time

import pytest
import trio

from crawler import Router
from crawler.run.engine import Crawler
from crawler.store.sqlite import SqliteStore
from tests.crawler.conftest import DEMO_EXTRACT, make_config
from tests.shop import FaultShop, start_shop

pytestmark = pytest.mark.chromium

COMMAND_TIMEOUT_S = 2.0  # the stalls below outlive every CDP deadline


@pytest.fixture
async def shop(nursery):
    fault_shop = FaultShop()
    fault_shop.base = await start_shop(nursery, fault_shop)
    return fault_shop


def blocking_router(runs: list[str], *, block) -> Router:
    router = Router()

    @router.route()
    async def product(page):
        runs.append(page.url)
        item = await page.extract(DEMO_EXTRACT["fields"], wait_for=DEMO_EXTRACT["wait_for"])
        if page.url.endswith("/product/3"):
            await block(page)
        await page.push(item)

    return router


async def run_crawl(tmp_path, shop, router, **sections):
    urls = [f"{shop.base}/product/{i}" for i in range(1, 9)]
    cfg = make_config(
        tmp_path,
        urls,
        browser={"command_timeout_s": COMMAND_TIMEOUT_S},
        retry={"max_attempts": 1},
        extract={"fields": {}, "capture": []},  # the router's handler extracts
        **sections,
    )
    store = await SqliteStore.open(cfg.output.db)
    engine = Crawler(cfg, store, router=router)
    reason = await engine.run()
    states = {url: await store.url_state(url) for url in urls}
    return engine, reason, states


async def test_a_handler_blocking_the_loop_is_named_and_the_browser_is_not_restarted(tmp_path, shop, caplog):
    runs: list[str] = []

    answers: list[object] = []

    async def block_the_loop_with_a_command_in_flight(page):
        async with trio.open_nursery() as nursery:
            # A command of another task waits for its reply while the loop is blocked
            # for longer than its deadline: it is the stall's, not the browser's.
            nursery.start_soon(lambda: _evaluate_into(page, "new Promise(r => setTimeout(() => r(7), 100))", answers))
            await trio.sleep(0.02)
            time.sleep(3.0)  # noqa: ASYNC251 - the fault under test

    with caplog.at_level(logging.WARNING):
        engine, reason, states = await run_crawl(
            tmp_path, shop, blocking_router(runs, block=block_the_loop_with_a_command_in_flight)
        )
    assert answers == [7]
    assert reason == "finished"
    assert {s["state"] for s in states.values()} == {"done"}, states
    assert runs.count(f"{shop.base}/product/3") == 1
    assert engine.statistics().browser.restarts == 0
    stalls = [r.getMessage() for r in caplog.records if "blocked the event loop" in r.getMessage()]
    assert len(stalls) == 1, stalls
    assert "'product'" in stalls[0] and "/product/3" in stalls[0] and "trio.to_thread.run_sync" in stalls[0]
    assert not [r for r in caplog.records if "browser lost" in r.getMessage()]


async def test_a_handler_blocking_past_its_watchdog_is_charged_and_max_attempts_holds(tmp_path, shop):
    runs: list[str] = []

    async def block_the_loop(page):
        time.sleep(3.5)  # noqa: ASYNC251 - the fault under test: past the 3 s watchdog

    engine, reason, states = await run_crawl(
        tmp_path, shop, blocking_router(runs, block=block_the_loop), watchdog={"timeout_s": 3.0}
    )
    assert reason == "finished"
    stalled = states[f"{shop.base}/product/3"]
    assert stalled["state"] == "failed" and stalled["attempts"] == 1 and stalled["last_error"].startswith("timeout")
    assert runs.count(f"{shop.base}/product/3") == 1
    assert engine.statistics().browser.restarts == 0
    others = {url: s["state"] for url, s in states.items() if not url.endswith("/product/3")}
    assert set(others.values()) == {"done"}, others


async def test_a_handler_that_never_returns_is_cancelled_by_its_watchdog_and_charged(tmp_path, shop):
    runs: list[str] = []
    engine, reason, states = await run_crawl(
        tmp_path, shop, blocking_router(runs, block=_sleep_forever), watchdog={"timeout_s": 3.0}
    )
    assert reason == "finished"
    hung = states[f"{shop.base}/product/3"]
    assert hung["state"] == "failed" and hung["attempts"] == 1 and hung["last_error"].startswith("timeout")
    assert runs.count(f"{shop.base}/product/3") == 1
    assert engine.statistics().browser.restarts == 0


async def _evaluate_into(page, expression: str, answers: list[object]) -> None:
    answers.append(await page.evaluate(expression, await_promise=True))


async def _sleep_forever(page) -> None:
    await trio.sleep_forever()
