"""The product page, ``/product/{i}``: its template, its parts and their scripts.

Above the fold, what a flat crawl reads (:data:`PRODUCT_PAGE`: name, brand, price and
stock from ``/api/goods``), the size selector (a size's stock comes from
``/api/stock/{i}?size=``), the account bar, the reviews behind "more reviews" and the
questions link.  Below it, behind a tall block of details, what only a page that is
rendered *and* scrolled through shows, as on real shops:

- ``#gallery``: images with ``loading="lazy"``, and images whose ``data-src`` an
  IntersectionObserver copies to ``src`` when they come near the viewport;
- ``#widget``: a review widget from another origin (``widget_base``), its iframe
  inserted when the section comes near the viewport;
- ``#photo-reviews``: a list that fetches its next ``/api/photo-reviews`` page
  whenever its end comes into view, and says ``data-done`` after the last.

A page that is only loaded (as the benchmarks' light profile loads it) requests none of
them: a size's stock, the gallery, the widget and the photo reviews cost nothing there.
"""

from __future__ import annotations

from html import escape
from typing import Any

from ._data import REVIEWS_PER_PAGE, gallery, photo_reviews, product, reviews, sizes
from ._pages import account

PRODUCT_PAGE = """<!doctype html>
<html lang="ko"><head><meta charset="utf-8"><title>{title}</title></head>
<body>
<nav><a href="/">Demo Shop</a></nav>
<main>
  <h1>{name}</h1>
  <p class="brand">{brand}</p>
  <img class="main" src="{image}" alt="">
  <p>Price: <span id="price">…</span></p>
  <p>Stock: <span id="stock">…</span></p>
</main>
<script>
fetch("/api/goods/{id}")
  .then((r) => r.json())
  .then((g) => {{
    document.getElementById("price").textContent = "₩" + g.price.toLocaleString("en-US");
    document.getElementById("stock").textContent = String(g.stock);
    document.body.dataset.ready = "1";
  }});
</script>
</body></html>
"""

# Below the fold means below this much of details: more than a viewport (600 to 1080 px
# tall) and than Chromium's distance for starting lazy images early (1250 px on a fast
# connection), so a page nobody scrolls loads no gallery image, widget or photo review.
DETAILS_PX = 1800
PRODUCT_STYLE = f"""<style>
.details {{ min-height: {DETAILS_PX}px; }}
#gallery img {{ display: inline-block; width: 160px; height: 160px; margin: 4px; background: #eee; }}
#widget iframe {{ display: block; border: 1px solid #ddd; }}
.photo-review {{ min-height: 160px; border-bottom: 1px solid #ddd; }}
.sentinel {{ height: 1px; }}
</style>"""

# Product page, after the old markup: "more reviews" appends the next /api/reviews page,
# built like the server-rendered reviews, and goes away after the last page.
REVIEWS_SCRIPT = """<script>
(() => {
  const section = document.getElementById("reviews");
  const button = section.querySelector("button.more-reviews");
  if (!button) return;
  const list = section.querySelector(".review-list");
  let next = 2, loading = false;
  const span = (cls, text) => Object.assign(document.createElement("span"), {className: cls, textContent: text});
  button.addEventListener("click", () => {
    if (loading) return;
    loading = true;
    fetch(`/api/reviews/${section.dataset.product}?page=${next}`)
      .then((r) => r.json())
      .then((data) => {
        for (const r of data.reviews) {
          const div = Object.assign(document.createElement("div"), {className: "review"});
          div.dataset.id = r.id;
          const stars = span("stars", "★".repeat(r.stars) + "☆".repeat(5 - r.stars));
          stars.dataset.n = String(r.stars);
          div.append(Object.assign(document.createElement("p"), {className: "body", textContent: r.text}),
                     span("author", r.author), stars);
          list.append(div);
        }
        next = data.page + 1;
        if (data.page >= data.pages) button.remove();
      })
      .finally(() => { loading = false; });
  });
})();
</script>
"""

# The size selector: a change asks /api/stock for the chosen size; #size-stock then shows
# it, with data-size and data-stock.  An answer for a size no longer chosen is dropped.
SIZE_SCRIPT = """<script>
(() => {
  const select = document.getElementById("size");
  const out = document.getElementById("size-stock");
  let asked = 0;
  select.addEventListener("change", () => {
    const size = select.value, ticket = ++asked;
    delete out.dataset.size;
    delete out.dataset.stock;
    out.textContent = size ? "…" : "";
    if (!size) return;
    fetch(`/api/stock/${select.dataset.product}?size=${encodeURIComponent(size)}`)
      .then((r) => r.json())
      .then((s) => {
        if (ticket !== asked) return;
        out.textContent = s.stock ? `${s.stock} left` : "sold out";
        Object.assign(out.dataset, {size: s.size, stock: String(s.stock)});
      });
  });
})();
</script>
"""

