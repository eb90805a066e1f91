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
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable, Mapping
from contextlib import asynccontextmanager
from typing import Any, NoReturn

import attrs
import trio

import cdp
from crawler._trio import open_service_nursery
from crawler.browser.session import Session, SessionPool
from crawler.config.fields import Field, check_selector, parse_fields
from crawler.errors import JavaScriptError, PageFailure, SessionRetired
from crawler.page.links import LinkFilter, normalise_url
from crawler.page.script import extract_all_expression, extract_expression, when_ready
from crawler.page.traffic import EVENTS as TRAFFIC_EVENTS
from crawler.page.traffic import Traffic
from crawler.policy.failure import net_failure, status_failure
from crawler.policy.ratelimit import Pace
from crawler.request import Request
from crawler.urls import forbidden_scheme, short_url

POLL_INTERVAL_S = 0.05  # how often a condition the page gives no event for is re-checked
# A wait for the DOM runs in the page (a MutationObserver, see crawler.page.script.when_ready)
# for at most this long per round trip: well inside any command deadline.
WAIT_SLICE_MS = 2000
IDLE_S = 0.5  # wait_for_idle: this long without a request in flight
SCROLL_ROUNDS = 50  # scroll_to_end: at most this many scrolls
SCROLL_SETTLE_S = 0.5  # scroll_to_end: quiet time after a scroll before measuring again
CONTEXT_RETRIES = 20  # evaluations retried while the page swaps its document (execution context gone)
_BLOCKED_KEY = "__crawler_retire_if__"  # what an expression guarded by _unless_blocked returns on a challenge page
_BLOCKED_JS = f"{{{_BLOCKED_KEY}: true}}"


@attrs.frozen
class PageEnv:
    """What every page of a crawl shares: the host pacing, the link rules, the store's
    ``known`` (which URLs are in the frontier already), the polling interval, and
    whether its tabs were prepared with ``pace_documents``; the session pool, and what
    retires a session (``[session] retire_on_status``, ``retire_if``)."""

    limiter: Pace
    links: LinkFilter
    known: Callable[[list[str]], Awaitable[set[str]]]
    poll_interval_s: float = POLL_INTERVAL_S
    paces_documents: bool = False
    sessions: SessionPool | None = None
    retire_on_status: frozenset[int] = frozenset()
    retire_if: str = ""


