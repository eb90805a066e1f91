"""The SQLite store's calls, run in a worker thread in turn, those made while a trip is
under way together on the next trip.

Why: a trip to the thread costs more than the SQL when the event loop is busy (the
thread waits for the GIL: 2.3 ms a call on a loaded 2-core machine, against 0.2 ms of
SQL), and one trip per call capped an HTTP crawl at about 430 store calls per second.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, TypeVar

import trio

T = TypeVar("T")


class _Call:
    def __init__(self, fn: Callable[..., Any], args: tuple[Any, ...]):
        self.fn, self.args = fn, args
        self.taken = False  # on a trip (running, or run)
        self.finished = trio.Event()
        self.value: Any = None
        self.error: BaseException | None = None

    def __call__(self) -> None:
        try:
            self.value = self.fn(*self.args)
        except BaseException as exc:  # each call's own failure goes to its own caller
            self.error = exc


class Calls:
    """Store calls run in a worker thread in the order they were made, those made while
    a trip is under way together on the next trip (each still its own transaction).

    The caller first in line takes every call queued so far on one trip; those behind
    it find theirs done when their turn comes.  A caller cancelled before its call was
    taken leaves the queue (the call did not start); one whose call was taken waits for
    it (it happens), and the Cancelled comes at its next checkpoint."""

    def __init__(self) -> None:
        self._queue: list[_Call] = []
        self._turn = trio.Lock()  # FIFO: one trip at a time, callers served in order
        self.trips = 0

    async def run(self, fn: Callable[..., T], *args: Any) -> T:
        call = _Call(fn, args)
        self._queue.append(call)
        try:
            async with self._turn:
                if not call.taken:
                    batch, self._queue = self._queue, []
                    for queued in batch:
                        queued.taken = True
                    with trio.CancelScope(shield=True):  # the others' calls ride on this trip
                        await trio.to_thread.run_sync(_run_all, batch)
                    self.trips += 1
                    for queued in batch:
                        queued.finished.set()
        except trio.Cancelled:
            if not call.taken:
                self._queue.remove(call)
                raise
            # Taken: it runs (or ran) whatever happens.  Its value is returned, as a call
            # that started always was (a claim must reach the caller's in-flight table);
            # the scope is still cancelled, so the Cancelled comes at the next checkpoint.
            with trio.CancelScope(shield=True):
                await call.finished.wait()
        if call.error is not None:
            raise call.error
        return call.value


def _run_all(calls: list[_Call]) -> None:
    for call in calls:
        call()
