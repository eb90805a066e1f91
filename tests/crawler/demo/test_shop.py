"""The demo product page's below-the-fold parts and the review widget over HTTP, without
a browser: what the pages and APIs serve is the shop's truth (gallery, sizes, photo
reviews, ratings), and the widget is served from another site than the shop."""

from __future__ import annotations

import re
from html import unescape
from urllib.parse import urlsplit

import httpx
import pytest

from crawler import demo
from crawler.demo import DemoShop, gallery, photo_reviews, ratings, sizes, truth
from crawler.httpserver import serve_http

PRODUCTS = 40


@pytest.fixture
async def site(nursery) -> demo.DemoSite:
    return await nursery.start(lambda task_status: demo.serve_demo(PRODUCTS, task_status=task_status))


async def api_pages(client: httpx.AsyncClient, path: str, key: str) -> list[dict]:
    """Every page of a paginated JSON API, concatenated; checks page numbers and the 404 after."""
    first = (await client.get(path, params={"page": 1})).json()
    entries, last = list(first[key]), first["pages"]
    for n in range(2, last + 1):
        page = (await client.get(path, params={"page": n})).json()
        assert (page["page"], page["pages"]) == (n, last)
        entries += page[key]
    assert (await client.get(path, params={"page": last + 1})).status_code == 404
    return entries


def test_new_counts_vary_over_their_whole_range_and_every_kind_is_in_the_truth():
    """Over any 13 consecutive products every photo review count 0..12, rating count 0..8,
    gallery size 2..6 and number of sizes 2..4 occurs; truth() has an id for each."""
    ids = range(20, 33)
    assert {len(photo_reviews(i)) for i in ids} == set(range(13))
    assert {len(ratings(i)) for i in ids} == set(range(9))
    assert {len(gallery(i)) for i in ids} == set(range(2, 7))
    assert {len(sizes(i)) for i in ids} == {2, 3, 4}
    assert all(0 <= stock < 40 for i in ids for stock in sizes(i).values())
    assert all(1 <= r["score"] <= 5 for i in ids for r in ratings(i))
    want = truth(10)
    assert set(want) == set(demo.ITEM_KINDS)
    assert {k: len(v) for k, v in want.items() if k not in ("product", "review", "question", "wish")} == {
        "photo_review": 61,
        "rating": 43,
        "image": 40,
        "size": 30,
    }
    assert want["image"] >= {"/img/gallery/3/1.png", "/img/gallery/3/5.png"} and "3-M" in want["size"]


async def test_product_page_shows_sizes_gallery_widget_and_photo_reviews_as_the_truth_says(site):
    """/product/{i}: #size offers sizes(i) in order and /api/stock gives each one's stock
    (404 for a size it lacks); #gallery holds gallery(i) in order, odd ones
    ``loading="lazy"``, even ones in ``data-src``; #widget's data-src is the widget's page
    for i on the widget's address; #photo-reviews counts photo_reviews(i), which
    /api/photo-reviews serves page by page, each photo an image the shop serves."""
    async with httpx.AsyncClient(base_url=site.url) as client:
        for i in (1, 3, 13, 26):
            page = (await client.get(f"/product/{i}")).text
            select = re.search(r'<select id="size" data-product="(\d+)">(.*?)</select>', page)
            assert select[1] == str(i)
            assert re.findall(r'<option value="(\w+)">', select[2]) == list(sizes(i))
            for size, stock in sizes(i).items():
                got = (await client.get(f"/api/stock/{i}", params={"size": size})).json()
                assert got == {"product": i, "size": size, "stock": stock}
            assert (await client.get(f"/api/stock/{i}", params={"size": "XXL"})).status_code == 404

            section = re.search(r'<section id="gallery" data-count="(\d+)">(.*?)</section>', page, re.S)
            assert int(section[1]) == len(gallery(i))
            images = re.findall(r'<img (loading="lazy" src|data-src)="([^"]+)"', section[2])
            assert [path for _, path in images] == gallery(i)
            assert [how for how, _ in images] == [
                ('loading="lazy" src' if k % 2 else "data-src") for k in range(1, len(images) + 1)
            ]

            assert f'<section id="widget" data-src="{site.widget_url}/widget/{i}">' in page
            assert f'<section id="photo-reviews" data-product="{i}" data-count="{len(photo_reviews(i))}">' in page
            assert await api_pages(client, f"/api/photo-reviews/{i}", "photo_reviews") == photo_reviews(i)
            for review in photo_reviews(i)[:2]:
                assert (await client.get(review["photo"])).headers["content-type"] == "image/png"


async def test_below_the_fold_parts_come_after_a_viewports_worth_of_details(site):
    """The gallery, widget and photo reviews follow the details section (whose height
    keeps them out of a first screen), in that order, after everything a flat crawl reads."""
    async with httpx.AsyncClient(base_url=site.url) as client:
        page = (await client.get("/product/7")).text
    order = [
        'id="stock"',
        'id="size"',
        'id="reviews"',
        'class="details"',
        'id="gallery"',
        'id="widget"',
        'id="photo-reviews"',
    ]
    positions = [page.index(marker) for marker in order]
    assert positions == sorted(positions)


async def test_widget_is_served_on_localhost_another_site_with_its_own_ratings_api(site):
    """serve_demo's widget address is http://localhost:PORT (another site than the
    shop's 127.0.0.1, same machine); its /widget/{i} page says how many ratings there
    are and /api/ratings pages concatenate to ratings(i); it serves none of the shop's pages."""
    widget = urlsplit(site.widget_url)
    assert (widget.scheme, widget.hostname) == ("http", "localhost")
    assert urlsplit(site.url).hostname == "127.0.0.1" and widget.port != urlsplit(site.url).port
    base = f"http://127.0.0.1:{widget.port}"  # the same server: it listens on 127.0.0.1 only
    async with httpx.AsyncClient(base_url=base) as client:
        for i in (1, 5, 9, PRODUCTS):
            page = (await client.get(f"/widget/{i}")).text
            assert f'<body data-product="{i}" data-count="{len(ratings(i))}">' in page
            assert await api_pages(client, f"/api/ratings/{i}", "ratings") == ratings(i)
        for path in ("/product/1", "/", f"/widget/{PRODUCTS + 1}", "/api/goods/1"):
            assert (await client.get(path)).status_code == 404
        assert (await client.post("/widget/1")).status_code == 405


async def test_a_shop_without_a_widget_server_embeds_and_serves_the_widget_itself(nursery):
    """DemoShop(products) alone (as the benchmarks serve it) points its widget at its own
    origin and answers the widget's paths."""
    port = await nursery.start(serve_http, DemoShop(10))
    async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}") as client:
        page = (await client.get("/product/5")).text
        assert '<section id="widget" data-src="/widget/5">' in page
        widget_page = (await client.get("/widget/5")).text
        assert unescape(re.search(r"<h3>(.*?)</h3>", widget_page)[1]) == f"ShopTalk ratings ({len(ratings(5))})"
        assert await api_pages(client, "/api/ratings/5", "ratings") == ratings(5)
