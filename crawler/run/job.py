"""The life of one URL, written once: every caller runs a URL through :func:`attempt`.

1. lease a tab from the pool (waiting while ``concurrency`` leases are held); a job
   fetched over HTTP leases one too when the crawl has a browser, for its context's
   cookies and session (the tab loads nothing, and the lease counts no page against
   it), and in a crawl without a browser takes its session from the session pool;
2. open the watchdog scope (timeout + jitter): the clock runs from lease to item, so a
   worker waiting for a tab is not yet on it;
3. the page work (``work``, :func:`crawler.run.router.run_route` in a crawl): the
   session hook if the tab's context is new, the navigation, the route's handler, which
   pushes items and enqueues links into the job's :class:`~crawler.page.Page`;
4. how it went wrong, if it did, becomes a :class:`~crawler.errors.PageFailure` in one
   place, :func:`page_failure`; a session the site refused is retired and its context
   drained, a tab in an unknown state (a watchdog expiry, a handler's exception) is
   discarded rather than given back;
5. ``after`` runs on the tab, still leased, out of the watchdog (a failure snapshot, or
   ``try``'s screenshot);
6. the lease exits: the tab is given back, or closed.

What happens next is the caller's: the job runner (:mod:`crawler.run.jobs`) checks
robots.txt before step 1 and stores the outcome after step 6 (done with its items,
pending again after a backoff, or failed); ``crawler try`` (:mod:`crawler.run.tryout`)
shows it and stores nothing.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

import attrs
import trio

import cdp
from crawler.browser.pool import Lease, TabPool
from crawler.browser.session import SessionPool
from crawler.config import Config
from crawler.errors import PageFailure, SessionRetired
from crawler.http.client import UrlRules
from crawler.page.links import LinkFilter
from crawler.page.output import JobOutput, PageEnv
from crawler.page.tab import paces_documents, tab_preparer
from crawler.policy.ratelimit import Pace
from crawler.policy.robots import RobotsPolicy
from crawler.policy.watchdog import Watchdog

# The page work of one job on its leased tab (None: no browser), in a session (its id):
# the page with the job's output, or raises.
Work = Callable[[cdp.Tab | None, str], Awaitable[JobOutput]]
# Runs on the tab after the page work, still leased: the tab and the failure (None: success).
After = Callable[[cdp.Tab, PageFailure | None], Awaitable[None]]


@attrs.frozen
class Attempt:
    """How one attempt at a URL ended: the Page with its output, or the failure."""

    page: JobOutput | None
    failure: PageFailure | None
    expired: bool = False  # the watchdog fired


class WatchdogExpired(Exception):
    """How a job ended when its watchdog fired: never raised, only translated by
    :func:`page_failure` (the watchdog's own scope catches its Cancelled)."""

    def __init__(self, budget_s: float):
        self.budget_s = budget_s
        super().__init__(f"no item within {budget_s:.1f} s")


def page_failure(exc: Exception) -> PageFailure:
    """The failure (reason kind, retryable or not) for how a job went wrong: the one
    translation of watchdog expiries and CDP errors into failure reasons.

    =========================  =================  =========
    how                        kind               retryable
    =========================  =================  =========
    :class:`PageFailure`       its own            its own
    the watchdog expired       ``timeout``        yes
    ``cdp.TargetCrashed``      ``crashed``        yes
    ``cdp.ConnectionLost``     ``browser_lost``   yes
    ``cdp.CommandTimeout``     ``unresponsive``   yes
    any other ``cdp.CDPError`` ``cdp_error``      yes
    anything else the handler  ``handler``        no
    raised (``ValueError``...)
    =========================  =================  =========

    A handler's own exception is named with its type and message, e.g. ``handler:
    ValueError: no price``; to have a URL retried, raise ``PageFailure(...,
    retryable=True)``.
    """
    if isinstance(exc, PageFailure):
        return exc
    if not isinstance(exc, WatchdogExpired | cdp.CDPError):
        return PageFailure("handler", f"{type(exc).__name__}: {exc}"[:500], tab_reusable=False)
    if isinstance(exc, WatchdogExpired):
        kind = "timeout"
    elif isinstance(exc, cdp.TargetCrashed):
        kind = "crashed"
    elif isinstance(exc, cdp.ConnectionLost):
        kind = "browser_lost"
    elif isinstance(exc, cdp.CommandTimeout):
        kind = "unresponsive"
    else:
        kind = "cdp_error"
    return PageFailure(kind, str(exc), retryable=True)


def page_env(
    config: Config,
    limiter: Pace,
    links: LinkFilter,
    known: Callable[[list[str]], Awaitable[set[str]]],
    sessions: SessionPool,
    robots: RobotsPolicy | None = None,
) -> PageEnv:
    """What every page of a crawl of ``config`` shares (the job runner's pages, and ``try``'s)."""
    return PageEnv(
        limiter,
        links,
        known,
        config.extract.poll_interval_s,
        paces_documents(config.rate_limit),
        sessions=sessions,
        retire_on_status=frozenset(config.session.retire_on_status),
        retire_if=config.session.retire_if,
        url_rules=UrlRules(forbid_private=config.http.forbid_private),
        robots=robots,
    )


def pages_per_session(config: Config) -> int:
    """Pages per browser context: ``[pool] rotate_context_every``, or ``[session]
    max_pages_per_session`` if that is set and smaller (a context is a session)."""
    every, per_session = config.pool.rotate_context_every, config.session.max_pages_per_session
    return min(every, per_session) if per_session else every


def pages_per_browserless_session(config: Config) -> int:
    """Jobs per session of a crawl without a browser: ``[session]
    max_pages_per_session`` (0: no limit, until the site retires it).  Not
    ``rotate_context_every``: that bounds a context's memory, and a session without a
    browser holds none; rotating it anyway cost a new client and new connections every
    50 pages."""
    return config.session.max_pages_per_session or 2**62


def pool_options(config: Config, sessions: SessionPool) -> dict[str, Any]:
    """What every tab pool of a crawl of ``config`` is opened with, whatever its size
    (the supervisor's pools, and ``try``'s pool of one tab): each new tab prepared as
    :func:`crawler.page.tab.tab_preparer` says, the close bounds of ``[pool]``, and
    contexts made by the session pool (a context is a session)."""
    return {
        "prepare_tab": tab_preparer(config.browser, sessions, pace_documents=paces_documents(config.rate_limit)),
        "tab_close_timeout_s": config.pool.tab_close_timeout_s,
        "context_dispose_timeout_s": config.pool.context_dispose_timeout_s,
        "create_context": sessions.create_context,
    }


async def attempt(
    pool: TabPool | None,
    work: Work,
    *,
    watchdog: Watchdog,
    sessions: SessionPool,
    after: After | None = None,
    serves_page: bool = True,
    browserless_pages: int = 0,
) -> Attempt:
    """One attempt at a URL on a tab leased from ``pool`` (``serves_page``: see
    :meth:`TabPool.lease`), inside ``watchdog``'s scope (see the module docstring).
    Without a pool (a crawl with no browser), the job runs in the session pool's
    browserless session, rotated every ``browserless_pages`` jobs.  A failure of the
    page is data in the result, never raised: the handler's exception, the watchdog's
    expiry, the tab's or the browser's CDP error (translated once the lease has closed
    the tab).

    Starts no task of its own (``work`` may, inside the watchdog).  If cancelled from
    outside, the lease closes the tab and the Cancelled goes on; the caller decides
    what becomes of the URL."""
    if pool is None:
        session_id = await sessions.browserless_session(browserless_pages)
        return await _run(None, session_id, work, watchdog, sessions, after)
    try:
        async with pool.lease(serves_page=serves_page) as lease:
            return await _run(lease, lease.tab.context.id, work, watchdog, sessions, after)
    except cdp.CDPError as exc:  # out of the lease: the lease closed the tab
        return Attempt(None, page_failure(exc))


async def _run(
    lease: Lease | None, session_id: str, work: Work, watchdog: Watchdog, sessions: SessionPool, after: After | None
) -> Attempt:
    page: JobOutput | None = None
    failure: PageFailure | None = None
    tab = lease.tab if lease is not None else None
    with watchdog.scope() as scope:
        budget_s = scope.deadline - trio.current_time()
        try:
            page = await work(tab, session_id)
        except cdp.CDPError:
            raise  # the tab's or the browser's: translated by attempt(), once the lease closed the tab
        except Exception as exc:  # PageFailure, or whatever the user's handler raised
            failure = page_failure(exc)
            if isinstance(failure, SessionRetired):
                # The site refused the session: drain its context, bench its proxy.
                if lease is not None:
                    lease.retire_context(failure.detail)
                sessions.retire(session_id, failure.detail)
            elif not failure.tab_reusable and lease is not None:
                lease.discard(failure.kind)
        else:
            sessions.page_done(session_id)
    expired = scope.cancelled_caught
    if expired:
        if lease is not None:
            lease.discard("timeout")  # the tab may be hung mid-navigation: never reuse it
        failure = page_failure(WatchdogExpired(budget_s))
    if after is not None and tab is not None:
        await after(tab, failure)
    return Attempt(page, failure, expired)
