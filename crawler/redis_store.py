"""A shared frontier on Redis: many workers, on many machines, crawl one crawl.

Chosen with ``[store] backend = "redis"`` and ``url = "redis://host:port/db"``.  It
implements the same :class:`~crawler.store.Store` protocol as the SQLite store; the
engine does not know which one it talks to.

States of a URL are the SQLite store's, plus a **lease** on ``in_progress``::

    pending ──claim──► in_progress (lease: token, holder, expiry) ──complete──► done
       ▲                  │  ├──retry_later──► pending (attempt counted, ready time set)
       ├──release─────────┤  └──fail─────────► failed (reason kept)
       └──recover─────────┤ (lease expired; the attempt not charged)
                          └──lease expired, another worker's claim──► in_progress (new token)

Every transition is one Lua script, so it is atomic on the server whatever the
clients do.  A claimed URL is held by a lease: a random token and an expiry
(``[store] lease_s``, server time).  :func:`open_redis_store` runs a task that renews
every lease this store holds every ``lease_s / 3``.  A worker that dies (SIGKILL, a
lost machine) stops renewing; once its leases have expired, the next claim by any
worker takes the URL over (counting an attempt; after ``[retry] max_attempts`` the URL
is failed with reason ``lease_expired`` rather than handed on forever), or a worker's
``recover`` at its start puts it back to pending (not counting the attempt, as SQLite's
``recover`` does after a kill).  ``complete``, ``retry_later``, ``fail`` and
``release`` only act while the caller's token still holds the lease: a slow worker
that finishes after its lease was taken over gets ``False`` from ``complete`` and
writes nothing, so a URL is marked done once.  ``complete`` is one script that marks
the URL done, stores the job's items and adds its links: all of it or none.

The frontier never holds more than ``max_urls`` URLs (``[crawl] max_pages``; 0: no
cap), counted as ``P seq``: every URL ever added, whatever its state now.

Keys (``P`` is ``crawler:{<crawl>}:``, ``<crawl>`` being ``[store] crawl``, else the
site name and a hash of the config file's absolute path, see :func:`crawl_name`; the
braces make every key of a crawl share one Redis Cluster hash slot):

=====================  =========================================================
``P seq``              string: the last URL id given (ids give the crawl order;
                       also the number of URLs ever added, which ``max_urls`` caps)
``P ids``              hash: url -> id (the same URL added twice is one URL)
``P u:<id>``           hash: url, state, attempts, ready, token, worker,
                       lease_until, started_at, finished_at, elapsed_s, status,
                       last_error, done_count, done_by, done_token, done_call,
                       changed_items, unchanged_items,
                       takeovers, taken_from, taken_at; and the request: depth,
                       label, parent, data (JSON object); label, parent and data
                       are absent for None / {} (and in URLs added by the previous
                       layout, which had no request fields)
``P pending``          zset: id -> ready time (a fresh URL's score is its id,
                       always in the past, so fresh URLs go first, in order)
``P leases``           zset: id -> lease expiry (every URL in progress)
``P held:<worker>``    set: ids whose lease that worker holds
``P done``             zset: id -> id (crawl order of the items)
``P failed``           zset: id -> id
``P fail_kinds``       hash: failure kind (reason before ':') -> count
``P items``            hash: id -> JSON array of the items its job pushed, in push
                       order (absent when none; a JSON object, from the previous
                       layout, is one item)
``P item_meta``        hash: id -> JSON array of [hash, fetched_at, run] per item
                       (absent in crawls of the layout before recrawls)
``P recrawl``          zset: id -> when the done URL is due again
``P input:<key>``      string: entries of the input ``<key>`` fed so far
``P workers``          zset: worker id (``host:pid:random``) -> last renewal
``P runs``             hash: run number -> JSON record; ``P run_seq``
``P mem:<run>``        list of memory samples, capped at MAX_SAMPLES
``P tabs:<run>``       list of tab samples, capped at MAX_SAMPLES
=====================  =========================================================

A stored value this version cannot read (an item that is not a JSON object or
array, a ``data`` that is not a JSON object...) raises
:class:`~crawler.redis_layout.RedisLayoutError`, one line naming the key: the crawl
was written by an incompatible version (see :mod:`crawler.redis_layout`).

Times are Redis's ``TIME`` (seconds, float), so workers on machines whose clocks
disagree still agree on lease expiries and ready times.

The client is coredis (6.x, built on anyio, runs under trio): ``coredis.Redis``, or
``coredis.RedisCluster`` with ``[store] cluster = true`` (``url`` a startup node; every
script declares its keys, all in the crawl's slot, see :mod:`crawler.redis_scripts`).
It retries a command whose connection broke, and so does the store's
:class:`~crawler.redis_link.RedisLink` while Redis is away (up to ``[store] outage_s``);
every script is idempotent for that: a retried claim with the same token returns the
same URL, a retried complete (the same call: each call sends a random ``call`` id)
returns True and adds nothing again, while a second ``complete`` call for a job
already completed returns False, as on SQLite.  While Redis is away, the outcomes of
jobs are kept in memory (MAX_UNSENT) and written once it is back, after the leases
were renewed: a lease taken over meanwhile has another token, and its outcome writes
nothing.

Outside the crawl's keys: ``crawler:{pace:<host>}``, the host budget every worker on
this Redis shares (:mod:`crawler.redis_pace`).
"""

