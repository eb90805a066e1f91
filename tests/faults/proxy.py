"""A TCP proxy on 127.0.0.1 between the crawler and Chromium's DevTools port.

The crawler connects to ``ws://127.0.0.1:<proxy port>/devtools/browser/<id>``; every
connection it opens is relayed to Chromium byte for byte, until the test calls

- :meth:`CdpProxy.sever`: every current connection is cut at once (both sockets
  closed), as when a network link or a sidecar dies;
- :meth:`CdpProxy.swallow`: every current connection stays open but carries nothing
  more, either way (a wedged browser, or a half-dead link): bytes are read and dropped.

Connections opened later are relayed normally, so the engine can reconnect through the
same address.  The proxy runs in the caller's nursery (``await nursery.start(proxy.serve)``)
and stops when that nursery is cancelled.
"""

from __future__ import annotations

from functools import partial

import attrs
import trio


@attrs.define(eq=False)
class _Link:
    client: trio.SocketStream
    upstream: trio.SocketStream
    scope: trio.CancelScope = attrs.field(factory=trio.CancelScope)
    swallowed: bool = False
    bytes_up: int = 0  # crawler -> browser
    bytes_down: int = 0  # browser -> crawler
    head: bytes = b""  # the first bytes the client sent (the request head of a handshake)


class CdpProxy:
    """Listens on ``host``:``port`` (0: any free port) and relays to the upstream; also the
    TCP forwarder of a browser container (socat in ``chromedp/headless-shell``)."""

    def __init__(self, upstream_port: int, upstream_host: str = "127.0.0.1", *, host: str = "127.0.0.1", port: int = 0):
        self.upstream = (upstream_host, upstream_port)
        self.host = host
        self.port = port
        self.links: set[_Link] = set()
        self.history: list[_Link] = []  # every relayed connection, in order
        self.accepted = 0
        self.severed = 0
        self.swallowed = 0

    async def serve(self, *, task_status: trio.TaskStatus[int] = trio.TASK_STATUS_IGNORED) -> None:
        listeners = await trio.open_tcp_listeners(self.port, host=self.host)
        self.port = listeners[0].socket.getsockname()[1]
        task_status.started(self.port)
        await trio.serve_listeners(self._relay, listeners)

    def url(self, ws_url: str) -> str:
        """``ws_url`` (the browser's own websocket URL) pointed at the proxy instead."""
        path = ws_url.split("/", 3)[3]
        return f"ws://{self.host}:{self.port}/{path}"

    @property
    def sessions(self) -> int:
        """Connections that carried data (a websocket), not bare TCP probes."""
        return sum(1 for link in self.history if link.bytes_up)

    def sever(self) -> int:
        """Cut every current connection. Returns how many were cut."""
        links = list(self.links)
        for link in links:
            link.scope.cancel()
        self.severed += len(links)
        return len(links)

    def swallow(self) -> int:
        """Make every current connection carry nothing more, either way. Returns how many."""
        for link in self.links:
            link.swallowed = True
        self.swallowed += len(self.links)
        return len(self.links)

    async def _relay(self, client: trio.SocketStream) -> None:
        self.accepted += 1
        try:
            upstream = await trio.open_tcp_stream(*self.upstream)
        except OSError:
            await client.aclose()
            return
        link = _Link(client, upstream)
        self.links.add(link)
        self.history.append(link)
        try:
            with link.scope:
                async with trio.open_nursery() as nursery:
                    nursery.start_soon(partial(self._pump, client, upstream, link, up=True))
                    nursery.start_soon(partial(self._pump, upstream, client, link, up=False))
        finally:
            self.links.discard(link)
            with trio.CancelScope(shield=True):
                await client.aclose()
                await upstream.aclose()

    @staticmethod
    async def _pump(source: trio.SocketStream, sink: trio.SocketStream, link: _Link, *, up: bool) -> None:
        try:
            while True:
                data = await source.receive_some(65536)
                if not data:
                    break
                if up:
                    if len(link.head) < 4096:
                        link.head += data[: 4096 - len(link.head)]
                    link.bytes_up += len(data)
                else:
                    link.bytes_down += len(data)
                if not link.swallowed:
                    await sink.send_all(data)
        except (trio.BrokenResourceError, trio.ClosedResourceError):
            pass
        link.scope.cancel()  # one side is gone: close the other
