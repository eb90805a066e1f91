"""The frontier and the items, in SQLite (the embedded default).

Every URL is one row in ``frontier`` with a state, and the request fields its handler
sees (label, depth, data, parent)::

    pending ──claim──► in_progress ──complete──► done (with its items and links)
       ▲                  │  ├──retry_later──► pending (attempt counted, next_attempt_at set)
       └──release/recover─┘  └──fail─────────► failed (reason kept)

Each transition is one transaction.  ``complete`` only moves a row that is
``in_progress`` under the claim's token, and writes the job's items and the links it
enqueued in the same transaction, so a URL is done at most once, and its items are
stored exactly once, whatever crashes when.  A crawl killed with SIGKILL leaves some
rows ``in_progress``; :meth:`recover` puts them back to pending at the next start,
without charging the interrupted attempt.

The database uses WAL with ``synchronous=NORMAL``: a committed transaction survives
the process being killed (not a power cut), and commits do not wait for fsync.  Every
call runs in a worker thread (SQLite blocks; the event loop must not), one at a time,
each in its own transaction, and is not interrupted by cancellation once started: each
method is atomic with respect to cancellation (it happened, or it did not start).

Calls made while the thread is busy go together on its next trip (:class:`~crawler.store.sqlite.calls.Calls`),
each still its own transaction.  Why: a trip to the thread costs more than the SQL
when the event loop is busy (the thread waits for the GIL: 2.3 ms a call on a loaded
2-core machine, against 0.2 ms of SQL), and one trip at a time capped an HTTP crawl
at about 430 store calls per second.

One process per database: opening a store takes the database's lock (see
:mod:`crawler.store.sqlite.dblock`), so a second crawl on the same file refuses at once, naming the
holder, and ``recover`` never meets a live process's rows.  Readers (``export``) open
it with ``exclusive=False``.

Errors: a database that cannot be opened, or is not this crawler's, is a
:class:`~crawler.config.ConfigError` at open; a read or write that fails later (disk
full, I/O error) is a :class:`StoreError`, one line naming the database: fatal for the
crawl (which stops with its summary), and the transaction it interrupted is rolled
back, so nothing is half-written and a rerun resumes exactly.

Schema versions (``PRAGMA user_version``): 0 is the first release's (one item per URL,
no request fields), 2 has no recrawls; both are migrated in place, in one transaction,
to 3.  A newer version than this code knows is refused with a one-line error.  The
schema and its migrations are in :mod:`crawler.store.sqlite.schema`, the read queries
in :mod:`crawler.store.sqlite.read`.
"""

from __future__ import annotations

import json
import random
import secrets
import sqlite3
import time
from collections.abc import AsyncIterator, Callable, Collection, Iterable, Sequence
from contextlib import AbstractContextManager
from pathlib import Path
from typing import Any, TypeVar

import trio

from crawler.errors import ConfigError, StoreError
from crawler.policy.ratelimit import HostRateLimiter, Pace, host_of
from crawler.request import Request
from crawler.store.base import (
    CLAIM_SCAN,
    DONE,
    FAILED,
    IN_PROGRESS,
    PENDING,
    Job,
    RunRecord,
    StoredItem,
    carry_over,
    item_hash,
)
from crawler.store.sqlite import dblock
from crawler.store.sqlite import read as sqlite_read
from crawler.store.sqlite.calls import Calls
from crawler.store.sqlite.schema import SCHEMA_VERSION, check_version, prepare_schema, transaction
from crawler.store.sqlite.sessions import SqliteSessionStates, create_private

__all__ = ["SCHEMA_VERSION", "SqliteStore"]

T = TypeVar("T")


