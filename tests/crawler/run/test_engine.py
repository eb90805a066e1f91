"""The crawl engine against real Chromium and the fixture shop on 127.0.0.1."""

from __future__ import annotations

import statistics
from contextlib import asynccontextmanager

import pytest
import trio

import cdp
from crawler.demo import expected_item
from crawler.run.router import run_route
from tests.cdp.conftest import WITH_DEVTOOLS_PORT, devtools_ws_url
from tests.crawler.conftest import CurrentPool, crawl, make_config, url_states

pytestmark = pytest.mark.chromium


class Served(list):
    """(url, tab target id, context id) of every page job, in start order, recorded by
    :meth:`run_route`, the engine's ``run_route`` seam around the real page work."""

    async def run_route(self, router, sessions, tab, request, *args):
        self.append((request.url, tab.target_id, tab.context.id))
        return await run_route(router, sessions, tab, request, *args)


@pytest.fixture
def served() -> Served:
    return Served()


async def test_every_field_kind_and_the_capture_are_extracted(shop, tmp_path):
    """CSS text, CSS attribute (made absolute), JS expression and a captured JSON
    response all land in the item, exactly as the shop rendered them."""
    urls = [f"{shop.base}/product/{i}" for i in range(1, 7)]
    c, store, reason = await crawl(make_config(tmp_path, urls))
    assert reason == "finished"
    items = {item["url"]: item for item in await store.items()}
    assert items == {u: expected_item(shop.base, i) for i, u in enumerate(urls, 1)}
    jobs = c.statistics().jobs
    assert jobs.done == 6 and not jobs.failed


async def test_hung_page_times_out_within_budget_and_its_tab_is_not_reused(shop, tmp_path, served):
    """A server that never answers ends as a timeout within timeout_s + jitter_s + 2 s,
    and the tab it held is closed, never leased again."""
    hang = f"{shop.base}/hang/1"
    urls = [hang] + [f"{shop.base}/product/{i}" for i in range(1, 9)]
    cfg = make_config(
        tmp_path, urls, watchdog={"timeout_s": 2.0, "jitter_s": 1.0}, retry={"max_attempts": 1}, pool={"concurrency": 2}
    )
    c, store, _ = await crawl(cfg, run_route=served.run_route)
    row = await store.url_state(hang)
    assert row["state"] == "failed" and row["last_error"].startswith("timeout")
    assert row["elapsed_s"] <= 2.0 + 1.0 + 2.0
    assert c.statistics().jobs.watchdog_expiries == 1
    hung_tab = next(target for url, target, _ in served if url == hang)
    assert [url for url, target, _ in served if target == hung_tab] == [hang]
    assert c.statistics().jobs.done == 8


async def test_tabs_recycle_every_n_pages_and_contexts_rotate_every_m_with_no_strays(shop, tmp_path, served, nursery):
    """With recycle_tab_every=3 and rotate_context_every=7 (one worker), each tab
    serves 3 pages unless its context rotates first, each context serves 7 pages,
    and the browser's own target list never holds a tab or context the pool does not
    own, during the crawl and after it (checked through a second connection)."""
    async with cdp.launch(args=WITH_DEVTOOLS_PORT) as browser:
        ws_url = await devtools_ws_url(browser)
        urls = [f"{shop.base}/product/{i}" for i in range(1, 21)]
        cfg = make_config(
            tmp_path,
            urls,
            browser={"cdp_url": ws_url},
            pool={"concurrency": 1, "recycle_tab_every": 3, "rotate_context_every": 7},
        )
        reports = []
        current = CurrentPool()

        async def watch():
            while True:
                pool = current.pool
                if pool is not None:
                    try:
                        reports.append(await pool.check_invariants())
                    except cdp.CDPError:
                        pass
                await trio.sleep(0.01)

        from crawler.run.engine import Crawler
        from crawler.store.sqlite import SqliteStore

        store = SqliteStore(cfg.output.db)
        engine = Crawler(cfg, store, open_pool=current, run_route=served.run_route)
        nursery.start_soon(watch)
        assert await engine.run() == "finished"
        nursery.cancel_scope.cancel()

        # Expected layout: a new tab after 3 pages, or when the context changes after 7.
        expected, tab, ctx, tab_pages, ctx_pages = [], 0, 0, 0, 0
        for _ in urls:
            if ctx_pages == 7:
                ctx, ctx_pages, tab, tab_pages = ctx + 1, 0, tab + 1, 0
            elif tab_pages == 3:
                tab, tab_pages = tab + 1, 0
            expected.append((tab, ctx))
            tab_pages, ctx_pages = tab_pages + 1, ctx_pages + 1
        tabs, contexts = {}, {}
        observed = [(tabs.setdefault(t, len(tabs)), contexts.setdefault(x, len(contexts))) for _, t, x in served]
        assert observed == expected
        assert engine.statistics().browser.pool_totals.contexts_rotated == 2  # after pages 7 and 14

        assert len(reports) > 20
        bad = [r for r in reports if not r.ok or r.browser_tabs > 1 or r.browser_contexts > 2]
        assert not bad, bad[:3]
        targets = [t for t in await browser.targets() if t.type == "page"]
        contexts_left = (await browser.send("Target.getBrowserContexts"))["browserContextIds"]
        assert targets == [] and contexts_left == []


