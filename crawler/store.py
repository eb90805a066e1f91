"""What a crawl's store is: the contract every backend keeps, and the types it speaks.

A store holds a crawl's frontier (every URL, with its state and the request fields its
handler sees), the items its jobs pushed, its runs and its input positions.  Two
backends keep the same :class:`Store` contract: :class:`~crawler.sqlite_store.SqliteStore`
(the embedded default, one process per database) and
:class:`~crawler.redis_store.RedisStore` (many workers on one Redis or Redis Cluster).
One contract test suite (``tests/crawler/test_store_contract.py``) runs against each.
:func:`open_store` opens the one a config names.

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

import random
from collections.abc import AsyncIterator, Collection, Iterable, Iterator, Sequence
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any, Protocol

import attrs

from .config import Config, ConfigError
from .ratelimit import Pace

CLAIM_SCAN = 32  # ready URLs a claim looks through for one of a host not avoided (fairness); each costs Redis one HGET

PENDING, IN_PROGRESS, DONE, FAILED = "pending", "in_progress", "done", "failed"
STATES = (PENDING, IN_PROGRESS, DONE, FAILED)


class StoreError(Exception):
    """The store cannot be read or written any more (disk full, I/O error, the server
    gone): fatal for the crawl.  The message is one line naming the database."""


@attrs.frozen
class Request:
    """A URL to crawl and what its handler is told about it.

    ``url`` is normalised by whoever makes the request (``crawler.links``); the store
    compares URLs as given.  ``data`` must be JSON-serialisable; ``parent`` is the URL
    of the page that enqueued it (None for ``[input]`` URLs)."""

    url: str
    label: str | None = None
    depth: int = 0
    data: dict[str, Any] = attrs.field(factory=dict, eq=False, hash=False)
    parent: str | None = None


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


class Store(Protocol):
    """What the engine needs of a store: :class:`SqliteStore` here, ``RedisStore`` in
    ``redis_store``.  Every method means the same on both backends, and one contract
    test suite (``tests/crawler/test_store_contract.py``) runs against each.

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
    - ``next_ready_in()``: seconds until a claim may succeed (0: now), None when
      nothing is pending or in progress: the crawl is over.
    - ``complete(job, items, links, status, elapsed_s)``: in one transaction: the job
      done, its ``items`` (dicts, in push order) stored, and its ``links`` (Requests)
      added as by ``add_urls``.  Returns False and writes nothing when the job is not
      held in progress any more (taken over, already completed, released).
    - ``retry_later``, ``fail``, ``release``: the job's other outcomes; whatever the job
      pushed or enqueued is not stored.  ``release`` does not charge the attempt.
    - ``counts()``: URLs per state of the whole crawl; ``failures_by_reason()``.
    - ``in_progress_urls()``: the URLs *this store* holds in progress.
    - ``url_state(url)``: one URL's record (``state``, ``attempts``, ``label``,
      ``depth``, ``parent``, ``data``, ``last_error``, ``status``, ``done_count``), {}
      if unknown.
    - ``items()``: every stored item of the whole crawl, in the order their URLs
      entered the frontier, then push order.
    - ``input_position(key)``: how many entries of the input ``key`` (see
      :func:`crawler.inputs.input_key`) were fed into the frontier (0 if none);
      ``save_input_position(key, n)`` records ``n`` if it is more (a position never
      goes back, so workers feeding the same input concurrently agree).  The feeder
      saves it *after* adding the URLs it covers: a crash in between adds them again,
      which the frontier drops as known.
    - ``retry_failed(prefix)``: failed URLs (all, or those whose reason starts with
      ``prefix``) back to pending, ready now, with their attempts reset; returns how
      many.
    - ``host_pace(wait_ms, rng=)``: the :class:`~crawler.ratelimit.Pace` that spaces
      request starts to each host for every worker of the store: SQLite's is in
      process (one process crawls); Redis's is shared by every worker on that Redis.
    """

    async def add_urls(self, requests: Iterable[Request | str]) -> int: ...
    async def known(self, urls: Iterable[str]) -> set[str]: ...
    async def recover(self) -> int: ...
    async def claim(self, avoid_hosts: Collection[str] = ()) -> Job | None: ...
    async def next_ready_in(self) -> float | None: ...
    async def complete(
        self,
        job: Job,
        items: Sequence[dict[str, Any]],
        links: Sequence[Request],
        status: int | None,
        elapsed_s: float,
    ) -> bool: ...
    async def retry_later(self, job: Job, reason: str, delay_s: float, status: int | None = None) -> None: ...
    async def fail(self, job: Job, reason: str, status: int | None = None) -> None: ...
    async def release(self, job: Job) -> None: ...
    async def counts(self) -> dict[str, int]: ...
    async def failures_by_reason(self) -> dict[str, int]: ...
    async def in_progress_urls(self) -> set[str]: ...
    async def url_state(self, url: str) -> dict[str, Any]: ...
    async def items(self) -> Iterator[dict[str, Any]]: ...
    async def input_position(self, key: str) -> int: ...
    async def save_input_position(self, key: str, position: int) -> None: ...
    async def retry_failed(self, prefix: str | None = None) -> int: ...
    async def reset(self) -> None: ...
    async def start_run(self) -> int: ...
    async def finish_run(self, reason: str, summary: dict[str, Any]) -> None: ...
    async def add_memory_sample(self, sample: dict[str, Any]) -> None: ...
    async def add_tab_sample(self, sample: dict[str, Any]) -> None: ...
    def host_pace(self, wait_ms: tuple[int, int], *, rng: random.Random | None = None) -> Pace: ...


@asynccontextmanager
async def open_store(cfg: Config, *, exclusive: bool = True) -> AsyncIterator[Store]:
    """The store a config names (SQLite at ``[output] db`` unless ``[store] backend =
    "redis"``), capped at ``[crawl] max_pages``, closed on exit.  SQLite: held by this
    process only (``exclusive=False``: no lock, for readers); ConfigError, one line
    naming the holder, if another process holds it."""
    if cfg.store.backend == "redis":
        from .redis_store import open_redis_store

        async with open_redis_store(cfg) as redis_store:
            yield redis_store
        return
    path = Path(cfg.output.db)
    if not path.parent.exists():
        raise ConfigError(f"{cfg.source}: [output] db: folder {str(path.parent)!r} does not exist")
    from .sqlite_store import SqliteStore

    store = await SqliteStore.open(path, max_urls=cfg.crawl.max_pages, exclusive=exclusive)
    try:
        yield store
    finally:
        store.close()


def reason_kind(reason: str | None) -> str:
    """The kind of a failure reason ("timeout", "http_404", ...), without its detail."""
    return (reason or "unknown").split(":", 1)[0]
