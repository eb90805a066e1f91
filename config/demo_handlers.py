"""Routes of the demo storefront crawl (config/demo.toml), on the crawling API.

home ──listing──► category pages ──product──► product pages ──questions──► Q&A pages
  └──wishlist──► the demo user's wishlist        (and "page": about, noise, visited only)

Every context logs in first (``log_in``), so product pages show the user and the
wishlist is reachable.  Items, by ``kind``: ``product`` (id, name, brand, price, user),
``review`` (id, product, author, stars, text), ``size`` (id ``{product}-{size}``,
product, size, stock), ``image`` (id: the path of a gallery image that loaded, product,
src), ``rating`` (id, product, score, title, reviewer: from the review widget, another
site's iframe), ``photo_review`` (id, product, author, text, photo), ``question`` (id,
product, text) and ``wish`` (id, name, user); ``crawler.demo.compare`` checks them
against the shop.
"""

from __future__ import annotations

from urllib.parse import urlsplit

import crawler

router = crawler.Router()

USERNAME, PASSWORD = "demo", "demo"


@router.route()
async def home(page: crawler.Page) -> None:
    """The home page: every category listing, the wishlist, and the other links (about,
    and the noise that enqueue must drop or normalise: mailto:, javascript:, /#top...)."""
    await page.wait_for("footer.noise")  # the end of the document: every link is parsed
    await page.enqueue(selector="nav.categories a", label="listing")
    await page.enqueue(selector="a.wishlist", label="wishlist")
    await page.enqueue(selector="footer.noise a, a.about", label="page")


@router.route("page")
async def static_page(page: crawler.Page) -> None:
    """A page visited for the crawl's sake (about): nothing to extract or follow."""


@router.route("listing")
async def listing(page: crawler.Page) -> None:
    """A category page: its products, the next page, and the footer link every page repeats."""
    await page.wait_for("a.footer")  # after the products and a.next
    await page.enqueue(selector=".product a", label="product")
    await page.enqueue(selector="a.next", label="listing")
    await page.enqueue(selector="a.footer", label="page")


@router.route("product")
async def product(page: crawler.Page) -> None:
    """A product page: the product once price and stock are in, every review (the first
    three are in the page, the rest come one click of "more reviews" at a time), the
    stock of each size, then what lies below the fold: the gallery, the review widget
    and the photo reviews."""
    await page.wait_for("body[data-ready]")
    i = product_id(page.url)
    fields = await page.extract({"name": "h1", "brand": "p.brand", "price": "#price", "user": ".account .user"})
    await page.push(dict(fields, kind="product", id=i))
    await reviews(page, i)
    await size_stock(page, i)
    await page.scroll_to_end()  # a viewport at a time: the gallery, the widget and the photo reviews load as seen
    await gallery(page, i)
    await widget_ratings(page, i)
    await photo_reviews(page, i)
    await page.enqueue(selector="a.questions", label="questions")


async def reviews(page: crawler.Page, i: int) -> None:
    """Every review: "more reviews" until it goes, then the count the section states."""
    while await page.click_if_present("button.more-reviews"):
        await page.wait_for_idle()
    found = await page.extract_all(
        ".review",
        {
            "id": {"js": "el.dataset.id"},
            "author": ".author",
            "stars": {"css": ".stars", "attr": "data-n"},
            "text": ".body",
        },
    )
    expected = await page.evaluate("Number(document.getElementById('reviews').dataset.count)")
    if len(found) != expected:
        raise crawler.PageFailure("reviews", f"{len(found)} of {expected} reviews loaded", retryable=True)
    for review in found:
        await page.push(dict(review, kind="review", product=i, stars=int(review["stars"])))


async def size_stock(page: crawler.Page, i: int) -> None:
    """Choose each size in turn: the page then asks its API for that size's stock."""
    for option in await page.extract_all("#size option", {"value": {"attr": "value"}}):
        size = option["value"]
        if not size:
            continue  # "Choose a size"
        await page.select_option("#size", size)
        shown = await page.extract(
            {"stock": {"css": "#size-stock", "attr": "data-stock"}}, wait_for=f'#size-stock[data-size="{size}"]'
        )
        await page.push({"kind": "size", "id": f"{i}-{size}", "product": i, "size": size, "stock": int(shown["stock"])})


# The gallery's images that have loaded (complete, with pixels: a lazy image not yet
# fetched has none), once all have or after 2 s, whichever comes first.
LOADED_IMAGES_JS = """new Promise((resolve) => {
  const images = [...document.querySelectorAll("#gallery img")];
  const loaded = () => images.filter((img) => img.complete && img.naturalWidth > 0).map((img) => img.currentSrc);
  const deadline = performance.now() + 2000;
  (function check() {
    if (loaded().length === images.length || performance.now() > deadline) resolve(loaded());
    else setTimeout(check, 50);
  })();
})"""


