"""The crawler's exceptions: a leaf every part may import.

::

    Exception
    ├── ConfigError          bad configuration or input: one line naming the file, key or URL
    │   └── DatabaseInUse    (crawler.store.sqlite.dblock) another process holds the SQLite database
    ├── StoreError           the store cannot be read or written any more: fatal for the crawl
    └── PageFailure          a page job produced no outcome: data (a reason stored with the URL)
        ├── JavaScriptError  an expression evaluated in the page threw
        └── SessionRetired   the site blocked the session: retried in another

Only ``ConfigError`` and ``StoreError`` end a crawl.  A ``PageFailure`` is raised inside
one job (by the page, or by a handler: ``raise crawler.PageFailure("blocked",
retryable=True)``) and becomes that URL's stored reason; the statuses and network
errors that decide retrying are :mod:`crawler.policy.failure`'s.
"""

from __future__ import annotations


class ConfigError(Exception):
    """Bad configuration or input: the message is one line naming file and key."""


class StoreError(Exception):
    """The store cannot be read or written any more (disk full, I/O error, the server
    gone): fatal for the crawl.  The message is one line naming the database."""


class PageFailure(Exception):
    """A page job did not produce its outcome.

    ``kind`` is the reason's first word (``http_404``, ``timeout``, ``blocked``...);
    ``retryable`` whether another attempt may succeed; ``tab_reusable`` whether the tab
    is in a known state (else it is closed rather than given back)."""

    def __init__(
        self,
        kind: str,
        detail: str = "",
        *,
        retryable: bool = False,
        tab_reusable: bool = True,
        status: int | None = None,
        retry_after_s: float | None = None,
    ):
        self.kind = kind
        self.detail = detail
        self.retryable = retryable
        self.tab_reusable = tab_reusable
        self.status = status
        self.retry_after_s = retry_after_s
        super().__init__(self.reason)

    @property
    def reason(self) -> str:
        return f"{self.kind}: {self.detail}" if self.detail else self.kind


class JavaScriptError(PageFailure):
    """An expression evaluated in the page threw (not retried: the page's code or ours is wrong)."""

    def __init__(self, detail: str):
        super().__init__("js_error", detail, retryable=False)


class SessionRetired(PageFailure):
    """The site blocked the session (or its proxy failed): the session is retired, its
    context drained, and the URL retried in another (see :mod:`crawler.browser.session`).
    ``detail`` is the retirement's reason: ``status_403``, ``retire_if``,
    ``proxy_error``, or the handler's own."""

    def __init__(self, reason: str):
        super().__init__("retired", reason, retryable=True, tab_reusable=False)
