#!/usr/bin/env python
"""Playwright as its users run it: the async API with Playwright's own defaults.

``chromium.launch(executable_path=...)`` and nothing else (Playwright's default
switches and its default headless mode; the system Chromium because no browser is
downloaded here), **one** browser context for the whole run, ``--concurrency``
workers, each with a page of its own that it replaces (new page, old one closed)
every ``--recycle-tab-every`` pages, and after a failed attempt.  Playwright's users
open pages in one context and do not rotate contexts, so ``--rotate-context-every``
does not apply here.

Per URL, the calls a Playwright user writes: ``page.expect_response`` for the
``CAPTURE`` response set up around ``page.goto(url)`` (default wait: ``load``), then
``page.wait_for_selector(READY_SELECTOR)``, ``page.evaluate(FIELDS_JS)``, and the
captured response's ``json()`` (its body, read from the browser).  Playwright's
default timeouts (30 s); up to ``MAX_ATTEMPTS`` attempts per URL.  On the render
profile, after the ready selector, the scroll loop its users write
(:func:`scroll_to_bottom`), then the fields and the reviews.  Runs in
``benchmarks/peers-venv`` (asyncio: outside this project's packages), started by
``benchmarks/compare.py``; the protocol is ``_common``'s.
"""

from __future__ import annotations

import asyncio
import os
import sys

from playwright.async_api import Page, async_playwright

sys.path.insert(0, os.path.dirname(__file__))
from _common import (  # noqa: E402
    CAPTURE,
    FIELDS_JS,
    MAX_ATTEMPTS,
    READY_SELECTOR,
    REVIEWS_JS,
    parse_args,
    read_urls,
    ready,
    record,
    report,
)

SCROLL_STEP_PX = 1000  # one mouse wheel turn
SCROLL_WAIT_MS = 250  # after each (Crawlee's infinite_scroll waits 250 ms between its wheel turns too)
SCROLL_MAX_STEPS = 100


async def scroll_to_bottom(page: Page) -> None:
    """The loop Playwright's users write for lazy content: turn the wheel, wait a
    little, until the bottom of the viewport stops moving (the end of the page is
    reached and the wait loaded nothing more below it)."""
    bottom = None
    for _ in range(SCROLL_MAX_STEPS):
        await page.mouse.wheel(0, SCROLL_STEP_PX)
        await page.wait_for_timeout(SCROLL_WAIT_MS)
        new_bottom = await page.evaluate("window.scrollY + window.innerHeight")
        if new_bottom == bottom:
            break
        bottom = new_bottom


async def scrape(page: Page, url: str, render: bool) -> dict:
    async with page.expect_response(lambda r: CAPTURE in r.url) as captured:
        await page.goto(url)
    await page.wait_for_selector(READY_SELECTOR)
    if render:
        await scroll_to_bottom(page)
    item = {"url": url, **await page.evaluate(FIELDS_JS)}
    if render:
        item["reviews"] = await page.evaluate(REVIEWS_JS)
    item["goods"] = await (await captured.value).json()
    return item


async def crawl(args, urls: list[str], out, counts: dict[str, int]) -> None:
    async with async_playwright() as p:
        browser = await p.chromium.launch(executable_path=args.chromium)
        context = await browser.new_context()

        async def worker() -> None:
            page, served = await context.new_page(), 0
            while urls:
                url, error = urls.pop(), ""
                for _ in range(MAX_ATTEMPTS):
                    if served >= args.recycle_tab_every:
                        await page.close()
                        page, served = await context.new_page(), 0
                    served += 1
                    try:
                        item = await scrape(page, url, args.profile == "render")
                        break
                    except Exception as exc:  # noqa: BLE001 - a failed attempt is data
                        item, error = None, f"{type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}"
                        served = args.recycle_tab_every  # a fresh page for the next attempt
                record(out, counts, url, item, error)
            await page.close()

        await asyncio.gather(*(worker() for _ in range(args.concurrency)))
        await context.close()
        await browser.close()
    # leaving async_playwright() stops its node driver and waits for it: the tree is reaped


def main() -> None:
    args = parse_args()
    urls = read_urls(args.urls)
    urls.reverse()
    ready()
    counts = {"done": 0, "failed": 0}
    with open(args.items, "w", encoding="utf-8") as out:
        asyncio.run(crawl(args, urls, out, counts))
    report(counts["done"], counts["failed"])


if __name__ == "__main__":
    main()
