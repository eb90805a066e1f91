"""The per-job watchdog: a trio cancel scope with a jittered deadline.

When it expires, the job is really cancelled (unlike ``Promise.race``): every await
inside raises Cancelled, each resource's own ``async with`` cleans it up once on the
way out, and the caller learns of the expiry from ``scope.cancelled_caught``.
Jitter spreads the deadlines of jobs that started together over ``jitter_s`` so that
they do not all expire, and all clean up, at the same moment (thundering herd).
"""

from __future__ import annotations

import random

import trio


class Watchdog:
    def __init__(self, timeout_s: float, jitter_s: float, *, rng: random.Random | None = None):
        self.timeout_s = timeout_s
        self.jitter_s = jitter_s
        self._rng = rng or random.Random()

    def budget_s(self) -> float:
        """One job's time budget: timeout plus its own uniform jitter."""
        return self.timeout_s + self._rng.uniform(0, self.jitter_s)

    def scope(self) -> trio.CancelScope:
        """A cancel scope whose deadline is now + :meth:`budget_s`."""
        return trio.CancelScope(deadline=trio.current_time() + self.budget_s())
