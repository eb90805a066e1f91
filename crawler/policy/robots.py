"""robots.txt (``[crawl] obey_robots``): each host's rules, fetched once and cached, and
the URLs they disallow failed before any request is made for them.

:meth:`RobotsPolicy.check` is asked by the job runner before a job leases a tab: the
first job of a host fetches ``<scheme>://<host>/robots.txt`` with httpx (off the page
path: no tab, no browser), other jobs of that host wait for it, and the answer is kept
for the rest of the run.  Rules are matched with :mod:`urllib.robotparser` for the
agent :data:`ROBOTS_AGENT` (its own group, else ``*``).

What the fetch's outcome means (RFC 9309, section 2.3.1):

=============================  ===========================================================
2xx                            the rules (the first :data:`ROBOTS_MAX_BYTES` of the file,
                               decoded: the rest is never read)
3xx                            followed, up to 5 redirects
4xx (not 429)                  "unavailable": no rules, every URL allowed
429, 5xx, network error,       "unreachable": the host's URLs are disallowed for now;
no answer in                   each fails ``robots_unreachable`` (retryable, not before the
:data:`ROBOTS_TIMEOUT_S`,      next fetch) and the file is asked for again
a body in a Content-Encoding   :data:`ROBOTS_RETRY_S` later; once a URL's attempts are
other than gzip or deflate,    spent it fails for good with that reason
or broken
=============================  ===========================================================

A disallowed URL fails ``robots`` (not retried) and is never requested from the server.
The body is decoded here, a bounded piece at a time, so a gzip bomb or a file of one
endless line costs ROBOTS_MAX_BYTES of memory and no more.
"""

from __future__ import annotations

import logging
import urllib.robotparser
import zlib
from collections.abc import Awaitable, Callable
from urllib.parse import urlsplit

import attrs
import httpx
import trio

from crawler.errors import PageFailure
from crawler.urls import short_url

log = logging.getLogger(__name__)

ROBOTS_AGENT = "trio-cdp-crawler"  # the product token matched against robots.txt groups, and the fetch's User-Agent
ROBOTS_TIMEOUT_S = 10.0  # bound on one robots.txt fetch, connection to last byte
ROBOTS_RETRY_S = 60.0  # an unreachable robots.txt is asked for again this long after
ROBOTS_MAX_BYTES = 500 * 2**10  # 500 KiB: what RFC 9309 asks a crawler to parse at least; the rest is ignored
ROBOTS_MAX_REDIRECTS = 5
ROBOTS_ACCEPT_ENCODING = "gzip, deflate"  # the codings undone here (httpx would add br and zstd when installed)


@attrs.frozen
class RobotsAnswer:
    """A robots.txt fetch: its HTTP status and body (None for no answer), or ``error``."""

    status: int | None
    body: bytes = b""
    error: str = ""


Fetch = Callable[[str], Awaitable[RobotsAnswer]]


async def fetch_robots(url: str) -> RobotsAnswer:
    """GET ``url`` (a robots.txt) with httpx, at most ROBOTS_MAX_BYTES of body (decoded),
    within ROBOTS_TIMEOUT_S; the body of an answer other than 2xx is not read.  Never
    raises but Cancelled: a network error, the deadline, or a body in an encoding we
    did not ask for (or broken) is an answer with no status."""
    with trio.move_on_after(ROBOTS_TIMEOUT_S):
        try:
            async with (
                httpx.AsyncClient(
                    timeout=ROBOTS_TIMEOUT_S,
                    follow_redirects=True,
                    max_redirects=ROBOTS_MAX_REDIRECTS,
                    headers={"User-Agent": ROBOTS_AGENT, "Accept-Encoding": ROBOTS_ACCEPT_ENCODING},
                ) as client,
                client.stream("GET", url) as response,
            ):
                if not 200 <= response.status_code < 300:
                    return RobotsAnswer(response.status_code)
                return RobotsAnswer(response.status_code, await _read_body(response))
        except httpx.HTTPError as exc:
            return RobotsAnswer(None, error=f"{type(exc).__name__}: {exc}".rstrip(": "))
        except _BadBody as exc:
            return RobotsAnswer(None, error=str(exc))
    return RobotsAnswer(None, error=f"no answer within {ROBOTS_TIMEOUT_S:g} s")


class _BadBody(Exception):
    """A robots.txt body that cannot be decoded (the reason is the message)."""


