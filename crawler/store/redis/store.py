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
``P sessions`` ...     saved session states, login leases (:mod:`~crawler.store.redis.sessions`)
=====================  =========================================================

A stored value this version cannot read (an item that is not a JSON object or
array, a ``data`` that is not a JSON object...) raises
:class:`~crawler.store.redis.layout.RedisLayoutError`, one line naming the key: the crawl
was written by an incompatible version (see :mod:`crawler.store.redis.layout`).

Times are Redis's ``TIME`` (seconds, float), so workers on machines whose clocks
disagree still agree on lease expiries and ready times.

The client is coredis (6.x, built on anyio, runs under trio): ``coredis.Redis``, or
``coredis.RedisCluster`` with ``[store] cluster = true`` (``url`` a startup node; every
script declares its keys, all in the crawl's slot, see :mod:`crawler.store.redis.scripts`).
It retries a command whose connection broke, and so does the store's
:class:`~crawler.store.redis.link.RedisLink` while Redis is away (up to ``[store] outage_s``);
every script is idempotent for that: a retried claim with the same token returns the
same URL, a retried complete (the same call: each call sends a random ``call`` id)
returns True and adds nothing again, while a second ``complete`` call for a job
already completed returns False, as on SQLite.  While Redis is away, the outcomes of
jobs are kept in memory (MAX_UNSENT) and written once it is back, after the leases
were renewed: a lease taken over meanwhile has another token, and its outcome writes
nothing.

Outside the crawl's keys: ``crawler:{pace:<host>}``, the host budget every worker on
this Redis shares (:mod:`crawler.store.redis.pace`).

The store is in parts: this module's :class:`RedisStore` (the frontier, the run
records) and its opener; :mod:`crawler.store.redis.crawl` (the crawl's name, keys and
scripts), :mod:`crawler.store.redis.leases` (this worker's claims, the outcomes of its
jobs, the renewals), :mod:`crawler.store.redis.reader` (counts, URL records, items,
runs).
"""

from __future__ import annotations

import json
import logging
import random
from collections.abc import AsyncIterator, Collection, Iterable, Sequence
from contextlib import asynccontextmanager
from typing import Any

import attrs
import coredis
import coredis.exceptions
import trio

from crawler._trio import open_service_nursery, unwrapped_exception_groups
from crawler.errors import ConfigError, StoreError
from crawler.policy.ratelimit import Pace
from crawler.request import Request
from crawler.store.base import Job, RunRecord, StoredItem, StoreSettings
from crawler.store.redis.crawl import RedisCrawl, crawl_name, key_prefix, new_worker_id, translated
from crawler.store.redis.layout import encode_request
from crawler.store.redis.leases import CLEANUP_TIMEOUT_S, Leases
from crawler.store.redis.link import RedisAway, RedisLink
from crawler.store.redis.pace import RedisPace
from crawler.store.redis.reader import READ_BATCH, RedisReader, batches
from crawler.store.redis.sessions import RedisSessionStates
from crawler.urls import redact_url

log = logging.getLogger(__name__)

REDIS_CONNECT_TIMEOUT_S = 10.0  # bound on reaching Redis when the store opens
COMMAND_TIMEOUT_S = 30.0  # a reply that takes longer breaks the connection (then retried)
ADD_BATCH = 1000  # URLs per add_urls script call
MAX_SAMPLES = 10_000  # memory / tab samples kept per run (a capped list each)


@attrs.frozen
class RedisStoreStatistics:
    up: bool  # Redis answered the last call
    outages: int  # times Redis went away during this run
    unsent: int  # outcomes buffered until Redis is back
    leases_lost: int  # outcomes not written: their lease had been taken over


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
    :mod:`crawler.store.redis.link`).

    The claims and outcomes are its :attr:`leases` (:class:`~crawler.store.redis.leases.Leases`),
    the reads its :attr:`reader` (:class:`~crawler.store.redis.reader.RedisReader`).
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
        self.link = RedisLink(where, outage_s, ping=client.ping, on_back=self._on_back)
        self.redis = RedisCrawl(client, crawl, self.link)
        self.leases = Leases(self.redis, self.worker, lease_s=lease_s, max_attempts=max_attempts, max_urls=max_urls)
        self.reader = RedisReader(self.redis, self.worker)
        self.session_states = RedisSessionStates(self.redis)

    async def connect(self) -> None:
        """Load the scripts and register this worker, once, not waiting for a Redis that
        is away: StoreError (one line) if it cannot be reached."""

        async def connect() -> None:
            await self.load_scripts()
            await self.leases.renew([])

        await self.link.call(connect, wait=False)

    async def _on_back(self) -> None:
        """Redis answers again: see :meth:`crawler.store.redis.leases.Leases.on_back`."""
        await self.leases.on_back()

    @property
    def leases_lost(self) -> int:
        """Outcomes not written: their lease had been taken over."""
        return self.leases.lost

    def statistics(self) -> RedisStoreStatistics:
        """This worker's view of its Redis, now (never blocks)."""
        return RedisStoreStatistics(
            up=self.link.up, outages=self.link.outages, unsent=self.leases.unsent, leases_lost=self.leases.lost
        )

    async def load_scripts(self) -> None:
        """Load the scripts into Redis's script cache up front (else each one's first
        EVALSHA fails with NOSCRIPT and is sent again as EVAL)."""
        await self.redis.load_scripts()

    async def _run(self, script: str, *args: Any) -> Any:
        """One of the crawl's scripts, its keys declared (see :meth:`RedisCrawl.run`)."""
        return await self.redis.run(script, *args)

    async def run_script(self, name: str, keys: Sequence[str], args: Sequence[Any]) -> Any:
        """Run script ``name`` of :data:`crawler.store.redis.scripts.SCRIPTS` once on ``keys``
        with ``args`` (for :class:`crawler.store.redis.pace.RedisPace`), not waiting for a
        Redis that is away: StoreError at once."""
        return await self.link.call(lambda: self.redis.run_on(name, keys, [str(a) for a in args]), wait=False)

    def host_pace(self, wait_ms: tuple[int, int], *, rng: random.Random | None = None) -> Pace:
        """The host pacing shared by every worker on this Redis (see :mod:`crawler.store.redis.pace`)."""
        return RedisPace(self.run_script, wait_ms, rng=rng)

    @translated
    async def server_time(self) -> float:
        """Redis's clock (seconds), the one leases and ready times are in."""
        return await self.redis.server_time()

    def key(self, name: str) -> str:
        """The full name of one of this crawl's keys (``"u:17"``, ``"held:" + worker``...)."""
        return self.redis.key(name)

    # -- the frontier --------------------------------------------------------------------

    @translated
    async def add_urls(self, requests: Iterable[Request | str], batch: int = ADD_BATCH) -> int:
        """Add the requests (a ``str`` is ``Request(url)``) whose URL is not in the
        frontier yet (added by any worker): the first request for a URL wins.  Once the
        frontier holds ``max_urls`` URLs (ever added), the rest are dropped (and the
        iterable is not read further).  Returns how many were added.  Raises ValueError
        for a request whose ``data`` is not a JSON object.  Each batch is atomic; if
        cancelled, the batches sent so far are added, possibly the one in flight too."""
        added = 0
        for chunk in batches(requests, batch):
            args = [arg for request in chunk for arg in encode_request(request)]
            new, full = await self._run("add_urls", str(self.max_urls), *args)
            added += int(new)
            if int(full):
                break
        return added

    @translated
    async def recover(self) -> int:
        """Put every expired lease, whoever held it, back to pending without charging
        the interrupted attempt (what SQLite's recover does after a kill); returns how
        many.  Live leases (still renewed) are not touched.  Run at a worker's start:
        an expired lease is a dead worker's, and its URL goes back in its place in line
        rather than waiting for a takeover (which would count the attempt).  Atomic; if
        cancelled, it may or may not have happened."""
        return int(await self._run("recover"))

    @translated
    async def requeue_due(self) -> int:
        """Done URLs whose recrawl time has come (server time) back to pending, ready
        now, attempts reset, their items kept; returns how many.  One script per
        READ_BATCH URLs, each atomic; cancelled half-way: those batches are done."""
        moved = 0
        while (n := int(await self._run("requeue_due", str(READ_BATCH)))) > 0:
            moved += n
        return moved

    @translated
    async def next_ready_in(self) -> float | None:
        """Seconds until something may be claimable: 0 if a pending URL is ready,
        else the earlier of the next retry time and the earliest lease expiry (a
        lease still renewed moves on; the engine re-asks).  None only when nothing is
        pending or in progress anywhere: the crawl is over for every worker."""
        reply = await self._run("next_ready_in")
        return None if reply is None else float(reply)

    @translated
    async def save_input_position(self, key: str, position: int) -> None:
        """Record ``position`` for input ``key`` if it is more than the recorded one
        (workers feeding the same input agree).  Atomic."""
        await self.redis.run_on("save_input_position", [self.key(f"input:{key}")], [str(position)])

    @translated
    async def retry_failed(self, prefix: str | None = None) -> int:
        """Failed URLs (all, or those whose reason starts with ``prefix``) back to
        pending, ready now, attempts reset; returns how many.  One script (atomic)."""
        return int(await self._run("retry_failed", prefix or ""))

    @translated
    async def reset(self) -> None:
        """Delete every key of this crawl but its saved sessions (``--fresh``).  Not
        atomic: do it while no worker is crawling.  Cancelled half-way: some are deleted."""
        pattern = _glob_escape(self.prefix) + "*"
        kept = (self.key("sessions"), self.key("session_saved"), self.key("login:"))
        batch: list[str] = []
        async for key in self.client.scan_iter(match=pattern, count=READ_BATCH):  # a cluster: the crawl's node
            batch += [] if key.startswith(kept) else [key]
            if len(batch) >= READ_BATCH:
                await self.client.unlink(batch)
                batch = []
        if batch:
            await self.client.unlink(batch)
        self.leases.forget()

    # -- claims and outcomes: as their namesakes of Leases (crawler.store.redis.leases) --

    async def claim(self, avoid_hosts: Collection[str] = ()) -> Job | None:
        return await self.leases.claim(avoid_hosts)

    async def claim_many(self, avoid_hosts: Collection[str], n: int) -> list[Job]:
        return await self.leases.claim_many(avoid_hosts, n)

    async def complete(
        self,
        job: Job,
        items: Sequence[dict[str, Any]],
        links: Sequence[Request],
        status: int | None,
        elapsed_s: float,
        recrawl_after_s: float = 0.0,
    ) -> bool:
        """See :meth:`crawler.store.redis.leases.Leases.complete`; the items are of this run."""
        return await self.leases.complete(job, items, links, status, elapsed_s, recrawl_after_s, run=self.run_id)

    async def retry_later(self, job: Job, reason: str, delay_s: float, status: int | None = None) -> None:
        await self.leases.retry_later(job, reason, delay_s, status)

    async def fail(self, job: Job, reason: str, status: int | None = None) -> None:
        await self.leases.fail(job, reason, status)

    async def release(self, job: Job) -> None:
        await self.leases.release(job)

    async def renew_leases(self) -> set[int]:
        return await self.leases.renew_leases()

    async def release_all(self) -> int:
        return await self.leases.release_all()

    async def keep_leases(self) -> None:
        await self.leases.keep()

    # -- reading: as their namesakes of RedisReader (crawler.store.redis.reader) ---------

    async def known(self, urls: Iterable[str]) -> set[str]:
        return await self.reader.known(urls)

    async def counts(self) -> dict[str, int]:
        return await self.reader.counts()

    async def failures_by_reason(self) -> dict[str, int]:
        return await self.reader.failures_by_reason()

    async def in_progress_urls(self) -> set[str]:
        return await self.reader.in_progress_urls()

    def stream_items(
        self,
        *,
        label: str | None = None,
        run: int | None = None,
        changed_since: float | None = None,
        batch: int = READ_BATCH,
    ) -> AsyncIterator[list[StoredItem]]:
        return self.reader.stream_items(label=label, run=run, changed_since=changed_since, batch=batch)

    async def items(self) -> list[dict[str, Any]]:
        return await self.reader.items()

    async def run_record(self, run: int | None = None) -> RunRecord | None:
        return await self.reader.run_record(run)

    async def url_state(self, url: str) -> dict[str, Any]:
        return await self.reader.url_state(url)

    async def input_position(self, key: str) -> int:
        return await self.reader.input_position(key)

    # -- run records ---------------------------------------------------------------------

    @translated
    async def start_run(self) -> int:
        self.run_id = int(await self.client.incr(self.key("run_seq")))
        self._run_started = await self.server_time()
        record = {"worker": self.worker, "started_at": self._run_started}
        await self.client.hset(self.key("runs"), {str(self.run_id): json.dumps(record)})
        return self.run_id

    @translated
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
            await self.link.call(lambda: self.redis.run_on("push_capped", [self.key(name)], args), wait=False)
        except RedisAway:
            pass


