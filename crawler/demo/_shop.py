"""The demo shop's request handler (routing, the login flow and sessions), and
:func:`serve_demo`, which serves it with its review widget on another site.

Sessions and CSRF tokens are HMACs under a secret drawn per shop, so the shop keeps
no per-visitor state: a session cookie is ``{user}.{nonce}.{mac}``, and the login
form's CSRF token is the MAC of the ``csrf_session`` cookie set with the form.
"""

from __future__ import annotations

import functools
import hashlib
import hmac
import secrets
from urllib.parse import parse_qs

import attrs
import trio

from ..httpserver import HttpRequest, Response, serve_http
from . import _heavy as heavy
from . import _pages as pages
from ._data import (
    CATEGORIES,
    DEFAULT_PRODUCTS,
    PHOTO_REVIEWS_PER_PAGE,
    PIXEL_PNG,
    QUESTIONS_PER_PAGE,
    REVIEWS_PER_PAGE,
    USERS,
    category_products,
    photo_reviews,
    product,
    questions,
    reviews,
    sizes,
    wishlist,
)
from ._product import product_page
from ._responses import api_page, html, json_response, not_found, page_number, redirect
from ._widget import ReviewWidget

COOKIE_FLAGS = "HttpOnly; Path=/"
CACHEABLE = (("Cache-Control", "max-age=3600"),)  # static assets, as a storefront's CDN serves them


class DemoShop:
    """HttpRequest handler of the demo shop with ``products`` products (ids 1..products).

    ``widget_base`` is the address of the review widget the product pages embed (a
    :class:`ReviewWidget` served on another site, see :func:`serve_demo`); without one,
    they embed it from the shop's own origin (the shop answers the widget's paths
    either way).  ``logins`` counts successful
    logins (POST /login with the right token and password).  The URL map is in the
    package docstring (``crawler.demo``)."""

    def __init__(self, products: int = DEFAULT_PRODUCTS, *, widget_base: str | None = None):
        self.products = products
        self.widget_base = widget_base
        self.logins = 0
        self._secret = secrets.token_bytes(16)
        self._widget = ReviewWidget(products)

    def _id(self, text: str) -> int | None:
        return int(text) if text.isdigit() and 1 <= int(text) <= self.products else None

    async def __call__(self, request: HttpRequest) -> Response:
        path = request.path
        parts = path.strip("/").split("/")
        if request.method not in ("GET", "HEAD") and path != "/login":
            return Response(status=405, body=b"<h1>Method not allowed</h1>", headers=(("Allow", "GET, HEAD"),))
        if path == "/":
            return html(pages.home_page(self.user(request)))
        if path == "/about":
            return html(pages.ABOUT_PAGE)
        if path == "/login":
            return self._login(request)
        if path == "/wishlist":
            user = self.user(request)
            if user is None:
                return redirect("/login")
            return html(pages.wishlist_page(user, wishlist(self.products)))
        if parts[0] == "category" and len(parts) == 2 and parts[1] in CATEGORIES:
            page = page_number(request)
            listing = page and pages.category_page(parts[1], page, category_products(parts[1], self.products))
            return html(listing) if listing else not_found()
        if parts[0] == "product" and len(parts) == 3 and parts[2] == "questions" and self._id(parts[1]):
            return html(pages.questions_page(int(parts[1])))
        i = self._id(parts[-1])
        if parts[0] == "product" and len(parts) == 2 and i:
            return html(product_page(i, self.user(request), self.widget_base or ""))
        if parts[:2] == ["api", "goods"] and len(parts) == 3 and i:
            return json_response(product(i))
        if parts[:2] == ["api", "reviews"] and len(parts) == 3 and i:
            return api_page(request, "reviews", reviews(i), REVIEWS_PER_PAGE)
        if parts[:2] == ["api", "questions"] and len(parts) == 3 and i:
            return api_page(request, "questions", questions(i), QUESTIONS_PER_PAGE)
        if parts[:2] == ["api", "photo-reviews"] and len(parts) == 3 and i:
            return api_page(request, "photo_reviews", photo_reviews(i), PHOTO_REVIEWS_PER_PAGE)
        if parts[:2] == ["api", "stock"] and len(parts) == 3 and i:
            size = request.query.get("size", [""])[0]
            stock = sizes(i).get(size)
            return not_found() if stock is None else json_response({"product": i, "size": size, "stock": stock})
        if self._widget.serves(path):
            return await self._widget(request)
        if parts[:2] == ["heavy", "product"] and len(parts) == 3 and i:
            return html(heavy.heavy_product_page(i))
        if path == "/static/heavy-app.js":
            return Response(body=heavy.heavy_app_js(), content_type="text/javascript", headers=CACHEABLE)
        if path == "/static/heavy.css":
            return Response(body=heavy.heavy_css(), content_type="text/css", headers=CACHEABLE)
        if parts[:2] == ["img", "heavy"]:
            return Response(body=heavy.heavy_png(), content_type="image/png", headers=CACHEABLE)
        if parts[0] == "img":
            return Response(body=PIXEL_PNG, content_type="image/png")
        return not_found()

    # -- sessions -------------------------------------------------------------------------

    def user(self, request: HttpRequest) -> str | None:
        """The user whose valid session cookie ``request`` carries, else None."""
        user, _, rest = request.cookies.get("session", "").partition(".")
        nonce, _, mac = rest.partition(".")
        if user in USERS and nonce and hmac.compare_digest(mac, self._mac(f"session:{user}.{nonce}")):
            return user
        return None

    def _mac(self, message: str) -> str:
        return hmac.new(self._secret, message.encode(), hashlib.sha256).hexdigest()[:32]

    def _login(self, request: HttpRequest) -> Response:
        """GET: the form, its token bound to a new ``csrf_session`` cookie. POST: 403 on a
        missing or wrong token; the form with an error on a wrong password; else a
        session cookie and 303 to the wishlist."""
        pre_session = request.cookies.get("csrf_session", "")
        if request.method in ("GET", "HEAD"):
            if len(pre_session) != 32:  # keep a visitor's pre-session, so an older form stays valid
                pre_session = secrets.token_hex(16)
            cookie = ("Set-Cookie", f"csrf_session={pre_session}; {COOKIE_FLAGS}")
            return html(pages.login_page(self._mac(f"csrf:{pre_session}")), headers=(cookie,))
        if request.method != "POST":
            return Response(status=405, body=b"<h1>Method not allowed</h1>", headers=(("Allow", "GET, HEAD, POST"),))
        form = {k: v[0] for k, v in parse_qs(request.body.decode("utf-8", "replace")).items()}
        token = form.get("csrf", "")
        if not pre_session or not hmac.compare_digest(token, self._mac(f"csrf:{pre_session}")):
            return Response(status=403, body=b"<h1>Forbidden: bad or missing CSRF token</h1>")
        user, password = form.get("username", ""), form.get("password", "")
        if USERS.get(user) != password:
            return html(pages.login_page(token, error="Wrong username or password."))
        self.logins += 1
        nonce = secrets.token_hex(8)
        session = f"{user}.{nonce}.{self._mac(f'session:{user}.{nonce}')}"
        return redirect("/wishlist", headers=(("Set-Cookie", f"session={session}; {COOKIE_FLAGS}"),))


