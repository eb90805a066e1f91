"""config/musinsa_handlers.py against a stand-in for Musinsa on 127.0.0.1: the product
page in the browser, its review API read with ``page.fetch``, a long review list
carried on over HTTP by the ``reviews`` route (a JSON route), every review once."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from crawler import config as config_mod
from crawler.httpserver import HttpRequest, Response, serve_http
from crawler.run.engine import Crawler
from crawler.store.sqlite import SqliteStore

pytestmark = pytest.mark.chromium

CONFIG = Path(__file__).resolve().parents[3] / "config" / "musinsa.toml"
REVIEWS = {"1001": 437, "1002": 7, "1003": 0}  # goods number -> its reviews (437: 22 API pages)
PER_PAGE = 20


class FakeMusinsa:
    def __init__(self) -> None:
        self.api_requests: list[HttpRequest] = []

    async def __call__(self, request: HttpRequest) -> Response:
        if request.path.startswith("/products/"):
            goods = request.path.rsplit("/", 1)[1]
            head = (
                f"<meta property='og:title' content='Goods {goods}'><meta property='og:image' content='/i/{goods}.jpg'>"
                f"<meta property='product:price:amount' content='{int(goods) * 10}'>"
                f"<meta property='product:brand' content='Brand'><link rel='canonical' href='/products/{goods}'>"
            )
            return Response(
                body=f"<html><head>{head}</head><body><h1>Goods {goods}</h1></body></html>".encode(),
                headers=(("Set-Cookie", "visited=1; Path=/"),),
            )
        if request.path == "/api2/review/v1/view/list":
            self.api_requests.append(request)
            goods, page = request.query["goodsNo"][0], int(request.query["page"][0])
            total = REVIEWS[goods]
            numbers = range(page * PER_PAGE, min(total, (page + 1) * PER_PAGE))
            body = {
                "data": {
                    "list": [{"no": f"{goods}-{n}", "content": f"review {n}"} for n in numbers],
                    "page": {"totalPages": -(-total // PER_PAGE)},
                }
            }
            return Response(body=json.dumps(body).encode(), content_type="application/json")
        return Response(status=404)


async def test_musinsa_reads_every_review_once_through_page_fetch_and_the_json_route(
    tmp_path, nursery, monkeypatch, shared_chromium
):
    shop = FakeMusinsa()
    port = await nursery.start(serve_http, shop)
    base = f"http://127.0.0.1:{port}"
    monkeypatch.setenv("MUSINSA_REVIEW_API", f"{base}/api2/review/v1/view/list")
    (tmp_path / "ids.txt").write_text("\n".join(REVIEWS))
    cfg = config_mod.load(CONFIG)
    cfg = config_mod.override(
        cfg,
        input__url_template=f"{base}/products/{{id}}",
        input__ids_file=str(tmp_path / "ids.txt"),
        crawl__include=(f"{base}/*",),
        rate_limit__wait_ms=(0, 0),
        browser__cdp_url=shared_chromium.url,
        output__db=str(tmp_path / "musinsa.db"),
        monitor__heartbeat_file="",
    )
    store = SqliteStore(cfg.output.db)
    run = Crawler(cfg, store)
    assert await run.run() == "finished"
    items = await store.items()
    products = {i["goods_no"]: i for i in items if i["kind"] == "product"}
    assert {g: (p["name"], p["price"]) for g, p in products.items()} == {
        g: (f"Goods {g}", str(int(g) * 10)) for g in REVIEWS
    }
    reviews = [i["review_no"] for i in items if i["kind"] == "review"]
    assert sorted(reviews) == sorted(f"{g}-{n}" for g, total in REVIEWS.items() for n in range(total))
    # 437 reviews: the product job read pages 0-9, then the reviews route 10-19 and 20-21, over HTTP.
    paths = (await run.summary())["fetch_paths"]
    assert paths["reviews"]["http"] == 2 and paths["reviews"]["browser"] == 0
    first = [r for r in shop.api_requests if r.query["page"] == ["0"]]
    assert all(r.headers["referer"].startswith(f"{base}/products/") for r in first)
    assert all("visited=1" in r.headers.get("cookie", "") for r in first)  # the tab's cookies went along
