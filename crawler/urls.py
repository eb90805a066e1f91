"""URLs: the one canonical form every source's URLs are stored in, and the short form
log lines and error messages show.

Pure functions, no imports from the rest of the crawler (``config``, ``links`` and
``inputs`` all use them).
"""

from __future__ import annotations

import re
from urllib.parse import urljoin, urlsplit, urlunsplit

DEFAULT_PORTS = {"http": 80, "https": 443}
SHORT_URL_CHARS = 120  # a URL in a log line or an error message is cut to this many characters
# The longest URL the crawler takes from any source (inputs, sitemaps, links, redirects):
# browsers and servers commonly stop near 8 KiB, and a URL is written into every log
# line, database row and export of its page.  A 250 MiB <loc> was once taken whole.
MAX_URL_CHARS = 8192
REFUSED_QUOTE_CHARS = 100  # an over-long URL is quoted this far in its one line
_CONTROL = re.compile("[\x00-\x1f\x7f ]")  # percent-encoded inside a URL: one rule everywhere
_CREDENTIALS = re.compile(r"^([a-zA-Z][a-zA-Z0-9+.-]*://)([^/?#@]*@)")

# Schemes a tab never navigates to, whoever asks (our goto, a link, the page's script, a
# redirect): each reaches the host's files or the browser's own privileged pages, and a
# crawler has nothing to read there.  file: (any file the browser's user may read:
# /etc/passwd, the profile's cookie database), filesystem: (files of a site's sandboxed
# file system), view-source: (the source of any URL, file: included); chrome:,
# chrome-untrusted:, chrome-search:, chrome-extension: (WebUI and extension pages, with
# powers no web page has: settings, internals, downloads) and devtools: (the DevTools
# front end, which drives the browser).  Not here: about: (about:blank is every fresh
# tab, and Chromium's own block page is about:blank#blocked), chrome-error: (the page a
# failed navigation commits), and data: and javascript:, which goto refuses like any
# non-http(s) URL but a page may use: a data: document is an opaque-origin page made
# of the page's own bytes (Chromium already refuses it as a top-level navigation from
# a page), and a javascript: URL runs in the page's own origin, with no more power
# than the page's scripts have.
FORBIDDEN_SCHEMES = frozenset(
    {
        "file",
        "filesystem",
        "view-source",
        "chrome",
        "chrome-untrusted",
        "chrome-search",
        "chrome-extension",
        "devtools",
    }
)


def normalise_url(url: str, base: str | None = None) -> str | None:
    """The canonical form of ``url`` (relative to ``base``), or None if it is not an
    http(s) URL with a host, or is longer than :data:`MAX_URL_CHARS`: resolved against
    ``base``, the fragment dropped, scheme (any case on input) and host lower-cased, an
    internationalised host in punycode (``bücher.test`` is ``xn--bcher-kva.test``), a
    default port removed, control characters and spaces inside it percent-encoded, and
    credentials (``user:pass@``) dropped: they are never stored (see
    :func:`has_credentials` for the sources that refuse them instead)."""
    if not isinstance(url, str) or len(url) > MAX_URL_CHARS:
        return None
    url = url.strip()
    if base:
        url = urljoin(base, url)
    url = _CONTROL.sub(lambda m: f"%{ord(m.group()):02X}", url)
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError:
        return None
    scheme = parts.scheme.lower()
    host = (parts.hostname or "").lower()
    if scheme not in DEFAULT_PORTS or not host or "%" in host:
        return None
    if not host.isascii():
        try:
            host = host.encode("idna").decode("ascii")
        except UnicodeError:
            return None
    if ":" in host:
        host = f"[{host}]"  # IPv6 literal
    netloc = host if port is None or port == DEFAULT_PORTS[scheme] else f"{host}:{port}"
    normal = urlunsplit((scheme, netloc, parts.path or "/", parts.query, ""))
    return normal if len(normal) <= MAX_URL_CHARS else None


def too_long(url: object) -> bool:
    return isinstance(url, str) and len(url) > MAX_URL_CHARS


def is_loopback_host(host: str) -> bool:
    """Whether ``host`` (a name or an address, lower case) is this machine's loopback:
    ``localhost``, ``::1`` or 127.0.0.0/8."""
    return host in ("localhost", "::1") or host.startswith("127.")


def has_credentials(url: object) -> bool:
    """Whether ``url`` carries ``user[:password]@`` before its host."""
    return isinstance(url, str) and _CREDENTIALS.match(url.strip()) is not None


def redact_url(url: object) -> str:
    """``url`` with any credentials replaced by ``***`` (``redis://:***@host:6379/0``,
    ``http://***@proxy:3128``): the one form in which a URL that may carry a secret
    (a store, a proxy, a CDP endpoint, a crawled URL) reaches a log line, an error, a
    metric, the status page or a snapshot."""
    text = url if isinstance(url, str) else repr(url)
    return _CREDENTIALS.sub(lambda m: m.group(1) + "***@", text, count=1)


def forbidden_scheme(url: object) -> str | None:
    """The scheme of ``url`` if it is one of :data:`FORBIDDEN_SCHEMES` (any case), else None."""
    if not isinstance(url, str) or ":" not in url:
        return None
    scheme = url.strip().split(":", 1)[0].lower()
    return scheme if scheme in FORBIDDEN_SCHEMES else None


def short_url(url: object, limit: int = SHORT_URL_CHARS) -> str:
    """``url`` for a log line or an error message: credentials redacted, cut to
    ``limit`` characters, with how many were left out (a 200 KB URL must not fill the
    log on every line)."""
    text = redact_url(url if isinstance(url, str) else repr(url)) if isinstance(url, str) else repr(url)
    if len(text) <= limit:
        return text
    return f"{text[:limit]}...(+{len(text) - limit} chars)"
