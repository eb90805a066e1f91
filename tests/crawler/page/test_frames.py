"""Frames and shadow DOM against real Chromium: ``page.frame(selector)`` reaches a
same-origin frame, a cross-site frame (another renderer process) and a frame inside a
frame; every selector, in a page, a frame or an extract field, pierces open and closed
shadow roots.

The parent pages come from ``http://127.0.0.1:PORT`` and the cross-site frames from
``http://localhost:PORT2`` (``pages.start_sites``)."""

from __future__ import annotations

import pytest
import trio

from tests.crawler.page.pages import FRAME_ITEMS, SHADOW_ITEMS, WIDGET_ITEMS, page_on

pytestmark = pytest.mark.chromium

ID = {"id": {"attr": "data-id"}}


async def test_a_same_origin_frames_items_are_extracted_through_page_frame(sites, browser):
    """``page.frame("iframe#x")`` is the frame's document: wait_for and extract_all run in
    it (all 12 items, in order), not in the parent, which has none."""
    async with page_on(browser, f"{sites.main.base}/frames/same") as page:
        with trio.fail_after(5):
            frame = await page.frame("iframe#x")
            await frame.wait_for("#items[data-done]")
        rows = await frame.extract_all("li.item", {**ID, "name": ".name"})
        in_parent = await page.extract_all("li.item", ID)
    assert rows == [{"id": i, "name": f"Item {int(i[1:])}"} for i in FRAME_ITEMS]
    assert in_parent == []


async def test_a_cross_site_frame_is_read_and_clicked_and_its_responses_captured(sites, browser):
    """A frame from another site (out of process: the parent cannot see into it) is
    reached all the same: extract_all finds its items, click acts in it (the button
    loads the second page), and page.responses sees both JSON responses it fetched."""
    async with page_on(browser, f"{sites.main.base}/frames/cross") as page:
        with trio.fail_after(5):
            frame = await page.frame("iframe#x")
        assert await page.evaluate("document.querySelector('iframe#x').contentDocument === null")
        with trio.fail_after(5):
            await frame.wait_for("li.widget-item")
            first = await frame.extract_all("li.widget-item", ID)
            await frame.click("button#more")
            await frame.wait_for("li.widget-item[data-id=w12]")
        rows = await frame.extract_all("li.widget-item", {**ID, "name": {"js": "el.textContent"}})
        with trio.fail_after(5):
            bodies = await page.responses("/api/widget")
    assert [row["id"] for row in first] == WIDGET_ITEMS[:6]
    assert rows == [{"id": i, "name": f"Widget {i}"} for i in WIDGET_ITEMS]
    assert [b["page"] for b in bodies] == [1, 2]
    assert [it["id"] for b in bodies for it in b["items"]] == WIDGET_ITEMS
    assert [r.path for r in sites.other.requests if r.path.startswith("/api/")] == ["/api/widget"] * 2


async def test_a_cross_site_frame_inside_a_same_origin_frame_is_reached_by_frame_of_frame(sites, browser):
    """``page.frame("iframe#outer").frame("iframe#inner")``: the outer frame (same origin)
    shows its own note, the inner one (another site) its 12 items."""
    async with page_on(browser, f"{sites.main.base}/frames/nested") as page:
        with trio.fail_after(5):
            outer = await page.frame("iframe#outer")
            inner = await outer.frame("iframe#inner")
            await inner.wait_for("#items[data-done]")
        note = await outer.extract({"note": "#outer-note", "items": {"css": "li.item", "all": True}})
        rows = await inner.extract_all("li.item", ID)
        origin = await inner.evaluate("location.origin")
    assert note == {"note": "outer", "items": []}
    assert [row["id"] for row in rows] == FRAME_ITEMS
    assert origin == sites.other.base


async def test_selectors_pierce_open_and_closed_shadow_roots(sites, browser):
    """wait_for, extract_all (and its fields), extract fields and click all see into an
    open shadow root and the closed root of a custom element: every item, light DOM
    first, then each root's in turn; a click on the closed root's button acts there."""
    async with page_on(browser, f"{sites.main.base}/shadow") as page:
        with trio.fail_after(5):
            await page.wait_for("li.item[data-id=c4]")
        rows = await page.extract_all("li.item", {**ID, "name": ".name"})
        fields = await page.extract({"titles": {"css": "h2.title", "all": True}, "last": "li.item[data-id=c4] .name"})
        with trio.fail_after(5):
            await page.click("button.buy")
            await page.wait_for("p.bought")
        bought = await page.extract({"bought": "p.bought"})
    labels = {"l": "Light", "o": "Open", "c": "Closed"}
    assert rows == [{"id": i, "name": f"{labels[i[0]]} {i[1]}"} for i in SHADOW_ITEMS]
    assert fields == {"titles": ["Open", "Closed"], "last": "Closed 4"}
    assert bought == {"bought": "bought"}


async def test_a_frames_selectors_pierce_closed_shadow_roots(sites, browser):
    """In a frame too, selectors enter open and closed shadow roots: all 9 items."""
    async with page_on(browser, f"{sites.main.base}/frames/shadowed") as page:
        with trio.fail_after(5):
            frame = await page.frame("iframe#x")
            await frame.wait_for("li.item[data-id=c4]")
        rows = await frame.extract_all("li.item", ID)
    assert [row["id"] for row in rows] == SHADOW_ITEMS
