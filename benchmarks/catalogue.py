#!/usr/bin/env python
"""The static catalogue that ``http_bench.py`` and ``auto_bench.py`` crawl, and its
server: pre-rendered pages, served from a process of its own.

    python benchmarks/catalogue.py serve --products 2000 [--subset 300] [--reviews-every 10]

Standard library only: the peers' contenders (``benchmarks/peers-venv``) import its
selectors and truth too.

The site (every page static HTML, built once at start):

- ``/``: the index, one ``a.listing`` per listing page;
- ``/list/{k}``: :data:`PRODUCTS_PER_LISTING` products, each an ``a.product``, plus
  navigation links (home, previous, next: links every crawler sees and dedups);
- ``/product/{i}``: ``h1`` (the name), ``.price``, ``ul.reviews`` with a few ``li``
  (:func:`product`), Open Graph tags, a description and details table, links to
  related products and a footer (not followed: parse work, as on real pages);
- with ``--subset n``, ``/sub/{n}/``: an index of the first listings only, enough
  for ``n`` products (rounded up to whole listings), for a slower contender;
- with ``--reviews-every K`` (the mixed storefront), every K-th product page also has
  an ``a.all-reviews`` to ``/reviews/{i}``, a page whose review list is empty in its
  HTML: an inline script fetches ``/api/reviews/{i}`` and builds it
  (:func:`all_reviews`), then sets ``body[data-ready]``.  Only a browser sees them.

The server (``serve``) is one asyncio process speaking just enough HTTP/1.1 for GET
and HEAD with keep-alive: each response is prepared whole (status line, headers and
body as one bytes object) at start, so a request costs a dict lookup and one write.
It binds 127.0.0.1 only, prints ``{"event": "listening", "port": P}`` on stdout, and
exits when its stdin closes (its parent exited, however it exited) or, on Linux, when
its parent dies (``PR_SET_PDEATHSIG``).  ``GET /__stats`` answers the requests it
served since the last ``GET /__reset`` (in all, by kind of page, and how many paths
were asked more than once): how many fetches a contender made for its pages.
"""

from __future__ import annotations

import argparse
import asyncio
import ctypes
import json
import signal
import sys
from collections import Counter
from html import escape

PRODUCTS_PER_LISTING = 20
RELATED_LINKS = 4  # links to other products on each product page (not followed)
FOOTER_LINKS = 12  # footer links on every page (not followed)
HOST = "127.0.0.1"

# What every contender reads: the routes' selectors.
INDEX_FOLLOW = "a.listing"  # on / and /sub/{n}/: the listing pages
LISTING_FOLLOW = "a.product"  # on /list/{k}: the product pages
PRODUCT_FIELDS = {"name": "h1", "price": ".price"}  # text of each
PRODUCT_REVIEWS = "ul.reviews li"  # every match's text: the item's "reviews" list
REVIEWS_FOLLOW = "a.all-reviews"  # on a mixed storefront's product page: its reviews page
REVIEW_ITEMS = "#all-reviews li.review"  # on /reviews/{i}: one item per match, after its script ran
REVIEW_FIELDS = {"author": ".author", "text": ".text"}  # text of each, inside the match

BRANDS = ("Covernat", "Thisisneverthat", "Mardi Mercredi", "Kirsh", "Musinsa Standard", "Ader Error")
GOODS = ("Oversized Tee", "Denim Jacket", "Wide Slacks", "Knit Cardigan", "Hoodie", "Cargo Pants", "Cap")
REVIEW_TEXTS = (
    "Fits true to size.",
    "The colour is a little darker than the photos.",
    "Great fabric for the price, and it washes well.",
    "Arrived in two days, nicely packed.",
    "A bit long in the sleeves for me.",
)
AUTHORS = ("minji", "seoyeon", "hyun", "jiwoo", "doyoon", "yuna", "taeho")


# The truth ---------------------------------------------------------------------------


