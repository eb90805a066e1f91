"""One identity, consistently (real Chromium): under a set user agent, what a page
reads (``navigator.userAgent``, ``navigator.platform``, ``navigator.userAgentData``
and its high-entropy values) and the ``Sec-CH-UA*`` headers a server receives agree
with the user agent; so do the headers of the HTTP path.

The server is on 127.0.0.1: a potentially trustworthy origin, where Chromium sends
client hints and exposes ``navigator.userAgentData`` as it does over https."""

from __future__ import annotations

import json
from typing import Any

import pytest
import trio

import cdp
from crawler import config as config_mod
from crawler.browser.identity import Identity, apply_identity
from crawler.browser.session import SessionPool
from crawler.httpserver import HttpRequest, Response, serve_http
from crawler.run.engine import Crawler
from crawler.store.sqlite import SqliteStore
from tests.crawler.browser.user_agents import ANDROID, FIREFOX, MAC, WINDOWS
from tests.crawler.conftest import make_config
from tests.crawler.http.static_shop import StaticShop, no_browser, start_static_shop

pytestmark = pytest.mark.chromium

LOAD_TIMEOUT_S = 10.0
READ = """(async () => {
  const d = navigator.userAgentData;
  return {
    userAgent: navigator.userAgent,
    platform: navigator.platform,
    data: d ? {
      brands: d.brands, mobile: d.mobile, platform: d.platform,
      high: await d.getHighEntropyValues(['platformVersion', 'fullVersionList', 'architecture', 'model', 'bitness']),
    } : null,
  };
})()"""


class Recorder:
    """Answers every request with a small page and keeps its headers (names lower-cased)."""

    def __init__(self) -> None:
        self.base = ""
        self.requests: dict[str, dict[str, str]] = {}

    async def __call__(self, request: HttpRequest) -> Response:
        self.requests[request.path] = request.headers
        return Response(body=b"<!doctype html><html><body>hello</body></html>")

    def hints(self, path: str) -> dict[str, str]:
        return {k: v for k, v in self.requests[path].items() if k.startswith("sec-ch-")}


@pytest.fixture
async def site(nursery) -> Recorder:
    recorder = Recorder()
    recorder.base = f"http://127.0.0.1:{await nursery.start(serve_http, recorder)}"
    return recorder


async def read_page(tab: cdp.Tab, url: str) -> dict[str, Any]:
    await tab.send("Page.enable")
    async with tab.listen("Page.loadEventFired") as loads:
        with trio.fail_after(LOAD_TIMEOUT_S):
            reply = await tab.send("Page.navigate", url=url)
            assert "errorText" not in reply, reply
            await loads.receive()
    result = await tab.send("Runtime.evaluate", expression=READ, awaitPromise=True, returnByValue=True)
    assert "exceptionDetails" not in result, result
    return result["result"]["value"]


def brands(header: str) -> list[tuple[str, str]]:
    """A Sec-CH-UA header's (brand, version) pairs, in order."""
    pairs = [item.split(";v=") for item in header.split(", ")]
    return [(brand.strip('"'), version.strip('"')) for brand, version in pairs]


# What a real browser with each user agent presents (the brand lists as those Chrome versions sent them).
CASES = {
    "windows": (WINDOWS, {
        "platform": "Win32", "mobile": False, "uad_platform": "Windows", "platformVersion": "10.0.0",
        "architecture": "x86", "bitness": "64", "model": "", "full": "130.0.0.0",
        "sec-ch-ua": '"Chromium";v="130", "Google Chrome";v="130", "Not?A_Brand";v="99"',
    }),
    "mac": (MAC, {
        "platform": "MacIntel", "mobile": False, "uad_platform": "macOS", "platformVersion": "10.15.7",
        "architecture": "x86", "bitness": "64", "model": "", "full": "131.0.0.0",
        "sec-ch-ua": '"Google Chrome";v="131", "Chromium";v="131", "Not_A Brand";v="24"',
    }),
    "android": (ANDROID, {
        "platform": "Linux armv8l", "mobile": True, "uad_platform": "Android", "platformVersion": "14.0.0",
        "architecture": "", "bitness": "", "model": "Pixel 8", "full": "120.0.6099.230",
        "sec-ch-ua": '"Not_A Brand";v="8", "Chromium";v="120", "Google Chrome";v="120"',
    }),
}  # fmt: skip


