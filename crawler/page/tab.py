"""Preparing a tab for crawling, once, before its first navigation: the page domains,
the one Fetch owner (pacing, blocking, proxy challenges), dialogs made harmless, and
the session's identity."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Iterable

import cdp
from crawler.browser.session import SessionPool
from crawler.config import BrowserSection, RateLimitSection

# Dialogs block the page until answered: make the common ones no-ops before any page
# script runs; whatever still opens a dialog is dismissed from the event stream.
NO_DIALOGS_JS = "window.alert = () => {}; window.confirm = () => false; window.prompt = () => null;"


async def prepare_tab(
    tab: cdp.Tab,
    *,
    block_urls: Iterable[str] = (),
    block_resources: Iterable[str] = (),
    pace_documents: bool = False,
    max_resource_buffer_mb: int = 8,
    max_total_buffer_mb: int = 32,
    handle_auth: bool = False,
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
    answer is cached by the context for the requests that follow it."""
    await tab.send("Page.enable")
    await tab.send(
        "Network.enable",
        maxTotalBufferSize=max_total_buffer_mb * 2**20,
        maxResourceBufferSize=max_resource_buffer_mb * 2**20,
    )
    patterns = [{"urlPattern": "*", "resourceType": kind, "requestStage": "Request"} for kind in block_resources]
    if pace_documents or handle_auth:
        patterns.append({"urlPattern": "*", "resourceType": "Document", "requestStage": "Request"})
    if handle_auth:
        await tab.send("Fetch.enable", patterns=patterns, handleAuthRequests=True)
    elif patterns:
        await tab.send("Fetch.enable", patterns=patterns)
    await tab.send("Page.addScriptToEvaluateOnNewDocument", source=NO_DIALOGS_JS)
    if block_urls := list(block_urls):
        await tab.send("Network.setBlockedURLs", urls=block_urls)


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
        await prepare_tab(
            tab,
            block_urls=b.block_urls,
            block_resources=b.block_resources,
            pace_documents=pace_documents,
            max_resource_buffer_mb=b.max_resource_buffer_mb,
            max_total_buffer_mb=b.max_total_buffer_mb,
            handle_auth=sessions.needs_auth(tab.context.id),
        )
        await sessions.prepare_tab(tab)

    return prepare
