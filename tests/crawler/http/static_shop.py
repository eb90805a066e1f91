"""A static shop for the HTTP path's tests: listing pages linking to product pages,
every page plain HTML (no script needed), with knobs for the hostile cases.

Paths: ``/list/{n}`` (links to 10 products each, and to the next list page),
``/p/{i}`` (one product: name, price, three reviews), ``/js/{i}`` (the same product,
its reviews rendered by a script only, when ``shop.js_reviews`` is on), ``/api/{i}``
(JSON), ``/big`` (a body of ``?mb=`` MiB), ``/bomb`` (a gzip bomb: a few KB on the
wire, ``?mb=`` MiB decoded), ``/set`` (sets a cookie), ``/echo`` (shows the request's
cookies and headers), ``/redirect?to=URL``, ``/latin1`` (a page in ISO-8859-1 with
the charset only in a meta tag), ``/robots.txt`` (disallows ``/secret``).
"""

from __future__ import annotations

import gzip
import json
from collections import Counter
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import trio

from crawler.httpserver import HttpRequest, Response, serve_http

PRODUCTS = 40
PER_LIST = 10


def product_html(i: int) -> str:
    reviews = "".join(f"<li class='review'><b>r{i}-{k}</b>  good\n  shoes </li>" for k in range(3))
    return (
        f"<html><head><title>P{i}</title><meta property='og:image' content='/img/{i}.png'></head><body>"
        f"<h1> Product  {i} </h1><p class='price'>{1000 + i} won</p><a class='home' href='/list/0'>home</a>"
        f"<ul id='reviews'>{reviews}</ul></body></html>"
    )


def js_product_html(i: int) -> str:
    data = json.dumps([f"r{i}-{k}" for k in range(3)])
    return (
        f"<html><body><h1>Product {i}</h1><p class='price'>{1000 + i} won</p><ul id='reviews'></ul>"
        f"<script>for (const r of {data}) {{ const li = document.createElement('li'); li.className = 'review';"
        " li.innerHTML = '<b>' + r + '</b>  good\\n  shoes '; document.getElementById('reviews').append(li); }"
        "</script></body></html>"
    )


def list_html(n: int, products: int) -> str:
    first = n * PER_LIST
    links = "".join(f"<a class='product' href='/p/{i}'>P{i}</a>" for i in range(first, min(first + PER_LIST, products)))
    more = f"<a class='next' href='/list/{n + 1}'>next</a>" if first + PER_LIST < products else ""
    return f"<html><body>{links}{more}</body></html>"


class StaticShop:
    def __init__(self, products: int = PRODUCTS):
        self.products = products
        self.hits: Counter[str] = Counter()
        self.requests: list[HttpRequest] = []
        self.js_reviews = False  # /p/{i} serves the script-rendered page
        self.js_after: int | None = None  # ... from the product request after this many on
        self.times: list[tuple[float, str]] = []  # (trio time, path) of every request

    async def __call__(self, request: HttpRequest) -> Response:
        self.hits[request.path] += 1
        self.requests.append(request)
        self.times.append((trio.current_time(), request.path))
        parts = request.path.strip("/").split("/")
        kind, arg = parts[0], parts[1] if len(parts) > 1 else ""
        if kind == "list" and arg.isdigit():
            return Response(body=list_html(int(arg), self.products).encode())
        if kind == "p" and arg.isdigit() and int(arg) < self.products:
            served = sum(n for path, n in self.hits.items() if path.startswith("/p/"))
            js = self.js_reviews or (self.js_after is not None and served > self.js_after)
            page = js_product_html(int(arg)) if js else product_html(int(arg))
            return Response(body=page.encode())
        if kind == "js" and arg.isdigit():
            return Response(body=js_product_html(int(arg)).encode())
        if kind == "api" and arg.isdigit():
            return Response(
                body=json.dumps({"id": int(arg), "reviews": [1, 2]}).encode(), content_type="application/json"
            )
        if kind == "big":
            mb = float(request.query.get("mb", ["1"])[0])
            return Response(body=b"<html><body>" + b"x" * int(mb * 2**20) + b"</body></html>")
        if kind == "bomb":
            mb = int(request.query.get("mb", ["64"])[0])
            body = gzip.compress(b"<html><body>" + b"\0" * (mb * 2**20), compresslevel=9)
            return Response(body=body, headers=(("Content-Encoding", "gzip"),))
        if kind == "set":  # /set/{name}: sets the cookie name=yes
            return Response(
                body=b"<html><body><h1>set</h1><a href='/echo'>echo</a></body></html>",
                headers=(("Set-Cookie", f"{arg or 'over_http'}=yes; Path=/; HttpOnly"),),
            )
        if kind == "echo":
            shown = {"cookies": request.cookies, "headers": request.headers}
            return Response(body=f"<html><body><pre id='echo'>{json.dumps(shown)}</pre></body></html>".encode())
        if kind == "redirect":
            return Response(status=302, headers=(("Location", request.query["to"][0]),))
        if kind == "latin1":
            body = "<html><head><meta charset='iso-8859-1'></head><body><h1>caf\u00e9</h1></body></html>"
            return Response(body=body.encode("latin-1"), content_type="text/html")
        if kind == "forbidden":
            return Response(status=403, body=b"<html><body><div id='captcha'>no</div></body></html>")
        if kind == "captcha":
            return Response(body=b"<html><body><div id='captcha'>prove it</div></body></html>")
        if kind == "robots.txt":
            return Response(body=b"User-agent: *\nDisallow: /secret\n", content_type="text/plain")
        if kind == "image":
            return Response(body=b"\x89PNG....", content_type="image/png")
        return Response(status=404, body=b"not found")


async def start_static_shop(nursery: trio.Nursery, shop: StaticShop) -> str:
    port = await nursery.start(serve_http, shop)
    return f"http://127.0.0.1:{port}"


@asynccontextmanager
async def no_browser() -> AsyncIterator[None]:
    """The ``open_browser`` seam of a crawl that must start no browser (every route over HTTP)."""
    raise AssertionError("an HTTP-only crawl started a browser")
    yield  # pragma: no cover
