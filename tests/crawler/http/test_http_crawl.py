"""The HTTP path end to end, without a browser: a crawl whose every route says
``fetch = "http"`` runs its handlers on HttpPages, stores exactly what the pages hold,
and never starts Chromium."""

from __future__ import annotations

import json

import pytest

import crawler
from crawler import config as config_mod
from crawler.run.engine import Crawler
from crawler.store.sqlite import SqliteStore
from tests.crawler.http.static_shop import PRODUCTS, no_browser

ROUTES = [
    {"follow": [{"selector": "a.product", "label": "product"}, {"selector": "a.next"}]},
    {
        "label": "product",
        "fields": {
            "name": {"css": "h1", "required": True},
            "price": ".price",
            "image": {"css": "meta[property='og:image']", "attr": "content"},
            "reviews": {"css": "li.review", "all": True},
        },
    },
]


def http_config(tmp_path, urls, *, routes=ROUTES, **sections):
    data = {
        "input": {"urls": urls},
        "crawl": {"fetch": "http"},
        "pool": {"concurrency": 4},
        "watchdog": {"timeout_s": 10.0, "jitter_s": 0.0},
        "retry": {"max_attempts": 2, "backoff_s": [0.05, 0.2]},
        "output": {"db": str(tmp_path / "crawl.db")},
        "route": routes,
    }
    for name, values in sections.items():
        data[name] = {**data.get(name, {}), **values}
    return config_mod.from_dict(data, source="test.toml", base_dir=str(tmp_path))


async def test_http_crawl_stores_every_product_without_a_browser(tmp_path, static_shop):
    cfg = http_config(tmp_path, [f"{static_shop.base}/list/0"])
    store = SqliteStore(cfg.output.db)
    run = Crawler(cfg, store, open_browser=no_browser)
    assert await run.run() == "finished"
    items = [i for i in await store.items() if i.get("label") == "product"]
    assert len(items) == PRODUCTS
    seven = next(i for i in items if i["url"].endswith("/p/7"))
    assert seven["name"] == "Product 7"  # whitespace runs made one space, trimmed
    assert seven["price"] == "1007 won"
    assert seven["image"] == "/img/7.png"  # content is not a URL attribute: as written
    assert seven["reviews"] == ["r7-0 good shoes", "r7-1 good shoes", "r7-2 good shoes"]
    assert seven["status"] == 200
    summary = await run.summary()
    assert summary["fetch_paths"]["product"]["http"] == PRODUCTS
    assert summary["fetch_paths"]["product"]["browser"] == 0


async def test_python_handler_on_http_route_gets_the_same_api(tmp_path, static_shop):
    router = crawler.Router()
    seen = {}

    @router.route(fetch="http")
    async def listing(page):
        seen["status"], seen["type"] = page.status, page.headers["content-type"]
        await page.enqueue(selector="a.product", label="product")

    @router.route("product", fetch="http")
    async def product(page):
        item = await page.extract({"name": "h1"}, wait_for="h1")
        rows = await page.extract_all("li.review", {"who": "b"})
        api = await page.fetch(page.url.replace("/p/", "/api/"))
        await page.push({**item, "reviews": [r["who"] for r in rows], "api": api.json()["id"]})

    cfg = http_config(tmp_path, [f"{static_shop.base}/list/0"], routes=[])
    store = SqliteStore(cfg.output.db)
    assert await Crawler(cfg, store, router=router, open_browser=no_browser).run() == "finished"
    items = await store.items()
    assert len(items) == 10 and seen == {"status": 200, "type": "text/html; charset=utf-8"}
    first = next(i for i in items if i["url"].endswith("/p/0"))
    assert first["reviews"] == ["r0-0", "r0-1", "r0-2"] and first["api"] == 0
    referers = {r.headers.get("referer") for r in static_shop.requests if r.path.startswith("/api/")}
    assert referers == {f"{static_shop.base}/p/{i}" for i in range(10)}


async def test_browser_step_on_http_route_fails_naming_the_route_and_the_fix(tmp_path, static_shop):
    router = crawler.Router()

    @router.route(fetch="http")
    async def listing(page):
        await page.click("a.product")

    cfg = http_config(tmp_path, [f"{static_shop.base}/list/0"], routes=[])
    store = SqliteStore(cfg.output.db)
    await Crawler(cfg, store, router=router, open_browser=no_browser).run()
    state = await store.url_state(f"{static_shop.base}/list/0")
    assert state["state"] == "failed"
    assert state["last_error"] == (
        "browser_only: page.click() needs a browser, and the default route fetches over HTTP:"
        ' set fetch = "browser" (or "auto") on it'
    )
    assert state["attempts"] == 1  # not retried


