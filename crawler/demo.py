"""The bundled demo shop: product pages that render price and stock from a JSON API
call made by page JavaScript, like a real storefront.

``product(i)`` is the shop's truth; ``expected_item(base, i)`` is what a crawl with
``config/demo.toml`` must extract from product ``i``.
"""

from __future__ import annotations

import html
import json
from typing import Any

from .httpserver import Request, Response

# A 1x1 transparent PNG, so image requests succeed without weight.
PIXEL_PNG = bytes.fromhex(
    "89504e470d0a1a0a0000000d4948445200000001000000010806000000"
    "1f15c4890000000d49444154789c6360000002000154a24f5d0000000049454e44ae426082"
)

BRANDS = ("Musinsa Standard", "Covernat", "Thisisneverthat", "Lee", "Mardi Mercredi", "Nike")
KINDS = ("Oversized Tee", "Wide Denim", "Hoodie", "Cardigan", "Cargo Pants", "Sneakers", "Cap")


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
    """The item a crawl of product ``i`` with config/demo.toml must produce."""
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


PRODUCT_PAGE = """<!doctype html>
<html lang="ko"><head><meta charset="utf-8"><title>{title}</title></head>
<body>
<nav><a href="/">Demo Shop</a></nav>
<main>
  <h1>{name}</h1>
  <p class="brand">{brand}</p>
  <img class="main" src="{image}" alt="">
  <p>Price: <span id="price">…</span></p>
  <p>Stock: <span id="stock">…</span></p>
</main>
<script>
fetch("/api/goods/{id}")
  .then((r) => r.json())
  .then((g) => {{
    document.getElementById("price").textContent = "₩" + g.price.toLocaleString("en-US");
    document.getElementById("stock").textContent = String(g.stock);
    document.body.dataset.ready = "1";
  }});
</script>
</body></html>
"""


class DemoShop:
    """Request handler of the demo shop with ``products`` products (ids 1..products)."""

    def __init__(self, products: int = 200):
        self.products = products

    def _id(self, text: str) -> int | None:
        return int(text) if text.isdigit() and 1 <= int(text) <= self.products else None

    async def __call__(self, request: Request) -> Response:
        path = request.path
        parts = path.strip("/").split("/")
        if path == "/":
            links = "".join(f'<li><a href="/product/{i}">{i}</a></li>' for i in range(1, min(self.products, 50) + 1))
            return Response(body=f"<h1>Demo Shop</h1><ul>{links}</ul>".encode())
        i = self._id(parts[-1])
        if parts[0] == "product" and len(parts) == 2 and i:
            p = product(i)
            page = PRODUCT_PAGE.format(
                title=html.escape(p["name"]),
                name=html.escape(p["name"]),
                brand=html.escape(p["brand"]),
                image=p["image"],
                id=i,
            )
            return Response(body=page.encode())
        if parts[:2] == ["api", "goods"] and len(parts) == 3 and i:
            return Response(body=json.dumps(product(i)).encode(), content_type="application/json")
        if parts[0] == "img":
            return Response(body=PIXEL_PNG, content_type="image/png")
        return Response(status=404, body=b"<h1>Not found</h1>")
