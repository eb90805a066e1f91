#!/usr/bin/env python
"""The Playwright side of ``crawl_bench.py --playwright``: the demo crawl done with
Playwright's async API (asyncio), so it runs in its own process.  Not meant to be run
by hand: crawl_bench.py starts it, serves the shop, and measures this process tree.

Per page it does the work the engine does with config/products.toml: navigate, wait until
``body[data-ready]`` exists, read the same fields in one evaluate (text trimmed, image
src made absolute, ``#stock`` textContent as is), and keep the JSON body of the
``/api/goods/`` response.  Tabs are closed after ``--recycle-tab-every`` pages and a
context is disposed after ``--rotate-context-every`` pages, like the engine's pool;
``--concurrency`` workers; up to 3 attempts per page.

Protocol on stdout, one JSON object a line: ``{"event": "ready"}`` once imports are
done, ``{"event": "progress", "finished": k}`` after every page,
``{"event": "mark", "finished": k, "t": s}`` when k pages (done + failed) reach every
10% of the run, then ``{"event": "result", ...}``; after "ready" and each
"mark" the runner waits for a line on stdin (crawl_bench samples memory and CPU
meanwhile, so the last mark is taken before the browser closes).  Items go to
``--items`` as JSON lines.  On failure: ``{"event": "error", "message": ...}``.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import math
import sys
import time
from importlib.metadata import version

from playwright.async_api import Browser, BrowserContext, Page, async_playwright

MARKS = 10
MAX_ATTEMPTS = 3
PAGE_TIMEOUT_S = 30.0

EXTRACT_JS = """() => {
  const text = (s) => { const e = document.querySelector(s); return e ? e.textContent.trim() : null; };
  const img = document.querySelector('img.main');
  const src = img ? img.getAttribute('src') : null;
  return {
    name: text('h1'),
    brand: text('p.brand'),
    price: text('#price'),
    image: src === null ? null : new URL(src, document.baseURI).href,
    stock: document.querySelector('#stock').textContent,
  };
}"""


def emit(obj: dict) -> None:
    sys.stdout.write(json.dumps(obj) + "\n")
    sys.stdout.flush()


async def wait_ack() -> None:
    line = await asyncio.get_running_loop().run_in_executor(None, sys.stdin.readline)
    if not line:
        raise SystemExit("crawl_bench went away")


class Slot:
    def __init__(self, context: BrowserContext):
        self.context = context
        self.tabs: set[Tab] = set()
        self.pages = 0
        self.draining = False


class Tab:
    def __init__(self, page: Page, slot: Slot):
        self.page = page
        self.slot = slot
        self.pages = 0


class Pool:
    """The engine's pool policy on Playwright: idle tabs reused, a tab closed after
    ``recycle`` pages or after a failure, the current context replaced after ``rotate``
    pages and closed once its last tab is."""

    def __init__(self, browser: Browser, recycle: int, rotate: int):
        self.browser = browser
        self.recycle = recycle
        self.rotate = rotate
        self.current: Slot | None = None
        self.lock = asyncio.Lock()
        self.idle: list[Tab] = []
        self.tabs_recycled = 0
        self.contexts_rotated = 0

    async def take(self) -> Tab:
        while self.idle:
            tab = self.idle.pop()
            if not tab.slot.draining:
                return tab
            await self._retire(tab)
        async with self.lock:
            if self.current is None:
                self.current = Slot(await self.browser.new_context())
            slot = self.current
        tab = Tab(await slot.context.new_page(), slot)
        slot.tabs.add(tab)
        return tab

    async def give(self, tab: Tab, ok: bool) -> None:
        tab.pages += 1
        slot = tab.slot
        slot.pages += 1
        if slot is self.current and slot.pages >= self.rotate:
            slot.draining = True
            self.current = None
            self.contexts_rotated += 1
        if ok and tab.pages < self.recycle and not slot.draining:
            self.idle.append(tab)
        else:
            if ok and tab.pages >= self.recycle:
                self.tabs_recycled += 1
            await self._retire(tab)
        if slot.draining:
            for idle in [t for t in self.idle if t.slot is slot]:
                self.idle.remove(idle)
                await self._retire(idle)
            if not slot.tabs:
                await slot.context.close()

    async def _retire(self, tab: Tab) -> None:
        try:
            await tab.page.close()
        except Exception:
            pass
        tab.slot.tabs.discard(tab)

    async def close(self) -> None:
        for tab in self.idle:
            await self._retire(tab)
        self.idle.clear()
        if self.current is not None:
            await self.current.context.close()


async def crawl_one(page: Page, url: str) -> dict:
    async with page.expect_response(lambda r: "/api/goods/" in r.url, timeout=PAGE_TIMEOUT_S * 1000) as captured:
        response = await page.goto(url, wait_until="commit", timeout=PAGE_TIMEOUT_S * 1000)
        await page.wait_for_selector("body[data-ready]", state="attached", timeout=PAGE_TIMEOUT_S * 1000)
    fields = await page.evaluate(EXTRACT_JS)
    goods = await (await captured.value).json()
    return {"url": url, "status": response.status if response else None, **fields, "goods": goods}


async def crawl(args: argparse.Namespace) -> tuple[list[dict], dict]:
    marks = {max(1, math.ceil(args.pages * k / MARKS)) for k in range(1, MARKS + 1)}
    ids = iter(range(1, args.pages + 1))
    items: list[dict] = []
    errors: list[str] = []
    counts = {"finished": 0, "failed": 0, "retries": 0}
    t0 = time.perf_counter()
    async with async_playwright() as p:
        browser = await p.chromium.launch(
            executable_path=args.executable, headless=True, args=json.loads(args.chromium_args)
        )
        pool = Pool(browser, args.recycle_tab_every, args.rotate_context_every)

        async def worker() -> None:
            for i in ids:
                url = f"{args.base}/product/{i}"
                item = None
                for attempt in range(1, MAX_ATTEMPTS + 1):
                    tab = await pool.take()
                    ok = False
                    try:
                        item = await asyncio.wait_for(crawl_one(tab.page, url), PAGE_TIMEOUT_S)
                        ok = True
                    except Exception as exc:  # noqa: BLE001 - a failed page is data
                        errors.append(
                            f"{url} attempt {attempt}: {type(exc).__name__}: {str(exc).splitlines()[0][:200]}"
                        )
                    finally:
                        await pool.give(tab, ok)
                    if ok:
                        break
                    if attempt < MAX_ATTEMPTS:
                        counts["retries"] += 1
                if item is None:
                    counts["failed"] += 1
                else:
                    items.append(item)
                counts["finished"] += 1
                emit({"event": "progress", "finished": counts["finished"]})
                if counts["finished"] in marks:
                    emit({"event": "mark", "finished": counts["finished"], "t": time.perf_counter() - t0})
                    await wait_ack()

        await asyncio.gather(*(worker() for _ in range(args.concurrency)))
        await pool.close()
        browser_version = browser.version
        await browser.close()
    wall = time.perf_counter() - t0
    return items, {
        "event": "result",
        "wall_s": wall,
        "done": len(items),
        "failed": counts["failed"],
        "retries": counts["retries"],
        "errors": errors[:20],
        "tabs_recycled": pool.tabs_recycled,
        "contexts_rotated": pool.contexts_rotated,
        "playwright_version": version("playwright"),
        "browser_version": browser_version,
    }


def main() -> int:
    p = argparse.ArgumentParser(description="the Playwright side of crawl_bench.py")
    p.add_argument("--base", required=True)
    p.add_argument("--pages", type=int, required=True)
    p.add_argument("--concurrency", type=int, required=True)
    p.add_argument("--recycle-tab-every", type=int, default=10)
    p.add_argument("--rotate-context-every", type=int, default=50)
    p.add_argument("--executable", required=True)
    p.add_argument("--items", required=True)
    p.add_argument("--chromium-args", required=True, help="JSON list of Chromium flags")
    args = p.parse_args()
    emit({"event": "ready"})
    line = sys.stdin.readline()
    if not line:
        return 1
    try:
        items, result = asyncio.run(crawl(args))
    except Exception as exc:  # noqa: BLE001
        emit({"event": "error", "message": f"{type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}"})
        return 1
    with open(args.items, "w", encoding="utf-8") as f:
        for item in items:
            f.write(json.dumps(item, ensure_ascii=False) + "\n")
    emit(result)
    return 0


if __name__ == "__main__":
    sys.exit(main())
