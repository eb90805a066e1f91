"""Every Page method against real Chromium, on the demo storefront.

A Page is opened the way the job runner opens one (a prepared tab, a request, the
crawl's shared pacing and link rules); the shop's truth functions say what each
method must find."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import pytest
import trio

import crawler
from crawler import demo
from crawler.config import CrawlSection
from crawler.httpserver import HttpRequest, Response
from crawler.page.links import LinkFilter
from crawler.page.page import PageEnv, open_page
from crawler.page.tab import prepare_tab
from crawler.policy.ratelimit import HostRateLimiter
from crawler.request import Request
from tests.shop import start_shop

pytestmark = pytest.mark.chromium

PRODUCTS = 40


# Pages that try to take their tab to a forbidden URL by themselves (path -> what they do).
SECRET = "file:///etc/passwd"
EVIL_PAGES = {
    "/evil/location": f"<p>home</p><script>location = '{SECRET}'</script>",
    "/evil/link": f"<a id=a href='{SECRET}'>passwords</a><script>document.getElementById('a').click()</script>",
    "/evil/open": f"<p>home</p><script>window.open('{SECRET}')</script>",
    "/evil/chrome": "<p>home</p><script>location = 'chrome://settings'</script>",
    "/evil/devtools": "<p>home</p><script>location = 'devtools://devtools/bundled/inspector.html'</script>",
    "/evil/frame": f"<p>home</p><iframe src='{SECRET}'></iframe>",
}


class RecordingShop(demo.DemoShop):
    """The storefront, noting when each path was requested; plus EVIL_PAGES, and
    ``/evil/redirect``, a 302 to SECRET."""

    def __init__(self, products: int):
        super().__init__(products)
        self.hits: list[tuple[float, str]] = []

    async def __call__(self, request: HttpRequest):
        self.hits.append((trio.current_time(), request.path))
        if request.path in EVIL_PAGES:
            return Response(body=EVIL_PAGES[request.path].encode())
        if request.path == "/evil/redirect":
            return Response(status=302, headers=(("Location", SECRET),))
        return await super().__call__(request)


@pytest.fixture
async def shop(nursery):
    s = RecordingShop(PRODUCTS)
    s.base = await start_shop(nursery, s)
    return s


def env_for(*, wait_ms=(0, 0), known=frozenset(), **crawl) -> PageEnv:
    async def known_urls(urls):
        return {u for u in urls if u in known}

    limits = HostRateLimiter(wait_ms)
    return PageEnv(limits, LinkFilter(CrawlSection(**crawl)), known_urls, 0.02, paces_documents=wait_ms[1] > 0)


@asynccontextmanager
async def page_on(browser, url: str, env: PageEnv | None = None, *, label=None, depth=0) -> AsyncIterator[crawler.Page]:
    env = env or env_for()
    async with browser.new_context() as context, context.new_tab() as tab:
        await prepare_tab(tab, pace_documents=env.paces_documents)
        async with open_page(tab, Request(url, label, depth), env) as page:
            await page.goto(url)
            yield page


def product_with_reviews(pages_at_least: int) -> int:
    return next(i for i in range(1, PRODUCTS + 1) if len(demo.reviews(i)) > 3 * (pages_at_least - 1))


async def test_goto_returns_the_status_and_raises_http_404_for_a_missing_page(shop, browser):
    """goto reports the document's status; a status >= 400 is a PageFailure naming it, not retried."""
    async with page_on(browser, f"{shop.base}/") as page:
        assert page.status == 200
        with pytest.raises(crawler.PageFailure) as info:
            await page.goto("/no/such/page")
    assert info.value.kind == "http_404" and not info.value.retryable


async def test_wait_for_returns_once_the_element_exists_and_times_out_with_a_retryable_failure(shop, browser):
    """wait_for waits for script-rendered content; with timeout_s it fails as `wait_for`, retryable."""
    async with page_on(browser, f"{shop.base}/product/1") as page:
        await page.wait_for("body[data-ready]")
        assert await page.evaluate("document.querySelector('#price').textContent") == demo.format_price(
            demo.product(1)["price"]
        )
        with trio.fail_after(5), pytest.raises(crawler.PageFailure) as info:
            await page.wait_for(".never-there", timeout_s=0.3)
    assert info.value.kind == "wait_for" and info.value.retryable


