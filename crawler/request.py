"""The one :class:`Request`: a URL to crawl and what its handler is told about it.
A leaf every part may import (the store keeps requests, pages enqueue them, handlers
read them)."""

from __future__ import annotations

from typing import Any

import attrs


@attrs.frozen
class Request:
    """A URL to crawl and what its handler is told about it.

    ``url`` is normalised by whoever makes the request (:mod:`crawler.page.links`); the
    store compares URLs as given.  ``data`` must be JSON-serialisable; ``parent`` is the
    URL of the page that enqueued it (None for ``[input]`` URLs)."""

    url: str
    label: str | None = None
    depth: int = 0
    data: dict[str, Any] = attrs.field(factory=dict, eq=False, hash=False)
    parent: str | None = None
