"""Running a crawl: the composition of every other part.

:mod:`~crawler.run.router` maps labels to handlers (Python, or TOML routes) and runs a
route on a page; :mod:`~crawler.run.job` is the life of one URL, written once (lease,
watchdog, route, failure named); :mod:`~crawler.run.jobs` runs workers that claim URLs
and store each outcome; :mod:`~crawler.run.supervisor` keeps a browser and its pool
alive under the workers, restarting it when it dies; :mod:`~crawler.run.engine` is one
crawl (:class:`~crawler.run.engine.Crawler`, :func:`~crawler.run.engine.crawl`) with its
monitors; :mod:`~crawler.run.tryout` is ``crawler try``: one URL, nothing stored.
:mod:`~crawler.run.slots` is how many jobs run at once (the workers' gate) and what the
workers do meanwhile; :mod:`~crawler.run.autoscale` sizes it with ``concurrency = "auto"``.

The top floor: may import every part below it; nothing in ``crawler`` imports it but
the CLI and the public surface.
"""
