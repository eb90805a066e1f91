"""Sessions with the Redis store: two workers (each its own browser and session pool)
share a crawl whose first proxy gets blocked (see tests/crawler/run/test_sessions.py)."""

from __future__ import annotations

import pytest
import trio

from crawler.run.engine import Crawler
from crawler.store import StoreSettings
from crawler.store.redis.store import open_redis_store
from tests.crawler.conftest import DEMO_EXTRACT
from tests.crawler.run import test_sessions
from tests.crawler.store.redis.conftest import make_redis_config

pytestmark = pytest.mark.chromium

shop = test_sessions.shop  # the fixtures: the shop as shop.test, proxies A and B
proxies = test_sessions.proxies


async def test_two_redis_workers_share_the_blocked_crawl_and_do_every_page_once(
    redis_server, crawl_name, shop, proxies
):
    """With the Redis store and two workers (each its own browser and session pool):
    proxy A's block retires the sessions that meet it, the rest goes through B, and
    every page is done exactly once."""
    a, b = proxies
    a.block_after = 6
    urls = [f"{shop.base}/product/{i}" for i in range(1, 25)]
    cfg = make_redis_config(
        redis_server,
        crawl_name,
        urls,
        extract=dict(DEMO_EXTRACT),
        pool={"rotate_context_every": 6},
        session={"proxies": [a.url(), b.url()], "retire_on_status": [403]},
    )
    engines: list[Crawler] = []

    async def worker() -> None:
        async with open_redis_store(StoreSettings.of(cfg)) as store:
            engine = Crawler(cfg, store)
            engines.append(engine)
            assert await engine.run() == "finished"

    async with trio.open_nursery() as workers:
        workers.start_soon(worker)
        workers.start_soon(worker)
    async with open_redis_store(StoreSettings.of(cfg), renew=False) as store:
        counts = await store.counts()
        assert counts["done"] == 24 and counts["failed"] == 0
        states = [await store.url_state(u) for u in urls]
        assert all(s["done_count"] == 1 for s in states)
        items = list(await store.items())
        assert sorted(it["url"] for it in items) == sorted(urls)
    retired = [e.statistics().sessions.retired for e in engines]
    assert sum(r.get("status_403", 0) for r in retired) >= 1
    assert set().union(*retired) == {"status_403"}
    assert len(a.pages()) == 6
    assert len(b.pages()) == 24 - 6
