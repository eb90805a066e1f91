"""Stalls of the event loop: a task that runs for seconds without an ``await`` (a
handler calling ``time.sleep``, ``requests.get`` or a slow parser) stops every other
task of the crawl for that long.

Why it matters: while the loop is blocked, no reply of the browser is read and no
deadline is looked at; when it runs again, every deadline that fell inside the stall
fires at once.  A CDP command would time out and the healthy browser be taken for
dead, another job's watchdog expire, the blocking URL put back uncharged with the
"lost" browser and run again past ``max_attempts``.  So a stall is detected, blamed on
the task that caused it, and everyone else is given the time back.

How: :class:`LoopStalls` is a trio instrument with one cheap hook per task step.  A
step's length is the time since the previous step ended (or since the loop last woke
from its I/O wait); a step of :data:`STALL_THRESHOLD_S` or more is a stall.  The hook
runs in the run loop right after the step, before trio looks at deadlines again, so
the callback can push deadlines back (:meth:`crawler.policy.watchdog.Watchdog.forgive`,
``cdp.Connection.forgive``) before any of them fires.  The culprit's own job is not
forgiven: a handler that blocks past its watchdog is charged a timeout.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable

import trio

log = logging.getLogger(__name__)

# A task step this long is a blocked loop: no step of the crawler's own takes a
# hundredth of it, and a browser's command deadline is tens of seconds.
STALL_THRESHOLD_S = 1.0


class LoopStalls(trio.abc.Instrument):
    """Calls ``on_stall(task, seconds)`` in the run loop after each task step that held
    the loop ``threshold_s`` or more (see the module docstring).  ``on_stall`` must not
    raise (if it does, the error is logged and the instrument goes on)."""

    def __init__(
        self,
        on_stall: Callable[[trio.lowlevel.Task, float], None],
        threshold_s: float = STALL_THRESHOLD_S,
        *,
        clock: Callable[[], float] = time.perf_counter,
    ):
        self._on_stall = on_stall
        self._threshold_s = threshold_s
        self._clock = clock
        self._mark: float | None = None  # when the previous step ended, or the loop woke

    def after_io_wait(self, timeout: float) -> None:
        self._mark = self._clock()

    def after_task_step(self, task: trio.lowlevel.Task) -> None:
        now = self._clock()
        mark, self._mark = self._mark, now
        if mark is None or now - mark < self._threshold_s:
            return  # mark None: installed during this step, whose start is unknown
        try:
            self._on_stall(task, now - mark)
        except Exception:  # an instrument that raises is removed by trio: keep watching
            log.exception("handling a stall of the event loop failed")
