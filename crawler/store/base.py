"""What a crawl's store is: the contract every backend keeps, and the types it speaks.

A store holds a crawl's frontier (every URL, with its state and the request fields its
handler sees), the items its jobs pushed, its runs and its input positions.  Two
backends keep the same :class:`Store` contract: :class:`~crawler.store.sqlite.SqliteStore`
(the embedded default, one process per database) and
:class:`~crawler.store.redis.store.RedisStore` (many workers on one Redis or Redis Cluster).
One contract test suite (``tests/crawler/store/test_contract.py``) runs against each.
:func:`crawler.store.open_store` opens the one a config names.

States of a URL::

    pending ──claim──► in_progress ──complete──► done (with its items and links)
       ▲                  │  ├──retry_later──► pending (attempt counted, ready later)
       ├──release/recover─┘  └──fail─────────► failed (reason kept)
       └──requeue_due── done, once its recrawl time has come (``[crawl] recrawl_after_s``)

Items are kept per URL as the latest fetch pushed them, each with the time of the fetch
that stored its content and the run that fetched it.  A recrawl compares each new item's
content hash (:func:`item_hash`) with the URL's stored items: an item whose content is
unchanged keeps its earlier fetch time (it is not stored again), a new or changed one
gets this fetch's time.  So ``stream_items(changed_since=T)`` is exactly what changed
since T.
"""

from __future__ import annotations

import hashlib
import json
import random
from collections.abc import AsyncIterator, Collection, Iterable, Sequence
from typing import Any, Protocol

import attrs

from crawler.config import Config, OutputSection, RetrySection, StoreSection
from crawler.policy.ratelimit import Pace
from crawler.request import Request

CLAIM_SCAN = 32  # ready URLs a claim looks through for one of a host not avoided (fairness); each costs Redis one HGET

PENDING, IN_PROGRESS, DONE, FAILED = "pending", "in_progress", "done", "failed"
STATES = (PENDING, IN_PROGRESS, DONE, FAILED)


@attrs.frozen
class StoreSettings:
    """What opening a store needs of a crawl's configuration, and nothing more: the
    ``[store]`` section and the few settings of other sections that a store keeps."""

    store: StoreSection = StoreSection()
    db: str = OutputSection().db  # [output] db: the SQLite file
    max_urls: int = 0  # [crawl] max_pages: the frontier's cap (0: none)
    max_attempts: int = RetrySection().max_attempts  # [retry]: a Redis lease taken over this often fails its URL
    site: str = ""  # [site] name: part of a Redis crawl's default name
    source: str = "<config>"  # the config file: named in errors, part of a Redis crawl's default name

    @classmethod
    def of(cls, config: Config) -> StoreSettings:
        return cls(
            store=config.store,
            db=config.output.db,
            max_urls=config.crawl.max_pages,
            max_attempts=config.retry.max_attempts,
            site=config.site.name,
            source=config.source,
        )


@attrs.frozen
class Job:
    """One attempt at one URL, as claimed from the store, with the URL's request fields."""

    id: int
    url: str
    attempt: int  # 1 for the first attempt
    token: str = ""  # the Redis backend's lease token
    label: str | None = None
    depth: int = 0
    data: dict[str, Any] = attrs.field(factory=dict, eq=False, hash=False)
    parent: str | None = None

    @property
    def request(self) -> Request:
        return Request(self.url, self.label, self.depth, self.data, self.parent)


@attrs.frozen
class StoredItem:
    """One stored item, as :meth:`Store.stream_items` yields it."""

    url: str  # the page's URL
    label: str | None  # the URL's label (its route); None: the default route
    seq: int  # push order within the page's latest fetch
    data: dict[str, Any]  # the item, as the handler pushed it
    fetched_at: float  # unix time of the fetch that stored this content (an unchanged item keeps its first)
    run: int | None  # the run (``start_run``) whose fetch stored it; None for items older than recrawls


@attrs.frozen
class RunRecord:
    """One run of a crawl, as ``report`` reads it (:meth:`Store.run_record`)."""

    run_id: int
    started_at: float
    finished_at: float | None
    finish_reason: str | None
    summary: dict[str, Any] | None
    samples: list[dict[str, Any]]  # memory samples, in time order
    tabs: list[dict[str, Any]]  # tab samples, in time order
    page_times: list[float]  # finish times of the pages this run completed, sorted; [] if the store keeps none

    @property
    def end(self) -> float:
        candidates = [self.finished_at or 0.0, *(s["t"] for s in self.samples[-1:]), *self.page_times[-1:]]
        return max(self.started_at, *candidates)


def item_hash(item: dict[str, Any]) -> str:
    """The content hash of an item: SHA-256 of its canonical JSON (keys sorted), so the
    same content pushed again, in any key order, hashes the same."""
    text = json.dumps(item, sort_keys=True, ensure_ascii=False, separators=(",", ":"), default=str)
    return hashlib.sha256(text.encode()).hexdigest()


