"""Saved session states in SQLite (the :class:`~crawler.store.base.SessionStates`
contract): a row per identity in ``session_states``, and the login leases in
``session_leases``.

One process owns the database (see :mod:`crawler.store.sqlite.dblock`), so a login
lease here only orders the logins of that process; it keeps the contract all the
same, so the code above it does not ask which backend it has.  Lease times are this
machine's clock (``time.time``).

A state is a secret: the database file is created 0600 (its ``-wal`` and ``-shm``
take the file's mode), and a save makes sure the three are 0600 even in a database
that was created wider by an earlier version.
"""

from __future__ import annotations

import json
import os
import secrets
import sqlite3
import stat
import time
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

from crawler.store.base import SavedState

T = TypeVar("T")

# Runs ``fn(db)`` in the store's thread, in one transaction (see SqliteStore.session_states).
InTransaction = Callable[[Callable[[sqlite3.Connection], T]], Awaitable[T]]

PRIVATE_MODE = 0o600  # the database and its -wal, -shm: read and written by their owner only


class SqliteSessionStates:
    """The saved states and login leases of the database at ``path``, through the
    store's ``in_transaction`` (each method one transaction in the store's thread)."""

    def __init__(self, in_transaction: InTransaction[Any], path: str):
        self._in_transaction = in_transaction
        self._path = path

    async def load(self, identity: str) -> SavedState | None:
        def load(db: sqlite3.Connection) -> SavedState | None:
            row = db.execute("SELECT state, saved_at FROM session_states WHERE identity=?", (identity,)).fetchone()
            return SavedState(json.loads(row[0]), row[1]) if row is not None else None

        return await self._in_transaction(load)

    async def save(self, identity: str, state: dict[str, Any], saved_at: float) -> None:
        text = json.dumps(state, ensure_ascii=False, separators=(",", ":"))

        def save(db: sqlite3.Connection) -> None:
            db.execute(
                """INSERT INTO session_states (identity, state, saved_at) VALUES (?, ?, ?)
                   ON CONFLICT (identity) DO UPDATE SET state=excluded.state, saved_at=excluded.saved_at""",
                (identity, text, saved_at),
            )
            keep_private(self._path)

        await self._in_transaction(save)

    async def delete(self, identity: str, saved_at: float | None = None) -> bool:
        def delete(db: sqlite3.Connection) -> bool:
            cur = db.execute(
                "DELETE FROM session_states WHERE identity=? AND (? IS NULL OR saved_at=?)",
                (identity, saved_at, saved_at),
            )
            return cur.rowcount > 0

        return await self._in_transaction(delete)

    async def identities(self) -> list[str]:
        def identities(db: sqlite3.Connection) -> list[str]:
            return [i for (i,) in db.execute("SELECT identity FROM session_states ORDER BY identity")]

        return await self._in_transaction(identities)

    async def clear(self) -> int:
        return await self._in_transaction(lambda db: db.execute("DELETE FROM session_states").rowcount)

    async def acquire_lease(self, identity: str, ttl_s: float) -> str | None:
        token = secrets.token_hex(8)

        def acquire(db: sqlite3.Connection) -> str | None:
            now = time.time()
            row = db.execute("SELECT until FROM session_leases WHERE identity=?", (identity,)).fetchone()
            if row is not None and row[0] > now:
                return None
            db.execute(
                """INSERT INTO session_leases (identity, token, until) VALUES (?, ?, ?)
                   ON CONFLICT (identity) DO UPDATE SET token=excluded.token, until=excluded.until""",
                (identity, token, now + ttl_s),
            )
            return token

        return await self._in_transaction(acquire)

    async def renew_lease(self, identity: str, token: str, ttl_s: float) -> bool:
        def renew(db: sqlite3.Connection) -> bool:
            now = time.time()
            cur = db.execute(
                "UPDATE session_leases SET until=? WHERE identity=? AND token=? AND until > ?",
                (now + ttl_s, identity, token, now),
            )
            return cur.rowcount > 0

        return await self._in_transaction(renew)

    async def release_lease(self, identity: str, token: str) -> None:
        await self._in_transaction(
            lambda db: db.execute("DELETE FROM session_leases WHERE identity=? AND token=?", (identity, token))
        )


def create_private(path: str) -> None:
    """Create the database file ``path`` 0600 if it does not exist yet (SQLite would
    create it with the umask's mode, 0644 as a rule); its ``-wal`` and ``-shm`` take
    its mode.  Nothing for an in-memory database."""
    if path == ":memory:" or path.startswith("file:"):
        return
    try:
        os.close(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, PRIVATE_MODE))
    except OSError:
        pass  # there already, or a folder we may not write in: SQLite's own open says so


def keep_private(path: str) -> None:
    """Make the database and its ``-wal`` and ``-shm`` 0600 if they are wider (a
    database made by an earlier version, before it held a secret)."""
    for name in (path, f"{path}-wal", f"{path}-shm"):
        try:
            mode = stat.S_IMODE(os.stat(name).st_mode)
            if mode & 0o077:
                os.chmod(name, mode & 0o700)
        except OSError:
            pass  # absent (no WAL yet), or not ours to change: the save stands
