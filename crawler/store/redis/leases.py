"""The leases one worker holds on a crawl in Redis: its claims, the outcomes of its
jobs, and the renewals that keep its leases alive (see :mod:`crawler.store.redis.store`
for the states and why a lease).

A claim holds its URL with a random token; ``complete``, ``retry_later``, ``fail`` and
``release`` act only while that token still holds the lease.  While Redis is away the
outcomes are kept in memory (MAX_UNSENT) and written once it is back, after the leases
were renewed (:meth:`Leases.on_back`): a lease taken over meanwhile has another token,
and its outcome writes nothing (counted in :attr:`Leases.lost`).
"""

from __future__ import annotations

import json
import logging
import secrets
from collections.abc import Awaitable, Callable, Collection, Iterable, Sequence
from typing import Any

import trio

from crawler.errors import StoreError
from crawler.policy.ratelimit import host_of
from crawler.request import Request
from crawler.store.base import CLAIM_SCAN, Job, item_hash, reason_kind
from crawler.store.redis.crawl import RedisCrawl, translated
from crawler.store.redis.layout import decode_data, encode_request
from crawler.store.redis.link import RedisAway
from crawler.urls import short_url

log = logging.getLogger(__name__)

CLEANUP_TIMEOUT_S = 5.0  # bound on giving leases back when the store closes or a claim is cancelled
TAKEOVER_SCAN = 50  # expired leases one claim may fail (max_attempts reached) before giving up
WORKER_FORGET_LEASES = 10  # a worker not seen for this many lease_s is dropped from ``workers``
MAX_UNSENT = 1000  # outcomes buffered while Redis is away; beyond, a job's outcome waits for Redis


