"""One session's HTTP client: requests with the session's identity, proxy and cookies,
redirects followed one checked hop at a time, bodies read within bounds.

:class:`HttpClient` holds one httpx transport (HTTP/2 where the server offers it
through ALPN, keep-alive connections reused across the session's requests), used
without httpx's client: cookies are the session's (:mod:`crawler.http.cookies`), read
for each hop and given back after it, and redirects are followed here.

Every hop of a request, the first and each redirect's:

1. is checked by :class:`UrlRules` (no ``file:``, ``chrome:``..., nothing but
   http(s), and with ``forbid_private`` no private, loopback or link-local address):
   the first by the caller, each redirect here;
2. carries the session's cookies for its URL;
3. waits for its host's pacing turn (``[rate_limit]``, shared with the browser's
   requests to that host and, on Redis, across workers), held until the response's
   headers are in;
4. gives the cookies it set to the session; a redirect goes on to step 1 (301/302
   after a POST, and 303, become a GET), at most ``max_redirects`` times.

Failures are PageFailures named for what went wrong: ``net`` (retried: the
connection, a timeout), ``retired: proxy_auth`` (the proxy refused the session's
credentials, 407), ``retired: proxy_error`` (the proxy refused, or asked for
credentials: the session is retired), ``redirects``, ``forbidden_url``, ``bad_url``,
``private_address``, ``body_too_large``, ``bad_body``.  Statuses are not failures here:
the caller decides what a 404 means.
"""

from __future__ import annotations

import functools
import ipaddress
import json
import ssl
from collections.abc import Callable, Mapping
from typing import Any
from urllib.parse import urljoin, urlsplit

import attrs
import httpx
import trio

from crawler.config.identity import Proxy
from crawler.config.model import HttpSection
from crawler.errors import PageFailure, SessionRetired
from crawler.http.body import charset_of, decode, is_json_type, mime_type, read_bounded
from crawler.http.cookies import Cookies
from crawler.policy.failure import status_failure
from crawler.policy.ratelimit import Pace
from crawler.urls import MAX_URL_CHARS, forbidden_scheme, is_loopback_host, normalise_url, short_url, too_long

PROXY_AUTH = "proxy_auth"  # a session retired because its proxy refused its credentials (407)
RESPONSE_CLOSE_TIMEOUT_S = 5.0  # bound on closing a response or a client
REDIRECT_STATUSES = frozenset({301, 302, 303, 307, 308})
PROXY_REFUSED_STATUS = 407  # the proxy wants credentials it did not get: the proxy's failure, not the page's
MAX_KEEPALIVE = 64  # idle connections kept per client
# A browser's first request of a document: what a server that varies on Accept expects.
HTML_ACCEPT = "text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8"
ANY_ACCEPT = "*/*"
# The user agent of a crawl that sets none and runs no browser to take one from: a
# Chromium on Linux, as the browser path presents itself (minus "HeadlessChrome").
DEFAULT_USER_AGENT = (
    "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/143.0.0.0 Safari/537.36"
)
ACCEPT_ENCODING = "gzip, deflate"  # only what read_bounded can inflate within bounds


@attrs.frozen
class Response:
    """A response read whole (within ``max_body_bytes``): ``url`` is the last hop's."""

    url: str
    status: int
    headers: Mapping[str, str]  # lower-case names; repeated headers joined with ", "
    body: bytes = attrs.field(repr=lambda b: f"<{len(b)} bytes>")
    redirects: tuple[str, ...] = ()  # the URLs redirected from, in order

    @property
    def ok(self) -> bool:
        return self.status < 400

    @property
    def content_type(self) -> str:
        """The media type, lower-case, without parameters (``text/html``)."""
        return mime_type(self.headers.get("content-type", ""))

    @property
    def charset(self) -> str:
        """The codec the body is decoded with (see :func:`crawler.http.body.charset_of`)."""
        return charset_of(self.headers.get("content-type", ""), self.body)

    @property
    def text(self) -> str:
        return decode(self.body, self.charset)

    def json(self) -> Any:
        """The body as JSON.  PageFailure ``not_json`` (not retried), quoting the start
        of the body, if it is not."""
        try:
            return json.loads(self.text)
        except (ValueError, RecursionError):
            start = self.text[:60].replace("\n", " ")
            raise PageFailure(
                "not_json", f"{short_url(self.url)}: a {self.content_type or 'response'} body, not JSON: {start!r}"
            ) from None

    def raise_for_status(self) -> None:
        """PageFailure ``http_<status>`` for a status >= 400 (retried for 429, 5xx...:
        see :mod:`crawler.policy.failure`); nothing otherwise."""
        failure = status_failure(self.status, dict(self.headers))
        if failure is not None:
            raise failure

    @property
    def is_json(self) -> bool:
        return is_json_type(self.content_type)


