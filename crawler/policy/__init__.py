"""Policies: small pure decisions about one URL, with no browser and no store.

:mod:`~crawler.policy.failure` names how a page failed (HTTP statuses, network errors)
and whether that is worth another attempt; :mod:`~crawler.policy.retry` decides when
(backoff, ``Retry-After``, a pause for the host); :mod:`~crawler.policy.ratelimit` keeps
the gaps between requests to one host; :mod:`~crawler.policy.watchdog` is the job's
cancel scope (timeout + jitter); :mod:`~crawler.policy.robots` reads robots.txt;
:mod:`~crawler.policy.autoscale` decides, from one tick's load, how many jobs run at once
(``concurrency = "auto"``).

May import only the leaves (``crawler.errors``, ``crawler.request``, ``crawler.urls``)
and ``crawler.config``.
"""
