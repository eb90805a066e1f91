"""What one page's network traffic says, as the page's event reader learns it.

:class:`Traffic` is a :class:`~crawler.page.Page`'s picture of its tab: the main-frame
documents and their statuses, every response in arrival order (for ``responses()``),
when the network last moved and what still waits for an answer (for
``wait_for_idle()``), and the dialogs dismissed.  Its reader task consumes the tab's
events and never raises; with pacing on, it continues each paused main-frame document
in its host's rate-limit turn (see :mod:`crawler.page`).

Frames: the requests of the page's frames are the page's.  An out-of-process frame
attaches to the tab paused (see :mod:`crawler.page.tab`); the reader prepares it like
the tab, lets it run and reads its events in a task of its own, handled as the tab's
are, answered on the frame's session.  The frames' places are kept in the page's
:class:`~crawler.page.frames.FrameTargets`.

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
from crawler.page.places import FrameTargets, Sender
from crawler.page.tab import prepare_frame
from crawler.policy.ratelimit import Pace
from crawler.urls import forbidden_scheme, short_url

EVENTS = (
    "Network.requestWillBeSent",
    "Network.requestWillBeSentExtraInfo",
    "Network.responseReceived",
    "Network.dataReceived",
    "Network.loadingFinished",
    "Network.loadingFailed",
    "Page.javascriptDialogOpening",
    "Page.frameStartedNavigating",
    "Page.frameNavigated",
    "Page.domContentEventFired",
    "Fetch.requestPaused",
    "Fetch.authRequired",
    "Target.attachedToTarget",
    "Runtime.executionContextCreated",
    "Runtime.executionContextDestroyed",
    "Runtime.executionContextsCleared",
)
# Streams and beacons: they never "finish" the way a page's loads do, so they are not
# waited for (wait_for_idle).
IGNORED_REQUEST_TYPES = ("EventSource", "WebSocket", "Ping", "CSPViolationReport")
LONG_POLL_S = 5.0  # a request unanswered this long is taken for a long poll: no longer waited for
REQUEST_SENT_WAIT_S = 5.0  # longest a paced document holds its host's turn waiting to be sent
BUSY_SHOWN = 3  # wait_for_idle's error names this many of the requests still loading


class Response:
    __slots__ = ("request_id", "url", "loader", "done", "error", "body", "sender")

    def __init__(self, request_id: str, url: str, loader: str, sender: Sender):
        self.request_id, self.url, self.loader, self.sender = request_id, url, loader, sender
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
        frames: FrameTargets,
        *,
        credentials: tuple[str, str] | None = None,
        on_request: Callable[[], None] | None = None,
    ):
        self.tab = tab
        self._limiter = limiter
        self._frames = frames
        self._credentials = credentials  # the proxy's, for Fetch.authRequired
        self._on_request = on_request
        self._challenged: set[str] = set()  # requests whose proxy challenge was answered
        self.proxy_auth_refused = False  # the proxy challenged again (or we had nothing to answer)
        self._loaders: dict[str, str] = {}  # main-frame document requestId -> loaderId
        self.documents: dict[str, tuple[int | None, dict[str, str], str | None]] = {}
        self.parsed: set[str] = set()  # committed loaderIds whose DOMContentLoaded fired
        self._current: str | None = None  # the main frame's document that committed last
        self._mine: set[str] = set()  # loaderIds of this job's documents
        self._responses: list[Response] = []
        self._by_request: dict[str, Response] = {}
        self._awaiting: dict[str, tuple[float, str, str]] = {}  # requestId -> (sent at, url, loaderId): no answer yet
        self._sent: set[str] = set()  # requestIds the network stack has sent (or answered, or failed)
        self._streams: set[str] = set()  # requestIds of IGNORED_REQUEST_TYPES
        self.last_network = trio.current_time()  # when a request of this job's last started, or data arrived
        self._changed = trio.Event()
        self.dialogs = 0
        self.blocked = 0  # requests failed because their resource type is blocked
        self.forbidden: str | None = None  # the first forbidden URL a frame of the tab started to load

    async def read_events(self, events: cdp.EventStream, nursery: trio.Nursery) -> None:
        """Keep the page's picture current; pace main-frame documents; follow the page's
        out-of-process frames.  Ends with the page's nursery, or with the tab's error
        (crash, close), which the handler meets on its next command: nothing to report
        here."""
        await self._read(events, self.tab, nursery)

    async def _read(self, events: cdp.EventStream, sender: Sender, nursery: trio.Nursery) -> None:
        try:
            async for event in events:
                await self._handle(event.method, event.params, sender, nursery)
                self.touch()
        except (cdp.CDPError, trio.ClosedResourceError):
            self.touch()

    async def _follow_frame(self, frame: cdp.Session, nursery: trio.Nursery) -> None:
        """An out-of-process frame attached (paused): listen to it, prepare it like the
        tab, let it run, and read its events until it goes.  Never raises."""
        self._frames.attached(frame)
        try:
            async with frame.listen(*EVENTS) as events:
                await prepare_frame(self.tab, frame)
                self.touch()
                await self._read(events, frame, nursery)
        except (cdp.CDPError, trio.ClosedResourceError):
            pass  # the frame went away, or the tab did
        self.touch()

    async def _handle(self, method: str, p: dict[str, Any], sender: Sender, nursery: trio.Nursery) -> None:
        main = self.tab.target_id  # a page target's main frame has the target's id
        mine = sender is not self.tab  # an out-of-process frame attached during this page: all of it is this job's
        if method == "Fetch.requestPaused":
            if forbidden_scheme(p["request"]["url"]):
                self._forbid(p["request"]["url"], nursery)
                nursery.start_soon(self._refuse, sender, p["requestId"])
            elif p.get("resourceType") != "Document":  # only blocked types are paused
                self.blocked += 1
                nursery.start_soon(self._refuse, sender, p["requestId"])
            elif p.get("frameId") == main:
                nursery.start_soon(self._pace, p["requestId"], p.get("networkId"), p["request"]["url"])
            else:
                await sender.send("Fetch.continueRequest", requestId=p["requestId"])
        elif method == "Fetch.authRequired":
            nursery.start_soon(self._answer_auth, sender, p["requestId"], p.get("authChallenge", {}))
        elif method == "Network.requestWillBeSentExtraInfo":
            self._sent.add(p.get("requestId"))
        elif method == "Network.requestWillBeSent":
            url, loader = p.get("request", {}).get("url", ""), p.get("loaderId", "")
            if self._on_request is not None and url.startswith("http"):
                self._on_request()  # data: and blob: URLs never reach the network
            if p.get("type") == "Document" and p.get("frameId") == main:
                self._loaders[p["requestId"]] = loader
            elif p.get("type") == "Document" and (mine or self._current in self._mine):
                self._mine.add(loader)  # a frame's document, loaded by this job's page
            if mine:
                self._mine.add(loader)
            if p.get("type") in IGNORED_REQUEST_TYPES:
                self._streams.add(p["requestId"])
            elif self.mine(loader):
                self._awaiting[p["requestId"]] = (trio.current_time(), url, loader)
                self.last_network = trio.current_time()
        elif method == "Network.responseReceived":
            self._sent.add(p["requestId"])
            self._answered(p["requestId"])
            response = p.get("response", {})
            loader = self._loaders.get(p["requestId"])
            if loader is not None:
                headers = {k.lower(): v for k, v in (response.get("headers") or {}).items()}
                self.documents[loader] = (response.get("status"), headers, None)
            elif p["requestId"] not in self._by_request:
                record = Response(p["requestId"], response.get("url", ""), p.get("loaderId", ""), sender)
                self._responses.append(record)
                self._by_request[record.request_id] = record
        elif method == "Network.dataReceived":
            request_id = p.get("requestId")
            record = self._by_request.get(request_id)
            if request_id not in self._streams and (request_id in self._loaders or record and self.mine(record.loader)):
                self.last_network = trio.current_time()
        elif method in ("Network.loadingFinished", "Network.loadingFailed"):
            request_id = p.get("requestId")
            self._answered(request_id)
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
            if sender is self.tab and committed.get("id") == main and committed.get("loaderId"):
                self._current = committed["loaderId"]
                if self._mine:  # the page moved on after this job's navigation
                    self._mine.add(committed["loaderId"])
        elif method == "Page.domContentEventFired":
            # The Page domain's events come in order: this is the document that
            # committed last (its HTML is parsed, its deferred scripts have run).
            if sender is self.tab and self._current is not None:
                self.parsed.add(self._current)
        elif method == "Page.javascriptDialogOpening":
            self.dialogs += 1
            await sender.send("Page.handleJavaScriptDialog", accept=p.get("type") == "beforeunload")
        elif method == "Target.attachedToTarget":
            nursery.start_soon(self._follow_frame, sender.attached(p), nursery)
        elif method.startswith("Runtime."):
            self._frames.on_runtime(method, p, sender)

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

    def check_forbidden(self) -> None:
        """PageFailure ``forbidden_url`` once a frame of the tab started loading one."""
        if self.forbidden is not None:
            raise PageFailure(
                "forbidden_url",
                f"the tab started to load {short_url(self.forbidden)}",
                retryable=False,
                tab_reusable=False,
            )

    def expect(self, loader: str) -> None:
        """A navigation of this job's started the document ``loader``: it is this job's."""
        self._mine.add(loader)

    def mine(self, loader: str) -> bool:
        """Whether a request of document ``loader`` is this job's ("": a worker's)."""
        return not loader or loader in self._mine

    def _answered(self, request_id: str) -> None:
        if self._awaiting.pop(request_id, None) is not None:
            self.last_network = trio.current_time()

    def idle_in(self, idle_s: float) -> float:
        """How long until the network will have been quiet for ``idle_s`` (<= 0: it has),
        if nothing happens meanwhile: no request of this job's started, none awaits its
        answer (but long polls), and no data arrived.  See ``Page.wait_for_idle``."""
        now = trio.current_time()
        waits = [idle_s - (now - self.last_network)]
        for sent_at, _, loader in self._awaiting.values():
            if self.mine(loader) and now - sent_at < LONG_POLL_S:
                waits.append(sent_at + LONG_POLL_S - now)
        return max(waits)

    async def wait_quiet(self, idle_s: float) -> None:
        """Return once :meth:`idle_in` says the network has been quiet for ``idle_s``
        (the caller bounds the wait)."""
        while (wait_s := self.idle_in(idle_s)) > 0:
            await self.wait_change(wait_s)

    def busy(self) -> str:
        """What keeps the network from being quiet, for an error message."""
        now = trio.current_time()
        waiting = [
            short_url(url)
            for sent_at, url, loader in self._awaiting.values()
            if self.mine(loader) and now - sent_at < LONG_POLL_S
        ]
        if waiting:
            more = f" (+{len(waiting) - BUSY_SHOWN} more)" if len(waiting) > BUSY_SHOWN else ""
            return "waiting for " + ", ".join(waiting[:BUSY_SHOWN]) + more
        recent = [r.url for r in self.responses()[-BUSY_SHOWN:]]
        return "requests keep starting or data keeps arriving" + (
            f" (lately {', '.join(map(short_url, recent))})" if recent else ""
        )

    def responses(self) -> list[Response]:
        """This job's responses (documents aside), in arrival order."""
        return [r for r in self._responses if self.mine(r.loader)]

    def proxy_refused(self, status: int | None, error: str | None) -> bool:
        """Whether a document's failure is the proxy refusing the session's credentials:
        it challenged again, or (Chromium then answers from its auth cache without a
        new challenge) the document failed ``ERR_HTTP_RESPONSE_CODE_FAILURE`` with no
        response from the site at all, through a proxy with credentials."""
        if self.proxy_auth_refused:
            return True
        return self._credentials is not None and status is None and error == "net::ERR_HTTP_RESPONSE_CODE_FAILURE"

    async def _answer_auth(self, sender: Sender, request_id: str, challenge: dict[str, Any]) -> None:
        """Answer a proxy's challenge with the session's credentials, once per request
        (a second challenge means they were refused: cancelled, and the page fails
        with the proxy's 407); a site's own challenge is not ours to answer."""
        if challenge.get("source") == "Proxy" and self._credentials and request_id not in self._challenged:
            self._challenged.add(request_id)
            user, password = self._credentials
            answer = {"response": "ProvideCredentials", "username": user, "password": password}
        else:
            if challenge.get("source") == "Proxy":
                self.proxy_auth_refused = True  # the page's navigation then fails: retire the session
            answer = {"response": "CancelAuth"}
        try:
            await sender.send("Fetch.continueWithAuth", requestId=request_id, authChallengeResponse=answer)
        except (cdp.CDPError, trio.ClosedResourceError):
            pass  # the request was abandoned, or the tab is gone

    async def _refuse(self, sender: Sender, request_id: str) -> None:
        """Fail a paused request of a blocked resource type, as an ad blocker would."""
        try:
            await sender.send("Fetch.failRequest", requestId=request_id, errorReason="BlockedByClient")
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

    def acted(self) -> None:
        """The handler acted on the page (a click, a key, a choice): whatever it starts
        may not have reached the network yet, so quiet is counted from now."""
        self.last_network = max(self.last_network, trio.current_time())
        self.touch()

    def touch(self) -> None:
        """Something happened (an event, or the page acted): wake whoever waits."""
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
                reply = await record.sender.send("Network.getResponseBody", requestId=record.request_id)
            except (cdp.ProtocolError, cdp.TargetClosed) as exc:
                # Seen, but its body cannot be had (evicted from the browser's buffer): an
                # item without it would be silently incomplete.
                raise PageFailure("capture", f"no body for {short_url(record.url)}: {exc}", retryable=True) from None
            text = reply["body"]
            if reply.get("base64Encoded"):
                text = base64.b64decode(text).decode("utf-8", "replace")
            try:
                record.body = json.loads(text)
            except ValueError:
                record.body = text
        return record.body
