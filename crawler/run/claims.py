"""The jobs a process holds: claimed from the store and not yet recorded (the
in-flight table), and the claims that fill it.

One claim at a time per process, so that each claim knows the hosts of the ones before
it (fairness: prefer a URL of a host none of our jobs is on, so the hosts interleave
and a slow or paused host does not take every worker while other hosts' URLs are
ready).

Claimed ahead: one claim (``Store.claim_many``, one round trip) takes a job for every
worker waiting and one more for every worker, and workers take theirs from the queue
without waiting for the store.  Why: a worker waiting for a store round trip per job
spent 44% of its time claiming in a fast (HTTP) crawl (a trip to SQLite's thread takes
milliseconds while the event loop is busy).  Jobs claimed ahead are in the in-flight
table (in progress in the store, their leases renewed on Redis) and go back to
pending, uncharged, if the workers stop first (:meth:`Claims.release_unstarted`; after
a kill, the next run's ``recover``).
"""

from __future__ import annotations

import logging
from collections import deque

import trio

from crawler.errors import StoreError
from crawler.policy.ratelimit import host_of
from crawler.store.base import Job, Store
from crawler.urls import short_url

log = logging.getLogger(__name__)


class Claims:
    """The in-flight table of one process's crawl, and its claims (see the module
    docstring).  ``limit``: at most this many claims in the run (None: no limit)."""

    def __init__(self, store: Store, limit: int | None):
        self._store = store
        self._limit = limit
        self._in_flight: dict[int, Job] = {}
        self._lock = trio.Lock()
        self._ahead: deque[Job] = deque()
        self._waiting = 0  # workers in claim()
        self.workers = 1  # how many workers take jobs (run_workers sets it)
        self.claimed = 0  # jobs the store gave this run (taken by workers, or waiting in the queue)

    def __len__(self) -> int:
        return len(self._in_flight)

    def jobs(self) -> list[Job]:
        """The jobs claimed and not yet recorded (a copy)."""
        return list(self._in_flight.values())

    def limit_reached(self) -> bool:
        """True once ``limit`` jobs were claimed in this run and every one claimed ahead
        was taken.  Claims are made under one lock and never past the limit, so no
        run claims more than ``limit`` jobs."""
        return self._limit is not None and self.claimed >= self._limit and not self._ahead

    async def claim(self) -> Job | None:
        """The next job (entered in the in-flight table), from the queue or from the
        store; None if the store has none ready (or the limit is reached).  Raises
        StoreError.  Cancelled while waiting its turn: nothing claimed for it is lost
        (it stays queued for the next worker)."""
        self._waiting += 1
        try:
            async with self._lock:
                if self._ahead:
                    return self._ahead.popleft()
                want = self._waiting + self.workers
                if self._limit is not None:
                    want = min(want, self._limit - self.claimed)
                if want <= 0:
                    return None
                hosts = {host_of(job.url) for job in self._in_flight.values()}
                jobs = await self._store.claim_many(hosts, want)
                self.claimed += len(jobs)
                for job in jobs:
                    self._in_flight[job.id] = job
                self._ahead.extend(jobs[1:])
                return jobs[0] if jobs else None
        finally:
            self._waiting -= 1

    def leave(self, job: Job) -> None:
        """The job's outcome is stored (or it was put back): out of the table."""
        del self._in_flight[job.id]

    async def release_unstarted(self, timeout_s: float) -> None:
        """Jobs claimed ahead that no worker took (the workers stopped): back to pending,
        uncharged, out of the table (shielded, bounded by ``timeout_s``)."""
        with trio.move_on_after(timeout_s, shield=True):
            while self._ahead:
                job = self._ahead.popleft()
                try:
                    await self._store.release(job)
                except StoreError as exc:  # the next run's recover() puts it back
                    log.debug("%s: could not put it back to pending: %s", short_url(job.url), exc)
                self.leave(job)
