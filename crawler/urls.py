"""URLs: the one canonical form every source's URLs are stored in, and the short form
log lines and error messages show.

Pure functions, no imports from the rest of the crawler (``config``, ``links`` and
``inputs`` all use them).
"""

from __future__ import annotations

from urllib.parse import urljoin, urlsplit, urlunsplit

DEFAULT_PORTS = {"http": 80, "https": 443}
SHORT_URL_CHARS = 120  # a URL in a log line or an error message is cut to this many characters


def normalise_url(url: str, base: str | None = None) -> str | None:
    """The canonical form of ``url`` (relative to ``base``), or None if it is not an
    http(s) URL with a host: resolved against ``base``, the fragment dropped, scheme
    (any case on input) and host lower-cased, a default port removed."""
    if not isinstance(url, str):
        return None
    url = url.strip()
    if base:
        url = urljoin(base, url)
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError:
        return None
    scheme = parts.scheme.lower()
    host = (parts.hostname or "").lower()
    if scheme not in DEFAULT_PORTS or not host:
        return None
    if ":" in host:
        host = f"[{host}]"  # IPv6 literal
    netloc = host if port is None or port == DEFAULT_PORTS[scheme] else f"{host}:{port}"
    if parts.username or parts.password:
        userinfo = parts.username or ""
        if parts.password:
            userinfo += f":{parts.password}"
        netloc = f"{userinfo}@{netloc}"
    return urlunsplit((scheme, netloc, parts.path or "/", parts.query, ""))


def short_url(url: object, limit: int = SHORT_URL_CHARS) -> str:
    """``url`` for a log line or an error message: cut to ``limit`` characters, with how
    many were left out (a 200 KB URL must not fill the log on every line)."""
    text = url if isinstance(url, str) else repr(url)
    if len(text) <= limit:
        return text
    return f"{text[:limit]}...(+{len(text) - limit} chars)"