async def test_an_invalid_selector_fails_at_once_not_at_the_watchdog(shop, browser):
    """A malformed selector is an immediate error naming it, whatever method it is given to."""
    async with page_on(browser, f"{shop.base}/") as page:
        with trio.fail_after(2):
            for call in (page.wait_for("a[["), page.click_if_present("div >> p"), page.extract_all("..x", {"a": "b"})):
                with pytest.raises(ValueError, match="invalid CSS selector"):
                    await call


async def test_evaluate_returns_values_awaits_promises_and_raises_javascript_errors(shop, browser):
    async with page_on(browser, f"{shop.base}/") as page:
        assert await page.evaluate("1 + 2") == 3
        assert await page.evaluate("new Promise((r) => setTimeout(() => r('late'), 50))", await_promise=True) == "late"
        with pytest.raises(crawler.JavaScriptError, match="boom"):
            await page.evaluate("(() => { throw new Error('boom'); })()")


async def test_extract_reads_every_kind_of_field(shop, browser):
    """Text (trimmed), an attribute resolved to an absolute URL, a js expression, and a list."""
    i = product_with_reviews(1)
    async with page_on(browser, f"{shop.base}/product/{i}") as page:
        found = await page.extract(
            {
                "name": "h1",
                "image": {"css": "img.main", "attr": "src"},
                "stock": {"js": "document.querySelector('#stock').textContent"},
                "authors": {"css": ".review .author", "all": True},
                "missing": ".nothing-here",
            },
            wait_for="body[data-ready]",
        )
    p = demo.product(i)
    assert found == {
        "name": p["name"],
        "image": f"{shop.base}{p['image']}",
        "stock": str(p["stock"]),
        "authors": [r["author"] for r in demo.reviews(i)[:3]],
        "missing": None,
    }


async def test_extract_all_gives_one_row_per_match_with_fields_relative_to_it(shop, browser):
    i = product_with_reviews(1)
    async with page_on(browser, f"{shop.base}/product/{i}") as page:
        rows = await page.extract_all(
            ".review",
            {"id": {"attr": "data-id"}, "text": ".body", "stars": {"css": ".stars", "attr": "data-n"}},
        )
    assert rows == [{"id": r["id"], "text": r["text"], "stars": str(r["stars"])} for r in demo.reviews(i)[:3]]


async def test_click_if_present_reaches_every_review_behind_the_more_button(shop, browser):
    """The contract's loop: click "more" while it is there, waiting for the page to settle."""
    i = product_with_reviews(3)
    async with page_on(browser, f"{shop.base}/product/{i}") as page:
        clicks = 0
        while await page.click_if_present("button.more-reviews"):
            await page.wait_for_idle()
            clicks += 1
        ids = [row["id"] for row in await page.extract_all(".review", {"id": {"attr": "data-id"}})]
        assert not await page.click_if_present("button.more-reviews")
    assert ids == [r["id"] for r in demo.reviews(i)]
    assert clicks >= 2


async def test_responses_keep_the_body_of_every_page_of_the_review_api(shop, browser):
    """Every matching response, in order: pages 2..N of the review API are all there."""
    i = product_with_reviews(3)
    async with page_on(browser, f"{shop.base}/product/{i}") as page:
        while await page.click_if_present("button.more-reviews"):
            await page.wait_for_idle()
        bodies = await page.responses("/api/reviews/")
    assert [b["page"] for b in bodies] == list(range(2, bodies[0]["pages"] + 1))
    assert [r["id"] for b in bodies for r in b["reviews"]] == [r["id"] for r in demo.reviews(i)[3:]]


async def test_click_waits_for_the_element_and_fill_types_into_inputs(shop, browser):
    """Logging in through the form: fill both inputs, click submit; the session cookie then shows."""
    async with page_on(browser, f"{shop.base}/login") as page:
        await page.fill("#username", "demo")
        await page.fill("#password", "demo")
        await page.click("button[type=submit]")
        await page.wait_for(".wish")
        wishes = await page.extract({"ids": {"css": ".wish a", "attr": "href", "all": True}})
    assert shop.logins == 1
    assert len(wishes["ids"]) == len(demo.truth(PRODUCTS)["wish"])


