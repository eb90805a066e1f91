"""The README's main job: `python -m crawler demo` serves the demo shop and crawls it end to end."""

from __future__ import annotations

import json
import subprocess
import sys
from collections import defaultdict
from pathlib import Path
from urllib.parse import urlsplit

import pytest

from crawler.demo import (
    ITEM_KINDS,
    expected_item,
    format_price,
    gallery,
    photo_reviews,
    product,
    questions,
    ratings,
    reviews,
    sizes,
    truth,
    wishlist,
)

pytestmark = pytest.mark.chromium
REPO = Path(__file__).resolve().parents[3]


def run_demo(tmp_path: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "crawler", "demo", "--out", "items.jsonl", "--db", "demo.db", *args],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=240,
        env={"PYTHONPATH": str(REPO), "PATH": "/usr/bin:/bin:/usr/local/bin"},
    )


def test_flat_crawl_of_the_product_pages_exports_every_item_correctly(tmp_path):
    """`python -m crawler demo --config config/products.toml` (the flat list of product
    pages, no handlers) exits 0 and its JSONL export holds every product of the shop,
    each exactly as the shop renders it (the config's 200 products)."""
    proc = run_demo(tmp_path, "--config", str(REPO / "config" / "products.toml"))
    assert proc.returncode == 0, proc.stderr[-3000:]
    items = [json.loads(line) for line in (tmp_path / "items.jsonl").read_text().splitlines()]
    base = items[0]["url"].rsplit("/product/", 1)[0]
    assert items == [expected_item(base, i) for i in range(1, 201)]
    assert "items done      200" in proc.stderr and "failed          0" in proc.stderr
    assert "crawler: products 200/200, reviews 0/" in proc.stderr


def test_demo_command_finds_everything_the_storefront_shows(tmp_path):
    """A fresh `python -m crawler demo --products 30` (config/demo.toml: the storefront and
    the routes of config/demo_handlers.py) exits 0, reports everything the shop shows
    found (products, reviews, questions, wishes, and what only a rendered, scrolled page
    shows: photo reviews, the cross-site widget's ratings, the lazy gallery images, and
    the stock of each size chosen in the selector), and exports each exactly once, as
    the shop shows it, with the product pages seen logged in as the demo user."""
    products = 30
    proc = run_demo(tmp_path, "--products", str(products))
    assert proc.returncode == 0, proc.stderr[-3000:]
    want = {kind: len(ids) for kind, ids in truth(products).items()}
    counts = ", ".join(f"{name} {want[kind]}/{want[kind]}" for kind, name in ITEM_KINDS.items())
    assert f"crawler: {counts} found\n" in proc.stderr
    by_kind = defaultdict(list)
    for line in (tmp_path / "items.jsonl").read_text().splitlines():
        item = json.loads(line)
        by_kind[item["kind"]].append(item)
    ids = range(1, products + 1)
    assert sorted((p["id"], p["name"], p["brand"], p["price"], p["user"]) for p in by_kind["product"]) == [
        (i, product(i)["name"], product(i)["brand"], format_price(product(i)["price"]), "demo") for i in ids
    ]
    review_keys = ("id", "product", "author", "stars", "text")
    assert sorted((tuple(r[k] for k in review_keys) for r in by_kind["review"]), key=str) == sorted(
        (tuple(r[k] for k in review_keys) for i in ids for r in reviews(i)), key=str
    )
    question_keys = ("id", "product", "text")
    assert sorted((tuple(q[k] for k in question_keys) for q in by_kind["question"]), key=str) == sorted(
        (tuple(q[k] for k in question_keys) for i in ids for q in questions(i)), key=str
    )
    assert sorted((w["id"], w["user"]) for w in by_kind["wish"]) == sorted((i, "demo") for i in wishlist(products))
    assert sorted((s["id"], s["product"], s["size"], s["stock"]) for s in by_kind["size"]) == sorted(
        (f"{i}-{size}", i, size, stock) for i in ids for size, stock in sizes(i).items()
    )
    assert sorted((g["id"], g["product"], urlsplit(g["src"]).path) for g in by_kind["image"]) == sorted(
        (path, i, path) for i in ids for path in gallery(i)
    )
    rating_keys = ("id", "product", "score", "title", "reviewer")
    assert sorted((tuple(r[k] for k in rating_keys) for r in by_kind["rating"]), key=str) == sorted(
        (tuple(r[k] for k in rating_keys) for i in ids for r in ratings(i)), key=str
    )
    photo_keys = ("id", "product", "author", "text")
    assert sorted((*(r[k] for k in photo_keys), urlsplit(r["photo"]).path) for r in by_kind["photo_review"]) == sorted(
        (*(r[k] for k in photo_keys), r["photo"]) for i in ids for r in photo_reviews(i)
    )
    assert set(by_kind) == set(ITEM_KINDS)
