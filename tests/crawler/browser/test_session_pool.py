"""The session pool's logic (crawler.browser.session) on the in-memory fake browser under
trio's MockClock: proxies taken in turn, benching and its backoff, the wait when every
proxy is benched, retirement accounting, the identity put on each tab; and one crawl
on the fake whose handler retires sessions (``page.retire_session``)."""

from __future__ import annotations

import logging
import random

import pytest
import trio

from crawler import Router
from crawler.browser.session import DIRECT, MAX_FREE_RETIREMENTS, SessionPool
from crawler.run.engine import Crawler
from crawler.store.sqlite import SqliteStore
from tests.crawler.conftest import make_config
from tests.fake.browser import connect_fake, expected_item_for, open_fake_chromium, shop_url
from tests.fake.harness import FakeBrowsers, no_memory_reading, outcome_problems, virtual_store_time

A = "http://alice:pw-a@10.0.0.1:3128"
B = "http://10.0.0.2:8080"
A_SERVER, B_SERVER = "http://10.0.0.1:3128", "http://10.0.0.2:8080"


def pool_config(tmp_path, **session):
    return make_config(tmp_path, [shop_url("product", 1)], session=session).session


async def test_each_new_context_takes_the_next_proxy_without_its_credentials(autojump_clock, tmp_path):
    """Contexts alternate A, B, A, B; Chromium gets each proxy's server without the
    credentials and a bypass list that sends loopback through it too; the session
    knows its proxy (credentials stripped) and answers A's challenge with them."""
    sessions = SessionPool(pool_config(tmp_path, proxies=[A, B]))
    async with open_fake_chromium() as chromium, connect_fake(chromium) as browser:
        contexts = [await sessions.create_context(browser) for _ in range(4)]
        made = [chromium.context_proxies[c.id] for c in contexts]
        assert made == [(A_SERVER, "<-loopback>"), (B_SERVER, "<-loopback>")] * 2
        assert [sessions.session(c.id).proxy for c in contexts] == [A_SERVER, B_SERVER] * 2
        assert [sessions.session(c.id).id for c in contexts] == ["s1", "s2", "s3", "s4"]
        assert sessions.credentials(contexts[0].id) == ("alice", "pw-a")
        assert sessions.credentials(contexts[1].id) is None and not sessions.needs_auth(contexts[1].id)
        for context in contexts:
            await context.aclose()


async def test_a_retired_proxy_is_left_out_for_the_backoff_then_taken_again(autojump_clock, tmp_path):
    """Retiring A's session benches A for backoff_s[0]: the next contexts take B; from
    exactly 30 s on, A is in turn again.  Benched again before a page was done through
    it, A is left out twice as long; a page done through it starts the doubling over."""
    sessions = SessionPool(pool_config(tmp_path, proxies=[A, B], backoff_s=[30.0, 100.0]))
    async with open_fake_chromium(latency_s=(0.0, 0.0)) as chromium, connect_fake(chromium) as browser:

        async def proxy_of_next() -> str:
            context = await sessions.create_context(browser)
            return sessions.session(context.id).proxy, context.id

        proxy, first = await proxy_of_next()
        assert proxy == A_SERVER
        assert sessions.retire(first, "status_403")
        assert not sessions.retire(first, "status_403")  # once per session
        assert [(await proxy_of_next())[0] for _ in range(3)] == [B_SERVER] * 3
        await trio.sleep_until(30.0)
        proxy, second = await proxy_of_next()
        assert proxy == A_SERVER
        sessions.retire(second, "status_403")
        assert sessions.statistics().benched_until[A_SERVER] == pytest.approx(30.0 + 60.0)
        await trio.sleep_until(90.0)
        proxy, third = await proxy_of_next()
        assert proxy in (A_SERVER, B_SERVER)
        if proxy == B_SERVER:
            proxy, third = await proxy_of_next()
        assert proxy == A_SERVER
        sessions.page_done(third)
        sessions.retire(third, "retire_if")
        assert sessions.statistics().benched_until[A_SERVER] == pytest.approx(trio.current_time() + 30.0)
        assert sessions.statistics().retired == {"status_403": 2, "retire_if": 1}


