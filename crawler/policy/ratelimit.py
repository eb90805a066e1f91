"""Per-host pacing: a uniform random gap between request starts to each host.

:class:`Pace` is what the pages use; a store makes the one that fits it
(``store.host_pace``): with SQLite, one process crawls, and :class:`HostRateLimiter`
paces it in memory; with Redis, every worker of every crawl on that Redis shares one
budget per host, kept on the server (:class:`crawler.store.redis.pace.RedisPace`), so N
workers do not hit a site N times as often as configured.
"""

from __future__ import annotations

import random
from collections.abc import AsyncIterator
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from typing import Protocol
from urllib.parse import urlsplit

import trio


def host_of(url: str) -> str:
    """The host (with its port) whose budget a request to ``url`` spends."""
    return urlsplit(url).netloc


class Pace(Protocol):
    """Per-host turns for request starts.

    - ``hold(url)``: wait for the host's turn, then hold it for the body of the block
      (the caller exits once its request has left); the host's next request may start
      one gap after the block exits.  A waiter cancelled in the queue leaves it.
    - ``back_off(url, delay_s)``: the host asked to slow down (429/503 Retry-After): no
      request to it starts for ``delay_s``.
    """

    def hold(self, url: str) -> AbstractAsyncContextManager[None]: ...
    async def back_off(self, url: str, delay_s: float) -> None: ...


class HostRateLimiter:
    """Space request starts to each host by a uniform random gap, in this process.

    Waiters for one host are served first come, first served (trio's Lock is FIFO);
    each one sleeps until the host's next allowed start and holds the host until its
    request has left; the next allowed start is set from that moment.  Chaining from
    actual starts (rather than reserving times in advance) means that a request that
    starts late cannot shorten the gap before the next one.  O(1) per request.
    """

    def __init__(self, wait_ms: tuple[int, int], *, rng: random.Random | None = None):
        self.low_s, self.high_s = wait_ms[0] / 1000, wait_ms[1] / 1000
        self._next: dict[str, float] = {}
        self._locks: dict[str, trio.Lock] = {}
        self._rng = rng or random.Random()

    @asynccontextmanager
    async def hold(self, url: str) -> AsyncIterator[None]:
        """Wait for the host's turn, then hold it for the body of the block: the next
        request to the host may start one gap after the block exits.  The caller exits
        once its request has really left (the browser reported it sent), so the gaps are
        the ones the server sees.  Cancellation-safe: a waiter cancelled in the queue
        leaves it; one cancelled while holding still spaces the next request."""
        host = host_of(url)
        if self.high_s <= 0:
            until = self._next.get(host)
            if until is not None and until > trio.current_time():
                await trio.sleep_until(until)  # the host asked us to back off
            else:
                await trio.lowlevel.checkpoint()  # (no cancel scope: this is every request of a fast crawl)
            yield
            return
        lock = self._locks.get(host)
        if lock is None:
            lock = self._locks[host] = trio.Lock()
        async with lock:
            await trio.sleep_until(self._next.get(host, 0.0))
            try:
                yield
            finally:
                gap = self._rng.uniform(self.low_s, self.high_s)
                self._next[host] = max(self._next.get(host, 0.0), trio.current_time() + gap)

    async def back_off(self, url: str, delay_s: float) -> None:
        """The host asked us to slow down (429/503 Retry-After): no request starts for ``delay_s``."""
        self.back_off_nowait(url, delay_s)

    def back_off_nowait(self, url: str, delay_s: float) -> None:
        host = host_of(url)
        until = trio.current_time() + delay_s
        self._next[host] = max(self._next.get(host, until), until)
