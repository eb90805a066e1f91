"""Frames: a page's ``<iframe>`` documents, read and driven like the page.

A same-origin frame runs in the page's process: its document has an execution context
of its own on the tab's session, which the frame's expressions name.  Those contexts
are known only with the ``Runtime`` domain on, which announces every context (and
every console message): it is switched on for a session only when a frame of it is
first needed, and off again when the page closes.  A cross-site frame runs in a
process of its own (site isolation): the tab attaches it automatically (see
:mod:`crawler.page.tab`), with a session of its own, prepared like the tab before the
frame runs; its expressions run on that session.  Which of the two a frame is can
change as it navigates, so every evaluation looks its place up afresh
(:meth:`FrameTargets.place`).

Everything a frame does runs in the job's cancel scope, under the same watchdog; its
requests are the page's (``responses()``, ``wait_for_idle()``, forbidden URLs and
blocked resource types: see :mod:`crawler.page.traffic`).
"""

from __future__ import annotations

import json
from typing import Any

import trio

import cdp
from crawler.errors import PageFailure
from crawler.page.dom import query
from crawler.page.places import FrameTargets, Sender
from crawler.page.scope import FRAMES_JS, Host, Scope

ORIGIN_READS = 10  # a frame's place is read at most this many times, waiting for it to stay put
# The frame's content box on its parent's viewport: where its own viewport starts.
_CONTENT_BOX_JS = (
    "el && ((r, s) => [r.x + el.clientLeft + parseFloat(s.paddingLeft), r.y + el.clientTop + parseFloat(s.paddingTop)])"
    "(el.getBoundingClientRect(), getComputedStyle(el))"
)


class Frame(Scope):
    """A frame's document, as a handler sees it (made by ``await page.frame(selector)``):
    the page's reading and interaction methods, and ``frame()`` for frames inside it.
    It follows the ``<iframe>`` element its selector matches in its parent."""

    def __init__(self, page: Host, frames: FrameTargets, parent: Scope, selector: str, frame_id: str, url: str):
        self._page = page
        self._frames = frames
        self.parent = parent
        self.selector = selector
        self.frame_id = frame_id
        self.url = url  # when it was opened

    def __repr__(self) -> str:
        return f"<Frame {self.selector!r} {self.url}>"

    async def _target(self) -> tuple[Sender, int | None]:
        frames = self._frames
        while (place := frames.place(self.frame_id)) is None:
            if await _in_process(self.parent, self.selector):
                sender, _ = await self.parent._target()
                await frames.enable_runtime(sender)
            await self._page.traffic.wait_change(self._page.poll_interval_s)
        return place

    async def _point(self, selector: str) -> tuple[float, float] | None:
        # Scrolling the element into view inside the frame also scrolls the frames and
        # the page around it, and from another process that lands some frames later:
        # the frame's place is read until it stays put.
        point = await self._own_point(selector)
        if point is None:
            return None
        origin = await self._origin()
        for _ in range(ORIGIN_READS):
            await self.parent.evaluate(FRAMES_JS, await_promise=True)
            if (moved := await self._origin()) == origin:
                break
            origin = moved
        return point[0] + origin[0], point[1] + origin[1]

    async def _origin(self) -> tuple[float, float]:
        left, top = await self.parent._origin()
        box = await self.parent.evaluate(query(self.selector, _CONTENT_BOX_JS))
        if box is None:
            raise PageFailure("frame", f"the frame {self.selector!r} is gone", retryable=True)
        return left + box[0], top + box[1]


async def _describe(parent: Scope, selector: str) -> dict[str, Any] | None:
    """``DOM.describeNode`` of the element ``selector`` matches in ``parent`` (None if none)."""
    sender, context = await parent._target()
    params: dict[str, Any] = {"expression": query(selector, "el"), "returnByValue": False}
    if context is not None:
        params["contextId"] = context
    try:
        found = (await sender.send("Runtime.evaluate", **params)).get("result", {})
        if "objectId" not in found:
            return None
        try:
            return (await sender.send("DOM.describeNode", objectId=found["objectId"]))["node"]
        finally:
            await sender.send("Runtime.releaseObject", objectId=found["objectId"])
    except cdp.ProtocolError:
        return None  # the document is being replaced: not there yet


async def _in_process(parent: Scope, selector: str) -> bool:
    """Whether the frame's document is in its parent's process (its content is part of
    the parent's DOM) right now."""
    node = await _describe(parent, selector)
    return node is not None and "contentDocument" in node


async def open_frame(page: Host, frames: FrameTargets, parent: Scope, selector: str, timeout_s: float | None) -> Frame:
    """The frame of ``selector`` in ``parent``, a scope of ``page`` (whose frames are
    ``frames``), once its document has loaded (see :meth:`Scope.frame`)."""
    with trio.move_on_after(float("inf") if timeout_s is None else timeout_s):
        await parent.wait_for(selector)
        node = await _describe(parent, selector)
        while node is None:
            await page.traffic.wait_change(page.poll_interval_s)
            node = await _describe(parent, selector)
        if not node.get("frameId"):
            raise PageFailure("frame", f"{selector!r} is a <{node.get('localName')}>, not a frame", retryable=False)
        src = await parent.evaluate(query(selector, "el.getAttribute('src') || ''"))
        blank = src in ("", "about:blank") or src.startswith("javascript:")
        frame = Frame(page, frames, parent, selector, node["frameId"], "")
        ready = f"document.readyState !== 'loading' && ({json.dumps(blank)} || location.href !== 'about:blank') ? location.href : null"
        while (url := await frame.evaluate(ready)) is None:
            await page.traffic.wait_change(page.poll_interval_s)
        frame.url = url
        return frame
    raise PageFailure("frame", f"the frame {selector!r} did not load within {timeout_s:g} s", retryable=True)
