"""An in-memory Chromium that speaks enough CDP for the crawl engine.

:class:`FakeChromium` keeps the browser's side of the state the engine cares about
(targets, browser contexts, flatten sessions, which client created what) and answers
the commands the engine sends: ``Target.*`` (discovery, contexts, targets, sessions),
``Page.*``, ``Network.*``, ``Runtime.evaluate``, ``Performance.*``, ``Browser.*``.
It sends the events the engine listens for: ``Target.targetCreated`` /
``targetDestroyed`` / ``targetCrashed`` / ``detachedFromTarget``, and per session
``Network.requestWillBeSent`` / ``responseReceived`` / ``loadingFinished``.

A client connects with :func:`connect_fake`, which plugs a :class:`FakeSocket` (two
trio memory channels, implementing ``cdp.Transport``) into a real ``cdp.Connection``:
everything above the transport is the production code.

The shop behind it is imaginary: ``http://shop.test/{kind}/{id}`` renders demo product
``id`` (so ``crawler.demo.expected_item`` gives the item) unless ``kind`` says otherwise:

==============  =========================================================================
``product``     a normal page: document, then the ``/api/goods/{id}`` capture, then ready
``slow``        the document answers after ``?s=`` seconds (default 2)
``hang``        the document never answers (Page.navigate never returns)
``status``      ``/status/{code}/{id}?times=N&retry_after=S``: ``code`` the first N times
``busy``        the renderer hangs once the page commits: Runtime.evaluate, Page.close
                and Performance.getMetrics never answer (``while(true){}``)
``crash``       the renderer crashes right after the page commits
``popups``      the page opens 5 popups (page targets with an opener) at once, then one
                every 50 ms, 10 in all
``never``       the page never becomes ready (no ``wait_for`` element)
``late``        a normal page that goes on fetching ``/api/goods/{id + 500}`` every 10 ms
                for 1 s, under its own loaderId, whatever the tab loads meanwhile
``unclosable``  a ``busy`` page whose target cannot be closed either: Target.closeTarget,
                Page.crash and disposing its context never answer (Chromium has been
                seen to leave such tabs, and disposal to hang)
==============  =========================================================================

Every task of the fake runs in a nursery shielded from the caller's cancellation (a
real browser does not stop when the crawler's scopes are cancelled); the nursery is
cancelled when :func:`open_fake_chromium` exits.
"""

from __future__ import annotations

import itertools
import json
import math
import random
from collections import Counter, defaultdict
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from typing import Any
from urllib.parse import parse_qs, urlsplit

import trio

import cdp
from crawler._trio import open_service_nursery
from crawler.demo import expected_item, format_price, product

SHOP = "http://shop.test"
LATENCY_S = (0.001, 0.02)  # one command, one network hop: uniform in this range
POPUPS_PER_PAGE = 10  # half at once as the page starts, then one per interval
POPUP_INTERVAL_S = 0.05

NO_REPLY = object()  # a handler's result when the browser never answers


def shop_url(kind: str, i: int, query: str = "") -> str:
    return f"{SHOP}/{kind}/{i}" + (f"?{query}" if query else "")


def expected_item_for(url: str) -> dict[str, Any]:
    """The item a crawl of ``url`` (any kind that renders) must produce."""
    i = int(urlsplit(url).path.rstrip("/").split("/")[-1])
    return {**expected_item(SHOP, i), "url": url}


class Fault(Exception):
    """A command's error reply."""

    def __init__(self, code: int, message: str):
        super().__init__(message)
        self.code = code
        self.message = message


class _Client:
    def __init__(self, number: int):
        self.number = number
        self.socket: FakeSocket | None = None
        self.discover = False
        self.owned_contexts: set[str] = set()  # created with disposeOnDetach
        self.sessions: set[str] = set()


LATE_OFFSET = 500  # a ``late`` page fetches this product's API: wrong for any item


