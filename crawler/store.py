"""The frontier and the items, in SQLite (the embedded default).

Every URL is one row in ``frontier`` with a state::

    pending ──claim──► in_progress ──complete──► done
       ▲                  │  ├──retry_later──► pending (attempt counted, next_attempt_at set)
       └──release/recover─┘  └──fail─────────► failed (reason kept)

Each transition is one transaction, and ``complete`` only moves a row that is
``in_progress`` (and writes its item in the same transaction), so a URL is done at
most once whatever crashes when.  A crawl killed with SIGKILL leaves some rows
``in_progress``; :meth:`recover` puts them back to pending at the next start, without
charging the interrupted attempt.

The database uses WAL with ``synchronous=NORMAL``: a committed transaction survives
the process being killed (not a power cut), and commits do not wait for fsync.  Calls
are synchronous and short (well under a millisecond on local disk); the async methods
are the interface the engine shares with the Redis backend.
"""

from __future__ import annotations

import json
import sqlite3
import time
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Protocol

import attrs

SCHEMA = """
CREATE TABLE IF NOT EXISTS frontier (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    url TEXT NOT NULL UNIQUE,
    state TEXT NOT NULL DEFAULT 'pending',
    attempts INTEGER NOT NULL DEFAULT 0,
    next_attempt_at REAL NOT NULL DEFAULT 0,
    last_error TEXT,
    status INTEGER,
    started_at REAL,
    finished_at REAL,
    elapsed_s REAL,
    done_count INTEGER NOT NULL DEFAULT 0
);
CREATE INDEX IF NOT EXISTS frontier_ready ON frontier (state, next_attempt_at, id);
CREATE TABLE IF NOT EXISTS items (
    url TEXT PRIMARY KEY,
    data TEXT NOT NULL,
    extracted_at REAL NOT NULL
);
CREATE TABLE IF NOT EXISTS runs (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    started_at REAL NOT NULL,
    finished_at REAL,
    finish_reason TEXT,
    summary TEXT
);
CREATE TABLE IF NOT EXISTS memory_samples (
    run_id INTEGER NOT NULL,
    t REAL NOT NULL,
    pages_done INTEGER NOT NULL,
    browser_pss INTEGER,
    crawler_pss INTEGER,
    processes INTEGER,
    tabs INTEGER,
    contexts INTEGER
);
CREATE TABLE IF NOT EXISTS tab_samples (
    run_id INTEGER NOT NULL,
    t REAL NOT NULL,
    pages INTEGER NOT NULL,
    js_heap_used INTEGER,
    nodes INTEGER,
    listeners INTEGER,
    documents INTEGER
);
"""

