"""The review widget: another origin's ratings, in an iframe on every product page.

Real shops embed reviews from a vendor's own domain.  :class:`ReviewWidget` is that
vendor: ``/widget/{i}`` is the page the product page's iframe shows, and
``/api/ratings/{i}?page=N`` its own JSON API (``{"ratings": [...3], "page": N,
"pages": P}``, 404 past P), called from the widget's script on its own origin.

Served on a second port of 127.0.0.1 and addressed as ``http://localhost:PORT``, it is
another *site* than the shop at ``http://127.0.0.1:PORT``: Chromium runs it in an
out-of-process frame, whose document the product page cannot reach.

The widget page renders the first page of ratings, then ``button.more-ratings`` while
pages remain; ``body[data-ready]`` once the first page is in, ``body[data-loading]``
while a page is being fetched, ``body[data-count]`` the product's number of ratings.
"""

from __future__ import annotations

from ..httpserver import HttpRequest, Response
from ._data import RATINGS_PER_PAGE, ratings
from ._responses import api_page, html, not_found

WIDGET_SCRIPT = """<script>
(() => {
  const body = document.body, list = document.querySelector("ol.ratings");
  const el = (tag, props) => Object.assign(document.createElement(tag), props);
  let next = 1, button = null;
  function load() {
    if (body.dataset.loading) return;
    body.dataset.loading = "1";
    fetch(`/api/ratings/${body.dataset.product}?page=${next}`)
      .then((r) => r.json())
      .then((data) => {
        for (const r of data.ratings) {
          const li = el("li", {className: "rating"});
          li.dataset.id = r.id;
          const score = el("span", {className: "score", textContent: "★".repeat(r.score) + "☆".repeat(5 - r.score)});
          score.dataset.n = String(r.score);
          li.append(score, el("strong", {className: "title", textContent: r.title}),
                    el("span", {className: "reviewer", textContent: r.reviewer}));
          list.append(li);
        }
        next = data.page + 1;
        if (data.page < data.pages && !button) {
          button = el("button", {className: "more-ratings", textContent: "more ratings"});
          button.addEventListener("click", load);
          body.append(button);
        } else if (data.page >= data.pages && button) {
          button.remove();
        }
        body.dataset.ready = "1";
      })
      .finally(() => { delete body.dataset.loading; });
  }
  load();
})();
</script>
"""


def widget_page(i: int) -> str:
    count = len(ratings(i))
    return (
        '<!doctype html>\n<html lang="en"><head><meta charset="utf-8"><title>Ratings</title>'
        "<style>body { font: 14px sans-serif; margin: 8px; } .rating { margin: 4px 0; }</style></head>\n"
        f'<body data-product="{i}" data-count="{count}">\n<h3>ShopTalk ratings ({count})</h3>\n'
        f'<ol class="ratings"></ol>\n{WIDGET_SCRIPT}</body></html>\n'
    )


class ReviewWidget:
    """HttpRequest handler of the review widget for products 1..``products``."""

    def __init__(self, products: int):
        self.products = products

    def serves(self, path: str) -> bool:
        """Whether ``path`` is one of the widget's (the shop also answers them when it
        has no widget server of its own)."""
        return path.startswith(("/widget/", "/api/ratings/"))

    async def __call__(self, request: HttpRequest) -> Response:
        if request.method not in ("GET", "HEAD"):
            return Response(status=405, body=b"<h1>Method not allowed</h1>", headers=(("Allow", "GET, HEAD"),))
        parts = request.path.strip("/").split("/")
        i = int(parts[-1]) if parts[-1].isdigit() and 1 <= int(parts[-1]) <= self.products else None
        if i is None:
            return not_found()
        if parts == ["widget", str(i)]:
            return html(widget_page(i))
        if parts == ["api", "ratings", str(i)]:
            return api_page(request, "ratings", ratings(i), RATINGS_PER_PAGE)
        return not_found()