class _Target:
    def __init__(self, target_id: str, context_id: str, url: str, opener_id: str | None):
        self.target_id = target_id
        self.context_id = context_id
        self.url = url
        self.opener_id = opener_id
        self.sessions: set[str] = set()
        self.crashed = False
        self.frozen = False  # its scripts stopped (Emulation.setScriptExecutionDisabled, or Page.setWebLifecycleState frozen): the next navigation thaws it
        self.hidden = False  # its window minimised (Browser.setWindowBounds)
        self.busy = False  # renderer stuck in while(true){}
        self.ready = False
        self.product: int | None = None
        self.bodies: dict[str, str] = {}
        self.navigations = 0
        self.load_scope: trio.CancelScope | None = None
        self.navigation: dict[str, Any] | None = None  # the Page.navigate waiting for its commit
        self.closing = False  # a close was accepted; the target is destroyed a moment later
        self.unclosable = False
        self.dead = trio.Event()  # crashed or destroyed: its renderer answers nothing more
        self.identity: dict[str, Any] = {}  # what the Network/Emulation overrides set

    def die(self) -> None:
        self.dead.set()
        if self.load_scope is not None:
            self.load_scope.cancel()
        if self.navigation is not None:
            self.navigation["event"].set()


class _Session:
    def __init__(self, session_id: str, target: _Target, client: _Client):
        self.session_id = session_id
        self.target = target
        self.client = client
        self.domains: set[str] = set()


class FakeSocket:
    """The client end of one fake link to the browser: a ``cdp.Transport``.

    ``send_text`` hands the text to the browser at once (it never blocks);
    ``receive_text`` raises ``cdp.TransportClosed`` once the socket is closed from
    either side and what was queued before has been read.
    """

    def __init__(self, chromium: FakeChromium, client: _Client):
        self._chromium = chromium
        self._client = client
        self._send, self._receive = trio.open_memory_channel[str](math.inf)
        self.closed = False

    async def receive_text(self) -> str:
        try:
            return await self._receive.receive()
        except (trio.EndOfChannel, trio.ClosedResourceError):
            raise cdp.TransportClosed("fake socket closed") from None

    async def send_text(self, text: str) -> None:
        await trio.lowlevel.checkpoint()
        if self.closed:
            raise cdp.TransportClosed("fake socket closed")
        self._chromium._receive(self._client, text)

    async def aclose(self) -> None:
        self.close()
        await trio.lowlevel.checkpoint()

    def close(self) -> None:
        """Close from the client's side (or the browser's, when it dies). Idempotent."""
        if self.closed:
            return
        self.closed = True
        self._send.close()
        self._chromium._disconnect(self._client)

    def deliver(self, message: dict[str, Any]) -> None:
        if not self.closed:
            self._send.send_nowait(json.dumps(message))


