"""Sessions against real Chromium: proxies per browser context, the browser identity,
and sessions retired when the site blocks them.

Two forwarding proxies (``tests/httpproxy.py``) run on 127.0.0.1, each requiring Basic
authentication; the shop is reached as ``http://shop.test:PORT``, a name only the
proxies resolve, so a request that bypassed them would fail.  Crawls are small (tens
of pages) and run in-process."""

from __future__ import annotations

import json
import socket
from typing import Any
from urllib.parse import urlsplit

import pytest
import trio

from crawler import Router, demo
from crawler import config as config_mod
from crawler.httpserver import HttpRequest
from crawler.httpserver import Response as HttpResponse
from crawler.observe.summary import format_summary
from crawler.run.engine import Crawler
from crawler.store.sqlite import SqliteStore
from tests.crawler.conftest import DEMO_EXTRACT
from tests.httpproxy import HttpProxy
from tests.shop import FaultShop, start_shop

pytestmark = pytest.mark.chromium

HOST = "shop.test"
PASSWORD = "s3cret-pw"


# The first time: a page whose script puts up a challenge a moment after it loads.
JS_CHALLENGE = (
    b"<!doctype html><html><body><h1>Checking your browser</h1><script>setTimeout(() => {"
    b" const d = document.createElement('div'); d.className = 'challenge'; document.body.appendChild(d);"
    b" }, 100);</script></body></html>"
)


class RecordingShop(FaultShop):
    """The fault shop, keeping every request's headers (names lower-cased); also
    ``/jschallenge/{id}``: the first request gets :data:`JS_CHALLENGE`, later ones the
    product page."""

    def __init__(self) -> None:
        super().__init__()
        self.requests: list[tuple[str, dict[str, str]]] = []

    async def __call__(self, request: HttpRequest):
        self.requests.append((request.path, dict(request.headers)))
        if request.path.startswith("/jschallenge/"):
            self.hits[request.path].append(trio.current_time())
            if len(self.hits[request.path]) == 1:
                return HttpResponse(body=JS_CHALLENGE)
            return self._page(int(request.path.rsplit("/", 1)[1]))
        return await super().__call__(request)


@pytest.fixture
async def shop(nursery) -> RecordingShop:
    s = RecordingShop()
    port = urlsplit(await start_shop(nursery, s)).port
    s.base = f"http://{HOST}:{port}"
    return s


async def start_proxy(nursery, name: str, **options: Any) -> HttpProxy:
    proxy = HttpProxy(name, hosts={HOST: "127.0.0.1"}, **options)
    await nursery.start(proxy.serve)
    return proxy


@pytest.fixture
async def proxies(nursery) -> tuple[HttpProxy, HttpProxy]:
    return (
        await start_proxy(nursery, "A", credentials=("alice", PASSWORD)),
        await start_proxy(nursery, "B", credentials=("bob", PASSWORD)),
    )


def session_config(tmp_path, urls: list[str], **sections: dict[str, Any]) -> config_mod.Config:
    data: dict[str, Any] = {
        "input": {"urls": urls},
        "pool": {"concurrency": 2, "tab_close_timeout_s": 3.0, "rotate_context_every": 5},
        "watchdog": {"timeout_s": 20.0, "jitter_s": 0.0},
        "retry": {"max_attempts": 2, "backoff_s": [0.05, 0.2]},
        "extract": dict(DEMO_EXTRACT),
        "output": {"db": str(tmp_path / "crawl.db")},
        "monitor": {"invariant_interval_s": 0.5},
    }
    for name, values in sections.items():
        data[name] = {**data.get(name, {}), **values}
    return config_mod.from_dict(data, source="test.toml", base_dir=str(tmp_path))


def session_router() -> Router:
    """The demo extraction, plus the page's session in every item."""
    router = Router()
    fields = {k: v for k, v in DEMO_EXTRACT["fields"].items()}

    @router.route()
    async def product(page):
        item = await page.extract(fields, wait_for=DEMO_EXTRACT["wait_for"])
        await page.push({**item, "session": page.session.id, "proxy": page.session.proxy})

    return router


def expected(shop, i: int) -> dict[str, Any]:
    item = demo.expected_item(shop.base, i)
    return {k: item[k] for k in ("url", "name", "brand", "price", "image", "stock")}


async def run(cfg, router=None) -> tuple[Crawler, SqliteStore, str]:
    store = await SqliteStore.open(cfg.output.db)
    engine = Crawler(cfg, store, router=router)
    return engine, store, await engine.run()


def session_number(item: dict[str, Any]) -> int:
    return int(item["session"][1:])


