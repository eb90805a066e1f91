"""The connection's tables: no waiter or subscription outlives its command or block, and
messages nobody expects never break the reader."""

from __future__ import annotations

import json
import random
import time

import pytest
import trio

import cdp

NEVER = "new Promise(() => {})"


def assert_no_waiter(conn: cdp.Connection) -> None:
    assert len(conn._pending) == 0, conn._pending
    assert conn.statistics().pending_commands == 0


# -- cancellation and timeouts ------------------------------------------------------


@pytest.mark.chromium
async def test_command_cancelled_by_outer_scope_leaves_no_waiter_and_connection_works(
    browser: cdp.Browser, tab: cdp.Tab
) -> None:
    """A tab command and a browser command cancelled by an outer move_on_after raise nothing
    past the scope, leave no waiter in Connection._pending, and later commands succeed."""
    conn = browser.connection
    with trio.move_on_after(0.3) as scope:
        await tab.send("Runtime.evaluate", expression=NEVER, awaitPromise=True)
    assert scope.cancelled_caught
    assert_no_waiter(conn)
    with trio.move_on_after(0) as scope:  # expired already: written (shielded), then cancelled; late reply dropped
        await browser.send("Browser.getVersion")
    assert scope.cancelled_caught
    assert_no_waiter(conn)
    result = await tab.send("Runtime.evaluate", expression="20 + 22", returnByValue=True)
    assert result["result"]["value"] == 42
    assert "Chrome" in (await browser.send("Browser.getVersion"))["product"]
    assert_no_waiter(conn)
    assert browser.connected


@pytest.mark.chromium
async def test_command_timeout_raises_command_timeout_and_leaves_no_waiter(tab: cdp.Tab) -> None:
    """timeout_s on a command that never answers raises CommandTimeout (naming the method and
    the deadline) after about timeout_s; its waiter is gone and the tab keeps working."""
    conn = tab.connection
    started = time.monotonic()
    with pytest.raises(cdp.CommandTimeout) as info:
        await tab.send("Runtime.evaluate", timeout_s=0.3, expression=NEVER, awaitPromise=True)
    elapsed = time.monotonic() - started
    assert 0.3 <= elapsed < 2.0
    assert info.value.method == "Runtime.evaluate"
    assert info.value.timeout_s == 0.3
    assert_no_waiter(conn)
    result = await tab.send("Runtime.evaluate", expression="'alive'", returnByValue=True)
    assert result["result"]["value"] == "alive"


@pytest.mark.chromium
async def test_many_concurrent_commands_cancelled_at_random_points_leave_no_waiter(tab: cdp.Tab) -> None:
    """200 concurrent commands, each cancelled at a random moment (before writing, while
    waiting, or racing its reply), leave no waiter; the connection is still open and usable."""
    conn = tab.connection
    rng = random.Random(1234)
    outcomes = {"done": 0, "cancelled": 0}

    async def one(delay_s: float, deadline_s: float) -> None:
        with trio.move_on_after(deadline_s) as scope:
            await tab.send(
                "Runtime.evaluate",
                expression=f"new Promise(r => setTimeout(() => r(1), {delay_s * 1000:.0f}))",
                awaitPromise=True,
            )
            outcomes["done"] += 1
        if scope.cancelled_caught:
            outcomes["cancelled"] += 1

    with trio.fail_after(20):
        async with trio.open_nursery() as nursery:
            for _ in range(200):
                nursery.start_soon(one, rng.uniform(0, 0.05), rng.uniform(0, 0.08))
    assert outcomes["done"] + outcomes["cancelled"] == 200
    assert outcomes["cancelled"] > 0
    assert_no_waiter(conn)
    assert (await tab.send("Runtime.evaluate", expression="3", returnByValue=True))["result"]["value"] == 3


# -- subscriptions ------------------------------------------------------------------


def tab_listener_keys(tab: cdp.Tab) -> list:
    return [key for key in tab.connection._listeners if key[0] == tab.session_id]


