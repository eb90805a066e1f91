"""The session pool: one session per browser context, its proxy and identity, and
what becomes of a session the site blocks.

Our browser context *is* the session: it has its own cookies, cache and storage, and
Chromium gives each context its own proxy (``Target.createBrowserContext``
``proxyServer``).  So the pool's part in a context's life is:

1. :meth:`SessionPool.create_context` (the tab pool's context factory): the next
   proxy in turn that is not benched, the context created with it, the cookies of
   ``[session] cookies_file`` set in it (``Storage.setCookies``);
2. :meth:`SessionPool.prepare_tab` for every tab of it, before its first navigation:
   user agent, locale, timezone, headers (per-target settings, hence per tab); proxy
   credentials are answered by the page's event reader (``Fetch.authRequired``);
3. :meth:`SessionPool.retire` when a page says the site blocked it (a status in
   ``retire_on_status``, a ``retire_if`` match, the handler's ``page.retire_session``)
   or the proxy refused the connection: counted by reason, and the proxy benched;
   the tab pool drains and disposes the context, and the next one takes the next
   proxy.

Benching (why): a proxy whose address the site has just blocked, or which refuses
connections, is left out for ``backoff_s[0]`` seconds, doubling each time it is
benched again without a page done through it since, up to ``backoff_s[1]``.  When
every proxy is benched (or, crawling directly, the one direct "proxy" is), a new
context waits for the first to come back: the crawl slows down, with one warning
line per such episode, instead of failing every URL against a wall.

Which retirements a URL pays for is :meth:`SessionPool.charge_retirement`'s decision.
"""

from __future__ import annotations

import logging
from collections import Counter
from collections.abc import AsyncIterator, Callable, Mapping
from contextlib import asynccontextmanager
from typing import Any

import attrs
import trio

import cdp
from crawler.browser.client_hints import user_agent_metadata
from crawler.browser.identity import PROXY_BYPASS_LIST, Identity, apply_identity, browser_identity
from crawler.config import SessionSection
from crawler.config.identity import Proxy
from crawler.config.model import HttpSection
from crawler.http.client import DEFAULT_USER_AGENT, HTML_ACCEPT, PROXY_AUTH, HttpClient
from crawler.http.clients import HttpClients
from crawler.http.cookies import JarCookies

log = logging.getLogger(__name__)

DIRECT = "direct"  # the proxy label of a session without a proxy
PROXY_FAILURES = frozenset({PROXY_AUTH, "proxy_error"})  # retirements no URL is charged for
# A URL's retirements after its first are free (the session was blocked, not the
# page at fault), up to this many in one process (Crawlee's maxSessionRotations);
# past it the URL pays for each, so a page that every identity is refused ends.
MAX_FREE_RETIREMENTS = 10


@attrs.frozen
class Session:
    """What a handler sees of its session (``page.session``)."""

    id: str  # "s1", "s2"... in the order the sessions were made
    proxy: str | None  # scheme://host:port, never credentials; None: direct
    context_id: str


@attrs.frozen
class SessionStatistics:
    """The session pool's figures (read without a clock: also outside trio)."""

    sessions: int  # sessions (contexts) made
    live: int  # sessions not retired whose context may still exist
    retired: Mapping[str, int]  # sessions retired, by reason (status_403, retire_if, proxy_error, the handler's)
    proxy_requests: Mapping[str, int]  # requests sent through each proxy (its server, or "direct")
    benched_until: Mapping[str, float]  # proxy -> trio time until which it is left out (those ever benched)
    waits: int  # times a new session had to wait because every proxy was benched
    http_clients: int = 0  # HTTP clients open (one per session that fetched over HTTP, until it ends)


@attrs.define(eq=False)
class _ProxySlot:
    proxy: Proxy | None
    benched_until: float = float("-inf")
    benched_at: float = float("-inf")
    strikes: int = 0  # benchings in a row without a page done through it since
    auth_refused: bool = False  # its credentials were refused, and no page was done through it since

    @property
    def label(self) -> str:
        return self.proxy.server if self.proxy is not None else DIRECT


