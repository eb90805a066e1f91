"""Routes of the demo storefront crawl (config/demo.toml), on the crawling API.

home ──listing──► category pages ──product──► product pages ──questions──► Q&A pages
  └──wishlist──► the demo user's wishlist        (and "page": about, noise, visited only)

Every context logs in first (``log_in``), so product pages show the user and the
wishlist is reachable.  Items, by ``kind``: ``product`` (id, name, brand, price, user),
``review`` (id, product, author, stars, text), ``question`` (id, product, text) and
``wish`` (id, name, user); ``crawler.demo.compare`` checks them against the shop.
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
    """A product page: the product once price and stock are in, then every review (the
    first three are in the page, the rest come one click of "more reviews" at a time)."""
    await page.wait_for("body[data-ready]")
    i = product_id(page.url)
    fields = await page.extract({"name": "h1", "brand": "p.brand", "price": "#price", "user": ".account .user"})
    await page.push(dict(fields, kind="product", id=i))
    while await page.click_if_present("button.more-reviews"):
        await page.wait_for_idle()
    reviews = await page.extract_all(
        ".review",
        {
            "id": {"js": "el.dataset.id"},
            "author": ".author",
            "stars": {"css": ".stars", "attr": "data-n"},
            "text": ".body",
        },
    )
    expected = await page.evaluate("Number(document.getElementById('reviews').dataset.count)")
    if len(reviews) != expected:
        raise crawler.PageFailure("reviews", f"{len(reviews)} of {expected} reviews loaded", retryable=True)
    for review in reviews:
        await page.push(dict(review, kind="review", product=i, stars=int(review["stars"])))
    await page.enqueue(selector="a.questions", label="questions")


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