class FakeChromium:
    """The browser's state and its command handlers. Create it with :func:`open_fake_chromium`."""

    def __init__(self, nursery: trio.Nursery, *, rng: random.Random, latency_s: tuple[float, float] = LATENCY_S):
        self._nursery = nursery
        self.rng = rng
        self.latency_s = latency_s
        self.targets: dict[str, _Target] = {}
        self.contexts: set[str] = set()
        self.sessions: dict[str, _Session] = {}
        self.clients: list[_Client] = []
        self.hits: defaultdict[str, list[float]] = defaultdict(list)  # document URL -> times requested
        self.commands: Counter[str] = Counter()  # method -> how many were received
        self.alive = True
        self._numbers = itertools.count(1)
        self._paused: dict[str, trio.Event] = {}  # Fetch-paused document requests by requestId
        # context id -> (proxyServer, proxyBypassList) it was made with ("" for none), ever made
        self.context_proxies: dict[str, tuple[str, str]] = {}
        self.cookies: dict[str, list[dict[str, Any]]] = {}  # context id -> the cookies Storage.setCookies set

    # -- inspection (sync: an exact snapshot at a checkpoint) -----------------------------

    def spawn(self, fn: Callable[..., Awaitable[Any]], *args: Any) -> None:
        """Run a task in the fake's shielded nursery (for the reader and the chaos layer)."""
        self._nursery.start_soon(fn, *args)

    # -- connections ----------------------------------------------------------------------

    def connect(self) -> FakeSocket:
        if not self.alive:
            raise cdp.ConnectionLost("the fake browser is dead")
        client = _Client(next(self._numbers))
        client.socket = FakeSocket(self, client)
        self.clients.append(client)
        return client.socket

    def kill(self) -> None:
        """The browser process dies: every connection closes, all state is gone."""
        if not self.alive:
            return
        self.alive = False
        for client in list(self.clients):
            assert client.socket is not None
            client.socket.close()
        for target in list(self.targets.values()):
            target.die()
        self.targets.clear()
        self.contexts.clear()
        self.sessions.clear()

    def _disconnect(self, client: _Client) -> None:
        if client not in self.clients:
            return
        self.clients.remove(client)
        for session_id in client.sessions:
            session = self.sessions.pop(session_id, None)
            if session is not None:
                session.target.sessions.discard(session_id)
        client.sessions.clear()
        for context_id in sorted(client.owned_contexts):
            self._dispose_context(context_id)
        client.owned_contexts.clear()

    # -- messages -------------------------------------------------------------------------

    def _receive(self, client: _Client, text: str) -> None:
        message = json.loads(text)
        self._nursery.start_soon(self._run_command, client, message)

    async def _run_command(self, client: _Client, message: dict[str, Any]) -> None:
        call_id, method = message["id"], message["method"]
        params = message.get("params") or {}
        session_id = message.get("sessionId")
        self.commands[method] += 1
        await trio.sleep(self.latency())
        reply: dict[str, Any] = {"id": call_id}
        if session_id is not None:
            reply["sessionId"] = session_id
        session = None
        handler = getattr(self, "_cmd_" + method.replace(".", "_"), None)
        try:
            if session_id is not None:
                session = self.sessions.get(session_id)
                if session is None:
                    raise Fault(-32001, "Session with given id not found.")
            if handler is None:
                raise Fault(-32601, f"'{method}' wasn't found")
            result = await handler(client, session, **params)
        except Fault as fault:
            reply["error"] = {"code": fault.code, "message": fault.message}
        else:
            if result is NO_REPLY:
                return
            reply["result"] = result
        if client.socket is not None:
            client.socket.deliver(reply)

    def latency(self) -> float:
        return self.rng.uniform(*self.latency_s)

    def _to_client(self, client: _Client, method: str, params: dict[str, Any], session_id: str | None = None) -> None:
        message: dict[str, Any] = {"method": method, "params": params}
        if session_id is not None:
            message["sessionId"] = session_id
        if client.socket is not None:
            client.socket.deliver(message)

    def _broadcast(self, method: str, params: dict[str, Any]) -> None:
        for client in self.clients:
            if client.discover:
                self._to_client(client, method, params)

    def _to_page(self, target: _Target, method: str, params: dict[str, Any]) -> None:
        domain = method.split(".", 1)[0]
        for session_id in sorted(target.sessions):
            session = self.sessions[session_id]
            if domain in session.domains:
                self._to_client(session.client, method, params, session_id)

    # -- targets --------------------------------------------------------------------------

    def _info(self, target: _Target) -> dict[str, Any]:
        info = {
            "targetId": target.target_id,
            "type": "page",
            "title": target.url,
            "url": target.url,
            "attached": bool(target.sessions),
            "browserContextId": target.context_id,
            "canAccessOpener": False,
        }
        if target.opener_id is not None:
            info["openerId"] = target.opener_id
        return info

    def _create_target(self, context_id: str, url: str, opener_id: str | None = None) -> _Target:
        target = _Target(f"T{next(self._numbers):04d}", context_id, url, opener_id)
        self.targets[target.target_id] = target
        self._broadcast("Target.targetCreated", {"targetInfo": self._info(target)})
        return target

    def _destroy_target(self, target: _Target) -> None:
        if self.targets.get(target.target_id) is not target:
            return
        del self.targets[target.target_id]
        target.die()
        for session_id in sorted(target.sessions):
            session = self.sessions.pop(session_id)
            session.client.sessions.discard(session_id)
            self._to_client(
                session.client, "Target.detachedFromTarget", {"sessionId": session_id, "targetId": target.target_id}
            )
        target.sessions.clear()
        self._broadcast("Target.targetDestroyed", {"targetId": target.target_id})

    def _crash_target(self, target: _Target) -> None:
        if target.crashed or self.targets.get(target.target_id) is not target:
            return
        target.crashed = True
        target.busy = target.ready = False
        target.die()
        self._broadcast("Target.targetCrashed", {"targetId": target.target_id, "status": "crashed", "errorCode": 139})

    def _dispose_context(self, context_id: str) -> None:
        if context_id not in self.contexts:
            return
        for target in [t for t in self.targets.values() if t.context_id == context_id]:
            self._destroy_target(target)
        self.contexts.discard(context_id)
        for client in self.clients:
            client.owned_contexts.discard(context_id)

    async def _destroy_later(self, target: _Target) -> None:
        await trio.sleep(self.latency())
        self._destroy_target(target)

    def _target(self, target_id: str) -> _Target:
        target = self.targets.get(target_id)
        if target is None:
            raise Fault(-32602, "No target with given id found")
        return target

    # -- page loads -----------------------------------------------------------------------

    async def _load(self, target: _Target, url: str, scope: trio.CancelScope, navigated: dict[str, Any]) -> None:
        with scope:
            loader = f"L{next(self._numbers):04d}"
            parts = urlsplit(url)
            path = parts.path.strip("/").split("/")
            query = {k: v[0] for k, v in parse_qs(parts.query).items()}
            kind = path[0] if path else ""
            i = int(path[-1]) if len(path) >= 2 and path[-1].isdigit() else None
            target.url, target.ready, target.product, target.frozen = url, False, i, False
            target.bodies.clear()
            self.hits[url].append(trio.current_time())
            request_id = f"R{next(self._numbers):04d}"
            frame = target.target_id
            self._to_page(
                target,
                "Network.requestWillBeSent",
                {
                    "requestId": request_id,
                    "loaderId": loader,
                    "frameId": frame,
                    "type": "Document",
                    "request": {"url": url},
                },
            )
            if any("Fetch" in self.sessions[sid].domains for sid in target.sessions):
                # The client paces documents (Fetch.enable): the request waits for its continue.
                resume = self._paused[request_id] = trio.Event()
                self._to_page(
                    target,
                    "Fetch.requestPaused",
                    {"requestId": request_id, "frameId": frame, "resourceType": "Document", "request": {"url": url}},
                )
                try:
                    await resume.wait()
                finally:
                    del self._paused[request_id]
            if kind == "hang":
                await trio.sleep_forever()
            await trio.sleep(float(query.get("s", 2.0)) if kind == "slow" else self.latency())
            status, headers = 200, {"Content-Type": "text/html"}
            if i is None:
                status = 404
            elif kind == "status":
                times = int(query.get("times", 1))
                if len(self.hits[url]) <= times:
                    status = int(path[1])
                    if "retry_after" in query:
                        headers["Retry-After"] = query["retry_after"]
            self._to_page(
                target,
                "Network.responseReceived",
                {
                    "requestId": request_id,
                    "loaderId": loader,
                    "frameId": frame,
                    "type": "Document",
                    "response": {"url": url, "status": status, "headers": headers},
                },
            )
            self._to_page(target, "Page.frameNavigated", {"frame": {"id": frame, "loaderId": loader, "url": url}})
            self._to_page(target, "Page.domContentEventFired", {"timestamp": trio.current_time()})
            navigated["result"] = {"frameId": frame, "loaderId": loader}
            navigated["event"].set()
            self._to_page(target, "Network.loadingFinished", {"requestId": request_id})
            if status != 200:
                return
            if kind in ("busy", "unclosable"):
                target.busy = True
                target.unclosable = kind == "unclosable"
                return
            await trio.sleep(self.latency())
            if kind == "crash":
                self._crash_target(target)
                return
            self._api_response(target, loader, i)
            if kind == "late":  # the page goes on fetching, also once the tab serves another page
                self._nursery.start_soon(self._late_responses, target, loader, i + LATE_OFFSET)
            if kind == "popups":  # a burst as the script starts, then one popup every interval
                for n in range(POPUPS_PER_PAGE // 2):
                    self._create_target(target.context_id, f"{SHOP}/product/{i}?popup={n}", target.target_id)
            if kind != "never":
                target.ready = True
            if kind == "popups":
                for n in range(POPUPS_PER_PAGE // 2, POPUPS_PER_PAGE):
                    await trio.sleep(POPUP_INTERVAL_S)
                    self._create_target(target.context_id, f"{SHOP}/product/{i}?popup={n}", target.target_id)

    def _api_response(self, target: _Target, loader: str, i: int) -> None:
        """The page's fetch of ``/api/goods/{i}``, from request to body, at once."""
        api_url, api_request, frame = f"{SHOP}/api/goods/{i}", f"R{next(self._numbers):04d}", target.target_id
        common = {"requestId": api_request, "loaderId": loader, "frameId": frame, "type": "Fetch"}
        self._to_page(target, "Network.requestWillBeSent", {**common, "request": {"url": api_url}})
        response = {"url": api_url, "status": 200, "headers": {"Content-Type": "application/json"}}
        self._to_page(target, "Network.responseReceived", {**common, "response": response})
        target.bodies[api_request] = json.dumps(product(i))
        self._to_page(target, "Network.loadingFinished", {"requestId": api_request})

    async def _late_responses(self, target: _Target, loader: str, i: int) -> None:
        """A ``late`` page's fetches of another product, every 10 ms for 1 s, whatever the
        tab does meanwhile (the requests of a page still finishing as the next one loads)."""
        for _ in range(100):
            await trio.sleep(0.01)
            if target.dead.is_set():
                return
            self._api_response(target, loader, i)

    def _fields(self, i: int) -> dict[str, Any]:
        p = product(i)
        return {
            "name": p["name"],
            "brand": p["brand"],
            "price": format_price(p["price"]),
            "image": f"{SHOP}{p['image']}",
            "stock": str(p["stock"]),
        }

    # -- commands: browser and targets -----------------------------------------------------

    async def _cmd_Browser_getVersion(self, client, session, **_):
        return {
            "protocolVersion": "1.3",
            "product": "FakeChromium/1.0",
            "userAgent": "Mozilla/5.0 (X11; Linux x86_64) HeadlessChrome/1.0 Safari/537.36",
        }

    # every tab in a window of its own (cdp's Tab.set_visible); a minimised window's tab is hidden
    async def _cmd_Browser_getWindowForTarget(self, client, session, targetId, **_):
        if targetId not in self.targets:
            raise Fault(-32000, "No web contents for the given target id")
        return {"windowId": id(self.targets[targetId]), "bounds": {}}

    async def _cmd_Browser_setWindowBounds(self, client, session, windowId, bounds, **_):
        target = next((t for t in self.targets.values() if id(t) == windowId), None)
        if target is None:
            raise Fault(-32000, "Browser window not found")
        target.hidden = bounds.get("windowState") == "minimized"
        return {}

    async def _cmd_Browser_close(self, client, session, **_):
        self._nursery.start_soon(self._die_later)
        return {}

    async def _die_later(self) -> None:
        await trio.sleep(self.latency())
        self.kill()

    async def _cmd_Target_setDiscoverTargets(self, client, session, discover, **_):
        client.discover = discover
        if discover:
            for target in list(self.targets.values()):
                self._to_client(client, "Target.targetCreated", {"targetInfo": self._info(target)})
        return {}

    async def _cmd_Target_getTargets(self, client, session, **_):
        return {"targetInfos": [self._info(t) for t in self.targets.values()]}

    async def _cmd_Target_getBrowserContexts(self, client, session, **_):
        return {"browserContextIds": sorted(self.contexts)}

    async def _cmd_Target_createBrowserContext(
        self, client, session, disposeOnDetach=False, proxyServer="", proxyBypassList="", **_
    ):
        context_id = f"C{next(self._numbers):04d}"
        self.contexts.add(context_id)
        self.context_proxies[context_id] = (proxyServer, proxyBypassList)
        if disposeOnDetach:
            client.owned_contexts.add(context_id)
        return {"browserContextId": context_id}

    async def _cmd_Target_disposeBrowserContext(self, client, session, browserContextId, **_):
        if browserContextId not in self.contexts:
            raise Fault(-32602, f"Failed to find context with id {browserContextId}")
        if any(t.unclosable for t in self.targets.values() if t.context_id == browserContextId):
            await trio.sleep_forever()
        self._dispose_context(browserContextId)
        return {}

    async def _cmd_Target_createTarget(self, client, session, url, browserContextId=None, **_):
        if browserContextId is not None and browserContextId not in self.contexts:
            raise Fault(-32602, f"Failed to find browser context with id {browserContextId}")
        target = self._create_target(browserContextId or "default", url)
        return {"targetId": target.target_id}

    async def _cmd_Target_attachToTarget(self, client, session, targetId, flatten=False, **_):
        target = self._target(targetId)
        session_id = f"S{next(self._numbers):04d}"
        self.sessions[session_id] = _Session(session_id, target, client)
        target.sessions.add(session_id)
        client.sessions.add(session_id)
        self._to_client(
            client,
            "Target.attachedToTarget",
            {"sessionId": session_id, "targetInfo": self._info(target), "waitingForDebugger": False},
        )
        return {"sessionId": session_id}

    async def _cmd_Target_closeTarget(self, client, session, targetId, **_):
        target = self._target(targetId)
        if target.unclosable:
            await trio.sleep_forever()
        target.closing = True
        self._nursery.start_soon(self._destroy_later, target)
        return {"success": True}

    # -- commands: one page ----------------------------------------------------------------

    async def _enable(self, session, domain: str) -> dict[str, Any]:
        session.domains.add(domain)
        return {}

    async def _cmd_Page_enable(self, client, session, **_):
        return await self._enable(session, "Page")

    async def _cmd_Network_enable(self, client, session, **_):
        return await self._enable(session, "Network")

    async def _cmd_Runtime_enable(self, client, session, **_):
        return await self._enable(session, "Runtime")

    async def _cmd_Inspector_enable(self, client, session, **_):
        return await self._enable(session, "Inspector")

    async def _cmd_Performance_enable(self, client, session, **_):
        return await self._enable(session, "Performance")

    async def _cmd_Fetch_enable(self, client, session, **_):
        return await self._enable(session, "Fetch")

    async def _cmd_Fetch_continueRequest(self, client, session, requestId, **_):
        if requestId not in self._paused:
            raise Fault(-32602, "Invalid InterceptionId.")
        self._paused[requestId].set()
        return {}

    async def _cmd_Network_setBlockedURLs(self, client, session, **_):
        return {}

    async def _cmd_Target_setAutoAttach(self, client, session, **_):
        return {}  # the fake's pages have no out-of-process frames to attach

    # identity (crawler.config.identity): accepted, and kept per target for inspection
    async def _cmd_Network_setUserAgentOverride(self, client, session, userAgent, **params):
        session.target.identity["userAgent"] = userAgent
        return {}

    async def _cmd_Network_setExtraHTTPHeaders(self, client, session, headers, **_):
        session.target.identity["headers"] = headers
        return {}

    async def _cmd_Emulation_setLocaleOverride(self, client, session, locale="", **_):
        session.target.identity["locale"] = locale
        return {}

    async def _cmd_Emulation_setScriptExecutionDisabled(self, client, session, value, **_):
        target = await self._renderer(session)
        if target is None:
            return NO_REPLY
        target.frozen = value  # as a frozen page: nothing of it runs until the next job
        return {}

    async def _cmd_Emulation_setFocusEmulationEnabled(self, client, session, enabled, **_):
        session.target.identity["focus"] = enabled
        return {}

    async def _cmd_Emulation_setTimezoneOverride(self, client, session, timezoneId, **_):
        session.target.identity["timezone"] = timezoneId
        return {}

    async def _cmd_Storage_setCookies(self, client, session, cookies, browserContextId=None, **_):
        self.cookies.setdefault(browserContextId or "", []).extend(cookies)
        return {}

    async def _cmd_Fetch_continueWithAuth(self, client, session, requestId, **_):
        return {}

    async def _cmd_Page_addScriptToEvaluateOnNewDocument(self, client, session, **_):
        return {"identifier": "1"}

    async def _cmd_Page_handleJavaScriptDialog(self, client, session, **_):
        return {}

    async def _cmd_Page_setWebLifecycleState(self, client, session, state, **_):
        target = await self._renderer(session)
        if target is None:
            return NO_REPLY
        target.frozen = state == "frozen"
        return {}

    async def _renderer(self, session) -> _Target | None:
        """The session's target if its renderer can answer; None (after waiting for it
        to die, as a hung renderer does) if it cannot."""
        target = session.target
        if target.busy:
            await target.dead.wait()
            return None
        if target.crashed:
            await target.dead.wait()  # already set: a crashed renderer answers nothing
            return None
        return target

    async def _cmd_Page_navigate(self, client, session, url, **_):
        target = session.target
        if target.crashed or target.busy:
            await target.dead.wait()
            return NO_REPLY
        if target.load_scope is not None:
            target.load_scope.cancel()
        if target.navigation is not None:
            target.navigation["event"].set()  # a later navigation aborts this one
        target.navigations += 1
        if url == "about:blank":  # commits at once, no network
            target.load_scope = target.navigation = None
            target.url, target.ready, target.product = url, False, None
            target.bodies.clear()
            return {"frameId": target.target_id, "loaderId": f"L{next(self._numbers):04d}"}
        scope = trio.CancelScope()
        target.load_scope = scope
        navigated: dict[str, Any] = {"event": trio.Event()}
        target.navigation = navigated
        self._nursery.start_soon(self._load, target, url, scope, navigated)
        await navigated["event"].wait()
        if target.navigation is navigated:
            target.navigation = None
        if "result" in navigated:
            return navigated["result"]
        if target.dead.is_set():
            return NO_REPLY
        return {"frameId": target.target_id, "loaderId": "", "errorText": "net::ERR_ABORTED"}

    async def _cmd_Runtime_evaluate(self, client, session, expression="", **_):
        target = await self._renderer(session)
        if target is None:
            return NO_REPLY
        if expression == "location.href":
            return {"result": {"type": "string", "value": target.url}}
        if not target.ready or target.product is None:
            return {"result": {"type": "object", "subtype": "null", "value": None}}
        return {"result": {"type": "object", "value": {"fields": self._fields(target.product), "errors": {}}}}

    async def _cmd_Network_getResponseBody(self, client, session, requestId, **_):
        target = await self._renderer(session)
        if target is None:
            return NO_REPLY
        body = target.bodies.get(requestId)
        if body is None:
            raise Fault(-32000, "No resource with given identifier found")
        return {"body": body, "base64Encoded": False}

    async def _cmd_Performance_getMetrics(self, client, session, **_):
        target = await self._renderer(session)
        if target is None:
            return NO_REPLY
        names = ("JSHeapUsedSize", "Nodes", "JSEventListeners", "Documents")
        return {"metrics": [{"name": n, "value": 1000 + 10 * target.navigations} for n in names]}

    async def _cmd_Page_close(self, client, session, **_):
        target = await self._renderer(session)  # beforeunload needs the renderer
        if target is None:
            return NO_REPLY
        target.closing = True
        self._nursery.start_soon(self._destroy_later, target)
        return {}

    async def _cmd_Page_crash(self, client, session, **_):
        if not session.target.unclosable:
            self._crash_target(session.target)
        return NO_REPLY


async def _host_nursery(*, task_status: trio.TaskStatus[tuple[trio.CancelScope, trio.Nursery]]) -> None:
    with trio.CancelScope(shield=True) as scope:
        async with trio.open_nursery() as nursery:
            task_status.started((scope, nursery))
            await trio.sleep_forever()


@asynccontextmanager
async def open_fake_chromium(
    *, rng: random.Random | None = None, latency_s: tuple[float, float] = LATENCY_S
) -> AsyncIterator[FakeChromium]:
    """A running fake browser; on exit it dies (every connection closes) and its tasks stop."""
    async with open_service_nursery() as outer:  # the body's exceptions come out as themselves
        scope, nursery = await outer.start(_host_nursery)
        chromium = FakeChromium(nursery, rng=rng or random.Random(0), latency_s=latency_s)
        try:
            yield chromium
        finally:
            chromium.kill()
            scope.cancel()


@asynccontextmanager
async def connect_fake(
    chromium: FakeChromium,
    *,
    command_timeout_s: float = 30.0,
    wrap: Callable[[FakeSocket], Any] | None = None,
    name: str = "fake",
) -> AsyncIterator[cdp.Browser]:
    """A ``cdp.Browser`` on a new connection to ``chromium``, like ``cdp.connect``.

    ``wrap`` may put a layer (the chaos socket) between the connection and the fake.
    The connection's reader runs in the fake's shielded nursery, as production runs it
    in a shielded one.  On exit the socket is closed (the fake disposes the contexts
    this client created with ``disposeOnDetach``) and the reader ends.
    """
    socket = chromium.connect()
    ws = wrap(socket) if wrap is not None else socket
    conn = cdp.Connection(ws, name=name, command_timeout_s=command_timeout_s)
    chromium.spawn(conn.run_reader)
    try:
        browser = cdp.Browser(conn)
        await browser.send("Target.setDiscoverTargets", discover=True)
        yield browser
    finally:
        with trio.move_on_after(2.0, shield=True):
            await ws.aclose()
            await conn.wait_closed()
