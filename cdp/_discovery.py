"""Attach to a Chromium that is already running (a headless Chromium container)."""

from __future__ import annotations

import logging
import ssl
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from urllib.parse import urlsplit, urlunsplit

import httpx
import trio

from ._browser import Browser
from ._connection import DEFAULT_COMMAND_TIMEOUT_S, DEFAULT_MAX_MESSAGE_BYTES, open_connection
from ._errors import BrowserError, EndpointUnavailable
from ._util import redacted

log = logging.getLogger("cdp.discovery")

CONNECT_TIMEOUT_S = 30.0
RETRY_INTERVAL_S = 0.25


async def discover_ws_url(
    http_url: str, *, timeout_s: float = CONNECT_TIMEOUT_S, ssl_context: ssl.SSLContext | None = None
) -> str:
    """The browser websocket URL behind a DevTools HTTP endpoint (``/json/version``).

    ``http://``: the request says ``Host: localhost``, which Chromium's own server
    requires (it refuses other names; see :func:`cdp._connection._open_stream`).
    ``https://``: Chromium serves no TLS, so this is a proxy or a hosted service: the
    request carries the real host name it routes by, and the certificate is verified
    against it (``ssl_context``, default the system's CAs).  The returned websocket URL
    is rewritten to the scheme, host and port of ``http_url`` (what Chromium reports is
    the address it saw, not one we can reach) and keeps a query string: the one
    reported, else ``http_url``'s (where services put tokens).  Retries until
    ``timeout_s`` while the endpoint is not up, then raises EndpointUnavailable naming
    the URL.  If cancelled, nothing is left open.
    """
    base = urlsplit(http_url)
    if base.scheme not in ("http", "https") or not base.hostname:
        raise BrowserError(f"not a DevTools HTTP endpoint: {redacted(http_url)!r} (expected http://host:port)")
    version_url = urlunsplit((base.scheme, base.netloc, "/json/version", base.query, ""))
    headers = {"Host": "localhost"} if base.scheme == "http" else {}
    last_error = "no attempt"
    async with httpx.AsyncClient(headers=headers, timeout=5.0, verify=ssl_context or True) as client:
        with trio.move_on_after(timeout_s):
            while True:
                try:
                    response = await client.get(version_url)
                    if response.status_code == 200:
                        ws = urlsplit(response.json()["webSocketDebuggerUrl"])
                        scheme = "wss" if base.scheme == "https" else "ws"
                        return urlunsplit((scheme, base.netloc, ws.path, ws.query or base.query, ""))
                    last_error = f"HTTP {response.status_code}: {response.text[:200]!r}"
                except (httpx.HTTPError, ValueError, KeyError) as exc:
                    last_error = f"{type(exc).__name__}: {exc}"
                await trio.sleep(RETRY_INTERVAL_S)
    raise EndpointUnavailable(http_url, timeout_s, last_error)


@asynccontextmanager
async def connect(
    url: str,
    *,
    timeout_s: float = CONNECT_TIMEOUT_S,
    command_timeout_s: float = DEFAULT_COMMAND_TIMEOUT_S,
    max_message_bytes: int = DEFAULT_MAX_MESSAGE_BYTES,
    ssl_context: ssl.SSLContext | None = None,
) -> AsyncIterator[Browser]:
    """Attach to a running browser at ``http(s)://host:port`` or ``ws(s)://...`` and yield it.

    Any host name works, an IP address or not, also through a TCP forwarder in front
    of a Chromium bound to its own 127.0.0.1 (a Compose service such as
    ``http://chromium:9222``): the Host header of each request is chosen as described
    in :func:`discover_ws_url` and :func:`cdp._connection._open_stream`.  A websocket
    URL's query string is kept.  ``ssl_context`` verifies ``https``/``wss`` endpoints.

    Retries until ``timeout_s`` while the endpoint is not up (refused, not resolving,
    or a forwarder with nothing behind it), then raises EndpointUnavailable naming the
    URL.  On exit the connection is closed (the browser keeps running: it is not
    ours); contexts opened through it are disposed by their own blocks first, and the
    browser disposes anything left because contexts are created with
    ``disposeOnDetach``.  Starts the connection's reader task; none outlives the block.
    """
    if url.startswith(("http://", "https://")):
        ws_url = await discover_ws_url(url, timeout_s=timeout_s, ssl_context=ssl_context)
    elif url.startswith(("ws://", "wss://")):
        await _wait_for_tcp(url, timeout_s)
        ws_url = url
    else:
        raise BrowserError(
            f"cannot connect to {redacted(url)!r}: expected http://host:port or ws://host:port/devtools/browser/..."
        )
    async with open_connection(
        ws_url, max_message_bytes=max_message_bytes, command_timeout_s=command_timeout_s, ssl_context=ssl_context
    ) as conn:
        browser = Browser(conn)
        await browser._start()
        yield browser


async def _wait_for_tcp(url: str, timeout_s: float) -> None:
    """Block until something accepts TCP connections at the URL's host and port."""
    parts = urlsplit(url)
    port = parts.port or (443 if parts.scheme == "wss" else 80)
    last_error = "no attempt"
    with trio.move_on_after(timeout_s):
        while True:
            try:
                stream = await trio.open_tcp_stream(parts.hostname or "127.0.0.1", port)
            except OSError as exc:
                last_error = f"{type(exc).__name__}: {exc}"
                await trio.sleep(RETRY_INTERVAL_S)
                continue
            await stream.aclose()
            return
    raise EndpointUnavailable(url, timeout_s, last_error)
