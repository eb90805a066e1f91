"""Streaming exports of a crawl's items as JSONL, CSV or Parquet (``crawler export``).

Items come from ``store.stream_items`` in batches, so memory is bounded by the batch
size and the number of columns, never by the size of the crawl.  JSONL takes one pass.
CSV and Parquet take two: the first only learns the columns (for Parquet also each
column's type), the second writes.  Every file operation and all pyarrow work runs in a
worker thread (``trio.to_thread.run_sync``), one call per batch.

An export may run while a crawl writes (the store is opened as a reader).  The second
pass may then meet what the first did not see: a key with no column is left out, and a
value that does not fit its Parquet column's type is written as null.  Both are counted
and logged as one warning at the end, rather than failing an export of a live crawl.
"""

from __future__ import annotations

import csv
import datetime as dt
import json
import logging
import math
import re
import sys
from collections.abc import AsyncIterator, Iterable
from contextlib import aclosing, contextmanager
from typing import IO, Any, Protocol

import attrs
import trio

from crawler.errors import ConfigError
from crawler.store.base import StoredItem

log = logging.getLogger(__name__)

FORMATS = ("jsonl", "csv", "parquet")
BATCH_ITEMS = 1000  # items per stream_items batch: one thread call, and one Parquet row group, each
META_COLUMNS = ("_url", "_label", "_fetched_at")  # --meta: leading columns, ahead of the item's keys
PARQUET_EXTRA = "--format parquet needs pyarrow: pip install 'trio-cdp-crawler[parquet]'"
_INT64 = (-(2**63), 2**63 - 1)
_DATE = re.compile(r"\d{4}-\d{2}-\d{2}")


# -- which items -----------------------------------------------------------------------------


class ItemSource(Protocol):
    """What an export reads: both stores (SqliteStore, RedisStore) provide it."""

    def stream_items(
        self,
        *,
        label: str | None = None,
        run: int | None = None,
        changed_since: float | None = None,
        batch: int = BATCH_ITEMS,
    ) -> AsyncIterator[list[StoredItem]]:
        """The current items in crawl order (URL order, then seq), in lists of about
        ``batch``, filtered by label, run and ``fetched_at >= changed_since``."""
        ...


@attrs.frozen
class ItemQuery:
    """Which items to export; each field is passed to ``stream_items`` as is.

    ``label=None``: every label; ``run=N``: only items stored by run N;
    ``changed_since=T``: only items whose ``fetched_at`` is T (unix seconds) or later.
    """

    label: str | None = None
    run: int | None = None
    changed_since: float | None = None

    def describe(self) -> str:
        """The filters in words (``label product, changed since 2026-12-01T08:00:00Z``); "" if none."""
        parts = []
        if self.label is not None:
            parts.append(f"label {self.label}")
        if self.run is not None:
            parts.append(f"run {self.run}")
        if self.changed_since is not None:
            parts.append(f"changed since {format_utc(self.changed_since).replace('.000Z', 'Z')}")
        return ", ".join(parts)


def parse_utc(text: str, *, option: str = "--changed-since") -> float:
    """``text`` as unix seconds: ISO 8601 in UTC (``2026-12-01T08:00:00Z``, ``+00:00``,
    fractional seconds allowed) or a date (``2026-12-01``: midnight UTC).

    A time without a zone, or with a non-zero offset, is refused rather than guessed:
    the contract says TIME is UTC, and a silently local reading would shift the filter
    by hours.  Raises :class:`ConfigError`, one line naming ``option`` and the text.
    """
    text = text.strip()
    example = "like 2026-12-01T08:00:00Z or a date 2026-12-01"
    if _DATE.fullmatch(text):
        try:
            day = dt.date.fromisoformat(text)
        except ValueError:
            raise ConfigError(f"{option}: not a date: {text!r}") from None
        return dt.datetime(day.year, day.month, day.day, tzinfo=dt.UTC).timestamp()
    try:
        when = dt.datetime.fromisoformat(text)
    except ValueError:
        raise ConfigError(f"{option}: expected an ISO 8601 UTC time {example}, got {text!r}") from None
    if when.tzinfo is None:
        raise ConfigError(f"{option}: {text!r} has no zone; TIME is UTC: end it with Z (2026-12-01T08:00:00Z)")
    if when.utcoffset() != dt.timedelta(0):
        raise ConfigError(f"{option}: {text!r} is not UTC; write the time in UTC with Z (2026-12-01T08:00:00Z)")
    return when.timestamp()