def listings(products: int) -> int:
    """How many listing pages hold ``products`` products."""
    return -(-products // PRODUCTS_PER_LISTING)


def subset_products(n: int, products: int) -> int:
    """The products a ``/sub/{n}/`` crawl reaches: ``n`` rounded up to whole listings."""
    return min(products, listings(n) * PRODUCTS_PER_LISTING)


def product(i: int) -> dict[str, object]:
    """Product ``i``'s item as every contender must find it on ``/product/{i}``."""
    return {
        "name": f"{BRANDS[i % len(BRANDS)]} {GOODS[i % len(GOODS)]} #{i}",
        "price": f"₩{9_900 + (i * 1_300) % 150_000:,}",
        "reviews": [f"{REVIEW_TEXTS[(i + k) % len(REVIEW_TEXTS)]} (review {k} of #{i})" for k in range(1, 3 + i % 3)],
    }


def has_reviews_page(i: int, reviews_every: int) -> bool:
    return reviews_every > 0 and i % reviews_every == 0


def all_reviews(i: int) -> list[dict[str, str]]:
    """The reviews that ``/reviews/{i}``'s script shows (from ``/api/reviews/{i}``)."""
    return [
        {"author": AUTHORS[(i + k) % len(AUTHORS)], "text": f"{REVIEW_TEXTS[(i * k) % len(REVIEW_TEXTS)]} ({i}/{k})"}
        for k in range(1, 6 + i % 5)
    ]


def expected_pages(products: int, reviews_every: int = 0) -> int:
    """Pages a full crawl fetches from its index: the index, the listings, the
    products and the reviews pages."""
    return 1 + listings(products) + products + sum(has_reviews_page(i, reviews_every) for i in range(1, products + 1))


# The pages -----------------------------------------------------------------------------

STYLE = (
    "<style>body{font:14px sans-serif;margin:0 auto;max-width:960px}nav a,footer a{margin-right:8px}"
    ".grid{display:grid;grid-template-columns:repeat(4,1fr);gap:12px}.price{font-weight:bold}"
    "table.details td{padding:2px 8px}</style>"
)


def head(title: str, extra: str = "") -> str:
    return (
        f'<!doctype html>\n<html lang="ko"><head><meta charset="utf-8"><title>{escape(title)}</title>'
        f'<meta name="viewport" content="width=device-width">{extra}{STYLE}</head>\n<body>\n'
        '<nav><a href="/">Home</a><a href="/list/1">New in</a></nav>\n'
    )


def footer() -> str:
    links = "".join(f'<a href="/help/{k}">Help {k}</a>' for k in range(1, FOOTER_LINKS + 1))
    return f"<footer>{links}<p>© Catalogue</p></footer>\n</body></html>\n"


def index_page(listing_pages: int) -> str:
    links = "".join(f'<li><a class="listing" href="/list/{k}">Page {k}</a></li>' for k in range(1, listing_pages + 1))
    return head("Catalogue") + f"<main><h1>Catalogue</h1><ul>{links}</ul></main>\n" + footer()


def listing_page(k: int, products: int) -> str:
    first = (k - 1) * PRODUCTS_PER_LISTING + 1
    cards = "".join(
        f'<div class="card"><a class="product" href="/product/{i}">{escape(str(product(i)["name"]))}</a>'
        f'<span class="card-price">{product(i)["price"]}</span></div>'
        for i in range(first, min(first + PRODUCTS_PER_LISTING, products + 1))
    )
    pager = f'<a class="prev" href="/list/{k - 1}">Previous</a>' if k > 1 else ""
    pager += f'<a class="next" href="/list/{k + 1}">Next</a>' if k < listings(products) else ""
    return (
        head(f"Catalogue page {k}")
        + f'<main><h1>Page {k}</h1><div class="grid">{cards}</div>{pager}</main>\n'
        + footer()
    )


def product_page(i: int, products: int, reviews_every: int) -> str:
    p = product(i)
    name = escape(str(p["name"]))
    og = (
        f'<meta property="og:title" content="{name}"><meta property="og:type" content="product">'
        f'<meta property="og:image" content="/img/{i}.jpg">'
    )
    reviews = "".join(f"<li>{escape(r)}</li>" for r in p["reviews"])
    more = (
        f'<p><a class="all-reviews" href="/reviews/{i}">All reviews</a></p>'
        if has_reviews_page(i, reviews_every)
        else ""
    )
    related = "".join(
        f'<li><a class="related" href="/product/{(i + 7 * k) % products + 1}">Related {k}</a></li>'
        for k in range(1, RELATED_LINKS + 1)
    )
    details = "".join(f"<tr><td>Detail {k}</td><td>Value {(i * k) % 97}</td></tr>" for k in range(1, 9))
    listing = (i - 1) // PRODUCTS_PER_LISTING + 1
    return (
        head(str(p["name"]), og)
        + f'<p class="crumbs"><a href="/">Home</a> / <a href="/list/{listing}">Page {listing}</a></p>\n'
        + f'<main><h1>{name}</h1>\n<img class="main" src="/img/{i}.jpg" alt="" width="400" height="400">\n'
        + f'<p>Price: <span class="price">{p["price"]}</span></p>\n'
        + f'<p class="description">{escape(str(p["name"]))}: {" ".join(REVIEW_TEXTS)} Cotton, made in Korea.</p>\n'
        + f'<table class="details">{details}</table>\n'
        + f'<section><h2>Reviews</h2><ul class="reviews">{reviews}</ul>{more}</section>\n'
        + f'<section><h2>You may also like</h2><ul class="related">{related}</ul></section></main>\n'
        + footer()
    )


# /reviews/{i}: the list is empty in the HTML; the script fills it from the API.
REVIEWS_SCRIPT = """<script>
fetch("/api/reviews/ID")
  .then((r) => r.json())
  .then((data) => {
    const list = document.getElementById("all-reviews");
    for (const r of data.reviews) {
      const li = document.createElement("li");
      li.className = "review";
      li.innerHTML = '<span class="author"></span><p class="text"></p>';
      li.querySelector(".author").textContent = r.author;
      li.querySelector(".text").textContent = r.text;
      list.append(li);
    }
    document.body.dataset.ready = "1";
  });
</script>"""


def reviews_page(i: int) -> str:
    name = escape(str(product(i)["name"]))
    return (
        head(f"Reviews of {product(i)['name']}")
        + f'<main><h1>Reviews of {name}</h1><p><a href="/product/{i}">Back</a></p>\n'
        + '<ol id="all-reviews"></ol></main>\n'
        + REVIEWS_SCRIPT.replace("ID", str(i))
        + "\n"
        + footer()
    )


def site(products: int, subsets: list[int], reviews_every: int) -> dict[str, tuple[str, bytes]]:
    """Every path the server answers: ``path -> (content type, body)``."""
    html = "text/html; charset=utf-8"
    pages: dict[str, tuple[str, bytes]] = {"/": (html, index_page(listings(products)).encode())}
    for n in subsets:
        pages[f"/sub/{n}/"] = (html, index_page(listings(subset_products(n, products))).encode())
    for k in range(1, listings(products) + 1):
        pages[f"/list/{k}"] = (html, listing_page(k, products).encode())
    for i in range(1, products + 1):
        pages[f"/product/{i}"] = (html, product_page(i, products, reviews_every).encode())
        if has_reviews_page(i, reviews_every):
            pages[f"/reviews/{i}"] = (html, reviews_page(i).encode())
            pages[f"/api/reviews/{i}"] = ("application/json", json.dumps({"reviews": all_reviews(i)}).encode())
    return pages


# The server ------------------------------------------------------------------------------


def response(status: str, content_type: str, body: bytes) -> tuple[bytes, bytes]:
    """(the GET response, the HEAD response), each whole."""
    headers = (
        f"HTTP/1.1 {status}\r\nContent-Type: {content_type}\r\nContent-Length: {len(body)}\r\n"
        "Cache-Control: no-store\r\n\r\n"
    ).encode()
    return headers + body, headers


class Stats:
    def __init__(self) -> None:
        self.by_path: Counter[bytes] = Counter()

    def as_json(self) -> bytes:
        kinds: Counter[str] = Counter()
        for path, n in self.by_path.items():
            kinds[path.decode(errors="replace").split("/")[1] or "index"] += n
        return json.dumps(
            {
                "requests": sum(self.by_path.values()),
                "by_kind": dict(kinds),
                "paths": len(self.by_path),
                "paths_asked_again": sum(1 for n in self.by_path.values() if n > 1),
            }
        ).encode()


class HttpProtocol(asyncio.Protocol):
    """GET and HEAD, keep-alive, pipelining; request bodies are not expected."""

    MAX_HEAD = 64 * 1024

    def __init__(self, responses: dict[bytes, tuple[bytes, bytes]], not_found: tuple[bytes, bytes], stats: Stats):
        self.responses, self.not_found, self.stats = responses, not_found, stats
        self.buffer = b""
        self.transport: asyncio.Transport | None = None

    def connection_made(self, transport) -> None:
        self.transport = transport

    def data_received(self, data: bytes) -> None:
        self.buffer += data
        while True:
            end = self.buffer.find(b"\r\n\r\n")
            if end < 0:
                if len(self.buffer) > self.MAX_HEAD:
                    self.transport.close()
                return
            request, self.buffer = self.buffer[:end], self.buffer[end + 4 :]
            line, _, headers = request.partition(b"\r\n")
            parts = line.split(b" ")
            if len(parts) != 3:
                self.transport.close()
                return
            method, target, version = parts
            path = target.split(b"?", 1)[0]
            if path == b"/__stats":
                self.transport.write(response("200 OK", "application/json", self.stats.as_json())[0])
                continue
            if path == b"/__reset":
                self.stats.by_path.clear()
                self.transport.write(response("200 OK", "application/json", b"{}")[0])
                continue
            self.stats.by_path[path] += 1
            get, head = self.responses.get(path, self.not_found)
            self.transport.write(head if method == b"HEAD" else get)
            lowered = headers.lower()
            if b"connection: close" in lowered or (version == b"HTTP/1.0" and b"keep-alive" not in lowered):
                self.transport.close()
                return


def die_with_parent() -> None:
    """SIGTERM this process when its parent dies (Linux; elsewhere, stdin's EOF does it)."""
    try:
        PR_SET_PDEATHSIG = 1
        ctypes.CDLL(None, use_errno=True).prctl(PR_SET_PDEATHSIG, signal.SIGTERM, 0, 0, 0)
    except (OSError, AttributeError):
        pass


async def serve(args: argparse.Namespace) -> None:
    pages = site(args.products, args.subset, args.reviews_every)
    responses = {path.encode(): response("200 OK", ctype, body) for path, (ctype, body) in pages.items()}
    not_found = response("404 Not Found", "text/html; charset=utf-8", b"<h1>Not found</h1>")
    stats = Stats()
    loop = asyncio.get_running_loop()
    server = await loop.create_server(
        lambda: HttpProtocol(responses, not_found, stats), HOST, args.port, backlog=1024, reuse_address=True
    )
    port = server.sockets[0].getsockname()[1]
    sys.stdout.write(json.dumps({"event": "listening", "port": port, "pages": len(pages)}) + "\n")
    sys.stdout.flush()
    # stdin's EOF: the parent closed it or exited.
    eof = asyncio.Event()

    class StdinWatch(asyncio.Protocol):
        def connection_lost(self, exc) -> None:
            eof.set()

        def eof_received(self) -> None:
            eof.set()

    await loop.connect_read_pipe(StdinWatch, sys.stdin)
    await eof.wait()
    server.close()


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    sub = p.add_subparsers(dest="command", required=True)
    s = sub.add_parser("serve", help="serve the catalogue on 127.0.0.1 until stdin closes")
    s.add_argument("--products", type=int, default=2000)
    s.add_argument("--subset", type=int, action="append", default=[], help="also serve /sub/N/ (repeatable)")
    s.add_argument("--reviews-every", type=int, default=0, help="every K-th product gets a JS-rendered reviews page")
    s.add_argument("--port", type=int, default=0, help="0: a free port")
    return p.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    die_with_parent()
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    asyncio.run(serve(args))
    return 0


if __name__ == "__main__":
    sys.exit(main())
