"""The SQLite store's database file: its schema, the migrations from older versions,
and the transaction every write of the store runs in (see :mod:`crawler.store.sqlite`).

Schema versions (``PRAGMA user_version``): 0 is the first release's (one item per URL,
no request fields), 2 has no recrawls; both are migrated in place, in one transaction,
to 3.  A newer version than this code knows is refused with a one-line error.  The
saved session tables (``session_states``, ``session_leases``) came later without a
new version: they are only added, and a version that does not know them ignores them.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from contextlib import contextmanager

from crawler.errors import ConfigError

SCHEMA_VERSION = 3
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
    done_count INTEGER NOT NULL DEFAULT 0,
    label TEXT,
    depth INTEGER NOT NULL DEFAULT 0,
    data TEXT,
    parent TEXT,
    token TEXT,
    recrawl_at REAL,
    changed_items INTEGER,
    unchanged_items INTEGER
);
CREATE INDEX IF NOT EXISTS frontier_ready ON frontier (state, next_attempt_at, id);
CREATE INDEX IF NOT EXISTS frontier_recrawl ON frontier (recrawl_at) WHERE recrawl_at IS NOT NULL;
CREATE TABLE IF NOT EXISTS items (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    url_id INTEGER NOT NULL,
    seq INTEGER NOT NULL,
    data TEXT NOT NULL,
    extracted_at REAL NOT NULL,  -- the fetch that stored this content (kept while it is unchanged)
    hash TEXT,  -- store.item_hash of data; NULL in rows older than version 3
    run_id INTEGER,  -- the run of that fetch
    UNIQUE (url_id, seq)
);
CREATE TABLE IF NOT EXISTS runs (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    started_at REAL NOT NULL,
    finished_at REAL,
    finish_reason TEXT,
    summary TEXT
);
CREATE TABLE IF NOT EXISTS input_feed (
    input_key TEXT PRIMARY KEY,
    position INTEGER NOT NULL
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
CREATE TABLE IF NOT EXISTS session_states (
    identity TEXT PRIMARY KEY,  -- direct, or a proxy as scheme://host:port
    state TEXT NOT NULL,  -- Playwright's storage-state JSON: a secret
    saved_at REAL NOT NULL
);
CREATE TABLE IF NOT EXISTS session_leases (
    identity TEXT PRIMARY KEY,
    token TEXT NOT NULL,
    until REAL NOT NULL
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

# Version 0 -> 2: the request fields and the claim token on frontier; items become one
# row per pushed item (url_id, seq) instead of one per URL.
MIGRATE_0_TO_2 = """
ALTER TABLE frontier ADD COLUMN label TEXT;
ALTER TABLE frontier ADD COLUMN depth INTEGER NOT NULL DEFAULT 0;
ALTER TABLE frontier ADD COLUMN data TEXT;
ALTER TABLE frontier ADD COLUMN parent TEXT;
ALTER TABLE frontier ADD COLUMN token TEXT;
ALTER TABLE items RENAME TO items_v0;
CREATE TABLE items (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    url_id INTEGER NOT NULL,
    seq INTEGER NOT NULL,
    data TEXT NOT NULL,
    extracted_at REAL NOT NULL,
    UNIQUE (url_id, seq)
);
INSERT INTO items (url_id, seq, data, extracted_at)
    SELECT f.id, 0, i.data, i.extracted_at FROM items_v0 i JOIN frontier f ON f.url = i.url ORDER BY f.id;
DROP TABLE items_v0;
"""

# Version 2 -> 3: recrawls (the URL's due time, its last fetch's changed and unchanged
# item counts) and the items' content hash and run.
MIGRATE_2_TO_3 = """
ALTER TABLE frontier ADD COLUMN recrawl_at REAL;
ALTER TABLE frontier ADD COLUMN changed_items INTEGER;
ALTER TABLE frontier ADD COLUMN unchanged_items INTEGER;
ALTER TABLE items ADD COLUMN hash TEXT;
ALTER TABLE items ADD COLUMN run_id INTEGER;
"""


@contextmanager
def transaction(db: sqlite3.Connection) -> Iterator[sqlite3.Connection]:
    """``BEGIN IMMEDIATE`` on ``db``, committed at the end of the block, rolled back if
    it raises (or if the COMMIT fails)."""
    db.execute("BEGIN IMMEDIATE")
    try:
        yield db
        db.execute("COMMIT")
    except BaseException:
        if db.in_transaction:  # a failed COMMIT (disk full) leaves it open
            db.execute("ROLLBACK")
        raise


def check_version(db: sqlite3.Connection, path: str) -> None:
    """ConfigError (one line naming ``path``) if the database's schema is newer than
    this code's; nothing is written."""
    (version,) = db.execute("PRAGMA user_version").fetchone()
    if version > SCHEMA_VERSION:
        raise ConfigError(
            f"{path}: database schema version {version} is newer than this crawler's ({SCHEMA_VERSION}):"
            " refusing to touch it"
        )


def prepare_schema(db: sqlite3.Connection) -> None:
    """Bring the database to SCHEMA_VERSION: migrate an older one in place (all of it
    or none), then create what is missing."""
    (version,) = db.execute("PRAGMA user_version").fetchone()
    tables = {t for (t,) in db.execute("SELECT name FROM sqlite_master WHERE type='table'")}
    if "frontier" in tables and version < SCHEMA_VERSION:
        columns = {c[1] for c in db.execute("PRAGMA table_info(frontier)")}
        steps = [] if "label" in columns else [MIGRATE_0_TO_2]
        steps += [] if "recrawl_at" in columns else [MIGRATE_2_TO_3]
        if steps:
            with transaction(db):  # all of it or none
                for statement in ";".join(steps).split(";"):
                    if statement.strip():
                        db.execute(statement)
                db.execute(f"PRAGMA user_version = {SCHEMA_VERSION}")
    db.executescript(SCHEMA)
    db.execute(f"PRAGMA user_version = {SCHEMA_VERSION}")
