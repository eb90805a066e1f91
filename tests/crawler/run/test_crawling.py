"""Crawling the demo storefront through the engine, against real Chromium: routes,
link discovery, interactions, the session hook, and handlers that hang or raise.

Each test runs a whole crawl in-process with its own router and checks the store and
the shop's own record of what it served."""

from __future__ import annotations

import sqlite3
from collections import Counter
from contextlib import closing
from typing import Any

import pytest
import trio

import crawler
from crawler import config as config_mod
from crawler import demo
from crawler.demo._data import PRODUCTS_PER_PAGE, pages
from crawler.httpserver import HttpRequest
from crawler.run.engine import Crawler
from crawler.store.sqlite import SqliteStore
from tests.shop import start_shop

pytestmark = pytest.mark.chromium

PRODUCTS = 30


class CountingShop(demo.DemoShop):
    """The storefront, counting requests per path (query included)."""

    def __init__(self, products: int):
        super().__init__(products)
        self.hits: Counter[str] = Counter()

    async def __call__(self, request: HttpRequest):
        query = "&".join(f"{k}={v[0]}" for k, v in sorted(request.query.items()))
        self.hits[request.path + (f"?{query}" if query else "")] += 1
        return await super().__call__(request)


async def start_counting_shop(nursery, products: int) -> CountingShop:
    s = CountingShop(products)
    s.base = await start_shop(nursery, s)
    return s


@pytest.fixture
async def shop(nursery):
    return await start_counting_shop(nursery, PRODUCTS)


def site_config(tmp_path, urls: list[str], **sections: dict[str, Any]) -> config_mod.Config:
    data: dict[str, Any] = {
        "input": {"urls": urls},
        "pool": {"concurrency": 3, "tab_close_timeout_s": 3.0},
        "watchdog": {"timeout_s": 30.0, "jitter_s": 0.0},
        "retry": {"max_attempts": 2, "backoff_s": [0.05, 0.2]},
        "output": {"db": str(tmp_path / "crawl.db")},
        "monitor": {"invariant_interval_s": 0.5},
    }
    for name, values in sections.items():
        data[name] = {**data.get(name, {}), **values}
    return config_mod.from_dict(data, source="test.toml", base_dir=str(tmp_path))


async def run(cfg, router=None) -> tuple[Crawler, SqliteStore, str]:
    store = await SqliteStore.open(cfg.output.db, max_urls=cfg.crawl.max_pages)
    engine = Crawler(cfg, store, router=router)
    reason = await engine.run()
    return engine, store, reason


def frontier_urls(store: SqliteStore) -> list[str]:
    with closing(sqlite3.connect(store.path)) as db:
        return [u for (u,) in db.execute("SELECT url FROM frontier ORDER BY id")]


def listing_router() -> crawler.Router:
    router = crawler.Router()

    @router.route()
    async def home(page: crawler.Page) -> None:
        await page.enqueue(selector="nav.categories a", label="listing")
        await page.enqueue(selector="a")  # every other link of the home page, noise included

    @router.route("listing")
    async def listing(page: crawler.Page) -> None:
        await page.wait_for("a.footer")
        await page.enqueue(selector=".product a", label="product")
        await page.enqueue(selector="a.next", label="listing")
        await page.enqueue(selector="a.footer", label="about")

    @router.route("product")
    async def product(page: crawler.Page) -> None:
        await page.push(await page.extract({"name": "h1"}, wait_for="h1"))

    @router.route("about")
    async def about(page: crawler.Page) -> None:
        pass

    return router


