"""An HTTP crawl (`python -m crawler`, every route ``fetch = "http"``) killed with
SIGKILL mid-crawl and run again: every URL ends done exactly once with its item,
nothing done is fetched again, on SQLite and on Redis alike."""

from __future__ import annotations

import pytest
import trio

from crawler import config as config_mod
from crawler.store import StoreSettings, open_store
from tests.crawler.http.static_shop import StaticShop, start_static_shop
from tests.procs import start_crawler

PRODUCTS = 150


@pytest.fixture
async def static_shop(nursery):
    shop = StaticShop(products=PRODUCTS)
    shop.base = await start_static_shop(nursery, shop)
    return shop


def crawl_dict(tmp_path, base: str, backend: str, redis_url: str) -> dict:
    data = {
        "site": {"name": f"http-resume-{tmp_path.name}"},
        "input": {"url_template": f"{base}/p/{{id}}", "ids": f"0-{PRODUCTS - 1}"},
        "crawl": {"fetch": "http"},
        "pool": {"concurrency": 4},
        "rate_limit": {"wait_ms": [15, 25]},  # ~50 pages/s: slow enough to be killed mid-crawl
        "extract": {"fields": {"name": {"css": "h1", "required": True}, "price": ".price"}},
        "output": {"db": str(tmp_path / "crawl.db")},
        "monitor": {"progress_interval_s": 0.5},
    }
    if backend == "redis":
        data["store"] = {"backend": "redis", "url": redis_url, "lease_s": 3.0, "crawl": data["site"]["name"]}
    return data


async def done_urls(cfg) -> set[str]:
    async with open_store(StoreSettings.of(cfg), exclusive=False) as store:
        return {item["url"] for item in await store.items()}


@pytest.mark.parametrize("backend", ["sqlite", "redis"])
async def test_http_crawl_killed_with_sigkill_resumes_with_nothing_lost_or_doubled(
    tmp_path, static_shop, redis_server, backend
):
    data = crawl_dict(tmp_path, static_shop.base, backend, redis_server.url)
    path = tmp_path / "site.toml"
    path.write_text(config_mod.to_toml(data))
    cfg = config_mod.load(path)
    first = await start_crawler("--config", str(path), cwd=tmp_path)
    with trio.fail_after(30):
        while len([p for p in static_shop.hits if p.startswith("/p/")]) < 30:
            assert first.poll() is None, (tmp_path / "crawler.err").read_text()[-2000:]
            await trio.sleep(0.02)
    first.kill()
    await first.wait()
    done_first = await done_urls(cfg)
    assert 0 < len(done_first) < PRODUCTS
    hits_first = {u: static_shop.hits["/" + u.split("/", 3)[3]] for u in done_first}

    second = await start_crawler("--config", str(path), cwd=tmp_path)
    assert await second.wait() == 0, (tmp_path / "crawler.err").read_text()[-2000:]
    async with open_store(StoreSettings.of(cfg), exclusive=False) as store:
        items = await store.items()
        states = [await store.url_state(f"{static_shop.base}/p/{i}") for i in range(PRODUCTS)]
    by_url = {item["url"]: item for item in items}
    assert len(items) == len(by_url) == PRODUCTS  # none lost, none stored twice
    assert all(by_url[f"{static_shop.base}/p/{i}"]["name"] == f"Product {i}" for i in range(PRODUCTS))
    assert all(s["state"] == "done" and s["done_count"] == 1 for s in states), states
    assert {u: static_shop.hits["/" + u.split("/", 3)[3]] for u in done_first} == hits_first  # nothing redone
    assert "no browser is started" in (tmp_path / "crawler.err").read_text()
