"""URL forms (``crawler.urls``) and which network errors are worth retrying."""

from __future__ import annotations

from crawler.policy.failure import net_failure
from crawler.urls import forbidden_scheme, normalise_url, short_url


def test_a_long_url_is_cut_short_for_log_lines_saying_how_much_was_left_out():
    url = "http://a.test/" + "x" * 200_000
    short = short_url(url)
    assert len(short) < 160 and short.startswith("http://a.test/xxx") and "(+199894 chars)" in short
    assert short_url("http://a.test/") == "http://a.test/"


def test_the_scheme_is_accepted_in_any_case_and_only_http_s():
    assert normalise_url("HTTP://A.test:80/x#f") == "http://a.test/x"
    assert normalise_url("HtTpS://a.test:443") == "https://a.test/"
    for bad in ("file:///etc/passwd", "chrome://settings", "javascript:alert(1)", "data:text/html,x", "http:///x"):
        assert normalise_url(bad) is None, bad


def test_network_errors_that_cannot_succeed_are_not_retried():
    for permanent in ("net::ERR_NAME_NOT_RESOLVED", "net::ERR_UNSAFE_PORT", "net::ERR_CERT_AUTHORITY_INVALID"):
        assert not net_failure(permanent).retryable, permanent
    for transient in ("net::ERR_CONNECTION_RESET", "net::ERR_CONNECTION_REFUSED", "net::ERR_TIMED_OUT"):
        assert net_failure(transient).retryable, transient
    assert net_failure("net::ERR_UNSAFE_PORT").reason == "net: net::ERR_UNSAFE_PORT"


def test_forbidden_schemes_are_named_in_any_case_and_nothing_else_is():
    """``forbidden_scheme`` names the scheme of a file:, chrome:, devtools:... URL (any
    case, leading spaces), and is None for http(s), about:blank, Chromium's error page,
    data:, javascript: and what is not a URL at all."""
    for url, scheme in [
        ("file:///etc/passwd", "file"),
        ("  FILE:///etc/shadow", "file"),
        ("Chrome://settings", "chrome"),
        ("chrome-untrusted://terminal/", "chrome-untrusted"),
        ("devtools://devtools/bundled/inspector.html", "devtools"),
        ("view-source:http://shop.test/", "view-source"),
        ("filesystem:http://shop.test/temporary/a", "filesystem"),
    ]:
        assert forbidden_scheme(url) == scheme, url
    for url in (
        "https://shop.test/",
        "about:blank",
        "chrome-error://chromewebdata/",
        "data:text/html,x",
        "javascript:1",
        "",
        None,
        3,
    ):
        assert forbidden_scheme(url) is None, url
