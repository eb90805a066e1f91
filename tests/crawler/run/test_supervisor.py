"""The browser supervisor's waits for an endpoint that went away, on fake browsers
under the virtual clock: exact times, no real Chromium."""

from __future__ import annotations

import random
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import pytest
import trio

import cdp
from crawler.run.engine import Crawler
from crawler.run.supervisor import ENDPOINT_BACKOFF_S, RESTART_BACKOFF_S
from crawler.store.sqlite import SqliteStore
from tests.crawler.conftest import make_config
from tests.fake.browser import shop_url
from tests.fake.harness import FakeBrowsers, no_memory_reading, outcome_problems, virtual_store_time

URL = "http://chromium:9222"
POLL_S = 4.0  # how long one try polls before EndpointUnavailable (connect_timeout_s)


class RestartingEndpoint:
    """The ``open_browser`` seam of a ``cdp_url`` whose browser container restarts: the
    first try reaches a fake Chromium; once that one was killed, the next ``gone_tries``
    tries each poll for POLL_S and raise EndpointUnavailable, as cdp.connect does; then
    a fresh fake Chromium answers again.  ``reachable=False``: no try ever succeeds."""

    def __init__(self, browsers: FakeBrowsers, *, gone_tries: int, reachable: bool = True):
        self.browsers = browsers
        self.gone_tries = gone_tries
        self.reachable = reachable
        self.tries: list[tuple[float, str]] = []  # (time, "ok" or "gone")

    @asynccontextmanager
    async def __call__(self) -> AsyncIterator[cdp.Browser]:
        opened = len(self.browsers.chromiums)
        gone = sum(1 for _, what in self.tries if what == "gone")
        if not self.reachable or (opened == 1 and gone < self.gone_tries):
            self.tries.append((trio.current_time(), "gone"))
            await trio.sleep(POLL_S)
            raise cdp.EndpointUnavailable(URL, POLL_S, "ConnectError: [Errno 111] Connection refused")
        self.tries.append((trio.current_time(), "ok"))
        async with self.browsers() as browser:
            yield browser


def config(tmp_path, urls):
    return make_config(
        tmp_path,
        urls,
        browser={"cdp_url": URL, "restart_limit": 2},
        monitor={"sample_interval_s": 1e6, "invariant_interval_s": 1e6},
    )


async def test_an_endpoint_that_went_away_is_waited_for_with_backoff_and_the_crawl_goes_on(autojump_clock, tmp_path):
    """The browser dies mid-crawl and its endpoint stays unreachable for more tries than
    restart_limit allows deaths: the supervisor waits (after the restart backoff, each
    try then 1, 2, 4, 8, 10 s apart after its poll), which is not counted as deaths; the
    crawl then finishes on the new browser with every URL done once, the pages in flight
    at the death retried without an attempt charged."""
    urls = [shop_url("product", i) for i in range(1, 21)]
    cfg = config(tmp_path, urls)
    browsers = FakeBrowsers(random.Random(1))
    endpoint = RestartingEndpoint(browsers, gone_tries=5)
    store = SqliteStore(cfg.output.db, threads=False)
    engine = Crawler(cfg, store, open_browser=endpoint, rng=random.Random(1), read_memory=no_memory_reading)

    async def kill_after_some_pages():
        while engine.statistics().jobs.done < 5 or engine.statistics().jobs.in_flight < 2:  # noqa: ASYNC110 - polled state
            await trio.sleep(0.01)
        browsers.current.kill()
        died.append(trio.current_time())

    died: list[float] = []
    with virtual_store_time():
        async with trio.open_nursery() as nursery:
            nursery.start_soon(kill_after_some_pages)
            assert await engine.run() == "finished"
        assert await outcome_problems(store, urls, browsers) == [] and browsers.problems == []
        assert {url: (await store.url_state(url))["attempts"] for url in urls} == dict.fromkeys(urls, 1)
    stats = engine.statistics()
    assert stats.browser.restarts == 1
    assert [what for _, what in endpoint.tries] == ["ok", "gone", "gone", "gone", "gone", "gone", "ok"]
    starts = [t for t, _ in endpoint.tries[1:]]
    gaps = [b - a - POLL_S for a, b in zip(starts, starts[1:], strict=False)]
    assert starts[0] - died[0] == pytest.approx(RESTART_BACKOFF_S[0], abs=0.05)
    assert gaps == pytest.approx([1.0, 2.0, 4.0, 8.0, 10.0], abs=0.05)  # doubling, up to the cap
    assert ENDPOINT_BACKOFF_S == (1.0, 10.0)
    store.close()


async def test_an_endpoint_that_never_answered_ends_the_crawl_with_its_error(autojump_clock, tmp_path):
    """Before any browser opened, EndpointUnavailable is a configuration error: the crawl
    stops on the first try (one poll, no restarts, no backoff) and the error propagates."""
    urls = [shop_url("product", 1)]
    cfg = config(tmp_path, urls)
    endpoint = RestartingEndpoint(FakeBrowsers(random.Random(1)), gone_tries=0, reachable=False)
    store = SqliteStore(cfg.output.db, threads=False)
    engine = Crawler(cfg, store, open_browser=endpoint, rng=random.Random(1), read_memory=no_memory_reading)
    with virtual_store_time(), pytest.raises(cdp.EndpointUnavailable, match=URL):
        await engine.run()
    assert len(endpoint.tries) == 1 and trio.current_time() == pytest.approx(POLL_S)
    assert (await store.url_state(urls[0]))["state"] == "pending"
    store.close()
