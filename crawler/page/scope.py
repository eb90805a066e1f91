"""What a handler can do in a document, the page's or a frame's: read it, wait for it,
act on it as a user would.  :class:`Scope` is the base of :class:`~crawler.page.Page`
and :class:`~crawler.page.Frame`; a subclass says where its expressions run
(``_target``) and where its viewport sits on the tab's (``_origin``).

Every selector goes through shadow roots, open and closed (:mod:`crawler.page.dom`).
Input (the mouse, the keyboard) is sent to the tab, at the element's position on the
tab's viewport: the browser routes it to the frame under the pointer, or to the
focused one, in whatever process that frame runs.  Every await is a plain trio
checkpoint, inside the job's watchdog.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from typing import Any, Protocol

import trio

import cdp
from crawler.config.fields import Field, check_selector, parse_fields
from crawler.errors import JavaScriptError, PageFailure, SessionRetired
from crawler.page.dom import QUERY_JS, query
from crawler.page.keys import key_events
from crawler.page.script import extract_all_expression, extract_expression, when_ready
from crawler.page.traffic import Traffic

# A wait for the DOM runs in the page (see crawler.page.script.when_ready) for at most
# this long per round trip: well inside any command deadline.
WAIT_SLICE_MS = 2000
CONTEXT_RETRIES = 20  # evaluations retried while the document is being swapped (execution context gone)
SCROLL_ROUNDS = 50  # scroll_to_end: stop once the document has grown this many times
SCROLL_SETTLE_S = 0.5  # scroll_to_end: network quiet time at the end before measuring again
SCROLL_STEPS = 2000  # scroll_to_end: at most this many viewport steps in all
SCROLL_STEP = 0.85  # of a viewport per step: each step overlaps the last a little
SETTLE_MAX_S = 10.0  # scroll_to_end: longest wait for the network at the end of one round
_BLOCKED_KEY = "__crawler_retire_if__"  # what an expression guarded by _unless_blocked returns on a challenge page
_BLOCKED_JS = f"{{{_BLOCKED_KEY}: true}}"
# A promise that settles after two animation frames (observers and scroll listeners have
# run) or, where nothing renders (render = "hidden"), after 100 ms.
FRAMES_JS = (
    "new Promise((resolve) => { const done = () => resolve(true);"
    " requestAnimationFrame(() => requestAnimationFrame(done)); setTimeout(done, 100); })"
)
# The centre of ``el`` on its document's viewport, once scrolled into view; null if it
# cannot be acted on (missing, disabled, not rendered).
_POINT_JS = (
    "el && !el.disabled && el.getClientRects().length > 0 ? (el.scrollIntoView({block: 'center', inline: 'center'}),"
    " ((r) => [r.x + r.width / 2, r.y + r.height / 2])(el.getBoundingClientRect())) : null"
)
_FILL_JS = (
    "!el ? 'missing' : el.tagName === 'SELECT' ? 'select' : el.tagName === 'INPUT' && ['checkbox', 'radio'].includes(el.type)"
    " ? el.type : (el.focus(), 'value' in el && (el.value = ''), 'ok')"
)
_SELECT_JS = """(() => {
  if (!el) return {error: 'no element matches'};
  if (el.tagName !== 'SELECT') return {error: 'not a <select>'};
  const options = Array.from(el.options);
  const o = options.find((o) => VALUE !== null ? o.value === VALUE : o.label.trim() === LABEL);
  if (!o) return {error: 'no such option', options: options.map((o) => `${o.value} (${o.label.trim()})`)};
  if (o.disabled || el.disabled) return {error: 'the option is disabled'};
  el.focus();
  el.value = o.value;
  el.dispatchEvent(new Event('input', {bubbles: true, composed: true}));
  el.dispatchEvent(new Event('change', {bubbles: true}));
  return {value: o.value};
})()"""


class Host(Protocol):
    """What a scope needs of the page it is in (:class:`~crawler.page.Page`)."""

    tab: cdp.Tab
    traffic: Traffic
    url: str

    @property
    def poll_interval_s(self) -> float: ...

    async def mouse(self, kind: str, x: float, y: float) -> None: ...

    async def show(self) -> None: ...

    async def settle(self, idle_s: float, max_s: float) -> None: ...

    async def add_links(self, raw: list[tuple[str, str]], *, label: str | None, data: Any) -> int: ...

    async def open_frame(self, parent: Scope, selector: str, timeout_s: float | None) -> Scope: ...


class Scope:
    """The reading and interaction methods a page and its frames share."""

    _page: Host  # the page this scope is in (for a Page: itself)

    async def _target(self) -> tuple[cdp.Tab | cdp.Session, int | None]:
        """Where this scope's expressions run now: a session, and an execution context
        on it (None: the session's main frame)."""
        raise NotImplementedError

    async def _origin(self) -> tuple[float, float]:
        """Where this scope's viewport's top left corner is on the tab's viewport."""
        raise NotImplementedError

    @property
    def _retire_if(self) -> str:
        return ""

    # -- reading -------------------------------------------------------------------------

    async def evaluate(self, expression: str, *, await_promise: bool = False) -> Any:
        """The value of a JavaScript expression in the document (JSON-able values; others
        as None).  Raises JavaScriptError if it throws.  If the document is being
        replaced, it is evaluated again in the new one."""
        page = self._page
        for _ in range(CONTEXT_RETRIES):
            sender, context = await self._target()
            params: dict[str, Any] = {
                "expression": expression,
                "returnByValue": True,
                "awaitPromise": await_promise,
            }
            if context is not None:
                params["contextId"] = context
            try:
                reply = await sender.send("Runtime.evaluate", **params)
            except cdp.ProtocolError:
                await page.traffic.wait_change(page.poll_interval_s)  # no execution context: mid-navigation
                continue
            page.traffic.check_forbidden()  # nothing read from such a document reaches the handler
            details = reply.get("exceptionDetails")
            if details:
                text = details.get("exception", {}).get("description") or details.get("text", "")
                raise JavaScriptError(text.split("\n")[0][:300])
            return reply.get("result", {}).get("value")
        raise PageFailure("js_error", "the document kept being replaced", retryable=True)

    def _unless_blocked(self, expression: str) -> str:
        """JS: ``expression``, or the blocked marker while ``retire_if`` matches (so a
        challenge the page's script puts up is seen by the wait it interrupts)."""
        if not self._retire_if:
            return expression
        return f"(document.querySelector({json.dumps(self._retire_if)}) !== null ? {_BLOCKED_JS} : ({expression}))"

    @staticmethod
    def _blocked(value: Any) -> Any:
        """``value``, unless it is the blocked marker: then SessionRetired ``retire_if``."""
        if isinstance(value, dict) and value.get(_BLOCKED_KEY) is True:
            raise SessionRetired("retire_if")
        return value

    async def wait_for(self, selector: str, timeout_s: float | None = None) -> None:
        """Return once ``selector`` matches an element (through shadow roots).  Without
        ``timeout_s`` it waits as long as the job's watchdog allows; with it, PageFailure
        ``wait_for`` (retryable) after that long.  An invalid selector fails at once.  If
        the ``[session] retire_if`` selector matches meanwhile: SessionRetired."""
        check_selector(selector)
        ready = self._unless_blocked(f"(() => {{ {QUERY_JS} return __q({json.dumps(selector)}) !== null || null; }})()")
        expression = when_ready(ready, WAIT_SLICE_MS)
        with trio.move_on_after(float("inf") if timeout_s is None else timeout_s) as scope:
            while not self._blocked(await self.evaluate(expression, await_promise=True)):
                await self._page.traffic.wait_change(self._page.poll_interval_s)
            return
        assert scope.cancelled_caught
        raise PageFailure("wait_for", f"{selector!r} did not appear within {timeout_s:g} s", retryable=True)

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
            await self._page.traffic.wait_change(self._page.poll_interval_s)
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

    async def html(self) -> str:
        """The document's current HTML."""
        return await self.evaluate("document.documentElement.outerHTML")

    async def frame(self, selector: str, *, timeout_s: float | None = None) -> Scope:
        """The frame of the ``<iframe>`` (or ``<frame>``) matching ``selector``, once it
        has loaded: ``frame = await page.frame("iframe#reviews")``.  Same-origin and
        cross-origin (out-of-process) frames alike.  PageFailure ``frame`` if it has not
        loaded within ``timeout_s`` (default: as long as the watchdog allows), or if the
        element is not a frame."""
        return await self._page.open_frame(self, check_selector(selector), timeout_s)

    async def enqueue(
        self,
        urls: Iterable[str] = (),
        *,
        selector: str | None = None,
        label: str | None = None,
        data: Mapping[str, Any] | None = None,
    ) -> int:
        """Enqueue ``urls`` and the links of the elements matching ``selector`` (their
        ``href``, else ``src``), resolved against this document, for the route ``label``
        (None: the default route), one level deeper, with ``data``.  Links the
        ``[crawl]`` rules refuse, and non-http(s) ones, are skipped and counted.  Returns
        how many were new to the crawl.  They are stored only with the job's outcome.
        A single string is one URL (not its characters, one URL each)."""
        raw = [(u, self._page.url) for u in ([urls] if isinstance(urls, str) else urls)]
        if selector is not None:
            found = await self.evaluate(
                f"""(() => {{ {QUERY_JS} return {{base: document.baseURI, links: __qa({json.dumps(check_selector(selector))})
                .map((e) => e.getAttribute('href') ?? e.getAttribute('src')).filter((h) => h !== null)}}; }})()"""
            )
            raw += [(link, found["base"]) for link in found["links"]]
        return await self._page.add_links(raw, label=label, data=data)

    # -- acting ----------------------------------------------------------------------------

    async def _point(self, selector: str) -> tuple[float, float] | None:
        """The centre of ``selector``'s element on the tab's viewport, scrolled into
        view; None if it cannot be acted on now."""
        point = await self._own_point(selector)
        if point is None:
            return None
        left, top = await self._origin()
        return point[0] + left, point[1] + top

    async def _own_point(self, selector: str) -> tuple[float, float] | None:
        """The centre of ``selector``'s element on this scope's own viewport, scrolled
        into view (the window shown first: see Page.show); None if it cannot be acted on."""
        await self._page.show()
        return await self.evaluate(query(check_selector(selector), _POINT_JS))

    async def click(self, selector: str) -> None:
        """Wait for ``selector``, then click the middle of the element as a mouse would
        (scrolled into view).  A navigation it causes takes its host's rate-limit turn."""
        await self.wait_for(selector)
        if not await self.click_if_present(selector):
            raise PageFailure("click", f"{selector!r} is hidden or disabled", retryable=True)

    async def click_if_present(self, selector: str) -> bool:
        """Click ``selector`` if it matches a visible, enabled element now; False if not."""
        point = await self._point(selector)
        if point is None:
            return False
        for kind in ("mouseMoved", "mousePressed", "mouseReleased"):  # as a hand does: onto it, then click
            await self._page.mouse(kind, *point)
        return True

    async def hover(self, selector: str) -> None:
        """Wait for ``selector``, then move the mouse over the middle of the element
        (``:hover`` styles apply, ``mouseover`` and ``mouseenter`` fire)."""
        await self.wait_for(selector)
        point = await self._point(selector)
        if point is None:
            raise PageFailure("hover", f"{selector!r} is hidden", retryable=True)
        await self._page.mouse("mouseMoved", *point)

    async def fill(self, selector: str, text: str) -> None:
        """Wait for ``selector`` (an input, textarea or editable element), replace its
        value with ``text`` as typed input (input events), then fire ``change``.
        TypeError for a ``<select>`` (use :meth:`select_option`) or a checkbox or radio
        button (use :meth:`click`)."""
        await self.wait_for(selector)
        kind = await self.evaluate(query(selector, _FILL_JS))
        if kind == "select":
            raise TypeError(f"fill({selector!r}): the element is a <select>: choose an option with select_option()")
        if kind in ("checkbox", "radio"):
            raise TypeError(f"fill({selector!r}): the element is a {kind}: tick it with click()")
        await self._page.tab.send("Input.insertText", text=text)
        await self.evaluate(query(selector, "el && el.dispatchEvent(new Event('change', {bubbles: true}))"))
        self._page.traffic.acted()

    async def select_option(self, selector: str, value: str | None = None, *, label: str | None = None) -> str:
        """Wait for the ``<select>`` matching ``selector`` and choose the option whose
        value is ``value`` (or whose visible label is ``label``), as a user would: it
        is focused, chosen, and ``input`` and ``change`` fire.  Returns the chosen
        option's value.  PageFailure ``select_option`` (retryable) if there is no such
        option or it is disabled; TypeError if the element is not a ``<select>``."""
        if (value is None) == (label is None):
            raise TypeError("select_option: give exactly one of value and label")
        await self.wait_for(selector)
        script = _SELECT_JS.replace("VALUE", json.dumps(value)).replace("LABEL", json.dumps(label))
        found = await self.evaluate(query(selector, script))
        if found.get("error") == "not a <select>":
            raise TypeError(f"select_option({selector!r}): the element is not a <select>")
        if "error" in found:
            wanted = f"value {value!r}" if value is not None else f"label {label!r}"
            options = f" (options: {', '.join(found['options'])})" if "options" in found else ""
            raise PageFailure("select_option", f"{selector!r}, {wanted}: {found['error']}{options}", retryable=True)
        self._page.traffic.acted()
        return found["value"]

    async def press(self, selector: str, key: str) -> None:
        """Wait for ``selector``, focus its element and press ``key`` ("Enter",
        "Escape", "ArrowDown"... or one character) as the keyboard would: keydown, the
        typed character if any, keyup.  ValueError for an unknown key name."""
        events = key_events(key)
        await self.wait_for(selector)
        await self.evaluate(query(selector, "el && el.focus()"))
        for params in events:
            await self._page.tab.send("Input.dispatchKeyEvent", **params)
        self._page.traffic.acted()

    # -- scrolling ------------------------------------------------------------------------

    async def scroll_into_view(self, selector: str, *, within: str | None = None) -> None:
        """Wait for ``selector`` and scroll its element to the middle of the viewport
        (of ``within``'s element, and of every scrollable box around it); returns once
        the page has rendered that (two animation frames)."""
        await self.wait_for(selector)
        await self._page.show()
        scope = f"__q({json.dumps(check_selector(within))})" if within else "null"
        found = await self.evaluate(
            f"""(() => {{ {QUERY_JS} const scope = {scope}; const el = __q({json.dumps(selector)}, scope);
            if (!el) return false; el.scrollIntoView({{block: 'center', inline: 'nearest'}}); return {FRAMES_JS}; }})()""",
            await_promise=True,
        )
        if not found:
            raise PageFailure("scroll", f"{selector!r} is not inside {within!r}", retryable=True)

    async def scroll_to_end(
        self, max_rounds: int = SCROLL_ROUNDS, settle_s: float = SCROLL_SETTLE_S, *, within: str | None = None
    ) -> int:
        """Scroll through the document as a reader does, until it stops growing: a
        viewport at a time (of ``within``'s scrollable element, else the window), each
        step rendered (observers and scroll listeners have run) before the next.  At the
        end, wait until the network has been quiet for ``settle_s``; if the height or
        the count of elements changed meanwhile (an infinite list loaded more), go on.
        Returns how many times the document was seen to grow (at most ``max_rounds``).
        Lazy images, IntersectionObserver sentinels and scroll listeners all see every
        part of the page pass through the viewport."""
        scroller = (
            f"__q({json.dumps(check_selector(within))})"
            if within
            else "(document.scrollingElement || document.documentElement)"
        )
        step = f"""(() => {{ {QUERY_JS} const s = {scroller}; if (!s) return null;
            const view = {"s.clientHeight" if within else "window.innerHeight"};
            if (STEP) {"s.scrollTop += view * " + str(SCROLL_STEP) if within else "window.scrollBy(0, view * " + str(SCROLL_STEP) + ")"};
            return {FRAMES_JS}.then(() => [s.scrollTop, s.scrollHeight, view, document.getElementsByTagName('*').length]); }})()"""
        measure, advance = step.replace("STEP", "false"), step.replace("STEP", "true")
        if within:
            await self.wait_for(within)
        await self._page.show()
        grew, size = 0, None
        for _ in range(SCROLL_STEPS):
            state = await self.evaluate(advance, await_promise=True)
            if state is None:
                raise PageFailure("scroll", f"{within!r} is gone", retryable=True)
            top, height, view, count = state
            if size is not None and (height, count) != size:
                grew += 1  # the document grew (or changed) since the last step
            size = (height, count)
            if grew >= max_rounds:
                break
            if top + view < height - 1:
                continue
            await self._page.settle(settle_s, SETTLE_MAX_S)  # at the end: let what the last steps set off land
            _, height, _, count = await self.evaluate(measure, await_promise=True)
            if (height, count) == size:
                break
            grew, size = grew + 1, (height, count)
            if grew >= max_rounds:
                break
        return grew


def _fields(fields: Mapping[str, Any] | tuple[Field, ...]) -> tuple[Field, ...]:
    return fields if isinstance(fields, tuple) else parse_fields(fields)
