"""Try one URL: run its route once, in a fresh browser, and show what the crawl would
do with it, storing nothing (``python -m crawler try``).

:func:`try_url` is the engine's job path without the store: the browser the config
asks for (launched, or ``cdp_url``), a pool of one tab in a context made and prepared as the
crawl's are (the site's identity: :class:`crawler.browser.session.SessionPool` and
:func:`crawler.page.tab.tab_preparer`), and the one life of a URL,
:func:`crawler.run.job.attempt`: the job's watchdog around
:func:`crawler.run.router.run_route` (the session hook, the navigation, the route's
handler), whose failure is named by :func:`crawler.run.job.page_failure` as a crawl's
would be.  What the handler pushed and enqueued is returned, not stored: no store is
opened, and links are deduplicated within the page only.

With ``[crawl] obey_robots`` the URL is checked against its host's robots.txt first,
as in a crawl (a disallowed URL is not requested).  Steps are timed: ``robots``, ``browser`` (launch or connect), ``tab`` (a new context and a
prepared tab), ``session`` (the hook, if any), ``navigate`` (to the document parsed),
``handler`` (the route's handler), ``capture`` (``--screenshot``/``--html``).
"""

from __future__ import annotations

import random
from collections.abc import Callable
from contextlib import AbstractAsyncContextManager
from typing import Any

import attrs
import trio

import cdp
from crawler.browser.launch import open_configured_browser
from crawler.browser.pool import open_pool
from crawler.browser.session import SessionPool
from crawler.config import Config, check_url
from crawler.errors import ConfigError, PageFailure
from crawler.observe.snapshots import SNAPSHOT_TIMEOUT_S, capture_page, write_page_files
from crawler.page.dom import SURVEY_JS
from crawler.page.links import LinkFilter
from crawler.page.output import JobOutput
from crawler.page.page import Page
from crawler.policy.ratelimit import HostRateLimiter
from crawler.policy.robots import RobotsPolicy
from crawler.policy.watchdog import Watchdog
from crawler.request import Request
from crawler.run import router as routing
from crawler.run.job import Attempt, attempt, page_env, pool_options
from crawler.run.router import Handler, Router, SessionGate


@attrs.frozen
class TryResult:
    """What one run of a URL's route produced."""

    url: str
    label: str | None
    status: int | None  # of the document, when the route got that far
    items: tuple[
        dict[str, Any], ...
    ]  # pushed, in order; if the route failed, those pushed before (a crawl stores none)
    links: tuple[Request, ...]  # what would be enqueued (new within the page)
    failures: tuple[str, ...]  # reasons: the route's failure, then what could not be captured
    timings: tuple[tuple[str, float], ...]  # (step, seconds), in order
    field_errors: tuple[tuple[str, str], ...] = ()  # (field, error) of js fields that threw
    frames: tuple[str, ...] = ()  # the document's frames, one line each: selector, URL, origin
    shadow_hosts: tuple[str, ...] = ()  # the document's shadow hosts: "selector (open|closed)"


async def try_url(
    config: Config,
    url: str,
    *,
    label: str | None = None,
    screenshot: str | None = None,
    html: str | None = None,
    router: Router | None = None,
    open_browser: Callable[[], AbstractAsyncContextManager[cdp.Browser]] | None = None,
) -> TryResult:
    """Run ``url``'s route (``label``; None: the default route) once in a fresh browser,
    with the config's browser settings, ``[session]`` identity and session hook, inside
    one watchdog; write the page's screenshot and HTML at the end to ``screenshot`` /
    ``html`` if given.

    Stores nothing.  A failure of the page is data (in ``failures``), as in a crawl;
    raises ConfigError for a bad URL or a label with no route, and what the browser's
    launch raises.  Owns every task it starts; if cancelled, the tab, context and
    browser are closed (bounded) and the Cancelled goes on."""
    where = "try: URL"
    url = check_url(url, where=where)
    routes = routing.router_for(config, router)
    if label not in routes.labels:
        known = ", ".join(repr(k) for k in sorted(routes.labels, key=str))
        raise ConfigError(f"try: --label: no route for label {label!r} (routes: {known})")
    timings: list[tuple[str, float]] = []
    steps: list[tuple[str, float]] = []  # the route's: the session hook's and the handler's
    failures: list[str] = []
    clock = _Clock(timings)
    rng = random.Random()
    timed = Router()
    handled: list[Page] = []  # the handler's page: what it pushed before a failure is shown too
    survey: dict[str, Any] = {}  # the document's frames and shadow hosts, read after the route
    fetch = routes.fetch(label, config.crawl.fetch) or "browser"
    timed.add(label, _timed(routes.handler(label), "handler", steps, handled), content=routes.content(label))
    hook = routes.session_hook
    gate = SessionGate(_timed(hook, "session", steps) if hook is not None else None)
    # the site's identity: proxy, user agent, locale, headers, cookies
    sessions = SessionPool(config.session, cookies=config.cookies, http=config.http)
    env = page_env(
        config, HostRateLimiter(config.rate_limit.wait_ms, rng=rng), LinkFilter(config.crawl), _nothing_known, sessions
    )
    if config.crawl.obey_robots:  # as a crawl would: a disallowed URL is never requested
        refusal = await RobotsPolicy().check(url)
        clock.mark("robots")
        if refusal is not None:
            return TryResult(url, label, None, (), (), (refusal.reason,), tuple(timings))

    async def work(tab: cdp.Tab | None, session_id: str) -> JobOutput:
        clock.mark("tab")
        assert tab is not None
        return await routing.run_route(timed, gate, tab, Request(url, label), env, {tab.context.id})

    async def http_work(tab: cdp.Tab | None, session_id: str) -> JobOutput:
        clock.mark("session")
        page = await routing.run_http_route(timed, gate, None, session_id, Request(url, label), env, set())
        timed_s = dict(steps)
        timings.append(("fetch", max(0.0, clock.lap() - timed_s.get("handler", 0.0))))
        timings.extend([("handler", timed_s["handler"])] if "handler" in timed_s else [])
        return page

    async def after(tab: cdp.Tab, failure: PageFailure | None) -> None:
        route_s = clock.lap()
        survey.update(await _survey(tab))
        timed_s = dict(steps)
        timings.extend([("session", timed_s["session"])] if "session" in timed_s else [])
        timings.append(("navigate", max(0.0, route_s - sum(timed_s.values()))))
        timings.extend([("handler", timed_s["handler"])] if "handler" in timed_s else [])
        if screenshot or html:
            failures.extend(await _keep_page(tab, screenshot, html))
            clock.mark("capture")

    watchdog = Watchdog(config.watchdog.timeout_s, 0.0, rng=rng)
    if fetch == "http" and hook is None:  # as a crawl would: one request, no browser
        try:
            outcome = await attempt(None, http_work, watchdog=watchdog, sessions=sessions, browserless_pages=1)
        finally:
            await sessions.aclose()
        return _result(url, label, outcome, handled, failures, timings, {})
    opener = open_browser or (lambda: open_configured_browser(config.browser))
    # A pool of one tab, in a context made and prepared as a crawl's are (the session
    # pool's proxy and identity); its tab and context closed on exit.
    one_tab = {"concurrency": 1, "recycle_tab_every": 1, "rotate_context_every": 1}
    async with opener() as browser, open_pool(browser, **one_tab, **pool_options(config, sessions)) as pool:
        clock.mark("browser")
        outcome = await attempt(pool, work, watchdog=watchdog, sessions=sessions, after=after)
    await sessions.aclose()
    return _result(url, label, outcome, handled, failures, timings, survey)


