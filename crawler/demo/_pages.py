"""The demo shop's HTML but the product page's (``_product``): templates and the
functions that fill them.

Every text is HTML-escaped here; the page scripts build what they append with
``textContent``, so a crawl reads back exactly the truth's strings.
"""

from __future__ import annotations

from html import escape
from typing import Any

from ._data import CATEGORIES, PRODUCTS_PER_PAGE, QUESTIONS_PER_PAGE, pages, product, questions

# Questions page: near the bottom (on scroll, and after each page lands) fetch the next
# /api/questions page; body[data-done] once the last page is in.
QUESTIONS_SCRIPT = """<script>
(() => {
  const list = document.getElementById("questions");
  const last = Number(list.dataset.pages);
  let page = 1, loading = false;
  const nearBottom = () => innerHeight + scrollY >= document.documentElement.scrollHeight - 300;
  const finish = () => {
    if (page < last) return false;
    document.body.dataset.done = "1";
    removeEventListener("scroll", more);
    return true;
  };
  function more() {
    if (loading || finish() || !nearBottom()) return;
    loading = true;
    fetch(`/api/questions/${list.dataset.product}?page=${page + 1}`)
      .then((r) => r.json())
      .then((data) => {
        for (const q of data.questions) {
          const div = Object.assign(document.createElement("div"), {className: "question"});
          div.dataset.id = q.id;
          div.append(Object.assign(document.createElement("p"), {className: "text", textContent: q.text}));
          list.append(div);
        }
        page = data.page;
        loading = false;
        more();  // still near the bottom (a short page): the next one now
      })
      .catch(() => { loading = false; });  // a later scroll tries again
  }
  addEventListener("scroll", more, {passive: true});
  more();
})();
</script>
"""

NOISE_LINKS = (  # on the home page: links a crawler must drop, or normalise to a known URL
    ("mailto:shop@example.com", "mail us"),
    ("tel:+82-2-555-0100", "call us"),
    ("javascript:void(0)", "do nothing"),
    ("data:text/html,%3Ch1%3Ehi%3C%2Fh1%3E", "a data URL"),
    ("file:///etc/passwd", "a local file"),
    ("chrome://settings", "browser settings"),
    ("https://other.example/x", "another site"),
    ("/#top", "back to top"),
    ("/about#team", "the team"),
)


def document(title: str, body: str, *, head: str = "", body_attrs: str = "") -> str:
    return (
        f'<!doctype html>\n<html lang="en"><head><meta charset="utf-8"><title>{escape(title)}</title>{head}</head>\n'
        f'<body{body_attrs}>\n<nav><a href="/">Demo Shop</a></nav>\n{body}\n</body></html>\n'
    )


def account(user: str | None) -> str:
    """The account bar: who is logged in, or a link to log in."""
    inner = f'<span class="user">{escape(user)}</span>' if user else '<a class="login" href="/login">log in</a>'
    return f'<p class="account">{inner}</p>'


def home_page(user: str | None) -> str:
    categories = "".join(f'<a class="category" href="/category/{slug}">{slug.title()}</a>\n' for slug in CATEGORIES)
    noise = "".join(f'<a href="{escape(href)}">{text}</a>\n' for href, text in NOISE_LINKS)
    return document(
        "Demo Shop",
        f'<h1>Demo Shop</h1>\n<nav class="categories">\n{categories}</nav>\n'
        '<p><a class="wishlist" href="/wishlist">Wishlist</a> <a class="about" href="/about">About</a></p>\n'
        f'{account(user)}\n<footer class="noise">\n{noise}</footer>',
        body_attrs=' id="top"',
    )


def category_page(slug: str, page: int, ids: list[int]) -> str | None:
    """Page ``page`` of the listing of ``ids`` (the category's products); None past the end."""
    last = pages(len(ids), PRODUCTS_PER_PAGE)
    if not 1 <= page <= last:
        return None
    shown = ids[(page - 1) * PRODUCTS_PER_PAGE : page * PRODUCTS_PER_PAGE]
    rows = "".join(
        f'<div class="product"><a href="/product/{i}">{escape(product(i)["name"])}</a></div>\n' for i in shown
    )
    more = f'<a class="next" href="/category/{slug}?page={page + 1}">next page</a>\n' if page < last else ""
    return document(
        f"{slug.title()}, page {page}",
        f'<h1>{slug.title()}</h1>\n<p class="pages">page {page} of {last}</p>\n'
        f'<main class="listing">\n{rows}</main>\n{more}<a class="footer" href="/about">About the shop</a>',
    )


def question_html(question: dict[str, Any]) -> str:
    return f'<div class="question" data-id="{question["id"]}"><p class="text">{escape(question["text"])}</p></div>'


def questions_page(i: int) -> str:
    """The first page of product ``i``'s questions; the rest load on scrolling."""
    name, all_questions = escape(product(i)["name"]), questions(i)
    shown = "\n".join(question_html(q) for q in all_questions[:QUESTIONS_PER_PAGE])
    return document(
        f"Questions: {product(i)['name']}",
        f'<h1>Questions about <a href="/product/{i}">{name}</a></h1>\n'
        f'<main id="questions" data-product="{i}" data-count="{len(all_questions)}" '
        f'data-pages="{pages(len(all_questions), QUESTIONS_PER_PAGE)}">\n{shown}\n</main>\n{QUESTIONS_SCRIPT}',
        # Each question is taller than a third of an 800x600 viewport: five overflow it.
        head="<style>.question { min-height: 200px; border-bottom: 1px solid #ddd; }</style>",
    )


def login_page(csrf: str, error: str = "") -> str:
    message = f'<p class="error">{escape(error)}</p>\n' if error else ""
    return document(
        "Log in",
        f'<main id="login">\n<h1>Log in</h1>\n{message}<form method="post" action="/login">\n'
        '<label>Username <input id="username" name="username" autocomplete="username"></label>\n'
        '<label>Password <input id="password" name="password" type="password"></label>\n'
        f'<input type="hidden" name="csrf" value="{escape(csrf)}">\n<button type="submit">Log in</button>\n'
        f"</form>\n</main>\n{account(None)}",
    )


def wishlist_page(user: str, ids: list[int]) -> str:
    wishes = "".join(f'<div class="wish"><a href="/product/{i}">{escape(product(i)["name"])}</a></div>\n' for i in ids)
    return document("Wishlist", f'<main id="wishlist">\n<h1>Wishlist</h1>\n{wishes}</main>\n{account(user)}')


ABOUT_PAGE = document(
    "About",
    "<main><h1>About the Demo Shop</h1>\n<p>A storefront served on 127.0.0.1 for the crawler's demo.</p>\n"
    '<h2 id="team">The team</h2>\n<p>Nobody; it is generated.</p></main>',
)
