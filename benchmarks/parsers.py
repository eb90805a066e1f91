#!/usr/bin/env python
"""What parsing an HTML page and reading a few fields costs, by parser: selectolax
(lexbor), lxml with precompiled cssselect selectors, and parsel.

    .venv/bin/python benchmarks/parsers.py                  # both pages, 7 rounds
    .venv/bin/python benchmarks/parsers.py --pages product --rounds 15 --json parsers.json

An HTTP crawler's CPU per page is mostly its parser once the bytes are in: this says
which one to pay for.  The pages are the demo shop's, as served:

- ``product``: ``crawler.demo._product.product_page(7, None, ...)``, 7 KiB, ~150 tags;
- ``heavy``: ``crawler.demo._heavy.heavy_product_page(7)``, 940 KiB, ~25,000 tags,
  2,200 links (a storefront's mega-menu, reviews and footer).

Neither carries Open Graph tags, so :data:`OG_META` (``og:title`` and ``og:image``, as
shops have them) is put first in each page's ``<head>`` before anything is measured.

What each parser does per page (:data:`PARSERS`), the same work for all three: parse
the page's **bytes** (what comes off the wire; each decodes them as UTF-8), then read
the text of ``h1`` and of ``#price`` (all of its descendants' text, as
``textContent``), the ``content`` of ``meta[property="og:title"]`` and of
``og:image``, and the ``href`` of every ``a[href]``, in document order.  Each uses its
own fastest ordinary form: selectolax's ``css_first``/``css`` on a
``LexborHTMLParser``; lxml's ``lxml.html.document_fromstring`` with
``lxml.cssselect.CSSSelector`` objects compiled once at import (not per page);
parsel's ``Selector(body=..., type="html")`` and ``.css(...)`` queries (parsel caches
their CSS-to-XPath translation itself).  Before timing, every parser's result on each
page must equal selectolax's (exit 1 otherwise): the same fields, the same links.

Timing: each round runs every parser, in turn, on one page for at least
:data:`BATCH_S` seconds of CPU; a round's figure is CPU time (``time.thread_time``:
what this thread used, so another process on the machine slows it less than wall
time would) per page.  Rounds interleave the parsers, so a noisy minute falls on all
of them; the figure printed is the median over ``--rounds``, with the ratio to the
fastest parser on that page.  Garbage collection stays on, as in a crawler.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import parsel
from lxml import html as lxml_html
from lxml.cssselect import CSSSelector
from selectolax.lexbor import LexborHTMLParser

from crawler.demo._heavy import heavy_product_page
from crawler.demo._product import product_page

OG_META = (
    '<meta property="og:title" content="Covernat Oversized Tee #7">'
    '<meta property="og:image" content="https://shop.example/img/7.png">'
)
BATCH_S = 0.2  # CPU seconds each parser runs per page per round, at least
WARMUP_PAGES = 3  # untimed parses per parser and page before the first round
PAGES: dict[str, Callable[[], str]] = {
    "product": lambda: product_page(7, None, "http://localhost:1"),
    "heavy": lambda: heavy_product_page(7),
}

Fields = dict[str, Any]


def with_og(page: str) -> bytes:
    """``page`` with :data:`OG_META` first in its ``<head>``, as UTF-8 bytes."""
    at = page.index("<head>") + len("<head>")
    return (page[:at] + OG_META + page[at:]).encode()


# selectolax (lexbor) --------------------------------------------------------------


def selectolax_fields(body: bytes) -> Fields:
    tree = LexborHTMLParser(body)

    def text(sel: str) -> str | None:
        node = tree.css_first(sel)
        return node.text() if node is not None else None

    def meta(prop: str) -> str | None:
        node = tree.css_first(f'meta[property="{prop}"]')
        return node.attributes.get("content") if node is not None else None

    return {
        "h1": text("h1"),
        "price": text("#price"),
        "og_title": meta("og:title"),
        "og_image": meta("og:image"),
        "links": [node.attributes["href"] for node in tree.css("a[href]")],
    }


# lxml + cssselect, selectors compiled once ------------------------------------------

LXML_H1 = CSSSelector("h1")
LXML_PRICE = CSSSelector("#price")
LXML_OG_TITLE = CSSSelector('meta[property="og:title"]')
LXML_OG_IMAGE = CSSSelector('meta[property="og:image"]')
LXML_LINKS = CSSSelector("a[href]")


def lxml_fields(body: bytes) -> Fields:
    doc = lxml_html.document_fromstring(body, parser=lxml_html.HTMLParser(encoding="utf-8"))

    def first(sel: CSSSelector):
        found = sel(doc)
        return found[0] if found else None

    h1, price = first(LXML_H1), first(LXML_PRICE)
    og_title, og_image = first(LXML_OG_TITLE), first(LXML_OG_IMAGE)
    return {
        "h1": h1.text_content() if h1 is not None else None,
        "price": price.text_content() if price is not None else None,
        "og_title": og_title.get("content") if og_title is not None else None,
        "og_image": og_image.get("content") if og_image is not None else None,
        "links": [a.get("href") for a in LXML_LINKS(doc)],
    }


# parsel ----------------------------------------------------------------------------


def parsel_fields(body: bytes) -> Fields:
    sel = parsel.Selector(body=body, encoding="utf-8", type="html")
    return {
        "h1": sel.css("h1").xpath("string()").get(),
        "price": sel.css("#price").xpath("string()").get(),
        "og_title": sel.css('meta[property="og:title"]::attr(content)').get(),
        "og_image": sel.css('meta[property="og:image"]::attr(content)').get(),
        "links": sel.css("a[href]::attr(href)").getall(),
    }


PARSERS: dict[str, Callable[[bytes], Fields]] = {
    "selectolax": selectolax_fields,
    "lxml": lxml_fields,
    "parsel": parsel_fields,
}


def check(pages: dict[str, bytes]) -> list[str]:
    """Every parser's fields on every page against selectolax's: the differences."""
    problems = []
    for page, body in pages.items():
        want = selectolax_fields(body)
        if not want["h1"] or not want["og_title"] or not want["links"]:
            problems.append(f"{page}: selectolax found no h1, og:title or links: {want}")
        for name, fn in PARSERS.items():
            got = fn(body)
            for key in want:
                if got[key] != want[key]:
                    shown = (got[key][:3], want[key][:3]) if key == "links" else (got[key], want[key])
                    problems.append(f"{page}: {name} {key} = {shown[0]!r}, selectolax {shown[1]!r}")
    return problems


def batch(fn: Callable[[bytes], Fields], body: bytes) -> float:
    """Run ``fn`` on ``body`` for at least BATCH_S of CPU: CPU seconds per page."""
    n, started = 0, time.thread_time()
    while True:
        fn(body)
        n += 1
        used = time.thread_time() - started
        if used >= BATCH_S:
            return used / n


def measure(pages: dict[str, bytes], rounds: int, out=sys.stdout) -> dict[str, dict[str, float]]:
    """Median CPU ms per page, by page and parser (rounds interleave the parsers)."""
    for body in pages.values():
        for fn in PARSERS.values():
            for _ in range(WARMUP_PAGES):
                fn(body)
    samples: dict[str, dict[str, list[float]]] = {p: {n: [] for n in PARSERS} for p in pages}
    for r in range(rounds):
        for page, body in pages.items():
            for name, fn in PARSERS.items():
                samples[page][name].append(batch(fn, body) * 1000)
        print(f"round {r + 1}/{rounds} done", file=out, flush=True)
    return {p: {n: statistics.median(v) for n, v in by.items()} for p, by in samples.items()}


def print_table(results: dict[str, dict[str, float]], pages: dict[str, bytes], out=sys.stdout) -> None:
    print("\n| page | size KiB | parser | CPU ms/page | × fastest |", file=out)
    print("|---|---|---|---|---|", file=out)
    for page, by in results.items():
        fastest = min(by.values())
        for name, ms in sorted(by.items(), key=lambda kv: kv[1]):
            print(f"| {page} | {len(pages[page]) / 1024:.0f} | {name} | {ms:.3f} | {ms / fastest:.2f} |", file=out)


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--pages", default="product,heavy", help=f"comma-separated: {', '.join(PAGES)}")
    p.add_argument("--rounds", type=int, default=7, help="rounds of every parser on every page; medians")
    p.add_argument("--json", dest="json_out", help="write the medians here")
    args = p.parse_args(argv)
    args.pages = [x for x in args.pages.split(",") if x]
    for name in args.pages:
        if name not in PAGES:
            p.error(f"unknown page {name!r}; choose from {', '.join(PAGES)}")
    if args.rounds < 1:
        p.error("--rounds must be at least 1")
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    pages = {name: with_og(PAGES[name]()) for name in args.pages}
    problems = check(pages)
    if problems:
        print("the parsers disagree:\n  " + "\n  ".join(problems), file=sys.stderr)
        return 1
    print(f"parsers agree on {', '.join(pages)}; {args.rounds} rounds of >= {BATCH_S} s CPU each", flush=True)
    results = measure(pages, args.rounds)
    print_table(results, pages)
    if args.json_out:
        Path(args.json_out).write_text(json.dumps(results, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
