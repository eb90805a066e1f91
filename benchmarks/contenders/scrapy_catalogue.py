#!/usr/bin/env python
"""Scrapy as its users run it: a ``scrapy.Spider`` in a ``CrawlerProcess``, Scrapy's
default settings, items to a feed export.

Changed from the defaults only where the benchmark must:

- ``CONCURRENT_REQUESTS`` and ``CONCURRENT_REQUESTS_PER_DOMAIN`` = ``--concurrency``
  (the catalogue is one host; the per-domain default, 8, would cap it);
- ``ROBOTSTXT_OBEY = False`` (already Scrapy's default outside a generated project;
  set so that a project template's ``True`` cannot creep in);
- ``LOG_LEVEL = "INFO"`` (the default, DEBUG, logs a line per request and item);
- ``TELNETCONSOLE_ENABLED = False`` (it would open a port; it costs nothing per page);
- ``FEEDS``: the items as JSON lines to ``--items`` (Scrapy's own feed export);
- ``RETRY_TIMES = MAX_ATTEMPTS - 1``.

AutoThrottle stays off and ``DOWNLOAD_DELAY`` 0 (the defaults); the reactor is
Scrapy's default (asyncio).  The spider's callbacks: the index follows
``INDEX_FOLLOW``, a listing ``LISTING_FOLLOW`` (``response.follow``, Scrapy's
dupefilter dedups), a product yields its item (``::text`` of each field, stripped).
Runs in ``benchmarks/peers-venv``, started by ``benchmarks/http_bench.py``.
"""

from __future__ import annotations

import os
import sys

import scrapy
from scrapy.crawler import CrawlerProcess

sys.path.insert(0, os.path.dirname(__file__))
from _catalogue import MAX_ATTEMPTS, TIMEOUT_S, catalogue, parse_args, ready, report  # noqa: E402


class CatalogueSpider(scrapy.Spider):
    name = "catalogue"

    def __init__(self, start: str, **kwargs):
        super().__init__(**kwargs)
        self.start_urls = [start]

    def parse(self, response):  # the index
        for href in response.css(f"{catalogue.INDEX_FOLLOW}::attr(href)").getall():
            yield response.follow(href, self.parse_listing)

    def parse_listing(self, response):
        for href in response.css(f"{catalogue.LISTING_FOLLOW}::attr(href)").getall():
            yield response.follow(href, self.parse_product)

    def parse_product(self, response):
        item = {"url": response.url}
        for key, selector in catalogue.PRODUCT_FIELDS.items():
            value = response.css(f"{selector}::text").get()
            item[key] = value.strip() if value is not None else None
        item["reviews"] = [t.strip() for t in response.css(f"{catalogue.PRODUCT_REVIEWS}::text").getall()]
        yield item


def main() -> int:
    args = parse_args()
    ready()
    process = CrawlerProcess(
        settings={
            "CONCURRENT_REQUESTS": args.concurrency,
            "CONCURRENT_REQUESTS_PER_DOMAIN": args.concurrency,
            "ROBOTSTXT_OBEY": False,
            "LOG_LEVEL": "INFO",
            "TELNETCONSOLE_ENABLED": False,
            "RETRY_TIMES": MAX_ATTEMPTS - 1,
            "DOWNLOAD_TIMEOUT": TIMEOUT_S,
            "FEEDS": {args.items: {"format": "jsonlines", "encoding": "utf8", "overwrite": True}},
        }
    )
    crawler = process.create_crawler(CatalogueSpider)
    process.crawl(crawler, start=args.start)
    process.start()
    stats = crawler.stats.get_stats()
    done = stats.get("response_received_count", 0)
    failed = stats.get("downloader/exception_count", 0) + stats.get("httperror/response_ignored_count", 0)
    report(done, failed, items_scraped=stats.get("item_scraped_count", 0))
    return 0


if __name__ == "__main__":
    sys.exit(main())