class UrlRules:
    """Which URLs a request may go to: http(s) only, never a forbidden scheme, and with
    ``forbid_private`` no host that is (or resolves to) a private, loopback,
    link-local or reserved address."""

    def __init__(self, *, forbid_private: bool = False):
        self.forbid_private = forbid_private

    async def check(self, url: str, base: str | None = None) -> str:
        """``url`` (relative to ``base``) in canonical form, or PageFailure
        ``forbidden_url``, ``bad_url`` or ``private_address`` (not retried)."""
        if scheme := forbidden_scheme(url):
            raise PageFailure("forbidden_url", f"{scheme}: URLs are never fetched: {short_url(url)}")
        if too_long(url):
            raise PageFailure("bad_url", f"a URL of {len(url)} characters, over the limit of {MAX_URL_CHARS}")
        target = normalise_url(url, base)
        if target is None:
            raise PageFailure("bad_url", f"not an http(s) URL: {short_url(url)!r}")
        if self.forbid_private and await _private(urlsplit(target).hostname or ""):
            raise PageFailure("private_address", f"{short_url(target)}: the host is a private address")
        return target


async def _private(host: str) -> bool:
    """Whether ``host`` is, or resolves to, an address no crawl should reach
    (unresolvable: False, the request's own failure will say so)."""
    try:
        addresses = {ipaddress.ip_address(host)}
    except ValueError:
        try:
            infos = await trio.socket.getaddrinfo(host, None)
        except OSError:
            return False
        addresses = {ipaddress.ip_address(info[4][0].split("%")[0]) for info in infos}
    return any(
        a.is_private or a.is_loopback or a.is_link_local or a.is_reserved or a.is_multicast or a.is_unspecified
        for a in addresses
    )


@functools.cache
def _tls() -> ssl.SSLContext:
    """The TLS settings every client shares (httpx's defaults: certifi's CAs, hostname
    checks).  Made once: loading the CA bundle costs ~18 ms, and a session's client is
    made at each rotation (measured: 17% of a 2,000-page HTTP crawl's CPU)."""
    return httpx.create_ssl_context()