async def test_when_every_proxy_is_benched_new_sessions_wait_with_one_warning(autojump_clock, tmp_path, caplog):
    """Both proxies blocked: the next context is made only when the first comes back
    (exactly at its bench's end), with one warning line for the episode, however many
    sessions wait; crawling directly, the direct session is benched the same way."""
    caplog.set_level(logging.WARNING, logger="crawler.browser.session")
    sessions = SessionPool(pool_config(tmp_path, proxies=[A, B], backoff_s=[30.0, 600.0]))
    async with open_fake_chromium(latency_s=(0.0, 0.0)) as chromium, connect_fake(chromium) as browser:
        a = await sessions.create_context(browser)
        await trio.sleep(5.0)
        b = await sessions.create_context(browser)
        sessions.retire(a.id, "status_403")  # A back at 35 s
        await trio.sleep(1.0)
        sessions.retire(b.id, "status_403")  # B back at 36 s
        made: list[tuple[float, str]] = []

        async def make() -> None:
            context = await sessions.create_context(browser)
            made.append((trio.current_time(), sessions.session(context.id).proxy))

        async with trio.open_nursery() as nursery:  # two sessions wanted while both are benched
            nursery.start_soon(make)
            nursery.start_soon(make)
        assert made == [(35.0, A_SERVER), (35.0, A_SERVER)]  # B is still benched at 35 s
        await trio.sleep_until(36.0)
        await make()
        assert made[-1] == (36.0, B_SERVER)  # back, and next in turn
        waiting = [r for r in caplog.records if "blocked or failing" in r.getMessage()]
        assert len(waiting) == 1
        assert sessions.statistics().waits == 2

    direct = SessionPool(pool_config(tmp_path))
    async with open_fake_chromium(latency_s=(0.0, 0.0)) as chromium, connect_fake(chromium) as browser:
        start = trio.current_time()
        context = await direct.create_context(browser)
        assert direct.session(context.id).proxy is None
        assert chromium.context_proxies[context.id] == ("", "")  # no proxy: Chromium's own settings
        direct.retire(context.id, "status_429")
        await direct.create_context(browser)
        assert trio.current_time() - start == pytest.approx(30.0)
        assert set(direct.statistics().benched_until) == {DIRECT}


def test_a_url_pays_for_its_first_retirement_only_then_for_every_one_past_the_free_ones(tmp_path):
    """The first retirement of a URL counts against its attempts; the next
    MAX_FREE_RETIREMENTS do not; every later one does (a page refused everywhere ends)."""
    sessions = SessionPool(pool_config(tmp_path))
    charged = [sessions.charge_retirement("http://shop.test/product/1") for _ in range(MAX_FREE_RETIREMENTS + 3)]
    assert charged == [True] + [False] * MAX_FREE_RETIREMENTS + [True, True]
    assert sessions.charge_retirement("http://shop.test/product/2") is True


async def test_every_tab_gets_the_identity_and_every_context_the_cookies(autojump_clock, tmp_path):
    """Each tab of a context gets the user agent (Chromium's own minus "HeadlessChrome"
    when none is configured), the locale, the timezone and the headers; each context
    the cookies of the cookies file."""
    (tmp_path / "cookies.txt").write_text(
        "# Netscape HTTP Cookie File\n.shop.test\tTRUE\t/\tFALSE\t0\tsid\tabc\n#HttpOnly_shop.test\tFALSE\t/\tTRUE\t4102444800\tk\tv\n"
    )
    cfg = make_config(
        tmp_path,
        [shop_url("product", 1)],
        session={
            "locale": "ko-KR",
            "timezone": "Asia/Seoul",
            "headers": {"X-Team": "crawl"},
            "cookies_file": "cookies.txt",
        },
    )
    sessions = SessionPool(cfg.session, cookies=cfg.cookies)
    async with open_fake_chromium() as chromium, connect_fake(chromium) as browser:
        context = await sessions.create_context(browser)
        tabs = [await context.create_tab(), await context.create_tab()]
        for tab in tabs:
            await sessions.prepare_tab(tab)
            assert chromium.targets[tab.target_id].identity == {
                "userAgent": "Mozilla/5.0 (X11; Linux x86_64) Chrome/1.0 Safari/537.36",
                "locale": "ko-KR",
                "timezone": "Asia/Seoul",
                "headers": {"X-Team": "crawl"},
            }
        assert chromium.cookies[context.id] == [
            {"name": "sid", "value": "abc", "path": "/", "secure": False, "httpOnly": False, "domain": ".shop.test"},
            {
                "name": "k",
                "value": "v",
                "path": "/",
                "secure": True,
                "httpOnly": True,
                "url": "https://shop.test/",
                "expires": 4102444800.0,
            },
        ]
        await context.aclose()


