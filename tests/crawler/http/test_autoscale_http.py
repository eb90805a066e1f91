"""concurrency = "auto" on the HTTP path, where no browser (no tab pool) gates the jobs:
the workers' slots alone hold the requests in flight to the autoscaler's figure
(max_concurrency workers are started; most wait for a slot at first)."""

from __future__ import annotations

import trio

from crawler.httpserver import HttpRequest, Response
from crawler.run.engine import Crawler
from crawler.store.sqlite import SqliteStore
from tests.crawler.http.static_shop import StaticShop, no_browser, start_static_shop
from tests.crawler.http.test_http_crawl import http_config

PRODUCTS = 120
DELAY_S = 0.1  # each product page answers this late: the crawl lasts long enough to scale


class SlowShop(StaticShop):
    """The static shop, its product pages DELAY_S late, counting requests in flight."""

    def __init__(self) -> None:
        super().__init__(products=PRODUCTS)
        self.in_flight = 0
        self.most_in_flight = 0
        self.limit = lambda: 10**9  # the crawl's concurrency now (the test sets it)
        self.over_limit: list[tuple[int, int]] = []  # (in flight, limit) when more ran than allowed

    async def __call__(self, request: HttpRequest) -> Response:
        if not request.path.startswith("/p/"):
            return await super().__call__(request)
        self.in_flight += 1
        self.most_in_flight = max(self.most_in_flight, self.in_flight)
        if self.in_flight > self.limit():
            self.over_limit.append((self.in_flight, self.limit()))
        try:
            await trio.sleep(DELAY_S)
            return await super().__call__(request)
        finally:
            self.in_flight -= 1


async def test_an_http_only_auto_crawl_scales_up_within_its_maximum_and_stores_every_product(tmp_path, nursery):
    shop = SlowShop()
    base = await start_static_shop(nursery, shop)
    cfg = http_config(tmp_path, [f"{base}/list/0"], pool={"concurrency": "auto", "max_concurrency": 6})
    store = SqliteStore(cfg.output.db)
    run = Crawler(cfg, store, open_browser=no_browser)
    shop.limit = lambda: run.statistics().concurrency
    assert await run.run() == "finished"
    products = [i for i in await store.items() if i.get("label") == "product"]
    assert len(products) == PRODUCTS
    stats = run.statistics().autoscale
    assert stats is not None and stats.changes.get("scale_up", 0) >= 1, stats
    # Requests in flight followed the slots: more than one once it grew, never more than
    # the figure of the moment (it only grew here: a decrease lets jobs in flight end).
    assert set(stats.changes) == {"scale_up"}, stats
    assert 1 < shop.most_in_flight <= 6 and shop.over_limit == []
