"""Where a crawl's URLs come from: ``[input]`` (a URL list, a file, an id range,
sitemaps) read as a stream (:mod:`~crawler.sources.inputs`,
:mod:`~crawler.sources.sitemaps`: bounded, XXE-proof), and the feed that keeps the
store's frontier topped up from it, resuming at the saved position
(:mod:`~crawler.sources.feed`).

May import ``crawler.store``, ``crawler.config``, ``crawler.policy`` and the leaves.
"""
