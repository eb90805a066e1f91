"""The reading side of the SQLite store: counts, failures, URL records, items and run
records, as queries on a connection (see :mod:`crawler.store.sqlite`, whose
:class:`~crawler.store.sqlite.SqliteStore` runs each in its worker thread).  Nothing
here writes.
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Callable, Sequence
from typing import Any

from crawler.store.base import DONE, FAILED, IN_PROGRESS, STATES, RunRecord, StoredItem, reason_kind


def counts(db: sqlite3.Connection) -> dict[str, int]:
    """URLs per state."""
    found = dict.fromkeys(STATES, 0)
    found.update(db.execute("SELECT state, COUNT(*) FROM frontier GROUP BY state").fetchall())
    return found


def failures_by_reason(db: sqlite3.Connection) -> dict[str, int]:
    """Failed URLs per kind of reason (the text before ':'), most frequent first."""
    sql = f"SELECT last_error, COUNT(*) FROM frontier WHERE state='{FAILED}' GROUP BY last_error"
    kinds: dict[str, int] = {}
    for reason, n in db.execute(sql).fetchall():
        kinds[reason_kind(reason)] = kinds.get(reason_kind(reason), 0) + n
    return dict(sorted(kinds.items(), key=lambda kv: -kv[1]))


def in_progress_urls(db: sqlite3.Connection) -> set[str]:
    """The URLs in progress."""
    return {u for (u,) in db.execute(f"SELECT url FROM frontier WHERE state='{IN_PROGRESS}'")}


def url_state(db: sqlite3.Connection, url: str) -> dict[str, Any]:
    """The record of ``url`` (state, attempts, request fields, last outcome); {} if unknown."""
    sql = """SELECT state, attempts, label, depth, parent, data, last_error, status, done_count, elapsed_s,
                    started_at, finished_at, changed_items, unchanged_items FROM frontier WHERE url=?"""
    row = db.execute(sql, (url,)).fetchone()
    if row is None:
        return {}
    keys = (
        *("state", "attempts", "label", "depth", "parent", "data", "last_error", "status", "done_count"),
        *("elapsed_s", "started_at", "finished_at", "changed_items", "unchanged_items"),
    )
    record = dict(zip(keys, row, strict=True))
    record["data"] = json.loads(record["data"]) if record["data"] else {}
    return record


def items_query(label: str | None, run: int | None, changed_since: float | None) -> tuple[str, list[Any]]:
    """The query of one batch of items, in crawl order, filtered, and its filter's
    arguments.  Its arguments are the last (url id, seq) read, the filter's, then the
    batch size."""
    where, args = ["(i.url_id, i.seq) > (?, ?)"], []
    if label is not None:
        where.append("f.label = ?")
        args.append(label)
    if run is not None:
        where.append("i.run_id = ?")
        args.append(run)
    if changed_since is not None:
        where.append("i.extracted_at >= ?")
        args.append(changed_since)
    sql = f"""SELECT i.url_id, i.seq, f.url, f.label, i.data, i.extracted_at, i.run_id
              FROM items i JOIN frontier f ON f.id = i.url_id
              WHERE {" AND ".join(where)} ORDER BY i.url_id, i.seq LIMIT ?"""
    return sql, args


def stored_items(rows: Sequence[Any]) -> list[StoredItem]:
    """The items of rows of :func:`items_query`."""
    return [
        StoredItem(url, label_, seq, json.loads(data), fetched_at, run_)
        for _, seq, url, label_, data, fetched_at, run_ in rows
    ]


def input_position(db: sqlite3.Connection, key: str) -> int:
    """Entries of the input ``key`` fed so far (0 if none)."""
    row = db.execute("SELECT position FROM input_feed WHERE input_key=?", (key,)).fetchone()
    return row[0] if row else 0


def run_record(db: sqlite3.Connection, run: int | None, clock: Callable[[], float]) -> RunRecord | None:
    """Run ``run`` (default: the last), its samples and the finish times of the pages
    done while it ran (until ``clock()`` if it has not finished); None if there is no
    such run."""
    row = db.execute(
        "SELECT id, started_at, finished_at, finish_reason, summary FROM runs"
        + (" WHERE id=?" if run is not None else " ORDER BY id DESC LIMIT 1"),
        (run,) if run is not None else (),
    ).fetchone()
    if row is None:
        return None
    run_id, started_at, finished_at, reason, summary = row

    def rows(sql: str) -> list[dict[str, Any]]:
        cur = db.execute(sql, (run_id,))
        names = [c[0] for c in cur.description]
        return [dict(zip(names, r, strict=True)) for r in cur]

    end = finished_at or clock()
    page_times = [
        t
        for (t,) in db.execute(
            f"SELECT finished_at FROM frontier WHERE state='{DONE}' AND finished_at BETWEEN ? AND ? ORDER BY 1",
            (started_at, end),
        )
    ]
    return RunRecord(
        run_id=run_id,
        started_at=started_at,
        finished_at=finished_at,
        finish_reason=reason,
        summary=json.loads(summary) if summary else None,
        samples=rows("SELECT * FROM memory_samples WHERE run_id=? ORDER BY t"),
        tabs=rows("SELECT * FROM tab_samples WHERE run_id=? ORDER BY t"),
        page_times=page_times,
    )
