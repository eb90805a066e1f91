#!/usr/bin/env python
"""The floor: what the protocol needs to crawl these pages, and nothing else.

No framework and none of this project's code: Chromium started with only the
switches CDP needs (headless, a DevTools port, a fresh profile; ``--no-sandbox`` only
as root), one websocket, ``--concurrency`` tabs in the default context, each reused
for all its pages (no recycling, no reset between pages).  Every tab acts as the
visible, focused one (``Emulation.setFocusEmulationEnabled``), as Playwright's pages
do: the tabs of a window are otherwise hidden but the active one, and a hidden page
is never painted (no ``requestAnimationFrame``, no IntersectionObserver, no lazy
image).  ``--hidden`` (``raw-hidden`` in compare.py) leaves that out: the floor as it
was, mostly unpainted.  With ``--context``
(``raw+context`` in compare.py) the tabs are in one created browser context instead,
as any crawler that rotates contexts must put them: the same loop, no rotation.  Per page: ``Page.navigate``;
one ``Runtime.evaluate`` that resolves once the ready selector exists; one that reads
the fields; ``Network.getResponseBody`` of the captured API response.  No timeouts
beyond a page's 30 s, no retries beyond three attempts.  On the render profile, after
the ready selector, the naive scroll: ``window.scrollTo(0, document.body.scrollHeight)``
:data:`NAIVE_SCROLLS` times, :data:`NAIVE_SCROLL_WAIT_S` apart; then the fields and
the reviews.  Run by ``benchmarks/compare.py``.
"""

from __future__ import annotations

import itertools
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import trio
import trio_websocket

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

PAGE_TIMEOUT_S = 30.0
NAIVE_SCROLLS = 3  # render profile: jumps to the bottom of the page...
NAIVE_SCROLL_WAIT_S = 0.25  # ...with this long after each for what it loads
NAIVE_SCROLL_JS = "window.scrollTo(0, document.body.scrollHeight)"
WAIT_READY_JS = """new Promise((resolve) => {
  const ok = () => document.querySelector(SELECTOR) !== null;
  if (ok()) return resolve(true);
  new MutationObserver((_, obs) => { if (ok()) { obs.disconnect(); resolve(true); } })
    .observe(document, {subtree: true, childList: true, attributes: true});
})""".replace("SELECTOR", json.dumps(READY_SELECTOR))


class Cdp:
    """One websocket; replies matched by id, events queued per session."""

    def __init__(self, ws):
        self.ws = ws
        self.ids = itertools.count(1)
        self.waiting: dict[int, trio.MemorySendChannel] = {}
        self.events: dict[str, trio.MemorySendChannel] = {}

    async def read(self):
        while True:
            try:
                msg = json.loads(await self.ws.get_message())
            except trio_websocket.ConnectionClosed:
                return
            if "id" in msg:
                send = self.waiting.pop(msg["id"], None)
                if send is not None:
                    send.send_nowait(msg)
            elif msg.get("sessionId") in self.events:
                self.events[msg["sessionId"]].send_nowait(msg)

    async def send(self, method, session=None, **params):
        i = next(self.ids)
        send, recv = trio.open_memory_channel(1)
        self.waiting[i] = send
        msg = {"id": i, "method": method, "params": params}
        if session:
            msg["sessionId"] = session
        await self.ws.send_message(json.dumps(msg))
        reply = await recv.receive()
        if "error" in reply:
            raise RuntimeError(f"{method}: {reply['error'].get('message')}")
        return reply["result"]


async def crawl_tab(cdp: Cdp, urls: list[str], out, counts, context: str | None, args) -> None:
    where = {"browserContextId": context} if context else {}
    target = (await cdp.send("Target.createTarget", url="about:blank", **where))["targetId"]
    session = (await cdp.send("Target.attachToTarget", targetId=target, flatten=True))["sessionId"]
    events_in, events = trio.open_memory_channel(float("inf"))
    cdp.events[session] = events_in
    await cdp.send("Network.enable", session)
    await cdp.send("Page.enable", session)
    if not args.hidden:
        await cdp.send("Emulation.setFocusEmulationEnabled", session, enabled=True)
    render = args.profile == "render"
    while urls:
        url, error = urls.pop(), ""
        for _ in range(MAX_ATTEMPTS):
            try:
                with trio.fail_after(PAGE_TIMEOUT_S):
                    item = await one_page(cdp, session, events, url, render)
                break
            except (RuntimeError, trio.TooSlowError) as exc:
                item = None
                error = str(exc)
        record(out, counts, url, item, error)


