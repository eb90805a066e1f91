"""The demo shop's truth: everything it shows, as deterministic functions of ids.

``product(i)`` is product ``i``; ``expected_item(base, i)`` is what a crawl of its page
with ``config/products.toml`` (the flat list of product pages) must extract.
``truth(products)`` is what a complete crawl of the storefront with ``config/demo.toml``
must find, and ``compare(items, products)`` counts how much of it a crawl's items hold.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any
from urllib.parse import urlsplit

# A 1x1 transparent PNG, so image requests succeed without weight.
PIXEL_PNG = bytes.fromhex(
    "89504e470d0a1a0a0000000d4948445200000001000000010806000000"
    "1f15c4890000000d49444154789c6360000002000154a24f5d0000000049454e44ae426082"
)

DEFAULT_PRODUCTS = 200  # products of `python -m crawler demo` without --products (or [input] ids)
CONFIG_BASE_URL = "http://127.0.0.1:8000"  # in the shipped demo configs; the demo command puts the shop's there
BRANDS = ("Musinsa Standard", "Covernat", "Thisisneverthat", "Lee", "Mardi Mercredi", "Nike")
KINDS = ("Oversized Tee", "Wide Denim", "Hoodie", "Cardigan", "Cargo Pants", "Sneakers", "Cap")
CATEGORIES = ("tops", "bottoms", "outer", "shoes")  # product i is in CATEGORIES[i % 4]
PRODUCTS_PER_PAGE = 12  # on a category listing
REVIEWS_PER_PAGE = 3  # server-rendered on the product page, then per /api/reviews page
QUESTIONS_PER_PAGE = 5  # server-rendered on the questions page, then per /api/questions page
USERS = {"demo": "demo"}  # username -> password
WISHLIST = (3, 14, 15, 92, 65, 35, 89, 79)  # the demo user's wishes, those within the shop's range
PHOTO_REVIEWS_PER_PAGE = 4  # per /api/photo-reviews page, loaded as the list's end scrolls into view
RATINGS_PER_PAGE = 3  # per page of the review widget's /api/ratings
SIZES = ("S", "M", "L", "XL")  # product i comes in the first 2 + i % 3 of them

AUTHORS = ("jiwoo", "minji", "seoyeon", "hyun", "daniel", "sora", "taeyang")
REVIEW_TEXTS = (
    "Fits true to size.",
    "The colour is a little darker than the photos.",
    "Great fabric for the price & it washes well.",
    "Ran small; order one size up.",
    "Shipping took a week but it's worth it.",
    "My second one <3",
)
RATING_TITLES = (
    "Exactly as pictured",
    "Good value",
    "Not for me",
    "Runs large",
    "Would buy again",
)
QUESTION_TEXTS = (
    "Is this true to size?",
    "Will it be restocked in black?",
    "What is the model's height?",
    "Does it shrink after washing?",
    "Can I return it if it doesn't fit?",
)


def product(i: int) -> dict[str, Any]:
    """Deterministic product data for id ``i``."""
    return {
        "id": i,
        "brand": BRANDS[i % len(BRANDS)],
        "name": f"{BRANDS[i % len(BRANDS)]} {KINDS[i % len(KINDS)]} #{i}",
        "price": 9_900 + (i * 7_919) % 190_000 // 100 * 100,
        "stock": (i * 37) % 120,
        "image": f"/img/{i}.png",
    }


def format_price(won: int) -> str:
    return f"₩{won:,}"


def expected_item(base_url: str, i: int) -> dict[str, Any]:
    """The item a crawl of product ``i`` with config/products.toml must produce."""
    p = product(i)
    return {
        "url": f"{base_url}/product/{i}",
        "status": 200,
        "name": p["name"],
        "brand": p["brand"],
        "price": format_price(p["price"]),
        "image": f"{base_url}{p['image']}",
        "stock": str(p["stock"]),
        "goods": p,
    }


def category_of(i: int) -> str:
    return CATEGORIES[i % len(CATEGORIES)]


def category_products(slug: str, products: int) -> list[int]:
    """The ids listed under category ``slug`` in a shop of ``products`` products, in order."""
    return [i for i in range(1, products + 1) if category_of(i) == slug]


def reviews(i: int) -> list[dict[str, Any]]:
    """Product ``i``'s reviews, oldest first: ``i % 11`` of them (0 to 10)."""
    return [
        {
            "id": f"r{i}-{n}",
            "product": i,
            "author": AUTHORS[(i + n) % len(AUTHORS)],
            "stars": 1 + (i * 3 + n * 2) % 5,
            "text": f"{REVIEW_TEXTS[(i * 5 + n) % len(REVIEW_TEXTS)]} (review {n} of #{i})",
        }
        for n in range(1, i % 11 + 1)
    ]


def questions(i: int) -> list[dict[str, Any]]:
    """Product ``i``'s questions, oldest first: ``i * 5 % 21`` of them (0 to 20)."""
    return [
        {
            "id": f"q{i}-{n}",
            "product": i,
            "text": f"{QUESTION_TEXTS[(i + n) % len(QUESTION_TEXTS)]} (question {n} of #{i})",
        }
        for n in range(1, i * 5 % 21 + 1)
    ]


