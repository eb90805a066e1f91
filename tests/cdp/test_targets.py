"""Tabs and contexts going away: a crashed renderer, a hung renderer, context disposal."""

from __future__ import annotations

import time

import pytest
import trio

import cdp
from tests.cdp.conftest import HttpServer, wait_until
from tests.cdp.test_navigation import evaluate, navigate

pytestmark = pytest.mark.chromium

NEVER = "new Promise(() => {})"


async def test_renderer_crash_fails_pending_and_later_commands_and_stream_with_target_crashed(
    browser: cdp.Browser, http_server: HttpServer
) -> None:
    """Page.crash on one tab: its command pending since before the crash, Page.crash itself
    and every later command fail with TargetCrashed within 2 s, its listen() stream ends with
    TargetCrashed, and a tab in another context of the same browser keeps working. The
    crashed tab is still closed on exit of its block."""
    async with browser.new_context() as doomed_context, browser.new_context() as other_context:
        async with doomed_context.new_tab() as doomed, other_context.new_tab() as other:
            await navigate(doomed, http_server.url("/answer"))
            await navigate(other, http_server.url("/other"))
            results: dict[str, BaseException | None] = {}

            async def pending() -> None:
                try:
                    await doomed.send("Runtime.evaluate", expression=NEVER, awaitPromise=True)
                    results["pending"] = None
                except cdp.CDPError as exc:
                    results["pending"] = exc

            async def consume() -> None:
                async with doomed.listen("Page.loadEventFired", "Runtime.consoleAPICalled") as stream:
                    listening.set()
                    try:
                        async for _ in stream:
                            pass
                        results["stream"] = None
                    except cdp.CDPError as exc:
                        results["stream"] = exc

            listening = trio.Event()
            with trio.fail_after(10):
                async with trio.open_nursery() as nursery:
                    nursery.start_soon(pending)
                    nursery.start_soon(consume)
                    await listening.wait()
                    await wait_until(lambda: browser.connection.statistics().pending_commands == 1)
                    crashed_at = time.monotonic()
                    with trio.fail_after(2), pytest.raises(cdp.TargetCrashed):
                        await doomed.send("Page.crash")
                await wait_until(lambda: len(results) == 2, timeout_s=2)
            assert time.monotonic() - crashed_at < 2.0
            assert isinstance(results["pending"], cdp.TargetCrashed), repr(results["pending"])
            assert isinstance(results["stream"], cdp.TargetCrashed), repr(results["stream"])
            assert isinstance(doomed.error, cdp.TargetCrashed)
            later_started = time.monotonic()
            with pytest.raises(cdp.TargetCrashed):
                await doomed.send("Runtime.evaluate", expression="1")
            assert time.monotonic() - later_started < 1.0  # at once: no round trip
            async with doomed.listen("Page.loadEventFired") as stream:
                with pytest.raises(cdp.TargetCrashed):
                    await stream.receive()
            # The other tab, in its own renderer, is unaffected.
            assert await evaluate(other, "document.title") == "other"
            assert browser.connected
            assert browser.connection.statistics().pending_commands == 0
            doomed_id = doomed.target_id
        assert browser.leaked_tabs == 0
        assert doomed_id not in {t.target_id for t in await browser.targets()}


async def test_hung_renderer_tab_is_closed_within_budget_and_gone_from_targets(
    browser: cdp.Browser, http_server: HttpServer
) -> None:
    """A tab whose renderer spins in while(true){} (started by setTimeout after navigating)
    is closed on exit of its block within its close budget (5 s; asserted < 6 s), is not
    counted as leaked, and is no longer in browser.targets()."""
    async with browser.new_context() as context:
        async with context.new_tab() as tab:
            await navigate(tab, http_server.url("/answer"))
            await tab.send("Runtime.evaluate", expression="setTimeout(() => { while (true) {} }, 50)")
            await trio.sleep(0.2)
            with pytest.raises(cdp.CommandTimeout):  # the renderer really is hung
                await tab.send("Runtime.evaluate", timeout_s=0.5, expression="1")
            target_id = tab.target_id
            exit_started = time.monotonic()
        close_s = time.monotonic() - exit_started
        assert close_s < 6.0, close_s
        assert tab.closed
        assert browser.leaked_tabs == 0
        assert target_id not in {t.target_id for t in await browser.targets()}
    assert browser.leaked_contexts == 0


async def test_context_exit_disposes_context_and_its_pages(browser: cdp.Browser, http_server: HttpServer) -> None:
    """After new_context() exits, Target.getBrowserContexts no longer lists it and no target
    of it remains - including pages created in it without a Tab block."""
    async with browser.new_context() as context:
        async with context.new_tab() as tab:
            await navigate(tab, http_server.url("/answer"))
        # Pages nobody closes: only the context's disposal can remove them.
        for path in ("/answer", "/other"):
            await browser.send("Target.createTarget", url=http_server.url(path), browserContextId=context.id)
        contexts = (await browser.send("Target.getBrowserContexts"))["browserContextIds"]
        assert context.id in contexts
        pages = [t for t in await browser.targets() if t.browser_context_id == context.id and t.type == "page"]
        assert len(pages) == 2
        context_id = context.id
    assert context.disposed
    assert browser.leaked_contexts == 0
    assert context not in browser.contexts
    contexts = (await browser.send("Target.getBrowserContexts"))["browserContextIds"]
    assert context_id not in contexts
    assert [t for t in await browser.targets() if t.browser_context_id == context_id] == []


async def test_every_tab_is_visible_in_a_window_of_its_own_until_it_is_hidden(
    browser: cdp.Browser, http_server: HttpServer
) -> None:
    """Every tab opens as the active tab of a window of its own: all of a context's tabs
    are visible and run animation frames, whichever opened last.  ``set_visible(False)``
    hides one (and only it) until ``set_visible(True)``."""
    visibility = "document.visibilityState"
    frames = "new Promise((r) => { requestAnimationFrame(() => r(true)); setTimeout(() => r(false), 1000); })"
    context = await browser.create_context()
    try:
        tabs = [await context.create_tab() for _ in range(3)]
        await navigate(tabs[0], http_server.url("/answer"))
        assert [await evaluate(tab, visibility) for tab in tabs] == ["visible"] * 3
        assert [await evaluate(tab, frames, awaitPromise=True) for tab in tabs] == [True] * 3
        await tabs[1].set_visible(False)
        assert [await evaluate(tab, visibility) for tab in tabs] == ["visible", "hidden", "visible"]
        assert await evaluate(tabs[1], frames, awaitPromise=True) is False
        await tabs[1].set_visible(True)
        assert await evaluate(tabs[1], visibility) == "visible"
    finally:
        await context.aclose()
    assert context.disposed
