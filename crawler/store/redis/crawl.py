"""One crawl on one Redis, as one worker reaches it: the crawl's name, its keys (all
under one prefix, listed in :mod:`crawler.store.redis.store`), and its scripts
(:mod:`crawler.store.redis.scripts`), run through the worker's
:class:`~crawler.store.redis.link.RedisLink`.  The parts of the Redis store
(:mod:`~crawler.store.redis.store`, :mod:`~crawler.store.redis.leases`,
:mod:`~crawler.store.redis.reader`) reach Redis through a :class:`RedisCrawl`.
"""

from __future__ import annotations

import functools
import hashlib
import os
import secrets
import socket
from collections.abc import Awaitable, Callable, Sequence
from typing import Any, TypeVar

import coredis

from crawler.store.base import StoreSettings
from crawler.store.redis.link import RedisLink
from crawler.store.redis.scripts import SCRIPT_KEYS, SCRIPTS

CRAWL_HASH_CHARS = 12  # hex digits of the config's hash in a derived crawl name (48 bits)

F = TypeVar("F", bound=Callable[..., Awaitable[Any]])


def crawl_name(settings: StoreSettings) -> str:
    """The crawl a config's workers share: ``[store] crawl``, else the site name and a
    short hash of the config file's absolute path and the site name.  Never a constant:
    two unrelated configs without names (both ``"site"``) on one Redis must not merge
    their frontiers.  Workers on several machines share a crawl when they read the
    config from the same path (one image); otherwise they need ``[store] crawl``."""
    if settings.store.crawl:
        return settings.store.crawl
    origin = f"{os.path.abspath(settings.source)}\0{settings.site}"
    return f"{settings.site}-{hashlib.sha256(origin.encode()).hexdigest()[:CRAWL_HASH_CHARS]}"


def key_prefix(crawl: str) -> str:
    """The prefix of every key of ``crawl``; the braces are a Redis Cluster hash tag."""
    return f"crawler:{{{crawl}}}:"


def new_worker_id() -> str:
    """``host:pid:random``: unique per store instance, readable in ``P workers``."""
    return f"{socket.gethostname()}:{os.getpid()}:{secrets.token_hex(3)}"


def translated(method: F) -> F:
    """A method (of an object whose ``link`` is the store's
    :class:`~crawler.store.redis.link.RedisLink`) that runs through that link: while
    Redis cannot be reached it waits for it to be back (and runs again; every method is
    safe to run twice), up to ``[store] outage_s``; then, and for any other Redis
    failure, it raises :class:`~crawler.store.StoreError`, one line naming the server:
    what the engine treats as fatal for the crawl, as a full disk for SQLite."""

    @functools.wraps(method)
    async def call(self: Any, *args: Any, **kwargs: Any) -> Any:
        return await self.link.call(lambda: method(self, *args, **kwargs))

    return call  # type: ignore[return-value]


class RedisCrawl:
    """The keys and the scripts of crawl ``crawl`` through ``client``, and the ``link``
    that tells whether Redis can be reached.  Its calls go straight to Redis: the
    callers choose whether one waits for Redis through the link."""

    def __init__(self, client: coredis.Redis[str], crawl: str, link: RedisLink):
        self.client = client
        self.crawl = crawl
        self.prefix = key_prefix(crawl)
        self.link = link
        self._scripts = {name: client.register_script(src) for name, src in SCRIPTS.items()}

    def key(self, name: str) -> str:
        """The full name of one of the crawl's keys (``"u:17"``, ``"held:" + worker``...)."""
        return self.prefix + name

    async def load_scripts(self) -> None:
        """Load the scripts into Redis's script cache up front (else each one's first
        EVALSHA fails with NOSCRIPT and is sent again as EVAL)."""
        for source in SCRIPTS.values():
            await self.client.script_load(source)

    async def run(self, script: str, *args: Any) -> Any:
        """One of the crawl's scripts, its keys declared: the prefix, then its fixed keys
        (see :data:`crawler.store.redis.scripts.SCRIPT_KEYS`), all in the crawl's hash slot."""
        keys = [self.prefix, *(self.prefix + name for name in SCRIPT_KEYS[script])]
        return await self._scripts[script](keys=keys, args=list(args))

    async def run_on(self, script: str, keys: Sequence[str], args: Sequence[str]) -> Any:
        """Script ``script`` of :data:`crawler.store.redis.scripts.SCRIPTS` on ``keys``
        (those it takes: not a crawl script's declared ones) with ``args``."""
        return await self._scripts[script](keys=list(keys), args=list(args))

    async def server_time(self) -> float:
        """Redis's clock (seconds), the one leases and ready times are in."""
        return float(await self.run_on("time", [self.prefix], []))  # the crawl's node's clock