async def test_pagination_is_followed_to_the_last_page_and_a_link_on_every_page_is_crawled_once(nursery, tmp_path):
    """Every listing page of every category is visited once, every product once, and
    /about (linked from every listing page and the home page) once; nothing but http(s)
    URLs of the shop ever enters the frontier."""
    products = 52  # 13 per category: 2 listing pages each
    shop = await start_counting_shop(nursery, products)
    cfg = site_config(tmp_path, [f"{shop.base}/"], pool={"concurrency": 4})
    engine, store, reason = await run(cfg, listing_router())
    assert reason == "finished"
    pages_of = {c: pages(len(demo.category_products(c, products)), PRODUCTS_PER_PAGE) for c in demo.CATEGORIES}
    for category, count in pages_of.items():
        assert count >= 2  # the test needs real pagination
        visited = [shop.hits[f"/category/{category}"]] + [
            shop.hits[f"/category/{category}?page={n}"] for n in range(2, count + 1)
        ]
        assert visited == [1] * count, (category, visited)
    assert all(shop.hits[f"/product/{i}"] == 1 for i in range(1, products + 1))
    assert shop.hits["/about"] == 1
    urls = frontier_urls(store)
    assert len(urls) == len(set(urls))
    assert all(u.startswith(shop.base + "/") and "#" not in u for u in urls), urls
    names = sorted(item["name"] for item in await store.items())
    assert names == sorted(demo.product(i)["name"] for i in range(1, products + 1))
    skipped = engine.statistics().jobs.links_skipped
    assert {"scheme_mailto", "scheme_javascript", "scheme_file", "scheme_data"} <= set(skipped), skipped


async def test_max_depth_stops_discovery_at_that_many_hops_from_the_input(shop, tmp_path):
    """With max_depth = 1 the home page's links are crawled, theirs are not enqueued."""
    cfg = site_config(tmp_path, [f"{shop.base}/"], crawl={"max_depth": 1})
    engine, store, reason = await run(cfg, listing_router())
    assert reason == "finished"
    assert all(shop.hits[f"/category/{c}"] == 1 for c in demo.CATEGORIES)
    assert not [path for path in shop.hits if path.startswith("/product/")]
    depths = {(await store.url_state(u))["depth"] for u in frontier_urls(store)}
    assert depths == {0, 1}
    assert engine.statistics().jobs.links_skipped["max_depth"] > 0


async def test_toml_routes_reach_every_review_behind_the_more_button(shop, tmp_path):
    """No Python: a listing route that follows, and a product route that clicks until the
    button is gone and pushes one item per review, find exactly the shop's reviews."""
    routes = [
        {
            "wait_for": "a.footer",
            "follow": [{"selector": ".product a", "label": "product"}],
            "fields": {"title": "h1"},
        },
        {
            "label": "product",
            "wait_for": "body[data-ready]",
            "click_until_gone": "button.more-reviews",
            "items": {"selector": ".review", "fields": {"id": {"attr": "data-id"}, "author": ".author"}},
        },
    ]
    cfg = site_config(tmp_path, [f"{shop.base}/category/{c}" for c in demo.CATEGORIES])
    cfg = config_mod.from_dict({**_as_dict(cfg), "route": routes}, source="test.toml", base_dir=str(tmp_path))
    _, store, reason = await run(cfg)
    assert reason == "finished"
    items = list(await store.items())
    reviews = [i for i in items if i.get("label") == "product"]
    listed = {i for c in demo.CATEGORIES for i in demo.category_products(c, PRODUCTS)[:PRODUCTS_PER_PAGE]}
    expected = {r["id"]: r["author"] for i in listed for r in demo.reviews(i)}
    assert {r["id"]: r["author"] for r in reviews} == expected
    assert len(reviews) == len(expected)  # each once


async def test_the_session_hook_runs_once_per_context_and_every_page_sees_the_login(shop, tmp_path):
    """rotate_context_every = 2: a login per new context (the shop counts them), none
    more, and every product page was served to the logged-in user."""
    router = crawler.Router()
    runs: list[str] = []

    @router.route()
    async def product(page: crawler.Page) -> None:
        await page.push(await page.extract({"user": ".account .user"}, wait_for="body[data-ready]"))

    @router.session
    async def log_in(page: crawler.Page) -> None:
        runs.append(page.tab.context.id)
        await page.goto("/login")
        await page.fill("#username", "demo")
        await page.fill("#password", "demo")
        await page.click("button[type=submit]")
        await page.wait_for(".account .user")

    urls = [f"{shop.base}/product/{i}" for i in range(1, 13)]
    cfg = site_config(tmp_path, urls, pool={"concurrency": 2, "rotate_context_every": 2})
    engine, store, reason = await run(cfg, router)
    assert reason == "finished"
    assert [item["user"] for item in await store.items()] == ["demo"] * len(urls)
    stats = engine.statistics()
    assert len(runs) == len(set(runs)) == shop.logins == stats.jobs.sessions_started
    assert stats.browser.pool_totals.contexts_rotated >= 4
    assert len(runs) >= stats.browser.pool_totals.contexts_rotated


