#!/usr/bin/env python
"""The HTTP floor: no framework, none of our code.  Trio, one ``httpx.AsyncClient``
(its connection pool sized to ``--concurrency``), ``--concurrency`` worker tasks on
one in-memory queue, and selectolax (``LexborHTMLParser``) on each body: the least a
Python crawler of this catalogue can do.

Per page: GET (up to ``MAX_ATTEMPTS`` on a transport error or a status >= 500),
parse, then by the kind of link that led there: the index's ``INDEX_FOLLOW`` links
and a listing's ``LISTING_FOLLOW`` links are made absolute and queued once each (a
set of URLs seen); a product page's fields are read (the text of each
``PRODUCT_FIELDS`` selector, stripped, and of every ``PRODUCT_REVIEWS`` match) and
written as one JSON line.  No store, no retries' backoff, no politeness, no
robots.txt: the floor.  Runs in this project's ``.venv`` (httpx, trio and selectolax).
"""

from __future__ import annotations

import math
import os
import sys
from urllib.parse import urljoin

import httpx
import trio
from selectolax.lexbor import LexborHTMLParser

sys.path.insert(0, os.path.dirname(__file__))
from _catalogue import MAX_ATTEMPTS, TIMEOUT_S, catalogue, parse_args, ready, report, write_item  # noqa: E402

FOLLOW = {"index": (catalogue.INDEX_FOLLOW, "listing"), "listing": (catalogue.LISTING_FOLLOW, "product")}


def text(tree: LexborHTMLParser, selector: str) -> str | None:
    node = tree.css_first(selector)
    return node.text().strip() if node is not None else None


async def crawl(args, out) -> tuple[int, int]:
    counts = {"done": 0, "failed": 0}
    seen = {args.start}
    send, receive = trio.open_memory_channel(math.inf)
    send.send_nowait((args.start, "index"))
    pending = 1  # queued or in flight: the crawl ends when it is 0
    limits = httpx.Limits(max_connections=args.concurrency, max_keepalive_connections=args.concurrency)

    async with httpx.AsyncClient(limits=limits, timeout=TIMEOUT_S) as client:

        async def fetch(url: str) -> bytes | None:
            for _attempt in range(MAX_ATTEMPTS):
                try:
                    r = await client.get(url)
                except httpx.TransportError as e:
                    error = repr(e)
                    continue
                if r.status_code < 500:
                    return r.content if r.status_code == 200 else None
                error = f"HTTP {r.status_code}"
            print(f"failed {url}: {error}", file=sys.stderr)
            return None

        async def worker() -> None:
            nonlocal pending
            async for url, kind in receive:
                body = await fetch(url)
                if body is None:
                    counts["failed"] += 1
                else:
                    counts["done"] += 1
                    tree = LexborHTMLParser(body)
                    if kind in FOLLOW:
                        selector, label = FOLLOW[kind]
                        for node in tree.css(selector):
                            link = urljoin(url, node.attributes.get("href") or "")
                            if link not in seen:
                                seen.add(link)
                                pending += 1
                                send.send_nowait((link, label))
                    else:
                        item = {"url": url, **{k: text(tree, s) for k, s in catalogue.PRODUCT_FIELDS.items()}}
                        item["reviews"] = [n.text().strip() for n in tree.css(catalogue.PRODUCT_REVIEWS)]
                        write_item(out, item)
                pending -= 1
                if pending == 0:
                    send.close()

        async with trio.open_nursery() as nursery:
            for _ in range(args.concurrency):
                nursery.start_soon(worker)
    return counts["done"], counts["failed"]


def main() -> int:
    args = parse_args()
    ready()
    with open(args.items, "w", encoding="utf-8") as out:
        done, failed = trio.run(crawl, args, out)
    report(done, failed)
    return 0


if __name__ == "__main__":
    sys.exit(main())
