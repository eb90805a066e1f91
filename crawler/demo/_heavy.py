"""The heavy product page: a product page weighed like a real storefront's.

``/heavy/product/{i}`` shows the same product fields as ``/product/{i}`` (so
``expected_item`` holds for it, with its own URL), inside about 1.3 MB of HTML
(a mega menu, a 40-image gallery, 200 recommendation cards, a long description and
a 300 KB inline state blob), a 150 KB stylesheet, and a 600 KB application script
that parses its own data and builds more DOM.  The page calls three APIs (goods,
reviews, questions) and sets ``body[data-ready]`` once all three are in.  Each
gallery image has its own URL (``/img/heavy/{i}/{k}.png``, 128x128, about 49 KB),
so none comes from the cache: what blocking images saves shows.

Everything but the product's own parts is built once, on first use.
"""

from __future__ import annotations

import functools
import json
import random
import struct
import zlib
from html import escape

from ._data import product

GALLERY_IMAGES = 40
RECOMMENDATIONS = 200
MENU_LINKS = 2000
DESCRIPTION_PARAGRAPHS = 2500

HEAVY_SCRIPT = """<script>
(() => {
  const get = (path) => fetch(path).then((r) => r.json());
  const i = document.body.dataset.product;
  Promise.all([
    get("/api/goods/" + i).then((g) => {
      document.getElementById("price").textContent = "₩" + g.price.toLocaleString("en-US");
      document.getElementById("stock").textContent = String(g.stock);
    }),
    get("/api/reviews/" + i + "?page=1").then((d) => {
      const list = document.getElementById("heavy-reviews");
      for (const r of d.reviews) list.append(Object.assign(document.createElement("li"), {textContent: r.text}));
    }),
    get("/api/questions/" + i + "?page=1").then((d) => {
      const list = document.getElementById("heavy-questions");
      for (const q of d.questions) list.append(Object.assign(document.createElement("li"), {textContent: q.text}));
    }),
  ]).then(() => { document.body.dataset.ready = "1"; });
})();
</script>"""


def heavy_product_page(i: int) -> str:
    p = product(i)
    head, menu, tail = _static_parts()
    gallery = "".join(
        f'<img src="/img/heavy/{i}/{k}.png" width="128" height="128" alt="">' for k in range(GALLERY_IMAGES)
    )
    main = (
        f'<main><h1>{escape(p["name"])}</h1>\n<p class="brand">{escape(p["brand"])}</p>\n'
        f'<img class="main" src="{p["image"]}" alt="">\n'
        '<p>Price: <span id="price">…</span></p>\n<p>Stock: <span id="stock">…</span></p>\n'
        f'<div class="gallery">{gallery}</div>\n'
        '<ul id="heavy-reviews"></ul><ul id="heavy-questions"></ul></main>\n'
    )
    return (
        f'<!doctype html>\n<html lang="ko"><head><meta charset="utf-8"><title>{escape(p["name"])}</title>{head}</head>\n'
        f'<body data-product="{i}">\n{menu}{main}{tail}{HEAVY_SCRIPT}</body></html>\n'
    )


@functools.cache
def _static_parts() -> tuple[str, str, str]:
    """(head, mega menu, everything after the product): the same on every page."""
    rnd = random.Random(7)
    head = '<link rel="stylesheet" href="/static/heavy.css"><script src="/static/heavy-app.js" defer></script>'
    links = "".join(
        f'<li><a href="/category/tops?page={k % 9 + 1}&amp;m={k}">Menu item {k}</a></li>' for k in range(MENU_LINKS)
    )
    menu = f'<nav class="mega"><ul>{links}</ul></nav>\n'
    cards = "".join(
        f'<div class="card"><a href="/heavy/product/{k + 1}"><img loading="lazy" src="/img/rec/{k}.png" alt="">'
        f'<span class="t">Recommended {k}</span><span class="p">₩{rnd.randrange(9900, 199000, 100):,}</span></a></div>'
        for k in range(RECOMMENDATIONS)
    )
    words = ("cotton", "oversized", "washed", "seoul", "limited", "fit", "drop", "heavyweight", "ribbed", "garment")
    description = "".join(
        f'<p class="d{k % 7}"><span>{" ".join(rnd.choice(words) for _ in range(18))}</span> <b>{k}</b></p>'
        for k in range(DESCRIPTION_PARAGRAPHS)
    )
    state = json.dumps(
        {
            "variants": [
                {"sku": f"SKU-{k}", "size": k % 7, "stock": rnd.randrange(100), "tags": words} for k in range(2200)
            ]
        }
    )
    tail = (
        f'<section class="recommend">{cards}</section>\n<section class="description">{description}</section>\n'
        f'<script id="__STATE__" type="application/json">{state}</script>\n<footer>Demo Shop</footer>\n'
    )
    return head, menu, tail


@functools.cache
def heavy_app_js() -> bytes:
    """About 600 KB: a data table and code that parses it and builds a hidden widget."""
    rnd = random.Random(11)
    table = json.dumps([[rnd.randrange(10**6), f"item-{k}", rnd.random()] for k in range(20000)])
    return (
        f"const TABLE = {table};\n"
        "document.addEventListener('DOMContentLoaded', () => {\n"
        "  const state = JSON.parse(document.getElementById('__STATE__').textContent);\n"
        "  const box = document.createElement('div'); box.hidden = true;\n"
        "  const top = TABLE.slice().sort((a, b) => b[2] - a[2]).slice(0, 300);\n"
        "  for (const [id, name] of top) box.append(Object.assign(document.createElement('span'), {textContent: name + id}));\n"
        "  box.dataset.variants = String(state.variants.length);\n"
        "  document.body.append(box);\n"
        "});\n"
    ).encode()


@functools.cache
def heavy_css() -> bytes:
    """About 150 KB of rules, most of them matching nothing."""
    rules = "".join(
        f".c{k} .x{k % 97} > span:not(.y{k % 13}) {{ margin: {k % 9}px; color: #{k % 4096:03x}; }}\n"
        for k in range(2400)
    )
    return (rules + ".gallery img { display: inline-block; } .mega li { display: inline; }\n").encode()


@functools.cache
def heavy_png() -> bytes:
    """A 128x128 RGB PNG of noise (so it neither compresses nor decodes for free)."""
    rnd = random.Random(3)
    width = height = 128
    raw = b"".join(b"\x00" + rnd.randbytes(width * 3) for _ in range(height))

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)

    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(raw)) + chunk(b"IEND", b"")
