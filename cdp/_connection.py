"""One link to a browser and its reader task: opening it, and closing it.

The link is a transport (``cdp/_transport.py``): a websocket for a browser reached by
URL (:func:`open_connection`), a pair of pipes for a browser we launched
(:func:`open_pipe_connection`).  Everything else is the same for both: the
:class:`~cdp.Connection` on it, which routes its messages, is :mod:`cdp._dispatch`'s
(re-exported here, with its names).
"""

from __future__ import annotations

import ssl
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from urllib.parse import urlsplit

import trio
import trio_websocket

from ._dispatch import DEFAULT_EVENT_BUFFER, Connection, ConnectionStatistics, Event, EventStream
from ._errors import ConnectionLost
from ._transport import PipeTransport, WebSocketTransport
from ._util import open_service_nursery, redacted

__all__ = [
    "CLOSE_TIMEOUT_S",
    "DEFAULT_COMMAND_TIMEOUT_S",
    "DEFAULT_CONNECT_TIMEOUT_S",
    "DEFAULT_EVENT_BUFFER",
    "DEFAULT_MAX_MESSAGE_BYTES",
    "Connection",
    "ConnectionStatistics",
    "Event",
    "EventStream",
    "open_connection",
    "open_pipe_connection",
]

DEFAULT_MAX_MESSAGE_BYTES = 256 * 2**20  # 256 MiB: a full-page screenshot or a large body fits
DEFAULT_COMMAND_TIMEOUT_S = 30.0
DEFAULT_CONNECT_TIMEOUT_S = 10.0
CLOSE_TIMEOUT_S = 2.0  # closing the transport (the websocket's closing handshake)


@asynccontextmanager
async def open_connection(
    ws_url: str,
    *,
    max_message_bytes: int = DEFAULT_MAX_MESSAGE_BYTES,
    command_timeout_s: float = DEFAULT_COMMAND_TIMEOUT_S,
    connect_timeout_s: float = DEFAULT_CONNECT_TIMEOUT_S,
    ssl_context: ssl.SSLContext | None = None,
) -> AsyncIterator[Connection]:
    """Open a websocket to ``ws_url`` and run its reader task until the block exits.

    ``ws://`` and ``wss://`` URLs, by any host name, with their query string (see
    :func:`_open_stream` for the Host header each gets); ``ssl_context`` verifies a
    ``wss://`` endpoint (default: the system's CAs).  Owns a nursery holding the
    reader (and trio-websocket's own task).  Those tasks
    are shielded from the caller's cancellation: when a scope around this block is
    cancelled, the owners' shielded cleanup inside it (closing tabs, disposing
    contexts, ``Browser.close``) still has a working connection.  On exit the
    websocket is closed (bounded by CLOSE_TIMEOUT_S, shielded), every pending
    command fails with ConnectionLost, and the tasks are cancelled.  Raises
    ConnectionLost if the websocket cannot be opened.
    """
    name = redacted(ws_url)
    async with open_service_nursery() as nursery:
        service_scope, service = await nursery.start(_run_service_nursery, name, nursery)
        try:
            try:
                with trio.fail_after(connect_timeout_s):
                    stream, host_header, resource = await _open_stream(ws_url, ssl_context)
                    try:
                        ws = await trio_websocket.wrap_client_stream(
                            service,
                            stream,
                            host_header,
                            resource,
                            max_message_size=max_message_bytes,
                            message_queue_size=64,
                        )
                    except BaseException:
                        await trio.aclose_forcefully(stream)
                        raise
            except (
                OSError,
                ValueError,
                trio.BrokenResourceError,
                trio_websocket.HandshakeError,
                trio.TooSlowError,
            ) as exc:
                raise ConnectionLost(f"cannot open websocket {name}: {_describe(exc)}") from exc
            conn = Connection(WebSocketTransport(ws), name=name, command_timeout_s=command_timeout_s)
            async with _serving(conn, service):
                yield conn
        finally:
            service_scope.cancel()


@asynccontextmanager
async def open_pipe_connection(
    read_fd: int,
    write_fd: int,
    *,
    name: str = "pipe",
    max_message_bytes: int = DEFAULT_MAX_MESSAGE_BYTES,
    command_timeout_s: float = DEFAULT_COMMAND_TIMEOUT_S,
) -> AsyncIterator[Connection]:
    """A connection over two pipes to a browser started with ``--remote-debugging-pipe``
    (``read_fd``: what it writes on its fd 4; ``write_fd``: what it reads on its fd 3),
    with its reader task running until the block exits.

    Takes ownership of both file descriptors: they are closed on exit, however the
    block exits (Chromium then shuts down by itself: its command pipe reached end of
    file).  The reader runs in a nursery shielded from the caller's cancellation, as
    :func:`open_connection`'s does.  A message longer than ``max_message_bytes``, or
    the browser closing its end (it exited), ends the connection with ConnectionLost;
    so does exit of the block, for every pending command.  Opening sends nothing and
    cannot fail: a dead browser shows as ConnectionLost on the first command.
    """
    transport = PipeTransport(read_fd, write_fd, max_message_bytes=max_message_bytes)
    try:
        async with open_service_nursery() as nursery:
            service_scope, service = await nursery.start(_run_service_nursery, name, nursery)
            try:
                conn = Connection(transport, name=name, command_timeout_s=command_timeout_s)
                async with _serving(conn, service):
                    yield conn
            finally:
                service_scope.cancel()
    finally:
        with trio.move_on_after(CLOSE_TIMEOUT_S, shield=True):
            await transport.aclose()  # idempotent: already closed unless opening failed


