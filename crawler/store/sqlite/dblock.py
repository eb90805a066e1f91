"""One crawl per SQLite database: an OS lock held for as long as the store is open.

Why refuse rather than cooperate: the SQLite store's claims carry no lease and no
heartbeat, so it cannot tell a live process's ``in_progress`` row from a dead one's;
its :meth:`~crawler.store.sqlite.SqliteStore.recover` puts *every* such row back to
pending, which is only right when no other process holds any.  Cooperation is what
the Redis backend is for (leases renewed while the worker lives, taken over when it
dies).  So a second process on the same database refuses at once, with one line
naming the holder, before it reads or writes anything.

The lock is ``fcntl.flock(LOCK_EX | LOCK_NB)`` on ``<db>.lock``: the kernel drops it
when the holder exits in any way (SIGKILL and OOM kills included), so there is never
a stale lock to clean up by hand, and the file is never deleted (deleting a lock file
lets two processes lock two different files).  The file holds the holder's record
(pid, host, since when, as JSON), read only for the refusal message.  The
descriptor is not inherited by child processes (Chromium), so it dies with the
crawler.  Within one process the lock is shared (counted) by every store opened on
the same file.  ``flock`` is per host: on a network file system the lock may not be
seen from another machine; use the Redis backend for crawls spread over machines.
"""

from __future__ import annotations

import fcntl
import json
import os
import socket
import time
from pathlib import Path

import attrs

from crawler.errors import ConfigError


class DatabaseInUse(ConfigError):
    """Another process holds the database: the message names it (pid, host, since when)."""


_held: dict[str, _Held] = {}  # real path of the lock file -> this process's lock on it


@attrs.define
class _Held:
    fd: int
    users: int


def lock_path(db: str | Path) -> Path:
    return Path(f"{db}.lock")


def acquire(db: str | Path) -> str:
    """Take the database's lock for this process (or count one more user of it);
    returns the key to :func:`release`.  Raises ConfigError, one line naming the
    holder, if another process holds it, or naming the path if it cannot be made."""
    path = lock_path(db)
    key = os.path.realpath(path)
    if key in _held:
        _held[key].users += 1
        return key
    try:
        fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o644)
    except OSError as exc:
        raise ConfigError(f"{db}: cannot create its lock file {str(path)!r}: {exc.strerror or exc}") from None
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        holder = _read_holder(fd)
        os.close(fd)
        raise DatabaseInUse(f"{db}: in use by another crawl ({holder}); one crawl per database") from None
    except OSError as exc:
        os.close(fd)
        raise ConfigError(f"{db}: cannot lock {str(path)!r}: {exc.strerror or exc}") from None
    record = {"pid": os.getpid(), "host": socket.gethostname(), "since": time.time()}
    try:
        os.ftruncate(fd, 0)
        os.pwrite(fd, json.dumps(record).encode(), 0)
    except OSError:
        pass  # the record is only for the message; the lock is what protects
    _held[key] = _Held(fd, 1)
    return key


def release(key: str) -> None:
    """One user fewer; the last one closes the file, which drops the lock."""
    held = _held.get(key)
    if held is None:
        return
    held.users -= 1
    if held.users <= 0:
        del _held[key]
        os.close(held.fd)


def _read_holder(fd: int) -> str:
    try:
        record = json.loads(os.pread(fd, 4096, 0) or b"{}")
        since = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(float(record["since"])))
        return f"pid {int(record['pid'])} on {record['host']}, since {since}"
    except (OSError, ValueError, KeyError, TypeError):
        return "a process that left no record yet"
