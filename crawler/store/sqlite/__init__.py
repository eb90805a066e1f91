"""The SQLite store: the embedded default, one process per database file.

:mod:`~crawler.store.sqlite.store` is :class:`SqliteStore` (every transition one
transaction, every call in a worker thread); :mod:`~crawler.store.sqlite.schema` the
schema and its migrations; :mod:`~crawler.store.sqlite.read` the read queries;
:mod:`~crawler.store.sqlite.dblock` the lock that keeps a second process off the file.

May import the store's contract (:mod:`crawler.store.base`), ``crawler.policy`` and the
leaves; never the Redis backend.
"""

from crawler.store.sqlite.schema import SCHEMA_VERSION as SCHEMA_VERSION
from crawler.store.sqlite.store import SqliteStore as SqliteStore