from __future__ import annotations

import functools
import hashlib
import itertools
import json
import logging
import os
import random
import secrets
import socket
from collections.abc import AsyncIterator, Awaitable, Callable, Collection, Iterable, Iterator, Sequence
from contextlib import asynccontextmanager
from typing import Any, TypeVar

import attrs
import coredis
import coredis.exceptions
import trio

import cdp

from .config import Config, ConfigError
from .ratelimit import Pace
from .redis_layout import decode_data, encode_request, stored_items, typed_record
from .redis_link import RedisAway, RedisLink
from .redis_pace import RedisPace
from .redis_scripts import SCRIPT_KEYS, SCRIPTS
from .store import CLAIM_SCAN, STATES, Job, Request, RunRecord, StoredItem, StoreError, item_hash, reason_kind
from .urls import short_url

log = logging.getLogger("crawler.redis_store")

CONNECT_TIMEOUT_S = 10.0  # bound on reaching Redis when the store opens
COMMAND_TIMEOUT_S = 30.0  # a reply that takes longer breaks the connection (then retried)
CLEANUP_TIMEOUT_S = 5.0  # bound on giving leases back when the store closes or a claim is cancelled
ADD_BATCH = 1000  # URLs per add_urls script call
READ_BATCH = 1000  # items per read when exporting
MAX_SAMPLES = 10_000  # memory / tab samples kept per run (a capped list each)
TAKEOVER_SCAN = 50  # expired leases one claim may fail (max_attempts reached) before giving up
CRAWL_HASH_CHARS = 12  # hex digits of the config's hash in a derived crawl name (48 bits)
WORKER_FORGET_LEASES = 10  # a worker not seen for this many lease_s is dropped from ``workers``


MAX_UNSENT = 1000  # outcomes buffered while Redis is away; beyond, a job's outcome waits for Redis
F = TypeVar("F", bound=Callable[..., Awaitable[Any]])


def _translated(method: F) -> F:
    """A store method that runs through the store's :class:`~crawler.redis_link.RedisLink`:
    while Redis cannot be reached it waits for it to be back (and runs again; every
    method is safe to run twice), up to ``[store] outage_s``; then, and for any other
    Redis failure, it raises :class:`~crawler.store.StoreError`, one line naming the
    server: what the engine treats as fatal for the crawl, as a full disk for SQLite."""

    @functools.wraps(method)
    async def call(self: RedisStore, *args: Any, **kwargs: Any) -> Any:
        return await self.link.call(lambda: method(self, *args, **kwargs))

    return call  # type: ignore[return-value]


@attrs.frozen
class RedisStoreStatistics:
    up: bool  # Redis answered the last call
    outages: int  # times Redis went away during this run
    unsent: int  # outcomes buffered until Redis is back
    leases_lost: int  # outcomes not written: their lease had been taken over


def crawl_name(cfg: Config) -> str:
    """The crawl a config's workers share: ``[store] crawl``, else the site name and a
    short hash of the config file's absolute path and the site name.  Never a constant:
    two unrelated configs without names (both ``"site"``) on one Redis must not merge
    their frontiers.  Workers on several machines share a crawl when they read the
    config from the same path (one image); otherwise they need ``[store] crawl``."""
    if cfg.store.crawl:
        return cfg.store.crawl
    origin = f"{os.path.abspath(cfg.source)}\0{cfg.site.name}"
    return f"{cfg.site.name}-{hashlib.sha256(origin.encode()).hexdigest()[:CRAWL_HASH_CHARS]}"