def format_utc(seconds: float) -> str:
    """Unix seconds as ISO 8601 UTC with milliseconds: ``2026-12-01T08:00:00.250Z``.

    Always three decimals, so the texts sort as the times do; rounded down, so a value
    copied into ``--changed-since`` includes the item it was copied from.
    """
    millis = math.floor(seconds * 1000)
    when = dt.datetime.fromtimestamp(millis // 1000, dt.UTC)
    return when.strftime("%Y-%m-%dT%H:%M:%S") + f".{millis % 1000:03d}Z"


# -- the export ------------------------------------------------------------------------------


async def export_items(
    store: ItemSource,
    out: str | None,
    fmt: str,
    *,
    query: ItemQuery = ItemQuery(),  # noqa: B008 (frozen: one shared default is safe)
    meta: bool = False,
    batch: int = BATCH_ITEMS,
) -> int:
    """Write the store's current items matching ``query`` to ``out`` (a path; None:
    standard output) as ``fmt`` (one of :data:`FORMATS`); returns how many were written.

    ``meta``: leading ``_url``, ``_label``, ``_fetched_at`` keys/columns (they win over
    item keys of the same name).  Starts no tasks.  Cancelled half-way (or failing), it
    leaves a partial file behind.  Raises :class:`ConfigError` (one line naming
    ``--out``/``--format``) for output it cannot write or a missing pyarrow;
    ``BrokenPipeError`` (the reader of standard output went away) passes through;
    store errors pass through as the store raises them.
    """
    if fmt not in FORMATS:
        raise ConfigError(f"--format: expected one of {', '.join(FORMATS)}, got {fmt!r}")
    binary = fmt == "parquet"
    if binary:
        if out is None:
            raise ConfigError("--out: parquet needs a file")
        await trio.to_thread.run_sync(_import_pyarrow)
    where = out or "standard output"
    with _out_errors(where):
        fh: IO[Any] = await trio.to_thread.run_sync(_open, out, binary)
    stream = _Stream(store, query, meta, batch)
    drift = _Drift()
    try:
        with _out_errors(where):
            if fmt == "jsonl":
                count = await _write_jsonl(stream, fh)
            else:
                columns = await _survey(stream)
                write = _write_csv if fmt == "csv" else _write_parquet
                count = await write(stream, fh, columns, drift)
            await trio.to_thread.run_sync(fh.flush)
    finally:
        if out is not None:
            with _out_errors(where):
                await trio.to_thread.run_sync(fh.close)
    drift.warn(where)
    return count


@contextmanager
def _out_errors(where: str):
    """An OSError writing the output becomes one ConfigError line naming ``--out``."""
    try:
        yield
    except BrokenPipeError:
        raise
    except OSError as exc:
        raise ConfigError(f"--out: cannot write {where!r}: {exc.strerror or exc}") from None


def _open(out: str | None, binary: bool) -> IO[Any]:
    if out is None:
        return sys.stdout.buffer if binary else sys.stdout
    if binary:
        return open(out, "wb")  # closed by export_items
    return open(out, "w", encoding="utf-8", newline="")


@attrs.frozen
class _Stream:
    """One pass over the query's items, as rows (dicts), batch by batch."""

    store: ItemSource
    query: ItemQuery
    meta: bool
    batch: int

    def batches(self):
        """``async with stream.batches() as it: async for items in it`` (closed on early exit)."""
        q = self.query
        return aclosing(
            self.store.stream_items(label=q.label, run=q.run, changed_since=q.changed_since, batch=self.batch)
        )

    def rows(self, items: Iterable[StoredItem]) -> list[dict[str, Any]]:
        if not self.meta:
            return [item.data for item in items]
        rows = []
        for item in items:
            row: dict[str, Any] = {"_url": item.url, "_label": item.label, "_fetched_at": format_utc(item.fetched_at)}
            row.update((k, v) for k, v in item.data.items() if k not in row)
            rows.append(row)
        return rows


@attrs.define
class _Drift:
    """What the second pass met that the first had not seen (a crawl writing meanwhile)."""

    dropped: int = 0  # values of keys with no column
    misfits: int = 0  # values that did not fit their column's type, written as null
    keys: set[str] = attrs.field(factory=set)  # a few of the keys concerned, for the warning

    def note(self, key: str, *, misfit: bool = False) -> None:
        if misfit:
            self.misfits += 1
        else:
            self.dropped += 1
        if len(self.keys) < 5:
            self.keys.add(key)

    def warn(self, where: str) -> None:
        if self.dropped or self.misfits:
            log.warning(
                "export to %s: items changed between the two passes (a crawl running?): %d values of new keys "
                "left out, %d values of another type written as null (keys %s)",
                where,
                self.dropped,
                self.misfits,
                ", ".join(sorted(self.keys)),
            )


async def _write_jsonl(stream: _Stream, fh: IO[str]) -> int:
    count = 0
    async with stream.batches() as batches:
        async for items in batches:
            rows = stream.rows(items)
            text = "".join(json.dumps(row, ensure_ascii=False) + "\n" for row in rows)
            await trio.to_thread.run_sync(fh.write, text)
            count += len(rows)
    return count


# -- two-pass formats: the columns -----------------------------------------------------------


async def _survey(stream: _Stream) -> dict[str, set[str]]:
    """The first pass: every column in first-seen order (``--meta``'s first, always),
    each with the kinds of value it holds (see :func:`_kind`); None adds no kind."""
    columns: dict[str, set[str]] = {name: set() for name in META_COLUMNS} if stream.meta else {}
    async with stream.batches() as batches:
        async for items in batches:
            for row in stream.rows(items):
                for key, value in row.items():
                    kinds = columns.setdefault(key, set())
                    if value is not None:
                        kinds.add(_kind(value))
    return columns


def _kind(value: Any) -> str:
    if isinstance(value, bool):
        return "bool"
    if isinstance(value, int):
        return "int" if _INT64[0] <= value <= _INT64[1] else "json"
    if isinstance(value, float):
        return "float"
    if isinstance(value, str):
        return "str"
    return "json"  # dict, list (and anything else): JSON text


def _encoding(kinds: set[str]) -> str:
    """A column's Parquet encoding from the kinds of its values.

    All bool: bool; all int: int64; ints and floats: float64; all str: string;
    anything else (nested values, or a mix such as str and int): string, every cell
    JSON text, so ``"5"`` and ``5`` stay apart.  A column with only nulls is a string
    column of nulls (the null type trips some Parquet readers).
    """
    if not kinds or kinds == {"str"}:
        return "str"
    if kinds == {"bool"}:
        return "bool"
    if kinds == {"int"}:
        return "int"
    if kinds <= {"int", "float"}:
        return "float"
    return "json"


async def _write_csv(stream: _Stream, fh: IO[str], columns: dict[str, set[str]], drift: _Drift) -> int:
    """The second pass as CSV: a header of the columns; nested values as JSON, None empty."""
    writer = csv.writer(fh)
    names = list(columns)
    await trio.to_thread.run_sync(writer.writerow, names)
    count = 0
    async with stream.batches() as batches:
        async for items in batches:
            rows = stream.rows(items)
            await trio.to_thread.run_sync(_csv_rows, writer, names, rows, drift)
            count += len(rows)
    return count


def _csv_rows(writer: Any, names: list[str], rows: list[dict[str, Any]], drift: _Drift) -> None:
    known = set(names)
    for row in rows:
        writer.writerow([_csv_cell(row.get(name)) for name in names])
        for key in row.keys() - known:
            drift.note(key)


def _csv_cell(value: Any) -> Any:
    if value is None:
        return ""
    if isinstance(value, dict | list):
        return json.dumps(value, ensure_ascii=False)
    return value


# -- Parquet ---------------------------------------------------------------------------------


def _import_pyarrow() -> tuple[Any, Any]:
    """pyarrow is an optional extra, imported only for ``--format parquet``."""
    try:
        import pyarrow
        import pyarrow.parquet
    except ImportError:
        raise ConfigError(PARQUET_EXTRA) from None
    return pyarrow, pyarrow.parquet


async def _write_parquet(stream: _Stream, fh: IO[bytes], columns: dict[str, set[str]], drift: _Drift) -> int:
    """The second pass as Parquet: one row group per batch.  No items and no ``--meta``:
    a valid file with no columns and no rows."""
    pa, pq = _import_pyarrow()  # already imported, off the loop, by export_items
    encodings = {name: _encoding(kinds) for name, kinds in columns.items()}
    schema = await trio.to_thread.run_sync(_schema, pa, encodings)
    writer = await trio.to_thread.run_sync(lambda: pq.ParquetWriter(fh, schema))
    count = 0
    try:
        async with stream.batches() as batches:
            async for items in batches:
                rows = stream.rows(items)
                if rows:
                    await trio.to_thread.run_sync(_parquet_rows, pa, writer, schema, encodings, rows, drift)
                count += len(rows)
    finally:
        await trio.to_thread.run_sync(writer.close)
    return count


def _schema(pa: Any, encodings: dict[str, str]) -> Any:
    types = {"bool": pa.bool_(), "int": pa.int64(), "float": pa.float64(), "str": pa.string(), "json": pa.string()}
    # JSON columns say so in their field metadata, for a reader that wants to decode them.
    fields = [
        pa.field(name, types[enc], metadata={"crawler.encoding": "json"} if enc == "json" else None)
        for name, enc in encodings.items()
    ]
    return pa.schema(fields)


_MISFIT = object()


def _fit(enc: str, value: Any) -> Any:
    """``value`` as its column's encoding wants it, or _MISFIT."""
    if enc == "json":
        return json.dumps(value, ensure_ascii=False)
    kind = _kind(value)
    if enc == "float" and kind in ("int", "float"):
        return float(value)
    return value if kind == enc else _MISFIT


def _parquet_rows(pa: Any, writer: Any, schema: Any, encodings: dict[str, str], rows: list[dict], drift: _Drift):
    values: dict[str, list[Any]] = {name: [] for name in encodings}
    for row in rows:
        for name, enc in encodings.items():
            value = row.get(name)
            if value is not None:
                value = _fit(enc, value)
                if value is _MISFIT:
                    drift.note(name, misfit=True)
                    value = None
            values[name].append(value)
        for key in row.keys() - encodings.keys():
            drift.note(key)
    arrays = [pa.array(values[field.name], type=field.type) for field in schema]
    table = pa.Table.from_arrays(arrays, schema=schema)
    writer.write_table(table, row_group_size=len(rows))
