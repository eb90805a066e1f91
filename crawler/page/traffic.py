"""What one page's network traffic says, as the page's event reader learns it.

:class:`Traffic` is a :class:`~crawler.page.Page`'s picture of its tab: the main-frame
documents and their statuses, every response in arrival order (for ``responses()``),
the requests in flight (for ``wait_for_idle()``), and the dialogs dismissed.  Its
reader task consumes the tab's events and never raises; with pacing on, it continues
each paused main-frame document in its host's rate-limit turn (see :mod:`crawler.page`).

It also watches every frame's navigations for a forbidden URL (``file:``, ``chrome:``...:
``crawler.urls.FORBIDDEN_SCHEMES``).  Chromium itself refuses a page's own navigation
to those (a link, ``location = "file:///..."``, a redirect: tested against it); what
Chromium does let through is a navigation the browser side starts, which only CDP can
ask for, and our ``goto`` refuses such URLs before asking.  Should one start all the
same (a handler sending ``Page.navigate`` itself, a Chromium bug), the reader records
it in :attr:`Traffic.forbidden` and stops the tab's loading; a paused request to such
a URL (with pacing on) is failed outright.  The Page then fails the job
``forbidden_url`` (see :mod:`crawler.page`), the tab is closed, nothing is stored.
"""

from __future__ import annotations

import base64
import json
from collections.abc import Callable
from typing import Any

import trio

import cdp
from crawler.errors import PageFailure
from crawler.policy.ratelimit import Pace
from crawler.urls import forbidden_scheme, short_url

EVENTS = (
    "Network.requestWillBeSent",
    "Network.requestWillBeSentExtraInfo",
    "Network.responseReceived",
    "Network.loadingFinished",
    "Network.loadingFailed",
    "Page.javascriptDialogOpening",
    "Page.frameStartedNavigating",
    "Page.frameNavigated",
    "Page.domContentEventFired",
    "Fetch.requestPaused",
    "Fetch.authRequired",
)
IGNORED_REQUEST_TYPES = ("EventSource", "WebSocket")  # never "finish": not counted as in flight
REQUEST_SENT_WAIT_S = 5.0  # longest a paced document holds its host's turn waiting to be sent


class Response:
    __slots__ = ("request_id", "url", "loader", "done", "error", "body")

    def __init__(self, request_id: str, url: str, loader: str):
        self.request_id, self.url, self.loader = request_id, url, loader
        self.done = False
        self.error: str | None = None
        self.body: Any = _UNREAD


_UNREAD = object()


