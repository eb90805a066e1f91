"""Parsing the identity of ``[session]`` (crawler.config.identity, crawler.config): proxy
URLs, headers and cookie files, and the one-line errors that name file and key."""

from __future__ import annotations

import json

import pytest

from crawler import config as config_mod
from crawler.browser.identity import Identity
from crawler.config.identity import Proxy, parse_proxy
from crawler.errors import ConfigError


def load(tmp_path, **session):
    data = {"input": {"urls": ["http://shop.test/product/1"]}, "session": session}
    return config_mod.from_dict(data, source="site.toml", base_dir=str(tmp_path))


@pytest.mark.parametrize(
    ("url", "server", "credentials"),
    [
        ("http://user:p%40ss@proxy.example:3128", "http://proxy.example:3128", ("user", "p@ss")),
        ("http://proxy.example", "http://proxy.example:80", None),
        ("https://proxy.example:8443/", "https://proxy.example:8443", None),
        ("socks5://10.0.0.1:1080", "socks5://10.0.0.1:1080", None),
    ],
)
def test_a_proxy_url_gives_chromium_its_server_and_keeps_the_credentials_apart(url, server, credentials):
    """The server Chromium gets (and logs show) has no credentials; nor has its repr."""
    proxy = parse_proxy(url)
    assert (proxy.server, proxy.credentials) == (server, credentials)
    assert "ss" not in repr(proxy).replace("with credentials", "")


@pytest.mark.parametrize(
    ("proxies", "message"),
    [
        (["ftp://u:hunter2@proxy.example:21"], "with scheme http, https, socks4, socks5"),
        (["http://u:hunter2@:3128"], "expected scheme://[user:pass@]host:port"),
        (["http://u:hunter2@proxy.example:99999"], "not a proxy URL"),
        (["http://u:hunter2@proxy.example:3128/path"], "expected scheme://[user:pass@]host:port"),
        (["socks5://u:hunter2@proxy.example:1080"], "cannot authenticate to SOCKS"),
        ("http://proxy.example:3128", "expected a list of proxy URLs"),
    ],
)
def test_a_malformed_proxy_is_one_line_naming_file_and_key_without_the_password(tmp_path, proxies, message):
    with pytest.raises(ConfigError) as caught:
        load(tmp_path, proxies=proxies)
    text = str(caught.value)
    assert text.startswith("site.toml: [session] proxies: ") and message in text, text
    assert "hunter2" not in text and "\n" not in text


@pytest.mark.parametrize(
    ("session", "message"),
    [
        ({"retire_on_status": [200]}, "[session] retire_on_status: expected a list of HTTP statuses"),
        ({"retire_if": "div[["}, "[session] retire_if: "),
        ({"headers": {"Bad Header": "x"}}, "[session] headers: not an HTTP header name"),
        ({"headers": {"X-A": 1}}, "[session] headers: header X-A: expected a one-line string"),
        ({"max_pages_per_session": -1}, "[session] max_pages_per_session: expected an integer >= 0"),
        ({"proxy": []}, "[session] unknown key 'proxy'"),
    ],
)
def test_other_bad_session_keys_are_one_line_naming_the_key(tmp_path, session, message):
    with pytest.raises(ConfigError, match=None) as caught:
        load(tmp_path, **session)
    assert message in str(caught.value) and "\n" not in str(caught.value)


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ("[{", "invalid JSON"),
        ('[{"name": "a", "value": "b"}]', "cookie #1: domain: expected a string"),
        ('[{"name": "a", "value": "b", "domain": "x", "sameSite": "sometimes"}]', "sameSite"),
        ("shop.test\tTRUE\t/\n", "line 1: expected a JSON list of cookies or Netscape cookies.txt"),
        ("shop.test\tyes\t/\tFALSE\t0\tn\tv\n", "line 1: expected TRUE/FALSE flags"),
    ],
)
def test_a_malformed_cookie_file_is_one_line_naming_file_and_key(tmp_path, content, message):
    (tmp_path / "cookies").write_text(content)
    with pytest.raises(ConfigError) as caught:
        load(tmp_path, cookies_file="cookies")
    text = str(caught.value)
    assert text.startswith("site.toml: [session] cookies_file: ") and str(tmp_path / "cookies") in text
    assert message in text and "\n" not in text


def test_a_missing_cookie_file_names_its_path(tmp_path):
    with pytest.raises(ConfigError, match=r"\[session\] cookies_file: no such file .*nope.json"):
        load(tmp_path, cookies_file="nope.json")


def test_a_devtools_cookie_export_becomes_cookie_params(tmp_path):
    """The export's fields map onto Network.CookieParam: host-only cookies are set by
    URL, domain cookies by domain, session cookies get no expiry, sameSite is named as
    CDP names it."""
    export = [
        {"name": "sid", "value": "1", "domain": "shop.test", "hostOnly": True, "path": "/", "secure": True},
        {
            "name": "pref",
            "value": "ko",
            "domain": ".shop.test",
            "path": "/a",
            "httpOnly": True,
            "sameSite": "no_restriction",
            "expirationDate": 4102444800.5,
        },
        {"name": "tmp", "value": "", "domain": "shop.test", "session": True, "expirationDate": 1, "sameSite": "lax"},
    ]
    (tmp_path / "cookies.json").write_text(json.dumps(export))
    cfg = load(tmp_path, cookies_file="cookies.json")
    assert cfg.cookies == (
        {"name": "sid", "value": "1", "path": "/", "secure": True, "httpOnly": False, "url": "https://shop.test/"},
        {
            "name": "pref",
            "value": "ko",
            "path": "/a",
            "secure": False,
            "httpOnly": True,
            "domain": ".shop.test",
            "expires": 4102444800.5,
            "sameSite": "None",
        },
        {
            "name": "tmp",
            "value": "",
            "path": "/",
            "secure": False,
            "httpOnly": False,
            "domain": ".shop.test",
            "sameSite": "Lax",
        },
    )


def test_accept_language_languages_come_from_the_header_else_the_locale():
    """navigator.languages and the header agree: the header's languages (Chromium
    writes the q-values), else the locale."""
    assert Identity(headers=(("Accept-Language", "ko-KR,ko;q=0.9,en;q=0.5"),)).accept_language == "ko-KR,ko,en"
    assert Identity(locale="ko-KR").accept_language == "ko-KR"
    assert Identity().accept_language == ""
    assert Proxy("http://p:1").credentials is None