async def test_scroll_to_end_loads_every_entry_of_an_infinite_list(shop, browser):
    i = max(range(1, PRODUCTS + 1), key=lambda n: len(demo.questions(n)))
    async with page_on(browser, f"{shop.base}/product/{i}/questions") as page:
        grew = await page.scroll_to_end(settle_s=0.3)
        ids = [row["id"] for row in await page.extract_all(".question", {"id": {"attr": "data-id"}})]
    assert ids == [q["id"] for q in demo.questions(i)]
    assert grew >= 1


async def test_enqueue_normalises_links_skips_non_http_and_other_hosts_and_counts_new_ones(shop, browser):
    """Only http(s) links of this host, fragments dropped, each once; known ones are not new."""
    known = {f"{shop.base}/about"}
    env = env_for(known=known)
    async with page_on(browser, f"{shop.base}/", env, depth=2) as page:
        new = await page.enqueue(selector="a", label="any", data={"from": "home"})
        again = await page.enqueue(selector="a")
    urls = [r.url for r in page.links]
    assert new == len(urls) and again == 0
    assert all(u.startswith(shop.base + "/") and "#" not in u for u in urls)
    assert len(set(urls)) == len(urls) and f"{shop.base}/about" not in urls
    assert f"{shop.base}/login" in urls
    assert {r.depth for r in page.links} == {3} and {r.parent for r in page.links} == {f"{shop.base}/"}
    assert all(r.label == "any" and r.data == {"from": "home"} for r in page.links)
    skipped = env.links.skipped
    assert skipped["other_host"] >= 1
    assert {"scheme_mailto", "scheme_javascript", "scheme_file", "scheme_data"} <= set(skipped)


async def test_push_adds_url_and_label_where_the_item_lacks_them(shop, browser):
    async with page_on(browser, f"{shop.base}/", label="home") as page:
        await page.push({"a": 1})
        await page.push({"a": 2, "url": "elsewhere", "label": "mine"})
        with pytest.raises(TypeError):
            await page.push({"bad": object()})
    assert page.items == [
        {"a": 1, "url": f"{shop.base}/", "label": "home"},
        {"a": 2, "url": "elsewhere", "label": "mine"},
    ]


async def test_html_and_screenshot(shop, browser):
    async with page_on(browser, f"{shop.base}/about") as page:
        html = await page.html()
        png = await page.screenshot()
    assert html.startswith("<html") and "</body>" in html
    assert png[:8] == b"\x89PNG\r\n\x1a\n" and len(png) > 1000


async def test_a_navigation_caused_by_a_click_waits_for_the_hosts_rate_limit_turn(shop, browser):
    """goto and a click's navigation are both document requests paced per host."""
    env = env_for(wait_ms=(400, 400))
    async with page_on(browser, f"{shop.base}/", env) as page:
        await page.click("a[href='/about']")
        await page.wait_for_load()
        with trio.fail_after(5):
            while not [t for t, path in shop.hits if path == "/about"]:  # noqa: ASYNC110 - the shop has no event
                await trio.sleep(0.02)
    home = next(t for t, path in shop.hits if path == "/")
    about = next(t for t, path in shop.hits if path == "/about")
    assert about - home >= 0.38


async def test_blocked_resource_types_are_never_requested_and_extraction_is_unchanged(shop, browser):
    """With images and stylesheets blocked by type, the heavy product page loads none of
    its 41 images or its stylesheet, and every field is still what the shop shows."""
    i = 7
    url = f"{shop.base}/heavy/product/{i}"
    async with browser.new_context() as context, context.new_tab() as tab:
        await prepare_tab(tab, block_resources=("Image", "Stylesheet"))
        async with open_page(tab, Request(url), env_for()) as page:
            await page.goto(url)
            fields = await page.extract(
                {"name": "h1", "price": "#price", "image": {"css": "img.main", "attr": "src"}},
                wait_for="body[data-ready]",
            )
            blocked = page.traffic.blocked
    want = demo.expected_item(shop.base, i)
    assert fields == {"name": want["name"], "price": want["price"], "image": want["image"]}
    paths = [path for _, path in shop.hits]
    assert "/api/goods/7" in paths and "/static/heavy-app.js" in paths
    assert not [p for p in paths if p.startswith("/img/") or p.endswith(".css")], paths
    assert blocked == 42  # 40 gallery images, the main image, the stylesheet


FORBIDDEN = (
    SECRET,
    "FILE:///etc/shadow",
    "chrome://settings",
    "chrome-untrusted://terminal/",
    "devtools://devtools/bundled/inspector.html",
    "view-source:file:///etc/passwd",
    "filesystem:http://127.0.0.1/temporary/x",
)


