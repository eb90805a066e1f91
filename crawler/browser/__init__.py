"""The browser side of a crawl: what holds tabs and contexts, and what a context is.

:mod:`~crawler.browser.launch` opens the browser ``[browser]`` asks for (launched, or
reached at ``cdp_url``); :mod:`~crawler.browser.pool` owns every tab and context of one
browser and lends tabs out under leases (recycling tabs, rotating contexts, closing
popups); :mod:`~crawler.browser.session` makes each context a session (its proxy, its
identity, its retirement); :mod:`~crawler.browser.identity` applies an identity to a tab,
with the client hints and platform :mod:`~crawler.browser.client_hints` derives from its
user agent.

Speaks to Chromium only through ``cdp``'s public names.  May import ``cdp``,
``crawler.config``, ``crawler.policy`` and the leaves; knows nothing of pages, stores
or runs.
"""