def key_prefix(crawl: str) -> str:
    """The prefix of every key of ``crawl``; the braces are a Redis Cluster hash tag."""
    return f"crawler:{{{crawl}}}:"


def new_worker_id() -> str:
    """``host:pid:random``: unique per store instance, readable in ``P workers``."""
    return f"{socket.gethostname()}:{os.getpid()}:{secrets.token_hex(3)}"


class RedisStore:
    """The frontier and the items of one crawl in Redis, as seen by one worker.

    Create it with :func:`open_redis_store`, which also renews its leases.  Every
    method is one round trip (``add_urls``, ``known``, ``items`` and ``reset`` one per batch) and
    one atomic script on the server.  If a method is cancelled while waiting for the
    reply, the script may or may not have run; what that means is said per method.
    Methods raise :class:`~crawler.store.StoreError` (one line naming the server)
    when Redis has been unreachable for ``outage_s``: for the engine that is fatal,
    as a full disk is for SQLite.  Until then a method waits for Redis to be back,
    except the outcomes of jobs (``complete``, ``retry_later``, ``fail``, ``release``),
    which are buffered (up to MAX_UNSENT) and written, after the leases were renewed,
    as soon as Redis answers again, before any other call goes on (see
    :mod:`crawler.redis_link`).
    """

    def __init__(
        self,
        client: coredis.Redis[str],
        crawl: str,
        *,
        lease_s: float,
        max_attempts: int,
        max_urls: int = 0,
        worker: str | None = None,
        where: str = "redis",
        outage_s: float = 60.0,
    ):
        self.client = client
        self.where = where  # names the store in errors (the server's URL)
        self.crawl = crawl
        self.prefix = key_prefix(crawl)
        self.lease_s = lease_s
        self.max_attempts = max_attempts
        self.max_urls = max_urls  # the frontier never holds more URLs (ever added); 0: no cap
        self.worker = worker or new_worker_id()
        self.run_id: int | None = None
        self._run_started: float | None = None
        self.leases_lost = 0
        self._held: dict[int, str] = {}  # id -> token of every lease this store holds
        self._unsent: list[tuple[Job, Callable[[], Awaitable[int]]]] = []  # outcomes buffered while Redis is away
        self._scripts = {name: client.register_script(src) for name, src in SCRIPTS.items()}
        self.link = RedisLink(where, outage_s, ping=client.ping, on_back=self._on_back)

    async def connect(self) -> None:
        """Load the scripts and register this worker, once, not waiting for a Redis that
        is away: StoreError (one line) if it cannot be reached."""

        async def connect() -> None:
            await self.load_scripts()
            await self._renew([])

        await self.link.call(connect, wait=False)

    async def _on_back(self) -> None:
        """Redis answers again (the link is still down): renew every lease this worker
        holds, those of the buffered outcomes included, then write the buffered
        outcomes, oldest first.  Raises StoreError if Redis goes away again half-way
        (the link tries again later; what was written stays written)."""
        await self.link.call(lambda: self._renew([(job.id, job.token) for job, _ in self._unsent]), recovering=True)
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

    def statistics(self) -> RedisStoreStatistics:
        """This worker's view of its Redis, now (never blocks)."""
        return RedisStoreStatistics(
            up=self.link.up, outages=self.link.outages, unsent=len(self._unsent), leases_lost=self.leases_lost
        )

    async def load_scripts(self) -> None:
        """Load the scripts into Redis's script cache up front (else each one's first
        EVALSHA fails with NOSCRIPT and is sent again as EVAL)."""
        for source in SCRIPTS.values():
            await self.client.script_load(source)

    async def _run(self, script: str, *args: Any) -> Any:
        """One of the crawl's scripts, its keys declared: the prefix, then its fixed keys
        (see :data:`crawler.redis_scripts.SCRIPT_KEYS`), all in the crawl's hash slot."""
        keys = [self.prefix, *(self.prefix + name for name in SCRIPT_KEYS[script])]
        return await self._scripts[script](keys=keys, args=list(args))

    async def run_script(self, name: str, keys: Sequence[str], args: Sequence[Any]) -> Any:
        """Run script ``name`` of :data:`crawler.redis_scripts.SCRIPTS` once on ``keys``
        with ``args`` (for :class:`crawler.redis_pace.RedisPace`), not waiting for a
        Redis that is away: StoreError at once."""
        return await self.link.call(
            lambda: self._scripts[name](keys=list(keys), args=[str(a) for a in args]), wait=False
        )

    def host_pace(self, wait_ms: tuple[int, int], *, rng: random.Random | None = None) -> Pace:
        """The host pacing shared by every worker on this Redis (see :mod:`crawler.redis_pace`)."""
        return RedisPace(self.run_script, wait_ms, rng=rng)

    @_translated
    async def server_time(self) -> float:
        """Redis's clock (seconds), the one leases and ready times are in."""
        return float(await self._scripts["time"](keys=[self.prefix], args=[]))  # the crawl's node's clock

    def key(self, name: str) -> str:
        """The full name of one of this crawl's keys (``"u:17"``, ``"held:" + worker``...)."""
        return self.prefix + name

    # -- the frontier --------------------------------------------------------------------

    @_translated
    async def add_urls(self, requests: Iterable[Request | str], batch: int = ADD_BATCH) -> int:
        """Add the requests (a ``str`` is ``Request(url)``) whose URL is not in the
        frontier yet (added by any worker): the first request for a URL wins.  Once the
        frontier holds ``max_urls`` URLs (ever added), the rest are dropped (and the
        iterable is not read further).  Returns how many were added.  Raises ValueError
        for a request whose ``data`` is not a JSON object.  Each batch is atomic; if
        cancelled, the batches sent so far are added, possibly the one in flight too."""
        added = 0
        for chunk in _batches(requests, batch):
            args = [arg for request in chunk for arg in encode_request(request)]
            new, full = await self._run("add_urls", str(self.max_urls), *args)
            added += int(new)
            if int(full):
                break
        return added

    @_translated
    async def known(self, urls: Iterable[str]) -> set[str]:
        """The subset of ``urls`` in the frontier, in any state.  Read in batches of
        READ_BATCH, each one consistent; cancelled half-way: nothing is returned."""
        found: set[str] = set()
        for chunk in _batches(urls, READ_BATCH):
            ids = await self.client.hmget(self.key("ids"), chunk)
            found.update(url for url, job_id in zip(chunk, ids, strict=True) if job_id is not None)
        return found

    @_translated
    async def recover(self) -> int:
        """Put every expired lease, whoever held it, back to pending without charging
        the interrupted attempt (what SQLite's recover does after a kill); returns how
        many.  Live leases (still renewed) are not touched.  Run at a worker's start:
        an expired lease is a dead worker's, and its URL goes back in its place in line
        rather than waiting for a takeover (which would count the attempt).  Atomic; if
        cancelled, it may or may not have happened."""
        return int(await self._run("recover"))

    @_translated
    async def requeue_due(self) -> int:
        """Done URLs whose recrawl time has come (server time) back to pending, ready
        now, attempts reset, their items kept; returns how many.  One script per
        READ_BATCH URLs, each atomic; cancelled half-way: those batches are done."""
        moved = 0
        while (n := int(await self._run("requeue_due", str(READ_BATCH)))) > 0:
            moved += n
        return moved

    @_translated
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
            reply = await self._run(
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
                    await self.link.call(lambda: self._run("release_held", self.worker, token), wait=False)
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
            data=decode_data(self.key(f"u:{job_id}"), data),
            parent=parent,
        )

    @_translated
    async def next_ready_in(self) -> float | None:
        """Seconds until something may be claimable: 0 if a pending URL is ready,
        else the earlier of the next retry time and the earliest lease expiry (a
        lease still renewed moves on; the engine re-asks).  None only when nothing is
        pending or in progress anywhere: the crawl is over for every worker."""
        reply = await self._run("next_ready_in")
        return None if reply is None else float(reply)

    async def complete(
        self,
        job: Job,
        items: Sequence[dict[str, Any]],
        links: Sequence[Request],
        status: int | None,
        elapsed_s: float,
        recrawl_after_s: float = 0.0,
    ) -> bool:
        """In one script, if the lease is still held by ``job.token``: the job done,
        its ``items`` stored (in push order) in place of the URL's earlier ones, an
        unchanged one keeping its fetch time and run (see the store contract), the URL
        due again in ``recrawl_after_s`` (> 0), and its ``links`` added as by
        :meth:`add_urls` (new URLs only, within ``max_urls``).  False, and nothing
        written, if the job is not held any more: another worker took the lease over,
        it was released, or it was completed already (a second call returns False; the
        client's own retry of this call returns True).  Raises ValueError, writing
        nothing, if an item or a link's data is not JSON.  If cancelled, it may or may
        not have happened (all of it or none); either way the lease is no longer
        renewed, so a job not completed is taken over once its lease expires.

        While Redis is away the outcome is buffered and True returned; once Redis is
        back it is written (after the lease was renewed), and if the lease was taken
        over meanwhile nothing is written (logged, counted in ``leases_lost``): a URL
        is never completed twice."""
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
            str(self.run_id or 0),
            *link_args,
        ]

        async def write() -> int:
            done = int(await self._run("complete", *args))
            if done == 0:
                self.leases_lost += 1
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
            moved = int(await self._run("finish", *args, repr(delay_s)))
            if not moved:
                self.leases_lost += 1
                log.info(
                    "%s: %s not recorded: the lease was lost (taken over by another worker)", short_url(job.url), mode
                )
            return moved

        await self._outcome(job, write)

    async def renew_leases(self) -> set[int]:
        """Extend every lease this store holds to ``lease_s`` from now, and mark this
        worker alive.  Returns the ids that were no longer held (taken over after
        expiring); they are forgotten.  Does not wait for a Redis that is away
        (StoreError at once).  Cancelled half-way: renewed or not."""
        return await self.link.call(lambda: self._renew([]), wait=False)

    async def _renew(self, extra: list[tuple[int, str]]) -> set[int]:
        """The renewal of :meth:`renew_leases`, also of the ``extra`` (id, token) leases
        (those of outcomes not written yet, which are no longer in ``_held``)."""
        held = dict(self._held)
        args: list[str] = []
        for job_id, token in [*held.items(), *extra]:
            args += [str(job_id), token]
        reply = await self._run("renew", self.worker, repr(self.lease_s), repr(self._forget_s), *args)
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
        released = int(await self.link.call(lambda: self._run("release_held", self.worker, ""), wait=False))
        self._held.clear()
        return released

    # -- reading -------------------------------------------------------------------------

    @_translated
    async def counts(self) -> dict[str, int]:
        """URLs per state, one consistent snapshot of the whole crawl (all workers)."""
        return dict(zip(STATES, map(int, await self._run("counts")), strict=True))

    @_translated
    async def failures_by_reason(self) -> dict[str, int]:
        """Failed URLs per kind of reason (the text before ':'), most frequent first."""
        kinds = await self.client.hgetall(self.key("fail_kinds"))
        return dict(sorted(((k, int(n)) for k, n in kinds.items() if int(n)), key=lambda kv: -kv[1]))

    @_translated
    async def in_progress_urls(self) -> set[str]:
        """The URLs whose lease **this store** holds (not other workers'): the engine
        compares them with its own in-flight jobs."""
        return set(await self._run("held_urls", self.worker))

    async def stream_items(
        self,
        *,
        label: str | None = None,
        run: int | None = None,
        changed_since: float | None = None,
        batch: int = READ_BATCH,
    ) -> AsyncIterator[list[StoredItem]]:
        """The stored items in crawl order (URL id, then push order), filtered as the
        store contract says, in lists of at most ``batch``.  One script call reads the
        items of ``batch // 10`` URL ids (a page pushes about ten; each call's reply is
        held alone), so memory is bounded by the pages of one call, however big the
        crawl.  Items of the layout before recrawls have their URL's finish time and no
        run."""
        step = max(1, batch // 10)
        want = "" if label is None else "=" + label
        last = int(await self.link.call(lambda: self.client.get(self.key("seq"))) or 0)
        for first in range(1, last + 1, step):
            args = [str(first), str(min(last, first + step - 1)), want]
            reply = await self.link.call(lambda a=args: self._run("item_batch", *a))
            found = [
                item
                for item in stored_items(self.key("items"), reply)
                if (run is None or item.run == run) and (changed_since is None or item.fetched_at >= changed_since)
            ]
            for start in range(0, len(found), batch):
                yield found[start : start + batch]

    async def items(self) -> list[dict[str, Any]]:
        """Every stored item's data, in crawl order (all in memory: see :meth:`stream_items`)."""
        return [item.data async for batch in self.stream_items() for item in batch]

    async def run_record(self, run: int | None = None) -> RunRecord | None:
        """Run ``run`` of this crawl (default: the last any worker started), with its
        samples; None if there is none.  Redis keeps no per-page finish times per run:
        ``page_times`` is [] and ``report`` reads throughput from the samples."""

        async def read() -> RunRecord | None:
            number = run if run is not None else int(await self.client.get(self.key("run_seq")) or 0)
            raw = await self.client.hget(self.key("runs"), str(number)) if number else None
            if raw is None:
                return None
            record = json.loads(raw)
            samples = [json.loads(x) for x in await self.client.lrange(self.key(f"mem:{number}"), 0, -1)]
            tabs = [json.loads(x) for x in await self.client.lrange(self.key(f"tabs:{number}"), 0, -1)]
            started = record.get("started_at") or (samples[0]["t"] if samples else 0.0)
            return RunRecord(
                run_id=number,
                started_at=started,
                finished_at=record.get("finished_at"),
                finish_reason=record.get("finish_reason"),
                summary=record.get("summary"),
                samples=sorted(samples, key=lambda x: x["t"]),
                tabs=sorted(tabs, key=lambda x: x["t"]),
                page_times=[],
            )

        return await self.link.call(read)

    @_translated
    async def url_state(self, url: str) -> dict[str, Any]:
        """One URL's record; {} if unknown.  The contract's keys, typed as SQLite's:
        ``state`` str, ``attempts``, ``depth``, ``done_count`` int, ``status`` int or
        None, ``label``, ``parent``, ``last_error`` str or None, ``data`` dict.  Then
        the lease's bookkeeping: ``url``, ``token``, ``worker``, ``done_by``,
        ``done_token``, ``done_call``, ``taken_from`` str; ``ready``, ``lease_until``,
        ``started_at``, ``finished_at``, ``elapsed_s``, ``taken_at`` float (server
        time), ``takeovers`` int; each only when set.  Two reads (the id, then the
        record); cancelled half-way: nothing is returned."""
        job_id = await self.client.hget(self.key("ids"), url)
        if job_id is None:
            return {}
        return typed_record(self.key(f"u:{job_id}"), await self.client.hgetall(self.key(f"u:{job_id}")))

    @_translated
    async def input_position(self, key: str) -> int:
        """Entries of the input ``key`` fed into the frontier so far (0 if none)."""
        return int(await self.client.get(self.key(f"input:{key}")) or 0)

    @_translated
    async def save_input_position(self, key: str, position: int) -> None:
        """Record ``position`` for input ``key`` if it is more than the recorded one
        (workers feeding the same input agree).  Atomic."""
        await self._scripts["save_input_position"](keys=[self.key(f"input:{key}")], args=[str(position)])

    @_translated
    async def retry_failed(self, prefix: str | None = None) -> int:
        """Failed URLs (all, or those whose reason starts with ``prefix``) back to
        pending, ready now, attempts reset; returns how many.  One script (atomic)."""
        return int(await self._run("retry_failed", prefix or ""))

    @_translated
    async def reset(self) -> None:
        """Delete every key of this crawl (``--fresh``).  Not atomic: do it while no
        worker is crawling.  Cancelled half-way: some keys are deleted."""
        pattern = _glob_escape(self.prefix) + "*"
        batch: list[str] = []
        async for key in self.client.scan_iter(match=pattern, count=READ_BATCH):  # a cluster: the crawl's node
            batch.append(key)
            if len(batch) >= READ_BATCH:
                await self.client.unlink(batch)
                batch = []
        if batch:
            await self.client.unlink(batch)
        self._held.clear()

    # -- run records ---------------------------------------------------------------------

    @_translated
    async def start_run(self) -> int:
        self.run_id = int(await self.client.incr(self.key("run_seq")))
        self._run_started = await self.server_time()
        record = {"worker": self.worker, "started_at": self._run_started}
        await self.client.hset(self.key("runs"), {str(self.run_id): json.dumps(record)})
        return self.run_id

    @_translated
    async def finish_run(self, reason: str, summary: dict[str, Any]) -> None:
        record = {
            "worker": self.worker,
            "started_at": self._run_started,
            "finished_at": await self.server_time(),
            "finish_reason": reason,
            "summary": summary,
        }
        await self.client.hset(self.key("runs"), {str(self.run_id): json.dumps(record, default=str)})

    async def add_memory_sample(self, sample: dict[str, Any]) -> None:
        """Store a memory sample; dropped while Redis is away (a gap in the curve)."""
        await self._push_capped(f"mem:{self.run_id}", sample)

    async def add_tab_sample(self, sample: dict[str, Any]) -> None:
        """Store a tab sample; dropped while Redis is away."""
        await self._push_capped(f"tabs:{self.run_id}", sample)

    async def _push_capped(self, name: str, sample: dict[str, Any]) -> None:
        args = [str(MAX_SAMPLES), json.dumps(sample, separators=(",", ":"))]
        try:
            await self.link.call(lambda: self._scripts["push_capped"](keys=[self.key(name)], args=args), wait=False)
        except RedisAway:
            pass

    # -- the lease keeper ----------------------------------------------------------------

    async def keep_leases(self) -> None:
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
                    self.leases_lost += len(lost)
                    log.warning("%s: %d leases were taken over by other workers: %s", self.worker, len(lost), lost)
            await trio.sleep(interval_s)


def _batches(iterable: Iterable[Any], size: int) -> Iterator[list[Any]]:
    iterator = iter(iterable)
    while chunk := list(itertools.islice(iterator, size)):
        yield chunk


def _glob_escape(text: str) -> str:
    return "".join("\\" + c if c in "*?[]\\" else c for c in text)


@asynccontextmanager
async def open_redis_store(cfg: Config, *, renew: bool = True) -> AsyncIterator[RedisStore]:
    """Connect to ``[store] url`` and yield the store of crawl :func:`crawl_name`, with a task renewing its leases (``renew=False``: none, for tests).

    Owns the client's connections and the renewal task.  On exit, also when
    cancelled, the renewal stops and every lease still held goes back to pending
    (bounded by CLEANUP_TIMEOUT_S; if Redis is away then, the leases expire on their
    own after ``lease_s``).  Raises ConfigError when the url is missing or Redis
    cannot be reached at the start."""
    section = cfg.store
    where = f"{cfg.source}: [store]"
    if not section.url:
        raise ConfigError(f'{where} url: backend = "redis" needs url = "redis://host:port/db"')
    try:
        # With cluster = true, url is one startup node; the client finds the others.
        kind = coredis.RedisCluster if section.cluster else coredis.Redis
        client: coredis.Redis[str] = kind.from_url(
            section.url,
            decode_responses=True,
            connect_timeout=CONNECT_TIMEOUT_S,
            stream_timeout=COMMAND_TIMEOUT_S,
        )
    except (ValueError, coredis.exceptions.RedisError) as exc:
        raise ConfigError(f"{where} url: {section.url!r}: {exc}") from None
    crawl = crawl_name(cfg)
    store = RedisStore(
        client,
        crawl,
        lease_s=section.lease_s,
        max_attempts=cfg.retry.max_attempts,
        max_urls=cfg.crawl.max_pages,
        where=f"Redis store {section.url} ({key_prefix(crawl)})",
        outage_s=section.outage_s,
    )
    # coredis runs its connections in an anyio task group, which wraps an exception of
    # the body in an ExceptionGroup: callers catch ConfigError, not a group of it.
    with cdp.unwrapped_exception_groups():
        async with client:
            try:
                with trio.fail_after(CONNECT_TIMEOUT_S):
                    await store.connect()
            except (trio.TooSlowError, StoreError) as exc:
                raise ConfigError(f"{where} url: cannot reach Redis at {section.url}: {exc or 'timed out'}") from None
            log.info(
                "redis store %s at %s: worker %s, lease %.1f s", store.prefix, section.url, store.worker, store.lease_s
            )
            async with cdp.open_service_nursery() as nursery:
                nursery.start_soon(store.link.run)
                if renew:
                    nursery.start_soon(store.keep_leases)
                try:
                    yield store
                finally:
                    nursery.cancel_scope.cancel()
                    with trio.move_on_after(CLEANUP_TIMEOUT_S, shield=True):
                        try:
                            released = await store.release_all()
                        except StoreError as exc:
                            log.info("%s: could not give back its leases (they expire): %s", store.worker, exc)
                        else:
                            if released:
                                log.info("%s: %d leases given back", store.worker, released)
