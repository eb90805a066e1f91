"""A small forwarding HTTP proxy for the session tests, served on 127.0.0.1.

It forwards plain ``http://`` absolute-URI requests (no CONNECT) and knows hosts that
nobody else resolves: ``hosts`` maps a name (``shop.test``) to the address it stands
for, so a request that reaches the shop under that name must have come through a
proxy.  It requires Basic authentication (``Proxy-Authorization``) when ``credentials``
is given, answering 407 with a challenge otherwise, and counts what it forwards.
``block_after=N`` makes it answer 403 (a challenge page) to every page request (a
``/product/`` document; sub-resources still pass) after its Nth, as a site that has
blocked the proxy's address would; ``challenge_after=N`` answers the same challenge
page with status 200 instead, as a site that shows a captcha does.

One request per connection: each answer closes the connection (the browser opens
another), which keeps the relay a copy until end of file.
"""

from __future__ import annotations

import base64
from urllib.parse import urlsplit

import attrs
import trio

HEAD_LIMIT_BYTES = 64 * 1024
RELAY_TIMEOUT_S = 10.0
BLOCKED_PAGE = b"<html><body><h1>Access denied</h1><div id='captcha'>prove you are human</div></body></html>"


@attrs.define(eq=False)
class ProxyRequest:
    method: str
    url: str
    headers: dict[str, str]  # lower-cased names, as forwarded (proxy headers removed)


@attrs.define(eq=False)
class HttpProxy:
    """State of one proxy: its address once served, what it forwarded, what it refused."""

    name: str
    hosts: dict[str, str] = attrs.field(factory=dict)  # host name -> address it resolves to
    credentials: tuple[str, str] | None = None
    block_after: int | None = None
    challenge_after: int | None = None
    port: int = 0
    forwarded: list[ProxyRequest] = attrs.field(factory=list)
    blocked: int = 0  # page requests answered 403 (block_after) or with the challenge (challenge_after)
    challenged: int = 0  # requests answered 407 (no or wrong credentials)

    def url(self, *, with_credentials: bool = True) -> str:
        """The proxy's URL for ``[session] proxies`` (credentials in it, if it needs any)."""
        auth = f"{self.credentials[0]}:{self.credentials[1]}@" if self.credentials and with_credentials else ""
        return f"http://{auth}127.0.0.1:{self.port}"

    def pages(self) -> list[ProxyRequest]:
        """Forwarded requests for product pages (documents), in order."""
        return [r for r in self.forwarded if urlsplit(r.url).path.startswith("/product/")]

    async def serve(self, *, task_status: trio.TaskStatus[int] = trio.TASK_STATUS_IGNORED) -> None:
        listeners = await trio.open_tcp_listeners(0, host="127.0.0.1")
        self.port = listeners[0].socket.getsockname()[1]
        task_status.started(self.port)
        await trio.serve_listeners(self._connection, listeners)

    async def _connection(self, stream: trio.SocketStream) -> None:
        try:
            with trio.move_on_after(RELAY_TIMEOUT_S):
                await self._handle(stream)
        except (trio.BrokenResourceError, trio.ClosedResourceError, OSError):
            pass
        finally:
            with trio.move_on_after(1.0, shield=True):
                await stream.aclose()

    async def _handle(self, stream: trio.SocketStream) -> None:
        data = b""
        while b"\r\n\r\n" not in data:
            chunk = await stream.receive_some(4096)
            if not chunk or len(data) > HEAD_LIMIT_BYTES:
                return
            data += chunk
        head, _, rest = data.partition(b"\r\n\r\n")
        lines = head.decode("latin-1").split("\r\n")
        method, target, _version = lines[0].split(" ", 2)
        headers: dict[str, str] = {}
        for line in lines[1:]:
            key, _, value = line.partition(":")
            headers[key.strip().lower()] = value.strip()
        if self.credentials is not None:
            expected = "Basic " + base64.b64encode(":".join(self.credentials).encode()).decode()
            if headers.get("proxy-authorization") != expected:
                self.challenged += 1
                await stream.send_all(
                    b"HTTP/1.1 407 Proxy Authentication Required\r\n"
                    b'Proxy-Authenticate: Basic realm="test"\r\nContent-Length: 0\r\nConnection: close\r\n\r\n'
                )
                return
        url = urlsplit(target)
        if not url.scheme or url.hostname not in self.hosts:
            await stream.send_all(b"HTTP/1.1 502 Bad Gateway\r\nContent-Length: 0\r\nConnection: close\r\n\r\n")
            return
        limit = self.block_after if self.block_after is not None else self.challenge_after
        if limit is not None and url.path.startswith("/product/") and len(self.pages()) >= limit:
            self.blocked += 1
            status = b"403 Forbidden" if self.block_after is not None else b"200 OK"
            await stream.send_all(
                b"HTTP/1.1 "
                + status
                + b"\r\nContent-Type: text/html\r\n"
                + f"Content-Length: {len(BLOCKED_PAGE)}\r\nConnection: close\r\n\r\n".encode()
                + BLOCKED_PAGE
            )
            return
        forwarded = {k: v for k, v in headers.items() if not k.startswith("proxy-") and k != "connection"}
        self.forwarded.append(ProxyRequest(method, target, forwarded))
        length = int(headers.get("content-length", "0") or 0)
        while len(rest) < length:
            chunk = await stream.receive_some(4096)
            if not chunk:
                return
            rest += chunk
        path = url.path or "/"
        if url.query:
            path += "?" + url.query
        upstream_head = (
            f"{method} {path} HTTP/1.1\r\n"
            + "".join(f"{k}: {v}\r\n" for k, v in forwarded.items())
            + "connection: close\r\n\r\n"
        )
        upstream = await trio.open_tcp_stream(self.hosts[url.hostname], url.port or 80)
        async with upstream:
            await upstream.send_all(upstream_head.encode("latin-1") + rest)
            while chunk := await upstream.receive_some(65536):
                await stream.send_all(chunk)