@asynccontextmanager
async def _serving(conn: Connection, service: trio.Nursery) -> AsyncIterator[None]:
    """Run the connection's reader in ``service`` for the block; on exit fail every
    pending command and close the transport (shielded, bounded by CLOSE_TIMEOUT_S)."""
    service.start_soon(conn.run_reader)
    try:
        yield
    finally:
        conn.abort("connection closed by its owner")
        with trio.move_on_after(CLOSE_TIMEOUT_S, shield=True):
            await conn.transport.aclose()


def _describe(exc: BaseException) -> str:
    cause = exc.__cause__
    return f"{exc!r} ({cause!r})" if isinstance(exc, trio.BrokenResourceError) and cause else repr(exc)


async def _open_stream(ws_url: str, ssl_context: ssl.SSLContext | None) -> tuple[trio.abc.Stream, str, str]:
    """Open the byte stream to a websocket endpoint; returns it with the ``Host`` header
    and the resource (path and query string, kept whole) of the handshake.

    Which Host header, and why:

    - ``ws://``: Chromium's DevTools server refuses a request whose Host is neither an
      IP address nor ``localhost`` (its DNS-rebinding defence, on ``/json/*`` and on the
      websocket handshake alike: HTTP 500).  A plain-text endpoint is Chromium itself,
      directly or behind a TCP forwarder that passes the header through untouched (socat
      in ``chromedp/headless-shell``), so the name in the URL (a Compose service name)
      would be refused.  The name is resolved here (trio's resolver, every address tried
      in turn) and the handshake names the address actually reached: true, and always
      acceptable to Chromium.  ``localhost`` would be acceptable too, but it is not where
      we are connected.
    - ``wss://``: Chromium serves no TLS, so a TLS endpoint is a reverse proxy or a hosted
      browser service, and those route by their own host name (and present a certificate
      for it): the stream is verified against the URL's host name (SNI included) and the
      handshake carries that name.  Such a proxy is where an acceptable Host for Chromium
      is set, if Chromium is behind it.
    """
    parts = urlsplit(ws_url)
    if parts.scheme not in ("ws", "wss") or not parts.hostname:
        raise ValueError(f"not a websocket URL: {redacted(ws_url)!r}")
    port = parts.port or (443 if parts.scheme == "wss" else 80)
    resource = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
    if parts.scheme == "wss":
        context = ssl_context or ssl.create_default_context()
        tls = await trio.open_ssl_over_tcp_stream(parts.hostname, port, ssl_context=context)
        await tls.do_handshake()  # a certificate error: BrokenResourceError from ssl.SSLError
        return tls, parts.netloc.rpartition("@")[2], resource
    stream = await trio.open_tcp_stream(parts.hostname, port)
    address = stream.socket.getpeername()[0]
    host = f"[{address}]" if ":" in address else address
    return stream, host if port == 80 else f"{host}:{port}", resource


async def _run_service_nursery(
    name: str,
    home: trio.Nursery,
    *,
    task_status: trio.TaskStatus[tuple[trio.CancelScope, trio.Nursery]] = trio.TASK_STATUS_IGNORED,
) -> None:
    """Host the nursery for the transport's and the reader's tasks; they stop only when
    the scope handed back is cancelled.  trio-websocket reports a rejected handshake by
    raising in its own task: that becomes ConnectionLost, as any failure to open does.

    ``home`` is the nursery ``start`` was called on.  If the caller is cancelled while
    this task starts, trio does not move it there: ``started`` leaves it in the start's
    own nursery and ``start`` waits for it to end.  Shielded, it would never end (a
    stop signal at that instant hung the crawler for good), so then the shield is
    dropped and the caller's cancellation ends it."""
    with trio.CancelScope(shield=True) as scope:
        try:
            async with trio.open_nursery() as nursery:
                task_status.started((scope, nursery))
                if trio.lowlevel.current_task().parent_nursery is not home:
                    scope.shield = False  # the start was cancelled: nothing runs here yet
                await trio.sleep_forever()
        except BaseExceptionGroup as group:
            rejected, rest = group.split(trio_websocket.HandshakeError)
            if rejected is None or rest is not None:
                raise
            first = rejected.exceptions[0]
            raise ConnectionLost(f"cannot open websocket {name}: {first!r}") from first
