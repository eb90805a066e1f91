"""Fault matrix, part 2: the browser and the link to it fail, against real Chromium.

- the browser process is SIGKILLed mid-crawl: the crawl goes on in a relaunched one;
- the websocket is cut while commands are pending (a TCP proxy the test severs
  between the crawler and a Chromium the test launched): the engine reconnects;
- the browser stops answering but keeps the socket open (the proxy swallows
  everything): commands time out, the heartbeat notices, the engine reconnects.

Each ends with ``assert_invariants``; on the connect path the browser's own lists
are also read at the end through the test's own connection.
"""

from __future__ import annotations

import os
import signal
from urllib.parse import urlsplit

import pytest
import trio

import cdp
from crawler.run.supervisor import BROWSER_PING_INTERVAL_S
from tests.cdp.conftest import WITH_DEVTOOLS_PORT, devtools_ws_url
from tests.faults.conftest import assert_invariants, count_done, matrix_config, run_crawl, wait_for
from tests.faults.proxy import CdpProxy

pytestmark = pytest.mark.chromium


def slow_pages(shop, n: int, delay_s: float) -> list[str]:
    return [f"{shop.base}/slow/{i}?s={delay_s}" for i in range(1, n + 1)]


async def assert_browser_holds_nothing_of_ours(owner: cdp.Browser, timeout_s: float = 10.0) -> None:
    """Through the test's own connection: no page target and no context is left (the
    browser disposes a closed connection's contexts a moment after it closes)."""
    pages, contexts = None, None
    with trio.move_on_after(timeout_s):
        while True:
            pages = [t for t in await owner.targets() if t.type == "page"]
            contexts = (await owner.send("Target.getBrowserContexts"))["browserContextIds"]
            if not pages and not contexts:
                return
            await trio.sleep(0.1)
    raise AssertionError(f"the browser still holds pages {pages} and contexts {contexts}")


async def test_browser_sigkilled_mid_crawl_is_relaunched_and_the_crawl_goes_on(shop, tmp_path):
    """SIGKILL to the browser process while pages are in flight: in-flight jobs are
    retried on a relaunched browser, every URL ends done exactly once, and neither
    browser leaves a process (the killed one's renderers included) or a profile."""
    urls = slow_pages(shop, 15, 0.3)
    killed: list[int] = []

    async def kill_the_browser(running):
        await wait_for(
            lambda: (
                count_done(running.store) >= 3 and running.engine.statistics().jobs.in_flight >= 2 and running.browser
            )
        )
        killed.append(running.browser.pid)
        os.kill(running.browser.pid, signal.SIGKILL)

    crawl = await run_crawl(matrix_config(tmp_path, urls), during=kill_the_browser)
    await assert_invariants(crawl, shop, urls, done=set(urls))
    assert killed and crawl.engine.statistics().browser.restarts == 1
    assert crawl.browsers[-1].pid != killed[0]
    assert len(crawl.watcher.profiles) == 2  # two browsers, both profiles removed


@pytest.fixture
async def owned_browser():
    """A Chromium the test launched itself, with a DevTools port for the crawler to
    connect to."""
    async with cdp.launch(args=WITH_DEVTOOLS_PORT) as browser:
        yield browser


async def start_proxy(nursery, browser: cdp.Browser) -> tuple[CdpProxy, str]:
    """A proxy in front of ``browser``'s DevTools port, and the websocket URL through it."""
    ws_url = await devtools_ws_url(browser)
    proxy = CdpProxy(urlsplit(ws_url).port)
    await nursery.start(proxy.serve)
    return proxy, proxy.url(ws_url)


async def test_websocket_cut_while_commands_are_pending_reconnects(shop, tmp_path, nursery, owned_browser):
    """The proxy between crawler and browser is severed while commands wait for their
    replies: they fail at once (no waiting out a deadline), the engine reconnects
    through the same address and finishes; the browser disposed everything of the
    first connection, and holds nothing of the crawler's at the end."""
    proxy, proxy_url = await start_proxy(nursery, owned_browser)
    urls = slow_pages(shop, 12, 0.5)
    cfg = matrix_config(tmp_path, urls, browser={"cdp_url": proxy_url})
    cut_at: list[float] = []

    async def cut(running):
        await wait_for(lambda: count_done(running.store) >= 3)
        await wait_for(lambda: running.browser is not None and running.browser.connection.statistics().pending_commands)
        assert proxy.sever() == 1  # no checkpoint since the check: commands are pending now
        cut_at.append(trio.current_time())
        await wait_for(lambda: not running.browser.connected, timeout_s=2.0)

    crawl = await run_crawl(cfg, during=cut, owned=owned_browser)
    await assert_invariants(crawl, shop, urls, done=set(urls), launched=False)
    assert crawl.engine.statistics().browser.restarts == 1 and proxy.sessions == 2
    assert [end["connected"] for end in crawl.ends] == [False, True]
    await assert_browser_holds_nothing_of_ours(owned_browser)


async def test_browser_that_stops_answering_is_dropped_and_the_crawl_reconnects(shop, tmp_path, nursery, owned_browser):
    """The proxy swallows everything both ways but keeps the socket open: commands time
    out, the heartbeat finds the browser wedged within its interval plus the command
    deadline, the engine aborts that connection (cleanup skips it) and reconnects; the
    crawl finishes, and the browser holds nothing of the crawler's at the end."""
    proxy, proxy_url = await start_proxy(nursery, owned_browser)
    urls = slow_pages(shop, 12, 0.3)
    cfg = matrix_config(
        tmp_path,
        urls,
        browser={"cdp_url": proxy_url, "command_timeout_s": 3.0},
        watchdog={"timeout_s": 20.0, "jitter_s": 0.0},
    )
    wedged_at: list[float] = []

    async def wedge(running):
        await wait_for(lambda: count_done(running.store) >= 3)
        assert proxy.swallow() == 1
        wedged_at.append(trio.current_time())
        wedged = running.browser
        await wait_for(lambda: not wedged.connected, timeout_s=BROWSER_PING_INTERVAL_S + 3.0 + 5.0)
        wedged_at.append(trio.current_time())

    crawl = await run_crawl(cfg, during=wedge, owned=owned_browser)
    await assert_invariants(crawl, shop, urls, done=set(urls), launched=False)
    assert crawl.engine.statistics().browser.restarts == 1 and proxy.sessions == 2
    noticed_after = wedged_at[1] - wedged_at[0]
    assert noticed_after <= BROWSER_PING_INTERVAL_S + 3.0 + 2.0, noticed_after  # interval + deadline + slack
    await assert_browser_holds_nothing_of_ours(owned_browser)
