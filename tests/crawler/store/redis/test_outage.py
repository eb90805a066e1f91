"""Workers weather a Redis that goes away: killed and restarted, or gone for good."""

from __future__ import annotations

from pathlib import Path

import pytest
import trio

from crawler.store import StoreSettings
from crawler.store.redis.store import open_redis_store
from tests.crawler.store.redis.conftest import make_redis_config, write_product_crawl
from tests.crawler.store.redis.test_workers import _logs, start_worker
from tests.procs import wait_all
from tests.shop import FaultShop, start_shop

CRAWL_TIMEOUT_S = 120.0  # a bound on a hang, not a speed target
RESTART_AFTER_S = 3.0


def write_config(tmp_path: Path, server, crawl: str, base: str, pages: int, **store) -> Path:
    return write_product_crawl(
        tmp_path / "crawl.toml",
        server,
        crawl,
        base,
        pages,
        store={"lease_s": 10.0, **store},
        monitor={"progress_interval_s": 1.0, "sample_interval_s": 1.0, "invariant_interval_s": 2.0},
    )


async def wait_done(store, at_least: int) -> None:
    """Poll the crawl's counts (another process's progress: no event to wait for)."""
    while True:
        if (await store.counts())["done"] >= at_least:
            return
        await trio.sleep(0.1)


async def check_done_once(server, crawl: str, base: str, pages: int) -> None:
    async with open_redis_store(StoreSettings.of(make_redis_config(server, crawl)), renew=False) as store:
        assert await store.counts() == {"pending": 0, "in_progress": 0, "done": pages, "failed": 0}
        urls = [f"{base}/product/{i}" for i in range(1, pages + 1)]
        done_counts = {url: (await store.url_state(url))["done_count"] for url in urls}
        assert set(done_counts.values()) == {1}, {u: n for u, n in done_counts.items() if n != 1}
        assert {item["url"] for item in await store.items()} == set(urls)


def stderr_of(tmp_path: Path) -> str:
    return "".join(p.read_text() for p in sorted(tmp_path.glob("worker*.log")))


