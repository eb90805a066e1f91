"""Browser, BrowserContext and Tab: each owned by exactly one ``async with`` block.

Cleanup of each runs once, on exit of its block, shielded from the caller's
cancellation and bounded by its own deadline:

- a tab is closed politely (``Page.close`` on its session); if the target is not
  gone within half its budget it is closed from the browser side
  (``Target.closeTarget``); a tab still not gone is counted in ``leaked_tabs``;
- a context is disposed (``Target.disposeBrowserContext``); if that fails or
  hangs (it has been seen to), its page targets are closed one by one and the
  dispose is tried once more; a context still not disposed is counted in
  ``leaked_contexts``, and its owner decides (the crawler restarts the browser).
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import attrs
import trio

from ._connection import DEFAULT_EVENT_BUFFER, Connection
from ._errors import CDPError

log = logging.getLogger("cdp.browser")

TAB_CLOSE_TIMEOUT_S = 5.0
CONTEXT_DISPOSE_TIMEOUT_S = 10.0


@attrs.frozen
class TargetInfo:
    """A target as ``Target.getTargets`` reports it."""

    target_id: str
    type: str
    url: str
    browser_context_id: str | None
    opener_id: str | None
    attached: bool

    @classmethod
    def from_cdp(cls, info: dict[str, Any]) -> TargetInfo:
        return cls(
            target_id=info["targetId"],
            type=info.get("type", ""),
            url=info.get("url", ""),
            browser_context_id=info.get("browserContextId"),
            opener_id=info.get("openerId"),
            attached=info.get("attached", False),
        )


class Browser:
    """A connected browser. Obtain one from :func:`cdp.launch` or :func:`cdp.connect`."""

    def __init__(self, conn: Connection, *, pid: int | None = None):
        self.connection = conn
        self.pid = pid  # the browser process, when we launched it
        self.contexts: set[BrowserContext] = set()
        self.leaked_tabs = 0
        self.leaked_contexts = 0

    @property
    def connected(self) -> bool:
        return not self.connection.closed

    async def send(self, method: str, /, timeout_s: float | None = None, **params: Any) -> dict[str, Any]:
        """Send a browser-level command; see :meth:`Connection.send` for errors and cancellation."""
        return await self.connection.send(method, params, timeout_s=timeout_s)

    def listen(self, *methods: str, buffer: int = DEFAULT_EVENT_BUFFER):
        """Async context manager: a stream of browser-level events (e.g. ``Target.targetCreated``)."""
        return self.connection.listen(methods, buffer=buffer)

    async def targets(self) -> list[TargetInfo]:
        """The browser's own list of targets (``Target.getTargets``)."""
        result = await self.send("Target.getTargets")
        return [TargetInfo.from_cdp(t) for t in result["targetInfos"]]

    async def close_target(self, target_id: str, *, timeout_s: float | None = None) -> bool:
        """Close any target from the browser side. False if it was already gone."""
        try:
            result = await self.send("Target.closeTarget", targetId=target_id, timeout_s=timeout_s)
        except CDPError:
            return False
        return bool(result.get("success", True))

    async def _start(self, *, close_initial_tabs: bool = False) -> None:
        # Browser-level discovery gives Target.targetCrashed/targetDestroyed for every
        # target, which is how a crashed or closed tab fails its commands at once.
        await self.send("Target.setDiscoverTargets", discover=True)
        if close_initial_tabs:
            # A browser we launched opens one about:blank that nobody owns; closing it
            # makes the target list exactly what our contexts and tabs hold.
            for target in await self.targets():
                if target.type == "page":
                    await self.close_target(target.target_id)

    @asynccontextmanager
    async def new_context(
        self, *, dispose_timeout_s: float = CONTEXT_DISPOSE_TIMEOUT_S
    ) -> AsyncIterator[BrowserContext]:
        """Create an isolated browser context (``Target.createBrowserContext``), disposed on exit.

        Disposal runs once, shielded, bounded by ``dispose_timeout_s``; see the module
        docstring for the fallback.  Starts no task.
        """
        result = await self.send("Target.createBrowserContext", disposeOnDetach=True)
        context = BrowserContext(self, result["browserContextId"])
        self.contexts.add(context)
        try:
            yield context
        finally:
            with trio.move_on_after(dispose_timeout_s, shield=True):
                await context._dispose()
            if not context.disposed:
                self.leaked_contexts += 1
                log.warning("context %s was not disposed within %g s", context.id, dispose_timeout_s)
            self.contexts.discard(context)


