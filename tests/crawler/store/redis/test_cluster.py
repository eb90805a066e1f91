"""Workers crawl one crawl on a three-master Redis Cluster (``[store] cluster = true``)."""

from __future__ import annotations

import signal
from pathlib import Path

import psutil
import pytest
import trio

from crawler import demo
from crawler.store import StoreSettings
from crawler.store.redis.store import open_redis_store
from tests.cdp.conftest import wait_until
from tests.crawler.store.redis.conftest import make_redis_config, write_product_crawl
from tests.crawler.store.redis.test_workers import _logs, reap_gone, start_worker
from tests.procs import become_child_subreaper, wait_all
from tests.shop import FaultShop, start_shop

PAGES = 200
CRAWL_TIMEOUT_S = 120.0
LEASE_S = 3.0

pytestmark = pytest.mark.chromium


def write_config(tmp_path: Path, cluster, crawl: str, base: str) -> Path:
    return write_product_crawl(
        tmp_path / "crawl.toml",
        cluster,
        crawl,
        base,
        PAGES,
        store={"lease_s": LEASE_S, "cluster": True},
        pool={"concurrency": 3},
        browser={"block_resources": ["image"]},
        monitor={"progress_interval_s": 2.0, "sample_interval_s": 2.0, "invariant_interval_s": 5.0},
    )


def cluster_config(cluster, crawl: str):
    return make_redis_config(cluster, crawl, store={"cluster": True, "lease_s": LEASE_S})


async def check_done_once(store, base: str) -> None:
    """Every page done once (done count 1), with the right item; nothing else left."""
    assert await store.counts() == {"pending": 0, "in_progress": 0, "done": PAGES, "failed": 0}
    items = {item["url"]: item for item in await store.items()}
    expected = {demo.expected_item(base, i)["url"]: demo.expected_item(base, i) for i in range(1, PAGES + 1)}
    wrong = [url for url in expected if items.get(url) != expected[url]]
    assert wrong == [], f"{len(wrong)} wrong items, e.g. {wrong[:3]}"
    done_counts = {url: (await store.url_state(url))["done_count"] for url in expected}
    assert set(done_counts.values()) == {1}, {u: n for u, n in done_counts.items() if n != 1}


async def test_two_workers_on_a_redis_cluster_crawl_every_page_exactly_once(tmp_path, redis_cluster, crawl_name):
    """Two crawler processes on the three-master cluster crawl 200 pages: both exit 0,
    both did some of the work, and every page is done exactly once with its item."""
    shop = FaultShop(products=PAGES)
    async with trio.open_nursery() as nursery:
        base = await start_shop(nursery, shop)
        config = write_config(tmp_path, redis_cluster, crawl_name, base)
        procs = [await start_worker(config, tmp_path / f"worker{i}.log") for i in range(2)]
        assert await wait_all(procs, CRAWL_TIMEOUT_S) == [0, 0], _logs(tmp_path)
        nursery.cancel_scope.cancel()
    async with open_redis_store(StoreSettings.of(cluster_config(redis_cluster, crawl_name)), renew=False) as store:
        await check_done_once(store, base)
        workers = {(await store.url_state(f"{base}/product/{i}"))["done_by"] for i in range(1, PAGES + 1)}
        assert len(workers) == 2, workers


async def test_a_worker_killed_on_a_redis_cluster_leaves_every_page_done_exactly_once(
    tmp_path, redis_cluster, crawl_name
):
    """Two workers on the cluster; one is SIGKILLed while it holds leases, once the
    crawl is under way.  The other finishes (exit 0), taking over the killed worker's
    URLs once their leases expired: every page done exactly once with its item."""
    become_child_subreaper()  # the killed worker's orphans become ours, to be reaped
    shop = FaultShop(products=PAGES)
    async with (
        trio.open_nursery() as nursery,
        open_redis_store(StoreSettings.of(cluster_config(redis_cluster, crawl_name)), renew=False) as store,
    ):
        base = await start_shop(nursery, shop)
        config = write_config(tmp_path, redis_cluster, crawl_name, base)
        victim, survivor = [await start_worker(config, tmp_path / f"worker{i}.log") for i in range(2)]
        try:
            with trio.fail_after(CRAWL_TIMEOUT_S):
                while True:
                    await trio.sleep(0.2)
                    assert victim.poll() is None and survivor.poll() is None, _logs(tmp_path)
                    workers = await store.client.zrange(store.key("workers"), 0, -1)
                    victim_id = next((w for w in workers if w.split(":")[-2] == str(victim.pid)), None)
                    if victim_id and (await store.counts())["done"] >= PAGES // 5:
                        if await store.client.smembers(store.key(f"held:{victim_id}")):
                            break
            descendants = psutil.Process(victim.pid).children(recursive=True)
            victim.send_signal(signal.SIGKILL)
            await victim.wait()
            assert await wait_all([survivor], CRAWL_TIMEOUT_S) == [0], _logs(tmp_path)
        finally:
            await wait_all([victim, survivor], CRAWL_TIMEOUT_S)
        await wait_until(lambda: reap_gone(descendants), timeout_s=15.0)
        await check_done_once(store, base)
        taken = [
            state
            for i in range(1, PAGES + 1)
            if (state := await store.url_state(f"{base}/product/{i}")).get("taken_from") == victim_id
        ]
        assert taken, "no URL of the killed worker was taken over: the test exercised nothing"
        nursery.cancel_scope.cancel()
