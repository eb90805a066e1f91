"""Try one URL: run its route once, in a fresh browser, and show what the crawl would
do with it, storing nothing (``python -m crawler try``).

:func:`try_url` is the engine's job path without the store: the browser the config
asks for (launched, or ``cdp_url``), a pool of one tab in a context made and prepared as the
crawl's are (the site's identity: :class:`crawler.session.SessionPool` and
:func:`crawler.supervisor.tab_preparer`), the job's watchdog, and
:func:`crawler.router.run_route` (the session hook, the navigation, the route's
handler), whose failure is named by :func:`crawler.jobs.page_failure` as a crawl's
would be.  What the handler pushed and enqueued is returned, not stored: no store is
opened, and links are deduplicated within the page only.

With ``[crawl] obey_robots`` the URL is checked against its host's robots.txt first,
as in a crawl (a disallowed URL is not requested).  Steps are timed: ``robots``, ``browser`` (launch or connect), ``tab`` (a new context and a
prepared tab), ``session`` (the hook, if any), ``navigate`` (to the document parsed),
``handler`` (the route's handler), ``capture`` (``--screenshot``/``--html``).
"""

from __future__ import annotations

import random
from collections.abc import AsyncIterator, Callable
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from typing import Any

import attrs
import trio

import cdp

from . import router as routing
from .config import Config, ConfigError, check_url
from .jobs import WatchdogExpired, page_env, page_failure
from .links import LinkFilter
from .page import Page
from .pool import open_pool
from .ratelimit import HostRateLimiter
from .robots import RobotsPolicy
from .router import Handler, Router, SessionGate
from .session import SessionPool
from .snapshots import SNAPSHOT_TIMEOUT_S, capture_page, write_page_files
from .store import Request
from .supervisor import open_configured_browser, tab_preparer
from .watchdog import Watchdog


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
    timed.add(label, _timed(routes.handler(label), "handler", steps, handled))
    hook = routes.session_hook
    gate = SessionGate(_timed(hook, "session", steps) if hook is not None else None)
    sessions = SessionPool(config)  # the site's identity: proxy, user agent, locale, headers, cookies
    env = page_env(
        config, HostRateLimiter(config.rate_limit.wait_ms, rng=rng), LinkFilter(config.crawl), _nothing_known, sessions
    )
    page: Page | None = None
    if config.crawl.obey_robots:  # as a crawl would: a disallowed URL is never requested
        refusal = await RobotsPolicy().check(url)
        clock.mark("robots")
        if refusal is not None:
            return TryResult(url, label, None, (), (), (refusal.reason,), tuple(timings))
    opener = open_browser or (lambda: open_configured_browser(config))
    async with opener() as browser:
        clock.mark("browser")
        async with _one_tab(browser, config, sessions) as tab:
            clock.mark("tab")
            with Watchdog(config.watchdog.timeout_s, 0.0, rng=rng).scope() as scope:
                budget_s = scope.deadline - trio.current_time()
                try:
                    page = await routing.run_route(timed, gate, tab, Request(url, label), env, {tab.context.id})
                except Exception as exc:  # PageFailure, a CDP error, the handler's own: named as a crawl would
                    failures.append(page_failure(exc).reason)
            if scope.cancelled_caught:
                failures.append(page_failure(WatchdogExpired(budget_s)).reason)
            route_s = clock.lap()
            timed_s = dict(steps)
            timings += [("session", timed_s["session"])] if "session" in timed_s else []
            timings.append(("navigate", max(0.0, route_s - sum(timed_s.values()))))
            timings += [("handler", timed_s["handler"])] if "handler" in timed_s else []
            if screenshot or html:
                failures += await _keep_page(tab, screenshot, html)
                clock.mark("capture")
    page = page or (handled[-1] if handled else None)
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
        status=page.status if page is not None else None,
        items=items,
        links=tuple(page.links) if page is not None else (),
        failures=tuple(failures),
        timings=tuple(timings),
        field_errors=errors,
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


@asynccontextmanager
async def _one_tab(browser: cdp.Browser, config: Config, sessions: SessionPool) -> AsyncIterator[cdp.Tab]:
    """One tab, in a context made and prepared as a crawl's are (the session pool's
    proxy and identity), in a pool of its own (closed on exit)."""
    pool_cfg = config.pool
    async with (
        open_pool(
            browser,
            concurrency=1,
            recycle_tab_every=1,
            rotate_context_every=1,
            prepare_tab=tab_preparer(config, sessions),
            tab_close_timeout_s=pool_cfg.tab_close_timeout_s,
            context_dispose_timeout_s=pool_cfg.context_dispose_timeout_s,
            create_context=sessions.create_context,
        ) as pool,
        pool.lease() as lease,
    ):
        yield lease.tab


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
