"""The identity a session presents, without a browser: the user agent override a tab
gets (crawler.browser.identity) and the headers of the HTTP path
(``SessionPool.http_headers``).  Against real Chromium: test_identity_hints.py."""

from __future__ import annotations

import json

from crawler.browser.identity import Identity, browser_identity, user_agent_override
from crawler.browser.session import SessionPool
from crawler.http.client import DEFAULT_USER_AGENT
from tests.crawler.browser.user_agents import FIREFOX, MAC, WINDOWS
from tests.crawler.conftest import make_config

CHROMIUM_VERSION = {
    "product": "Chrome/156.0.8078.129",
    "userAgent": "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) HeadlessChrome/156.0.0.0"
    " Safari/537.36",
}


def session_pool(tmp_path, **session) -> SessionPool:
    return SessionPool(make_config(tmp_path, ["http://shop.test/"], session=session).session)


def test_a_chrome_user_agent_is_overridden_with_its_client_hints_platform_and_languages():
    params = user_agent_override(Identity(user_agent=MAC, locale="ko-KR"))
    assert params["userAgent"] == MAC and params["acceptLanguage"] == "ko-KR" and params["platform"] == "MacIntel"
    metadata = params["userAgentMetadata"]
    assert metadata["platform"] == "macOS" and metadata["mobile"] is False
    assert [b["brand"] for b in metadata["brands"]] == ["Google Chrome", "Chromium", "Not_A Brand"]


def test_a_firefox_user_agent_is_overridden_with_its_platform_and_no_client_hints():
    """No metadata: Chromium then sends no Sec-CH-UA, as Firefox sends none."""
    assert user_agent_override(Identity(user_agent=FIREFOX)) == {"userAgent": FIREFOX, "platform": "Win32"}
    assert user_agent_override(Identity(user_agent="TestBot/1.0")) == {"userAgent": "TestBot/1.0"}


def test_the_browser_s_own_identity_says_chrome_with_its_build_and_never_headless():
    identity = browser_identity(Identity(locale="ko-KR"), CHROMIUM_VERSION)
    assert identity.user_agent == CHROMIUM_VERSION["userAgent"].replace("HeadlessChrome", "Chrome")
    assert identity.locale == "ko-KR"
    params = user_agent_override(identity)
    assert "Headless" not in json.dumps(params)
    assert params["platform"] == "Linux x86_64"
    full = {b["brand"]: b["version"] for b in params["userAgentMetadata"]["fullVersionList"]}
    assert full["Chromium"] == full["Google Chrome"] == "156.0.8078.129"


def test_http_headers_carry_the_client_hints_of_a_chrome_user_agent(tmp_path):
    headers = session_pool(tmp_path, user_agent=WINDOWS).http_headers()
    assert headers["user-agent"] == WINDOWS
    assert {k: v for k, v in headers.items() if k.startswith("sec-ch-ua")} == {
        "sec-ch-ua": '"Chromium";v="130", "Google Chrome";v="130", "Not?A_Brand";v="99"',
        "sec-ch-ua-mobile": "?0",
        "sec-ch-ua-platform": '"Windows"',
    }


def test_http_headers_carry_no_client_hints_for_firefox_and_a_configured_one_wins(tmp_path):
    assert not any(k.startswith("sec-ch") for k in session_pool(tmp_path, user_agent=FIREFOX).http_headers())
    configured = session_pool(tmp_path, user_agent=WINDOWS, headers={"Sec-CH-UA-Platform": '"Linux"'})
    assert configured.http_headers()["sec-ch-ua-platform"] == '"Linux"'


def test_http_headers_without_a_user_agent_or_browser_present_the_default_chrome_s_hints(tmp_path):
    headers = session_pool(tmp_path).http_headers()
    assert headers["user-agent"] == DEFAULT_USER_AGENT
    assert headers["sec-ch-ua-platform"] == '"Linux"' and '"Chromium";v="143"' in headers["sec-ch-ua"]