def carry_over(
    old: Iterable[tuple[str, float, int | None]], new_hashes: Sequence[str], now: float, run: int | None
) -> list[tuple[float, int | None]]:
    """The (fetched_at, run) of each new item of a URL: an item whose hash is among the
    URL's stored items (``old``: (hash, fetched_at, run) each) is unchanged and keeps
    theirs (each old item matches once); a new or changed one gets ``now`` and ``run``."""
    pool: dict[str, list[tuple[float, int | None]]] = {}
    for h, fetched_at, old_run in old:
        pool.setdefault(h, []).append((fetched_at, old_run))
    return [pool[h].pop(0) if pool.get(h) else (now, run) for h in new_hashes]


@attrs.frozen
class SavedState:
    """A session's saved state, as :meth:`SessionStates.load` returns it."""

    state: dict[str, Any] = attrs.field(repr=False)  # Playwright's storage-state JSON: secret, never shown
    saved_at: float  # unix time of the save (a login's, or an import's)


class SessionStates(Protocol):
    """The saved session states of a crawl (``[session] persist``), one per identity
    (``direct``, or a proxy as ``scheme://host:port``), and the login leases that let
    one worker at a time log in for an identity.  Both backends keep it
    (``store.session_states``), and the contract tests run against each.

    - ``load(identity)``: the identity's :class:`SavedState`, None if none.
    - ``save(identity, state, saved_at)``: store it in place of any earlier one.
    - ``delete(identity, saved_at=None)``: delete it; with ``saved_at``, only if the
      state saved is still that one (a retired session's state, not a newer login's).
      Returns whether one was deleted.
    - ``identities()``: the identities with a saved state, sorted.
    - ``clear()``: delete every saved state; returns how many.
    - ``acquire_lease(identity, ttl_s)``: the identity's login lease for ``ttl_s``
      seconds: a token, or None while another holder's lease is live.
    - ``renew_lease(identity, token, ttl_s)``: extend it; False if it is not held
      under ``token`` any more (it expired and was taken).
    - ``release_lease(identity, token)``: give it up, if still held under ``token``.

    Each method is one atomic step.  A state is a secret: nothing here logs it.
    """

    async def load(self, identity: str) -> SavedState | None: ...
    async def save(self, identity: str, state: dict[str, Any], saved_at: float) -> None: ...
    async def delete(self, identity: str, saved_at: float | None = None) -> bool: ...
    async def identities(self) -> list[str]: ...
    async def clear(self) -> int: ...
    async def acquire_lease(self, identity: str, ttl_s: float) -> str | None: ...
    async def renew_lease(self, identity: str, token: str, ttl_s: float) -> bool: ...
    async def release_lease(self, identity: str, token: str) -> None: ...


