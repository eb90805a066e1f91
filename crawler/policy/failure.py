"""Why a page job produced no outcome but a failure: :class:`PageFailure` and the HTTP
statuses that decide whether to retry.

A failure is data for the engine (a reason stored with the URL), raised as an exception
inside the job: by the page (a status, a network error, a selector that never came),
or by a user's handler (``raise crawler.PageFailure("blocked", retryable=True)``).
"""

from __future__ import annotations

import email.utils
import time

from crawler.errors import PageFailure, SessionRetired

RETRYABLE_STATUS = {408, 425, 429, 500, 502, 503, 504}
SLOW_DOWN_STATUS = (429, 503)  # the host asks us to back off (Retry-After honoured)
MAX_RETRY_AFTER_S = 3600.0

# Network errors that another attempt cannot cure: the name does not resolve (NXDOMAIN,
# as Chromium reports it; a resolver that is down gives ERR_NAME_RESOLUTION_FAILED,
# which is retried), a port or scheme the browser refuses, a URL it cannot load, our
# own block list, certificates that do not match.  Everything else (resets, refused
# connections, timeouts) may pass and is retried.
PERMANENT_NET_ERRORS = frozenset(
    {
        "net::ERR_NAME_NOT_RESOLVED",
        "net::ERR_UNSAFE_PORT",
        "net::ERR_UNSAFE_REDIRECT",
        "net::ERR_INVALID_URL",
        "net::ERR_INVALID_REDIRECT",
        "net::ERR_DISALLOWED_URL_SCHEME",
        "net::ERR_UNKNOWN_URL_SCHEME",
        "net::ERR_TOO_MANY_REDIRECTS",
        "net::ERR_BLOCKED_BY_CLIENT",
        "net::ERR_BLOCKED_BY_ADMINISTRATOR",
        "net::ERR_BLOCKED_BY_RESPONSE",
        "net::ERR_ADDRESS_INVALID",
        "net::ERR_CERT_COMMON_NAME_INVALID",
        "net::ERR_CERT_AUTHORITY_INVALID",
        "net::ERR_CERT_DATE_INVALID",
        "net::ERR_CERT_INVALID",
        "net::ERR_CERT_REVOKED",
    }
)


# The proxy, not the site, failed: the session's proxy is benched and the URL retried
# in another session (see crawler.browser.session).
PROXY_NET_ERRORS = frozenset(
    {
        "net::ERR_PROXY_CONNECTION_FAILED",
        "net::ERR_TUNNEL_CONNECTION_FAILED",
        "net::ERR_PROXY_CERTIFICATE_INVALID",
        "net::ERR_NO_SUPPORTED_PROXIES",
        "net::ERR_SOCKS_CONNECTION_FAILED",
        "net::ERR_SOCKS_CONNECTION_HOST_UNREACHABLE",
    }
)


# The proxy would not take the session's credentials: retired as ``proxy_auth``.
PROXY_AUTH_NET_ERRORS = frozenset(
    {"net::ERR_PROXY_AUTH_UNSUPPORTED", "net::ERR_PROXY_AUTH_REQUESTED", "net::ERR_UNEXPECTED_PROXY_AUTH"}
)


def net_failure(error_text: str) -> PageFailure:
    """The failure of a navigation the network stack refused (``net::ERR_...``):
    retried unless it is one of :data:`PERMANENT_NET_ERRORS`; a proxy's failure
    (:data:`PROXY_NET_ERRORS`, :data:`PROXY_AUTH_NET_ERRORS`) retires the session."""
    if error_text in PROXY_AUTH_NET_ERRORS:
        return SessionRetired("proxy_auth")
    if error_text in PROXY_NET_ERRORS:
        return SessionRetired("proxy_error")
    return PageFailure("net", error_text, retryable=error_text not in PERMANENT_NET_ERRORS)


def status_failure(status: int | None, headers: dict[str, str]) -> PageFailure | None:
    """The failure a main document's HTTP status means, or None if it is a success."""
    if status is None or status < 400:
        return None
    retry_after = retry_after_s(headers) if status in SLOW_DOWN_STATUS else None
    return PageFailure(f"http_{status}", retryable=status in RETRYABLE_STATUS, status=status, retry_after_s=retry_after)


def retry_after_s(headers: dict[str, str]) -> float | None:
    """Seconds a Retry-After header (seconds or an HTTP date) asks for, capped; None if absent."""
    value = headers.get("retry-after")
    if not value:
        return None
    value = value.strip()
    if value.isdigit():
        return min(float(value), MAX_RETRY_AFTER_S)
    try:
        when = email.utils.parsedate_to_datetime(value).timestamp()
    except (TypeError, ValueError):
        return None
    return min(max(0.0, when - time.time()), MAX_RETRY_AFTER_S)
