"""What every job produces, whichever way its page was fetched: the items it pushed and
the links it enqueued (committed with the job's outcome, in one transaction), the
session it ran in, and HTTP requests of its own (``fetch``).

:class:`JobOutput` is the base of the browser's :class:`~crawler.page.Page` and of
:class:`~crawler.page.http.HttpPage`, so a handler pushes, enqueues, fetches and
retires its session the same way on both paths.
"""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable, Mapping
from typing import Any, NoReturn

import attrs

from crawler.browser.session import Session, SessionPool
from crawler.errors import SessionRetired
from crawler.http.client import ANY_ACCEPT, Response, UrlRules
from crawler.http.cookies import Cookies
from crawler.page.links import LinkFilter
from crawler.policy.ratelimit import Pace
from crawler.policy.robots import RobotsPolicy
from crawler.request import Request

POLL_INTERVAL_S = 0.05  # how often a condition the page gives no event for is re-checked


@attrs.frozen
class PageEnv:
    """What every page of a crawl shares: the host pacing, the link rules, the store's
    ``known`` (which URLs are in the frontier already), the polling interval, and
    whether its tabs were prepared with ``pace_documents``; the session pool, and what
    retires a session (``[session] retire_on_status``, ``retire_if``); which URLs HTTP
    requests may go to, and robots.txt (None: not obeyed)."""

    limiter: Pace
    links: LinkFilter
    known: Callable[[list[str]], Awaitable[set[str]]]
    poll_interval_s: float = POLL_INTERVAL_S
    paces_documents: bool = False
    sessions: SessionPool | None = None
    retire_on_status: frozenset[int] = frozenset()
    retire_if: str = ""
    url_rules: UrlRules = UrlRules()
    robots: RobotsPolicy | None = None


class JobOutput:
    """The job's request, and what the job produces (see the module docstring)."""

    def __init__(self, request: Request, env: PageEnv, session_id: str):
        self.request = request
        self.env = env
        self.session_id = session_id  # the session's key in env.sessions (a browser context's id)
        self.items: list[dict[str, Any]] = []  # pushed, in order
        self.links: list[Request] = []  # enqueued (new ones), in order
        # every link enqueued, new to the crawl or not: (url, label, data as JSON)
        self.requested: list[tuple[str, str | None, str]] = []
        self.retired: str | None = None  # why the handler retired the session (retire_session)
        self._enqueued: set[str] = set()

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
        credentials); None outside a session pool."""
        sessions = self.env.sessions
        return sessions.session(self.session_id) if sessions is not None else None

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

    # -- HTTP requests of the handler's own ------------------------------------------------

    def _cookies(self) -> Cookies:
        """Where this page's session keeps its cookies."""
        raise NotImplementedError

    async def fetch(
        self,
        url: str,
        *,
        method: str = "GET",
        json: Any = None,
        headers: Mapping[str, str] | None = None,
    ) -> Response:
        """An HTTP request of the handler's own (a JSON API the page calls), relative to
        the page's URL, in the page's session: its cookies (both ways), user agent and
        proxy, with the page as referer.  It waits for the host's pacing turn, obeys
        robots.txt (when the crawl does) and the forbidden-URL rules, and runs under
        the job's watchdog.  Returns the :class:`~crawler.http.client.Response` whatever
        its status (``raise_for_status()`` fails the job by it); its body is at most
        ``[http] max_body_bytes``, and ``.json()`` fails ``not_json`` if it is not JSON.
        Raises PageFailure ``forbidden_url``, ``bad_url``, ``private_address``,
        ``robots``, ``net``, ``body_too_large``...  If cancelled, the request may have
        reached the server; nothing of it is kept."""
        env = self.env
        target = await env.url_rules.check(url, self.url)
        if env.robots is not None and (refusal := await env.robots.check(target)) is not None:
            raise refusal
        if env.sessions is None:
            raise RuntimeError("fetch: this page has no session pool")
        sent = {"accept": ANY_ACCEPT, "referer": self.url, **{k.lower(): v for k, v in (headers or {}).items()}}
        async with env.sessions.http_client(self.session_id) as client:
            return await client.fetch(
                target,
                cookies=self._cookies(),
                pace=env.limiter,
                rules=env.url_rules,
                method=method.upper(),
                json_body=json,
                headers=sent,
                on_request=env.sessions.request_counter(self.session_id),
            )

    # -- what the job produces -----------------------------------------------------------

    async def add_links(self, raw: list[tuple[str, str]], *, label: str | None, data: Mapping[str, Any] | None) -> int:
        """The part of ``enqueue`` after the links are read: ``raw`` is (link, the base
        URL it is relative to) pairs; returns how many were new."""
        payload = json.loads(json.dumps(dict(data or {})))  # a copy, and a TypeError now if not JSON
        depth = self.depth + 1
        candidates: list[str] = []
        for link, base in raw:
            url = self.env.links.accept(link, base=base, page_url=self.url, depth=depth)
            if url is not None and url not in self._enqueued and url not in candidates:
                candidates.append(url)
        if not candidates:
            return 0
        text = json.dumps(payload, sort_keys=True)
        self.requested += [(u, label, text) for u in candidates]
        known = await self.env.known(candidates)
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
