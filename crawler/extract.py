"""One page job: navigate a leased tab, wait until the page is ready, extract, capture.

Readiness and extraction are one ``Runtime.evaluate`` per poll: the expression returns
null while ``wait_for`` is absent and the fields once it is present, so a ready page
costs a single round trip.  Network events of the tab (the main document's status,
responses to capture, JavaScript dialogs) are consumed by a task in the job's own
nursery, which ends with the job.

Failures are raised as :class:`PageFailure` (a reason kind, whether to retry, whether
the tab may be reused); the engine turns them into data in the store.
"""

from __future__ import annotations

import base64
import email.utils
import json
import time
from typing import Any

import attrs
import trio

import cdp

from .config import CaptureRule, Config, FieldRule
from .ratelimit import HostRateLimiter

RETRYABLE_STATUS = {408, 425, 429, 500, 502, 503, 504}
SLOW_DOWN_STATUS = (429, 503)  # the host asks us to back off (Retry-After honoured)
MAX_RETRY_AFTER_S = 3600.0

# Dialogs block the page until answered: make the common ones no-ops before any page
# script runs; whatever still opens a dialog is dismissed from the event stream.
NO_DIALOGS_JS = "window.alert = () => {}; window.confirm = () => false; window.prompt = () => null;"

REQUEST_SENT_WAIT_S = 5.0  # longest a job holds its host's rate-limit turn waiting for its request to leave

TAB_SETUP_EVENTS = (
    "Network.requestWillBeSent",
    "Network.responseReceived",
    "Network.loadingFinished",
    "Network.loadingFailed",
    "Page.javascriptDialogOpening",
)


class PageFailure(Exception):
    """A page job did not produce an item."""

    def __init__(
        self,
        kind: str,
        detail: str = "",
        *,
        retryable: bool,
        tab_reusable: bool = False,
        status: int | None = None,
        retry_after_s: float | None = None,
    ):
        self.kind = kind
        self.detail = detail
        self.retryable = retryable
        self.tab_reusable = tab_reusable
        self.status = status
        self.retry_after_s = retry_after_s
        super().__init__(self.reason)

    @property
    def reason(self) -> str:
        return f"{self.kind}: {self.detail}" if self.detail else self.kind


@attrs.frozen
class PageResult:
    item: dict[str, Any]
    status: int | None


def build_expression(fields: tuple[FieldRule, ...], wait_for: str) -> str:
    """The JS expression that returns null until the page is ready, then the fields."""
    parts = []
    for rule in fields:
        key = json.dumps(rule.name)
        if rule.js is not None:
            getter = f"(function () {{ return ({rule.js}); }})()"
        elif rule.attr is not None:
            getter = f"__attr({json.dumps(rule.css)}, {json.dumps(rule.attr)})"
        else:
            getter = f"__text({json.dumps(rule.css)})"
        parts.append(f"try {{ out[{key}] = {getter}; }} catch (e) {{ out[{key}] = null; errors[{key}] = String(e); }}")
    ready = (
        f"document.querySelector({json.dumps(wait_for)}) !== null" if wait_for else "document.readyState === 'complete'"
    )
    return (
        "(() => {\n"
        f"  if (!({ready})) return null;\n"
        "  const __text = (s) => { const e = document.querySelector(s); return e ? e.textContent.trim() : null; };\n"
        "  const __attr = (s, a) => { const e = document.querySelector(s); if (!e) return null;\n"
        "    const v = e.getAttribute(a);\n"
        "    return v !== null && (a === 'src' || a === 'href') ? new URL(v, document.baseURI).href : v; };\n"
        "  const out = {}, errors = {};\n"
        + "".join(f"  {p}\n" for p in parts)
        + "  return {fields: out, errors: errors};\n"
        "})()"
    )


