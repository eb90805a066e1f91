"""URL forms (``crawler.urls``) and which network errors are worth retrying."""

from __future__ import annotations

from crawler.failure import net_failure
from crawler.urls import normalise_url, short_url


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
