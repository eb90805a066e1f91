"""The demo storefront (crawler.demo) over HTTP, without a browser: every page a demo
crawl visits shows exactly the shop's truth, and the login flow behaves like a real one."""

from __future__ import annotations

import re
from collections import Counter
from html import unescape

import httpx
import pytest

from crawler import demo
from crawler.demo import DemoShop, expected_item, product, questions, reviews, truth, wishlist
from crawler.httpserver import serve_http

PRODUCTS = 100  # 4 categories of 25: three listing pages each, the last one short


@pytest.fixture
async def shop(nursery) -> DemoShop:
    """A DemoShop of PRODUCTS products on 127.0.0.1; ``shop.base`` is its URL."""
    demo_shop = DemoShop(PRODUCTS)
    port = await nursery.start(serve_http, demo_shop)
    demo_shop.base = f"http://127.0.0.1:{port}"
    return demo_shop


@pytest.fixture
async def client(shop):
    async with httpx.AsyncClient(base_url=shop.base) as http:
        yield http


def hrefs(page: str, cls: str | None = None) -> list[str]:
    """The href of every ``<a>`` (of class ``cls``) of ``page``, in order."""
    where = f'class="{cls}" ' if cls else r'(?:class="[^"]*" )?'
    return [unescape(h) for h in re.findall(rf'<a {where}href="([^"]*)"', page)]


def rendered_reviews(page: str) -> list[dict]:
    pattern = (
        r'<div class="review" data-id="([^"]+)"><p class="body">(.*?)</p>'
        r'<span class="author">(.*?)</span><span class="stars" data-n="(\d)">'
    )
    return [
        {"id": rid, "text": unescape(text), "author": unescape(author), "stars": int(stars)}
        for rid, text, author, stars in re.findall(pattern, page)
    ]


def rendered_questions(page: str) -> list[dict]:
    pattern = r'<div class="question" data-id="([^"]+)"><p class="text">(.*?)</p></div>'
    return [{"id": qid, "text": unescape(text)} for qid, text in re.findall(pattern, page)]


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


async def log_in(client: httpx.AsyncClient, password: str = "demo") -> httpx.Response:
    form = (await client.get("/login")).text
    token = re.search(r'name="csrf" value="([^"]+)"', form)[1]
    return await client.post("/login", data={"username": "demo", "password": password, "csrf": token})


# -- truth --------------------------------------------------------------------------------


def test_review_and_question_counts_vary_over_their_whole_range():
    """Over any 231 consecutive products every review count 0..10 and question count 0..20 occurs."""
    assert {len(reviews(i)) for i in range(1, 232)} == set(range(11))
    assert {len(questions(i)) for i in range(1, 232)} == set(range(21))
    assert [r["id"] for r in reviews(14)] == ["r14-1", "r14-2", "r14-3"]
    assert all(1 <= r["stars"] <= 5 and r["product"] == 14 for r in reviews(14))


def test_compare_counts_found_missing_and_extra_ids_per_kind():
    """compare() matches items to truth() by kind and id (as text); an item without a kind
    is a product of the flat crawl, identified by its URL; repeats and unknown ids are extra."""
    want = truth(PRODUCTS)
    items = [{"url": "http://h/product/1", "status": 200}]  # a flat-crawl item
    items += [{"kind": "product", "id": i} for i in range(2, PRODUCTS + 1)]
    items += [{"kind": "review", "id": rid} for rid in sorted(want["review"])][1:]
    items += [{"kind": "question", "id": qid} for qid in want["question"]] + [{"kind": "question", "id": "q99-1"}]
    items += [{"kind": "wish", "id": str(i)} for i in want["wish"]] * 2
    result = demo.compare(items, PRODUCTS)
    assert result == {
        "product": {"found": PRODUCTS, "expected": PRODUCTS, "extra": 0},
        "review": {"found": len(want["review"]) - 1, "expected": len(want["review"]), "extra": 0},
        "question": {"found": len(want["question"]), "expected": len(want["question"]), "extra": 1},
        "wish": {"found": 8, "expected": 8, "extra": 8},
        **{
            kind: {"found": 0, "expected": len(want[kind]), "extra": 0}
            for kind in ("photo_review", "rating", "image", "size")
        },
    }
    line = demo.format_comparison(result)
    reviews_found = f"{len(want['review']) - 1}/{len(want['review'])}"
    assert line.startswith(f"products {PRODUCTS}/{PRODUCTS}, reviews {reviews_found}, questions ")
    assert line.endswith("found; extra (repeated or unknown): 1 questions, 8 wishes")


