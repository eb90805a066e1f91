"""robots.txt (``[crawl] obey_robots``): fetched once per host, a disallowed URL fails
``robots`` without ever being requested, and the fetch's failures follow RFC 9309."""

from __future__ import annotations

import gzip
import zlib

import pytest
import trio

from crawler.httpserver import Response, serve_http
from crawler.policy.robots import ROBOTS_MAX_BYTES, ROBOTS_RETRY_S, RobotsAnswer, RobotsPolicy, fetch_robots
from tests.crawler.conftest import crawl, make_config, url_states
from tests.shop import FaultShop, start_shop

RULES = b"User-agent: *\nDisallow: /slow/\n\nUser-agent: trio-cdp-crawler\nDisallow: /slow/\nDisallow: /hang/\n"


class RobotsShop(FaultShop):
    """The fault shop, with a robots.txt; every path asked for is in ``hits``."""

    async def __call__(self, request) -> Response:
        if request.path == "/robots.txt":
            self.hits[request.path].append(trio.current_time())
            return Response(body=RULES, content_type="text/plain")
        return await super().__call__(request)


@pytest.mark.chromium
async def test_a_disallowed_url_fails_robots_and_is_never_requested(nursery, tmp_path):
    """With obey_robots, robots.txt is fetched once for the host (by the first job,
    the others waiting for it); the URLs its group for our agent disallows (/slow/,
    /hang/) end ``failed: robots`` at the first attempt and the server never sees them
    asked for; the others are crawled."""
    shop = RobotsShop()
    base = await start_shop(nursery, shop)
    allowed = [f"{base}/product/{i}" for i in (1, 2, 3)]
    refused = [f"{base}/slow/4?s=0", f"{base}/hang/5"]
    cfg = make_config(tmp_path, allowed + refused, crawl={"obey_robots": True})
    crawler, store, reason = await crawl(cfg)
    assert reason == "finished"
    states = await url_states(store, allowed + refused)
    assert [states[u]["state"] for u in allowed] == ["done"] * 3
    for url in refused:
        assert states[url]["state"] == "failed" and states[url]["attempts"] == 1
        assert states[url]["last_error"] == f"robots: disallowed by {base}/robots.txt"
    assert shop.hits["/robots.txt"] and len(shop.hits["/robots.txt"]) == 1
    assert shop.page_hits("slow", 4) == [] and shop.page_hits("hang", 5) == []
    assert all(shop.page_hits("product", i) for i in (1, 2, 3))
    assert crawler.statistics().jobs.failed == {"robots": 2}
    store.close()


class FakeRobots:
    """The fetch seam: answers from a list, one per fetch; counts fetches."""

    def __init__(self, *answers: RobotsAnswer, delay_s: float = 0.0):
        self.answers = list(answers)
        self.urls: list[str] = []
        self.delay_s = delay_s

    async def __call__(self, url: str) -> RobotsAnswer:
        self.urls.append(url)
        await trio.sleep(self.delay_s)
        return self.answers.pop(0)


async def test_a_missing_robots_txt_allows_everything_and_is_fetched_once(autojump_clock):
    """A 404 (any 4xx but 429) means no rules: every URL of the host allowed, and
    concurrent first checks of one host make one fetch between them."""
    fetch = FakeRobots(RobotsAnswer(404), delay_s=1.0)
    robots = RobotsPolicy(fetch=fetch)
    results = []
    async with trio.open_nursery() as nursery:
        for i in range(5):
            nursery.start_soon(lambda i=i: _append(results, robots.check(f"http://a.test/p/{i}")))
    assert results == [None] * 5
    assert fetch.urls == ["http://a.test/robots.txt"]
    assert robots.statistics().hosts == 1


async def _append(results, check):
    results.append(await check)


