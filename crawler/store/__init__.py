"""The store: a crawl's frontier, items and runs, behind one contract.

:mod:`crawler.store.base` is the contract (:class:`~crawler.store.base.Store`, a
Protocol) and the types it speaks; it imports no backend.  The backends keep it, each
in its own module: :mod:`crawler.store.sqlite` (the embedded default, one process per
database, guarded by :mod:`crawler.store.sqlite.dblock`) and :mod:`crawler.store.redis` (many
workers on one Redis or a Redis Cluster).  One contract test suite runs against each.
:func:`open_store`, here one floor up, picks the backend a config names;
:mod:`crawler.store.exports` streams a store's items out as JSONL, CSV or Parquet.

May import: ``crawler.config``, ``crawler.policy`` (a store keeps the per-host pace),
and the leaves (``crawler.errors``, ``crawler.request``, ``crawler.urls``,
``crawler._trio``).  The backends never import each other.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

from crawler.errors import ConfigError, StoreError
from crawler.store.base import STATES, Job, RunRecord, SavedState, SessionStates, Store, StoredItem, StoreSettings

__all__ = [
    "STATES",
    "Job",
    "RunRecord",
    "SavedState",
    "SessionStates",
    "Store",
    "StoreError",
    "StoreSettings",
    "StoredItem",
    "open_store",
]


@asynccontextmanager
async def open_store(settings: StoreSettings, *, exclusive: bool = True) -> AsyncIterator[Store]:
    """The store ``settings`` names (``StoreSettings.of(config)``): SQLite at ``[output]
    db`` unless ``[store] backend = "redis"``, capped at ``[crawl] max_pages``, closed on exit.  SQLite: held by this
    process only (``exclusive=False``: no lock, for readers); ConfigError, one line
    naming the holder, if another process holds it."""
    if settings.store.backend == "redis":
        from crawler.store.redis.store import open_redis_store

        async with open_redis_store(settings) as redis_store:
            yield redis_store
        return
    path = Path(settings.db)
    if not path.parent.exists():
        raise ConfigError(f"{settings.source}: [output] db: folder {str(path.parent)!r} does not exist")
    from crawler.store.sqlite import SqliteStore

    store = await SqliteStore.open(path, max_urls=settings.max_urls, exclusive=exclusive)
    try:
        yield store
    finally:
        store.close()
