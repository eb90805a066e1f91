"""What is SQLite's own (the shared contract is tests/crawler/store/test_contract.py):
the schema's versions, and that the database is reached off the event loop."""

from __future__ import annotations

import sqlite3
import stat

import pytest
import trio

from crawler.errors import ConfigError
from crawler.request import Request
from crawler.store.base import Job
from crawler.store.sqlite import SCHEMA_VERSION, SqliteStore

# The first release's tables, as it created them (one item per URL, no request fields).
FIRST_SCHEMA = """
CREATE TABLE frontier (id INTEGER PRIMARY KEY AUTOINCREMENT, url TEXT NOT NULL UNIQUE,
    state TEXT NOT NULL DEFAULT 'pending', attempts INTEGER NOT NULL DEFAULT 0,
    next_attempt_at REAL NOT NULL DEFAULT 0, last_error TEXT, status INTEGER, started_at REAL,
    finished_at REAL, elapsed_s REAL, done_count INTEGER NOT NULL DEFAULT 0);
CREATE TABLE items (url TEXT PRIMARY KEY, data TEXT NOT NULL, extracted_at REAL NOT NULL);
CREATE TABLE runs (id INTEGER PRIMARY KEY AUTOINCREMENT, started_at REAL NOT NULL, finished_at REAL,
    finish_reason TEXT, summary TEXT);
"""


def first_release_db(path) -> None:
    db = sqlite3.connect(path)
    db.executescript(FIRST_SCHEMA)
    db.execute("INSERT INTO frontier (url, state, attempts, done_count) VALUES ('http://a/1', 'done', 1, 1)")
    db.execute("INSERT INTO frontier (url, state, attempts) VALUES ('http://a/2', 'in_progress', 1)")
    db.execute("""INSERT INTO items VALUES ('http://a/1', '{"url": "http://a/1", "name": "Tee"}', 1.0)""")
    db.commit()
    db.close()


async def test_a_first_release_database_is_migrated_in_place_keeping_its_items_and_progress(tmp_path):
    """Old items export unchanged; an interrupted row recovers; new items go next to the old."""
    path = tmp_path / "old.db"
    first_release_db(path)
    store = await SqliteStore.open(path)
    assert list(await store.items()) == [{"url": "http://a/1", "name": "Tee"}]
    assert await store.recover() == 1
    job = await store.claim()
    assert (job.url, job.attempt, job.label, job.depth) == ("http://a/2", 1, None, 0)
    assert await store.complete(job, [{"n": 1}, {"n": 2}], [Request("http://a/3", "p", 1, {}, job.url)], 200, 0.1)
    assert [i.get("name", i.get("n")) for i in await store.items()] == ["Tee", 1, 2]
    assert (await store.url_state("http://a/3"))["label"] == "p"
    store.close()
    (version,) = sqlite3.connect(path).execute("PRAGMA user_version").fetchone()
    assert version == SCHEMA_VERSION


async def test_a_database_of_a_newer_schema_is_refused_in_one_line_and_left_untouched(tmp_path):
    path = tmp_path / "new.db"
    db = sqlite3.connect(path)
    db.execute("CREATE TABLE frontier (id INTEGER PRIMARY KEY, url TEXT)")
    db.execute(f"PRAGMA user_version = {SCHEMA_VERSION + 1}")
    db.commit()
    db.close()
    before = path.read_bytes()
    with pytest.raises(ConfigError, match="newer than this crawler") as info:
        await SqliteStore.open(path)
    assert "\n" not in str(info.value) and str(path) in str(info.value)
    assert path.read_bytes() == before


async def test_a_file_that_is_not_a_database_is_refused_in_one_line(tmp_path):
    path = tmp_path / "notes.db"
    path.write_text("not sqlite at all, " * 100)
    with pytest.raises(ConfigError, match="not a crawler database"):
        await SqliteStore.open(path)


async def test_store_calls_run_off_the_event_loop(tmp_path):
    """While a transaction holds the database, other trio tasks keep running."""
    store = await SqliteStore.open(tmp_path / "s.db")
    await store.add_urls([f"http://a/{i}" for i in range(3)])
    blocker = sqlite3.connect(tmp_path / "s.db", isolation_level=None)
    blocker.execute("BEGIN IMMEDIATE")  # the store's next write waits for this lock (busy_timeout)
    ticks = 0

    async def tick():
        nonlocal ticks
        while True:
            await trio.sleep(0.01)
            ticks += 1

    async with trio.open_nursery() as nursery:
        nursery.start_soon(tick)
        claim = trio.Event()

        async def claim_one():
            await store.claim()
            claim.set()

        nursery.start_soon(claim_one)
        await trio.sleep(0.3)
        assert not claim.is_set() and ticks >= 3  # a blocked event loop would not tick at all
        blocker.execute("COMMIT")
        await claim.wait()
        nursery.cancel_scope.cancel()
    store.close()


def test_job_is_a_value():
    assert Job(1, "u", 1) == Job(1, "u", 1)


async def test_a_new_database_and_its_wal_and_shm_are_private_to_their_owner(tmp_path):
    """Saved sessions are secrets: a new database is created 0600 (SQLite alone would
    make it 0644 under the usual umask), and its -wal and -shm take its mode."""
    path = tmp_path / "c.db"
    store = await SqliteStore.open(path)
    try:
        await store.add_urls(["http://shop.test/1"])  # a write: the -wal and -shm exist
        modes = {p.name: stat.S_IMODE(p.stat().st_mode) for p in tmp_path.glob("c.db*") if not p.name.endswith(".lock")}
    finally:
        store.close()
    assert set(modes) >= {"c.db", "c.db-wal", "c.db-shm"}
    assert set(modes.values()) == {0o600}, modes


async def test_saving_a_state_makes_an_older_wider_database_private(tmp_path):
    """A database an earlier version made 0644 becomes 0600 (its -wal and -shm too)
    when it first holds a saved state."""
    path = tmp_path / "old.db"
    sqlite3.connect(path).close()
    path.chmod(0o644)
    store = await SqliteStore.open(path)
    try:
        assert stat.S_IMODE(path.stat().st_mode) == 0o644
        await store.session_states.save("direct", {"cookies": [], "origins": []}, 1.0)
        modes = {
            p.name: stat.S_IMODE(p.stat().st_mode) for p in tmp_path.glob("old.db*") if not p.name.endswith(".lock")
        }
    finally:
        store.close()
    assert set(modes.values()) == {0o600}, modes
