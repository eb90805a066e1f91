"""Musinsa: a product page gives one product item; its reviews come from the review API,
page after page, one item per review.  (Not checked against the live site: see musinsa.toml.)"""

from __future__ import annotations

import json
import re

import crawler

router = crawler.Router()

REVIEW_API = "https://goods.musinsa.com/api2/review/v1/view/list"
REVIEWS_PER_PAGE = 20

PRODUCT_FIELDS = {
    "name": {"js": "(document.querySelector('meta[property=\"og:title\"]') || {}).content || null"},
    "image": {"css": "meta[property='og:image']", "attr": "content"},
    "price": {"js": "(document.querySelector('meta[property=\"product:price:amount\"]') || {}).content || null"},
    "brand": {"js": "(document.querySelector('meta[property=\"product:brand\"]') || {}).content || null"},
    "canonical": {"css": "link[rel='canonical']", "attr": "href"},
}


def review_page_url(goods_no: str, page: int) -> str:
    return f"{REVIEW_API}?goodsNo={goods_no}&page={page}&pageSize={REVIEWS_PER_PAGE}&sort=new"


@router.route()  # [input]: https://www.musinsa.com/products/{goods number}
async def product(page: crawler.Page) -> None:
    goods_no = re.search(r"/products/(\d+)", page.url).group(1)
    item = await page.extract(PRODUCT_FIELDS, wait_for="h1")
    goods = await page.responses("/api2/goods/")  # the page's own goods API calls
    await page.push(dict(item, kind="product", goods_no=goods_no, goods=goods[0] if goods else None))
    await page.enqueue([review_page_url(goods_no, 0)], label="reviews", data={"goods_no": goods_no, "page": 0})


@router.route("reviews")  # one page of the review API (a JSON document)
async def reviews(page: crawler.Page) -> None:
    body = json.loads(await page.evaluate("document.body.innerText"))
    data = body.get("data") or {}
    entries = data.get("list") or []
    for review in entries:
        await page.push(dict(review, kind="review", goods_no=page.data["goods_no"], review_no=review.get("no")))
    total_pages = (data.get("page") or {}).get("totalPages", 0)
    if entries and page.data["page"] + 1 < total_pages:
        following = page.data["page"] + 1
        await page.enqueue(
            [review_page_url(page.data["goods_no"], following)],
            label="reviews",
            data={"goods_no": page.data["goods_no"], "page": following},
        )