@pytest.mark.parametrize("case", CASES)
async def test_user_agent_data_and_sec_ch_ua_headers_match_a_set_user_agent(case, shared_browser, site, tmp_path):
    """Windows, Mac and Android Chrome user agents set on a tab: the page reads that
    user agent, its navigator.platform, its brands (Sec-CH-UA's, in the same order),
    mobile bit, platform and high-entropy values; the server receives the three
    low-entropy hints as that Chrome sends them, and no other; the HTTP path's headers
    for the same user agent are the same three."""
    user_agent, want = CASES[case]
    async with shared_browser.new_context() as context, context.new_tab() as tab:
        await apply_identity(tab, Identity(user_agent=user_agent, locale="en-US"))
        seen = await read_page(tab, f"{site.base}/{case}")
    data = seen["data"]
    assert seen["userAgent"] == user_agent and seen["platform"] == want["platform"]
    assert [(b["brand"], b["version"]) for b in data["brands"]] == brands(want["sec-ch-ua"])
    assert (data["mobile"], data["platform"]) == (want["mobile"], want["uad_platform"])
    high = data["high"]
    assert {k: high[k] for k in ("platformVersion", "architecture", "bitness", "model")} == {
        k: want[k] for k in ("platformVersion", "architecture", "bitness", "model")
    }
    full = {b["brand"]: b["version"] for b in high["fullVersionList"]}
    assert full["Chromium"] == full["Google Chrome"] == want["full"]
    sent = site.hints(f"/{case}")
    assert sent == {
        "sec-ch-ua": want["sec-ch-ua"],
        "sec-ch-ua-mobile": "?1" if want["mobile"] else "?0",
        "sec-ch-ua-platform": f'"{want["uad_platform"]}"',
    }
    http = SessionPool(make_config(tmp_path, [site.base], session={"user_agent": user_agent}).session).http_headers()
    assert {k: v for k, v in http.items() if k.startswith("sec-ch-")} == sent


async def test_a_firefox_user_agent_sends_no_client_hints_and_keeps_its_platform(shared_browser, site, tmp_path):
    """The closest to Firefox over CDP: no Sec-CH-UA header (neither path), its
    navigator.platform; navigator.userAgentData remains, with no brands and no
    platform (Firefox has none: the limit of an override)."""
    async with shared_browser.new_context() as context, context.new_tab() as tab:
        await apply_identity(tab, Identity(user_agent=FIREFOX))
        seen = await read_page(tab, f"{site.base}/firefox")
    assert seen["userAgent"] == FIREFOX and seen["platform"] == "Win32"
    assert seen["data"]["brands"] == [] and seen["data"]["platform"] == ""
    assert site.hints("/firefox") == {}
    http = SessionPool(make_config(tmp_path, [site.base], session={"user_agent": FIREFOX}).session).http_headers()
    assert not any(k.startswith("sec-ch-") for k in http)


async def test_the_browser_s_own_user_agent_says_chrome_with_its_build_everywhere_never_headless(
    shared_browser, site, tmp_path
):
    """No user agent set: a session's tab presents Chromium's user agent minus
    "HeadlessChrome", and its client hints agree (brands, full versions of its build,
    platform); nothing a page or the server sees says Headless; the HTTP path then
    sends the hints Chromium sent."""
    version = await shared_browser.send("Browser.getVersion")
    build = version["product"].rpartition("/")[2]
    major = build.split(".")[0]
    sessions = SessionPool(make_config(tmp_path, [site.base]).session)
    context = await sessions.create_context(shared_browser)
    try:
        tab = await context.create_tab()
        await sessions.prepare_tab(tab)
        seen = await read_page(tab, f"{site.base}/own")
    finally:
        await context.aclose()
        await sessions.aclose()
    assert seen["userAgent"] == version["userAgent"].replace("HeadlessChrome", "Chrome")
    assert f"Chrome/{major}." in seen["userAgent"]
    sent = site.hints("/own")
    assert "Headless" not in json.dumps(seen) + json.dumps(site.requests["/own"])
    data = seen["data"]
    assert [(b["brand"], b["version"]) for b in data["brands"]] == brands(sent["sec-ch-ua"])
    assert {brand: v for brand, v in brands(sent["sec-ch-ua"]) if not brand.startswith("Not")} == {
        "Chromium": major,
        "Google Chrome": major,
    }
    full = {b["brand"]: b["version"] for b in data["high"]["fullVersionList"]}
    assert full["Chromium"] == full["Google Chrome"] == build
    assert (seen["platform"], data["platform"], sent["sec-ch-ua-platform"]) == ("Linux x86_64", "Linux", '"Linux"')
    assert {k: v for k, v in sessions.http_headers().items() if k.startswith("sec-ch-")} == sent


async def test_an_http_crawl_sends_the_client_hints_chromium_sends_for_its_user_agent(
    shared_browser, site, nursery, tmp_path
):
    """A crawl over HTTP only (fetch = "http", no browser) with a Windows Chrome user
    agent: the server gets the same Sec-CH-UA headers as from Chromium with that user agent."""
    async with shared_browser.new_context() as context, context.new_tab() as tab:
        await apply_identity(tab, Identity(user_agent=WINDOWS))
        await read_page(tab, f"{site.base}/chromium")
    shop = StaticShop()
    shop.base = await start_static_shop(nursery, shop)
    cfg = config_mod.from_dict(
        {
            "input": {"urls": [f"{shop.base}/echo"]},
            "crawl": {"fetch": "http"},
            "route": [{"fields": {"echo": "#echo"}}],
            "session": {"user_agent": WINDOWS},
            "output": {"db": str(tmp_path / "crawl.db")},
        },
        source="test.toml",
        base_dir=str(tmp_path),
    )
    store = SqliteStore(cfg.output.db)
    assert await Crawler(cfg, store, open_browser=no_browser).run() == "finished"
    [item] = await store.items()
    headers = json.loads(item["echo"])["headers"]
    assert headers["user-agent"] == WINDOWS
    assert {k: v for k, v in headers.items() if k.startswith("sec-ch-")} == site.hints("/chromium")
    assert site.hints("/chromium")["sec-ch-ua-platform"] == '"Windows"'