async def gallery(page: crawler.Page, i: int) -> None:
    """The gallery's images, once each has loaded (they load only near the viewport)."""
    expected = await page.evaluate("Number(document.getElementById('gallery').dataset.count)")
    for _ in range(3):
        await page.scroll_into_view("#gallery")
        images = await page.evaluate(LOADED_IMAGES_JS, await_promise=True)
        if len(images) == expected:
            break
    else:
        raise crawler.PageFailure("gallery", f"{len(images)} of {expected} images loaded", retryable=True)
    for src in images:
        await page.push({"kind": "image", "id": urlsplit(src).path, "product": i, "src": src})


async def widget_ratings(page: crawler.Page, i: int) -> None:
    """The ratings of the review widget: an iframe from another site (an out-of-process
    frame), put in the page once it comes into view, with a "more ratings" button."""
    await page.scroll_into_view("#widget")
    frame = await page.frame("#widget iframe")
    await frame.wait_for("body[data-ready]")
    expected = await frame.evaluate("Number(document.body.dataset.count)")
    for _ in range(expected):  # at most a click per rating: a click that loads nothing cannot loop forever
        if not await frame.click_if_present("button.more-ratings"):
            break
        await frame.wait_for("body:not([data-loading])")
    ratings = await frame.extract_all(
        ".rating",
        {
            "id": {"attr": "data-id"},
            "score": {"css": ".score", "attr": "data-n"},
            "title": ".title",
            "reviewer": ".reviewer",
        },
    )
    if len(ratings) != expected:
        raise crawler.PageFailure("ratings", f"{len(ratings)} of {expected} ratings loaded", retryable=True)
    for rating in ratings:
        await page.push(dict(rating, kind="rating", product=i, score=int(rating["score"])))


async def photo_reviews(page: crawler.Page, i: int) -> None:
    """The photo reviews: their list loads a page each time its end comes into view, and
    says ``data-done`` after the last (scroll_to_end has been through it)."""
    for _ in range(5):  # as for questions: the list may grow after scrolling stopped
        if await page.evaluate("document.getElementById('photo-reviews').dataset.done === '1'"):
            break
        await page.scroll_to_end()
    else:
        raise crawler.PageFailure("photo_reviews", "the list never said it was complete", retryable=True)
    found = await page.extract_all(
        ".photo-review",
        {"id": {"attr": "data-id"}, "author": ".author", "text": ".body", "photo": {"css": "img.photo", "attr": "src"}},
    )
    expected = await page.evaluate("Number(document.getElementById('photo-reviews').dataset.count)")
    if len(found) != expected:
        raise crawler.PageFailure("photo_reviews", f"{len(found)} of {expected} photo reviews loaded", retryable=True)
    for review in found:
        await page.push(dict(review, kind="photo_review", product=i))


@router.route("questions")
async def questions(page: crawler.Page) -> None:
    """A product's questions: scroll until the list says it is complete, then every question."""
    await page.wait_for("#questions")
    for _ in range(5):  # scrolling can stop growing the page before its script is listening
        await page.scroll_to_end()
        if await page.evaluate("document.body.dataset.done === '1'"):
            break
    else:
        raise crawler.PageFailure("questions", "the list never said it was complete", retryable=True)
    i = product_id(page.url)
    for question in await page.extract_all(".question", {"id": {"js": "el.dataset.id"}, "text": ".text"}):
        await page.push(dict(question, kind="question", product=i))


@router.route("wishlist")
async def wishlist(page: crawler.Page) -> None:
    """The logged-in user's wishlist (without a session the shop redirects to /login)."""
    await page.wait_for(".account")  # after the list, on the wishlist page and the login page alike
    user = (await page.extract({"user": ".account .user"}))["user"]
    if user is None:
        raise crawler.PageFailure("session", "not logged in: the wishlist sent us to /login", retryable=True)
    for wish in await page.extract_all(".wish", {"href": {"css": "a", "attr": "href"}, "name": "a"}):
        await page.push({"kind": "wish", "id": product_id(wish["href"]), "name": wish["name"], "user": user})
    await page.enqueue(selector=".wish a", label="product")


@router.session
async def log_in(page: crawler.Page) -> None:
    """Log in as the demo user in a new browser context: the form carries a CSRF token
    bound to a cookie, so it has to be filled in the browser, not posted from here."""
    await page.goto(f"{origin(page.url)}/login")
    await page.fill("#username", USERNAME)
    await page.fill("#password", PASSWORD)
    await page.click("button[type=submit]")
    await page.wait_for(".account .user, p.error")  # the wishlist a login redirects to, or the form again
    user = (await page.extract({"user": ".account .user"}))["user"]
    if user != USERNAME:
        error = (await page.extract({"error": "p.error"}))["error"]
        raise ValueError(f"login as {USERNAME!r} failed: {error or 'no wishlist page'}")


def product_id(url: str) -> int:
    """The ``i`` of ``.../product/{i}`` or ``.../product/{i}/questions``."""
    parts = urlsplit(url).path.strip("/").split("/")
    if len(parts) < 2 or parts[0] != "product" or not parts[1].isdigit():
        raise ValueError(f"not a product URL: {url!r}")
    return int(parts[1])


def origin(url: str) -> str:
    """``scheme://host:port`` of ``url``: the shop's address, whatever port it was given."""
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.netloc:
        raise ValueError(f"cannot tell the shop's address from {url!r}")
    return f"{parts.scheme}://{parts.netloc}"
