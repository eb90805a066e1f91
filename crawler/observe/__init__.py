"""Seeing a crawl: figures, checks and outputs that read the running parts and never
drive them.

:mod:`~crawler.observe.stats` holds the frozen ``statistics()`` snapshots every part
publishes; :mod:`~crawler.observe.memory` samples PSS (:mod:`~crawler.observe.pss`) and
runs the memory-budget throttle; :mod:`~crawler.observe.load` reads the process tree's
CPU, the free memory and the event loop's lag (the autoscaler's readings); :mod:`~crawler.observe.invariants` checks that the
pool's tabs, the leases and the store agree; :mod:`~crawler.observe.metrics` serves
Prometheus and ``/healthz``, :mod:`~crawler.observe.status` the status page;
:mod:`~crawler.observe.progress` and :mod:`~crawler.observe.summary` are the terminal
output, :mod:`~crawler.observe.report` the ``report`` command;
:mod:`~crawler.observe.snapshots` keeps screenshots and HTML of failed pages.

May import ``crawler.browser``, ``crawler.store``, ``crawler.config`` and the leaves;
never ``crawler.run`` (the run composes the observers, not the other way round).
"""
