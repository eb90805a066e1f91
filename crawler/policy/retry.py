"""The retry policy: what becomes of a URL after a failed attempt.

Pure logic, no trio and no I/O: :meth:`RetryPolicy.decide` takes the attempt number
and what the failure says (retryable or not, its HTTP status, its Retry-After) and
returns a frozen :class:`RetryDecision`; the job runner carries it out (the store
write, the host pause).

- Backoff: exponential with full jitter, drawn from the injected generator: before
  attempt n + 1 the URL waits uniform(0, min(cap, base * 2^(n-1))).  Exactly one draw
  per failure, retried or final, so that a seed replays the same delays whatever the
  outcomes.
- Retryable or final: a retryable failure is tried again while attempts are left
  (``attempt < max_attempts``); any other failure is final at once.
- Retry-After is a floor on the delay.
- The host pause: 429 and 503 (``slow_down_status``) are the host asking the whole
  crawler to slow down, so no worker starts a request to that host for the
  Retry-After (this URL's backoff if the response gave none), whether this URL is
  retried or failed for good.
"""

from __future__ import annotations

import random
from collections.abc import Collection

import attrs


@attrs.frozen
class RetryDecision:
    """What to do with a URL whose attempt failed."""

    retry: bool  # pending again after ``delay_s`` (True), or failed for good
    delay_s: float  # until the next attempt: the backoff draw, at least the Retry-After
    host_pause_s: float | None  # no request starts to the URL's host for this long; None: no pause


@attrs.frozen
class RetryPolicy:
    """Exponential backoff with full jitter, retryable vs final, Retry-After, host pauses."""

    max_attempts: int  # attempts per URL, the first one included
    backoff_s: tuple[float, float]  # (base, cap) of the backoff, seconds
    slow_down_status: Collection[int]  # statuses that pause the whole host (429, 503)
    rng: random.Random = attrs.field(factory=random.Random, eq=False, repr=False)

    def draw_backoff_s(self, attempt: int) -> float:
        """One draw: uniform(0, min(cap, base * 2^(attempt-1))) seconds."""
        base, cap = self.backoff_s
        return self.rng.uniform(0, min(cap, base * 2 ** (attempt - 1)))

    def decide(
        self, attempt: int, *, retryable: bool, status: int | None = None, retry_after_s: float | None = None
    ) -> RetryDecision:
        """The decision after attempt number ``attempt`` (1 for the first) failed."""
        delay_s = self.draw_backoff_s(attempt)
        host_pause_s = None
        if status in self.slow_down_status:
            # The whole host waits: Retry-After if it gave one, else this URL's backoff.
            host_pause_s = delay_s if retry_after_s is None else retry_after_s
        if retry_after_s is not None:
            delay_s = max(delay_s, retry_after_s)
        return RetryDecision(
            retry=retryable and attempt < self.max_attempts, delay_s=delay_s, host_pause_s=host_pause_s
        )
