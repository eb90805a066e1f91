"""HTTP requests go through the session's proxy, with its credentials; a proxy that
refuses them (407) retires the session and the next proxy takes over."""

from __future__ import annotations

from crawler import config as config_mod
from crawler.run.engine import Crawler
from crawler.store.sqlite import SqliteStore
from tests.crawler.http.static_shop import no_browser
from tests.httpproxy import HttpProxy

HOST = "shop.test"  # only the proxy knows where it is


async def proxy(nursery, shop, name: str, credentials: tuple[str, str]) -> HttpProxy:
    served = HttpProxy(name, hosts={HOST: "127.0.0.1"}, credentials=credentials)
    await nursery.start(served.serve)
    return served


def config(tmp_path, shop, proxies: list[str]):
    port = shop.base.rsplit(":", 1)[1]
    return config_mod.from_dict(
        {
            "input": {"urls": [f"http://{HOST}:{port}/p/{i}" for i in range(5)]},
            "crawl": {"fetch": "http"},
            "pool": {"concurrency": 2},
            "retry": {"max_attempts": 2, "backoff_s": [0.05, 0.1]},
            "session": {"proxies": proxies, "backoff_s": [30.0, 60.0]},
            "extract": {"fields": {"name": "h1"}},
            "output": {"db": str(tmp_path / "crawl.db")},
        },
        source="test.toml",
        base_dir=str(tmp_path),
    )


async def test_http_requests_go_through_the_proxy_with_its_credentials(tmp_path, static_shop, nursery):
    good = await proxy(nursery, static_shop, "good", ("user", "s3cret"))
    store = SqliteStore(str(tmp_path / "crawl.db"))
    run = Crawler(config(tmp_path, static_shop, [good.url()]), store, open_browser=no_browser)
    assert await run.run() == "finished"
    assert sorted(i["name"] for i in await store.items()) == [f"Product {i}" for i in range(5)]
    assert len(good.forwarded) == 5 and good.challenged == 0
    assert (await run.summary())["proxy_requests"] == {good.url(with_credentials=False): 5}
    assert all("proxy-authorization" not in r.headers for r in static_shop.requests)


async def test_a_proxy_that_refuses_its_credentials_is_retired_and_the_next_takes_over(tmp_path, static_shop, nursery):
    bad = await proxy(nursery, static_shop, "bad", ("user", "right"))
    good = await proxy(nursery, static_shop, "good", ("user", "s3cret"))
    wrong = bad.url().replace("right", "wrong")
    store = SqliteStore(str(tmp_path / "crawl.db"))
    run = Crawler(config(tmp_path, static_shop, [wrong, good.url()]), store, open_browser=no_browser)
    assert await run.run() == "finished"
    assert len(await store.items()) == 5
    assert bad.challenged >= 1 and bad.forwarded == []
    summary = await run.summary()
    assert summary["sessions_retired"] == {"proxy_auth": 1} and summary["failed"] == 0


async def test_client_hints_go_to_a_local_origin_and_not_to_a_plain_http_one(tmp_path, static_shop, nursery):
    """As Chromium: Sec-CH-UA and its kin are sent to https and loopback origins only;
    the shop reached as http://shop.test (through the proxy) gets none, the same shop
    as http://127.0.0.1 gets them (issue 27: one identity on both paths)."""
    good = await proxy(nursery, static_shop, "good", ("user", "s3cret"))
    cfg = config(tmp_path, static_shop, [good.url()])
    store = SqliteStore(str(tmp_path / "crawl.db"))
    assert await Crawler(cfg, store, open_browser=no_browser).run() == "finished"
    assert static_shop.requests and not any(k.startswith("sec-ch-") for r in static_shop.requests for k in r.headers)
    local = config_mod.override(
        cfg, input__urls=[f"{static_shop.base}/p/{i}" for i in range(5, 7)], session__proxies=[]
    )
    assert await Crawler(local, store, open_browser=no_browser).run() == "finished"
    assert all(r.headers.get("sec-ch-ua", "").startswith('"') for r in static_shop.requests[-2:])