@attrs.define(eq=False)
class _SessionState:
    session: Session
    slot: _ProxySlot
    created_at: float
    retired: str | None = None
    pages: int = 0  # HTTP jobs handed to it (a session without a browser context)
    jar: JarCookies | None = None  # its cookies, when no browser context keeps them


class SessionPool:
    """The sessions of a crawl, across browsers.  Never blocks but in
    :meth:`create_context` (the backoff wait, and its commands)."""

    def __init__(self, s: SessionSection, *, cookies: tuple[dict[str, Any], ...] = (), http: HttpSection | None = None):
        self._slots = [_ProxySlot(p) for p in s.proxies] or [_ProxySlot(None)]
        self._next = 0
        self._backoff_s = s.backoff_s
        self._identity = Identity(s.user_agent, s.locale, s.timezone, s.headers)
        self._cookies = cookies
        self._sessions: dict[str, _SessionState] = {}
        self._numbers = 0
        self._retired: Counter[str] = Counter()
        self._requests: Counter[str] = Counter()
        self._retirements_by_url: Counter[str] = Counter()
        self._waits = 0
        self._warned = False  # a warning for the current all-benched episode was logged
        self._own: dict[int, Identity] = {}  # id(browser) -> the identity with its user agent minus "HeadlessChrome"
        self._http = http or HttpSection()
        self._clients = HttpClients()
        self._browserless: str | None = None  # the session browserless HTTP jobs run in now
        self._browserless_lock = trio.Lock()

    def statistics(self) -> SessionStatistics:
        return SessionStatistics(
            sessions=self._numbers,
            live=sum(1 for state in self._sessions.values() if state.retired is None),
            retired=dict(self._retired),
            proxy_requests=dict(self._requests),
            benched_until={slot.label: slot.benched_until for slot in self._slots if slot.strikes},
            waits=self._waits,
            http_clients=len(self._clients),
        )

    # -- making sessions -------------------------------------------------------------------

    async def create_context(self, browser: cdp.Browser) -> cdp.BrowserContext:
        """A new context for the next session: the next proxy in turn that is not
        benched (waiting, if every one is, for the first to come back), its cookies set.
        Cancelled while waiting: nothing made.  Cancelled or failing once the context
        exists: it is disposed (shielded, bounded) and the error goes on.  Raises the
        browser's CDP errors."""
        slot = await self._next_slot()
        proxy = slot.proxy
        context = await browser.create_context(
            proxy_server=proxy.server if proxy is not None else "",
            proxy_bypass_list=PROXY_BYPASS_LIST,
        )
        try:
            if id(browser) not in self._own and not self._identity.user_agent:
                self._own = {id(browser): browser_identity(self._identity, await browser.send("Browser.getVersion"))}
            if self._cookies:
                await browser.send("Storage.setCookies", cookies=list(self._cookies), browserContextId=context.id)
        except BaseException:
            await context.aclose()  # shielded and bounded by its own deadline
            raise
        await self._forget_gone({c.id for c in browser.contexts})
        self._numbers += 1
        session = Session(f"s{self._numbers}", proxy.server if proxy is not None else None, context.id)
        self._sessions[context.id] = _SessionState(session, slot, trio.current_time())
        log.info("session %s: %s", session.id, slot.label)
        return context

    async def _next_slot(self) -> _ProxySlot:
        while True:
            now = trio.current_time()
            for offset in range(len(self._slots)):
                slot = self._slots[(self._next + offset) % len(self._slots)]
                if slot.benched_until <= now:
                    self._next = (self._next + offset + 1) % len(self._slots)
                    return slot
            first = min(self._slots, key=lambda s: s.benched_until)
            self._waits += 1
            if not self._warned:
                self._warned = True
                what = "every proxy is" if first.proxy is not None else "the direct session is"
                log.warning(
                    "%s blocked or failing (%d benched); new sessions wait %.1f s, then every %s at most",
                    what,
                    len(self._slots),
                    first.benched_until - now,
                    f"{self._backoff_s[1]:g} s",
                )
            await trio.sleep_until(first.benched_until)

    async def _forget_gone(self, live_contexts: set[str]) -> None:
        """Forget the sessions whose contexts are gone, and close their HTTP clients
        (now if idle, else by their last user)."""
        for context_id in [c for c in self._sessions if c not in live_contexts and c != self._browserless]:
            del self._sessions[context_id]
            await self._clients.end(context_id)

    async def browserless_session(self, max_pages: int) -> str:
        """The session an HTTP job runs in when the crawl has no browser: the current
        one, or a new one on the next proxy once it is retired or has been handed
        ``max_pages`` jobs (as a context rotates).  Its cookies are a jar of its own.
        Waits while every proxy is benched (cancelled then: nothing made)."""
        async with self._browserless_lock:
            state = self._sessions.get(self._browserless) if self._browserless is not None else None
            if state is None or state.retired is not None or state.pages >= max_pages:
                if state is not None:
                    del self._sessions[state.session.context_id]  # rotated or retired: its client ends below
                    await self._clients.end(state.session.context_id)
                slot = await self._next_slot()
                self._numbers += 1
                key = f"http-{self._numbers}"
                session = Session(f"s{self._numbers}", slot.proxy.server if slot.proxy is not None else None, key)
                state = self._sessions[key] = _SessionState(session, slot, trio.current_time(), jar=JarCookies())
                self._browserless = key
                log.info("session %s: %s (HTTP, no browser)", session.id, slot.label)
            state.pages += 1
            return state.session.context_id

    def jar(self, session_id: str) -> JarCookies:
        """The cookie jar of a session without a browser context (KeyError for one with)."""
        state = self._sessions[session_id]
        if state.jar is None:
            raise KeyError(f"session {session_id} keeps its cookies in its browser context")
        return state.jar

    def request_counter(self, session_id: str) -> Callable[[], None]:
        """What counts one request of the session (``crawler_proxy_requests_total``)."""
        return lambda: self.count_request(session_id)

    @asynccontextmanager
    async def http_client(self, session_id: str) -> AsyncIterator[HttpClient]:
        """The session's HTTP client (one per session: its proxy with credentials, its
        identity's headers), held for the block; once the session is retired or gone,
        its last user closes it."""
        async with self._clients.use(session_id, lambda: self._make_client(session_id)) as client:
            yield client
        state = self._sessions.get(session_id)
        if state is None or state.retired is not None:
            await self._clients.end(session_id)

    def _make_client(self, session_id: str) -> HttpClient:
        state = self._sessions.get(session_id)
        return HttpClient(self._http, headers=self.http_headers(), proxy=state.slot.proxy if state else None)

    def http_headers(self) -> dict[str, str]:
        """What every HTTP request of the crawl's sessions presents: the user agent
        (the configured one, else the browser's own, else :data:`DEFAULT_USER_AGENT`),
        Accept-Language from the locale (weighted as Chromium weighs it), for a Chromium
        user agent the client hints Chromium sends unasked (``sec-ch-ua``,
        ``-mobile``, ``-platform``, as the browser path sends them; the client drops
        them for a plain-http origin that is not local, as Chromium does), the
        configured headers."""
        identity = self._identity
        agent = identity.user_agent or next((own.user_agent for own in self._own.values()), "") or DEFAULT_USER_AGENT
        headers = {"user-agent": agent, "accept": HTML_ACCEPT}
        metadata = user_agent_metadata(agent)
        if metadata is not None:
            headers.update(metadata.headers())
        languages = [lang for lang in identity.accept_language.split(",") if lang]
        if languages:
            weighted = [lang if i == 0 else f"{lang};q={max(0.1, 1 - i / 10):.1f}" for i, lang in enumerate(languages)]
            headers["accept-language"] = ",".join(weighted)
        headers.update({name.lower(): value for name, value in identity.headers})
        return headers

    async def aclose(self) -> None:
        """Close every session's HTTP client (the crawl is over); idempotent."""
        await self._clients.aclose()

    async def prepare_tab(self, tab: cdp.Tab, target: cdp.Tab | cdp.Session | None = None) -> None:
        """Present the session's identity on a new tab of its context, before its first
        navigation (the tab pool's per-tab setup, after the page domains are on), or on
        ``target``, an out-of-process frame of the tab, before it runs.
        Raises the tab's CDP error; cancelled half-way, the tab is the pool's to close."""
        identity = self._identity
        if not identity.user_agent:
            identity = self._own.get(id(tab.context.browser), identity)
        await apply_identity(tab if target is None else target, identity)

    def needs_auth(self, context_id: str) -> bool:
        """Whether the context's proxy asks for credentials (its tabs then answer
        ``Fetch.authRequired``)."""
        return self.credentials(context_id) is not None

    def credentials(self, context_id: str) -> tuple[str, str] | None:
        """(user, password) for the context's proxy challenge; None if it has none."""
        state = self._sessions.get(context_id)
        return state.slot.proxy.credentials if state is not None and state.slot.proxy is not None else None

    def session(self, context_id: str) -> Session | None:
        """The session of a context; None for a context this pool did not make."""
        state = self._sessions.get(context_id)
        return state.session if state is not None else None

    # -- what happens to them ----------------------------------------------------------------

    def count_request(self, context_id: str) -> None:
        """A request left through the context's proxy (for ``crawler_proxy_requests_total``)."""
        state = self._sessions.get(context_id)
        if state is not None:
            self._requests[state.slot.label] += 1

    def page_done(self, context_id: str) -> None:
        """A page was done through the context's session: its proxy works (its benching
        starts from ``backoff_s[0]`` again), and an all-benched episode is over."""
        state = self._sessions.get(context_id)
        if state is not None and state.retired is None:
            state.slot.strikes = 0
            state.slot.auth_refused = False
            self._warned = False

    def retire(self, context_id: str, reason: str) -> bool:
        """Retire the context's session (the caller drains its context): counted under
        ``reason`` once per session, and its proxy benched.  Returns whether this call
        retired it (False: it was retired already, or is not ours)."""
        state = self._sessions.get(context_id)
        if state is None or state.retired is not None:
            return False
        state.retired = reason
        self._retired[reason] += 1
        slot = state.slot
        if reason == PROXY_AUTH:
            slot.auth_refused = True
        now = trio.current_time()
        # A session made before its proxy was last benched says nothing new about the
        # proxy (two tabs of one context met the same block): no second strike.
        if state.created_at >= slot.benched_at:
            slot.strikes += 1
            slot.benched_at = now
            slot.benched_until = now + self._bench_s(slot.strikes)
        log.warning(
            "session %s (%s) retired: %s; %s left out for %.0f s",
            state.session.id,
            slot.label,
            reason,
            slot.label,
            slot.benched_until - now,
        )
        return True

    @property
    def all_refused(self) -> str | None:
        """When every proxy of the crawl has refused its credentials (none has done a
        page since): the one line to stop the crawl with, naming them (without their
        credentials); else None.  Waiting for a proxy's bench to end cannot cure this."""
        if any(slot.proxy is None or not slot.auth_refused for slot in self._slots):
            return None
        names = ", ".join(slot.label for slot in self._slots)
        return f"every proxy refused its credentials ({PROXY_AUTH}): {names}"

    def is_retired(self, context_id: str) -> bool:
        state = self._sessions.get(context_id)
        return state is not None and state.retired is not None

    def _bench_s(self, strikes: int) -> float:
        first, cap = self._backoff_s
        return min(cap, first * 2 ** max(0, strikes - 1))

    def charge_retirement(self, url: str, reason: str = "") -> bool:
        """Whether the attempt of ``url`` that met a retirement counts against its
        attempts: never for a proxy's own failure (``proxy_auth``, ``proxy_error``: the
        page was not even asked for); else its first retirement does (so a URL pays for
        retirements at most once, and a page that is refused everywhere still ends),
        the next :data:`MAX_FREE_RETIREMENTS` do not, and every one after those does."""
        if reason in PROXY_FAILURES:
            return False
        self._retirements_by_url[url] += 1
        n = self._retirements_by_url[url]
        return n == 1 or n > MAX_FREE_RETIREMENTS + 1