@pytest.mark.chromium
async def test_workers_finish_the_crawl_after_redis_is_killed_and_restarted(tmp_path, aof_redis, crawl_name):
    """Two workers crawl 60 pages; Redis (AOF on) is SIGKILLed mid-crawl and started
    again 3 s later.  The same worker processes finish the crawl themselves, exit 0,
    with every URL done exactly once and no traceback: each said once that Redis was
    away and once that it was back."""
    pages = 60
    shop = FaultShop(products=pages)
    async with trio.open_nursery() as nursery:
        base = await start_shop(nursery, shop)
        config = write_config(tmp_path, aof_redis, crawl_name, base, pages)
        procs = [await start_worker(config, tmp_path / f"worker{i}.log") for i in range(2)]
        async with open_redis_store(StoreSettings.of(make_redis_config(aof_redis, crawl_name)), renew=False) as store:
            with trio.fail_after(CRAWL_TIMEOUT_S):
                await wait_done(store, pages // 4)
        aof_redis.kill()
        await trio.sleep(RESTART_AFTER_S)
        assert all(proc.poll() is None for proc in procs), _logs(tmp_path)  # they waited
        aof_redis.start()
        codes = await wait_all(procs, CRAWL_TIMEOUT_S)
        assert codes == [0, 0], _logs(tmp_path)
        nursery.cancel_scope.cancel()
    await check_done_once(aof_redis, crawl_name, base, pages)
    logs = stderr_of(tmp_path)
    assert "Traceback" not in logs, _logs(tmp_path)
    assert logs.count("unreachable (") == 2 and logs.count("reachable again") == 2, _logs(tmp_path)


@pytest.mark.chromium
async def test_redis_away_past_outage_s_ends_the_crawl_and_a_rerun_completes_it(tmp_path, aof_redis, crawl_name):
    """A worker whose Redis is killed and stays away past ``[store] outage_s`` (2 s)
    ends with one line naming the server and the limit, its summary, and exit 1, no
    traceback.  With Redis back, a rerun of the same command completes the crawl:
    nothing lost (every URL done, with its item), nothing doubled (done once)."""
    pages = 30
    shop = FaultShop(products=pages)
    async with trio.open_nursery() as nursery:
        base = await start_shop(nursery, shop)
        config = write_config(tmp_path, aof_redis, crawl_name, base, pages, outage_s=2.0)
        (proc,) = [await start_worker(config, tmp_path / "worker0.log")]
        async with open_redis_store(StoreSettings.of(make_redis_config(aof_redis, crawl_name)), renew=False) as store:
            with trio.fail_after(CRAWL_TIMEOUT_S):
                await wait_done(store, 5)
        aof_redis.kill()
        assert await wait_all([proc], CRAWL_TIMEOUT_S) == [1], _logs(tmp_path)
        first = stderr_of(tmp_path)
        assert "Traceback" not in first, first
        errors = [line for line in first.splitlines() if line.startswith("crawler: ")]
        assert errors[0].startswith(f"crawler: aborted: Redis store {aof_redis.url}") and "outage_s = 2 s" in errors[0]
        assert "items done" in first  # the summary
        aof_redis.start()
        (rerun,) = [await start_worker(config, tmp_path / "worker1.log")]
        assert await wait_all([rerun], CRAWL_TIMEOUT_S) == [0], _logs(tmp_path)
        nursery.cancel_scope.cancel()
    await check_done_once(aof_redis, crawl_name, base, pages)


async def test_an_outcome_kept_through_an_outage_is_not_written_once_its_lease_was_taken_over(redis_server, crawl_name):
    """Worker A reaches Redis through a proxy that is then stopped (connections refused):
    A's complete is kept (True) while Redis is away for A.  A's lease expires; worker B,
    which still reaches Redis, takes the URL over and completes it.  When A reaches Redis
    again, it renews what it holds and writes its kept outcome: the lease has B's token,
    so nothing of A's is written (counted as a lease lost), and the URL is done once,
    by B, with B's item."""
    from tests.faults.proxy import CdpProxy

    url = "http://shop.test/product/1"
    direct = make_redis_config(redis_server, crawl_name, store={"lease_s": 0.5})
    async with trio.open_nursery() as nursery:
        proxy = CdpProxy(redis_server.port)
        proxy_scope = trio.CancelScope()

        async def serve_proxy(proxy: CdpProxy, *, task_status=trio.TASK_STATUS_IGNORED) -> None:
            with proxy_scope:
                await proxy.serve(task_status=task_status)

        port = await nursery.start(serve_proxy, proxy)
        through_proxy = make_redis_config(
            redis_server, crawl_name, store={"lease_s": 0.5, "url": f"redis://127.0.0.1:{port}/0"}
        )
        async with (
            open_redis_store(StoreSettings.of(through_proxy)) as a,
            open_redis_store(StoreSettings.of(direct)) as b,
        ):
            await a.add_urls([url])
            job_a = await a.claim()
            proxy_scope.cancel()  # A's Redis is gone: its connections cut, new ones refused
            await trio.sleep(0.05)
            assert await a.complete(job_a, [{"by": "a"}], [], 200, 0.1)
            assert a.statistics().unsent == 1 and not a.statistics().up
            await trio.sleep(0.7)  # A's lease expires unrenewed
            job_b = await b.claim()
            assert (job_b.url, job_b.attempt) == (url, 2)
            assert await b.complete(job_b, [{"by": "b"}], [], 200, 0.1)
            proxy_scope = trio.CancelScope()
            await nursery.start(serve_proxy, CdpProxy(redis_server.port, port=port))
            with trio.fail_after(10):
                await a.link.wait_up()
            assert a.statistics().unsent == 0 and a.statistics().leases_lost == 1
            assert list(await b.items()) == [{"by": "b"}]
            state = await b.url_state(url)
            assert (state["done_count"], state["done_by"]) == (1, b.worker)
        nursery.cancel_scope.cancel()