async def one_page(cdp: Cdp, session: str, events, url: str, render: bool) -> dict:
    while True:  # drop what the last page left
        try:
            events.receive_nowait()
        except trio.WouldBlock:
            break
    reply = await cdp.send("Page.navigate", session, url=url)
    if reply.get("errorText"):
        raise RuntimeError(reply["errorText"])
    for _ in range(20):  # the new document may not have its context yet
        r = await cdp.send("Runtime.evaluate", session, expression=WAIT_READY_JS, awaitPromise=True)
        if "exceptionDetails" not in r:
            break
        await trio.sleep(0.01)
    item = {"url": url}
    if render:
        for _ in range(NAIVE_SCROLLS):
            await cdp.send("Runtime.evaluate", session, expression=NAIVE_SCROLL_JS)
            await trio.sleep(NAIVE_SCROLL_WAIT_S)
    fields = await cdp.send("Runtime.evaluate", session, expression=f"({FIELDS_JS})()", returnByValue=True)
    item.update(fields["result"]["value"])
    if render:
        reviews = await cdp.send("Runtime.evaluate", session, expression=f"({REVIEWS_JS})()", returnByValue=True)
        item["reviews"] = reviews["result"]["value"]
    capture, finished = None, set()
    while capture is None or capture not in finished:  # the capture's response, loaded
        msg = await events.receive()
        p = msg.get("params", {})
        if msg["method"] == "Network.responseReceived" and CAPTURE in p["response"]["url"]:
            capture = p["requestId"]
        elif msg["method"] == "Network.loadingFinished":
            finished.add(p["requestId"])
    body = await cdp.send("Network.getResponseBody", session, requestId=capture)
    return {**item, "goods": json.loads(body["body"])}


async def main() -> None:
    args = parse_args()
    urls = read_urls(args.urls)
    urls.reverse()
    ready()
    profile = tempfile.mkdtemp(prefix="raw-cdp-")
    argv = [args.chromium, "--headless=new", "--remote-debugging-port=0", f"--user-data-dir={profile}"]
    argv += os.environ.get("RAW_EXTRA_ARGS", "").split()  # for experiments: what one switch costs the floor
    if os.geteuid() == 0:
        argv.append("--no-sandbox")  # Chromium refuses to start its sandbox as root
    if args.context:
        # The spare renderer Chromium keeps ready belongs to the default context: with the
        # tabs elsewhere it is thrown away and started again at every navigation.
        argv.append("--disable-features=SpareRendererForSitePerProcess")
    # The floor uses plain blocking calls where they take microseconds (no framework).
    proc = subprocess.Popen([*argv, "about:blank"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)  # noqa: ASYNC220
    port_file = Path(profile) / "DevToolsActivePort"
    while not port_file.exists() or len(port_file.read_text().split()) < 2:  # noqa: ASYNC110, ASYNC240
        await trio.sleep(0.02)
    port, path = port_file.read_text().split()[:2]
    counts = {"done": 0, "failed": 0}
    t0 = time.monotonic()
    try:
        async with trio_websocket.open_websocket_url(f"ws://127.0.0.1:{port}{path}", max_message_size=2**28) as ws:
            cdp = Cdp(ws)
            context = None
            with open(args.items, "w", encoding="utf-8") as out:  # noqa: ASYNC230
                async with trio.open_nursery() as nursery:
                    nursery.start_soon(cdp.read)
                    if args.context:
                        context = (await cdp.send("Target.createBrowserContext"))["browserContextId"]
                    async with trio.open_nursery() as tabs:
                        for _ in range(args.concurrency):
                            tabs.start_soon(crawl_tab, cdp, urls, out, counts, context, args)
                    wall = time.monotonic() - t0
                    with trio.move_on_after(5):
                        await cdp.send("Browser.close")
                    nursery.cancel_scope.cancel()
    finally:
        proc.wait(timeout=10)
        shutil.rmtree(profile, ignore_errors=True)
    report(counts["done"], counts["failed"], crawl_s=wall)


if __name__ == "__main__":
    trio.run(main)