# -- pages --------------------------------------------------------------------------------


async def test_home_page_links_to_every_listing_the_account_pages_and_the_noise(client):
    """The home page links to each category listing, /login, /wishlist and /about, and
    carries every hostile or noisy link a crawler must drop or normalise."""
    page = (await client.get("/")).text
    links = hrefs(page)
    assert hrefs(page, "category") == [f"/category/{c}" for c in demo.CATEGORIES]
    assert {"/login", "/wishlist", "/about"} <= set(links)
    noise = [href for href, _ in demo.NOISE_LINKS]
    assert set(noise) <= set(links)
    schemes = {h.split(":", 1)[0] for h in noise if ":" in h}
    assert schemes == {"mailto", "tel", "javascript", "data", "file", "chrome", "https"}
    assert {"/#top", "/about#team", "https://other.example/x"} <= set(noise)


async def test_listing_pages_reach_every_product_exactly_once(client):
    """Following ``a.next`` from each category's first page visits every page once; their
    ``.product a`` links name every product exactly once; every page has the same footer link."""
    seen: Counter[str] = Counter()
    for slug in demo.CATEGORIES:
        url: str | None = f"/category/{slug}"
        visited = 0
        while url:
            page = (await client.get(url)).text
            seen.update(re.findall(r'<div class="product"><a href="(/product/\d+)">', page))
            assert hrefs(page, "footer") == ["/about"]
            nexts = hrefs(page, "next")
            assert len(nexts) <= 1
            url, visited = (nexts[0] if nexts else None), visited + 1
        assert visited == 3  # 25 products at 12 a page
    assert seen == Counter({f"/product/{i}": 1 for i in range(1, PRODUCTS + 1)})


async def test_listing_page_one_has_two_names_and_pages_past_the_end_are_404(client):
    """``?page=1`` is the bare listing; page 4 of a three-page listing, page 0, and an
    unknown category are 404."""
    first = await client.get("/category/tops")
    assert (await client.get("/category/tops?page=1")).text == first.text
    for url in ("/category/tops?page=4", "/category/tops?page=0", "/category/tops?page=x", "/category/hats"):
        assert (await client.get(url)).status_code == 404, url


@pytest.mark.parametrize("i", [11, 1, 3, 4, 21, 10])  # 0, 1, 3, 4, 10 and 10 reviews
async def test_review_api_pages_concatenate_to_the_reviews_and_page_one_is_on_the_product_page(client, i):
    """``/api/reviews/{i}?page=1..pages`` concatenate to ``reviews(i)``; the product page
    renders the first 3 and has ``button.more-reviews`` only when there are more."""
    assert await api_pages(client, f"/api/reviews/{i}", "reviews") == reviews(i)
    page = (await client.get(f"/product/{i}")).text
    keys = ("id", "text", "author", "stars")
    assert rendered_reviews(page) == [{k: r[k] for k in keys} for r in reviews(i)[:3]]
    assert ('<button class="more-reviews">' in page) == (len(reviews(i)) > 3)
    assert f'data-count="{len(reviews(i))}"' in page
    assert f'<a class="questions" href="/product/{i}/questions">' in page


@pytest.mark.parametrize("i", [21, 1, 4, 5, 8])  # 0, 5, 20, 4 and 19 questions
async def test_question_api_pages_concatenate_to_the_questions_and_page_one_is_rendered(client, i):
    """``/api/questions/{i}?page=1..pages`` concatenate to ``questions(i)``; the questions
    page renders the first 5, each tall enough that five overflow an 800x600 viewport."""
    assert await api_pages(client, f"/api/questions/{i}", "questions") == questions(i)
    page = (await client.get(f"/product/{i}/questions")).text
    assert rendered_questions(page) == [{"id": q["id"], "text": q["text"]} for q in questions(i)[:5]]
    assert ".question { min-height: 200px;" in page and "dataset.done" in page