def _glob_escape(text: str) -> str:
    return "".join("\\" + c if c in "*?[]\\" else c for c in text)


@asynccontextmanager
async def open_redis_store(settings: StoreSettings, *, renew: bool = True) -> AsyncIterator[RedisStore]:
    """Connect to ``[store] url`` and yield the store of crawl :func:`crawl_name`, with a task renewing its leases (``renew=False``: none, for tests).

    Owns the client's connections and the renewal task.  On exit, also when
    cancelled, the renewal stops and every lease still held goes back to pending
    (bounded by CLEANUP_TIMEOUT_S; if Redis is away then, the leases expire on their
    own after ``lease_s``).  Raises ConfigError when the url is missing or Redis
    cannot be reached at the start."""
    section = settings.store
    where = f"{settings.source}: [store]"
    if not section.url:
        raise ConfigError(f'{where} url: backend = "redis" needs url = "redis://host:port/db"')
    try:
        # With cluster = true, url is one startup node; the client finds the others.
        kind = coredis.RedisCluster if section.cluster else coredis.Redis
        client: coredis.Redis[str] = kind.from_url(
            section.url,
            decode_responses=True,
            connect_timeout=REDIS_CONNECT_TIMEOUT_S,
            stream_timeout=COMMAND_TIMEOUT_S,
        )
    except (ValueError, coredis.exceptions.RedisError) as exc:
        raise ConfigError(f"{where} url: {redact_url(section.url)!r}: {exc}") from None
    crawl = crawl_name(settings)
    store = RedisStore(
        client,
        crawl,
        lease_s=section.lease_s,
        max_attempts=settings.max_attempts,
        max_urls=settings.max_urls,
        where=f"Redis store {redact_url(section.url)} ({key_prefix(crawl)})",
        outage_s=section.outage_s,
    )
    # coredis runs its connections in an anyio task group, which wraps an exception of
    # the body in an ExceptionGroup: callers catch ConfigError, not a group of it.
    with unwrapped_exception_groups():
        async with client:
            try:
                with trio.fail_after(REDIS_CONNECT_TIMEOUT_S):
                    await store.connect()
            except (trio.TooSlowError, StoreError) as exc:
                # An empty reason says nothing (a TLS handshake to a plain server used to
                # give one): the error's type at least.
                why = str(exc) or ("timed out" if isinstance(exc, trio.TooSlowError) else type(exc).__name__)
                raise ConfigError(f"{where} url: cannot reach Redis at {redact_url(section.url)}: {why}") from None
            shown = redact_url(section.url)
            log.info("redis store %s at %s: worker %s, lease %.1f s", store.prefix, shown, store.worker, store.lease_s)
            async with open_service_nursery() as nursery:
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