async def test_an_unreachable_robots_txt_holds_the_hosts_urls_until_it_is_asked_again(autojump_clock):
    """A 503, or no answer at all, disallows the host for now: ``robots_unreachable``,
    retryable, not before the next fetch, which is ROBOTS_RETRY_S later; once it
    answers, its rules apply (here: /private/ disallowed, not retried)."""
    fetch = FakeRobots(
        RobotsAnswer(503),
        RobotsAnswer(None, error="ConnectError: refused"),
        RobotsAnswer(200, b"User-agent: *\nDisallow: /private/\n"),
    )
    robots = RobotsPolicy(fetch=fetch)
    first = await robots.check("http://a.test/p/1")
    assert first is not None and first.kind == "robots_unreachable" and first.retryable
    assert first.retry_after_s == ROBOTS_RETRY_S
    await trio.sleep(10)
    again = await robots.check("http://a.test/p/2")  # no fetch before the retry time
    assert again.kind == "robots_unreachable" and again.retry_after_s == ROBOTS_RETRY_S - 10
    assert len(fetch.urls) == 1
    await trio.sleep(ROBOTS_RETRY_S)
    assert (await robots.check("http://a.test/p/3")).kind == "robots_unreachable"  # the network error
    await trio.sleep(ROBOTS_RETRY_S)
    assert await robots.check("http://a.test/p/4") is None
    refused = await robots.check("http://a.test/private/1")
    assert refused.kind == "robots" and not refused.retryable
    assert len(fetch.urls) == 3
    stats = robots.statistics()
    assert (stats.fetches, stats.disallowed, stats.unreachable) == (3, 1, 3)


# A robots.txt of 2 MiB: its rules first, then comment lines past ROBOTS_MAX_BYTES, then
# a rule that must never be seen.
BIG_ROBOTS = RULES + b"# filler filler filler filler filler filler filler filler\n" * 40_000 + b"Disallow: /late/\n"


def _raw_deflate(data: bytes) -> bytes:
    packer = zlib.compressobj(6, zlib.DEFLATED, -zlib.MAX_WBITS)
    return packer.compress(data) + packer.flush()


class EncodedRobots:
    """Serves /robots.txt as ``body`` with ``encoding`` as its Content-Encoding (none if
    empty) and ``status``; keeps each request's Accept-Encoding."""

    def __init__(self, body: bytes, encoding: str = "", status: int = 200):
        self.body, self.encoding, self.status = body, encoding, status
        self.accepted: list[str] = []

    async def __call__(self, request) -> Response:
        self.accepted.append(request.headers.get("accept-encoding", ""))
        headers = (("Content-Encoding", self.encoding),) if self.encoding else ()
        return Response(status=self.status, body=self.body, content_type="text/plain", headers=headers)


@pytest.mark.parametrize(
    ("encoding", "encode"),
    [("", bytes), ("gzip", gzip.compress), ("deflate", zlib.compress), ("deflate", _raw_deflate)],
    ids=["identity", "gzip", "deflate-zlib", "deflate-raw"],
)
async def test_a_robots_txt_is_decoded_here_and_cut_at_the_limit(nursery, encoding, encode):
    """Whatever its Content-Encoding (gzip, deflate wrapped or raw, none), the body is
    the file's first ROBOTS_MAX_BYTES, decoded; the request asks for gzip and deflate
    only (the codings decoded here, a bounded piece at a time)."""
    server = EncodedRobots(encode(BIG_ROBOTS), encoding)
    port = await nursery.start(serve_http, server)
    answer = await fetch_robots(f"http://127.0.0.1:{port}/robots.txt")
    assert answer == RobotsAnswer(200, BIG_ROBOTS[:ROBOTS_MAX_BYTES])
    assert server.accepted == ["gzip, deflate"]


@pytest.mark.parametrize(
    ("server", "error"),
    [
        (EncodedRobots(b"\x0b\x02\x80rules", "br"), "unsupported Content-Encoding 'br'"),
        (EncodedRobots(b"\x1f\x8b\x08\x00garbage-not-deflate", "gzip"), "broken gzip body: "),
    ],
    ids=["br", "broken-gzip"],
)
async def test_a_robots_txt_that_cannot_be_decoded_is_unreachable(nursery, server, error):
    """A body in a coding not asked for, or a broken one, is no answer (the host's URLs
    wait, as for a 5xx): never parsed as rules."""
    port = await nursery.start(serve_http, server)
    answer = await fetch_robots(f"http://127.0.0.1:{port}/robots.txt")
    assert answer.status is None and answer.error.startswith(error)


async def test_the_body_of_an_answer_other_than_2xx_is_not_kept(nursery):
    server = EncodedRobots(b"not rules\n" * 1000, status=503)
    port = await nursery.start(serve_http, server)
    assert await fetch_robots(f"http://127.0.0.1:{port}/robots.txt") == RobotsAnswer(503)
