"""Form widgets and pointer and key input against real Chromium: select_option,
hover, press; and fill refusing what it cannot fill."""

from __future__ import annotations

import pytest
import trio

from tests.crawler.page.pages import CATALOGUE, MENU, STOCK, page_on

pytestmark = pytest.mark.chromium


def lamps() -> list[str]:
    return [name for name in CATALOGUE if "lamp" in name.lower()]


async def test_select_option_by_value_and_by_label_fires_input_and_change(sites, browser):
    """select_option picks by value or by label and returns the chosen value; the select
    fires input then change, so the page loads the stock of each size in turn."""
    async with page_on(browser, f"{sites.main.base}/select") as page:
        with trio.fail_after(5):
            by_value = await page.select_option("#size", "m")
            await page.wait_for("#stock[data-size=m]")
            medium = await page.extract({"stock": "#stock"})
            by_label = await page.select_option("#size", label="Large")
            await page.wait_for("#stock[data-size=l]")
        large = await page.extract({"stock": "#stock", "events": {"js": "window.events"}})
    assert (by_value, by_label) == ("m", "l")
    assert medium == {"stock": f"{STOCK['m']} left"}
    assert large == {"stock": f"{STOCK['l']} left", "events": ["input:m", "change:m", "input:l", "change:l"]}
    stock_asked = [r.query["size"] for r in sites.main.requests if r.path == "/api/stock"]
    assert stock_asked == [["m"], ["l"]]


async def test_fill_refuses_a_select_and_a_checkbox_naming_what_to_use(sites, browser):
    """fill on a ``<select>`` is a TypeError naming select_option; on a checkbox, one
    naming click.  Neither changes the element."""
    async with page_on(browser, f"{sites.main.base}/select") as page:
        with pytest.raises(TypeError, match="select_option"):
            await page.fill("#size", "m")
        with pytest.raises(TypeError, match="click"):
            await page.fill("#gift", "on")
        state = await page.evaluate("[document.querySelector('#size').value, document.querySelector('#gift').checked]")
    assert state == ["", False]


async def test_hover_opens_a_menu_whose_links_exist_only_under_the_pointer(sites, browser):
    """Before hover the submenu has no links; hover moves the mouse over the item
    (mouseover, mouseenter, CSS :hover), which makes all six and shows them."""
    async with page_on(browser, f"{sites.main.base}/menu") as page:
        before = await page.extract_all("#products .sub a", {"href": {"attr": "href"}})
        await page.hover("#products > a")
        with trio.fail_after(5):
            await page.wait_for("#products .sub a")
        rows = await page.extract_all(
            "#products .sub a", {"href": {"attr": "href"}, "shown": {"js": "el.checkVisibility()"}}
        )
        state = await page.evaluate("[document.querySelector('#products').matches(':hover'), window.events]")
    assert before == []
    assert rows == [{"href": f"{sites.main.base}/c/{c}", "shown": True} for c in MENU]
    assert state == [True, ["mouseover", "mouseenter"]]


async def test_press_enter_in_a_search_input_submits_its_form(sites, browser):
    """press("#q", "Enter") submits the form (a GET navigation to /search?q=lamp) and the
    results page lists every catalogue name containing "lamp"."""
    async with page_on(browser, f"{sites.main.base}/search") as page:
        await page.fill("#q", "lamp")
        await page.press("#q", "Enter")
        with trio.fail_after(5):
            await page.wait_for("li.result")
        rows = await page.extract_all("li.result", {"name": {"js": "el.textContent"}})
        url = await page.evaluate("location.href")
    assert [row["name"] for row in rows] == lamps() and len(lamps()) == 4
    assert url == f"{sites.main.base}/search?q=lamp"


async def test_press_enter_inside_a_cross_site_frame_submits_the_frames_form(sites, browser):
    """In a frame from another site, fill and press("Enter") reach the frame's input:
    its script-submitted search renders every result there."""
    async with page_on(browser, f"{sites.main.base}/frames/search") as page:
        with trio.fail_after(5):
            frame = await page.frame("iframe#x")
            await frame.fill("#q", "lamp")
            await frame.press("#q", "Enter")
            await frame.wait_for("li.result")
        rows = await frame.extract_all("li.result", {"name": {"js": "el.textContent"}})
    assert [row["name"] for row in rows] == lamps()
    assert [r.query for r in sites.other.requests if r.path == "/api/search"] == [{"q": ["lamp"]}]
