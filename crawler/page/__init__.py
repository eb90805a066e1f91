"""One page of a crawl: what a handler holds while its job runs.

:mod:`~crawler.page.page` is :class:`~crawler.page.page.Page` (navigate, wait, extract,
click, scroll, push items, enqueue links); :mod:`~crawler.page.traffic` follows the tab's
network events (statuses, in-flight requests, captures, pacing of documents);
:mod:`~crawler.page.links` decides which links are followed; :mod:`~crawler.page.script`
compiles fields into one JavaScript expression; :mod:`~crawler.page.tab` prepares a new
tab once, before its first navigation.

May import ``cdp``, ``crawler.browser``, ``crawler.policy``, ``crawler.config`` and the
leaves; never a store (a page's output is handed back to the job, which stores it).
"""