class HttpClient:
    """One session's httpx client (see the module docstring).  ``headers`` are sent
    with every request (the session's identity: User-Agent, Accept-Language, its
    own headers); ``proxy`` carries its credentials to the proxy (Basic)."""

    def __init__(self, settings: HttpSection, *, headers: Mapping[str, str], proxy: Proxy | None = None):
        self.settings = settings
        # httpx's transport, without its client: redirects, cookies and auth are ours
        # (hop by hop, the session's cookies), and the client's layers for them cost
        # ~10% of the CPU of a fast crawl (its cookie jar alone is read and written on
        # every response).
        self._transport = httpx.AsyncHTTPTransport(
            verify=_tls(),
            http2=settings.http2,
            limits=httpx.Limits(max_connections=None, max_keepalive_connections=MAX_KEEPALIVE),
            proxy=_proxy_url(proxy),
            trust_env=False,  # the crawl's proxies are the config's, not the environment's
        )
        self._headers = {"accept-encoding": ACCEPT_ENCODING, **{k.lower(): v for k, v in headers.items()}}
        self._timeout = httpx.Timeout(settings.timeout_s).as_dict()
        self.closed = False

    async def fetch(
        self,
        url: str,
        *,
        cookies: Cookies,
        pace: Pace,
        rules: UrlRules,
        method: str = "GET",
        json_body: Any = None,
        headers: Mapping[str, str] | None = None,
        on_request: Callable[[], None] | None = None,
    ) -> Response:
        """Request ``url`` and read the response (see the module docstring).  ``url`` is
        the caller's, already through ``rules.check`` (it needs the canonical URL before
        the request: for robots.txt, for its own records); each redirect's hop is
        checked here.  Raises PageFailure as it says; ``on_request`` is called as each
        hop's request leaves (the session's request count).  Cancelled half-way: the
        response is closed (shielded, bounded) and the Cancelled goes on; a request may
        have reached the server."""
        if self.closed:
            raise trio.ClosedResourceError("the session's HTTP client is closed")
        redirects: list[str] = []
        while True:
            sent = {**self._headers, **{k.lower(): v for k, v in (headers or {}).items()}}
            if not _trustworthy(url):  # as Chromium: client hints go only to secure (or local) origins
                sent = {k: v for k, v in sent.items() if not k.startswith("sec-ch-")}
            request = httpx.Request(method, url, headers=sent, json=json_body, extensions={"timeout": self._timeout})
            await cookies.apply(request)
            async with pace.hold(url):
                if on_request is not None:
                    on_request()
                response = await self._send(request)
            try:
                await cookies.store(response)
                location = response.headers.get("location")
                if response.status_code in REDIRECT_STATUSES and location is not None:
                    redirects.append(url)
                    if len(redirects) > self.settings.max_redirects:
                        raise PageFailure(
                            "redirects",
                            f"more than {self.settings.max_redirects} redirects from {short_url(redirects[0])}",
                        )
                    url = await rules.check(urljoin(url, location.strip()))
                    if response.status_code == 303 or (response.status_code in (301, 302) and method == "POST"):
                        method, json_body = "GET", None
                    continue
                if response.status_code == PROXY_REFUSED_STATUS:
                    raise SessionRetired(PROXY_AUTH)
                body = await read_bounded(
                    response.aiter_raw(),
                    content_encoding=response.headers.get("content-encoding", ""),
                    max_bytes=self.settings.max_body_bytes,
                    content_length=_length(response.headers.get("content-length")),
                )
            except httpx.HTTPError as exc:  # the connection broke while the body was read
                raise _failure(exc) from None
            finally:
                if not response.is_closed:  # read whole, it closed itself
                    with trio.move_on_after(RESPONSE_CLOSE_TIMEOUT_S, shield=True):
                        await response.aclose()
            return Response(url, response.status_code, dict(response.headers.items()), body, tuple(redirects))

    async def _send(self, request: httpx.Request) -> httpx.Response:
        try:
            response = await self._transport.handle_async_request(request)
        except httpx.HTTPError as exc:
            raise _failure(exc) from None
        response.request = request
        return response

    async def aclose(self) -> None:
        """Close the client and its connections; idempotent, shielded and bounded."""
        if self.closed:
            return
        self.closed = True
        with trio.move_on_after(RESPONSE_CLOSE_TIMEOUT_S, shield=True):
            await self._transport.aclose()


def _failure(exc: httpx.HTTPError) -> PageFailure:
    if isinstance(exc, httpx.ProxyError):  # a CONNECT the proxy refused: 407 is its credentials'
        return SessionRetired(PROXY_AUTH if "407" in str(exc) else "proxy_error")
    if isinstance(exc, httpx.UnsupportedProtocol):
        return PageFailure("bad_url", str(exc))
    detail = f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__
    return PageFailure("net", detail[:300], retryable=True)


def _length(value: str | None) -> int | None:
    try:
        return int(value) if value is not None else None
    except ValueError:
        return None


def _proxy_url(proxy: Proxy | None) -> httpx.Proxy | None:
    if proxy is None:
        return None
    credentials = proxy.credentials
    return httpx.Proxy(proxy.server, auth=credentials) if credentials is not None else httpx.Proxy(proxy.server)


def _trustworthy(url: str) -> bool:
    """Whether ``url``'s origin is "potentially trustworthy" (https, or a loopback host),
    the origins Chromium sends its Sec-CH-UA client hints to."""
    parts = urlsplit(url)
    host = (parts.hostname or "").lower()
    return parts.scheme == "https" or is_loopback_host(host) or host.endswith(".localhost")