async def test_contexts_take_the_proxies_in_turn_and_every_page_is_done(tmp_path, shop, proxies, caplog):
    """Each new context takes the next proxy: sessions alternate A, B, A, B...; both
    proxies carry traffic (answering their Basic challenge with the URL's
    credentials), every page is done once with the right data, nothing reaches the
    shop but through a proxy, and no credential appears in an item or a log line."""
    a, b = proxies
    urls = [f"{shop.base}/product/{i}" for i in range(1, 41)]
    cfg = session_config(tmp_path, urls, session={"proxies": [a.url(), b.url()]}, extract={"fields": {}, "capture": []})
    engine, store, reason = await run(cfg, session_router())
    assert reason == "finished"
    items = [item async for item in _items(store)]
    assert sorted((it["url"] for it in items), key=urls.index) == urls  # each once
    for item in items:
        i = int(item["url"].rsplit("/", 1)[1])
        assert {k: item[k] for k in expected(shop, i)} == expected(shop, i)
    by_session = {}
    for item in items:
        by_session[session_number(item)] = item["proxy"]
    servers = [a.url(with_credentials=False), b.url(with_credentials=False)]
    for number, proxy in by_session.items():
        assert proxy == servers[(number - 1) % 2], by_session
    assert len(by_session) >= 40 // 6  # 5 pages per context, 6 with a job in flight when it rotated
    assert len(a.pages()) + len(b.pages()) == 40 and a.pages() and b.pages()
    assert a.challenged >= 1 and b.challenged >= 1  # authentication was asked for, and answered
    assert {headers["host"] for _, headers in shop.requests} == {urlsplit(shop.base).netloc}
    stats = engine.statistics().sessions
    assert set(stats.proxy_requests) == set(servers) and all(n >= 20 for n in stats.proxy_requests.values())
    assert not stats.retired
    assert PASSWORD not in caplog.text and PASSWORD not in json.dumps(items)


async def test_a_blocked_proxy_s_session_is_retired_and_the_rest_goes_through_the_other(tmp_path, shop, proxies):
    """Proxy A answers 403 after its 10th page: the 403 retires its session (reason
    ``status_403``), the URL is retried in a session on B, A is benched, and the rest of
    the crawl goes through B; every page is done once, none charged more than the one
    attempt its retirement cost."""
    a, b = proxies
    a.block_after = 10
    urls = [f"{shop.base}/product/{i}" for i in range(1, 31)]
    cfg = session_config(
        tmp_path,
        urls,
        pool={"rotate_context_every": 8},
        session={"proxies": [a.url(), b.url()], "retire_on_status": [403, 429]},
    )
    engine, store, reason = await run(cfg)
    assert reason == "finished"
    counts = await store.counts()
    assert counts["done"] == 30 and counts["failed"] == 0
    items = [item async for item in _items(store)]
    assert sorted(it["url"] for it in items) == sorted(urls)
    states = [await store.url_state(u) for u in urls]
    assert all(s["done_count"] == 1 and s["attempts"] <= 2 for s in states)
    assert len(a.pages()) == 10 and a.blocked >= 1
    assert len(b.pages()) == 30 - 10 + 0  # everything A did not do
    stats = engine.statistics().sessions
    assert stats.retired == {"status_403": 1}  # one session on A met it; A was then left out
    assert set(stats.benched_until) == {a.url(with_credentials=False)}
    summary = await engine.summary()
    assert summary["sessions_retired"] == {"status_403": 1}
    assert summary["contexts_retired"] == 1
    assert "retired 1 (status_403: 1)" in format_summary(summary)


async def test_a_challenge_page_is_never_stored_and_retires_its_session(tmp_path, shop, proxies):
    """A page matching ``retire_if`` retires the session (reason ``retire_if``), whether
    the server sent the challenge (with status 200: proxy A after its 3rd page) or the
    page's script put it up while the route waited for ``wait_for``: no item holds a
    challenge page, no watchdog had to expire, and every URL is done."""
    a, b = proxies
    a.challenge_after = 3
    urls = [f"{shop.base}/product/{i}" for i in range(1, 11)] + [f"{shop.base}/jschallenge/{i}" for i in (11, 12)]
    cfg = session_config(
        tmp_path,
        urls,
        session={"proxies": [a.url(), b.url()], "retire_if": "#captcha, .challenge", "backoff_s": [0.5, 1.0]},
        retry={"max_attempts": 3},
    )
    engine, store, reason = await run(cfg)
    assert reason == "finished"
    items = [item async for item in _items(store)]
    assert sorted(it["url"] for it in items) == sorted(urls)
    for item in items:
        i = int(item["url"].rsplit("/", 1)[1])
        assert item["name"] == demo.product(i)["name"] and item["goods"] == demo.product(i)
    assert a.blocked >= 1
    assert all(len(shop.hits[f"/jschallenge/{i}"]) == 2 for i in (11, 12))  # challenged, then done
    stats = engine.statistics()
    assert set(stats.sessions.retired) == {"retire_if"}  # one count per session, however many of its pages
    assert stats.jobs.watchdog_expiries == 0