def photo_reviews(i: int) -> list[dict[str, Any]]:
    """Product ``i``'s photo reviews, oldest first: ``i * 3 % 13`` of them (0 to 12), each
    with the path of its photo."""
    return [
        {
            "id": f"p{i}-{n}",
            "product": i,
            "author": AUTHORS[(i * 2 + n) % len(AUTHORS)],
            "text": f"{REVIEW_TEXTS[(i + n * 3) % len(REVIEW_TEXTS)]} (photo review {n} of #{i})",
            "photo": f"/img/photo/{i}-{n}.png",
        }
        for n in range(1, i * 3 % 13 + 1)
    ]


def ratings(i: int) -> list[dict[str, Any]]:
    """Product ``i``'s ratings in the review widget (another origin's), oldest first:
    ``i * 7 % 9`` of them (0 to 8)."""
    return [
        {
            "id": f"w{i}-{n}",
            "product": i,
            "reviewer": AUTHORS[(i * 3 + n) % len(AUTHORS)],
            "score": 1 + (i + n * 3) % 5,
            "title": f"{RATING_TITLES[(i * 2 + n) % len(RATING_TITLES)]} (rating {n} of #{i})",
        }
        for n in range(1, i * 7 % 9 + 1)
    ]


def gallery(i: int) -> list[str]:
    """The paths of product ``i``'s gallery images, in page order: ``2 + i % 5`` of them."""
    return [f"/img/gallery/{i}/{k}.png" for k in range(1, 2 + i % 5 + 1)]


def sizes(i: int) -> dict[str, int]:
    """Product ``i``'s sizes, in the selector's order, and the stock of each (0 to 39)."""
    return {size: (i * 13 + k * 29) % 40 for k, size in enumerate(SIZES[: 2 + i % 3])}


def wishlist(products: int) -> list[int]:
    """The product ids on the demo user's wishlist in a shop of ``products`` products."""
    return [i for i in WISHLIST if i <= products]


def pages(entries: int, per_page: int) -> int:
    """How many pages ``entries`` entries take; an empty list still has its page 1."""
    return max(1, -(-entries // per_page))


def page_of(entries: list[Any], page: int, per_page: int) -> list[Any] | None:
    """Page ``page`` (from 1) of ``entries``; None past the last page."""
    if not 1 <= page <= pages(len(entries), per_page):
        return None
    return entries[(page - 1) * per_page : page * per_page]


# -- what a crawl must find ----------------------------------------------------------------

# An item's "kind" -> its name in the report of compare.
ITEM_KINDS = {
    "product": "products",
    "review": "reviews",
    "question": "questions",
    "wish": "wishes",
    "photo_review": "photo reviews",
    "rating": "ratings",
    "image": "images",
    "size": "sizes",
}


def truth(products: int) -> dict[str, set[Any]]:
    """Item kind -> the ids a complete crawl of a shop of ``products`` products must find:
    product ids, review ids (``r{i}-{n}``), question ids (``q{i}-{n}``), the product
    ids on the demo user's wishlist, photo review ids (``p{i}-{n}``), the review
    widget's rating ids (``w{i}-{n}``), the gallery images' paths (as loaded:
    ``/img/gallery/{i}/{k}.png``) and the sizes of each product (``{i}-{size}``)."""
    ids = range(1, products + 1)
    return {
        "product": set(ids),
        "review": {r["id"] for i in ids for r in reviews(i)},
        "question": {q["id"] for i in ids for q in questions(i)},
        "wish": set(wishlist(products)),
        "photo_review": {r["id"] for i in ids for r in photo_reviews(i)},
        "rating": {r["id"] for i in ids for r in ratings(i)},
        "image": {path for i in ids for path in gallery(i)},
        "size": {f"{i}-{size}" for i in ids for size in sizes(i)},
    }


def compare(items: Iterable[dict[str, Any]], products: int) -> dict[str, dict[str, int]]:
    """For each item kind: how many of the :func:`truth` ids the ``items`` hold
    (``found`` of ``expected``), and how many items of that kind are ``extra``
    (a repeated id, or one the shop does not have).  Ids compare as text.  An item
    without ``kind`` is taken as what the flat config/products.toml crawl extracts:
    a product, whose id is in its ``/product/{i}`` URL."""
    seen: dict[str, list[str]] = {kind: [] for kind in ITEM_KINDS}
    for item in items:
        kind, ident = _identity(item)
        if kind in seen:
            seen[kind].append(ident)
    result = {}
    for kind, expected in truth(products).items():
        wanted = {str(ident) for ident in expected}
        found = wanted & set(seen[kind])
        result[kind] = {"found": len(found), "expected": len(wanted), "extra": len(seen[kind]) - len(found)}
    return result


def format_comparison(result: dict[str, dict[str, int]]) -> str:
    """One line: ``products 200/200, reviews 990/990, ... found`` (plus extras, if any)."""
    counts = ", ".join(f"{ITEM_KINDS[kind]} {c['found']}/{c['expected']}" for kind, c in result.items())
    extras = ", ".join(f"{c['extra']} {ITEM_KINDS[kind]}" for kind, c in result.items() if c["extra"])
    return f"{counts} found" + (f"; extra (repeated or unknown): {extras}" if extras else "")


def _identity(item: dict[str, Any]) -> tuple[str, str]:
    if "kind" in item:
        return str(item["kind"]), str(item.get("id"))
    parts = urlsplit(str(item.get("url", ""))).path.strip("/").split("/")
    return "product", parts[1] if len(parts) == 2 and parts[0] == "product" else ""
