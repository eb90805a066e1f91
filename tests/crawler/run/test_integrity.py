"""No item stored incomplete without saying so, against real Chromium: captures that
arrive late or never, required fields, field errors counted, and network errors that
cannot succeed on retry."""

from __future__ import annotations

import pytest

from crawler.demo import product
from tests.crawler.conftest import DEMO_EXTRACT, crawl, make_config, url_states

pytestmark = pytest.mark.chromium


def late_capture_config(tmp_path, urls, *, capture: dict | None = None, fields: dict | None = None):
    """``wait_for = "h1"`` (there at once) and a capture of the product API, as in
    config/musinsa.toml: extraction is ready long before the API answers."""
    extract = {
        "wait_for": "h1",
        "poll_interval_s": 0.02,
        "fields": fields or {"name": "h1"},
        "capture": [{"name": "goods", "url_contains": "/api/goods/", **(capture or {})}],
    }
    return make_config(tmp_path, urls, extract=extract)


async def test_a_capture_arriving_2_s_after_wait_for_matched_is_stored_not_null(shop, tmp_path):
    """The product API answers 2 s after the page (and its wait_for) is there: every
    item is stored with the captured body, none with null."""
    urls = [f"{shop.base}/lateapi/{i}?s=2" for i in range(1, 7)]
    cfg = late_capture_config(tmp_path, urls)
    _, store, reason = await crawl(cfg)
    assert reason == "finished"
    items = list(await store.items())
    assert len(items) == len(urls)
    for item in items:
        i = int(item["url"].split("/")[-1].split("?")[0])
        assert item["goods"] == product(i), item


async def test_a_required_capture_that_never_comes_fails_the_url_as_missing_capture(shop, tmp_path):
    """The API answers after 60 s, the capture waits 1 s: the URL is retried, then
    failed ``missing_capture: goods``; no item is stored.  The same capture marked
    ``required = false`` stores the item with null, as before."""
    urls = [f"{shop.base}/lateapi/{i}?s=60" for i in range(1, 3)]
    cfg = late_capture_config(tmp_path, urls, capture={"timeout_s": 1.0})
    crawler, store, reason = await crawl(cfg)
    states = await url_states(store, urls)
    assert all(s["state"] == "failed" and s["last_error"] == "missing_capture: goods" for s in states.values()), states
    assert all(s["attempts"] == 2 for s in states.values())  # retried: a capture may come next time
    assert list(await store.items()) == []
    assert (await crawler.summary())["failed_by_reason"] == {"missing_capture": 2}

    optional = late_capture_config(tmp_path / "optional", urls[:1], capture={"required": False})
    (tmp_path / "optional").mkdir()
    _, store, _ = await crawl(optional)
    assert [item["goods"] for item in await store.items()] == [None]


async def test_a_required_field_that_is_null_fails_the_url_as_missing_field(shop, tmp_path):
    """A required field whose selector matches nothing fails the URL
    ``missing_field: NAME`` (retried, then failed); an optional one is stored null."""
    urls = [f"{shop.base}/product/{i}" for i in range(1, 3)]
    fields = {**DEMO_EXTRACT["fields"], "sku": {"css": "#sku", "required": True}, "note": {"css": "#note"}}
    cfg = make_config(tmp_path, urls, extract={**DEMO_EXTRACT, "fields": fields})
    _, store, _ = await crawl(cfg)
    states = await url_states(store, urls)
    assert {s["last_error"] for s in states.values()} == {"missing_field: sku"}, states
    assert all(s["state"] == "failed" and s["attempts"] == 2 for s in states.values())


async def test_field_errors_are_counted_in_the_summary_and_not_only_in_the_item(shop, tmp_path):
    """A js field that throws: the item is stored (the field is not required) with the
    error under ``_errors``, and the summary counts it by field."""
    urls = [f"{shop.base}/product/{i}" for i in range(1, 4)]
    fields = {**DEMO_EXTRACT["fields"], "broken": {"js": "document.querySelector('#nope').textContent"}}
    cfg = make_config(tmp_path, urls, extract={**DEMO_EXTRACT, "fields": fields})
    crawler, store, reason = await crawl(cfg)
    assert reason == "finished"
    assert all(item["broken"] is None and "broken" in item["_errors"] for item in await store.items())
    summary = await crawler.summary()
    assert summary["field_errors"] == {"broken": 3}
    assert crawler.statistics().jobs.field_errors == {"broken": 3}


async def test_an_unsafe_port_is_failed_at_once_without_retries(shop, tmp_path):
    """net::ERR_UNSAFE_PORT cannot succeed on retry: one attempt, failed."""
    url = "http://127.0.0.1:6000/x"  # X11's port: Chromium refuses it
    cfg = make_config(tmp_path, [url], retry={"max_attempts": 3})
    _, store, _ = await crawl(cfg)
    state = await store.url_state(url)
    assert state["state"] == "failed" and state["attempts"] == 1, state
    assert state["last_error"] == "net: net::ERR_UNSAFE_PORT"
