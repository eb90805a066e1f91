"""The shop the benchmarks serve: the demo shop, a paint beacon on its pages, and the
render profile's pages.

:class:`BenchShop` wraps :class:`crawler.demo.DemoShop` (which it leaves as it is):

- every HTML page it serves gets :data:`BEACON_SCRIPT` at the top of its ``<head>``:
  a ``requestAnimationFrame`` callback that requests ``/beacon/paint?path=...``.  A
  page's rAF callbacks run only when the page renders (a hidden tab runs none), so a
  beacon hit says the page was painted.  The request is a ``fetch`` (not an image, so
  that blocking images does not hide it), with ``keepalive`` (it survives the page
  being navigated away) and its empty body read (so that the browser reports it
  finished: a crawler waiting for the network to go quiet is not kept waiting);
- ``/render/product/{i}`` is the render profile's page (:func:`render_page`): the
  light profile's product, then :data:`RENDER_IMAGES` lazy images
  (``loading="lazy"``) spread down a tall page, then a review list that an
  IntersectionObserver fills from ``/render/api/reviews/{i}?page=N``,
  :data:`REVIEWS_PER_PAGE` at a time, :data:`RENDER_REVIEWS` in all, as its end
  comes into view.  Both need the page to render *and* to be scrolled through.

What a contender's run did is counted in :attr:`BenchShop.run` (a fresh
:class:`RunCounts` at each :meth:`BenchShop.begin_run`: the benchmark runs one
contender at a time): the paths whose beacon came, and the render images requested.
"""

from __future__ import annotations

import json
import re
from html import escape

import attrs

from crawler.demo import PIXEL_PNG, DemoShop, product
from crawler.httpserver import HttpRequest, Response

BEACON_PATH = "/beacon/paint"
BEACON_SCRIPT = (
    "<script>requestAnimationFrame(() => { fetch("
    f'"{BEACON_PATH}?path=" + encodeURIComponent(location.pathname), {{keepalive: true, cache: "no-store"}})'
    ".then((r) => r.text()).catch(() => {}); });</script>"
)
RENDER_IMAGES = 10  # lazy images on a render page, one per IMAGE_BLOCK_PX of page
IMAGE_BLOCK_PX = 900  # page height per image: the gallery is 9,000 px tall
RENDER_REVIEWS = 30  # reviews behind the IntersectionObserver, per product
REVIEWS_PER_PAGE = 10  # per /render/api/reviews page
REVIEW_PX = 100  # each review's height: a page of reviews pushes the list's end 1,000 px down
REVIEWS_DELAY_S = 0.05  # the reviews API answers this late, as a storefront's API does

_HEAD = re.compile(rb"<head[^>]*>", re.IGNORECASE)


@attrs.define
class RunCounts:
    """What the shop saw of one contender's run."""

    painted: set[str] = attrs.Factory(set)  # paths whose paint beacon came
    beacons: int = 0  # beacon requests, repeats included
    images: set[tuple[int, int]] = attrs.Factory(set)  # (product, image) of the render images requested


