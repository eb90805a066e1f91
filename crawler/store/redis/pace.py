"""One politeness budget per host for every worker on a Redis: the gaps that
``[rate_limit] wait_ms`` asks for hold between the requests of all workers together,
not of each one.

The host's state is one small hash on the server (see ``lua/pace_acquire.lua``),
advanced by scripts on Redis's clock, so workers on machines whose clocks disagree
still agree on whose turn it is.  A turn works as the in-process limiter's does
(:class:`crawler.policy.ratelimit.HostRateLimiter`): the worker whose turn it is *holds* the
host while its request leaves, and the next start is set one gap after the moment it
left, so a request that leaves late never shortens the gap the server sees.  Within a
process the waiters for a host queue first come, first served on a trio Lock, so only
the head of each process's queue asks Redis.  A hold is bounded (HOLD_MS): a worker
killed while holding delays the host by that much, never forever.

Keys: ``crawler:{pace:<host>}``, one per host and **shared by every crawl on that
Redis**, not kept in a crawl's hash tag: the budget belongs to the site, so two crawls
of one site together keep one budget; and on a cluster the per-page pace calls of
different hosts spread over the nodes instead of all landing on the crawl's slot.  A
key expires PACE_KEEP_MS after its host's last turn.

With no gaps (``wait_ms = [0, 0]``) a request still asks Redis once, without taking a
hold, whether its host is paused (a Retry-After set by any worker): one round trip per
document.

When Redis cannot be reached (``StoreError`` from the call), the pace falls back to
this process's own limiter with the same gaps: during an outage no URL is claimed, so
only the jobs already in flight send requests, each worker paced on its own.
"""

from __future__ import annotations

import logging
import random
import secrets
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from contextlib import asynccontextmanager
from typing import Any

import trio

from crawler.errors import StoreError
from crawler.policy.ratelimit import HostRateLimiter, host_of

log = logging.getLogger(__name__)

HOLD_MS = 10_000  # longest a worker holds a host (its request leaving: traffic's REQUEST_SENT_WAIT_S, and more)
POLL_MS = 10  # a waiter asks again this soon while another worker's request is leaving
PACE_KEEP_MS = 3_600_000  # a host's pace key lives this long (1 h) after its last turn
TURN_RELEASE_TIMEOUT_S = 2.0  # bound on handing the turn on (shielded); failing that, the hold expires

RunScript = Callable[[str, Sequence[str], Sequence[Any]], Awaitable[Any]]


def pace_key(host: str) -> str:
    """The key of ``host``'s budget; the braces are its own Redis Cluster hash tag."""
    return f"crawler:{{pace:{host}}}"


class RedisPace:
    """:class:`crawler.policy.ratelimit.Pace` on Redis.  ``run_script(name, keys, args)`` runs
    one of ``crawler.store.redis.scripts.SCRIPTS`` once (no waiting out an outage: it raises
    StoreError at once when Redis is known to be away)."""

    def __init__(self, run_script: RunScript, wait_ms: tuple[int, int], *, rng: random.Random | None = None):
        self._run = run_script
        self.low_ms, self.high_ms = wait_ms
        self._rng = rng or random.Random()
        self._local = HostRateLimiter(wait_ms, rng=self._rng)  # while Redis is away
        self._locks: dict[str, trio.Lock] = {}

    @asynccontextmanager
    async def hold(self, url: str) -> AsyncIterator[None]:
        """Wait for the host's turn among all workers, then hold it for the body of the
        block; the next request to the host, by any worker, starts one gap after the
        block exits.  Cancelled while waiting: it leaves the queue, holding nothing;
        cancelled while holding: the turn is still handed on (shielded, bounded)."""
        host = host_of(url)
        lock = self._locks.get(host)
        if lock is None:
            lock = self._locks[host] = trio.Lock()
        async with lock:
            token = secrets.token_hex(8)
            hold_ms = HOLD_MS if self.high_ms > 0 else 0
            try:
                await self._wait_turn(host, token, hold_ms)
            except trio.Cancelled:
                if hold_ms:  # the last ask may have taken the hold: drop it, or the host waits HOLD_MS
                    await self._hand_on(host, token, gap_ms=0)
                raise
            except StoreError as exc:
                log.debug("%s: pacing in process while Redis is away: %s", host, exc)
                async with self._local.hold(url):
                    yield
                return
            try:
                yield
            finally:
                if hold_ms:
                    await self._hand_on(host, token)

    async def _wait_turn(self, host: str, token: str, hold_ms: int) -> None:
        while True:
            wait_ms = int(await self._run("pace_acquire", [pace_key(host)], [token, hold_ms, POLL_MS, PACE_KEEP_MS]))
            if wait_ms <= 0:
                return
            await trio.sleep(wait_ms / 1000)

    async def _hand_on(self, host: str, token: str, gap_ms: int | None = None) -> None:
        """Drop the hold (if ``token`` has it) and set the host's next start one gap from
        now (``gap_ms=0``: the request never left); shielded, bounded."""
        if gap_ms is None:
            gap_ms = round(self._rng.uniform(self.low_ms, self.high_ms))
        self._local.back_off_nowait(f"http://{host}/", gap_ms / 1000)  # if Redis goes away, keep the gap here too
        with trio.move_on_after(TURN_RELEASE_TIMEOUT_S, shield=True):
            try:
                await self._run("pace_release", [pace_key(host)], [token, gap_ms, PACE_KEEP_MS])
            except StoreError as exc:  # the hold expires on its own after HOLD_MS
                log.debug("%s: could not hand the turn on: %s", host, exc)

    async def back_off(self, url: str, delay_s: float) -> None:
        """No request to the host starts for ``delay_s``, by any worker (and in this
        process even if Redis is away).  Cancelled half-way: the shared pause may or
        may not be set; the local one is."""
        host = host_of(url)
        self._local.back_off_nowait(url, delay_s)
        try:
            await self._run("pace_back_off", [pace_key(host)], [round(delay_s * 1000), PACE_KEEP_MS])
        except StoreError as exc:
            log.debug("%s: the pause is this process's only: %s", host, exc)