async def prepare_tab(tab: cdp.Tab, config: Config) -> None:
    """Once per tab: the domains and settings every job on it relies on."""
    await tab.send("Page.enable")
    await tab.send("Network.enable", maxTotalBufferSize=32 * 2**20, maxResourceBufferSize=8 * 2**20)  # 32/8 MiB
    await tab.send("Page.addScriptToEvaluateOnNewDocument", source=NO_DIALOGS_JS)
    if config.browser.block_urls:
        await tab.send("Network.setBlockedURLs", urls=list(config.browser.block_urls))


class _PageState:
    """What the event task learned about the current page."""

    def __init__(self, frame_id: str, captures: tuple[CaptureRule, ...]):
        self.frame_id = frame_id  # a page target's main frame has the target's id
        self.document_request: str | None = None
        self.document_requested = False  # the browser sent the main document's request
        self.status: int | None = None
        self.headers: dict[str, str] = {}
        self.document_error: str | None = None
        self.capture_rules = captures
        self.capture_request: dict[str, CaptureRule] = {}  # requestId -> rule
        self.capture_matched: set[str] = set()  # rule names with a matching response
        self.capture_finished: dict[str, str] = {}  # rule name -> requestId whose body is complete
        self.capture_failed: dict[str, str] = {}
        self.changed = trio.Event()
        self.dialogs = 0

    def notify(self) -> None:
        self.changed.set()
        self.changed = trio.Event()


async def run_page(
    tab: cdp.Tab, url: str, config: Config, limiter: HostRateLimiter, expression: str, *, budget_s: float
) -> PageResult:
    """Navigate ``tab`` to ``url`` and extract the configured fields and captures.

    Raises PageFailure for a page-level failure, cdp errors (TargetCrashed,
    ConnectionLost, CommandTimeout) for tab- or browser-level ones.  If cancelled
    (the watchdog), the tab is left mid-navigation: its lease must discard it.
    Starts one task (the event consumer) in its own nursery; it ends with the call.
    """
    state = _PageState(tab.target_id, config.extract.capture)
    async with tab.listen(*TAB_SETUP_EVENTS) as events, cdp.open_service_nursery() as nursery:
        nursery.start_soon(_consume_events, tab, events, state)
        nav: dict[str, Any] = {}
        navigated = trio.Event()

        async def navigate() -> None:
            try:
                nav.update(await tab.send("Page.navigate", url=url, timeout_s=budget_s))
            except (cdp.CDPError, trio.ClosedResourceError) as exc:
                nav["error"] = exc
            finally:
                navigated.set()
                state.notify()

        async with limiter.hold(url):
            nursery.start_soon(navigate)
            with trio.move_on_after(REQUEST_SENT_WAIT_S):
                while not (state.document_requested or navigated.is_set()):
                    await state.changed.wait()
        await navigated.wait()
        if "error" in nav:
            raise nav["error"]
        if nav.get("errorText"):
            raise PageFailure("net", nav["errorText"], retryable=True, tab_reusable=True)
        found = await _poll_until_ready(tab, expression, state, config.extract.poll_interval_s)
        item: dict[str, Any] = {"url": url, "status": state.status, **found["fields"]}
        if found.get("errors"):
            item["_errors"] = found["errors"]
        for rule in config.extract.capture:
            item[rule.name] = await _capture(tab, rule, state)
        nursery.cancel_scope.cancel()
    return PageResult(item=item, status=state.status)


async def _poll_until_ready(tab: cdp.Tab, expression: str, state: _PageState, interval_s: float) -> dict[str, Any]:
    while True:
        _check_document(state)
        try:
            reply = await tab.send("Runtime.evaluate", expression=expression, returnByValue=True)
        except cdp.ProtocolError:
            reply = {}  # the execution context went away mid-navigation: try again
        details = reply.get("exceptionDetails")
        if details:
            text = details.get("exception", {}).get("description") or details.get("text", "")
            raise PageFailure("extract_error", text.split("\n")[0][:300], retryable=False, tab_reusable=True)
        value = reply.get("result", {}).get("value")
        if value is not None:
            _check_document(state)
            return value
        with trio.move_on_after(interval_s):
            await state.changed.wait()


