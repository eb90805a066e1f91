"""How the Redis store's values are written and read back (the keys are listed in
:mod:`crawler.store.redis.store`): a request as script arguments, a URL record typed as the
SQLite store's, the items of a URL with their fetch times.  Pure functions, no I/O.

A stored value this version cannot read raises :class:`RedisLayoutError`, one line
naming the key: the crawl was written by an incompatible version.
"""

from __future__ import annotations

import json
from collections.abc import Iterator, Mapping, Sequence
from typing import Any

from crawler.errors import ConfigError
from crawler.request import Request
from crawler.store.base import StoredItem

ITEM_BATCH_FIELDS = 6  # values per URL in the item_batch script's reply (see lua/item_batch.lua)


class RedisLayoutError(ConfigError):
    """A value in the crawl's keys that this version cannot read: the crawl was
    written by an incompatible version.  A ConfigError, since the remedy is in the
    configuration (another ``[store] crawl``, or ``--fresh``)."""


def decode_data(key: str, data: str | None) -> dict[str, Any]:
    """A URL record's ``data`` (``key`` names the record in the error): RedisLayoutError
    unless it is absent or a JSON object."""
    if data is None:
        return {}
    try:
        value = json.loads(data)
    except json.JSONDecodeError as exc:
        raise RedisLayoutError(f"{key} data: not JSON: {exc}") from None
    if not isinstance(value, dict):
        raise RedisLayoutError(f"{key} data: expected a JSON object, got {type(value).__name__}")
    return value


def decode_meta(where: str, data: str, count: int, finished_at: float) -> list[tuple[float, int | None]]:
    """The (fetched_at, run) of each of a URL's ``count`` stored items, from its
    ``P item_meta`` entry; '' (the layout before recrawls): the URL's ``finished_at``
    and no run.  RedisLayoutError if it does not match the items."""
    if not data:
        return [(finished_at, None)] * count
    try:
        meta = json.loads(data)
        pairs = [(float(m[1]), int(m[2]) or None if len(m) > 2 else None) for m in meta]
    except (json.JSONDecodeError, TypeError, ValueError, IndexError) as exc:
        raise RedisLayoutError(f"{where} meta: {exc}") from None
    if len(pairs) != count:
        raise RedisLayoutError(f"{where} meta: {len(pairs)} entries for {count} items")
    return pairs


def decode_items(where: str, data: str) -> list[dict[str, Any]]:
    """One URL's stored items (``where`` names them in the error): a JSON array of
    objects, or one object (the previous layout); else RedisLayoutError."""
    try:
        value = json.loads(data)
    except json.JSONDecodeError as exc:
        raise RedisLayoutError(f"{where}: not JSON: {exc}") from None
    if isinstance(value, dict):
        return [value]  # the previous layout: one item per URL, stored as itself
    if isinstance(value, list) and all(isinstance(item, dict) for item in value):
        return value
    raise RedisLayoutError(f"{where}: expected a JSON array of objects, got {data[:60]!r}")


FLOAT_FIELDS = {"ready", "lease_until", "started_at", "finished_at", "elapsed_s", "taken_at"}
INT_FIELDS = {"attempts", "depth", "done_count", "status", "takeovers", "changed_items", "unchanged_items"}


def encode_request(request: Request | str) -> list[str]:
    """The REQUEST_FIELDS script arguments of one request (see ``lua/_add_request.lua``)."""
    if isinstance(request, str):
        return [request, "", "0", "", ""]
    if not isinstance(request.data, dict):
        raise ValueError(f"{request.url}: request data must be a dict, not {type(request.data).__name__}")
    try:
        data = json.dumps(request.data, ensure_ascii=False) if request.data else ""
    except (TypeError, ValueError) as exc:
        raise ValueError(f"{request.url}: request data is not JSON-serialisable: {exc}") from None
    return [request.url, optional_text(request.label), str(int(request.depth)), data, optional_text(request.parent)]


def optional_text(text: str | None) -> str:
    """'' for None, else '=' then the text (so that '' stays a string)."""
    return "" if text is None else "=" + text


def typed_record(key: str, raw: Mapping[str, str]) -> dict[str, Any]:
    """A URL record (``P u:<id>``, named ``key`` in errors) typed as SQLite's
    ``url_state``: the contract's keys always there, the bookkeeping ones as set."""
    record: dict[str, Any] = dict(raw)
    try:
        for name in FLOAT_FIELDS & record.keys():
            record[name] = float(record[name])
        for name in INT_FIELDS & record.keys():
            record[name] = int(record[name])
    except ValueError as exc:
        raise RedisLayoutError(f"{key}: {exc}") from None
    return {
        **record,
        "state": record.get("state", ""),
        "attempts": record.get("attempts", 0),
        "label": record.get("label"),
        "depth": record.get("depth", 0),
        "parent": record.get("parent"),
        "data": decode_data(key, record.get("data")),
        "last_error": record.get("last_error") or None,  # '' in records of the previous layout
        "status": record.get("status"),
        "done_count": record.get("done_count", 0),
        "changed_items": record.get("changed_items"),
        "unchanged_items": record.get("unchanged_items"),
    }


def stored_items(items_key: str, reply: Sequence[str]) -> Iterator[StoredItem]:
    """The items of an ``item_batch`` reply (ITEM_BATCH_FIELDS values per URL: id, url,
    label, items, meta, finished_at), in push order; ``items_key`` names them in errors."""
    for i in range(0, len(reply), ITEM_BATCH_FIELDS):
        job_id, url, label, items_json, meta_json, finished_at = reply[i : i + ITEM_BATCH_FIELDS]
        where = f"{items_key} {job_id}"
        items = decode_items(where, items_json)
        meta = decode_meta(where, meta_json, len(items), float(finished_at))
        for seq, (data, (fetched_at, run)) in enumerate(zip(items, meta, strict=True)):
            yield StoredItem(url, label or None, seq, data, fetched_at, run)