# Below the fold.  Gallery: an image's data-src becomes its src when it comes within
# 100 px of the viewport.  Widget: the iframe (src from the section's data-src) is
# inserted when the section comes within 100 px.  Photo reviews: whenever the sentinel
# at the list's end is in view, the next page is fetched and appended; observing the
# sentinel again after each page re-checks it (still in view after a short page: the
# next one at once); after the last page, #photo-reviews[data-done].
BELOW_THE_FOLD_SCRIPT = """<script>
(() => {
  const near = {rootMargin: "100px"};
  const lazy = new IntersectionObserver((entries) => {
    for (const e of entries) {
      if (!e.isIntersecting) continue;
      e.target.src = e.target.dataset.src;
      lazy.unobserve(e.target);
    }
  }, near);
  document.querySelectorAll("#gallery img[data-src]").forEach((img) => lazy.observe(img));

  const widget = document.getElementById("widget");
  const opener = new IntersectionObserver((entries) => {
    if (!entries.some((e) => e.isIntersecting)) return;
    opener.disconnect();
    const frame = Object.assign(document.createElement("iframe"), {src: widget.dataset.src, title: "Ratings"});
    Object.assign(frame, {width: "100%", height: "360"});
    widget.append(frame);
  }, near);
  opener.observe(widget);

  const section = document.getElementById("photo-reviews");
  const list = section.querySelector(".photo-review-list");
  const sentinel = section.querySelector(".sentinel");
  const el = (tag, props) => Object.assign(document.createElement(tag), props);
  let next = 1, loading = false;
  const more = new IntersectionObserver((entries) => {
    if (loading || !entries.some((e) => e.isIntersecting)) return;
    loading = true;
    fetch(`/api/photo-reviews/${section.dataset.product}?page=${next}`)
      .then((r) => { if (!r.ok) throw new Error(r.statusText); return r.json(); })
      .then((data) => {
        for (const r of data.photo_reviews) {
          const div = el("div", {className: "photo-review"});
          div.dataset.id = r.id;
          div.append(el("img", {className: "photo", src: r.photo, width: 120, height: 120, alt: ""}),
                     el("p", {className: "body", textContent: r.text}),
                     el("span", {className: "author", textContent: r.author}));
          list.append(div);
        }
        next = data.page + 1;
        if (data.page >= data.pages) section.dataset.done = "1";
      })
      .catch(() => {})  // the next look at the sentinel tries again
      .finally(() => {
        loading = false;
        more.unobserve(sentinel);
        if (!section.dataset.done) more.observe(sentinel);
      });
  });
  more.observe(sentinel);
})();
</script>
"""


def review_html(review: dict[str, Any]) -> str:
    stars = "★" * review["stars"] + "☆" * (5 - review["stars"])
    return (
        f'<div class="review" data-id="{review["id"]}"><p class="body">{escape(review["text"])}</p>'
        f'<span class="author">{escape(review["author"])}</span>'
        f'<span class="stars" data-n="{review["stars"]}">{stars}</span></div>'
    )


def size_selector(i: int) -> str:
    options = "".join(f'<option value="{size}">{size}</option>' for size in sizes(i))
    return (
        f'  <p class="sizes"><label>Size <select id="size" data-product="{i}">'
        f'<option value="">Choose a size</option>{options}</select></label> <span id="size-stock"></span></p>\n'
    )


def gallery_html(i: int) -> str:
    """Product ``i``'s gallery: odd images ``loading="lazy"``, even ones ``data-src``."""
    images = "\n".join(
        f'<img loading="lazy" src="{path}" width="160" height="160" alt="">'
        if k % 2
        else f'<img data-src="{path}" width="160" height="160" alt="">'
        for k, path in enumerate(gallery(i), 1)
    )
    return f'  <section id="gallery" data-count="{len(gallery(i))}">\n<h2>Gallery</h2>\n{images}\n</section>\n'


def details_html(i: int) -> str:
    rows = "".join(
        f"<tr><td>{size}</td><td>{48 + 4 * k} cm</td><td>{66 + 2 * k} cm</td></tr>" for k, size in enumerate(sizes(i))
    )
    return (
        '  <section class="details">\n<h2>Details</h2>\n'
        f'<table class="size-chart"><tr><th>Size</th><th>Chest</th><th>Length</th></tr>{rows}</table>\n'
        "<p>100% cotton. Machine wash cold, inside out; do not tumble dry.</p>\n</section>\n"
    )


def product_page(i: int, user: str | None, widget_base: str) -> str:
    """The old product page (:data:`PRODUCT_PAGE`) plus the size selector, the account
    bar, the reviews (first page server-rendered, a button for the rest), the questions
    link, and below the fold the gallery, the review widget (served at ``widget_base``)
    and the photo reviews."""
    p, all_reviews = product(i), reviews(i)
    shown = "\n".join(review_html(r) for r in all_reviews[:REVIEWS_PER_PAGE])
    button = '<button class="more-reviews">more reviews</button>\n' if len(all_reviews) > REVIEWS_PER_PAGE else ""
    photo_count = len(photo_reviews(i))
    extra = (
        f"  {account(user)}\n"
        f'  <section id="reviews" data-product="{i}" data-count="{len(all_reviews)}">\n'
        f'<h2>Reviews ({len(all_reviews)})</h2>\n<div class="review-list">\n{shown}\n</div>\n{button}</section>\n'
        f'  <p><a class="questions" href="/product/{i}/questions">Questions and answers</a></p>\n'
        f"{details_html(i)}{gallery_html(i)}"
        f'  <section id="widget" data-src="{escape(widget_base)}/widget/{i}">\n<h2>Ratings</h2>\n</section>\n'
        f'  <section id="photo-reviews" data-product="{i}" data-count="{photo_count}">\n'
        f'<h2>Photo reviews ({photo_count})</h2>\n<div class="photo-review-list"></div>\n'
        '<div class="sentinel"></div>\n</section>\n'
    )
    page = PRODUCT_PAGE.format(
        title=escape(p["name"]), name=escape(p["name"]), brand=escape(p["brand"]), image=p["image"], id=i
    )
    stock_line = '<p>Stock: <span id="stock">…</span></p>\n'
    scripts = REVIEWS_SCRIPT + SIZE_SCRIPT + BELOW_THE_FOLD_SCRIPT
    return (
        page.replace("</head>", PRODUCT_STYLE + "</head>", 1)
        .replace(stock_line, stock_line + size_selector(i), 1)
        .replace("</main>", extra + "</main>", 1)
        .replace("</body>", scripts + "</body>", 1)
    )
