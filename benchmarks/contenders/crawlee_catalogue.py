#!/usr/bin/env python
"""Crawlee for Python's ``ParselCrawler`` as its users run it: its docs' pattern, a
router with one handler per label, ``context.enqueue_links`` and
``context.push_data``.

Crawlee's defaults throughout: its HTTP client (impit in this version), its request
queue and dataset on the file system (``CRAWLEE_STORAGE_DIR``, a temporary folder
removed at the end), its default logging (INFO, to stderr: stdout carries the
protocol), its enqueue strategy (same hostname).  Changed only where the benchmark
must:

- ``ConcurrencySettings`` fixed at ``--concurrency`` (min = max = desired), so it does
  not spend the run autoscaling up from its default;
- ``max_request_retries = MAX_ATTEMPTS - 1``; no request limit.

Handlers: the default one (the index) enqueues ``INDEX_FOLLOW`` links labelled
``listing``; ``listing`` enqueues ``LISTING_FOLLOW`` links labelled ``product``;
``product`` reads its fields with ``context.selector`` (``::text``, stripped), then
``context.push_data`` (its users' cost) and one JSON line to ``--items``.  Runs in
``benchmarks/peers-venv``, started by ``benchmarks/http_bench.py``.
"""

from __future__ import annotations

import asyncio
import os
import shutil
import sys
import tempfile

sys.path.insert(0, os.path.dirname(__file__))
from _catalogue import MAX_ATTEMPTS, catalogue, parse_args, ready, report, write_item  # noqa: E402


async def crawl(args, out) -> tuple[int, int]:
    from crawlee import ConcurrencySettings
    from crawlee.crawlers import ParselCrawler, ParselCrawlingContext

    c = args.concurrency
    crawler = ParselCrawler(
        concurrency_settings=ConcurrencySettings(min_concurrency=c, max_concurrency=c, desired_concurrency=c),
        max_request_retries=MAX_ATTEMPTS - 1,
    )

    @crawler.router.default_handler
    async def index(context: ParselCrawlingContext) -> None:
        await context.enqueue_links(selector=catalogue.INDEX_FOLLOW, label="listing")

    @crawler.router.handler("listing")
    async def listing(context: ParselCrawlingContext) -> None:
        await context.enqueue_links(selector=catalogue.LISTING_FOLLOW, label="product")

    @crawler.router.handler("product")
    async def product(context: ParselCrawlingContext) -> None:
        item = {"url": context.request.url}
        for key, selector in catalogue.PRODUCT_FIELDS.items():
            value = context.selector.css(f"{selector}::text").get()
            item[key] = value.strip() if value is not None else None
        item["reviews"] = [t.strip() for t in context.selector.css(f"{catalogue.PRODUCT_REVIEWS}::text").getall()]
        await context.push_data(item)
        write_item(out, item)

    stats = await crawler.run([args.start])
    return stats.requests_finished, stats.requests_failed


def main() -> int:
    args = parse_args()
    import crawlee.crawlers  # noqa: F401 - imports before the ready line, as the other contenders'

    ready()
    storage = tempfile.mkdtemp(prefix="crawlee-storage-")
    os.environ["CRAWLEE_STORAGE_DIR"] = storage
    try:
        with open(args.items, "w", encoding="utf-8") as out:
            done, failed = asyncio.run(crawl(args, out))
    finally:
        shutil.rmtree(storage, ignore_errors=True)
    report(done, failed)
    return 0


if __name__ == "__main__":
    sys.exit(main())
