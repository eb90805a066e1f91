"""The HTTP path's transport: one httpx client per session (:mod:`.client`), response
bodies read within bounds and decoded (:mod:`.body`), the session's cookies wherever
they live (:mod:`.cookies`: a browser context's, or a jar of our own), and HTML parsed
into the field language's values without a browser (:mod:`.document`).

Knows nothing of jobs, routes or the store: what a handler sees of an HTTP page is
:mod:`crawler.page.http`'s, and the life of an HTTP job is :mod:`crawler.run.job`'s.
May import the config, the policy and the leaves (errors, urls), and cdp (a context's
cookies).
"""