class BrowserContext:
    """An isolated browser context: its own cookies, cache and storage."""

    def __init__(self, browser: Browser, context_id: str):
        self.browser = browser
        self.id = context_id
        self.tabs: set[Tab] = set()
        self.disposed = False

    @asynccontextmanager
    async def new_tab(
        self, url: str = "about:blank", *, close_timeout_s: float = TAB_CLOSE_TIMEOUT_S
    ) -> AsyncIterator[Tab]:
        """Open a tab in this context, attached with a flatten session; closed on exit.

        If cancelled half-way, a target that was already created is closed before
        the cancellation propagates.  Starts no task.
        """
        browser = self.browser
        target_id = (await browser.send("Target.createTarget", url=url, browserContextId=self.id))["targetId"]
        tab = Tab(self, target_id)
        self.tabs.add(tab)
        try:
            result = await browser.send("Target.attachToTarget", targetId=target_id, flatten=True)
            tab.session_id = result["sessionId"]
            browser.connection.attach_session(tab.session_id, target_id)
            yield tab
        finally:
            with trio.move_on_after(close_timeout_s, shield=True):
                await tab._close(close_timeout_s)
            if not tab.closed:
                browser.leaked_tabs += 1
                log.warning("tab %s was not closed within %g s", target_id, close_timeout_s)
            if tab.session_id is not None:
                browser.connection.detach_session(tab.session_id)
            self.tabs.discard(tab)

    async def _dispose(self) -> None:
        browser = self.browser
        if browser.connection.closed:
            return  # the browser is gone, and its contexts with it
        try:
            await browser.send("Target.disposeBrowserContext", browserContextId=self.id)
            self.disposed = True
            return
        except CDPError as exc:
            log.warning("disposing context %s failed (%s): closing its tabs", self.id, exc)
        try:
            for target in await browser.targets():
                if target.browser_context_id == self.id:
                    await browser.close_target(target.target_id)
            await browser.send("Target.disposeBrowserContext", browserContextId=self.id)
            self.disposed = True
        except CDPError as exc:
            log.warning("context %s could not be disposed: %s", self.id, exc)


class Tab:
    """A page target with its flatten session."""

    def __init__(self, context: BrowserContext, target_id: str):
        self.context = context
        self.target_id = target_id
        self.session_id: str | None = None
        self.closed = False
        self._close_started = False

    @property
    def connection(self) -> Connection:
        return self.context.browser.connection

    @property
    def error(self) -> CDPError | None:
        """Why this tab can no longer take commands (crashed, closed, connection lost), or None."""
        if self.session_id is None:
            return None
        return self.connection.error or self.connection.session_error(self.session_id)

    async def send(self, method: str, /, timeout_s: float | None = None, **params: Any) -> dict[str, Any]:
        """Send a command to this tab's session.

        Raises TargetCrashed at once once the renderer crashed, TargetClosed once
        the target is gone, ConnectionLost once the browser is; see
        :meth:`Connection.send` for cancellation.
        """
        if self.closed or self._close_started or self.session_id is None:
            raise trio.ClosedResourceError(f"tab {self.target_id} is closed")
        return await self.connection.send(method, params, session_id=self.session_id, timeout_s=timeout_s)

    def listen(self, *methods: str, buffer: int = DEFAULT_EVENT_BUFFER):
        """Async context manager yielding an :class:`EventStream` of this tab's events.

        Unsubscribed on exit; starts no task.  The stream ends with TargetCrashed /
        TargetClosed / ConnectionLost when the tab or browser goes away.
        """
        if self.session_id is None:
            raise trio.ClosedResourceError(f"tab {self.target_id} is not attached")
        return self.connection.listen(methods, session_id=self.session_id, buffer=buffer)

    async def _close(self, budget_s: float) -> None:
        """Close the target once: politely, then from the browser side."""
        if self._close_started:
            return
        self._close_started = True
        conn = self.connection
        if conn.closed:
            self.closed = True  # the browser is gone: nothing left to close
            return
        sid = self.session_id
        if sid is not None and conn.session_error(sid) is None:
            with trio.move_on_after(budget_s / 2):
                try:
                    await conn.send("Page.close", session_id=sid, timeout_s=budget_s / 2)
                    await conn.wait_session_gone(sid)
                    self.closed = True
                    return
                except CDPError:
                    pass
        # Polite close failed, timed out (a hung renderer) or the tab crashed.
        if await self.context.browser.close_target(self.target_id):
            if sid is not None:
                await conn.wait_session_gone(sid)
        self.closed = True