@pytest.mark.chromium
async def test_listen_exit_unsubscribes_after_1000_cycles(tab: cdp.Tab) -> None:
    """Every exit of a tab.listen() block - normal, by an exception, by cancellation -
    removes its subscription: after 1,000 cycles no entry for the tab's session is left in
    Connection._listeners and statistics().subscriptions is 0."""
    conn = tab.connection
    for i in range(1000):
        kind = i % 4
        if kind == 0:
            async with tab.listen("Page.loadEventFired", "Runtime.consoleAPICalled"):
                pass
        elif kind == 1:
            with pytest.raises(KeyError):
                async with tab.listen("Page.loadEventFired"):
                    raise KeyError(i)
        elif kind == 2:
            with trio.CancelScope() as scope:
                async with tab.listen("Runtime.consoleAPICalled") as stream:
                    scope.cancel()
                    await stream.receive()
        else:
            async with tab.listen("Runtime.consoleAPICalled"):
                assert conn.statistics().subscriptions == 1
        assert tab_listener_keys(tab) == []
    assert conn.statistics().subscriptions == 0
    assert conn._sessions[tab.session_id].subscriptions == set()
    assert_no_waiter(conn)


@pytest.mark.chromium
async def test_slow_consumer_drops_overflow_and_never_delays_replies(tab: cdp.Tab) -> None:
    """A subscription with buffer=5 that nobody reads while 300 events arrive keeps the 5
    oldest, counts the other 295 in stream.dropped (and in statistics), and command replies
    still arrive at once; after the block the tab's own events flow again to a new stream."""
    conn = tab.connection
    await tab.send("Runtime.enable")
    async with tab.listen("Runtime.consoleAPICalled", buffer=5) as stream:
        with trio.fail_after(5):
            await tab.send("Runtime.evaluate", expression="for (let i = 0; i < 300; i++) console.log(i)")
            # Console events precede the evaluate's reply on the wire, so all are counted now.
            assert stream.dropped == 295
            for _ in range(20):
                result = await tab.send("Runtime.evaluate", expression="7 * 6", returnByValue=True)
                assert result["result"]["value"] == 42
        assert conn.statistics().events_dropped >= 295
        values = [stream.receive_nowait().params["args"][0]["value"] for _ in range(5)]
        assert values == [0, 1, 2, 3, 4]
        with pytest.raises(trio.WouldBlock):
            stream.receive_nowait()
    assert conn.statistics().events_dropped >= 295  # counted after unsubscription too
    async with tab.listen("Runtime.consoleAPICalled") as stream:
        await tab.send("Runtime.evaluate", expression="console.log('after')")
        with trio.fail_after(5):
            event = await stream.receive()
        assert event.params["args"][0]["value"] == "after"
        assert event.session_id == tab.session_id
        assert stream.dropped == 0


# -- unexpected messages ------------------------------------------------------------


@pytest.mark.chromium
async def test_unknown_events_sessions_and_replies_are_dropped_and_connection_works(
    browser: cdp.Browser, tab: cdp.Tab
) -> None:
    """_dispatch of an unknown method, an event for an unknown sessionId, replies (result
    or error) for ids nobody waits for, lifecycle events for unknown targets/sessions and
    messages with neither id nor method changes nothing: real commands still work, the
    tab's session is still attached, and a listened event is still routed."""
    conn = browser.connection
    before = conn.statistics()
    unexpected = [
        {"method": "No.suchEvent", "params": {"x": 1}},
        {"method": "Runtime.consoleAPICalled", "sessionId": "NO-SUCH-SESSION", "params": {}},
        {"method": "Page.loadEventFired", "sessionId": "NO-SUCH-SESSION"},
        {"id": 10**9, "result": {"value": 1}},
        {"id": 10**9 + 1, "error": {"code": -32000, "message": "late"}},
        {"id": 10**9 + 2},
        {"method": "Target.targetCrashed", "params": {"targetId": "NO-SUCH-TARGET"}},
        {"method": "Inspector.targetCrashed", "sessionId": "NO-SUCH-SESSION", "params": {}},
        {"method": "Target.detachedFromTarget", "params": {"sessionId": "NO-SUCH-SESSION"}},
        {"method": "Target.targetDestroyed", "params": {"targetId": "NO-SUCH-TARGET"}},
        {"method": "Target.targetDestroyed", "params": None},
        {"params": {"orphan": True}},
        {},
    ]
    for message in unexpected:
        conn._dispatch(message)
    assert not conn.closed
    assert tab.error is None
    after = conn.statistics()
    assert (after.pending_commands, after.sessions, after.subscriptions) == (
        before.pending_commands,
        before.sessions,
        before.subscriptions,
    )
    assert (await tab.send("Runtime.evaluate", expression="1 + 1", returnByValue=True))["result"]["value"] == 2
    assert "Chrome" in (await browser.send("Browser.getVersion"))["product"]
    async with browser.listen("Custom.event") as stream:
        conn._dispatch({"method": "Custom.event", "params": {"n": 1}})
        conn._dispatch({"method": "Custom.event", "sessionId": tab.session_id, "params": {"n": 2}})
        event = stream.receive_nowait()
        assert (event.method, event.params, event.session_id) == ("Custom.event", {"n": 1}, None)
        with pytest.raises(trio.WouldBlock):
            stream.receive_nowait()