async def test_product_page_keeps_every_element_the_flat_config_extracts(client):
    """``/product/{i}`` still has h1, p.brand, img.main, #price and #stock, a script that
    sets body[data-ready] after fetching ``/api/goods/{i}`` (which is ``product(i)``)."""
    i = 42
    item = expected_item("", i)
    page = (await client.get(f"/product/{i}")).text
    assert f"<h1>{item['name']}</h1>" in page and f'<p class="brand">{item["brand"]}</p>' in page
    assert f'<img class="main" src="{item["image"]}"' in page
    assert '<span id="price">' in page and '<span id="stock">' in page
    assert f'fetch("/api/goods/{i}")' in page and 'document.body.dataset.ready = "1"' in page
    assert (await client.get(f"/api/goods/{i}")).json() == product(i)
    image = await client.get(item["image"])
    assert (image.headers["content-type"], image.content) == ("image/png", demo.PIXEL_PNG)
    assert (await client.get(f"/product/{PRODUCTS + 1}")).status_code == 404


# -- login --------------------------------------------------------------------------------


async def test_login_with_the_form_token_sets_a_session_that_shows_the_wishlist(shop, client):
    """GET /login sets ``csrf_session`` and a form with its token; POSTing it with demo/demo
    answers 303 to /wishlist with an HttpOnly session cookie; with it, /wishlist lists the
    demo user's wishes and every page's account bar shows the user."""
    form = await client.get("/login")
    assert form.cookies.get("csrf_session")
    for needle in ('<form method="post" action="/login">', 'id="username" name="username"', 'type="submit"'):
        assert needle in form.text
    assert '<input id="password" name="password" type="password">' in form.text
    answer = await log_in(client)
    assert (answer.status_code, answer.headers["location"]) == (303, "/wishlist")
    session = [c for c in answer.headers.get_list("set-cookie") if c.startswith("session=")]
    assert len(session) == 1 and session[0].endswith("; HttpOnly; Path=/")
    page = (await client.get("/wishlist")).text
    assert hrefs(page) == ["/", *(f"/product/{i}" for i in wishlist(PRODUCTS))]
    assert re.findall(r'<div class="wish"><a href="/product/(\d+)">', page) == [str(i) for i in wishlist(PRODUCTS)]
    assert '<p class="account"><span class="user">demo</span></p>' in page
    assert '<span class="user">demo</span>' in (await client.get("/product/7")).text
    assert shop.logins == 1


async def test_login_is_refused_with_403_for_a_bad_or_missing_token(shop, client):
    """A token that is not the form's for this ``csrf_session`` cookie, or no cookie, is 403."""
    await client.get("/login")
    forged = await client.post("/login", data={"username": "demo", "password": "demo", "csrf": "0" * 32})
    assert forged.status_code == 403
    async with httpx.AsyncClient(base_url=shop.base) as other:  # a token, but not this visitor's
        token = re.search(r'name="csrf" value="([^"]+)"', (await other.get("/login")).text)[1]
    stolen = await client.post("/login", data={"username": "demo", "password": "demo", "csrf": token})
    assert stolen.status_code == 403
    client.cookies.clear()
    no_cookie = await client.post("/login", data={"username": "demo", "password": "demo", "csrf": token})
    assert no_cookie.status_code == 403
    assert shop.logins == 0


async def test_wrong_password_shows_the_form_again_with_an_error_and_no_session(shop, client):
    answer = await log_in(client, password="guess")
    assert answer.status_code == 200 and '<p class="error">' in answer.text and 'name="csrf"' in answer.text
    assert "session" not in answer.cookies and shop.logins == 0


async def test_wishlist_without_a_valid_session_redirects_to_login(client):
    """No session, or a forged one, is 303 to /login; product pages then offer ``a.login``."""
    for cookies in ({}, {"session": "demo.abc.0123456789abcdef0123456789abcdef"}):
        client.cookies.clear()
        client.cookies.update(cookies)
        answer = await client.get("/wishlist")
        assert (answer.status_code, answer.headers["location"]) == (303, "/login")
        page = (await client.get("/product/1")).text
        assert '<p class="account"><a class="login" href="/login">log in</a></p>' in page


async def test_every_successful_login_is_counted_once(shop):
    """``shop.logins`` counts successful logins, one per visitor (browser context) that logs in."""
    for _ in range(3):
        async with httpx.AsyncClient(base_url=shop.base) as visitor:
            assert (await log_in(visitor)).status_code == 303
    async with httpx.AsyncClient(base_url=shop.base) as visitor:
        await log_in(visitor, password="nope")
    assert shop.logins == 3


def test_old_names_stay_importable_from_crawler_demo():
    """The package re-exports its public names, including the pre-storefront ones."""
    for name in demo.__all__:
        assert getattr(demo, name) is not None
    assert {"PRODUCT_PAGE", "DemoShop", "product", "expected_item", "format_price", "PIXEL_PNG"} <= set(demo.__all__)
