"""The HTTP path beside the browser, against real Chromium: one session, whichever the
path (cookies both ways, the host's pace shared), and ``fetch = "auto"`` learning per
label when HTTP gives what the browser gives, and unlearning it."""

from __future__ import annotations

import json
import logging

import pytest

import crawler
from crawler import config as config_mod
from crawler.run.engine import Crawler
from crawler.store.sqlite import SqliteStore
from tests.crawler.http.static_shop import PRODUCTS

pytestmark = pytest.mark.chromium


def mixed_config(tmp_path, urls, shared_chromium, *, routes=(), **sections):
    data = {
        "input": {"urls": urls},
        "browser": {"cdp_url": shared_chromium.url},
        "pool": {"concurrency": 1},
        "watchdog": {"timeout_s": 20.0, "jitter_s": 0.0},
        "retry": {"max_attempts": 2, "backoff_s": [0.05, 0.2]},
        "output": {"db": str(tmp_path / "crawl.db")},
        "route": list(routes),
    }
    for name, values in sections.items():
        data[name] = {**data.get(name, {}), **values}
    return config_mod.from_dict(data, source="test.toml", base_dir=str(tmp_path))


def echoed(page_text: str) -> dict:
    return json.loads(page_text)


async def test_a_browser_login_makes_http_requests_logged_in(tmp_path, static_shop, shared_chromium):
    """The session hook logs in with the browser (the server sets ``who``); the HTTP
    route's request carries that cookie, HttpOnly as it is."""
    router = crawler.Router()

    @router.session
    async def login(page):
        await page.goto(f"{static_shop.base}/set/who")

    @router.route(fetch="http")
    async def echo(page):
        await page.push(json.loads((await page.extract({"echo": "#echo"}))["echo"]))

    cfg = mixed_config(tmp_path, [f"{static_shop.base}/echo"], shared_chromium)
    store = SqliteStore(cfg.output.db)
    assert await Crawler(cfg, store, router=router).run() == "finished"
    [item] = await store.items()
    assert item["cookies"] == {"who": "yes"}
    assert "HeadlessChrome" not in item["headers"]["user-agent"] and "Chrome/" in item["headers"]["user-agent"]


async def test_a_cookie_set_over_http_reaches_the_browser(tmp_path, static_shop, shared_chromium):
    """A cookie an HTTP response sets goes into the context: the browser's next page
    in that session sends it."""
    router = crawler.Router()

    @router.route(fetch="http")
    async def set_cookie(page):
        await page.enqueue(selector="a", label="echo")

    @router.route("echo", fetch="browser")
    async def echo(page):
        await page.push(json.loads(await page.evaluate("document.querySelector('#echo').textContent")))

    cfg = mixed_config(tmp_path, [f"{static_shop.base}/set/over_http"], shared_chromium)
    store = SqliteStore(cfg.output.db)
    assert await Crawler(cfg, store, router=router).run() == "finished"
    [item] = await store.items()
    assert item["cookies"] == {"over_http": "yes"}


async def test_the_host_pace_spaces_browser_and_http_requests_alike(tmp_path, static_shop, shared_chromium):
    """``[rate_limit] wait_ms`` holds between any two requests to the host, whichever
    path sent them (browser documents and HTTP requests take turns from one pace)."""
    routes = [
        {"follow": [{"selector": "a.product", "label": "product"}], "fetch": "browser"},
        {"label": "product", "fields": {"name": "h1"}, "fetch": "http"},
    ]
    cfg = mixed_config(
        tmp_path, [f"{static_shop.base}/list/0"], shared_chromium, routes=routes,
        pool={"concurrency": 3}, rate_limit={"wait_ms": [250, 250]},
    )  # fmt: skip
    store = SqliteStore(cfg.output.db)
    assert await Crawler(cfg, store).run() == "finished"
    assert len([i for i in await store.items() if i.get("label") == "product"]) == 10
    starts = [t for t, path in static_shop.times if path != "/favicon.ico"]  # the browser's own fetch
    assert len(starts) == 11  # the list page (browser) and 10 products (HTTP)
    gaps = [b - a for a, b in zip(starts, starts[1:], strict=False)]
    assert min(gaps) >= 0.24, gaps


AUTO_ROUTES = [
    {"follow": [{"selector": "a.product", "label": "product"}, {"selector": "a.next"}], "fetch": "http"},
    {
        "label": "product",
        "fetch": "auto",
        "fields": {
            "name": {"css": "h1", "required": True},
            "reviews": {"css": "li.review b", "all": True, "required": True},
        },
    },
]


