"""Per-host pacing shared by every worker: a uniform random gap between request starts."""

from __future__ import annotations

import random
from urllib.parse import urlsplit

import trio


class HostRateLimiter:
    """Reserve request start times per host.

    Each call to :meth:`wait` reserves the host's next slot (``now`` or the end of
    the previous gap, whichever is later) and pushes the host's next slot one gap
    further, then sleeps until its slot.  Reservation is synchronous, so workers are
    served in the order they asked and gaps never overlap.  O(1) per request.
    """

    def __init__(self, wait_ms: tuple[int, int], *, rng: random.Random | None = None):
        self.low_s, self.high_s = wait_ms[0] / 1000, wait_ms[1] / 1000
        self._next: dict[str, float] = {}
        self._rng = rng or random.Random()

    async def wait(self, url: str) -> None:
        """Sleep until this request may start. If cancelled, the reserved slot stays
        used (later requests are not moved earlier), which only errs on the slow side."""
        host = urlsplit(url).netloc
        now = trio.current_time()
        start = max(now, self._next.get(host, now))
        if self.high_s > 0:
            self._next[host] = start + self._rng.uniform(self.low_s, self.high_s)
        await trio.sleep_until(start)

    def back_off(self, url: str, delay_s: float) -> None:
        """The host asked us to slow down (429/503 Retry-After): no request starts for ``delay_s``."""
        host = urlsplit(url).netloc
        until = trio.current_time() + delay_s
        self._next[host] = max(self._next.get(host, until), until)
