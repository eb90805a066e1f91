"""What a crawl's page renders, against real Chromium: infinite lists, lazy images,
requestAnimationFrame, focus and visibility; and when the page counts as idle.

Every page is opened the way the pool hands out a tab it reuses (``pages.page_on``):
its window minimised, the page hidden.  Opened with the default render it must be
visible, focused and painted, or none of this content ever appears."""

from __future__ import annotations

import pytest
import trio

import crawler
from tests.crawler.page.pages import (
    QUESTIONS,
    RAF_ITEMS,
    REVIEWS,
    TICK_DELAY_S,
    lazy_image_paths,
    page_on,
)

pytestmark = pytest.mark.chromium

ID = {"id": {"attr": "data-id"}}


async def test_scroll_to_end_completes_an_intersection_observer_list_in_a_reused_hidden_tab(sites, browser):
    """scroll_to_end brings the sentinel of an IntersectionObserver list into view until
    the list stops growing: all 60 reviews (6 pages of 10 from the JSON API), in order."""
    async with page_on(browser, f"{sites.main.base}/io-list") as page:
        with trio.fail_after(10):
            await page.wait_for("li.review")
            await page.scroll_to_end(settle_s=0.2)
        rows = await page.extract_all("li.review", ID)
    assert [row["id"] for row in rows] == REVIEWS
    assert [r.query["page"] for r in sites.main.requests if r.path == "/api/reviews"] == [[str(n)] for n in range(1, 7)]


async def test_scroll_to_end_completes_a_scroll_listener_list_in_a_reused_hidden_tab(sites, browser):
    """A list that loads its next page from a ``scroll`` listener when scrollY nears the
    bottom is complete after scroll_to_end: all 50 questions, in order."""
    async with page_on(browser, f"{sites.main.base}/scroll-list") as page:
        with trio.fail_after(10):
            await page.wait_for("li.question")
            await page.scroll_to_end(settle_s=0.2)
        rows = await page.extract_all("li.question", ID)
    assert [row["id"] for row in rows] == QUESTIONS


async def test_scroll_to_end_requests_every_lazy_image_of_a_tall_page(sites, browser):
    """Down a 9000 px page, 15 ``loading=lazy`` images and 15 ``data-src`` images swapped
    in by an IntersectionObserver: the far ones are not requested on load, and after
    scroll_to_end every one of the 30 was (the server's log)."""
    async with page_on(browser, f"{sites.main.base}/lazy-images") as page:
        await page.wait_for_load()
        assert "/img/lazy-28.png" not in sites.main.paths and "/img/io-29.png" not in sites.main.paths
        with trio.fail_after(10):
            await page.scroll_to_end(settle_s=0.1)
    requested = {p for p in sites.main.paths if p.startswith("/img/")}
    assert requested == lazy_image_paths()


async def test_a_page_in_a_reused_hidden_tab_is_visible_focused_and_runs_animation_frames(sites, browser):
    """With the default ``render="visible"`` a page whose tab was hidden is visible and
    focused, and requestAnimationFrame runs: a list rendered 5 items per frame is all
    there, f01..f40, for wait_for and extract_all."""
    async with page_on(browser, f"{sites.main.base}/raf-list") as page:
        with trio.fail_after(5):
            await page.wait_for("#list[data-done]")
        rows = await page.extract_all("li.frame-item", ID)
        state = await page.evaluate("[document.visibilityState, document.hasFocus()]")
    assert [row["id"] for row in rows] == RAF_ITEMS
    assert state == ["visible", True]


async def test_render_hidden_leaves_the_tab_hidden_and_unpainted(sites, browser):
    """``open_page(render="hidden")`` (a route's ``render = "hidden"``) opts out: the
    page reports visibilityState 'hidden' and runs no requestAnimationFrame callback."""
    async with page_on(browser, f"{sites.main.base}/raf-list", render="hidden") as page:
        await page.wait_for("#list")
        await trio.sleep(0.3)
        state = await page.evaluate("[document.visibilityState, window.rafCalls]")
    assert state == ["hidden", 0]


async def test_wait_for_idle_ignores_unread_bodies_beacons_and_event_streams(sites, browser):
    """Fetches whose bodies the page never reads (one held open by the server, one of
    8 MiB), a beacon the server has not answered and an EventSource sending an event
    every 0.2 s are not loading: wait_for_idle(0.5) returns within idle_s + 1 s."""
    async with page_on(browser, f"{sites.main.base}/idle/streams") as page:
        with trio.fail_after(5):
            await page.wait_for("body[data-started]")
        start = trio.current_time()
        with trio.fail_after(5):
            await page.wait_for_idle(idle_s=0.5)
        took = trio.current_time() - start
    assert took <= 1.5
    assert {"/api/unread", "/api/large", "/beacon"} <= set(sites.main.paths)


async def test_wait_for_idle_fails_naming_the_requests_of_a_page_that_polls_forever(sites, browser):
    """A page fetching every 100 ms (each answered in 150 ms) is never idle:
    wait_for_idle(timeout_s=2) raises PageFailure ``idle`` after 2 s, naming the
    request in flight."""
    assert TICK_DELAY_S > 0.1  # so that a tick is always in flight
    async with page_on(browser, f"{sites.main.base}/idle/poll") as page:
        start = trio.current_time()
        with trio.fail_after(5), pytest.raises(crawler.PageFailure) as info:
            await page.wait_for_idle(timeout_s=2)
        took = trio.current_time() - start
    assert info.value.kind == "idle"
    assert "/api/tick" in info.value.reason
    assert 2 <= took <= 3