@pytest.mark.parametrize(
    ("path", "error"),
    [
        ("/big?mb=2", "body_too_large: Content-Length 2097178 bytes, over the limit of 1048576"),
        ("/bomb?mb=64", "body_too_large: gzip body decoding past 1048576 bytes from"),
        ("/image", "content_type: image/png, not HTML"),
        ("/nope", "http_404"),
    ],
)
async def test_bad_response_fails_with_its_reason_and_nothing_stored(tmp_path, static_shop, path, error):
    cfg = http_config(
        tmp_path, [static_shop.base + path], routes=[{"fields": {"name": "h1"}}], http={"max_body_bytes": 2**20}
    )
    store = SqliteStore(cfg.output.db)
    await Crawler(cfg, store, open_browser=no_browser).run()
    state = await store.url_state(static_shop.base + path)
    assert state["state"] == "failed" and state["last_error"].startswith(error), state
    assert await store.items() == []


async def test_charset_from_a_meta_tag_decodes_the_page(tmp_path, static_shop):
    cfg = http_config(tmp_path, [f"{static_shop.base}/latin1"], routes=[{"fields": {"name": "h1"}}])
    store = SqliteStore(cfg.output.db)
    await Crawler(cfg, store, open_browser=no_browser).run()
    assert [i["name"] for i in await store.items()] == ["caf\u00e9"]


async def test_redirect_to_a_forbidden_scheme_is_refused(tmp_path, static_shop):
    url = f"{static_shop.base}/redirect?to=file:///etc/passwd"
    cfg = http_config(tmp_path, [url], routes=[{"fields": {"name": "h1"}}])
    store = SqliteStore(cfg.output.db)
    await Crawler(cfg, store, open_browser=no_browser).run()
    state = await store.url_state(url)
    assert state["state"] == "failed" and state["last_error"].startswith("forbidden_url: file: URLs are never fetched")


async def test_try_runs_an_http_route_without_a_browser(tmp_path, static_shop):
    """``crawler try`` shows what an HTTP route gives, as a crawl would fetch it: one
    request, no browser, nothing stored."""
    from crawler.run.tryout import try_url

    cfg = http_config(tmp_path, [f"{static_shop.base}/list/0"])
    result = await try_url(cfg, f"{static_shop.base}/p/3", label="product", open_browser=no_browser)
    assert result.failures == () and result.status == 200
    assert [(i["name"], i["price"]) for i in result.items] == [("Product 3", "1003 won")]
    assert [step for step, _ in result.timings] == ["session", "fetch", "handler"]


async def test_http_requests_present_the_sessions_identity(tmp_path, static_shop):
    """User agent, Accept-Language from the locale (weighted as Chromium weighs it) and
    the configured headers go with every request."""
    cfg = http_config(
        tmp_path,
        [f"{static_shop.base}/echo"],
        routes=[{"fields": {"echo": "#echo"}}],
        session={"locale": "ko-KR", "user_agent": "TestAgent/1.0", "headers": {"X-Team": "crawl"}},
    )
    store = SqliteStore(cfg.output.db)
    await Crawler(cfg, store, open_browser=no_browser).run()
    [item] = await store.items()
    headers = json.loads(item["echo"])["headers"]
    assert headers["user-agent"] == "TestAgent/1.0"
    assert headers["accept-language"] == "ko-KR" and headers["x-team"] == "crawl"
    assert headers["accept"].startswith("text/html") and headers["accept-encoding"] == "gzip, deflate"


@pytest.mark.parametrize(("path", "session", "reason"), [
    ("/forbidden", {"retire_on_status": [403]}, "status_403"),
    ("/captcha", {"retire_if": "#captcha"}, "retire_if"),
])  # fmt: skip
async def test_a_blocked_http_page_retires_its_session_and_stores_nothing(tmp_path, static_shop, path, session, reason):
    cfg = http_config(
        tmp_path, [static_shop.base + path], routes=[{"fields": {"name": "h1"}}],
        session={**session, "backoff_s": [0.0, 0.0]}, retry={"max_attempts": 2},
    )  # fmt: skip
    store = SqliteStore(cfg.output.db)
    run = Crawler(cfg, store, open_browser=no_browser)
    await run.run()
    summary = await run.summary()
    assert summary["sessions_retired"][reason] >= 2 and summary["sessions"] >= 2
    assert await store.items() == []
    state = await store.url_state(static_shop.base + path)
    assert state["state"] == "failed" and state["last_error"] == f"retired: {reason}"