class Traffic:
    """One tab's traffic during one job.  ``documents`` maps a main-frame navigation's
    loaderId to (status, headers, error); ``parsed`` holds the loaderIds of the
    main-frame documents that committed and fired DOMContentLoaded; :meth:`responses`
    are the other responses, in arrival order; :attr:`in_flight` the requests not
    finished yet.

    Only this job's documents count: those its own navigations started (:meth:`expect`)
    and those the page committed after one of them (a click that loads the next page).
    A tab is reused without being blanked between jobs (see ``crawler.browser.pool``), so the
    previous job's document may still finish requests while the next job starts; they
    carry that document's loaderId, and are not this job's."""

    def __init__(
        self,
        tab: cdp.Tab,
        limiter: Pace,
        *,
        credentials: tuple[str, str] | None = None,
        on_request: Callable[[], None] | None = None,
    ):
        self.tab = tab
        self._limiter = limiter
        self._credentials = credentials  # the proxy's, for Fetch.authRequired
        self._on_request = on_request
        self._challenged: set[str] = set()  # requests whose proxy challenge was answered
        self._loaders: dict[str, str] = {}  # main-frame document requestId -> loaderId
        self.documents: dict[str, tuple[int | None, dict[str, str], str | None]] = {}
        self.parsed: set[str] = set()  # committed loaderIds whose DOMContentLoaded fired
        self._current: str | None = None  # the main frame's document that committed last
        self._mine: set[str] = set()  # loaderIds of this job's documents
        self._responses: list[Response] = []
        self._by_request: dict[str, Response] = {}
        self._in_flight: dict[str, str] = {}  # requestId -> loaderId
        self._sent: set[str] = set()  # requestIds the network stack has sent (or answered, or failed)
        self.last_activity = trio.current_time()
        self._changed = trio.Event()
        self.dialogs = 0
        self.blocked = 0  # requests failed because their resource type is blocked
        self.forbidden: str | None = None  # the first forbidden URL a frame of the tab started to load

    async def read_events(self, events: cdp.EventStream, nursery: trio.Nursery) -> None:
        """Keep the page's picture current; pace main-frame documents.  Ends with the
        page's nursery, or with the tab's error (crash, close), which the handler meets
        on its next command: nothing to report here."""
        frame = self.tab.target_id  # a page target's main frame has the target's id
        try:
            async for event in events:
                p, method = event.params, event.method
                if method == "Fetch.requestPaused":
                    if forbidden_scheme(p["request"]["url"]):
                        self._forbid(p["request"]["url"], nursery)
                        nursery.start_soon(self._refuse, p["requestId"])
                    elif p.get("resourceType") != "Document":  # only blocked types are paused
                        self.blocked += 1
                        nursery.start_soon(self._refuse, p["requestId"])
                    elif p.get("frameId") == frame:
                        nursery.start_soon(self._pace, p["requestId"], p.get("networkId"), p["request"]["url"])
                    else:
                        await self.tab.send("Fetch.continueRequest", requestId=p["requestId"])
                elif method == "Fetch.authRequired":
                    nursery.start_soon(self._answer_auth, p["requestId"], p.get("authChallenge", {}))
                elif method == "Network.requestWillBeSentExtraInfo":
                    self._sent.add(p.get("requestId"))
                elif method == "Network.requestWillBeSent":
                    if self._on_request is not None and p.get("request", {}).get("url", "").startswith("http"):
                        self._on_request()  # data: and blob: URLs never reach the network
                    if p.get("type") not in IGNORED_REQUEST_TYPES:
                        self._in_flight[p["requestId"]] = p.get("loaderId", "")
                    if p.get("type") == "Document" and p.get("frameId") == frame:
                        self._loaders[p["requestId"]] = p.get("loaderId", "")
                elif method == "Network.responseReceived":
                    self._sent.add(p["requestId"])
                    response = p.get("response", {})
                    loader = self._loaders.get(p["requestId"])
                    if loader is not None:
                        headers = {k.lower(): v for k, v in (response.get("headers") or {}).items()}
                        self.documents[loader] = (response.get("status"), headers, None)
                    elif p["requestId"] not in self._by_request:
                        record = Response(p["requestId"], response.get("url", ""), p.get("loaderId", ""))
                        self._responses.append(record)
                        self._by_request[record.request_id] = record
                elif method in ("Network.loadingFinished", "Network.loadingFailed"):
                    request_id = p.get("requestId")
                    self._in_flight.pop(request_id, None)
                    self._sent.add(request_id)
                    record = self._by_request.get(request_id)
                    failed = method == "Network.loadingFailed"
                    if record is not None:
                        record.done, record.error = True, p.get("errorText", "failed") if failed else None
                    loader = self._loaders.get(request_id)
                    if failed and loader is not None and loader not in self.documents and not p.get("canceled"):
                        self.documents[loader] = (None, {}, p.get("errorText", "failed"))
                elif method == "Page.frameStartedNavigating":
                    if forbidden_scheme(p.get("url")):
                        self._forbid(p["url"], nursery)
                elif method == "Page.frameNavigated":
                    committed = p.get("frame", {})
                    if forbidden_scheme(committed.get("url")):
                        self._forbid(committed["url"], nursery)
                    if committed.get("id") == frame and committed.get("loaderId"):
                        self._current = committed["loaderId"]
                        if self._mine:  # the page moved on after this job's navigation
                            self._mine.add(committed["loaderId"])
                elif method == "Page.domContentEventFired":
                    # The Page domain's events come in order: this is the document that
                    # committed last (its HTML is parsed, its deferred scripts have run).
                    if self._current is not None:
                        self.parsed.add(self._current)
                elif method == "Page.javascriptDialogOpening":
                    self.dialogs += 1
                    await self.tab.send("Page.handleJavaScriptDialog", accept=p.get("type") == "beforeunload")
                self.touch()
        except (cdp.CDPError, trio.ClosedResourceError):
            self.touch()

    def _forbid(self, url: str, nursery: trio.Nursery) -> None:
        """A frame of the tab started to load a forbidden URL: note it, stop the loading."""
        if self.forbidden is None:
            self.forbidden = url
            nursery.start_soon(self._stop_loading)

    async def _stop_loading(self) -> None:
        try:
            await self.tab.send("Page.stopLoading")
        except (cdp.CDPError, trio.ClosedResourceError):
            pass  # the tab is gone; it is not reused either way

    def expect(self, loader: str) -> None:
        """A navigation of this job's started the document ``loader``: it is this job's."""
        self._mine.add(loader)

    def mine(self, loader: str) -> bool:
        """Whether a request of document ``loader`` is this job's ("": a worker's)."""
        return not loader or loader in self._mine

    @property
    def in_flight(self) -> set[str]:
        """This job's requests not finished yet."""
        return {request for request, loader in self._in_flight.items() if self.mine(loader)}

    def responses(self) -> list[Response]:
        """This job's responses (documents aside), in arrival order."""
        return [r for r in self._responses if self.mine(r.loader)]

    async def _answer_auth(self, request_id: str, challenge: dict[str, Any]) -> None:
        """Answer a proxy's challenge with the session's credentials, once per request
        (a second challenge means they were refused: cancelled, and the page fails
        with the proxy's 407); a site's own challenge is not ours to answer."""
        if challenge.get("source") == "Proxy" and self._credentials and request_id not in self._challenged:
            self._challenged.add(request_id)
            user, password = self._credentials
            answer = {"response": "ProvideCredentials", "username": user, "password": password}
        else:
            answer = {"response": "CancelAuth"}
        try:
            await self.tab.send("Fetch.continueWithAuth", requestId=request_id, authChallengeResponse=answer)
        except (cdp.CDPError, trio.ClosedResourceError):
            pass  # the request was abandoned, or the tab is gone

    async def _refuse(self, request_id: str) -> None:
        """Fail a paused request of a blocked resource type, as an ad blocker would."""
        try:
            await self.tab.send("Fetch.failRequest", requestId=request_id, errorReason="BlockedByClient")
        except (cdp.CDPError, trio.ClosedResourceError):
            pass  # the page moved on, or the tab is gone

    async def _pace(self, request_id: str, network_id: str | None, url: str) -> None:
        """Continue a paused main-frame document in its host's turn, and hold the turn
        until the network stack has really sent it (its raw headers were reported, or
        it was answered or failed): the next request to the host then starts one gap
        after this one left, as the server sees it."""
        try:
            async with self._limiter.hold(url):
                await self.tab.send("Fetch.continueRequest", requestId=request_id)
                with trio.move_on_after(REQUEST_SENT_WAIT_S):
                    while network_id is not None and network_id not in self._sent:
                        await self._changed.wait()
        except (cdp.CDPError, trio.ClosedResourceError):
            pass  # the navigation was abandoned, or the tab is gone: the handler finds out

    def touch(self) -> None:
        """Something happened (an event, or the page acted): wake whoever waits."""
        self.last_activity = trio.current_time()
        self._changed.set()
        self._changed = trio.Event()

    async def wait_change(self, timeout_s: float | None = None) -> None:
        """Wait for the next event (or ``timeout_s``)."""
        with trio.move_on_after(float("inf") if timeout_s is None else max(0.0, timeout_s)):
            await self._changed.wait()

    def received(self, url_contains: str) -> bool:
        """Whether a response whose URL contains ``url_contains`` has arrived whole."""
        return any(r.done and r.error is None and url_contains in r.url for r in self.responses())

    async def body(self, record: Response) -> Any:
        """A response's body, parsed as JSON if it is JSON (fetched once, then kept)."""
        if record.body is _UNREAD:
            try:
                reply = await self.tab.send("Network.getResponseBody", requestId=record.request_id)
            except cdp.ProtocolError as exc:
                # Seen, but its body cannot be had (evicted from the browser's buffer): an
                # item without it would be silently incomplete.
                raise PageFailure(
                    "capture", f"no body for {short_url(record.url)}: {exc.message}", retryable=True
                ) from None
            text = reply["body"]
            if reply.get("base64Encoded"):
                text = base64.b64decode(text).decode("utf-8", "replace")
            try:
                record.body = json.loads(text)
            except ValueError:
                record.body = text
        return record.body