class Page:
    """One job's tab, as a handler sees it.  Made only by :func:`open_page`."""

    def __init__(self, tab: cdp.Tab, request: Request, env: PageEnv):
        self.tab = tab
        self.request = request
        self._env = env
        self.items: list[dict[str, Any]] = []  # pushed, in order
        self.links: list[Request] = []  # enqueued (new ones), in order
        self.status: int | None = None  # of the last document goto() loaded
        self._enqueued: set[str] = set()
        self.retired: str | None = None  # why the handler retired the session (retire_session)
        sessions, context_id = env.sessions, tab.context.id
        self.traffic = Traffic(  # what the tab's events say (its reader runs in open_page)
            tab,
            env.limiter,
            credentials=sessions.credentials(context_id) if sessions is not None else None,
            on_request=(lambda: sessions.count_request(context_id)) if sessions is not None else None,
        )

    # -- what the job is -----------------------------------------------------------------

    @property
    def url(self) -> str:
        """The job's URL (as enqueued, normalised); items pushed without ``url`` get it."""
        return self.request.url

    @property
    def label(self) -> str | None:
        return self.request.label

    @property
    def data(self) -> dict[str, Any]:
        return self.request.data

    @property
    def depth(self) -> int:
        return self.request.depth

    # -- the session ---------------------------------------------------------------------

    @property
    def session(self) -> Session | None:
        """The session this page runs in (its ``id``, and its ``proxy`` without
        credentials); None outside a session pool (a bare tab)."""
        sessions = self._env.sessions
        return sessions.session(self.tab.context.id) if sessions is not None else None

    def retire_session(self, reason: str) -> NoReturn:
        """Retire this page's session: the site is refusing it (a challenge, a soft
        block only the handler can tell).  Raises SessionRetired, so nothing this job
        pushed or enqueued is stored; the URL is retried in another session, the
        context drained and disposed.  Counted under ``reason``
        (``crawler_sessions_retired_total{reason}``).  A handler that catches the
        exception still retires the session: the job is retired all the same."""
        if not isinstance(reason, str) or not reason.strip():
            raise TypeError(f"retire_session: expected a non-empty reason string, got {reason!r}")
        self.retired = reason.strip()
        raise SessionRetired(self.retired)

    def _unless_blocked(self, expression: str) -> str:
        """JS: ``expression``, or the blocked marker while ``retire_if`` matches (so a
        challenge the page's script puts up is seen by the wait it interrupts)."""
        if not self._env.retire_if:
            return expression
        return f"(document.querySelector({json.dumps(self._env.retire_if)}) !== null ? {_BLOCKED_JS} : ({expression}))"

    def _blocked(self, value: Any) -> Any:
        """``value``, unless it is the blocked marker: then SessionRetired ``retire_if``."""
        if isinstance(value, dict) and value.get(_BLOCKED_KEY) is True:
            raise SessionRetired("retire_if")
        return value

    async def check_blocked(self) -> None:
        """Raise SessionRetired ``retire_if`` if the ``[session] retire_if`` selector
        matches the document now (a challenge page); nothing without one."""
        if self._env.retire_if:
            found = await self.evaluate(f"document.querySelector({json.dumps(self._env.retire_if)}) !== null")
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
        target = normalise_url(url, self.url)
        if target is None:
            raise PageFailure("bad_url", f"not an http(s) URL: {short_url(url)!r}")
        if not self._env.paces_documents:  # no gaps to keep: only a host's back-off (Retry-After) to wait out
            async with self._env.limiter.hold(target):
                pass
        reply = await self.tab.send("Page.navigate", url=target, timeout_s=_remaining_s())
        if reply.get("errorText"):
            raise net_failure(reply["errorText"])
        loader = reply.get("loaderId")
        if not loader:
            return self.status  # a same-document navigation (fragment): no new document
        self.traffic.expect(loader)
        while loader not in self.traffic.documents:
            await self._wait_event()
        status, headers, error = self.traffic.documents[loader]
        if error is not None:
            raise net_failure(error)
        if status in self._env.retire_on_status:
            raise SessionRetired(f"status_{status}")
        failure = status_failure(status, headers)
        if failure is not None:
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
        self._check_navigations()
        if (error := self.tab.error) is None:
            await self.traffic.wait_change()
            error = self.tab.error
        if error is not None:
            raise error
        self._check_navigations()

    def _check_navigations(self) -> None:
        """PageFailure ``forbidden_url`` once a frame of the tab started loading one."""
        if (url := self.traffic.forbidden) is not None:
            raise PageFailure(
                "forbidden_url", f"the tab started to load {short_url(url)}", retryable=False, tab_reusable=False
            )

    # -- waiting -------------------------------------------------------------------------

    async def wait_for(self, selector: str, timeout_s: float | None = None) -> None:
        """Return once ``selector`` matches an element.  Without ``timeout_s`` it waits
        as long as the job's watchdog allows; with it, PageFailure ``wait_for``
        (retryable) after that long.  An invalid selector fails at once.  If the
        ``[session] retire_if`` selector matches meanwhile: SessionRetired."""
        check_selector(selector)
        ready = self._unless_blocked(f"document.querySelector({json.dumps(selector)}) !== null || null")
        expression = when_ready(ready, WAIT_SLICE_MS)
        with trio.move_on_after(float("inf") if timeout_s is None else timeout_s) as scope:
            while not self._blocked(await self.evaluate(expression, await_promise=True)):
                await self.traffic.wait_change(self._env.poll_interval_s)
            return
        assert scope.cancelled_caught
        raise PageFailure("wait_for", f"{selector!r} did not appear within {timeout_s:g} s", retryable=True)

    async def wait_for_load(self) -> None:
        """Return once the document has loaded (``readyState`` complete)."""
        while not await self.evaluate("document.readyState === 'complete'"):
            await self.traffic.wait_change(self._env.poll_interval_s)

    async def wait_for_idle(self, idle_s: float = IDLE_S) -> None:
        """Return once no network request of the page has been in flight for ``idle_s``
        (long-lived streams such as WebSockets are not counted)."""
        while True:
            quiet_for = trio.current_time() - self.traffic.last_activity
            if not self.traffic.in_flight and quiet_for >= idle_s:
                return
            await self.traffic.wait_change(None if self.traffic.in_flight else idle_s - quiet_for)

    # -- reading the page ----------------------------------------------------------------

    async def evaluate(self, expression: str, *, await_promise: bool = False) -> Any:
        """The value of a JavaScript expression in the page (JSON-able values; others
        as None).  Raises JavaScriptError if it throws.  If the page is swapping its
        document, it is evaluated again in the new one."""
        for _ in range(CONTEXT_RETRIES):
            try:
                reply = await self.tab.send(
                    "Runtime.evaluate", expression=expression, returnByValue=True, awaitPromise=await_promise
                )
            except cdp.ProtocolError:
                await self.traffic.wait_change(self._env.poll_interval_s)  # no execution context: mid-navigation
                continue
            self._check_navigations()  # nothing read from such a document reaches the handler
            details = reply.get("exceptionDetails")
            if details:
                text = details.get("exception", {}).get("description") or details.get("text", "")
                raise JavaScriptError(text.split("\n")[0][:300])
            return reply.get("result", {}).get("value")
        raise PageFailure("js_error", "the page kept replacing its document", retryable=True)

    async def extract(self, fields: Mapping[str, Any], *, wait_for: str | None = None) -> dict[str, Any]:
        """The fields (see :mod:`crawler.config.fields`) of the document.  With ``wait_for``,
        once that selector matches, in the same round trip.  A js field that throws is
        None, and its error is under ``"_errors"``.  SessionRetired instead if the
        ``[session] retire_if`` selector matches."""
        expression = extract_expression(_fields(fields), wait_for=check_selector(wait_for) if wait_for else "")
        expression = self._unless_blocked(expression)
        if wait_for:
            expression = when_ready(expression, WAIT_SLICE_MS)
        while (found := self._blocked(await self.evaluate(expression, await_promise=True))) is None:
            await self.traffic.wait_change(self._env.poll_interval_s)
        out = found["fields"]
        if found["errors"]:
            out["_errors"] = found["errors"]
        return out

    async def extract_all(self, selector: str, fields: Mapping[str, Any]) -> list[dict[str, Any]]:
        """One dict of ``fields`` per element matching ``selector``, in document order;
        the fields' selectors are relative to the element (``el`` in js fields)."""
        found = await self.evaluate(extract_all_expression(check_selector(selector), _fields(fields)))
        rows = found["rows"]
        if found["errors"]:
            for row in rows:
                row["_errors"] = found["errors"]
        return rows

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
        self._check_navigations()
        return bodies

    async def html(self) -> str:
        """The document's current HTML."""
        return await self.evaluate("document.documentElement.outerHTML")

    async def screenshot(self) -> bytes:
        """A PNG of the viewport."""
        reply = await self.tab.send("Page.captureScreenshot", format="png", timeout_s=_remaining_s())
        return base64.b64decode(reply["data"])

    # -- acting on the page --------------------------------------------------------------

    async def click(self, selector: str) -> None:
        """Wait for ``selector``, then click the middle of the element as a mouse would
        (scrolled into view).  A navigation it causes takes its host's rate-limit turn."""
        await self.wait_for(selector)
        if not await self.click_if_present(selector):
            raise PageFailure("click", f"{selector!r} is hidden or disabled", retryable=True)

    async def click_if_present(self, selector: str) -> bool:
        """Click ``selector`` if it matches a visible, enabled element now; False if not."""
        check_selector(selector)
        point = await self.evaluate(
            f"""(() => {{ const e = document.querySelector({json.dumps(selector)});
            if (!e || e.disabled || e.getClientRects().length === 0) return null;
            e.scrollIntoView({{block: 'center', inline: 'center'}});
            const r = e.getBoundingClientRect(); return [r.x + r.width / 2, r.y + r.height / 2]; }})()"""
        )
        if point is None:
            return False
        x, y = point
        for kind in ("mousePressed", "mouseReleased"):
            await self.tab.send("Input.dispatchMouseEvent", type=kind, x=x, y=y, button="left", clickCount=1)
        self.traffic.touch()
        return True

    async def fill(self, selector: str, text: str) -> None:
        """Wait for ``selector`` (an input, textarea or editable element), replace its
        value with ``text`` as typed input (input events), then fire ``change``."""
        await self.wait_for(selector)
        target = json.dumps(selector)
        await self.evaluate(
            f"(() => {{ const e = document.querySelector({target}); e.focus(); if ('value' in e) e.value = ''; }})()"
        )
        await self.tab.send("Input.insertText", text=text)
        await self.evaluate(f"document.querySelector({target}).dispatchEvent(new Event('change', {{bubbles: true}}))")

    async def scroll_to_end(self, max_rounds: int = SCROLL_ROUNDS, settle_s: float = SCROLL_SETTLE_S) -> int:
        """Scroll to the bottom until the page stops growing (infinite scroll): after each
        scroll, wait until the network has been quiet for ``settle_s``.  Returns how many
        scrolls made the page taller (at most ``max_rounds``).

        Each scroll also dispatches a ``scroll`` event itself: the crawler's tabs are all
        hidden (background tabs, see ``crawler.browser.pool``), and a hidden page gets no
        rendering updates, so the browser would never deliver the event (an
        IntersectionObserver does not fire there either: such lists are out of reach
        for now)."""
        await self.wait_for_load()
        height_js = "(document.scrollingElement || document.documentElement).scrollHeight"
        scroll_js = f"window.scrollTo(0, {height_js}); document.dispatchEvent(new Event('scroll', {{bubbles: true}}))"
        height = await self.evaluate(height_js)
        grew = 0
        for _ in range(max_rounds):
            await self.evaluate(scroll_js)
            self.traffic.touch()
            await self.wait_for_idle(settle_s)
            new_height = await self.evaluate(height_js)
            if new_height <= height:
                break
            grew, height = grew + 1, new_height
        return grew

    # -- what the job produces -----------------------------------------------------------

    async def enqueue(
        self,
        urls: Iterable[str] = (),
        *,
        selector: str | None = None,
        label: str | None = None,
        data: Mapping[str, Any] | None = None,
    ) -> int:
        """Enqueue ``urls`` and the links of the elements matching ``selector`` (their
        ``href``, else ``src``), resolved against the document, for the route ``label``
        (None: the default route), one level deeper, with ``data``.  Links the
        ``[crawl]`` rules refuse, and non-http(s) ones, are skipped and counted.  Returns
        how many were new to the crawl.  They are stored only with the job's outcome."""
        payload = json.loads(json.dumps(dict(data or {})))  # a copy, and a TypeError now if not JSON
        raw = [(u, self.url) for u in urls]
        if selector is not None:
            found = await self.evaluate(
                f"""(() => ({{base: document.baseURI, links: Array.from(
                document.querySelectorAll({json.dumps(check_selector(selector))}),
                (e) => e.getAttribute('href') ?? e.getAttribute('src')).filter((h) => h !== null)}}))()"""
            )
            raw += [(link, found["base"]) for link in found["links"]]
        depth = self.depth + 1
        candidates: list[str] = []
        for link, base in raw:
            url = self._env.links.accept(link, base=base, page_url=self.url, depth=depth)
            if url is not None and url not in self._enqueued and url not in candidates:
                candidates.append(url)
        if not candidates:
            return 0
        known = await self._env.known(candidates)
        fresh = [u for u in candidates if u not in known]
        self._enqueued.update(candidates)
        self.links += [Request(u, label, depth, payload, self.url) for u in fresh]
        return len(fresh)

    async def push(self, item: Mapping[str, Any]) -> None:
        """Add an item to the job's output: stored, with ``url`` (and ``label``, for a
        labelled route) where the item lacks them, only if the job ends done, in the
        same transaction.  Raises TypeError if the item is not JSON-serialisable."""
        if not isinstance(item, Mapping):
            raise TypeError(f"push: expected a dict, got {type(item).__name__}")
        copy = json.loads(json.dumps(dict(item), ensure_ascii=False))
        copy.setdefault("url", self.url)
        if self.label is not None:
            copy.setdefault("label", self.label)
        self.items.append(copy)


def _fields(fields: Mapping[str, Any] | tuple[Field, ...]) -> tuple[Field, ...]:
    return fields if isinstance(fields, tuple) else parse_fields(fields)


def _remaining_s() -> float | None:
    """The time left before the enclosing deadline (the watchdog), for commands that
    may legitimately take longer than the connection's default command deadline."""
    deadline = trio.current_effective_deadline()
    return None if deadline == float("inf") else max(0.001, deadline - trio.current_time())


@asynccontextmanager
async def open_page(tab: cdp.Tab, request: Request, env: PageEnv) -> AsyncIterator[Page]:
    """A Page on ``tab`` for ``request``, with its event reader running; both end when
    the block exits (also when cancelled).  Starts one task in its own nursery.  A
    block that ends normally after the tab started loading a forbidden URL raises
    PageFailure ``forbidden_url`` (the job's output is not to be stored)."""
    page = Page(tab, request, env)
    async with tab.listen(*TRAFFIC_EVENTS) as events, open_service_nursery() as nursery:
        nursery.start_soon(page.traffic.read_events, events, nursery)
        try:
            yield page
            page._check_navigations()
        finally:
            nursery.cancel_scope.cancel()
