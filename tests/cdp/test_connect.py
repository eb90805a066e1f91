"""cdp.connect() to a Chromium the test started itself (a stand-in for a Chromium container)."""

from __future__ import annotations

import time

import httpx
import pytest
import trio

import cdp

from .conftest import ChromiumProcesses, HttpServer, free_port
from .test_navigation import evaluate, navigate


@pytest.mark.chromium
async def test_connect_http_endpoint_navigates_and_evaluates(
    chromium_process: ChromiumProcesses, http_server: HttpServer
) -> None:
    """connect("http://127.0.0.1:PORT") finds the browser websocket via /json/version and
    yields a Browser that opens contexts and tabs, navigates and evaluates like a launched one;
    leaving the block disposes its context but leaves the browser running."""
    port = free_port()
    proc = await chromium_process.start(port)
    with trio.fail_after(30):
        async with cdp.connect(f"http://127.0.0.1:{port}", timeout_s=20) as browser:
            assert browser.pid is None  # not ours to stop
            async with browser.new_context() as context, context.new_tab() as tab:
                await navigate(tab, http_server.url("/answer"))
                assert await evaluate(tab, "window.answer.value") == 42
                context_id = context.id
            contexts = (await browser.send("Target.getBrowserContexts"))["browserContextIds"]
            assert context_id not in contexts
        assert proc.poll() is None, "connect() must not stop a browser it did not launch"
        # The browser still serves a second client.
        async with cdp.connect(f"http://127.0.0.1:{port}", timeout_s=10) as again:
            assert "Chrome" in (await again.send("Browser.getVersion"))["product"]


@pytest.mark.chromium
async def test_connect_block_cancelled_from_outside_still_disposes_context_and_closes_tab(
    chromium_process: ChromiumProcesses,
) -> None:
    """When a scope around connect() is cancelled while a command is pending, the tab and
    context blocks inside still clean up over the connection (the reader is not cancelled
    with them): the tab is closed and the context disposed in the browser, which another
    client then sees."""
    port = free_port()
    await chromium_process.start(port)
    url = f"http://127.0.0.1:{port}"
    seen: dict = {}
    with trio.fail_after(30):
        with trio.move_on_after(20) as scope:
            async with cdp.connect(url, timeout_s=20) as browser:
                async with browser.new_context() as context, context.new_tab() as tab:
                    seen.update(context=context, tab=tab, browser=browser)
                    scope.deadline = trio.current_time() + 0.1
                    await tab.send("Runtime.evaluate", expression="new Promise(() => {})", awaitPromise=True)
        assert scope.cancelled_caught
        assert seen["tab"].closed
        assert seen["context"].disposed
        assert (seen["browser"].leaked_tabs, seen["browser"].leaked_contexts) == (0, 0)
        async with cdp.connect(url, timeout_s=10) as observer:
            contexts = (await observer.send("Target.getBrowserContexts"))["browserContextIds"]
            assert seen["context"].id not in contexts
            assert seen["tab"].target_id not in {t.target_id for t in await observer.targets()}


@pytest.mark.chromium
async def test_connect_retries_until_endpoint_comes_up(chromium_process: ChromiumProcesses) -> None:
    """connect() started before anything listens keeps retrying, and succeeds once Chromium
    (started later) opens its DevTools port."""
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    connected_at: list[float] = []
    version: list[dict] = []

    async def connect_early() -> None:
        async with cdp.connect(url, timeout_s=30) as browser:
            connected_at.append(time.monotonic())
            version.append(await browser.send("Browser.getVersion"))

    with trio.fail_after(40):
        async with trio.open_nursery() as nursery:
            nursery.start_soon(connect_early)
            await trio.sleep(1.0)  # several refused attempts (retry interval 0.25 s)
            assert connected_at == []
            started_at = time.monotonic()
            await chromium_process.start(port)
    assert connected_at and connected_at[0] > started_at
    assert "Chrome" in version[0]["product"]


async def test_connect_fails_with_endpoint_unavailable_naming_url_when_nothing_listens() -> None:
    """With nothing listening, connect() gives up after timeout_s with EndpointUnavailable
    naming the URL (http:// and ws:// alike), not sooner and not much later."""
    port = free_port()
    for url in (f"http://127.0.0.1:{port}", f"ws://127.0.0.1:{port}/devtools/browser/x"):
        started = time.monotonic()
        with pytest.raises(cdp.EndpointUnavailable) as info:
            async with cdp.connect(url, timeout_s=0.6):
                pytest.fail("connected to nothing")
        elapsed = time.monotonic() - started
        assert 0.5 <= elapsed < 3.0, elapsed
        assert info.value.url == url
        assert url in str(info.value)
        assert isinstance(info.value, cdp.BrowserError)


async def test_connect_rejects_url_without_devtools_scheme() -> None:
    """A URL that is neither http(s):// nor ws(s):// is refused at once with BrowserError."""
    with pytest.raises(cdp.BrowserError, match="ftp://"):
        async with cdp.connect("ftp://127.0.0.1:9222"):
            pytest.fail("connected")


@pytest.mark.chromium
async def test_connect_ws_url_carries_commands_and_tabs(chromium_process: ChromiumProcesses) -> None:
    """A ws://127.0.0.1:PORT/devtools/browser/<id> URL (as /json/version reports it) connects
    directly and carries commands and tabs."""
    port = free_port()
    await chromium_process.start(port)
    with trio.fail_after(30):
        ws_url = await cdp.discover_ws_url(f"http://127.0.0.1:{port}", timeout_s=20)
        assert ws_url.startswith(f"ws://127.0.0.1:{port}/devtools/browser/")
        # The same URL as a client that only speaks HTTP would read it.
        async with httpx.AsyncClient(headers={"Host": "localhost"}) as client:
            reported = (await client.get(f"http://127.0.0.1:{port}/json/version")).json()["webSocketDebuggerUrl"]
        assert reported.split("/devtools/")[1] == ws_url.split("/devtools/")[1]
        async with cdp.connect(ws_url, timeout_s=10) as browser:
            assert "Chrome" in (await browser.send("Browser.getVersion"))["product"]
            async with browser.new_context() as context, context.new_tab() as tab:
                assert await evaluate(tab, "6 * 7") == 42