@attrs.frozen
class DemoSite:
    """What :func:`serve_demo` serves: the shop, its address, and its widget's."""

    shop: DemoShop
    url: str  # the shop's base URL, http://127.0.0.1:PORT
    widget_url: str  # the review widget's, http://localhost:PORT2 (another site)


async def serve_demo(
    products: int = DEFAULT_PRODUCTS,
    *,
    port: int = 0,
    task_status: trio.TaskStatus[DemoSite] = trio.TASK_STATUS_IGNORED,
) -> None:
    """Serve a :class:`DemoShop` of ``products`` products on 127.0.0.1:``port`` (0: a
    free port) and its :class:`ReviewWidget` on a free port of 127.0.0.1, until cancelled.

    The widget is addressed as ``http://localhost:PORT2``: localhost and 127.0.0.1 are
    different sites, so Chromium runs the product pages' widget out of process, as it
    runs a real shop's third-party widget.  Both servers listen on 127.0.0.1 only.
    Reports a :class:`DemoSite` through ``task_status`` once both listen; cancelled,
    both stop (in-flight responses are dropped)."""
    async with trio.open_nursery() as nursery:
        widget_port = await nursery.start(functools.partial(serve_http, ReviewWidget(products)))
        widget_url = f"http://localhost:{widget_port}"
        shop = DemoShop(products, widget_base=widget_url)
        shop_port = await nursery.start(functools.partial(serve_http, shop, port=port))
        task_status.started(DemoSite(shop=shop, url=f"http://127.0.0.1:{shop_port}", widget_url=widget_url))