async def test_rate_limit_gaps_per_host_stay_in_the_configured_range(tmp_path, nursery, monkeypatch):
    """Per host, the server never sees two request starts less than 200 ms apart, and a
    request already queued is released 200-300 ms after the previous one left (the
    limiter neither runs fast nor dawdles); two hosts are paced independently."""
    from crawler.policy.ratelimit import HostRateLimiter
    from tests.shop import FaultShop, start_shop

    turns: dict[str, list[tuple[float, float, float]]] = {}  # host -> (queued, released, left)
    original_hold = HostRateLimiter.hold

    @asynccontextmanager
    async def recording_hold(self, url):
        queued = trio.current_time()
        async with original_hold(self, url):
            released = trio.current_time()
            try:
                yield
            finally:
                turns.setdefault(url.split("/")[2], []).append((queued, released, trio.current_time()))

    monkeypatch.setattr(HostRateLimiter, "hold", recording_hold)
    shop = FaultShop()
    base_a = await start_shop(nursery, shop, "127.0.0.1")
    base_b = await start_shop(nursery, shop, "127.0.0.2")
    urls = [f"{base}/product/{i}" for i in range(1, 9) for base in (base_a, base_b)]
    cfg = make_config(tmp_path, urls, rate_limit={"wait_ms": [200, 300]}, pool={"concurrency": 4})
    c, _, _ = await crawl(cfg)
    assert c.statistics().jobs.done == 16
    for base in (base_a, base_b):
        host = base.removeprefix("http://")
        arrivals = shop.hosts[host]
        assert len(arrivals) == 8 and len(turns[host]) == 8
        server_gaps = [b - a for a, b in zip(arrivals, arrivals[1:], strict=False)]
        assert min(server_gaps) >= 0.2 - 0.03, server_gaps
        queued_gaps = [
            # A request that arrived before the host's next allowed start had to wait for it.
            nxt[1] - prev[2]
            for prev, nxt in zip(turns[host], turns[host][1:], strict=False)
            if nxt[0] < prev[2] + 0.2
        ]
        assert queued_gaps, "no request was ever queued behind another: the test exercised nothing"
        # Never fast, strictly; not dawdling, by the median: on a loaded 2-core machine a
        # woken waiter is sometimes scheduled late (one gap of 0.92 s was seen in CI, and
        # the test failed 3 runs in 6 beside a Chromium test at the session's start).
        assert min(queued_gaps) >= 0.2, queued_gaps
        assert statistics.median(queued_gaps) <= 0.3 + 0.05, queued_gaps
    # Both hosts in parallel, not one after the other: their request windows overlap for
    # most of their length (judged by the shop's own clock, not by the machine's speed).
    windows = [
        (shop.hosts[h][0], shop.hosts[h][-1]) for h in (base_a.removeprefix("http://"), base_b.removeprefix("http://"))
    ]
    overlap = min(w[1] for w in windows) - max(w[0] for w in windows)
    assert overlap > 0.5 * min(w[1] - w[0] for w in windows), windows


async def test_retry_after_on_429_is_honoured(shop, tmp_path):
    """A 429 with Retry-After: 2 is retried no sooner than 2 s later, then succeeds."""
    url = f"{shop.base}/status/429/5?times=1&retry_after=2"
    cfg = make_config(tmp_path, [url], retry={"max_attempts": 3, "backoff_s": [0.01, 0.05]})
    c, store, _ = await crawl(cfg)
    hits = shop.hits["/status/429/5"]
    assert len(hits) == 2
    assert hits[1] - hits[0] >= 2.0
    assert (await store.url_state(url))["state"] == "done"
    assert c.statistics().jobs.retries == 1


async def test_client_errors_fail_at_once_and_server_errors_are_retried(shop, tmp_path):
    """404 is final after one attempt (reason http_404); 503 is retried up to max_attempts."""
    not_found = f"{shop.base}/status/404/1?times=99"
    unavailable = f"{shop.base}/status/503/2?times=99"
    cfg = make_config(tmp_path, [not_found, unavailable], retry={"max_attempts": 3, "backoff_s": [0.01, 0.05]})
    c, store, _ = await crawl(cfg)
    rows = await url_states(store, cfg.input.urls)
    assert (rows[not_found]["state"], rows[not_found]["last_error"], rows[not_found]["attempts"]) == (
        "failed",
        "http_404",
        1,
    )
    assert (rows[unavailable]["state"], rows[unavailable]["attempts"]) == ("failed", 3)
    assert await store.failures_by_reason() == {"http_404": 1, "http_503": 1}


async def test_the_same_url_fed_twice_is_crawled_once(shop, tmp_path):
    """Duplicate input URLs are one frontier row and one page load."""
    url = f"{shop.base}/product/3"
    c, store, _ = await crawl(make_config(tmp_path, [url, url, url]))
    assert len(shop.page_hits("product", 3)) == 1
    assert c.statistics().jobs.done == 1 and (await store.counts())["done"] == 1
