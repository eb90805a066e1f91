"""Musinsa: a product page gives one product item; its reviews come from the review API,
page after page, one item per review.  (Not checked against the live site: see musinsa.toml.)

The product page needs the browser (its price and goods data come from its scripts).
The review API is JSON: it is read with ``page.fetch``, an HTTP request in the page's
session (its cookies, user agent and proxy, the page as referer, the API host's own
pace), not by loading each page of it in a tab.  A job reads up to
``REVIEW_PAGES_PER_JOB`` pages of reviews; if there are more, the next page is
enqueued for the ``reviews`` route, which goes on over HTTP (no browser at all) in jobs
of its own, so a product with thousands of reviews never outlives one watchdog.
"""

from __future__ import annotations

import os
import re

import crawler

router = crawler.Router()

# MUSINSA_REVIEW_API: the API's address, for a mirror or a test server.
REVIEW_API = os.environ.get("MUSINSA_REVIEW_API", "https://goods.musinsa.com/api2/review/v1/view/list")
REVIEWS_PER_PAGE = 20
REVIEW_PAGES_PER_JOB = 10  # at the 3-4 s pace of musinsa.toml: ~35 s of a 300 s watchdog

PRODUCT_FIELDS = {
    "name": {"js": "(document.querySelector('meta[property=\"og:title\"]') || {}).content || null"},
    "image": {"css": "meta[property='og:image']", "attr": "content"},
    "price": {"js": "(document.querySelector('meta[property=\"product:price:amount\"]') || {}).content || null"},
    "brand": {"js": "(document.querySelector('meta[property=\"product:brand\"]') || {}).content || null"},
    "canonical": {"css": "link[rel='canonical']", "attr": "href"},
}


def review_page_url(goods_no: str, page: int) -> str:
    return f"{REVIEW_API}?goodsNo={goods_no}&page={page}&pageSize={REVIEWS_PER_PAGE}&sort=new"


async def read_reviews(page: crawler.Page | crawler.HttpPage, goods_no: str, first: int) -> None:
    """Push the reviews of API pages ``first``, ``first + 1``... (at most
    REVIEW_PAGES_PER_JOB of them); enqueue the next page for the ``reviews`` route if
    there are more.  A failed API page fails the job (retried), and nothing it
    pushed is stored."""
    for number in range(first, first + REVIEW_PAGES_PER_JOB):
        response = await page.fetch(review_page_url(goods_no, number))
        response.raise_for_status()
        data = response.json().get("data") or {}
        entries = data.get("list") or []
        for review in entries:
            await page.push(dict(review, kind="review", goods_no=goods_no, review_no=review.get("no")))
        total_pages = (data.get("page") or {}).get("totalPages", 0)
        if not entries or number + 1 >= total_pages:
            return
    following = first + REVIEW_PAGES_PER_JOB
    await page.enqueue(
        [review_page_url(goods_no, following)], label="reviews", data={"goods_no": goods_no, "page": following}
    )


@router.route()  # [input]: https://www.musinsa.com/products/{goods number}
async def product(page: crawler.Page) -> None:
    goods_no = re.search(r"/products/(\d+)", page.url).group(1)
    item = await page.extract(PRODUCT_FIELDS, wait_for="h1")
    goods = await page.responses("/api2/goods/")  # the page's own goods API calls
    await page.push(dict(item, kind="product", goods_no=goods_no, goods=goods[0] if goods else None))
    await read_reviews(page, goods_no, 0)


@router.route("reviews", fetch="http", content="json")  # the rest of a product's reviews, over HTTP
async def reviews(page: crawler.HttpPage) -> None:
    await read_reviews(page, page.data["goods_no"], page.data["page"])