class FakeTransport:
    """A ``cdp.Transport`` that yields ``messages`` and then closes as a websocket
    closed with code 1000 would."""

    def __init__(self, messages: list[str]):
        self.messages = list(messages)

    async def receive_text(self) -> str:
        await trio.lowlevel.checkpoint()
        if not self.messages:
            raise cdp.TransportClosed("websocket closed (code 1000, bye)")
        return self.messages.pop(0)

    async def send_text(self, text: str) -> None:
        await trio.lowlevel.checkpoint()

    async def aclose(self) -> None:
        await trio.lowlevel.checkpoint()


async def test_reader_survives_malformed_messages_and_ends_with_connection_lost() -> None:
    """The reader logs and skips messages it cannot parse or dispatch (bad JSON, a JSON
    list, a reply whose error is not an object) and keeps routing the next ones; when the
    websocket closes it fails the connection with ConnectionLost naming the close code."""
    messages = [
        "{not json",
        "[1, 2, 3]",
        json.dumps({"id": 1, "error": "not an object"}),
        json.dumps({"method": "Custom.event", "params": {"n": 1}}),
    ]
    conn = cdp.Connection(FakeTransport(messages), name="fake", command_timeout_s=1.0)
    async with conn.listen(["Custom.event"]) as stream:
        with trio.fail_after(5):
            await conn.run_reader()
        assert stream.receive_nowait().params == {"n": 1}
        with pytest.raises(cdp.ConnectionLost, match="code 1000"):
            stream.receive_nowait()
    assert conn.statistics().messages_received == 4
    assert isinstance(conn.error, cdp.ConnectionLost)
    with pytest.raises(cdp.ConnectionLost):
        await conn.send("Browser.getVersion")


async def test_open_connection_to_non_websocket_endpoint_raises_connection_lost(http_server) -> None:
    """A websocket handshake that fails (a plain HTTP server answering 404, or a closed port)
    raises ConnectionLost naming the URL - itself, not inside an ExceptionGroup - and
    leaves no task behind (the block returns)."""
    for url in (f"ws://127.0.0.1:{http_server.port}/devtools/browser/nope", "ws://127.0.0.1:1/devtools/browser/x"):
        with trio.fail_after(10), pytest.raises(cdp.ConnectionLost) as info:
            async with cdp.open_connection(url, connect_timeout_s=5):
                pytest.fail("connected")
        assert type(info.value) is cdp.ConnectionLost
        assert url in str(info.value)


def traceback_length(exc: BaseException) -> int:
    n, tb = 0, exc.__traceback__
    while tb is not None:
        n, tb = n + 1, tb.tb_next
    return n


async def test_shared_errors_raised_repeatedly_keep_a_short_traceback() -> None:
    """The connection's error and a crashed session's error are single objects raised by
    every later send (and stream); each raise starts a fresh traceback, so 500 failed calls
    neither grow it (nor keep their frames alive)."""
    conn = cdp.Connection(FakeTransport([]), name="fake", command_timeout_s=1.0)
    conn.attach_session("S1", "T1")
    conn._dispatch({"method": "Target.targetCrashed", "params": {"targetId": "T1"}})
    for _ in range(500):
        with pytest.raises(cdp.TargetCrashed) as crashed:
            await conn.send("Runtime.evaluate", session_id="S1")
    assert traceback_length(crashed.value) < 10
    async with conn.listen(["Page.loadEventFired"], session_id="S1") as stream:
        for _ in range(500):
            with pytest.raises(cdp.TargetCrashed) as crashed:
                await stream.receive()
    assert traceback_length(crashed.value) < 10
    await conn.run_reader()  # the fake transport closes: the connection is lost
    for _ in range(500):
        with pytest.raises(cdp.ConnectionLost) as lost:
            await conn.send("Browser.getVersion")
    assert traceback_length(lost.value) < 10
