"""One politeness budget per host, shared by every worker process of a Redis crawl."""

from __future__ import annotations

import pytest
import trio

from crawler.config import to_toml
from crawler.store import StoreSettings
from crawler.store.redis.store import open_redis_store
from tests.crawler.store.redis.conftest import make_redis_config, redis_config_dict
from tests.crawler.store.redis.test_workers import _logs, start_worker
from tests.procs import wait_all
from tests.shop import FaultShop, start_shop

PAGES = 25
WORKERS = 3
CRAWL_TIMEOUT_S = 120.0  # a bound on a hang, not a speed target


@pytest.mark.chromium
async def test_three_workers_keep_the_configured_gap_between_requests_to_one_host(tmp_path, redis_server, crawl_name):
    """Three crawler processes (concurrency 2 each) with ``wait_ms = [300, 300]`` crawl
    25 pages of one host: measured at the server, at least 95% of the gaps between
    request starts are >= 270 ms (the budget is the host's, not each worker's), and
    every page is done once."""
    shop = FaultShop(products=PAGES)
    async with trio.open_nursery() as nursery:
        base = await start_shop(nursery, shop)
        data = redis_config_dict(redis_server, crawl_name, [], rate_limit={"wait_ms": [300, 300]})
        data["input"] = {"url_template": f"{base}/product/{{id}}", "ids": f"1-{PAGES}"}
        data["output"] = {"db": str(tmp_path / "unused.db")}
        config = tmp_path / "crawl.toml"
        config.write_text(to_toml(data))
        procs = [await start_worker(config, tmp_path / f"worker{i}.log") for i in range(WORKERS)]
        codes = await wait_all(procs, CRAWL_TIMEOUT_S)
        assert codes == [0] * WORKERS, _logs(tmp_path)
        nursery.cancel_scope.cancel()
    starts = sorted(shop.hosts[base.removeprefix("http://")])  # a page retried on a loaded machine counts too
    assert len(starts) >= PAGES, _logs(tmp_path)
    gaps = [b - a for a, b in zip(starts, starts[1:], strict=False)]
    kept = [gap for gap in gaps if gap >= 0.270]
    assert len(kept) >= 0.95 * len(gaps), (f"{len(kept)} of {len(gaps)} gaps >= 270 ms", sorted(gaps)[:5])
    async with open_redis_store(StoreSettings.of(make_redis_config(redis_server, crawl_name)), renew=False) as store:
        assert await store.counts() == {"pending": 0, "in_progress": 0, "done": PAGES, "failed": 0}
        done_by = {(await store.url_state(f"{base}/product/{i}"))["done_by"] for i in range(1, PAGES + 1)}
        assert len(done_by) >= 2, "one worker did everything: the test shared nothing"


async def test_a_retry_after_pauses_the_host_for_every_worker(redis_server, crawl_name):
    """A back-off (429/503 Retry-After) set by one worker keeps every other worker's
    next request to the host away for its delay; another host is not paused."""
    cfg = make_redis_config(redis_server, crawl_name)
    host = f"http://{crawl_name}.test"  # a host of this test's own
    async with (
        open_redis_store(StoreSettings.of(cfg), renew=False) as one,
        open_redis_store(StoreSettings.of(cfg), renew=False) as other,
    ):
        await one.host_pace((0, 0)).back_off(f"{host}/1", 0.5)
        paused = trio.current_time()
        pace = other.host_pace((0, 0))
        async with pace.hold(f"http://other-{crawl_name}.test/1"):
            other_host = trio.current_time()
        async with pace.hold(f"{host}/2"):
            resumed = trio.current_time()
        assert other_host - paused < 0.5 <= resumed - paused + 0.01


async def test_while_redis_is_away_a_worker_paces_hosts_on_its_own(redis_server, crawl_name):
    """A worker whose Redis cannot be reached (its proxy stopped) still keeps the gap
    between its own requests to a host, in process, and raises nothing."""
    from tests.faults.proxy import CdpProxy

    async with trio.open_nursery() as nursery:
        scope = trio.CancelScope()

        async def serve_proxy(*, task_status=trio.TASK_STATUS_IGNORED) -> None:
            with scope:
                await CdpProxy(redis_server.port).serve(task_status=task_status)

        port = await nursery.start(serve_proxy)
        cfg = make_redis_config(redis_server, crawl_name, store={"url": f"redis://127.0.0.1:{port}/0"})
        async with open_redis_store(StoreSettings.of(cfg)) as store:
            pace = store.host_pace((200, 200))
            host = f"http://{crawl_name}.test"
            async with pace.hold(f"{host}/1"):
                pass
            scope.cancel()
            await trio.sleep(0.05)
            async with pace.hold(f"{host}/2"):  # Redis away: the turn is this process's own
                second = trio.current_time()
            async with pace.hold(f"{host}/3"):
                third = trio.current_time()
            assert third - second >= 0.2 and not store.statistics().up
        nursery.cancel_scope.cancel()


async def test_a_worker_cancelled_while_asking_for_its_turn_leaves_no_hold_behind(redis_server, crawl_name):
    """A request cancelled while its ask for the host's turn is on its way (its job's
    watchdog, a shutdown), after Redis gave it the hold: the hold is dropped, so another
    worker's request to the host goes at once, not after the hold's 10 s lapse."""
    from crawler.store.redis.pace import RedisPace

    cfg = make_redis_config(redis_server, crawl_name)
    host = f"http://{crawl_name}.test"
    async with (
        open_redis_store(StoreSettings.of(cfg), renew=False) as one,
        open_redis_store(StoreSettings.of(cfg), renew=False) as other,
    ):

        async def reply_lost(name, keys, args):  # the script runs; its reply never comes in time
            reply = await one.run_script(name, keys, args)
            if name == "pace_acquire":
                await trio.sleep_forever()
            return reply

        with trio.move_on_after(0.2) as asking:
            async with RedisPace(reply_lost, (300, 300)).hold(f"{host}/1"):
                raise AssertionError("the reply was lost: no turn can come")
        assert asking.cancelled_caught
        with trio.fail_after(5):
            async with other.host_pace((300, 300)).hold(f"{host}/2"):
                pass