class Leases:
    """The leases ``worker`` holds on the crawl ``redis`` reaches, each for ``lease_s``
    (server time); a URL taken over from a dead worker after ``max_attempts`` attempts
    is failed instead; links a job adds stay within ``max_urls`` URLs (0: no cap)."""

    def __init__(self, redis: RedisCrawl, worker: str, *, lease_s: float, max_attempts: int, max_urls: int):
        self.redis = redis
        self.link = redis.link
        self.worker = worker
        self.lease_s = lease_s
        self.max_attempts = max_attempts
        self.max_urls = max_urls
        self.lost = 0  # outcomes not written: their lease had been taken over
        self._held: dict[int, str] = {}  # id -> token of every lease this worker holds
        self._unsent: list[tuple[Job, Callable[[], Awaitable[int]]]] = []  # outcomes buffered while Redis is away

    @property
    def unsent(self) -> int:
        """Outcomes buffered until Redis is back."""
        return len(self._unsent)

    def forget(self) -> None:
        """Hold nothing any more (the crawl's keys were deleted)."""
        self._held.clear()

    async def on_back(self) -> None:
        """Redis answers again (the link is still down): renew every lease this worker
        holds, those of the buffered outcomes included, then write the buffered
        outcomes, oldest first.  Raises StoreError if Redis goes away again half-way
        (the link tries again later; what was written stays written)."""
        await self.link.call(lambda: self.renew([(job.id, job.token) for job, _ in self._unsent]), recovering=True)
        while self._unsent:
            _, write = self._unsent[0]
            await self.link.call(write, recovering=True)
            self._unsent.pop(0)

    async def _outcome(self, job: Job, write: Callable[[], Awaitable[int]]) -> int | None:
        """Write a job's outcome now, or, if Redis is away, buffer it (None): it is
        written once Redis is back.  With MAX_UNSENT outcomes buffered already, wait
        for Redis instead."""
        if len(self._unsent) < MAX_UNSENT:
            try:
                return await self.link.call(write, wait=False)
            except RedisAway:
                self._unsent.append((job, write))
                log.info("%s: outcome kept until Redis is back (%d kept)", short_url(job.url), len(self._unsent))
                return None
        return await self.link.call(write)

    async def claim_many(self, avoid_hosts: Collection[str], n: int) -> list[Job]:
        """Up to ``n`` claims in a row (one script call each: a claim is one round trip
        already), each avoiding the hosts of the ones before it."""
        avoid, jobs = set(avoid_hosts), []
        for _ in range(max(1, n)):
            job = await self.claim(avoid)
            if job is None:
                break
            jobs.append(job)
            avoid.add(host_of(job.url))
        return jobs

    @translated
    async def claim(self, avoid_hosts: Collection[str] = ()) -> Job | None:
        """Take a URL: one whose lease expired (a dead worker's), else the next ready
        pending one, preferring a host not in ``avoid_hosts`` (among the first CLAIM_SCAN
        ready); hold it with a fresh lease.  None if nothing is claimable now.
        The Job carries the URL's request fields (label, depth, data, parent).

        Atomic with respect to cancellation: if cancelled, whatever the script claimed
        with this call's token goes back to pending (bounded by CLEANUP_TIMEOUT_S;
        failing that, the unrenewed lease expires and another worker takes it over)."""
        token = secrets.token_hex(8)
        try:
            reply = await self.redis.run(
                "claim",
                self.worker,
                token,
                repr(self.lease_s),
                str(self.max_attempts),
                str(TAKEOVER_SCAN),
                str(CLAIM_SCAN),
                *sorted(avoid_hosts),
            )
        except trio.Cancelled:
            with trio.move_on_after(CLEANUP_TIMEOUT_S, shield=True):
                try:
                    await self.link.call(lambda: self.redis.run("release_held", self.worker, token), wait=False)
                except StoreError as exc:  # the Cancelled goes on: the unrenewed lease expires
                    log.debug("%s: could not give back a cancelled claim: %s", self.worker, exc)
            raise
        if not reply:
            return None
        job = self._job(reply, token)
        self._held[job.id] = token
        return job

    def _job(self, reply: list[Any], token: str) -> Job:
        job_id, url, attempts, label, depth, data, parent = reply
        return Job(
            int(job_id),
            url,
            int(attempts),
            token,
            label=label,
            depth=int(depth or 0),
            data=decode_data(self.redis.key(f"u:{job_id}"), data),
            parent=parent,
        )

    async def complete(
        self,
        job: Job,
        items: Sequence[dict[str, Any]],
        links: Sequence[Request],
        status: int | None,
        elapsed_s: float,
        recrawl_after_s: float = 0.0,
        *,
        run: int | None = None,
    ) -> bool:
        """In one script, if the lease is still held by ``job.token``: the job done,
        its ``items`` stored (in push order, fetched in ``run``) in place of the URL's
        earlier ones, an unchanged one keeping its fetch time and run (see the store
        contract), the URL due again in ``recrawl_after_s`` (> 0), and its ``links``
        added as by :meth:`crawler.store.redis.store.RedisStore.add_urls` (new URLs
        only, within ``max_urls``).  False, and nothing written, if the job is not held
        any more: another worker took the lease over, it was released, or it was
        completed already (a second call returns False; the client's own retry of this
        call returns True).  Raises ValueError, writing nothing, if an item or a link's
        data is not JSON.  If cancelled, it may or may not have happened (all of it or
        none); either way the lease is no longer renewed, so a job not completed is
        taken over once its lease expires.

        While Redis is away the outcome is buffered and True returned; once Redis is
        back it is written (after the lease was renewed), and if the lease was taken
        over meanwhile nothing is written (logged, counted in ``lost``): a URL is never
        completed twice."""
        try:
            items_json = json.dumps(list(items), ensure_ascii=False) if items else ""
        except (TypeError, ValueError) as exc:
            raise ValueError(f"{job.url}: an item is not JSON-serialisable: {exc}") from None
        link_args = [arg for link in links for arg in encode_request(link)]
        self._held.pop(job.id, None)  # no more renewals: the outcome is on its way
        args = [
            str(job.id),
            job.token,
            secrets.token_hex(8),  # this call's id: a retry of it is told from a second call
            items_json,
            "" if status is None else str(status),
            repr(elapsed_s),
            str(self.max_urls),
            json.dumps([item_hash(item) for item in items]),
            repr(float(recrawl_after_s)),
            str(run or 0),
            *link_args,
        ]

        async def write() -> int:
            done = int(await self.redis.run("complete", *args))
            if done == 0:
                self.lost += 1
                log.info(
                    "%s: complete not recorded: the lease was lost (taken over by another worker)", short_url(job.url)
                )
            return done

        done = await self._outcome(job, write)
        return done is None or done == 1

    async def retry_later(self, job: Job, reason: str, delay_s: float, status: int | None = None) -> None:
        """Back to pending, ready in ``delay_s`` (the attempt counts), if still held.
        Cancelled half-way: it may or may not have happened."""
        await self._finish(job, "retry", reason, status, delay_s)

    async def fail(self, job: Job, reason: str, status: int | None = None) -> None:
        """Failed for good with ``reason``, if still held.  Cancelled half-way: it
        may or may not have happened."""
        await self._finish(job, "fail", reason, status)

    async def release(self, job: Job) -> None:
        """Back to pending at once, the attempt not charged (shutdown, browser
        restart), if still held.  Cancelled half-way: it may or may not have happened
        (if not, the lease expires and is taken over)."""
        await self._finish(job, "release", "", None)

    async def _finish(self, job: Job, mode: str, reason: str, status: int | None, delay_s: float = 0.0) -> None:
        """The outcome written now, or buffered while Redis is away (see :meth:`complete`)."""
        self._held.pop(job.id, None)  # no more renewals: the outcome is on its way
        args = [str(job.id), job.token, mode, reason, reason_kind(reason), "" if status is None else str(status)]

        async def write() -> int:
            moved = int(await self.redis.run("finish", *args, repr(delay_s)))
            if not moved:
                self.lost += 1
                log.info(
                    "%s: %s not recorded: the lease was lost (taken over by another worker)", short_url(job.url), mode
                )
            return moved

        await self._outcome(job, write)

    async def renew_leases(self) -> set[int]:
        """Extend every lease this worker holds to ``lease_s`` from now, and mark this
        worker alive.  Returns the ids that were no longer held (taken over after
        expiring); they are forgotten.  Does not wait for a Redis that is away
        (StoreError at once).  Cancelled half-way: renewed or not."""
        return await self.link.call(lambda: self.renew([]), wait=False)

    async def renew(self, extra: Iterable[tuple[int, str]]) -> set[int]:
        """The renewal of :meth:`renew_leases`, straight to Redis, also of the ``extra``
        (id, token) leases (those of outcomes not written yet, which are no longer held)."""
        held = dict(self._held)
        args: list[str] = []
        for job_id, token in [*held.items(), *extra]:
            args += [str(job_id), token]
        reply = await self.redis.run("renew", self.worker, repr(self.lease_s), repr(self._forget_s), *args)
        # A job completed (or released...) while the renewal was on its way is not lost.
        lost = {int(i) for i in reply if int(i) in held and self._held.get(int(i)) == held[int(i)]}
        for job_id in lost:
            del self._held[job_id]
        return lost

    @property
    def _forget_s(self) -> float:
        return WORKER_FORGET_LEASES * self.lease_s

    async def release_all(self) -> int:
        """Give back every lease this worker holds on the server (also any whose
        claim reply was lost), the attempts not charged, and leave ``P workers``.
        Returns how many went back to pending.  Does not wait for a Redis that is
        away (StoreError at once): the leases then expire on their own.  Outcomes
        still buffered are dropped (logged): their URLs' leases expire, and they are
        crawled again."""
        if self._unsent:
            log.warning(
                "%s: %d outcomes could not be written (Redis away); their URLs are crawled again",
                self.worker,
                len(self._unsent),
            )
            self._unsent.clear()
        released = int(await self.link.call(lambda: self.redis.run("release_held", self.worker, ""), wait=False))
        self._held.clear()
        return released

    async def keep(self) -> None:
        """Renew the leases every ``lease_s / 3`` until cancelled or the link is given
        up.  Never raises: a failed renewal is tried again at the next tick; while
        Redis is away the link renews them when it is back (if another worker took
        one over meanwhile, its outcome is not written)."""
        interval_s = self.lease_s / 3
        while not self.link.given_up:
            if not self.link.up:  # the link renews them as it comes back
                await trio.sleep(interval_s)
                continue
            try:
                lost = await self.renew_leases()
            except RedisAway:
                pass  # the link said so, once
            except StoreError as exc:
                log.warning("%s: renewing %d leases failed: %s", self.worker, len(self._held), exc)
            else:
                if lost:
                    self.lost += len(lost)
                    log.warning("%s: %d leases were taken over by other workers: %s", self.worker, len(lost), lost)
            await trio.sleep(interval_s)
