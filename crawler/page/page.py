"""The page a handler works on: one job's tab, with the job's request, its pushed items
and its enqueued links.

A :class:`Page` is made by :func:`open_page` for one job, inside the job's watchdog
scope, and lives only as long as that ``async with`` block: it owns one event
subscription and one task (its event reader), both ended on exit.  It owns nothing
the handler must clean up: the tab belongs to the job's lease, and what the handler
pushed and enqueued is committed by the job, with its outcome, in one transaction.

Every await in a Page method is a plain trio checkpoint: when the watchdog expires,
the handler is cancelled wherever it waits (``wait_for``, ``click``, ``evaluate``...),
and nothing it pushed is stored.

Pacing: in a crawl with gaps between requests (``[rate_limit] wait_ms``), every
navigation of the main frame, whatever starts it (``goto``, a click, the page's own
script), is a document request that the browser pauses (``Fetch`` domain, enabled on
each tab by :func:`prepare_tab`) until the reader has taken the host's rate-limit turn
for it, and the turn is held until the request has left; so the gaps are the ones the
server sees.  Without gaps nothing is intercepted; ``goto`` only waits out a host's
back-off (a 429's Retry-After).

Forbidden URLs (``file:``, ``chrome:``, ``devtools:``...: ``crawler.urls.FORBIDDEN_SCHEMES``):
``goto`` refuses them, and any other URL that is not http(s), before sending anything
(PageFailure ``forbidden_url`` / ``bad_url``, not retried).  If a frame of the tab starts
loading one anyway (see :mod:`crawler.page.traffic`), the job fails ``forbidden_url``: at
the next wait or evaluation, or at the latest when the handler returns; the tab is
closed, not reused, and nothing the job read is stored.
"""

from __future__ import annotations

import base64
import json
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import trio

import cdp
from crawler._trio import open_service_nursery
from crawler.config.model import RENDER_MODES
from crawler.errors import PageFailure, SessionRetired
from crawler.http.client import PROXY_AUTH, PROXY_REFUSED_STATUS
from crawler.http.cookies import ContextCookies, Cookies
from crawler.page.frames import Frame, open_frame
from crawler.page.links import normalise_url
from crawler.page.output import JobOutput, PageEnv
from crawler.page.places import FrameTargets
from crawler.page.scope import Scope
from crawler.page.traffic import EVENTS as TRAFFIC_EVENTS
from crawler.page.traffic import Traffic
from crawler.policy.failure import net_failure, status_failure
from crawler.request import Request
from crawler.urls import MAX_URL_CHARS, forbidden_scheme, short_url, too_long

IDLE_S = 0.5  # wait_for_idle: this long without a request starting or data arriving
IDLE_TIMEOUT_S = 30.0  # wait_for_idle: PageFailure "idle" if the network is never quiet that long
ERROR_PAGE_WAIT_S = 2.0  # longest a failing status waits for its page to be parsed (for the snapshot)
RESET_TIMEOUT_S = 1.0  # longest the page's close waits to undo what it changed on the tab (Runtime, focus)


