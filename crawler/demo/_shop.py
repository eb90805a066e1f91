"""The demo shop's request handler: routing, the login flow and sessions.

Sessions and CSRF tokens are HMACs under a secret drawn per shop, so the shop keeps
no per-visitor state: a session cookie is ``{user}.{nonce}.{mac}``, and the login
form's CSRF token is the MAC of the ``csrf_session`` cookie set with the form.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import secrets
from typing import Any
from urllib.parse import parse_qs

from ..httpserver import HttpRequest, Response
from . import _heavy as heavy
from . import _pages as pages
from ._data import (
    CATEGORIES,
    PIXEL_PNG,
    QUESTIONS_PER_PAGE,
    REVIEWS_PER_PAGE,
    USERS,
    category_products,
    page_of,
    product,
    questions,
    reviews,
    wishlist,
)
from ._data import pages as page_count

COOKIE_FLAGS = "HttpOnly; Path=/"
CACHEABLE = (("Cache-Control", "max-age=3600"),)  # static assets, as a storefront's CDN serves them


class DemoShop:
    """HttpRequest handler of the demo shop with ``products`` products (ids 1..products).

    ``logins`` counts successful logins (POST /login with the right token and password).
    The URL map is in the package docstring (``crawler.demo``)."""

    def __init__(self, products: int = 200):
        self.products = products
        self.logins = 0
        self._secret = secrets.token_bytes(16)

    def _id(self, text: str) -> int | None:
        return int(text) if text.isdigit() and 1 <= int(text) <= self.products else None

    async def __call__(self, request: HttpRequest) -> Response:
        path = request.path
        parts = path.strip("/").split("/")
        if request.method not in ("GET", "HEAD") and path != "/login":
            return Response(status=405, body=b"<h1>Method not allowed</h1>", headers=(("Allow", "GET, HEAD"),))
        if path == "/":
            return _html(pages.home_page(self.user(request)))
        if path == "/about":
            return _html(pages.ABOUT_PAGE)
        if path == "/login":
            return self._login(request)
        if path == "/wishlist":
            user = self.user(request)
            if user is None:
                return _redirect("/login")
            return _html(pages.wishlist_page(user, wishlist(self.products)))
        if parts[0] == "category" and len(parts) == 2 and parts[1] in CATEGORIES:
            page = _page_number(request)
            listing = page and pages.category_page(parts[1], page, category_products(parts[1], self.products))
            return _html(listing) if listing else _not_found()
        if parts[0] == "product" and len(parts) == 3 and parts[2] == "questions" and self._id(parts[1]):
            return _html(pages.questions_page(int(parts[1])))
        i = self._id(parts[-1])
        if parts[0] == "product" and len(parts) == 2 and i:
            return _html(pages.product_page(i, self.user(request)))
        if parts[:2] == ["api", "goods"] and len(parts) == 3 and i:
            return _json(product(i))
        if parts[:2] == ["api", "reviews"] and len(parts) == 3 and i:
            return _api_page(request, "reviews", reviews(i), REVIEWS_PER_PAGE)
        if parts[:2] == ["api", "questions"] and len(parts) == 3 and i:
            return _api_page(request, "questions", questions(i), QUESTIONS_PER_PAGE)
        if parts[:2] == ["heavy", "product"] and len(parts) == 3 and i:
            return _html(heavy.heavy_product_page(i))
        if path == "/static/heavy-app.js":
            return Response(body=heavy.heavy_app_js(), content_type="text/javascript", headers=CACHEABLE)
        if path == "/static/heavy.css":
            return Response(body=heavy.heavy_css(), content_type="text/css", headers=CACHEABLE)
        if parts[:2] == ["img", "heavy"]:
            return Response(body=heavy.heavy_png(), content_type="image/png", headers=CACHEABLE)
        if parts[0] == "img":
            return Response(body=PIXEL_PNG, content_type="image/png")
        return _not_found()

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
            return _html(pages.login_page(self._mac(f"csrf:{pre_session}")), headers=(cookie,))
        if request.method != "POST":
            return Response(status=405, body=b"<h1>Method not allowed</h1>", headers=(("Allow", "GET, HEAD, POST"),))
        form = {k: v[0] for k, v in parse_qs(request.body.decode("utf-8", "replace")).items()}
        token = form.get("csrf", "")
        if not pre_session or not hmac.compare_digest(token, self._mac(f"csrf:{pre_session}")):
            return Response(status=403, body=b"<h1>Forbidden: bad or missing CSRF token</h1>")
        user, password = form.get("username", ""), form.get("password", "")
        if USERS.get(user) != password:
            return _html(pages.login_page(token, error="Wrong username or password."))
        self.logins += 1
        nonce = secrets.token_hex(8)
        session = f"{user}.{nonce}.{self._mac(f'session:{user}.{nonce}')}"
        return _redirect("/wishlist", headers=(("Set-Cookie", f"session={session}; {COOKIE_FLAGS}"),))


def _html(text: str, headers: tuple[tuple[str, str], ...] = ()) -> Response:
    return Response(body=text.encode(), headers=headers)


def _json(value: Any) -> Response:
    return Response(body=json.dumps(value, ensure_ascii=False).encode(), content_type="application/json")


def _redirect(location: str, headers: tuple[tuple[str, str], ...] = ()) -> Response:
    return Response(status=303, headers=(("Location", location), *headers))


def _not_found() -> Response:
    return Response(status=404, body=pages.NOT_FOUND_PAGE.encode())


def _page_number(request: HttpRequest) -> int | None:
    """``?page=N`` (N >= 1; absent: 1), None if it is not a page number."""
    text = request.query.get("page", ["1"])[0]
    return int(text) if text.isdigit() and int(text) >= 1 else None


def _api_page(request: HttpRequest, key: str, entries: list[Any], per_page: int) -> Response:
    """``{key: [...], "page": n, "pages": total}``, 404 past the last page."""
    page = _page_number(request)
    shown = page_of(entries, page, per_page) if page else None
    if shown is None:
        return _not_found()
    return _json({key: shown, "page": page, "pages": page_count(len(entries), per_page)})
