"""TOML routes reach what a user sees, with no Python: a cross-site frame (its clicks
and its responses), a select and a hover before reading, shadow roots, and a list that
loads as it is scrolled.  Each case is a whole crawl against real Chromium, on the
test pages of ``tests.crawler.page.pages``; every item is checked, each exactly once."""

from __future__ import annotations

from typing import Any

import pytest

from crawler import config as config_mod
from crawler.run.engine import Crawler
from crawler.store.sqlite import SqliteStore
from tests.crawler.page.pages import MENU, REVIEWS, SHADOW_ITEMS, WIDGET_ITEMS, start_sites

pytestmark = pytest.mark.chromium

ID = {"id": {"attr": "data-id"}}


@pytest.fixture
async def sites(nursery):
    return await start_sites(nursery)


async def crawl_one(tmp_path, url: str, route: dict[str, Any], *, db: str = "crawl.db") -> list[dict[str, Any]]:
    """Crawl ``url`` with ``route`` as its default ``[[route]]`` (into ``db``); its items,
    in order, without their ``url`` and ``label``."""
    cfg = config_mod.from_dict(
        {
            "input": {"urls": [url]},
            "pool": {"concurrency": 1},
            "watchdog": {"timeout_s": 20.0, "jitter_s": 0.0},
            "retry": {"max_attempts": 1},
            "output": {"db": str(tmp_path / db)},
            "route": [route],
        },
        source="test.toml",
        base_dir=str(tmp_path),
    )
    store = await SqliteStore.open(cfg.output.db)
    engine = Crawler(cfg, store, router=None)
    assert await engine.run() == "finished"
    assert engine.statistics().jobs.done == 1, engine.statistics().jobs
    return [{k: v for k, v in item.items() if k not in ("url", "label")} for item in await store.items()]


async def test_a_route_reads_clicks_and_captures_inside_a_cross_site_frame(sites, tmp_path):
    """``frame`` takes the route into an out-of-process frame: ``click_until_gone`` loads
    its second page, ``items`` are its 12 entries, and the capture holds both of the
    frame's JSON responses."""
    items = await crawl_one(
        tmp_path,
        f"{sites.main.base}/frames/cross",
        {
            "frame": "iframe#x",
            "wait_for": "li.widget-item",
            "click_until_gone": "button#more",
            "fields": {"title": {"js": "document.title"}},
            "capture": [{"name": "pages", "url_contains": "/api/widget", "all": True}],
            "items": {"selector": "li.widget-item", "fields": ID},
        },
    )
    page, *rows = items
    assert page["title"] == "Widget"  # read in the frame, not the page around it
    assert [p["page"] for p in page["pages"]] == [1, 2]
    assert rows == [{"id": i} for i in WIDGET_ITEMS]


async def test_a_route_chooses_an_option_by_its_label_before_reading(sites, tmp_path):
    """``select`` chooses the option (here by its label, "Medium"): the page's change
    handler has loaded that size's stock by the time the fields are read."""
    items = await crawl_one(
        tmp_path,
        f"{sites.main.base}/select",
        {"select": {"#size": "Medium"}, "fields": {"size": {"css": "#stock", "attr": "data-size"}}},
    )
    assert items == [{"size": "m", "status": 200}]


async def test_a_route_hovers_a_menu_open_before_reading_its_links(sites, tmp_path):
    """``hover`` opens a menu that is built on mouseenter: all of its links are items."""
    items = await crawl_one(
        tmp_path,
        f"{sites.main.base}/menu",
        {"hover": "li.menu", "items": {"selector": ".sub a", "fields": {"c": {"js": "el.textContent"}}}},
    )
    assert items == [{"c": c} for c in MENU]


async def test_a_route_scrolls_an_intersection_observer_list_and_reads_through_shadow_roots(sites, tmp_path):
    """``scroll = true`` loads all 60 reviews of a list that grows as its end comes into
    view; on another page, ``items`` finds the entries of an open and a closed shadow root."""
    reviews = await crawl_one(
        tmp_path, f"{sites.main.base}/io-list", {"scroll": True, "items": {"selector": "li.review", "fields": ID}}
    )
    assert reviews == [{"id": i} for i in REVIEWS]
    shadowed = await crawl_one(
        tmp_path,
        f"{sites.main.base}/shadow",
        {"wait_for": "li.item[data-id=c4]", "items": {"selector": "li.item", "fields": ID}},
        db="shadow.db",
    )
    assert shadowed == [{"id": i} for i in SHADOW_ITEMS]