def expected_reviews(i: int) -> list[str]:
    return [f"r{i}-{k}" for k in range(3)]


async def test_auto_moves_a_static_label_to_http_and_back_when_it_starts_needing_javascript(
    tmp_path, static_shop, shared_chromium, caplog
):
    """Static product pages: after ``agree_after`` checks (browser and HTTP agree) the
    label runs over HTTP.  From the 15th product request on, the reviews are rendered
    by a script: the first HTTP job that misses them goes to the browser in the same
    job, the label goes back to the browser (one log line saying why), and every item
    is stored complete, exactly once."""
    static_shop.js_after = 15
    cfg = mixed_config(
        tmp_path, [f"{static_shop.base}/list/0"], shared_chromium, routes=AUTO_ROUTES,
        http={"agree_after": 3, "recheck_ratio": 0.0},
    )  # fmt: skip
    store = SqliteStore(cfg.output.db)
    run = Crawler(cfg, store)
    with caplog.at_level(logging.INFO, logger="crawler.run.paths"):
        assert await run.run() == "finished"
    items = {i["url"]: i for i in await store.items() if i.get("label") == "product"}
    assert len(items) == PRODUCTS
    for url, item in items.items():
        i = int(url.rsplit("/", 1)[1])
        assert (item["name"], item["reviews"]) == (f"Product {i}", expected_reviews(i)), item
    paths = (await run.summary())["fetch_paths"]["product"]
    assert paths["http"] >= 5 and paths["browser"] >= PRODUCTS - paths["http"]
    assert paths["now"] == "browser" and paths["disagreements"] >= 1 and paths["checks"] >= 3
    messages = [r.getMessage() for r in caplog.records]
    assert any("route product: fetching over HTTP from now on" in m for m in messages), messages
    assert any("route product: back to the browser" in m and "missing_field: reviews" in m for m in messages), messages
    states = [await store.url_state(url) for url in items]
    assert all(s["attempts"] == 1 for s in states)  # the fallback to the browser charged nothing


async def test_auto_keeps_a_label_that_needs_javascript_on_the_browser(tmp_path, static_shop, shared_chromium):
    """Every product page renders its reviews by script: HTTP never agrees, the label
    never leaves the browser, its checks thin out, and every item is complete."""
    static_shop.js_reviews = True
    cfg = mixed_config(
        tmp_path, [f"{static_shop.base}/list/0"], shared_chromium, routes=AUTO_ROUTES,
        http={"agree_after": 2, "recheck_ratio": 0.0},
    )  # fmt: skip
    store = SqliteStore(cfg.output.db)
    run = Crawler(cfg, store)
    assert await run.run() == "finished"
    items = [i for i in await store.items() if i.get("label") == "product"]
    assert sorted(len(i["reviews"]) for i in items) == [3] * PRODUCTS
    paths = (await run.summary())["fetch_paths"]["product"]
    assert paths["http"] == 0 and paths["browser"] == PRODUCTS
    assert 3 <= paths["checks"] <= 8  # 1, 2, 4, 8... pages apart: not one per page


async def test_http_clients_of_rotated_contexts_are_closed(tmp_path, static_shop, shared_chromium):
    """Each context's session has its own HTTP client; once the context has rotated
    away, its client is closed: the open clients never outnumber the live sessions."""
    router = crawler.Router()
    open_clients: list[int] = []

    @router.route(fetch="browser")
    async def listing(page):
        await page.enqueue(selector="a.product", label="product")
        await page.enqueue(selector="a.next")

    @router.route("product", fetch="http")
    async def product(page):
        stats = run.statistics().sessions
        open_clients.append(stats.http_clients - stats.live)
        await page.push(await page.extract({"name": "h1"}))

    cfg = mixed_config(
        tmp_path, [f"{static_shop.base}/list/0"], shared_chromium, pool={"concurrency": 2, "rotate_context_every": 1}
    )
    store = SqliteStore(cfg.output.db)
    run = Crawler(cfg, store, router=router)
    assert await run.run() == "finished"
    assert len([i for i in await store.items() if "name" in i]) == PRODUCTS
    assert run.statistics().sessions.sessions >= 4  # each listing page in a new context
    assert max(open_clients) <= 1, open_clients  # at most the one a rotated context's last job still holds
    assert run.statistics().sessions.http_clients == 0  # all closed at the end
