"""Browser, BrowserContext and Tab: each owned by exactly one ``async with`` block.

Cleanup of each runs once, on exit of its block, shielded from the caller's
cancellation and bounded by its own deadline:

- a tab is closed politely (``Page.close`` on its session); if the target is not
  destroyed within a third of its budget it is closed from the browser side
  (``Target.closeTarget``), and as a last resort its renderer is crashed and it is
  closed again; a tab still not destroyed is counted in ``leaked_tabs``;
- a context is disposed (``Target.disposeBrowserContext``); if that fails or
  hangs (it has been seen to), its page targets are closed one by one and the
  dispose is tried once more; a context still not disposed is counted in
  ``leaked_contexts``, and its owner decides (the crawler restarts the browser).

Visibility: tabs that share a window (headless too) are hidden but the window's
active one (``document.visibilityState``): Chromium does not paint or raster them,
and ``requestAnimationFrame`` and IntersectionObserver do not run there.  So every
tab opens in a window of its own (``newWindow``), where it is the active tab, and
:meth:`Tab.set_visible` hides it (its window minimised) and shows it again, one tab
at a time.  (Focus emulation, ``Emulation.setFocusEmulationEnabled``, makes a hidden
tab's page *report* visible and run animation frames while the browser rasters
nothing; but a scroll there waits one to two seconds for a frame: the crawler shows
the window for those, see ``crawler.page``.)
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import attrs
import trio

from ._connection import DEFAULT_EVENT_BUFFER, Connection
from ._errors import CDPError, ProtocolError
from ._session import Session, attached_session

log = logging.getLogger("cdp.browser")

TAB_CLOSE_TIMEOUT_S = 5.0
CONTEXT_DISPOSE_TIMEOUT_S = 10.0
NO_SUCH_TARGET = "No target with given id found"  # Chromium's error message for an unknown targetId


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
        """Close any target from the browser side: True once the browser accepted (it
        reports ``Target.targetDestroyed`` a moment later), False if it had no such
        target (already gone).  Any other failure (no answer in time, an error, the
        connection lost) is raised: then whether the target still exists is unknown.
        If cancelled, the command may or may not have reached the browser."""
        try:
            result = await self.send("Target.closeTarget", targetId=target_id, timeout_s=timeout_s)
        except ProtocolError as exc:
            if exc.message == NO_SUCH_TARGET:
                return False
            raise
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
                    with contextlib.suppress(CDPError):
                        await self.close_target(target.target_id)

    async def create_context(self, *, proxy_server: str = "", proxy_bypass_list: str = "") -> BrowserContext:
        """Create an isolated browser context (``Target.createBrowserContext``), its
        traffic sent through ``proxy_server`` (``scheme://host:port``, no credentials:
        those are answered with ``Fetch.authRequired``) except for the hosts of
        ``proxy_bypass_list`` (empty: the browser's own proxy settings).

        The caller owns it and must ``await context.aclose()``; :meth:`new_context`
        is the scoped form.  Starts no task.  If cancelled before the command is
        sent, nothing is created; once it is sent, the command is shielded (bounded
        by its own deadline) and the context returned, so that the caller's
        cancellation, raised at its next checkpoint, cannot leave a context in the
        browser that nobody knows the id of.  If the command times out, the browser
        may still create it: such a context goes when the connection closes
        (``disposeOnDetach``).
        """
        await trio.lowlevel.checkpoint_if_cancelled()
        with trio.CancelScope(shield=True):
            params: dict[str, Any] = {"disposeOnDetach": True}
            if proxy_server:
                params["proxyServer"] = proxy_server
                if proxy_bypass_list:
                    params["proxyBypassList"] = proxy_bypass_list
            result = await self.send("Target.createBrowserContext", **params)
        context = BrowserContext(self, result["browserContextId"])
        self.contexts.add(context)
        return context

    @asynccontextmanager
    async def new_context(
        self, *, dispose_timeout_s: float = CONTEXT_DISPOSE_TIMEOUT_S
    ) -> AsyncIterator[BrowserContext]:
        """A browser context disposed on exit of the block (see :meth:`BrowserContext.aclose`)."""
        context = await self.create_context()
        try:
            yield context
        finally:
            await context.aclose(dispose_timeout_s)


class BrowserContext:
    """An isolated browser context: its own cookies, cache and storage."""

    def __init__(self, browser: Browser, context_id: str):
        self.browser = browser
        self.id = context_id
        self.tabs: set[Tab] = set()
        self.disposed = False
        self._close_started = False

    @property
    def closing(self) -> bool:
        """True once :meth:`aclose` was called (the dispose may still be in flight)."""
        return self._close_started

    async def create_tab(self, url: str = "about:blank") -> Tab:
        """Open a tab in this context, attached with a flatten session.

        The caller owns it and must ``await tab.aclose()``; :meth:`new_tab` is the
        scoped form.  If cancelled or failing half-way, a target that was already
        created is closed before the exception propagates.  ``Target.createTarget``
        itself is shielded once sent (bounded by its own deadline): cancelled while
        waiting for it, the browser would create a target whose id nobody learns.
        If it times out, the browser may still create the target: it goes with its
        context.  Starts no task.
        """
        browser = self.browser
        await trio.lowlevel.checkpoint_if_cancelled()
        with trio.CancelScope(shield=True):
            # In a window of its own: the window's active tab, visible (see the module docstring).
            created = await browser.send("Target.createTarget", url=url, browserContextId=self.id, newWindow=True)
        target_id = created["targetId"]
        tab = Tab(self, target_id)
        self.tabs.add(tab)
        try:
            result = await browser.send("Target.attachToTarget", targetId=target_id, flatten=True)
        except BaseException:
            await tab.aclose()
            raise
        tab.session_id = result["sessionId"]
        browser.connection.attach_session(tab.session_id, target_id)
        return tab

    @asynccontextmanager
    async def new_tab(
        self, url: str = "about:blank", *, close_timeout_s: float = TAB_CLOSE_TIMEOUT_S
    ) -> AsyncIterator[Tab]:
        """A tab closed on exit of the block (see :meth:`Tab.aclose`)."""
        tab = await self.create_tab(url)
        try:
            yield tab
        finally:
            await tab.aclose(close_timeout_s)

    async def aclose(self, timeout_s: float = CONTEXT_DISPOSE_TIMEOUT_S) -> None:
        """Dispose the context, once: a second call returns at once.

        Shielded from the caller's cancellation and bounded by ``timeout_s``; a
        context that could not be disposed is counted in ``browser.leaked_contexts``.
        """
        if self._close_started:
            return
        self._close_started = True
        with trio.move_on_after(timeout_s, shield=True):
            await self._dispose()
        if not self.disposed and not self.browser.connection.closed:
            self.browser.leaked_contexts += 1
            log.warning("context %s was not disposed within %g s", self.id, timeout_s)
        self.browser.contexts.discard(self)

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
                    with contextlib.suppress(CDPError):  # the dispose below decides
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
        self.visible = True  # as far as set_visible knows: a tab opens as its window's active one
        self._window_id: int | None = None

    @property
    def closing(self) -> bool:
        """True once :meth:`aclose` was called (the close may still be in flight)."""
        return self._close_started

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

    async def set_visible(self, visible: bool) -> None:
        """Show or hide the tab by restoring or minimising its window (a hidden page
        renders nothing and runs no animation frame); nothing is sent if the tab is
        already so.  Raises the browser's CDP error."""
        if visible == self.visible:
            return
        browser = self.context.browser
        if self._window_id is None:
            self._window_id = (await browser.send("Browser.getWindowForTarget", targetId=self.target_id))["windowId"]
        state = "normal" if visible else "minimized"
        await browser.send("Browser.setWindowBounds", windowId=self._window_id, bounds={"windowState": state})
        self.visible = visible

    def attached(self, params: dict[str, Any]) -> Session:
        """The :class:`Session` of a target the browser auto-attached under this tab
        (``params``: a ``Target.attachedToTarget`` event of this tab's session)."""
        return attached_session(self.connection, params)

    async def aclose(self, timeout_s: float = TAB_CLOSE_TIMEOUT_S) -> None:
        """Close the tab, once: a second call returns at once.

        Polite first (``Page.close``), then from the browser side
        (``Target.closeTarget``), then by crashing its renderer and closing it again;
        shielded from the caller's cancellation and bounded by ``timeout_s``.  A tab still open after that is counted in
        ``browser.leaked_tabs``.
        """
        if self._close_started:
            return
        self._close_started = True
        browser = self.context.browser
        with trio.move_on_after(timeout_s, shield=True):
            await self._close(timeout_s)
        if not self.closed:
            browser.leaked_tabs += 1
            log.warning("tab %s was not closed within %g s", self.target_id, timeout_s)
        if self.session_id is not None:
            browser.connection.detach_session(self.session_id)
        self.context.tabs.discard(self)

    async def _close(self, budget_s: float) -> None:
        # Three steps, a third of the budget each; "closed" means the browser reported the
        # target destroyed.  Chromium can leave a tab whose navigation is committing
        # (seen with about:blank and data: URLs) unclosable by both Page.close and
        # Target.closeTarget; crashing its renderer first makes it closable.
        conn = self.connection
        if conn.closed:
            self.closed = True  # the browser is gone: nothing left to close
            return
        sid = self.session_id
        step_s = budget_s / 3
        if sid is not None and conn.session_error(sid) is None:
            with trio.move_on_after(step_s):
                try:
                    await conn.send("Page.close", session_id=sid, timeout_s=step_s)
                    await conn.wait_session_gone(sid)
                    self.closed = True
                    return
                except CDPError:
                    pass
        browser = self.context.browser
        with trio.move_on_after(step_s):
            try:
                if await browser.close_target(self.target_id, timeout_s=step_s) and sid is not None:
                    await conn.wait_session_gone(sid)
                self.closed = True  # destroyed now, or already gone
                return
            except CDPError:
                pass  # no answer or an error: that does not mean it is gone
        if sid is not None:
            try:
                await conn.send("Page.crash", session_id=sid, timeout_s=step_s)
            except CDPError:
                pass  # the expected answer: TargetCrashed
        try:
            if await browser.close_target(self.target_id, timeout_s=step_s) and sid is not None:
                await conn.wait_session_gone(sid)
        except CDPError:
            self.closed = conn.closed  # unless the browser is gone with it, the tab is leaked
            return
        self.closed = True
