"""Which links a page may enqueue, and in what form.

Every URL is normalised before the store sees it (so dedup compares like with like):
resolved against the page it was found on, the fragment dropped, scheme and host
lower-cased, a default port (``:80`` for http, ``:443`` for https) removed.  Only http(s)
URLs are ever enqueued: ``file:``, ``javascript:``, ``chrome:``, ``data:``, ``mailto:``
and anything else is skipped and counted by reason, and so are links that the
``[crawl]`` rules (``same_host``, ``include``/``exclude`` globs, ``max_depth``) refuse,
and links longer than ``crawler.urls.MAX_URL_CHARS`` (``too_long``).  A link with
credentials (``user:pass@host``) is kept without them, and counted
(``credentials_stripped``): the crawl never stores a password it found on a page.
"""

from __future__ import annotations

from collections import Counter
from fnmatch import fnmatchcase
from urllib.parse import urlsplit

import attrs

from crawler.config import CrawlSection
from crawler.urls import DEFAULT_PORTS, has_credentials, normalise_url, too_long

__all__ = ["DEFAULT_PORTS", "LinkFilter", "normalise_url"]


@attrs.define
class LinkFilter:
    """The ``[crawl]`` rules for followed links; counts what it refuses, by reason."""

    rules: CrawlSection
    skipped: Counter[str] = attrs.field(factory=Counter)

    def accept(self, raw: str, *, base: str, page_url: str, depth: int) -> str | None:
        """The normalised URL (resolved against ``base``) if a link found on ``page_url``
        may be enqueued at ``depth`` (the child's), else None (and the reason counted)."""
        if too_long(raw):
            self.skipped["too_long"] += 1
            return None
        url = normalise_url(raw, base)
        if url is None:
            self.skipped[_scheme_reason(raw)] += 1
            return None
        if has_credentials(raw):
            self.skipped["credentials_stripped"] += 1  # kept, without them: never stored
        if self.rules.max_depth and depth > self.rules.max_depth:
            self.skipped["max_depth"] += 1
            return None
        if self.rules.same_host and urlsplit(url).hostname != urlsplit(page_url).hostname:
            self.skipped["other_host"] += 1
            return None
        if self.rules.include and not any(fnmatchcase(url, g) for g in self.rules.include):
            self.skipped["not_included"] += 1
            return None
        if any(fnmatchcase(url, g) for g in self.rules.exclude):
            self.skipped["excluded"] += 1
            return None
        return url


def _scheme_reason(raw: object) -> str:
    scheme = urlsplit(raw).scheme.lower() if isinstance(raw, str) and ":" in raw else ""
    return f"scheme_{scheme}" if scheme and scheme not in DEFAULT_PORTS else "invalid"