class Page(Scope, JobOutput):
    """One job's tab, as a handler sees it.  Made only by :func:`open_page`.  Its
    reading and interaction methods (``wait_for``, ``extract``, ``click``, ``frame``...)
    are :class:`~crawler.page.scope.Scope`'s, shared with its frames; what it produces
    (``push``, ``enqueue``...) and its session are :class:`~crawler.page.output.JobOutput`'s,
    shared with the HTTP path's page."""

    def __init__(self, tab: cdp.Tab, request: Request, env: PageEnv, render: str = "visible"):
        JobOutput.__init__(self, request, env, tab.context.id)
        self._page = self
        self.tab = tab
        self.render = render
        self.frames = FrameTargets()  # where each frame runs (the event reader keeps it)
        self.status: int | None = None  # of the last document goto() loaded
        sessions, context_id = env.sessions, tab.context.id
        self.traffic = Traffic(  # what the tab's events say (its reader runs in open_page)
            tab,
            env.limiter,
            self.frames,
            credentials=sessions.credentials(context_id) if sessions is not None else None,
            on_request=(lambda: sessions.count_request(context_id)) if sessions is not None else None,
        )

    def _cookies(self) -> Cookies:
        return ContextCookies(self.tab)

    @property
    def _retire_if(self) -> str:
        return self.env.retire_if

    @property
    def poll_interval_s(self) -> float:
        return self.env.poll_interval_s

    async def open_frame(self, parent: Scope, selector: str, timeout_s: float | None) -> Frame:
        """See :meth:`Scope.frame`."""
        return await open_frame(self, self.frames, parent, selector, timeout_s)

    async def _target(self) -> tuple[cdp.Tab, None]:
        return self.tab, None  # the main frame's default context

    async def _origin(self) -> tuple[float, float]:
        return 0.0, 0.0

    async def check_blocked(self) -> None:
        """Raise SessionRetired ``retire_if`` if the ``[session] retire_if`` selector
        matches the document now (a challenge page); nothing without one."""
        if self.env.retire_if:
            found = await self.evaluate(f"document.querySelector({json.dumps(self.env.retire_if)}) !== null")
            if found:
                raise SessionRetired("retire_if")

    # -- navigation ----------------------------------------------------------------------

    async def goto(self, url: str) -> int | None:
        """Navigate the tab to ``url`` (relative to the job's URL) and return once the new
        document has committed and been parsed (DOMContentLoaded), with its HTTP status.
        The request waits for its host's rate-limit turn.  Raises PageFailure for a network error or a status >= 400 (429
        and 503 carry Retry-After); SessionRetired for a status in ``[session]
        retire_on_status`` or a proxy's failure; and, before anything is sent,
        ``forbidden_url`` for a file:, chrome:... URL and ``bad_url`` for any other that
        is not http(s).  If cancelled, the tab is left mid-navigation: the job's lease
        then closes it rather than reuse it."""
        if scheme := forbidden_scheme(url):
            raise PageFailure("forbidden_url", f"{scheme}: URLs are never navigated to: {short_url(url)}")
        if too_long(url):
            raise PageFailure("bad_url", f"a URL of {len(url)} characters, over the limit of {MAX_URL_CHARS}")
        target = normalise_url(url, self.url)
        if target is None:
            raise PageFailure("bad_url", f"not an http(s) URL: {short_url(url)!r}")
        if not self.env.paces_documents:  # no gaps to keep: only a host's back-off (Retry-After) to wait out
            async with self.env.limiter.hold(target):
                pass
        reply = await self.tab.send("Page.navigate", url=target, timeout_s=_remaining_s())
        if reply.get("errorText"):
            if self.traffic.proxy_refused(None, reply["errorText"]):
                raise SessionRetired(PROXY_AUTH)
            raise net_failure(reply["errorText"])
        loader = reply.get("loaderId")
        if not loader:
            return self.status  # a same-document navigation (fragment): no new document
        self.traffic.expect(loader)
        while loader not in self.traffic.documents:
            await self._wait_event()
        status, headers, error = self.traffic.documents[loader]
        if self.traffic.proxy_refused(status, error) or status == PROXY_REFUSED_STATUS:
            # The proxy refused the session's credentials: another proxy, this URL uncharged.
            raise SessionRetired(PROXY_AUTH)
        if error is not None:
            raise net_failure(error)
        failure = SessionRetired(f"status_{status}") if status in self.env.retire_on_status else None
        failure = failure or status_failure(status, headers)
        if failure is not None:
            # The page the server sent with its status is what a failure snapshot is to
            # show: until its document commits the tab has none ("Not attached to an
            # active page"), so it is given a moment to.
            with trio.move_on_after(ERROR_PAGE_WAIT_S):
                while loader not in self.traffic.parsed:
                    await self._wait_event()
            raise failure
        # Until the document commits, an evaluation may still run in the one before it
        # (the tab's previous page), and until it is parsed it may be empty: nothing is
        # read before DOMContentLoaded (Playwright's "domcontentloaded").
        while loader not in self.traffic.parsed:
            await self._wait_event()
        self.status = status
        return status

    async def _wait_event(self) -> None:
        """Wait for the tab's next event; raise the tab's error (a renderer crash, the
        tab or the browser gone) rather than wait for events that cannot come."""
        self.traffic.check_forbidden()
        if (error := self.tab.error) is None:
            await self.traffic.wait_change()
            error = self.tab.error
        if error is not None:
            raise error
        self.traffic.check_forbidden()

    # -- waiting -------------------------------------------------------------------------

    async def wait_for_load(self) -> None:
        """Return once the document has loaded (``readyState`` complete)."""
        while not await self.evaluate("document.readyState === 'complete'"):
            await self.traffic.wait_change(self.env.poll_interval_s)

    async def wait_for_idle(self, idle_s: float = IDLE_S, timeout_s: float = IDLE_TIMEOUT_S) -> None:
        """Return once, for ``idle_s``, no request of the page or its frames has started,
        none is waiting for its response, and no response data has arrived.  Not
        counted: bodies the page never reads (Chromium never says they finished),
        streams (EventSource, WebSocket), beacons, and requests unanswered for
        ``crawler.page.traffic.LONG_POLL_S`` (long polls).  PageFailure ``idle``
        (retryable), naming what is still loading, if that does not happen within
        ``timeout_s``."""
        with trio.move_on_after(timeout_s):
            await self.traffic.wait_quiet(idle_s)
            return
        raise PageFailure(
            "idle",
            f"the network was never quiet for {idle_s:g} s within {timeout_s:g} s: {self.traffic.busy()}",
            retryable=True,
        )

    async def settle(self, idle_s: float, max_s: float) -> None:
        """Wait until the network has been quiet for ``idle_s`` from now (as
        :meth:`wait_for_idle`: what the last scroll set off may not have reached the
        network yet), or ``max_s`` at most, without failing: scrolling goes on either way."""
        self.traffic.acted()
        with trio.move_on_after(max_s):
            await self.traffic.wait_quiet(idle_s)

    async def show(self) -> None:
        """Show the tab's window (unless the route renders hidden), for the rest of the
        job: scrolling and pointing need the frames a minimised window does not draw
        (see :func:`open_page`).  Nothing is sent if it is shown already."""
        if self.render == "visible":
            await self.tab.set_visible(True)

    async def mouse(self, kind: str, x: float, y: float) -> None:
        """One mouse event (``Input.dispatchMouseEvent`` ``kind``) at (x, y) on the tab's
        viewport, with the left button for presses and releases."""
        params: dict[str, Any] = {"type": kind, "x": x, "y": y}
        if kind != "mouseMoved":
            params.update(button="left", clickCount=1)
        await self.tab.send("Input.dispatchMouseEvent", **params)
        self.traffic.acted()

    # -- reading the page ----------------------------------------------------------------

    async def responses(self, url_contains: str, *, wait_s: float | None = None) -> list[Any]:
        """The bodies (parsed JSON, else text) of every response so far whose URL contains
        ``url_contains``, in the order they arrived; one still loading is waited for,
        one that failed is left out.  With ``wait_s``, first waits up to that long for
        one to have arrived whole ([] if none did: the caller decides what a missing
        capture means).  Raises PageFailure ``capture`` (retryable) when the browser no
        longer has a body it received."""
        with trio.move_on_after(float("inf") if wait_s is None else wait_s):
            while wait_s is not None and not self.traffic.received(url_contains):
                await self.traffic.wait_change()
        matching = [r for r in self.traffic.responses() if url_contains in r.url]
        while not all(r.done for r in matching):
            await self.traffic.wait_change()
        bodies = [await self.traffic.body(r) for r in matching if r.error is None]
        self.traffic.check_forbidden()
        return bodies

    async def screenshot(self) -> bytes:
        """A PNG of the viewport."""
        await self.show()  # a minimised window draws no frame to capture
        reply = await self.tab.send("Page.captureScreenshot", format="png", timeout_s=_remaining_s())
        return base64.b64decode(reply["data"])