@pytest.mark.parametrize("hang", ["wait_for", "evaluate", "click"])
async def test_a_handler_that_hangs_is_cancelled_at_the_watchdog_deadline_and_stores_nothing(shop, tmp_path, hang):
    """The handler pushes an item, then hangs; the watchdog cancels it on time, the URL
    fails as a timeout, and the pushed item is not stored.  The other URLs finish."""
    router = crawler.Router()
    hung: dict[str, float] = {}

    @router.route()
    async def product(page: crawler.Page) -> None:
        await page.push({"before": "hang"})
        if "/product/1" in page.url:
            hung["deadline"] = trio.current_effective_deadline()
            try:
                if hang == "wait_for":
                    await page.wait_for(".never-there")
                elif hang == "evaluate":
                    await page.evaluate("new Promise(() => {})", await_promise=True)
                else:
                    await page.click(".never-there")
            finally:
                hung["cancelled"] = trio.current_time()

    urls = [f"{shop.base}/product/{i}" for i in range(1, 4)]
    cfg = site_config(tmp_path, urls, watchdog={"timeout_s": 2.0}, retry={"max_attempts": 1})
    started = trio.current_time()
    engine, store, reason = await run(cfg, router)
    state = await store.url_state(urls[0])
    assert state["state"] == "failed" and state["last_error"].startswith("timeout")
    assert hung["deadline"] <= hung["cancelled"] <= hung["deadline"] + 1.0  # at the deadline, not a retry later
    assert [i["url"] for i in await store.items()] == urls[1:]
    assert trio.current_time() - started < 20


async def test_a_handler_that_raises_fails_the_url_with_the_exception_and_a_retryable_failure_is_retried(
    shop, tmp_path
):
    router = crawler.Router()
    attempts: Counter[str] = Counter()

    @router.route()
    async def product(page: crawler.Page) -> None:
        attempts[page.url] += 1
        await page.push({"partial": True})
        if page.url.endswith("/1"):
            raise ValueError("no price")
        if page.url.endswith("/2"):
            raise crawler.PageFailure("blocked", "a challenge page", retryable=True)

    urls = [f"{shop.base}/product/{i}" for i in range(1, 4)]
    cfg = site_config(tmp_path, urls, retry={"max_attempts": 3, "backoff_s": [0.01, 0.05]})
    _, store, _ = await run(cfg, router)
    first, second = await store.url_state(urls[0]), await store.url_state(urls[1])
    assert (first["state"], first["last_error"], first["attempts"]) == ("failed", "handler: ValueError: no price", 1)
    assert (second["state"], second["last_error"], second["attempts"]) == ("failed", "blocked: a challenge page", 3)
    assert attempts[urls[0]] == 1 and attempts[urls[1]] == 3
    assert [i["url"] for i in await store.items()] == [urls[2]]


def _as_dict(cfg: config_mod.Config) -> dict[str, Any]:
    """The sections of a test config again, as from_dict takes them."""
    return {
        "input": {"urls": list(cfg.input.urls)},
        "pool": {"concurrency": cfg.pool.concurrency, "tab_close_timeout_s": cfg.pool.tab_close_timeout_s},
        "watchdog": {"timeout_s": cfg.watchdog.timeout_s, "jitter_s": cfg.watchdog.jitter_s},
        "retry": {"max_attempts": cfg.retry.max_attempts, "backoff_s": list(cfg.retry.backoff_s)},
        "output": {"db": cfg.output.db},
    }