async def test_a_proxy_that_refuses_connections_is_left_out_and_the_context_moves_on(tmp_path, shop, proxies):
    """A proxy nobody listens on (Chromium: net::ERR_PROXY_CONNECTION_FAILED) retires
    its session with reason ``proxy_error`` and is benched; every page is done through
    the next proxy."""
    _, b = proxies
    with socket.socket() as sock:  # a port that was free a moment ago: nothing listens on it
        sock.bind(("127.0.0.1", 0))
        dead = f"http://user:{PASSWORD}@127.0.0.1:{sock.getsockname()[1]}"
    urls = [f"{shop.base}/product/{i}" for i in range(1, 7)]
    cfg = session_config(tmp_path, urls, session={"proxies": [dead, b.url()]})
    engine, store, reason = await run(cfg)
    assert reason == "finished"
    assert (await store.counts())["done"] == 6
    assert len(b.pages()) == 6
    stats = engine.statistics().sessions
    assert stats.retired == {"proxy_error": 1}
    assert set(stats.benched_until) == {dead.replace(f"user:{PASSWORD}@", "")}


async def test_a_proxy_that_refuses_its_credentials_retires_its_session_and_charges_no_url(tmp_path, shop, proxies):
    """Proxy A is given a wrong password: its challenge comes back, the page fails, and
    the session retires with reason ``proxy_auth`` (it used to fail the URL
    ``net::ERR_HTTP_RESPONSE_CODE_FAILURE`` and burn its attempts); every page is done
    through B, each at its first charged attempt."""
    a, b = proxies
    wrong = a.url().replace(PASSWORD, "not-the-password")
    urls = [f"{shop.base}/product/{i}" for i in range(1, 7)]
    cfg = session_config(tmp_path, urls, session={"proxies": [wrong, b.url()]})
    engine, store, reason = await run(cfg)
    assert reason == "finished"
    assert (await store.counts())["done"] == 6 and len(b.pages()) == 6
    assert engine.statistics().sessions.retired == {"proxy_auth": 1}
    assert a.challenged >= 1 and a.pages() == []
    attempts = [(await store.url_state(url))["attempts"] for url in urls]
    assert attempts == [1] * 6  # the refused attempts were not charged


async def test_the_shop_sees_the_identity_on_every_request_and_scripts_see_locale_and_timezone(tmp_path, shop, nursery):
    """User agent, extra headers and the cookies file's cookies are on every request
    the shop gets (documents, API calls, images); JavaScript sees the configured
    locale and timezone.  Here through a proxy without credentials."""
    proxy = await start_proxy(nursery, "plain")
    (tmp_path / "cookies.json").write_text(
        json.dumps(
            [
                {"name": "sid", "value": "abc123", "domain": HOST, "path": "/", "hostOnly": True},
                {"name": "pref", "value": "ko", "domain": f".{HOST}", "path": "/", "expirationDate": 4102444800},
            ]
        )
    )
    router = Router()

    @router.route()
    async def product(page):
        await page.wait_for("body[data-ready]")
        seen = await page.evaluate(
            "(() => { const o = Intl.DateTimeFormat().resolvedOptions();"
            " return {locale: o.locale, timezone: o.timeZone, language: navigator.language,"
            " ua: navigator.userAgent}; })()"
        )
        await page.push(seen)

    urls = [f"{shop.base}/product/{i}" for i in range(1, 5)]
    cfg = session_config(
        tmp_path,
        urls,
        extract={"fields": {}, "capture": []},
        session={
            "proxies": [proxy.url()],
            "user_agent": "TestBot/1.0 (like Mozilla)",
            "locale": "ko-KR",
            "timezone": "Asia/Seoul",
            "headers": {"Accept-Language": "ko-KR,ko;q=0.9", "X-Team": "crawl"},
            "cookies_file": "cookies.json",
        },
    )
    _, store, reason = await run(cfg, router)
    assert reason == "finished"
    assert len(shop.requests) >= 4 * 3  # documents, API calls, images
    for path, headers in shop.requests:
        assert headers["user-agent"] == "TestBot/1.0 (like Mozilla)", path
        assert headers["accept-language"] == "ko-KR,ko;q=0.9", path
        assert headers["x-team"] == "crawl", path
        cookies = dict(c.strip().split("=", 1) for c in headers.get("cookie", "").split(";") if c.strip())
        assert cookies == {"sid": "abc123", "pref": "ko"}, path
    items = [item async for item in _items(store)]
    assert len(items) == 4
    for item in items:
        assert (item["locale"], item["timezone"], item["ua"]) == ("ko-KR", "Asia/Seoul", "TestBot/1.0 (like Mozilla)")
        assert item["language"].startswith("ko")


async def test_the_default_user_agent_is_chromium_s_own_without_headless(tmp_path, shop, nursery):
    """Without ``user_agent``, the shop sees Chromium's own user agent with
    "HeadlessChrome" replaced by "Chrome"."""
    proxy = await start_proxy(nursery, "plain")
    cfg = session_config(tmp_path, [f"{shop.base}/product/1"], session={"proxies": [proxy.url()]})
    _, _, reason = await run(cfg)
    assert reason == "finished"
    agents = {headers["user-agent"] for _, headers in shop.requests}
    assert len(agents) == 1
    (agent,) = agents
    assert "Chrome/" in agent and "Headless" not in agent


async def _items(store: SqliteStore):
    for item in await store.items():
        yield item