def _remaining_s() -> float | None:
    """The time left before the enclosing deadline (the watchdog), for commands that
    may legitimately take longer than the connection's default command deadline."""
    deadline = trio.current_effective_deadline()
    return None if deadline == float("inf") else max(0.001, deadline - trio.current_time())


async def _reset(page: Page) -> None:
    """Undo what the page changed on its tab for its own sake: Runtime switched on for
    its frames (see crawler.page.frames), focus emulation off for a hidden route.  Best
    effort: a tab that cannot take the commands is not reused anyway."""
    if page.frames.runtime_on:
        await page.frames.disable_runtime()
    if page.render == "hidden" and page.tab.error is None:
        try:
            await page.tab.send("Emulation.setFocusEmulationEnabled", enabled=True)
        except (cdp.CDPError, trio.ClosedResourceError):
            pass


@asynccontextmanager
async def open_page(tab: cdp.Tab, request: Request, env: PageEnv, *, render: str = "visible") -> AsyncIterator[Page]:
    """A Page on ``tab`` for ``request``, with its event reader running; both end when
    the block exits (also when cancelled).  Starts one task in its own nursery, and
    one more per out-of-process frame the page loads.

    Rendering: with ``render`` "visible" (the default) the page is the visible, focused
    tab as far as it can tell (focus emulation, see :func:`crawler.page.tab.prepare_tab`):
    requestAnimationFrame and IntersectionObserver run, lazy images load.  The tab's
    window stays minimised, so the browser does not raster it, until the handler
    scrolls or points at the page (:meth:`Page.show`): a scroll in a window that draws
    no frames waits a second or two for one.  "hidden" switches focus emulation off for
    the job: the page is hidden and nothing renders (on again at the block's exit).  A block that ends normally after the tab started
    loading a forbidden URL raises PageFailure ``forbidden_url`` (the job's output is
    not to be stored)."""
    if render not in RENDER_MODES:
        raise ValueError(f"render must be one of {', '.join(RENDER_MODES)}, got {render!r}")
    page = Page(tab, request, env, render)
    async with tab.listen(*TRAFFIC_EVENTS) as events, open_service_nursery() as nursery:
        nursery.start_soon(page.traffic.read_events, events, nursery)
        try:
            # The pool stopped the scripts of the page this tab idled with (TabPool._stop_idle_page).
            await tab.send("Emulation.setScriptExecutionDisabled", value=False)
            if render == "hidden":
                await tab.send("Emulation.setFocusEmulationEnabled", enabled=False)
            yield page
            page.traffic.check_forbidden()
        finally:
            nursery.cancel_scope.cancel()
            with trio.move_on_after(RESET_TIMEOUT_S, shield=True):
                await _reset(page)