class BenchShop:
    """The demo shop with the paint beacon and the render pages (see the module docstring)."""

    def __init__(self, products: int):
        self.products = products
        self.demo = DemoShop(products)
        self.run = RunCounts()

    def begin_run(self) -> RunCounts:
        """Count from zero: the next contender's run starts."""
        self.run = RunCounts()
        return self.run

    async def __call__(self, request: HttpRequest) -> Response:
        parts = request.path.strip("/").split("/")
        if request.path == BEACON_PATH:
            self.run.beacons += 1
            self.run.painted.add(request.query.get("path", [""])[0])
            return Response(status=204, content_type="text/plain")
        if parts[0] == "render":
            return await self._render(request, parts[1:])
        response = await self.demo(request)
        if response.status == 200 and response.content_type.startswith("text/html"):
            response = attrs.evolve(response, body=with_beacon(response.body))
        return response

    async def _render(self, request: HttpRequest, parts: list[str]) -> Response:
        """``/render/product/{i}``, ``/render/api/reviews/{i}?page=N``, ``/render/img/{i}/{k}.png``."""
        ids = [int(x) for x in re.findall(r"\d+", "/".join(parts[1:]))]
        if not ids or not 1 <= ids[0] <= self.products:
            return _not_found()
        i = ids[0]
        if parts == ["product", str(i)]:
            return Response(body=with_beacon(render_page(i).encode()))
        if parts == ["api", "reviews", str(i)]:
            page = request.query.get("page", ["1"])[0]
            n = int(page) if page.isdigit() else 0
            pages = -(-RENDER_REVIEWS // REVIEWS_PER_PAGE)
            if not 1 <= n <= pages:
                return _not_found()
            shown = render_reviews(i)[(n - 1) * REVIEWS_PER_PAGE : n * REVIEWS_PER_PAGE]
            body = json.dumps({"reviews": shown, "page": n, "pages": pages}).encode()
            return Response(body=body, content_type="application/json", delay_s=REVIEWS_DELAY_S)
        if len(ids) == 2 and parts == ["img", str(i), f"{ids[1]}.png"] and 1 <= ids[1] <= RENDER_IMAGES:
            self.run.images.add((i, ids[1]))
            return Response(body=PIXEL_PNG, content_type="image/png")
        return _not_found()


def _not_found() -> Response:
    return Response(status=404, body=b"<h1>Not found</h1>")


def with_beacon(html: bytes) -> bytes:
    """``html`` with :data:`BEACON_SCRIPT` first in its ``<head>`` (else first of all)."""
    m = _HEAD.search(html)
    at = m.end() if m else 0
    return html[:at] + BEACON_SCRIPT.encode() + html[at:]


def render_reviews(i: int) -> list[dict[str, str]]:
    """The reviews of product ``i`` on its render page: ids ``"{i}-{k}"``."""
    return [{"id": f"{i}-{k}", "text": f"Review {k} of product {i}."} for k in range(1, RENDER_REVIEWS + 1)]


RENDER_STYLE = f"""<style>
.block {{ height: {IMAGE_BLOCK_PX}px; }}
.block img {{ display: block; width: 400px; height: 300px; }}
.review {{ height: {REVIEW_PX}px; margin: 0; }}
#reviews-end {{ height: 1px; }}
</style>"""

# The product as on /product/{i}: price and stock from /api/goods, then body[data-ready].
# Then the reviews: when #reviews-end comes into view, the next page is fetched and
# appended; observing the end again after each page re-checks it (still in view: the
# next page at once); after the last page the end goes and body[data-reviews-done] is set.
RENDER_SCRIPT = """<script>
fetch("/api/goods/ID")
  .then((r) => r.json())
  .then((g) => {
    document.getElementById("price").textContent = "₩" + g.price.toLocaleString("en-US");
    document.getElementById("stock").textContent = String(g.stock);
    document.body.dataset.ready = "1";
  });
(() => {
  const list = document.querySelector("#reviews .review-list");
  const end = document.getElementById("reviews-end");
  let next = 1, loading = false;
  const io = new IntersectionObserver((entries) => {
    if (loading || !entries.some((e) => e.isIntersecting)) return;
    loading = true;
    fetch(`/render/api/reviews/ID?page=${next}`)
      .then((r) => r.json())
      .then((data) => {
        for (const r of data.reviews) {
          const li = Object.assign(document.createElement("li"), {className: "review", textContent: r.text});
          li.dataset.id = r.id;
          list.append(li);
        }
        next = data.page + 1;
        io.unobserve(end);
        if (data.page >= data.pages) { end.remove(); document.body.dataset.reviewsDone = "1"; }
        else io.observe(end);
      })
      .finally(() => { loading = false; });
  });
  io.observe(end);
})();
</script>"""


def render_page(i: int) -> str:
    """The render profile's page of product ``i`` (see the module docstring)."""
    p = product(i)
    gallery = "".join(
        f'<div class="block"><img loading="lazy" src="/render/img/{i}/{k}.png" width="400" height="300" alt=""></div>'
        for k in range(1, RENDER_IMAGES + 1)
    )
    return (
        f'<!doctype html>\n<html lang="ko"><head><meta charset="utf-8"><title>{escape(p["name"])}</title>'
        f"{RENDER_STYLE}</head>\n<body>\n"
        f'<main><h1>{escape(p["name"])}</h1>\n<p class="brand">{escape(p["brand"])}</p>\n'
        f'<img class="main" src="{p["image"]}" alt="">\n'
        '<p>Price: <span id="price">…</span></p>\n<p>Stock: <span id="stock">…</span></p></main>\n'
        f'<section id="gallery">{gallery}</section>\n'
        '<section id="reviews"><h2>Reviews</h2><ol class="review-list"></ol><div id="reviews-end"></div></section>\n'
        f"{RENDER_SCRIPT.replace('ID', str(i))}\n</body></html>\n"
    )
