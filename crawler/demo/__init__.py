"""The bundled demo shop: a small storefront on 127.0.0.1, deterministic from ids.

Product pages render price and stock from a JSON API call made by page JavaScript,
like a real storefront; around them are listings, a size selector, reviews behind a
button, and below the fold (seen only by a page that is rendered and scrolled through)
lazy gallery images, a review widget from another site in an iframe, and photo reviews
that load as their list's end comes into view; questions behind infinite scrolling;
a login with CSRF and a session cookie.

==============================  ============================================================
``/``                           links to every category, ``/login``, ``/wishlist``, ``/about``,
                                and :data:`NOISE_LINKS` (mailto:, javascript:, other hosts...)
``/category/{slug}?page=N``     12 ``.product a`` per page, ``a.next`` but on the last page,
                                ``a.footer`` to ``/about`` on every page; no ``page``: page 1
``/product/{i}``                the product (``body[data-ready]`` once ``/api/goods`` is in),
                                ``select#size`` (a change shows the size's stock in
                                ``#size-stock[data-size][data-stock]``), ``.account``,
                                ``#reviews`` (page 1 rendered, then ``button.more-reviews``),
                                ``a.questions``; below 1800 px of ``.details``:
                                ``#gallery`` (``img[loading=lazy]`` and ``img[data-src]``),
                                ``#widget`` (its iframe, from the widget's site, inserted in
                                view) and ``#photo-reviews`` (``.photo-review``, a page each
                                time its end is in view; ``[data-done]`` after the last)
``/product/{i}/questions``      5 ``.question``, more on scrolling; then ``body[data-done]``
``/login``                      GET: the form (sets ``csrf_session``); POST: see ``DemoShop``
``/wishlist``                   the demo user's ``.wish`` links; 303 to ``/login`` without a session
``/about``                      a static page
``/api/goods/{i}``              ``product(i)``
``/api/reviews/{i}?page=N``     ``{"reviews": [...3], "page": N, "pages": P}``; 404 past P
``/api/questions/{i}?page=N``   ``{"questions": [...5], "page": N, "pages": P}``; 404 past P
``/api/photo-reviews/{i}?...``  ``{"photo_reviews": [...4], "page": N, "pages": P}``; 404 past P
``/api/stock/{i}?size=S``       ``{"product": i, "size": S, "stock": n}``; 404 for a size it lacks
``/heavy/product/{i}``           the product inside a page weighed like a real storefront's
                                (see ``crawler.demo._heavy``): 1.8 MB of HTML and script,
                                40 images, three API calls; ``body[data-ready]`` after them
``/img/...``                    a 1x1 PNG (``/img/heavy/...``: a 49 KB one)
==============================  ============================================================

The review widget (:class:`ReviewWidget`, ``crawler.demo._widget``) is another site:
``/widget/{i}`` (``.rating`` items, ``button.more-ratings`` while pages remain,
``body[data-ready]``) and ``/api/ratings/{i}?page=N`` (3 a page).  :func:`serve_demo`
serves it on a second port of 127.0.0.1, addressed as ``http://localhost:PORT``; a
``DemoShop`` without ``widget_base`` answers those paths itself, on its own origin.

The truth (``product``, ``reviews``, ``questions``, ``wishlist``, ``photo_reviews``,
``ratings``, ``gallery``, ``sizes``, ``truth``) is what those pages show; ``compare``
counts how much of it a crawl's items hold.

May import only the leaves (``crawler.httpserver`` serves it); no part of the crawler
imports it but the CLI's ``demo`` command, the tests and the benchmarks.
"""

from ._data import CATEGORIES as CATEGORIES
from ._data import CONFIG_BASE_URL as CONFIG_BASE_URL
from ._data import DEFAULT_PRODUCTS as DEFAULT_PRODUCTS
from ._data import ITEM_KINDS as ITEM_KINDS
from ._data import PIXEL_PNG as PIXEL_PNG
from ._data import USERS as USERS
from ._data import category_of as category_of
from ._data import category_products as category_products
from ._data import compare as compare
from ._data import expected_item as expected_item
from ._data import format_comparison as format_comparison
from ._data import format_price as format_price
from ._data import gallery as gallery
from ._data import photo_reviews as photo_reviews
from ._data import product as product
from ._data import questions as questions
from ._data import ratings as ratings
from ._data import reviews as reviews
from ._data import sizes as sizes
from ._data import truth as truth
from ._data import wishlist as wishlist
from ._pages import NOISE_LINKS as NOISE_LINKS
from ._product import PRODUCT_PAGE as PRODUCT_PAGE
from ._shop import DemoShop as DemoShop
from ._shop import DemoSite as DemoSite
from ._shop import serve_demo as serve_demo
from ._widget import ReviewWidget as ReviewWidget

__all__ = [
    "CATEGORIES",
    "CONFIG_BASE_URL",
    "DEFAULT_PRODUCTS",
    "ITEM_KINDS",
    "NOISE_LINKS",
    "PIXEL_PNG",
    "PRODUCT_PAGE",
    "USERS",
    "DemoShop",
    "DemoSite",
    "ReviewWidget",
    "category_of",
    "category_products",
    "compare",
    "expected_item",
    "format_comparison",
    "format_price",
    "gallery",
    "photo_reviews",
    "product",
    "questions",
    "ratings",
    "reviews",
    "serve_demo",
    "sizes",
    "truth",
    "wishlist",
]
