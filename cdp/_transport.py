"""How a :class:`~cdp.Connection` moves CDP messages: the transport seam, and its two
implementations.

A transport carries whole messages (one JSON text each) in both directions and knows
nothing of CDP.  Everything above it - the one reader task, the tables that route
replies and events, the one source of truth for "closed", ``abort()`` - is the
connection's, the same for every transport.

- :class:`WebSocketTransport`: a trio-websocket connection, for a browser reached by
  URL (``cdp.connect``: a container, a remote service).  trio-websocket enforces the
  largest message (it closes with code 1009 above it).
- :class:`PipeTransport`: a pair of pipes to a browser we started with
  ``--remote-debugging-pipe`` (``cdp.launch``).  Chromium reads commands on its file
  descriptor 3 and writes messages on 4, each message a JSON text followed by a NUL
  byte.  Nothing listens on any port, so no other local process or user can reach the
  browser: whoever connects to a DevTools port can read every cookie and drive every
  tab.

Errors: a transport that can carry no more messages raises :class:`TransportClosed`
with the reason (the peer went away, a message too large, closed by its owner); the
connection turns that into ``ConnectionLost``.  Tests plug their own transport (an
in-memory fake browser) into a real ``Connection`` through the same seam.
"""

from __future__ import annotations

from typing import Protocol

import trio
import trio_websocket

PIPE_READ_CHUNK_BYTES = 2**16  # 64 KiB: one pipe buffer (Linux's default) per read


class TransportClosed(Exception):
    """The transport can carry no more messages; ``reason`` says why."""

    def __init__(self, reason: str):
        self.reason = reason
        super().__init__(reason)


class Transport(Protocol):
    """What a Connection needs of the link to its browser.

    ``send_text`` sends one message whole; the connection calls it from many tasks,
    so an implementation serialises writes itself.  ``receive_text`` returns the next
    message; only the connection's reader calls it.  Both raise TransportClosed once
    the link is gone.  ``aclose`` closes the link (idempotent; its caller bounds it).
    """

    async def send_text(self, text: str) -> None: ...

    async def receive_text(self) -> str: ...

    async def aclose(self) -> None: ...


class WebSocketTransport:
    """A trio-websocket connection as a transport."""

    def __init__(self, ws: trio_websocket.WebSocketConnection):
        self.websocket = ws

    async def send_text(self, text: str) -> None:
        try:
            await self.websocket.send_message(text)
        except trio_websocket.ConnectionClosed as exc:
            raise TransportClosed(f"websocket closed ({close_reason(exc)})") from None

    async def receive_text(self) -> str:
        try:
            message = await self.websocket.get_message()
        except trio_websocket.ConnectionClosed as exc:
            raise TransportClosed(f"websocket closed ({close_reason(exc)})") from None
        return message if isinstance(message, str) else message.decode("utf-8", "replace")

    async def aclose(self) -> None:
        await self.websocket.aclose()


def close_reason(exc: trio_websocket.ConnectionClosed) -> str:
    reason = exc.reason
    if reason is None:
        return "no close frame"
    return f"code {reason.code}{', ' + reason.reason if reason.reason else ''}"


class PipeTransport:
    """CDP over two pipes: NUL-terminated JSON texts (``--remote-debugging-pipe``).

    Takes ownership of both file descriptors (``write_fd``: the pipe the browser reads
    on its fd 3; ``read_fd``: the one it writes on its fd 4) and closes them in
    :meth:`aclose`.  A message is written whole under a lock (a write waits for the
    pipe to drain, never on a timer); the connection shields and bounds each write.
    The receive buffer holds at most ``max_message_bytes`` of one message: a longer
    one closes the transport, as trio-websocket does (code 1009), rather than grow
    without bound.  End of file on the read pipe means the browser exited (or closed
    its end): TransportClosed.
    """

    def __init__(self, read_fd: int, write_fd: int, *, max_message_bytes: int):
        self.max_message_bytes = max_message_bytes
        self._reader = trio.lowlevel.FdStream(read_fd)
        self._writer = trio.lowlevel.FdStream(write_fd)
        self._write_lock = trio.Lock()
        self._buffer = bytearray()
        self._scanned = 0  # bytes of _buffer already searched for the terminator

    async def send_text(self, text: str) -> None:
        data = text.encode() + b"\0"
        async with self._write_lock:
            try:
                await self._writer.send_all(data)
            except trio.BrokenResourceError:
                raise TransportClosed("the browser closed its end of the pipe") from None
            except trio.ClosedResourceError:
                raise TransportClosed("the pipe was closed by its owner") from None

    async def receive_text(self) -> str:
        buffer = self._buffer
        while True:
            end = buffer.find(b"\0", self._scanned)
            if end >= 0:
                if end > self.max_message_bytes:
                    raise TransportClosed(f"a message of {end} bytes, over the {self.max_message_bytes}-byte limit")
                message = bytes(buffer[:end])
                del buffer[: end + 1]
                self._scanned = 0
                return message.decode("utf-8", "replace")
            self._scanned = len(buffer)
            if len(buffer) > self.max_message_bytes:
                raise TransportClosed(f"a message over the {self.max_message_bytes}-byte limit")
            try:
                chunk = await self._reader.receive_some(PIPE_READ_CHUNK_BYTES)
            except trio.BrokenResourceError as exc:
                raise TransportClosed(f"reading the pipe failed: {exc.__cause__ or exc!r}") from None
            except trio.ClosedResourceError:
                raise TransportClosed("the pipe was closed by its owner") from None
            if not chunk:
                raise TransportClosed("the browser closed its end of the pipe (it exited)")
            buffer += chunk

    async def aclose(self) -> None:
        # Closing our write end is also how Chromium learns to shut down: it exits when
        # the pipe it reads commands from reaches end of file.
        await self._writer.aclose()
        await self._reader.aclose()
