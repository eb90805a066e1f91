#!/usr/bin/env python
"""Crawlee for Python's ``PlaywrightCrawler`` as its users run it: its docs' pattern.

``PlaywrightCrawler(...)`` with Crawlee's defaults: its browser pool (one persistent
browser context per browser, its default fingerprints and headers, the browser
retired by the pool after 100 pages), its default headless mode, its default
``goto`` (``load``) and timeouts, its default storage (the file-system dataset that
``context.push_data`` writes to, here in a temporary ``CRAWLEE_STORAGE_DIR``,
removed at the end) and its default logging (INFO, to stderr: stdout carries the
protocol).  Changed only where the benchmark must:

- ``browser_launch_options={"executable_path": --chromium}``: no browser is
  downloaded here;
- ``CRAWLEE_DISABLE_BROWSER_SANDBOX=true`` when running as root (Crawlee asks for
  Chromium's sandbox by default, which Chromium refuses as root; Playwright's own
  default, as in ``playwright_pages.py``, is no sandbox);
- ``ConcurrencySettings`` fixed at ``--concurrency`` (min = max = desired), so it
  does not lose time autoscaling up from 1;
- ``max_request_retries = MAX_ATTEMPTS - 1``; no request limit.

Crawlee opens a new page per request and closes it after, and its pool retires
browsers itself, so ``--recycle-tab-every`` and ``--rotate-context-every`` do not
apply.  Per request: a pre-navigation hook listens for the ``CAPTURE`` response
(``page.on("response")``); the handler waits for ``READY_SELECTOR``, evaluates
``FIELDS_JS``, reads the captured response's ``json()``, then ``context.push_data``
(its users' cost) and one JSON line to ``--items``.  On the render profile, the
handler calls Crawlee's own ``context.infinite_scroll()`` after the ready selector
(wheel turns of the page's height, 250 ms apart, until no request has started for
4 s), then reads the reviews too.  Runs in ``benchmarks/peers-venv``,
started by ``benchmarks/compare.py``; the protocol is ``_common``'s.
"""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import sys
import tempfile

from crawlee import ConcurrencySettings
from crawlee.crawlers import PlaywrightCrawler, PlaywrightCrawlingContext, PlaywrightPreNavCrawlingContext
from playwright.async_api import Page, Response

sys.path.insert(0, os.path.dirname(__file__))
from _common import CAPTURE, FIELDS_JS, MAX_ATTEMPTS, READY_SELECTOR, REVIEWS_JS, parse_args, read_urls, ready, report  # noqa: E402


async def crawl(args, urls: list[str], out) -> tuple[int, int]:
    c = args.concurrency
    crawler = PlaywrightCrawler(
        browser_launch_options={"executable_path": args.chromium},
        concurrency_settings=ConcurrencySettings(min_concurrency=c, max_concurrency=c, desired_concurrency=c),
        max_request_retries=MAX_ATTEMPTS - 1,
    )
    captures: dict[Page, asyncio.Future[Response]] = {}  # a new page per request (and per retry)
    done = 0

    @crawler.pre_navigation_hook
    async def capture(context: PlaywrightPreNavCrawlingContext) -> None:
        future = captures[context.page] = asyncio.get_running_loop().create_future()

        def on_response(response: Response) -> None:
            if CAPTURE in response.url and not future.done():
                future.set_result(response)

        context.page.on("response", on_response)

    @crawler.router.default_handler
    async def handler(context: PlaywrightCrawlingContext) -> None:
        nonlocal done
        await context.page.wait_for_selector(READY_SELECTOR)
        if args.profile == "render":
            await context.infinite_scroll()
        item = {"url": context.request.url, **await context.page.evaluate(FIELDS_JS)}
        if args.profile == "render":
            item["reviews"] = await context.page.evaluate(REVIEWS_JS)
        response = await asyncio.wait_for(captures.pop(context.page), 30)
        item["goods"] = await response.json()
        await context.push_data(item)
        out.write(json.dumps(item) + "\n")
        done += 1

    stats = await crawler.run(urls)  # returns once its browser pool is closed
    return done, stats.requests_failed


def main() -> None:
    args = parse_args()
    urls = read_urls(args.urls)
    ready()
    storage = tempfile.mkdtemp(prefix="crawlee-storage-")
    os.environ["CRAWLEE_STORAGE_DIR"] = storage
    if os.geteuid() == 0:
        os.environ["CRAWLEE_DISABLE_BROWSER_SANDBOX"] = "true"
    try:
        with open(args.items, "w", encoding="utf-8") as out:
            done, failed = asyncio.run(crawl(args, urls, out))
    finally:
        shutil.rmtree(storage, ignore_errors=True)
    report(done, failed)


if __name__ == "__main__":
    main()