PENDING, IN_PROGRESS, DONE, FAILED = "pending", "in_progress", "done", "failed"
STATES = (PENDING, IN_PROGRESS, DONE, FAILED)


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
    - ``claim()``: the next ready URL as a :class:`Job`, now in progress; None if none
      is ready now.
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
    """

    async def add_urls(self, requests: Iterable[Request | str]) -> int: ...
    async def known(self, urls: Iterable[str]) -> set[str]: ...
    async def recover(self) -> int: ...
    async def claim(self) -> Job | None: ...
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
    async def reset(self) -> None: ...
    async def start_run(self) -> int: ...
    async def finish_run(self, reason: str, summary: dict[str, Any]) -> None: ...
    async def add_memory_sample(self, sample: dict[str, Any]) -> None: ...
    async def add_tab_sample(self, sample: dict[str, Any]) -> None: ...


class SqliteStore:
    def __init__(self, path: str | Path):
        self.path = str(path)
        self._db = sqlite3.connect(self.path, isolation_level=None, check_same_thread=False)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA synchronous=NORMAL")
        self._db.execute("PRAGMA busy_timeout=5000")
        self._db.executescript(SCHEMA)
        self.run_id: int | None = None

    def close(self) -> None:
        self._db.close()

    @contextmanager
    def _transaction(self) -> Iterator[sqlite3.Connection]:
        self._db.execute("BEGIN IMMEDIATE")
        try:
            yield self._db
        except BaseException:
            self._db.execute("ROLLBACK")
            raise
        self._db.execute("COMMIT")

    def _execute(self, sql: str, args: Any = ()) -> sqlite3.Cursor:
        """One statement in its own transaction."""
        with self._transaction() as db:
            return db.execute(sql, args)

    # -- the frontier --------------------------------------------------------------------

    async def add_urls(self, urls: Iterable[str], batch: int = 1000) -> int:
        """Add URLs not seen before (the same URL twice is one row). Returns how many were new."""
        added = 0
        chunk: list[tuple[str]] = []
        for url in urls:
            chunk.append((url,))
            if len(chunk) >= batch:
                added += self._insert(chunk)
                chunk = []
        if chunk:
            added += self._insert(chunk)
        return added

    def _insert(self, chunk: list[tuple[str]]) -> int:
        before = self._db.total_changes
        with self._transaction() as db:
            db.executemany("INSERT OR IGNORE INTO frontier (url) VALUES (?)", chunk)
        return self._db.total_changes - before

    async def recover(self) -> int:
        """Put rows left in progress by a killed run back to pending (attempt not charged)."""
        cur = self._execute(
            f"UPDATE frontier SET state='{PENDING}', attempts=MAX(attempts-1, 0) WHERE state='{IN_PROGRESS}'"
        )
        return cur.rowcount

    async def claim(self) -> Job | None:
        """Take the next ready URL (pending, its retry time reached) and mark it in progress."""
        now = time.time()
        row = self._db.execute(
            f"""UPDATE frontier SET state='{IN_PROGRESS}', attempts=attempts+1, started_at=?
                WHERE id = (SELECT id FROM frontier WHERE state='{PENDING}' AND next_attempt_at <= ?
                            ORDER BY next_attempt_at, id LIMIT 1)
                RETURNING id, url, attempts""",
            (now, now),
        ).fetchone()
        return Job(row[0], row[1], row[2]) if row else None

    async def next_ready_in(self) -> float | None:
        """Seconds until the earliest pending URL is ready (0 if one is); None if none is pending."""
        (at,) = self._db.execute(f"SELECT MIN(next_attempt_at) FROM frontier WHERE state='{PENDING}'").fetchone()
        return None if at is None else max(0.0, at - time.time())

    async def complete(self, job: Job, item: dict[str, Any], status: int | None, elapsed_s: float) -> bool:
        """Mark the job done and store its item, atomically. False (and nothing written)
        if the row is not in progress any more."""
        now = time.time()
        with self._transaction() as db:
            cur = db.execute(
                f"""UPDATE frontier SET state='{DONE}', done_count=done_count+1, status=?, finished_at=?,
                    elapsed_s=?, last_error=NULL WHERE id=? AND state='{IN_PROGRESS}'""",
                (status, now, elapsed_s, job.id),
            )
            if cur.rowcount != 1:
                return False
            db.execute(
                "INSERT OR REPLACE INTO items (url, data, extracted_at) VALUES (?, ?, ?)",
                (job.url, json.dumps(item, ensure_ascii=False), now),
            )
        return True

    async def retry_later(self, job: Job, reason: str, delay_s: float, status: int | None = None) -> None:
        await self._finish(job, PENDING, reason, status, next_attempt_at=time.time() + delay_s)

    async def fail(self, job: Job, reason: str, status: int | None = None) -> None:
        await self._finish(job, FAILED, reason, status)

    async def _finish(self, job: Job, state: str, reason: str, status: int | None, next_attempt_at: float = 0) -> None:
        now = time.time()
        self._execute(
            f"""UPDATE frontier SET state=?, last_error=?, status=?, finished_at=?, next_attempt_at=?,
                elapsed_s=? - started_at WHERE id=? AND state='{IN_PROGRESS}'""",
            (state, reason, status, now, next_attempt_at, now, job.id),
        )

    async def release(self, job: Job) -> None:
        """The job was interrupted (shutdown, browser restart): back to pending, attempt not charged."""
        self._execute(
            f"UPDATE frontier SET state='{PENDING}', attempts=MAX(attempts-1, 0) WHERE id=? AND state='{IN_PROGRESS}'",
            (job.id,),
        )

    # -- reading -------------------------------------------------------------------------

    async def counts(self) -> dict[str, int]:
        counts = dict.fromkeys(STATES, 0)
        counts.update(self._db.execute("SELECT state, COUNT(*) FROM frontier GROUP BY state").fetchall())
        return counts

    async def failures_by_reason(self) -> dict[str, int]:
        rows = self._db.execute(
            f"SELECT last_error, COUNT(*) FROM frontier WHERE state='{FAILED}' GROUP BY last_error ORDER BY 2 DESC"
        )
        return {reason_kind(r): n for r, n in rows}

    async def in_progress_urls(self) -> set[str]:
        return {u for (u,) in self._db.execute(f"SELECT url FROM frontier WHERE state='{IN_PROGRESS}'")}

    async def items(self) -> Iterator[dict[str, Any]]:
        """Every extracted item with its url, in crawl order."""
        rows = self._db.execute("SELECT i.data FROM items i JOIN frontier f ON f.url = i.url ORDER BY f.id")
        return (json.loads(data) for (data,) in rows)

    async def reset(self) -> None:
        """Forget all progress (``--fresh``)."""
        with self._transaction() as db:
            for table in ("frontier", "items", "runs", "memory_samples", "tab_samples"):
                db.execute(f"DELETE FROM {table}")

    # -- run records -----------------------------------------------------------------------

    async def start_run(self) -> int:
        cur = self._execute("INSERT INTO runs (started_at) VALUES (?)", (time.time(),))
        self.run_id = cur.lastrowid
        return self.run_id  # type: ignore[return-value]

    async def finish_run(self, reason: str, summary: dict[str, Any]) -> None:
        self._execute(
            "UPDATE runs SET finished_at=?, finish_reason=?, summary=? WHERE id=?",
            (time.time(), reason, json.dumps(summary), self.run_id),
        )

    async def add_memory_sample(self, sample: dict[str, Any]) -> None:
        self._db.execute(
            """INSERT INTO memory_samples (run_id, t, pages_done, browser_pss, crawler_pss, processes, tabs, contexts)
               VALUES (:run_id, :t, :pages_done, :browser_pss, :crawler_pss, :processes, :tabs, :contexts)""",
            {"run_id": self.run_id, **sample},
        )

    async def add_tab_sample(self, sample: dict[str, Any]) -> None:
        self._db.execute(
            """INSERT INTO tab_samples (run_id, t, pages, js_heap_used, nodes, listeners, documents)
               VALUES (:run_id, :t, :pages, :js_heap_used, :nodes, :listeners, :documents)""",
            {"run_id": self.run_id, **sample},
        )


def reason_kind(reason: str | None) -> str:
    """The kind of a failure reason ("timeout", "http_404", ...), without its detail."""
    return (reason or "unknown").split(":", 1)[0]
