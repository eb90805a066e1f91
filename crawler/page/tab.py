"""Preparing a tab for crawling, once, before its first navigation: the page domains,
the one Fetch owner (pacing, blocking, proxy challenges), dialogs made harmless,
closed shadow roots made reachable, out-of-process frames attached, and the session's
identity.  Every out-of-process frame the tab's pages load is prepared the same way
before it runs (:func:`prepare_frame`)."""

from __future__ import annotations

import weakref
from collections.abc import Awaitable, Callable, Iterable

import attrs

import cdp
from crawler.browser.session import SessionPool
from crawler.config import BrowserSection, RateLimitSection
from crawler.page.dom import SHADOW_HOOK_JS
from crawler.page.places import Sender

# Dialogs block the page until answered: make the common ones no-ops before any page
# script runs; whatever still opens a dialog is dismissed from the event stream.
NO_DIALOGS_JS = "window.alert = () => {}; window.confirm = () => false; window.prompt = () => null;"

# Out-of-process frames (a cross-site review widget) are targets of their own: attach
# them to the tab's session, paused until prepared, so that nothing they load escapes
# the page's rules.  Workers are not attached: nothing of ours runs in them.
AUTO_ATTACH = {"autoAttach": True, "waitForDebuggerOnStart": True, "flatten": True, "filter": [{"type": "iframe"}]}

_FRAME_PREPARERS: weakref.WeakKeyDictionary[cdp.Tab, Callable[[cdp.Session], Awaitable[None]]] = (
    weakref.WeakKeyDictionary()
)


@attrs.frozen
class TabSetup:
    """What every tab, and every out-of-process frame of it, is set up with (see
    :func:`prepare_tab`)."""

    block_urls: tuple[str, ...] = ()
    block_resources: tuple[str, ...] = ()
    pace_documents: bool = False
    max_resource_buffer_mb: int = 8
    max_total_buffer_mb: int = 32
    handle_auth: bool = False

    async def apply(self, target: Sender) -> None:
        """The domains and scripts on one target (a tab, or a frame's session)."""
        await target.send("Page.enable")
        await target.send(
            "Network.enable",
            maxTotalBufferSize=self.max_total_buffer_mb * 2**20,
            maxResourceBufferSize=self.max_resource_buffer_mb * 2**20,
        )
        patterns = [
            {"urlPattern": "*", "resourceType": kind, "requestStage": "Request"} for kind in self.block_resources
        ]
        if self.pace_documents or self.handle_auth:
            patterns.append({"urlPattern": "*", "resourceType": "Document", "requestStage": "Request"})
        if self.handle_auth:
            await target.send("Fetch.enable", patterns=patterns, handleAuthRequests=True)
        elif patterns:
            await target.send("Fetch.enable", patterns=patterns)
        await target.send("Page.addScriptToEvaluateOnNewDocument", source=NO_DIALOGS_JS + SHADOW_HOOK_JS)
        if self.block_urls:
            await target.send("Network.setBlockedURLs", urls=list(self.block_urls))
        await target.send("Target.setAutoAttach", **AUTO_ATTACH)


async def prepare_tab(
    tab: cdp.Tab,
    *,
    block_urls: Iterable[str] = (),
    block_resources: Iterable[str] = (),
    pace_documents: bool = False,
    max_resource_buffer_mb: int = 8,
    max_total_buffer_mb: int = 32,
    handle_auth: bool = False,
    prepare_identity: Callable[[Sender], Awaitable[None]] | None = None,
) -> None:
    """Once per tab: the domains and settings every job on it relies on.  With
    ``pace_documents`` (a crawl with gaps between requests), main-frame documents are
    paused until their host's rate-limit turn (see the module docstring); requests of
    the CDP resource types in ``block_resources`` ("Image", "Font"...) are paused and
    failed (see :class:`crawler.page.traffic.Traffic`).  Without either nothing is
    intercepted, which saves a round trip through the browser per request.  The buffer
    sizes bound the response bodies the browser keeps for captures
    (``[browser] max_resource_buffer_mb`` / ``max_total_buffer_mb``).  With
    ``handle_auth`` (the context's proxy asks for credentials) proxy challenges are
    reported (``Fetch.authRequired``, answered by the page's reader); Chromium reports
    them only for paused requests, so documents are paused too: the first one's
    answer is cached by the context for the requests that follow it.
    ``prepare_identity`` presents the session's identity on the tab and on each of its
    out-of-process frames.  The same setup is kept for the tab's frames
    (:func:`prepare_frame`)."""
    setup = TabSetup(
        tuple(block_urls),
        tuple(block_resources),
        pace_documents,
        max_resource_buffer_mb,
        max_total_buffer_mb,
        handle_auth,
    )

    async def prepare(target: Sender) -> None:
        await setup.apply(target)
        if prepare_identity is not None:
            await prepare_identity(target)

    _FRAME_PREPARERS[tab] = prepare
    await prepare(tab)
    # How a crawl's pages render (see crawler.page.open_page): the page is told it is the
    # visible, focused tab, so animation frames and IntersectionObservers run, while its
    # window stays minimised, so the browser does not raster it, as Playwright's pages
    # run; a job shows the window when it scrolls or points at the page (Page.show).
    await tab.send("Emulation.setFocusEmulationEnabled", enabled=True)
    await tab.set_visible(False)


async def prepare_frame(tab: cdp.Tab, frame: cdp.Session) -> None:
    """Set up an out-of-process frame of ``tab`` (attached paused) as its tab was, then
    let it run.  Raises the frame session's CDP error (it went away meanwhile)."""
    prepare = _FRAME_PREPARERS.get(tab)
    if prepare is not None:
        await prepare(frame)
    await frame.send("Runtime.runIfWaitingForDebugger")


def paces_documents(rate_limit: RateLimitSection) -> bool:
    """Whether the crawl keeps gaps between requests to a host, so that tabs must pause
    every document for its host's turn (see :mod:`crawler.page`)."""
    return rate_limit.wait_ms[1] > 0


def tab_preparer(
    b: BrowserSection, sessions: SessionPool, *, pace_documents: bool
) -> Callable[[cdp.Tab], Awaitable[None]]:
    """What every new tab of a crawl of ``config`` is prepared with, before its first
    navigation: the page domains (and one Fetch owner for pacing, blocking and proxy
    challenges, see :func:`crawler.page.prepare_tab`), then the session's identity
    (``sessions``: the contexts' session pool).  The session hook, if any, runs after
    this, in the first job.  The crawl's pools and ``try`` use the same.  ``pace_documents``:
    see :func:`paces_documents`."""

    async def prepare(tab: cdp.Tab) -> None:
        async def identity(target: Sender) -> None:
            await sessions.prepare_tab(tab, target)

        await prepare_tab(
            tab,
            block_urls=b.block_urls,
            block_resources=b.block_resources,
            pace_documents=pace_documents,
            max_resource_buffer_mb=b.max_resource_buffer_mb,
            max_total_buffer_mb=b.max_total_buffer_mb,
            handle_auth=sessions.needs_auth(tab.context.id),
            prepare_identity=identity,
        )

    return prepare