class SqliteStore:
    """The SQLite store (see the module docstring).  ``max_urls`` caps the frontier (0: none).

    The constructor opens (creating or migrating) the database and blocks: from async
    code use :meth:`open`.  Raises ConfigError (one line) if another process holds the
    database (``exclusive``, the default: see :mod:`crawler.store.sqlite.dblock`), or for a file that
    cannot be opened or is not a database of this crawler."""

    def __init__(self, path: str | Path, *, max_urls: int = 0, threads: bool = True, exclusive: bool = True):
        """``threads=False`` runs each call on the event loop instead: for tests under
        trio's MockClock, whose autojump would otherwise move virtual time while a call
        waits for its thread.  ``exclusive=False``: no lock, for readers (export)."""
        self.path = str(path)
        self.max_urls = max_urls
        self._threads = threads
        self.run_id: int | None = None
        self._calls = Calls()
        if Path(self.path).is_dir():
            raise ConfigError(f"{self.path}: is a directory, not a database")
        self._lock = dblock.acquire(self.path) if exclusive else None
        self._db: sqlite3.Connection | None = None
        self.session_states = SqliteSessionStates(self._in_transaction, self.path)
        try:
            create_private(self.path)  # it may come to hold saved sessions: 0600 from the start
            self._db = sqlite3.connect(self.path, isolation_level=None, check_same_thread=False)
            check_version(self._db, self.path)  # before anything writes to the file
            self._db.execute("PRAGMA journal_mode=WAL")
            self._db.execute("PRAGMA synchronous=NORMAL")
            self._db.execute("PRAGMA busy_timeout=5000")
            prepare_schema(self._db)
        except sqlite3.DatabaseError as exc:
            self.close()
            raise ConfigError(f"{self.path}: not a crawler database: {exc}") from None
        except ConfigError:
            self.close()
            raise

    def host_pace(self, wait_ms: tuple[int, int], *, rng: random.Random | None = None) -> Pace:
        """The host pacing of this crawl: in process, since one process owns the database."""
        return HostRateLimiter(wait_ms, rng=rng)

    @classmethod
    async def open(cls, path: str | Path, *, max_urls: int = 0, exclusive: bool = True) -> SqliteStore:
        return await trio.to_thread.run_sync(lambda: cls(path, max_urls=max_urls, exclusive=exclusive))

    def close(self) -> None:
        """Close the database and give up its lock; idempotent."""
        db, self._db = self._db, None
        try:
            if db is not None:
                db.close()
        except sqlite3.Error:
            pass  # closing only checkpoints the WAL; a rerun does it
        finally:
            if self._lock is not None:
                dblock.release(self._lock)
                self._lock = None

    async def _run(self, fn: Callable[..., T], *args: Any) -> T:
        """``fn(*args)`` in the worker thread, in turn (see :class:`~crawler.store.sqlite.calls.Calls`); not
        abandoned if cancelled once started.  Raises StoreError (one line naming the
        database) if SQLite fails."""
        try:
            if not self._threads:
                await trio.lowlevel.checkpoint()
                return fn(*args)
            return await self._calls.run(fn, *args)
        except (sqlite3.Error, OSError) as exc:
            raise StoreError(f"{self.path}: {exc}") from None

    def _transaction(self) -> AbstractContextManager[sqlite3.Connection]:
        db = self._db
        assert db is not None, "the store is closed"
        return transaction(db)

    async def _in_transaction(self, fn: Callable[[sqlite3.Connection], T]) -> T:
        """``fn(db)`` in one transaction in the worker thread (for :attr:`session_states`)."""

        def run() -> T:
            with self._transaction() as db:
                return fn(db)

        return await self._run(run)

    def _execute(self, sql: str, args: Any = ()) -> sqlite3.Cursor:
        """One statement in its own transaction."""
        with self._transaction() as db:
            return db.execute(sql, args)

    # -- the frontier --------------------------------------------------------------------

    async def add_urls(self, requests: Iterable[Request | str], batch: int = 1000) -> int:
        """Add the requests whose URL is new (the same URL twice is one row), up to
        ``max_urls``.  Returns how many were added.  Each batch is one transaction; the
        iterable is read on the event loop (it may stream a file: keep lines short)."""
        added = 0
        chunk: list[Request] = []
        for request in requests:
            chunk.append(request if isinstance(request, Request) else Request(request))
            if len(chunk) >= batch:
                added += await self._run(self._add_batch, chunk)
                chunk = []
        if chunk:
            added += await self._run(self._add_batch, chunk)
        return added

    def _add_batch(self, requests: Sequence[Request]) -> int:
        with self._transaction() as db:
            return self._insert(db, requests)

    def _insert(self, db: sqlite3.Connection, requests: Sequence[Request]) -> int:
        room = None
        if self.max_urls:
            (count,) = db.execute("SELECT COUNT(*) FROM frontier").fetchone()
            room = max(0, self.max_urls - count)
        added = 0
        for r in requests:
            if room is not None and added >= room:
                break
            cur = db.execute(
                "INSERT OR IGNORE INTO frontier (url, label, depth, data, parent) VALUES (?, ?, ?, ?, ?)",
                (r.url, r.label, r.depth, json.dumps(r.data, ensure_ascii=False) if r.data else None, r.parent),
            )
            added += cur.rowcount
        return added

    async def known(self, urls: Iterable[str]) -> set[str]:
        """The subset of ``urls`` already in the frontier."""
        return await self._run(self._known, list(urls))

    def _known(self, urls: list[str]) -> set[str]:
        found: set[str] = set()
        for i in range(0, len(urls), 500):
            part = urls[i : i + 500]
            marks = ",".join("?" * len(part))
            found.update(u for (u,) in self._db.execute(f"SELECT url FROM frontier WHERE url IN ({marks})", part))
        return found

    async def recover(self) -> int:
        """Put rows left in progress by a killed run back to pending (attempt not charged)."""
        sql = f"UPDATE frontier SET state='{PENDING}', attempts=MAX(attempts-1, 0), token=NULL WHERE state='{IN_PROGRESS}'"
        return (await self._run(self._execute, sql)).rowcount

    async def claim(self, avoid_hosts: Collection[str] = ()) -> Job | None:
        """Take the next ready URL (pending, its retry time reached), preferring one whose
        host is not in ``avoid_hosts`` (among the first CLAIM_SCAN ready), and mark it in
        progress."""
        jobs = await self._run(self._claim, set(avoid_hosts), 1)
        return jobs[0] if jobs else None

    async def claim_many(self, avoid_hosts: Collection[str], n: int) -> list[Job]:
        """Up to ``n`` claims in one transaction (see :meth:`claim`): each prefers a host
        neither in ``avoid_hosts`` nor among the ones picked before it."""
        return await self._run(self._claim, set(avoid_hosts), max(1, n))

    def _claim(self, avoid: set[str], n: int) -> list[Job]:
        now, token = time.time(), secrets.token_hex(8)
        jobs = []
        with self._transaction() as db:
            ready = db.execute(
                f"""SELECT id, url FROM frontier WHERE state='{PENDING}' AND next_attempt_at <= ?
                    ORDER BY next_attempt_at, id LIMIT ?""",
                (now, CLAIM_SCAN + n - 1 if avoid or n > 1 else 1),
            ).fetchall()
            for _ in range(min(n, len(ready))):
                pick = next((r for r in ready if host_of(r[1]) not in avoid), ready[0])
                ready.remove(pick)
                avoid.add(host_of(pick[1]))
                row = db.execute(
                    f"""UPDATE frontier SET state='{IN_PROGRESS}', attempts=attempts+1, started_at=?, token=?
                        WHERE id = ? RETURNING id, url, attempts, label, depth, data, parent""",
                    (now, token, pick[0]),
                ).fetchone()
                job_id, url, attempt, label, depth, data, parent = row
                jobs.append(Job(job_id, url, attempt, token, label, depth, json.loads(data) if data else {}, parent))
        return jobs

    async def next_ready_in(self) -> float | None:
        """Seconds until the earliest pending URL is ready (0 if one is); None if none is
        pending or in progress (the crawl is over)."""
        return await self._run(self._next_ready_in)

    def _next_ready_in(self) -> float | None:
        (at,) = self._db.execute(f"SELECT MIN(next_attempt_at) FROM frontier WHERE state='{PENDING}'").fetchone()
        if at is not None:
            return max(0.0, at - time.time())
        (busy,) = self._db.execute(f"SELECT COUNT(*) FROM frontier WHERE state='{IN_PROGRESS}'").fetchone()
        return 0.5 if busy else None  # in flight may still retry: ask again soon

    async def complete(
        self,
        job: Job,
        items: Sequence[dict[str, Any]],
        links: Sequence[Request],
        status: int | None,
        elapsed_s: float,
        recrawl_after_s: float = 0.0,
    ) -> bool:
        """Mark the job done, store its items in place of the URL's earlier ones
        (unchanged ones keep their fetch time, see :func:`~crawler.store.carry_over`)
        and add its links, in one transaction.  False, and nothing written, if the row
        is not in progress under this job's claim (a second complete of the same job
        included)."""
        hashes = [item_hash(item) for item in items]
        return await self._run(
            self._complete, job, list(items), hashes, list(links), status, elapsed_s, recrawl_after_s
        )

    def _complete(
        self,
        job: Job,
        items: list[dict[str, Any]],
        hashes: list[str],
        links: list[Request],
        status: int | None,
        elapsed_s: float,
        recrawl_after_s: float,
    ) -> bool:
        now = time.time()
        with self._transaction() as db:
            old = [
                (h or item_hash(json.loads(data)), fetched_at, run)
                for h, data, fetched_at, run in db.execute(
                    "SELECT hash, data, extracted_at, run_id FROM items WHERE url_id=? ORDER BY seq", (job.id,)
                )
            ]
            kept = carry_over(old, hashes, now, self.run_id)
            unchanged = sum(1 for fetched_at, _ in kept if fetched_at != now)
            cur = db.execute(
                f"""UPDATE frontier SET state='{DONE}', done_count=done_count+1, status=?, finished_at=?,
                    elapsed_s=?, last_error=NULL, token=NULL, recrawl_at=?, changed_items=?, unchanged_items=?
                    WHERE id=? AND state='{IN_PROGRESS}' AND token IS ?""",
                (
                    *(status, now, elapsed_s, now + recrawl_after_s if recrawl_after_s > 0 else None),
                    *(len(items) - unchanged, unchanged, job.id, job.token or None),
                ),
            )
            if cur.rowcount != 1:
                return False
            db.execute("DELETE FROM items WHERE url_id=?", (job.id,))
            db.executemany(
                "INSERT INTO items (url_id, seq, data, extracted_at, hash, run_id) VALUES (?, ?, ?, ?, ?, ?)",
                [
                    (job.id, seq, json.dumps(item, ensure_ascii=False), fetched_at, h, run)
                    for seq, (item, h, (fetched_at, run)) in enumerate(zip(items, hashes, kept, strict=True))
                ],
            )
            self._insert(db, links)
        return True

    async def requeue_due(self) -> int:
        """Done URLs whose recrawl time has come back to pending, ready now, attempts
        reset; their items stay until the recrawl completes.  Returns how many."""
        sql = f"""UPDATE frontier SET state='{PENDING}', attempts=0, next_attempt_at=0, recrawl_at=NULL
                  WHERE recrawl_at <= ? AND state='{DONE}'"""
        return (await self._run(lambda: self._execute(sql, (time.time(),)))).rowcount

    async def retry_later(self, job: Job, reason: str, delay_s: float, status: int | None = None) -> None:
        await self._run(self._finish, job, PENDING, reason, status, time.time() + delay_s)

    async def fail(self, job: Job, reason: str, status: int | None = None) -> None:
        await self._run(self._finish, job, FAILED, reason, status, 0.0)

    def _finish(self, job: Job, state: str, reason: str, status: int | None, next_attempt_at: float) -> None:
        now = time.time()
        self._execute(
            f"""UPDATE frontier SET state=?, last_error=?, status=?, finished_at=?, next_attempt_at=?,
                elapsed_s=? - started_at, token=NULL WHERE id=? AND state='{IN_PROGRESS}' AND token IS ?""",
            (state, reason, status, now, next_attempt_at, now, job.id, job.token or None),
        )

    async def release(self, job: Job) -> None:
        """The job was interrupted (shutdown, browser restart): back to pending, attempt not charged."""
        sql = f"""UPDATE frontier SET state='{PENDING}', attempts=MAX(attempts-1, 0), token=NULL
                  WHERE id=? AND state='{IN_PROGRESS}' AND token IS ?"""
        await self._run(self._execute, sql, (job.id, job.token or None))

    # -- reading -------------------------------------------------------------------------

    async def counts(self) -> dict[str, int]:
        return await self._run(lambda: sqlite_read.counts(self._db))

    async def failures_by_reason(self) -> dict[str, int]:
        return await self._run(lambda: sqlite_read.failures_by_reason(self._db))

    async def in_progress_urls(self) -> set[str]:
        return await self._run(lambda: sqlite_read.in_progress_urls(self._db))

    async def url_state(self, url: str) -> dict[str, Any]:
        return await self._run(lambda: sqlite_read.url_state(self._db, url))

    async def stream_items(
        self,
        *,
        label: str | None = None,
        run: int | None = None,
        changed_since: float | None = None,
        batch: int = 1000,
    ) -> AsyncIterator[list[StoredItem]]:
        """The stored items in crawl order, in lists of ``batch``, filtered (see the
        :class:`~crawler.store.Store` contract).  Each batch is one query in the worker
        thread, resuming after the last (url, seq) read, so memory holds one batch."""
        sql, args = sqlite_read.items_query(label, run, changed_since)
        after = (0, -1)
        while True:
            rows = await self._run(self._fetch_all, sql, (*after, *args, batch))
            if not rows:
                return
            yield sqlite_read.stored_items(rows)
            after = (rows[-1][0], rows[-1][1])

    def _fetch_all(self, sql: str, args: Sequence[Any]) -> list[Any]:
        return self._db.execute(sql, args).fetchall()

    async def items(self) -> list[dict[str, Any]]:
        """Every stored item's data, in crawl order (all in memory: see :meth:`stream_items`)."""
        return [item.data async for batch in self.stream_items() for item in batch]

    async def input_position(self, key: str) -> int:
        return await self._run(lambda: sqlite_read.input_position(self._db, key))

    async def save_input_position(self, key: str, position: int) -> None:
        sql = """INSERT INTO input_feed (input_key, position) VALUES (?, ?)
                 ON CONFLICT (input_key) DO UPDATE SET position=MAX(position, excluded.position)"""
        await self._run(self._execute, sql, (key, position))

    async def retry_failed(self, prefix: str | None = None) -> int:
        """Failed URLs (all, or those whose reason starts with ``prefix``) back to
        pending, ready now, attempts reset (``--retry-failed``); returns how many."""
        sql = f"""UPDATE frontier SET state='{PENDING}', attempts=0, next_attempt_at=0, token=NULL
                  WHERE state='{FAILED}' AND (? IS NULL OR substr(COALESCE(last_error, ''), 1, ?) = ?)"""
        args = (prefix, len(prefix or ""), prefix or "")
        return (await self._run(self._execute, sql, args)).rowcount

    async def reset(self) -> None:
        """Forget all progress (``--fresh``)."""

        def reset() -> None:
            with self._transaction() as db:
                for table in ("frontier", "items", "runs", "input_feed", "memory_samples", "tab_samples"):
                    db.execute(f"DELETE FROM {table}")

        await self._run(reset)

    # -- run records -----------------------------------------------------------------------

    async def start_run(self) -> int:
        cur = await self._run(self._execute, "INSERT INTO runs (started_at) VALUES (?)", (time.time(),))
        self.run_id = cur.lastrowid
        return self.run_id  # type: ignore[return-value]

    async def finish_run(self, reason: str, summary: dict[str, Any]) -> None:
        await self._run(
            self._execute,
            "UPDATE runs SET finished_at=?, finish_reason=?, summary=? WHERE id=?",
            (time.time(), reason, json.dumps(summary), self.run_id),
        )

    async def run_record(self, run: int | None = None) -> RunRecord | None:
        """Run ``run`` (default: the last), its samples and the finish times of the
        pages done while it ran; None if there is no such run."""
        return await self._run(lambda: sqlite_read.run_record(self._db, run, time.time))

    async def add_memory_sample(self, sample: dict[str, Any]) -> None:
        await self._run(
            self._db.execute,
            """INSERT INTO memory_samples (run_id, t, pages_done, browser_pss, crawler_pss, processes, tabs, contexts)
               VALUES (:run_id, :t, :pages_done, :browser_pss, :crawler_pss, :processes, :tabs, :contexts)""",
            {"run_id": self.run_id, **sample},
        )

    async def add_tab_sample(self, sample: dict[str, Any]) -> None:
        await self._run(
            self._db.execute,
            """INSERT INTO tab_samples (run_id, t, pages, js_heap_used, nodes, listeners, documents)
               VALUES (:run_id, :t, :pages, :js_heap_used, :nodes, :listeners, :documents)""",
            {"run_id": self.run_id, **sample},
        )
