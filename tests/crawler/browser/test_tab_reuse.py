"""A tab serves many jobs without being blanked in between: its page's scripts are
stopped while it idles (real Chromium).  That the next job reads nothing of the previous page is tested
on the fake browser, which can make a page's late responses arrive at will
(``tests/crawler/run/test_chaos.py``)."""

from __future__ import annotations

import pytest
import trio

from crawler.browser.pool import open_pool
from crawler.page.page import open_page
from crawler.page.tab import prepare_tab
from crawler.request import Request
from tests.crawler.page.test_page import env_for

pytestmark = pytest.mark.chromium


async def test_an_idle_tab_is_stopped_and_its_page_requests_nothing(shop, shared_browser):
    """A tab given back idles with its page's scripts stopped: the page's 20 ms polling
    stops (the requests already in flight then may still arrive, nothing after)."""
    polled = "/api/goods/6"
    browser = shared_browser
    async with (
        open_pool(
            browser,
            concurrency=1,
            recycle_tab_every=100,
            rotate_context_every=100,
            prepare_tab=prepare_tab,
            tab_close_timeout_s=3.0,
            context_dispose_timeout_s=5.0,
        ) as pool,
    ):
        async with pool.lease() as lease:
            url = f"{shop.base}/poll/5"
            async with open_page(lease.tab, Request(url), env_for()) as page:
                await page.goto(url)
                await page.wait_for("body[data-ready]")
                await trio.sleep(0.3)
        assert pool.statistics().idle_tabs == 1
        running = len(shop.hits[polled])
        await trio.sleep(0.3)  # what was in flight when it froze
        frozen = len(shop.hits[polled])
        await trio.sleep(1.0)
        assert len(shop.hits[polled]) == frozen
        assert running >= 5  # it did poll while it ran
