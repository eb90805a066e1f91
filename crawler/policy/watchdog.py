"""The per-job watchdog: a trio cancel scope with a jittered deadline.

When it expires, the job is really cancelled (unlike ``Promise.race``): every await
inside raises Cancelled, each resource's own ``async with`` cleans it up once on the
way out, and the caller learns of the expiry from ``scope.cancelled_caught``.
Jitter spreads the deadlines of jobs that started together over ``jitter_s`` so that
they do not all expire, and all clean up, at the same moment (thundering herd).

The watchdog knows which task runs inside which of its scopes, so that a stall of the
event loop (:mod:`crawler.observe.stalls`) is charged to the job that caused it and
to no other: :meth:`Watchdog.forgive` gives every other job back the time the loop
was blocked.
"""

from __future__ import annotations

import random
from collections.abc import Iterator
from contextlib import contextmanager

import trio

from crawler._trio import task_lineage


class Watchdog:
    def __init__(self, timeout_s: float, jitter_s: float, *, rng: random.Random | None = None):
        self.timeout_s = timeout_s
        self.jitter_s = jitter_s
        self._rng = rng or random.Random()
        self._running: dict[trio.lowlevel.Task, trio.CancelScope] = {}  # task -> the scope it runs in

    def budget_s(self) -> float:
        """One job's time budget: timeout plus its own uniform jitter."""
        return self.timeout_s + self._rng.uniform(0, self.jitter_s)

    @contextmanager
    def scope(self) -> Iterator[trio.CancelScope]:
        """A cancel scope whose deadline is now + :meth:`budget_s`, entered; the current
        task is known to run in it until it exits."""
        task = trio.lowlevel.current_task()
        with trio.CancelScope(deadline=trio.current_time() + self.budget_s()) as scope:
            self._running[task] = scope
            try:
                yield scope
            finally:
                del self._running[task]

    def scope_of(self, task: trio.lowlevel.Task) -> trio.CancelScope | None:
        """The watchdog scope ``task`` runs in: its own, or that of the task whose
        nursery started it (a handler's helper tasks); None outside every job."""
        return next((self._running[t] for t in task_lineage(task) if t in self._running), None)

    def forgive(self, seconds: float, culprit: trio.lowlevel.Task | None) -> int:
        """Push back by ``seconds`` the deadline of every job but ``culprit``'s (the
        task that blocked the event loop that long: its own job pays).  Returns how
        many jobs were given the time back."""
        charged = self.scope_of(culprit) if culprit is not None else None
        forgiven = 0
        for scope in self._running.values():
            if scope is not charged:  # (not ``cancel_called``: reading it cancels a scope past its deadline)
                scope.deadline += seconds
                forgiven += 1
        return forgiven