class Store(Protocol):
    """What the engine needs of a store: :class:`~crawler.store.sqlite.SqliteStore` and
    :class:`~crawler.store.redis.store.RedisStore`.  Every method means the same on both backends, and one contract
    test suite (``tests/crawler/store/test_contract.py``) runs against each.

    Every method is one atomic step.  A store is one *worker's* view of a crawl: with
    SQLite one process owns the database, so "this worker" is the whole crawl.

    - ``add_urls(requests)``: add the requests (a ``str`` is ``Request(url)``) whose URL
      is not in the frontier yet; returns how many were new.  The frontier never grows
      past ``max_urls`` (the store's constructor argument; 0: no cap); requests beyond
      it are dropped.
    - ``known(urls)``: the subset of ``urls`` already in the frontier (any state).
    - ``recover()``: URLs left in progress by a worker that is gone (SQLite: every row
      in progress, since the process that held them is gone; Redis: every expired
      lease) go back to pending *without* charging the interrupted attempt; returns
      how many.
    - ``claim(avoid_hosts=())``: the next ready URL as a :class:`Job`, now in progress;
      None if none is ready now.  Fairness: a URL whose host is in ``avoid_hosts`` (the
      engine passes the hosts its jobs are on) is passed over for the first one of
      another host among the first CLAIM_SCAN ready; only if all of those are avoided
      is the first ready one taken.  So the hosts interleave, and a slow or paused
      host does not take every tab while other hosts' URLs wait.
    - ``claim_many(avoid_hosts, n)``: up to ``n`` jobs, as ``n`` claims in a row would
      give them, each avoiding the hosts of the ones before it too; [] if none is
      ready.  One round trip where the backend allows (SQLite: one transaction), so
      idle workers are served together rather than one claim at a time.
    - ``next_ready_in()``: seconds until a claim may succeed (0: now), None when
      nothing is pending or in progress: the crawl is over.
    - ``complete(job, items, links, status, elapsed_s, recrawl_after_s=0)``: in one
      transaction: the job done, its ``items`` (dicts, in push order) stored in place of
      the URL's earlier ones, and its ``links`` (Requests) added as by ``add_urls``.
      Each item is stored with the fetch time and the run (``start_run``'s number) of
      the fetch that stored its content: an item whose :func:`item_hash` is among the
      URL's earlier items is unchanged and keeps theirs (:func:`carry_over`).  The
      URL's record counts them (``changed_items``, ``unchanged_items``).  With
      ``recrawl_after_s`` > 0 the URL is due again that long after now (see
      ``requeue_due``).  Returns False and writes nothing when the job is not held in
      progress any more (taken over, already completed, released).
    - ``requeue_due()``: done URLs whose recrawl time has come go back to pending,
      ready now, attempts reset, their items kept until the recrawl completes; returns
      how many.  The engine calls it when a run starts: a run crawls what is due then
      and ends, so a monitor is a crawl run again on a schedule.
    - ``retry_later``, ``fail``, ``release``: the job's other outcomes; whatever the job
      pushed or enqueued is not stored.  ``release`` does not charge the attempt.
    - ``counts()``: URLs per state of the whole crawl; ``failures_by_reason()``.
    - ``in_progress_urls()``: the URLs *this store* holds in progress.
    - ``url_state(url)``: one URL's record (``state``, ``attempts``, ``label``,
      ``depth``, ``parent``, ``data``, ``last_error``, ``status``, ``done_count``), {}
      if unknown.
    - ``stream_items(label=, run=, changed_since=, batch=)``: an async iterator of lists
      (about ``batch`` each) of :class:`StoredItem`, every stored item of the whole
      crawl in the order their URLs entered the frontier, then push order; only those
      of URLs labelled ``label``, stored by run ``run``, or fetched at or after
      ``changed_since`` (unix time) when given.  Memory is bounded by the batch.
    - ``items()``: every stored item's data, as a list (for small crawls and tests).
    - ``run_record(run=None)``: a :class:`RunRecord` of run ``run`` (default: the
      last), None if there is none.
    - ``input_position(key)``: how many entries of the input ``key`` (see
      :func:`crawler.sources.inputs.input_key`) were fed into the frontier (0 if none);
      ``save_input_position(key, n)`` records ``n`` if it is more (a position never
      goes back, so workers feeding the same input concurrently agree).  The feeder
      saves it *after* adding the URLs it covers: a crash in between adds them again,
      which the frontier drops as known.
    - ``retry_failed(prefix)``: failed URLs (all, or those whose reason starts with
      ``prefix``) back to pending, ready now, with their attempts reset; returns how
      many.
    - ``host_pace(wait_ms, rng=)``: the :class:`~crawler.policy.ratelimit.Pace` that spaces
      request starts to each host for every worker of the store: SQLite's is in
      process (one process crawls); Redis's is shared by every worker on that Redis.
    - ``session_states``: the crawl's saved session states (:class:`SessionStates`);
      ``reset`` keeps them (a login is not crawl progress; ``crawler session clear``
      wipes them).
    """

    session_states: SessionStates

    async def add_urls(self, requests: Iterable[Request | str]) -> int: ...
    async def known(self, urls: Iterable[str]) -> set[str]: ...
    async def recover(self) -> int: ...
    async def claim(self, avoid_hosts: Collection[str] = ()) -> Job | None: ...
    async def claim_many(self, avoid_hosts: Collection[str], n: int) -> list[Job]: ...
    async def next_ready_in(self) -> float | None: ...
    async def complete(
        self,
        job: Job,
        items: Sequence[dict[str, Any]],
        links: Sequence[Request],
        status: int | None,
        elapsed_s: float,
        recrawl_after_s: float = 0.0,
    ) -> bool: ...
    async def requeue_due(self) -> int: ...
    async def retry_later(self, job: Job, reason: str, delay_s: float, status: int | None = None) -> None: ...
    async def fail(self, job: Job, reason: str, status: int | None = None) -> None: ...
    async def release(self, job: Job) -> None: ...
    async def counts(self) -> dict[str, int]: ...
    async def failures_by_reason(self) -> dict[str, int]: ...
    async def in_progress_urls(self) -> set[str]: ...
    async def url_state(self, url: str) -> dict[str, Any]: ...
    def stream_items(
        self,
        *,
        label: str | None = None,
        run: int | None = None,
        changed_since: float | None = None,
        batch: int = 1000,
    ) -> AsyncIterator[list[StoredItem]]: ...
    async def items(self) -> list[dict[str, Any]]: ...
    async def run_record(self, run: int | None = None) -> RunRecord | None: ...
    async def input_position(self, key: str) -> int: ...
    async def save_input_position(self, key: str, position: int) -> None: ...
    async def retry_failed(self, prefix: str | None = None) -> int: ...
    async def reset(self) -> None: ...
    async def start_run(self) -> int: ...
    async def finish_run(self, reason: str, summary: dict[str, Any]) -> None: ...
    async def add_memory_sample(self, sample: dict[str, Any]) -> None: ...
    async def add_tab_sample(self, sample: dict[str, Any]) -> None: ...
    def host_pace(self, wait_ms: tuple[int, int], *, rng: random.Random | None = None) -> Pace: ...


def reason_kind(reason: str | None) -> str:
    """The kind of a failure reason ("timeout", "http_404", ...), without its detail."""
    return (reason or "unknown").split(":", 1)[0]