def _result(
    url: str,
    label: str | None,
    outcome: Attempt,
    handled: list[Any],
    failures: list[str],
    timings: list[tuple[str, float]],
    survey: dict[str, Any],
) -> TryResult:
    if outcome.failure is not None:
        failures.insert(0, outcome.failure.reason)
    page = outcome.page or (handled[-1] if handled else None)
    items = tuple(page.items) if page is not None else ()
    errors = tuple(
        (name, str(error))
        for item in items
        if isinstance(item.get("_errors"), dict)
        for name, error in item["_errors"].items()
    )
    return TryResult(
        url=url,
        label=label,
        status=getattr(page, "status", None),
        items=items,
        links=tuple(page.links) if page is not None else (),
        failures=tuple(failures),
        timings=tuple(timings),
        field_errors=errors,
        frames=tuple(
            f"{f['selector']} {f['url']}" + (" (another origin: read it with page.frame)" if f["other_origin"] else "")
            for f in survey.get("frames", ())
        ),
        shadow_hosts=tuple(f"{h['selector']} ({h['mode']})" for h in survey.get("hosts", ())),
    )


class _Clock:
    """Marks the end of each step: the time since the previous mark."""

    def __init__(self, timings: list[tuple[str, float]]):
        self._timings = timings
        self._last = trio.current_time()

    def lap(self) -> float:
        """The time since the previous mark or lap (recorded by the caller)."""
        now = trio.current_time()
        elapsed, self._last = now - self._last, now
        return elapsed

    def mark(self, step: str) -> None:
        self._timings.append((step, self.lap()))


def _timed(fn: Handler, step: str, timings: list[tuple[str, float]], pages: list[Page] | None = None) -> Handler:
    """``fn`` timed into ``timings`` as ``step``; the page it ran on appended to ``pages``."""

    async def run(page: Page) -> None:
        if pages is not None:
            pages.append(page)
        start = trio.current_time()
        try:
            await fn(page)
        finally:
            timings.append((step, trio.current_time() - start))

    run.__name__ = run.__qualname__ = getattr(fn, "__name__", step)
    return run


async def _nothing_known(urls: list[str]) -> set[str]:
    await trio.lowlevel.checkpoint()
    return set()


async def _survey(tab: cdp.Tab) -> dict[str, Any]:
    """The document's frames and shadow hosts (see ``crawler.page.dom.SURVEY_JS``); {}
    if the tab cannot say (it crashed, or the document is gone)."""
    with trio.move_on_after(SNAPSHOT_TIMEOUT_S, shield=True):
        try:
            reply = await tab.send("Runtime.evaluate", expression=SURVEY_JS, returnByValue=True)
        except (cdp.CDPError, trio.ClosedResourceError):
            return {}
        return reply.get("result", {}).get("value") or {}
    return {}


async def _keep_page(tab: cdp.Tab, screenshot: str | None, html: str | None) -> list[str]:
    """Write the page's screenshot and HTML as asked; the reasons of what could not be."""
    with trio.move_on_after(SNAPSHOT_TIMEOUT_S, shield=True) as scope:
        try:
            png, text = await capture_page(tab)
        except (cdp.CDPError, trio.ClosedResourceError) as exc:
            return [f"capture: {type(exc).__name__}: {exc}"]
    if scope.cancelled_caught:
        return [f"capture: no answer within {SNAPSHOT_TIMEOUT_S:g} s"]
    try:
        await trio.to_thread.run_sync(write_page_files, screenshot, png, html, text)
    except OSError as exc:
        raise ConfigError(f"try: cannot write {exc.filename!r}: {exc.strerror or exc}") from None
    return []