async def _read_body(response: httpx.Response) -> bytes:
    """The first ROBOTS_MAX_BYTES of the body, its Content-Encoding undone here: httpx's
    decoders inflate each network chunk whole (64 KiB of a gzip bomb is 64 MiB at once),
    zlib's ``max_length`` never gives more than there is room for.  What follows the
    limit, or the end of the compressed stream, is not read."""
    header = response.headers.get("Content-Encoding", "")
    codings = [c for c in (c.strip().lower() for c in header.split(",")) if c not in ("", "identity")]
    if codings not in ([], ["gzip"], ["x-gzip"], ["deflate"]):
        raise _BadBody(f"unsupported Content-Encoding {header!r}")
    body = bytearray()
    inflate = None
    async for chunk in response.aiter_raw():
        if not codings:
            body += chunk[: ROBOTS_MAX_BYTES - len(body)]
        elif chunk:
            if inflate is None:
                if codings == ["deflate"]:  # zlib-wrapped or raw, told by the first byte: servers send both
                    wbits = zlib.MAX_WBITS if chunk[0] & 0x0F == 8 else -zlib.MAX_WBITS
                else:
                    wbits = 16 + zlib.MAX_WBITS  # gzip
                inflate = zlib.decompressobj(wbits)
            try:
                body += inflate.decompress(chunk, ROBOTS_MAX_BYTES - len(body))
            except zlib.error as exc:
                raise _BadBody(f"broken {codings[0]} body: {exc}") from None
            if inflate.eof:
                break
        if len(body) >= ROBOTS_MAX_BYTES:
            break
    return bytes(body)


@attrs.frozen
class RobotsStatistics:
    hosts: int  # hosts whose robots.txt is known (rules, or none)
    fetches: int  # robots.txt requests made
    disallowed: int  # URLs refused by the rules
    unreachable: int  # URLs refused because their host's robots.txt could not be fetched


class _Host:
    def __init__(self) -> None:
        self.lock = trio.Lock()
        self.rules: urllib.robotparser.RobotFileParser | None = None
        self.known = False  # rules (or "no rules") are in
        self.retry_at = 0.0  # unreachable: not asked again before this time


class RobotsPolicy:
    """The robots.txt rules of every host of a crawl (see the module docstring).
    ``fetch`` is the seam for tests (default :func:`fetch_robots`)."""

    def __init__(self, *, fetch: Fetch = fetch_robots, agent: str = ROBOTS_AGENT):
        self._fetch = fetch
        self._agent = agent
        self._hosts: dict[str, _Host] = {}
        self._fetches = 0
        self._disallowed = 0
        self._unreachable = 0

    def statistics(self) -> RobotsStatistics:
        return RobotsStatistics(
            sum(1 for h in self._hosts.values() if h.known), self._fetches, self._disallowed, self._unreachable
        )

    async def check(self, url: str) -> PageFailure | None:
        """None if ``url`` may be fetched; else the failure: ``robots`` (disallowed, not
        retried) or ``robots_unreachable`` (retryable, not before the next fetch).
        Fetches the host's robots.txt first if it is not known (one fetch per host at a
        time; others wait for it).  Cancelled mid-fetch: nothing is cached."""
        parts = urlsplit(url)
        origin = f"{parts.scheme}://{parts.netloc}"
        host = self._hosts.setdefault(origin, _Host())
        async with host.lock:
            if not host.known and trio.current_time() >= host.retry_at:
                await self._learn(origin, host)
        if not host.known:
            self._unreachable += 1
            wait_s = max(0.0, host.retry_at - trio.current_time())
            return PageFailure(
                "robots_unreachable", f"{origin}/robots.txt could not be fetched", retryable=True, retry_after_s=wait_s
            )
        if host.rules is not None and not host.rules.can_fetch(self._agent, url):
            self._disallowed += 1
            return PageFailure("robots", f"disallowed by {origin}/robots.txt")
        return None

    async def _learn(self, origin: str, host: _Host) -> None:
        self._fetches += 1
        answer = await self._fetch(f"{origin}/robots.txt")
        status = answer.status
        if status is not None and 200 <= status < 300:
            rules = urllib.robotparser.RobotFileParser()
            rules.parse(answer.body.decode("utf-8", errors="replace").splitlines())
            host.rules, host.known = rules, True
        elif status is not None and 400 <= status < 500 and status != 429:
            host.rules, host.known = None, True  # unavailable: no rules, all allowed
            log.info("%s/robots.txt: HTTP %d: every URL allowed", origin, status)
        else:
            host.retry_at = trio.current_time() + ROBOTS_RETRY_S
            why = f"HTTP {status}" if status is not None else answer.error
            log.warning(
                "%s/robots.txt unreachable (%s): its URLs wait; asked again in %g s",
                short_url(origin),
                why,
                ROBOTS_RETRY_S,
            )
