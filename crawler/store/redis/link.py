"""Whether Redis can be reached: the one "store unavailable" state of a Redis store.

Every call of :class:`crawler.store.redis.store.RedisStore` goes through :meth:`RedisLink.call`.
A call that fails because Redis cannot be reached (the connection refused or lost, a
timeout, Redis loading its data after a restart, a cluster without a quorum) does not
raise: it marks the link **down** (one warning line, the first time) and waits until
the link is **up** again, then runs again.  Every script is safe to run twice, so the
retry is safe whether or not the failed attempt reached the server.  Calls that must
not wait (the outcomes of jobs, which the store buffers; samples, which it drops) ask
:attr:`RedisLink.up` first, or pass ``wait=False``.

:meth:`RedisLink.run`, a background task of the store, brings the link back: while it
is down it pings Redis with a backoff (RECONNECT_BACKOFF_S); once Redis answers it runs
the store's ``on_back`` (re-establish the leases, flush the buffered outcomes) and only
then declares the link up, so that no claim goes out before the outcomes of the jobs
that finished during the outage.  A link down for longer than ``outage_s`` is **given
up**: every waiter, and every later call, raises :class:`RedisUnavailable` (one line
naming the server and the limit), which ends the crawl (exit 1).

States::

    up ──call fails to reach Redis──► down ──ping answers, on_back done──► up
                                       │
                                       └──down for outage_s──► given up (every call raises)

Errors that are not about reaching Redis (a script error, a wrong type) are not an
outage: they raise :class:`~crawler.store.StoreError` at once, as before.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

import coredis.exceptions
import trio

from crawler.errors import StoreError

log = logging.getLogger(__name__)

T = TypeVar("T")

RECONNECT_BACKOFF_S = (0.1, 5.0)  # (first, cap): the delay between pings of a Redis that is away doubles up to cap
PING_TIMEOUT_S = 2.0  # a ping not answered this soon counts as Redis still away

# What "Redis cannot be reached" looks like: coredis's ConnectionError also covers a
# server loading its data (BusyLoadingError); the cluster ones cover a failover.
UNREACHABLE = (
    coredis.exceptions.ConnectionError,
    coredis.exceptions.ClusterDownError,
    coredis.exceptions.TryAgainError,
    coredis.exceptions.ClusterError,
    coredis.exceptions.ClusterRoutingError,
    coredis.exceptions.ReadOnlyError,
    TimeoutError,
    OSError,
)
REDIS_ERRORS = (coredis.exceptions.RedisError, OSError, TimeoutError)


class RedisAway(StoreError):
    """Redis cannot be reached right now (the link is down); raised only to callers that
    asked not to wait (``wait=False``)."""


class RedisUnavailable(StoreError):
    """Redis could not be reached for longer than ``[store] outage_s``: the crawl ends."""


class RedisLink:
    """The reachability of one Redis (see the module docstring).

    ``ping`` checks that Redis answers (raises if not); ``on_back`` runs once Redis
    answers again, before the link is up (its own calls go through ``call(...,
    recovering=True)``); ``where`` names the server in messages;
    ``outage_s`` is how long it may stay down before it is given up."""

    def __init__(
        self,
        where: str,
        outage_s: float,
        *,
        ping: Callable[[], Awaitable[Any]],
        on_back: Callable[[], Awaitable[None]],
    ):
        self.where = where
        self.outage_s = outage_s
        self._ping = ping
        self._on_back = on_back
        self._down_since: float | None = None
        self._last_error = ""
        self._given_up: RedisUnavailable | None = None
        self._back = trio.Event()
        self._went_down = trio.Event()
        self.outages = 0  # times the link went down

    @property
    def up(self) -> bool:
        return self._down_since is None and self._given_up is None

    @property
    def given_up(self) -> bool:
        return self._given_up is not None

    async def wait_up(self) -> None:
        """Return once the link is up (at once if it is), its ``on_back`` done; raises
        RedisUnavailable if it is given up meanwhile."""
        while self._given_up is None and self._down_since is not None:
            await self._back.wait()
        if self._given_up is not None:
            raise self._given_up

    def mark_down(self, exc: BaseException) -> None:
        """Redis could not be reached (``exc`` says how): the link is down from now,
        unless it already was.  Never blocks."""
        self._last_error = f"{type(exc).__name__}: {exc}"
        if self._down_since is not None or self._given_up is not None:
            return
        self.outages += 1
        self._down_since = trio.current_time()
        self._back = trio.Event()
        self._went_down.set()
        log.warning(
            "%s: unreachable (%s); not claiming, keeping jobs in flight and their outcomes until it is back"
            " (giving up after %g s)",
            self.where,
            self._last_error,
            self.outage_s,
        )

    async def call(self, fn: Callable[[], Awaitable[T]], *, wait: bool = True, recovering: bool = False) -> T:
        """``await fn()``; while Redis cannot be reached, wait for it to be back and run
        ``fn`` again (``wait=False``: raise StoreError at once instead).  Raises
        RedisUnavailable once the link is given up, and StoreError (one line) for an
        error that is not about reaching Redis.  ``recovering``: a call of ``on_back``,
        which runs while the link is still down.  Cancelled: it may or may not have
        run on the server (every script is safe to run again)."""
        while True:
            if self._given_up is not None:
                raise self._given_up
            if self._down_since is not None and not recovering:
                if not wait:
                    raise RedisAway(f"{self.where}: unreachable ({self._last_error})")
                await self._back.wait()
                continue
            try:
                return await fn()
            except UNREACHABLE as exc:
                self.mark_down(exc)
                if recovering or not wait:
                    raise RedisAway(f"{self.where}: unreachable ({self._last_error})") from None
            except REDIS_ERRORS as exc:
                raise StoreError(f"{self.where}: {type(exc).__name__}: {exc}") from None

    async def run(self) -> None:
        """Bring the link back whenever it goes down, until cancelled or given up.
        Never raises: giving up is a state that every call then reports."""
        while True:
            await self._went_down.wait()
            self._went_down = trio.Event()
            await self._reconnect()
            if self._given_up is not None:
                return

    async def _reconnect(self) -> None:
        assert self._down_since is not None
        delay, tries = RECONNECT_BACKOFF_S[0], 0
        while True:
            if trio.current_time() - self._down_since >= self.outage_s:
                self._give_up()
                return
            tries += 1
            try:
                with trio.fail_after(PING_TIMEOUT_S):
                    await self._ping()
                await self._on_back()
            except (trio.TooSlowError, StoreError, *REDIS_ERRORS) as exc:
                self._last_error = f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__
                remaining = self.outage_s - (trio.current_time() - self._down_since)
                await trio.sleep(max(0.0, min(delay, remaining)))
                delay = min(RECONNECT_BACKOFF_S[1], delay * 2)
                continue
            log.warning(
                "%s: reachable again after %.1f s (%d tries); carrying on",
                self.where,
                trio.current_time() - self._down_since,
                tries,
            )
            self._down_since = None
            self._back.set()
            return

    def _give_up(self) -> None:
        self._given_up = RedisUnavailable(
            f"{self.where}: unreachable for more than [store] outage_s = {self.outage_s:g} s ({self._last_error})"
        )
        self._back.set()  # every waiter wakes, and raises
