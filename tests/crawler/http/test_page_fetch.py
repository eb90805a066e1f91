"""``page.fetch``: a handler's own HTTP request in its page's session, held to the
crawl's rules (schemes, private addresses when forbidden, robots.txt, the body limit);
each refusal fails the job with one clear reason, and nothing of it is stored."""

from __future__ import annotations

import pytest

import crawler
from crawler import config as config_mod
from crawler.errors import PageFailure
from crawler.http.client import UrlRules
from crawler.run.engine import Crawler
from crawler.store.sqlite import SqliteStore
from tests.crawler.http.static_shop import no_browser


async def fetch_outcome(tmp_path, shop, target: str, *, as_json: bool = False, **sections) -> dict:
    """Crawl one page whose handler fetches ``target``; the page's stored state."""
    router = crawler.Router()

    @router.route(fetch="http")
    async def handler(page):
        response = await page.fetch(target)
        await page.push({"status": response.status, "body": response.json() if as_json else len(response.body)})

    data = {
        "input": {"urls": [f"{shop.base}/p/1"]},
        "retry": {"max_attempts": 1},
        "output": {"db": str(tmp_path / "crawl.db")},
        "http": {"max_body_bytes": 2**20},
        **sections,
    }
    store = SqliteStore(str(tmp_path / "crawl.db"))
    cfg = config_mod.from_dict(data, source="test.toml", base_dir=str(tmp_path))
    await Crawler(cfg, store, router=router, open_browser=no_browser).run()
    state = await store.url_state(f"{shop.base}/p/1")
    state["items"] = await store.items()
    return state


@pytest.mark.parametrize(
    ("target", "as_json", "sections", "error"),
    [
        ("file:///etc/passwd", False, {}, "forbidden_url: file: URLs are never fetched: file:///etc/passwd"),
        ("javascript:alert(1)", False, {}, "bad_url: not an http(s) URL: 'javascript:alert(1)'"),
        ("/p/2", True, {}, "not_json: "),
        ("/big?mb=3", False, {}, "body_too_large: Content-Length"),
        ("/bomb?mb=32", False, {}, "body_too_large: gzip body decoding past 1048576 bytes"),
        ("/secret/data", False, {"crawl": {"obey_robots": True}}, "robots"),
        ("/redirect?to=chrome://settings", False, {}, "forbidden_url: chrome: URLs are never fetched"),
    ],
)
async def test_a_refused_fetch_fails_the_job_with_its_reason_and_stores_nothing(
    tmp_path, static_shop, target, as_json, sections, error
):
    state = await fetch_outcome(tmp_path, static_shop, target, as_json=as_json, **sections)
    assert state["state"] == "failed" and state["last_error"].startswith(error), state["last_error"]
    assert state["items"] == []


async def test_a_fetch_answers_any_status_and_parses_json(tmp_path, static_shop):
    state = await fetch_outcome(tmp_path, static_shop, "/api/7", as_json=True)
    assert state["state"] == "done"
    assert [i["body"] for i in state["items"]] == [{"id": 7, "reviews": [1, 2]}]


@pytest.mark.parametrize(
    "url",
    [
        "http://10.1.2.3/",
        "http://127.0.0.1:8000/",
        "http://[::1]/",
        "http://169.254.169.254/latest",
        "http://localhost/",
    ],
)
async def test_private_addresses_are_refused_when_forbidden(url):
    with pytest.raises(PageFailure) as caught:
        await UrlRules(forbid_private=True).check(url)
    assert caught.value.kind == "private_address" and not caught.value.retryable
    assert await UrlRules().check(url) == url  # allowed unless forbidden (test shops live on 127.0.0.1)


async def test_a_public_address_passes_when_private_ones_are_forbidden():
    assert await UrlRules(forbid_private=True).check("http://93.184.215.14/x") == "http://93.184.215.14/x"