def _check_document(state: _PageState) -> None:
    if state.document_error is not None:
        raise PageFailure("net", state.document_error, retryable=True, tab_reusable=True)
    status = state.status
    if status is None or status < 400:
        return
    retry_after = _retry_after_s(state.headers) if status in SLOW_DOWN_STATUS else None
    raise PageFailure(
        f"http_{status}",
        retryable=status in RETRYABLE_STATUS,
        tab_reusable=True,
        status=status,
        retry_after_s=retry_after,
    )


async def _capture(tab: cdp.Tab, rule: CaptureRule, state: _PageState) -> Any:
    """The JSON body of the response matched by ``rule``; None if none was seen.
    Raises PageFailure ("capture", retryable) if it was seen but its body is unavailable."""
    while rule.name in state.capture_matched and rule.name not in state.capture_finished:
        if rule.name in state.capture_failed:
            return None
        await state.changed.wait()
    request_id = state.capture_finished.get(rule.name)
    if request_id is None:
        return None
    try:
        body = await tab.send("Network.getResponseBody", requestId=request_id)
    except cdp.ProtocolError as exc:
        # The response was seen but its body cannot be had (evicted from the browser's
        # buffer, or the browser failed): an item without it would be silently incomplete.
        raise PageFailure(
            "capture", f"{rule.name}: no body for {request_id}: {exc.message}", retryable=True, tab_reusable=True
        ) from None
    text = base64.b64decode(body["body"]).decode("utf-8", "replace") if body.get("base64Encoded") else body["body"]
    try:
        return json.loads(text)
    except ValueError:
        return text


async def _consume_events(tab: cdp.Tab, events: cdp.EventStream, state: _PageState) -> None:
    # Ends when the job's nursery is cancelled, or with the tab's error (crash, close),
    # which the job itself will meet on its next command: nothing to report here.
    try:
        async for event in events:
            params = event.params
            method = event.method
            if method == "Network.requestWillBeSent":
                if params.get("type") == "Document" and params.get("frameId") == state.frame_id:
                    state.document_requested = True
            elif method == "Network.responseReceived":
                response = params.get("response", {})
                if params.get("type") == "Document" and params.get("frameId") == state.frame_id:
                    state.document_request = params.get("requestId")
                    state.status = response.get("status")
                    state.headers = {k.lower(): v for k, v in (response.get("headers") or {}).items()}
                else:
                    rule = _matching_rule(state, response.get("url", ""))
                    if rule is not None:
                        state.capture_request[params["requestId"]] = rule
                        state.capture_matched.add(rule.name)
            elif method == "Network.loadingFinished":
                rule = state.capture_request.get(params.get("requestId"))
                if rule is not None:
                    state.capture_finished.setdefault(rule.name, params["requestId"])
            elif method == "Network.loadingFailed":
                rule = state.capture_request.get(params.get("requestId"))
                if rule is not None:
                    state.capture_failed[rule.name] = params.get("errorText", "failed")
                elif params.get("requestId") == state.document_request and not params.get("canceled"):
                    state.document_error = params.get("errorText", "failed")
            elif method == "Page.javascriptDialogOpening":
                state.dialogs += 1
                await tab.send("Page.handleJavaScriptDialog", accept=params.get("type") == "beforeunload")
            state.notify()
    except (cdp.CDPError, trio.ClosedResourceError):
        state.notify()


def _matching_rule(state: _PageState, url: str) -> CaptureRule | None:
    for rule in state.capture_rules:
        if rule.name not in state.capture_matched and rule.url_contains in url:
            return rule
    return None


def _retry_after_s(headers: dict[str, str]) -> float | None:
    value = headers.get("retry-after")
    if not value:
        return None
    value = value.strip()
    if value.isdigit():
        return min(float(value), MAX_RETRY_AFTER_S)
    try:
        when = email.utils.parsedate_to_datetime(value).timestamp()
    except (TypeError, ValueError):
        return None
    return min(max(0.0, when - time.time()), MAX_RETRY_AFTER_S)
