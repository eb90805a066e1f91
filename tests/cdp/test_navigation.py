"""Launch, navigate to a page served on 127.0.0.1, read values back; large results; errors."""

from __future__ import annotations

import pytest
import trio

import cdp
from tests.cdp.conftest import HttpServer

pytestmark = pytest.mark.chromium


async def navigate(tab: cdp.Tab, url: str, *, timeout_s: float = 10.0) -> None:
    """Page.navigate and wait for that page's load event (subscribed before navigating)."""
    await tab.send("Page.enable")
    async with tab.listen("Page.loadEventFired") as loads:
        with trio.fail_after(timeout_s):
            result = await tab.send("Page.navigate", url=url)
            assert "errorText" not in result, result
            await loads.receive()


async def evaluate(tab: cdp.Tab, expression: str, **kwargs) -> object:
    result = await tab.send("Runtime.evaluate", expression=expression, returnByValue=True, **kwargs)
    assert "exceptionDetails" not in result, result
    return result["result"].get("value")


async def test_launch_navigate_and_evaluate_reads_value_from_served_page(http_server: HttpServer) -> None:
    """launch() -> new_context() -> new_tab(): a page served on 127.0.0.1 loads (loadEventFired
    arrives on tab.listen after Page.enable) and Runtime.evaluate(returnByValue) returns its values."""
    with trio.fail_after(30):
        async with cdp.launch() as browser, browser.new_context() as context, context.new_tab() as tab:
            await navigate(tab, http_server.url("/answer"))
            assert await evaluate(tab, "window.answer") == {"value": 42, "items": ["a", "b"]}
            assert await evaluate(tab, "document.title") == "answer page"
            assert await evaluate(tab, "location.href") == http_server.url("/answer")
            assert "/answer" in http_server.requests
            # A second navigation in the same tab works the same way.
            await navigate(tab, http_server.url("/other"))
            assert await evaluate(tab, "document.querySelector('p').textContent") == "other"


async def test_large_result_of_20_mib_arrives_intact(tab: cdp.Tab) -> None:
    """A 20 MiB string returned by value crosses the websocket whole: exact length and content."""
    size = 20 * 1024 * 1024
    with trio.fail_after(30):
        value = await evaluate(tab, f"'x'.repeat({size})")
    assert isinstance(value, str)
    assert len(value) == size
    assert value == "x" * size
    # The connection is still usable after a message that large.
    assert await evaluate(tab, "1 + 1") == 2


async def test_unknown_method_raises_protocol_error_with_code(browser: cdp.Browser, tab: cdp.Tab) -> None:
    """An error answer becomes ProtocolError (method, code, message) on both browser and tab
    sessions; the connection keeps working and no waiter is left."""
    with pytest.raises(cdp.ProtocolError) as info:
        await tab.send("No.suchMethod")
    assert info.value.method == "No.suchMethod"
    assert info.value.code == -32601
    with pytest.raises(cdp.ProtocolError):
        await browser.send("Target.closeTarget", targetId="no-such-target")
    assert await evaluate(tab, "'still fine'") == "still fine"
    assert browser.connection.statistics().pending_commands == 0


async def test_tab_send_after_its_block_exited_raises_closed_resource_error(browser: cdp.Browser) -> None:
    """Using a tab after its ``async with`` exited is a caller bug: trio.ClosedResourceError,
    and its session is forgotten by the connection."""
    async with browser.new_context() as context:
        async with context.new_tab() as tab:
            assert browser.connection.statistics().sessions == 1
        assert tab.closed
        with pytest.raises(trio.ClosedResourceError):
            await tab.send("Runtime.evaluate", expression="1")
        assert browser.connection.statistics().sessions == 0