async def test_a_handler_that_retires_its_session_is_retried_elsewhere_and_stores_nothing_of_it(
    autojump_clock, tmp_path
):
    """``page.retire_session(reason)`` in a handler: that job stores nothing, its
    context serves no other page (its idle tab is closed, the context disposed; counted
    as retired, under the handler's reason), the URL is done once in a later session; a
    handler that catches the exception retires it all the same."""
    urls = [shop_url("product", i) for i in range(1, 13)]
    retiring = {shop_url("product", 3), shop_url("product", 7)}
    router = Router()
    tried: dict[str, list[str]] = {}

    retired: set[str] = set()
    after_retirement: list[str] = []

    @router.route()
    async def product(page):
        tried.setdefault(page.url, []).append(page.session.id)
        if page.session.id in retired:
            after_retirement.append(page.url)
        if page.url in retiring and len(tried[page.url]) == 1:
            retired.add(page.session.id)
            if page.url.endswith("/7"):
                try:
                    page.retire_session("soft_block")
                except Exception:
                    pass  # swallowed: the job is retired anyway
            else:
                page.retire_session("soft_block")
        await page.push(expected_item_for(page.url))

    cfg = make_config(
        tmp_path,
        urls,
        extract={"fields": {}, "capture": []},
        browser={"command_timeout_s": 2.0},
        pool={"concurrency": 1},  # one job at a time: any page after a retirement in its session is a fault
        session={"backoff_s": [1.0, 10.0]},
        monitor={"invariant_interval_s": 1.0, "sample_interval_s": 1e6},
    )
    browsers = FakeBrowsers(random.Random(5))
    store = SqliteStore(cfg.output.db, threads=False)
    engine = Crawler(
        cfg, store, rng=random.Random(5), open_browser=browsers, router=router, read_memory=no_memory_reading
    )
    with virtual_store_time():
        assert await engine.run() == "finished"
    assert browsers.problems == []
    items = list(await store.items())
    assert sorted(item["url"] for item in items) == sorted(urls)  # each once
    for url in retiring:
        first, second = tried[url]  # retired, then done
        assert first != second  # retried in another session
        state = await store.url_state(url)
        assert state["attempts"] == 2 and state["done_count"] == 1
    assert after_retirement == []
    stats = engine.statistics()
    assert stats.sessions.retired == {"soft_block": 2}
    assert stats.browser.pool_totals.contexts_retired == 2
    with virtual_store_time():
        assert await outcome_problems(store, urls, browsers) == []


async def test_max_pages_per_session_ends_each_session_after_that_many_pages(autojump_clock, tmp_path):
    """``max_pages_per_session`` below ``rotate_context_every``: with one tab at a time,
    every session (context) serves exactly that many pages, through the proxies in turn."""
    urls = [shop_url("product", i) for i in range(1, 13)]
    cfg = make_config(
        tmp_path,
        urls,
        pool={"concurrency": 1, "rotate_context_every": 50},
        browser={"command_timeout_s": 2.0},
        session={"proxies": [A, B], "max_pages_per_session": 3},
        monitor={"invariant_interval_s": 1.0, "sample_interval_s": 1e6},
    )
    browsers = FakeBrowsers(random.Random(2))
    store = SqliteStore(cfg.output.db, threads=False)
    engine = Crawler(cfg, store, rng=random.Random(2), open_browser=browsers, read_memory=no_memory_reading)
    with virtual_store_time():
        assert await engine.run() == "finished"
        assert await outcome_problems(store, urls, browsers) == []
    (chromium,) = browsers.chromiums
    assert [server for server, _ in chromium.context_proxies.values()] == [A_SERVER, B_SERVER] * 2
    stats = engine.statistics()
    assert stats.sessions.sessions == 4 and stats.browser.pool_totals.contexts_rotated == 4