async def test_goto_refuses_forbidden_and_other_non_http_urls_before_sending_anything(shop, browser):
    """goto to a file:, chrome:, devtools:... URL raises PageFailure ``forbidden_url``
    naming the scheme, not retried, and the tab never moves: the browser would load
    such a URL if asked (a browser-side navigation), so it is never asked.  javascript:
    and data: URLs are refused too (``bad_url``), and run nothing."""
    async with page_on(browser, f"{shop.base}/about") as page:
        for url in FORBIDDEN:
            with pytest.raises(crawler.PageFailure) as info:
                await page.goto(url)
            assert info.value.kind == "forbidden_url" and not info.value.retryable
            assert url.split(":")[0].lower() in info.value.reason
        for url in ("javascript:document.title = 'ran'", "data:text/html,<title>ran</title>"):
            with pytest.raises(crawler.PageFailure) as info:
                await page.goto(url)
            assert info.value.kind == "bad_url"
        await page.wait_for_idle(0.2)
        assert await page.evaluate("[location.href, document.title]") == [f"{shop.base}/about", "About"]


async def test_a_pages_own_navigation_to_a_forbidden_url_is_refused_by_chromium(shop, browser):
    """A page that sends its tab (or a frame, or a popup) to file:, chrome: or devtools:
    by itself - assigning location, clicking a link, window.open, an iframe, a 302 -
    never gets there: Chromium refuses a navigation a page starts to those schemes (a
    redirect fails the goto ``net::ERR_UNSAFE_REDIRECT``, not retried).  No frame of the
    tab even starts loading it, and no target of the tab's context shows it."""
    async with browser.new_context() as context:
        for path in [*EVIL_PAGES, "/evil/redirect"]:
            url = f"{shop.base}{path}"
            async with context.new_tab() as tab:
                await prepare_tab(tab)
                async with open_page(tab, Request(url), env_for()) as page:
                    if path == "/evil/redirect":
                        with pytest.raises(crawler.PageFailure) as info:
                            await page.goto(url)
                        assert info.value.reason == "net: net::ERR_UNSAFE_REDIRECT" and not info.value.retryable
                    else:
                        await page.goto(url)
                        await page.wait_for_idle(0.3)
                        assert await page.evaluate("location.href") == url, path
                        assert "root:" not in await page.evaluate("document.documentElement.outerHTML"), path
                    assert page.traffic.forbidden is None, path
                    # (Chromium's own omnibox popups, type browser_ui, are chrome: pages in every context)
                    ours = [t for t in await browser.targets() if t.browser_context_id == context.id]
                    ours = [t for t in ours if t.type != "browser_ui"]
            assert ours and not [t.url for t in ours if t.url.startswith(("file:", "chrome:", "devtools:"))], ours


@pytest.mark.parametrize("pacing", [False, True], ids=["plain", "paced"])
async def test_a_forbidden_navigation_started_past_goto_fails_the_job_and_reads_nothing(shop, browser, pacing):
    """The one way to a file: URL - a navigation the browser side starts, which goto
    refuses to ask for - taken all the same (a handler sending Page.navigate itself):
    the page notices it as it starts, every evaluation from then on fails
    ``forbidden_url`` (not retried, the tab not reusable), and so does the end of the
    page's block; nothing of the file is ever returned.  With pacing on (Fetch), the
    request is failed outright and the file is not even loaded."""
    env = env_for(wait_ms=(0, 1)) if pacing else env_for()
    read: list[str] = []
    reply: dict = {}
    with pytest.raises(crawler.PageFailure) as info:
        async with page_on(browser, f"{shop.base}/about", env) as page:
            reply = await page.tab.send("Page.navigate", url=SECRET)
            with trio.fail_after(5):
                while True:
                    read.append(await page.evaluate("document.documentElement.outerHTML"))
                    await trio.sleep(0.05)
    assert info.value.kind == "forbidden_url" and not info.value.retryable and not info.value.tab_reusable
    assert SECRET in info.value.reason
    assert not any("root:" in html for html in read)
    if pacing:  # failed (BlockedByClient), or aborted first by the page's Page.stopLoading
        assert reply.get("errorText") in ("net::ERR_BLOCKED_BY_CLIENT", "net::ERR_ABORTED"), reply
