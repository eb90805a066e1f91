"""A chaos layer between ``cdp.Connection`` and the fake browser, driven by a plan.

The plan numbers every command the engine sends, over the whole scenario (all runs,
all browsers), and maps some numbers to a fault:

=========  ==================================================================================
``delay``  the browser acts on the command; its reply arrives ``delay_s`` later
``fail``   the command never reaches the browser; an error reply comes back at once
``drop``   the browser acts on the command; its reply is lost (the caller's deadline expires)
``cancel`` the browser gets the command; the caller is cancelled while it waits: the job's
           watchdog scope expires then (for a task outside a job, the crawl is stopped, as
           SIGINT would)
``cut``    the browser gets the command, then the websocket is cut
``hang``   from this command on, the browser answers nothing and sends nothing, but the
           socket stays open (a wedged browser)
=========  ==================================================================================

Every fault applied is logged in ``plan.applied`` (number, method, fault), which a
failing test prints with its seed, so a failure can be replayed exactly.
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable
from typing import Any

import attrs
import trio

import cdp
from crawler.policy.watchdog import Watchdog
from tests.fake.browser import FakeSocket

KINDS = ("delay", "fail", "drop", "cancel", "cut", "hang")


@attrs.frozen
class Fault:
    kind: str
    delay_s: float = 0.0

    def __str__(self) -> str:
        return f"{self.kind}({self.delay_s:g} s)" if self.kind == "delay" else self.kind


@attrs.define
class ChaosPlan:
    """Which command gets which fault; counts commands as they are sent.

    A key is either ``n`` (the n-th command of the scenario) or ``(method, n)`` (the
    n-th command of that method), which keeps a regression test aimed at the same
    command when the engine starts sending others before it.
    """

    faults: dict[int | tuple[str, int], Fault]
    sent: int = 0
    per_method: dict[str, int] = attrs.field(factory=dict)
    applied: list[tuple[int, str, Fault]] = attrs.field(factory=list)
    on_cancel: Callable[[], None] = lambda: None
    # Targets and contexts whose creation reply was dropped or delayed: the browser made
    # them, and the engine may never learn their ids (cdp documents this: such a tab goes
    # with its context, such a context when the connection closes).
    unowned: set[str] = attrs.field(factory=set)

    def next(self, method: str) -> Fault | None:
        self.sent += 1
        self.per_method[method] = n = self.per_method.get(method, 0) + 1
        fault = self.faults.get(self.sent) or self.faults.get((method, n))
        if fault is not None:
            self.applied.append((self.sent, method, fault))
        return fault

    def describe(self) -> str:
        return "; ".join(f"#{n} {method}: {fault}" for n, method, fault in self.applied) or "no fault applied"


class ChaosSocket:
    """Wraps a :class:`FakeSocket`; the same interface, with the plan's faults applied.

    A pump task (in the fake's nursery) moves messages from the browser to the
    connection, dropping or delaying the replies the plan says.
    """

    def __init__(self, inner: FakeSocket, plan: ChaosPlan, spawn: Callable[..., None]):
        self._inner = inner
        self._plan = plan
        self._spawn = spawn
        self._send, self._receive = trio.open_memory_channel[str](math.inf)
        self._replies: dict[int, Fault] = {}  # command id -> fault to apply to its reply
        self.hung = False
        spawn(self._pump)

    @property
    def closed(self) -> bool:
        return self._inner.closed

    async def _pump(self) -> None:
        try:
            while True:
                text = await self._inner.receive_text()
                if self.hung:
                    continue
                message = json.loads(text)
                fault = self._replies.pop(message.get("id", -1), None) if "id" in message else None
                if fault is not None:
                    result = message.get("result") or {}
                    self._plan.unowned.update(
                        result[key] for key in ("targetId", "browserContextId") if isinstance(result.get(key), str)
                    )
                if fault is None:
                    self._forward(text)
                elif fault.kind == "delay":
                    self._spawn(self._forward_later, text, fault.delay_s)
                # drop: nothing
        except cdp.TransportClosed:
            pass
        finally:
            self._send.close()

    def _forward(self, text: str) -> None:
        try:
            self._send.send_nowait(text)
        except trio.ClosedResourceError:
            pass

    async def _forward_later(self, text: str, delay_s: float) -> None:
        await trio.sleep(delay_s)
        if not self.hung:
            self._forward(text)

    async def receive_text(self) -> str:
        try:
            return await self._receive.receive()
        except (trio.EndOfChannel, trio.ClosedResourceError):
            raise cdp.TransportClosed("chaos socket closed") from None

    async def send_text(self, text: str) -> None:
        if self.hung:
            await trio.lowlevel.checkpoint()
            return
        message: dict[str, Any] = json.loads(text)
        fault = self._plan.next(message["method"])
        if fault is None:
            await self._inner.send_text(text)
            return
        if fault.kind == "fail":
            await trio.lowlevel.checkpoint()
            reply = {"id": message["id"], "error": {"code": -32000, "message": "chaos: injected failure"}}
            self._forward(json.dumps(reply))
        elif fault.kind in ("drop", "delay"):
            self._replies[message["id"]] = fault
            await self._inner.send_text(text)
        elif fault.kind == "cancel":
            await self._inner.send_text(text)
            self._plan.on_cancel()
        elif fault.kind == "cut":
            await self._inner.send_text(text)
            self._inner.close()
        elif fault.kind == "hang":
            self.hung = True
            await trio.lowlevel.checkpoint()
        else:
            raise AssertionError(f"unknown fault {fault}")

    async def aclose(self) -> None:
        await self._inner.aclose()


class ChaosWatchdog(Watchdog):
    """The engine's watchdog, telling the chaos plan the job scope around the current
    task, so that it can make it expire at the moment a chosen command is awaited."""

    def current_job_scope(self) -> trio.CancelScope | None:
        """The watchdog scope around the current task (its own, or its parent's for a
        task of the job's nursery); None if the task is not inside a job's watchdog."""
        return self.scope_of(trio.lowlevel.current_task())
