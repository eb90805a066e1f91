"""The Redis store: a shared frontier, so that many workers on many machines crawl
one crawl (``[store] backend = "redis"``).

:mod:`~crawler.store.redis.store` is :class:`~crawler.store.redis.store.RedisStore` and
:func:`~crawler.store.redis.store.open_redis_store` (its key layout is drawn in its
docstring); :mod:`~crawler.store.redis.leases` the claims, outcomes and lease renewals;
:mod:`~crawler.store.redis.reader` the reading side (counts, items, runs);
:mod:`~crawler.store.redis.crawl` the crawl's name and key prefix;
:mod:`~crawler.store.redis.layout` how values are encoded;
:mod:`~crawler.store.redis.link` the connection through outages;
:mod:`~crawler.store.redis.pace` the per-host pace shared by every worker;
:mod:`~crawler.store.redis.scripts` loads the Lua scripts of ``lua/``, one per
transition, each atomic on the server.

May import the store's contract (:mod:`crawler.store.base`), ``crawler.policy``,
``crawler.config`` and the leaves; never the SQLite backend.
"""
