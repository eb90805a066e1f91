"""A small HTTP/1.1 server on trio, for the demo shop and the test shops.

Keep-alive; any method, with a request body of up to :data:`MAX_BODY_BYTES` given by
Content-Length (no chunked request bodies: a browser's form post never sends one).  A
handler returns a :class:`Response`, whose ``headers`` carry Set-Cookie, Location and the
like; a response can also misbehave on purpose (hang before answering, answer late, or
close the connection halfway through the body), which is what the fault tests use.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from http import HTTPStatus
from urllib.parse import parse_qs, urlsplit

import attrs
import trio

log = logging.getLogger(__name__)

MAX_HEADER_BYTES = 64 * 1024
HEADER_TIMEOUT_S = 10.0  # a client that has not sent a request's head in this long is dropped (slowloris)
MAX_CONNECTIONS = 128  # connections served at once; past it a new one is closed at once
MAX_BODY_BYTES = 2**20  # 1 MiB; a longer Content-Length is answered 413 and the connection closed


@attrs.frozen
class HttpRequest:
    """One request to the server, parsed (its body read up to MAX_BODY_BYTES)."""

    method: str
    path: str
    query: dict[str, list[str]]
    headers: dict[str, str]  # names lower-cased
    body: bytes = b""

    @property
    def cookies(self) -> dict[str, str]:
        """The name=value pairs of the ``cookie`` header (the first of a repeated name wins)."""
        cookies: dict[str, str] = {}
        for pair in self.headers.get("cookie", "").split(";"):
            name, sep, value = pair.strip().partition("=")
            if sep and name:
                cookies.setdefault(name, value)
        return cookies


@attrs.frozen
class Response:
    status: int = 200
    body: bytes = b""
    content_type: str = "text/html; charset=utf-8"
    headers: tuple[tuple[str, str], ...] = ()
    delay_s: float = 0.0  # wait this long before answering
    hang: bool = False  # accept the request and never answer
    truncate: bool = False  # send the headers and half the body, then close


Handler = Callable[[HttpRequest], Awaitable[Response]]


async def serve_http(
    handler: Handler,
    *,
    host: str = "127.0.0.1",
    port: int = 0,
    task_status: trio.TaskStatus[int] = trio.TASK_STATUS_IGNORED,
) -> None:
    """Serve until cancelled; reports the bound port through ``task_status``.  At most
    ``MAX_CONNECTIONS`` at once (the next are closed unanswered), each dropped if a
    request's head takes longer than ``HEADER_TIMEOUT_S`` to arrive."""
    listeners = await trio.open_tcp_listeners(port, host=host)
    task_status.started(listeners[0].socket.getsockname()[1])
    slots = trio.CapacityLimiter(MAX_CONNECTIONS)

    async def serve(stream: trio.SocketStream) -> None:
        try:
            slots.acquire_nowait()
        except trio.WouldBlock:
            await stream.aclose()
            return
        try:
            await _serve_connection(stream, handler)
        finally:
            slots.release()

    await trio.serve_listeners(serve, listeners)


async def _serve_connection(stream: trio.SocketStream, handler: Handler) -> None:
    buffer = b""
    try:
        async with stream:
            while True:
                with trio.move_on_after(HEADER_TIMEOUT_S) as waited:
                    while b"\r\n\r\n" not in buffer:
                        if len(buffer) > MAX_HEADER_BYTES:
                            return
                        chunk = await stream.receive_some(65536)
                        if not chunk:
                            return
                        buffer += chunk
                if waited.cancelled_caught:
                    return  # a head that never comes: the connection is dropped
                head, _, buffer = buffer.partition(b"\r\n\r\n")
                request = _parse(head)
                refusal = _refusal(request)
                if request is None or refusal:
                    await _refuse(stream, refusal or HTTPStatus.BAD_REQUEST)
                    return
                length = int(request.headers.get("content-length", "0"))
                while len(buffer) < length:
                    chunk = await stream.receive_some(65536)
                    if not chunk:
                        return
                    buffer += chunk
                request, buffer = attrs.evolve(request, body=buffer[:length]), buffer[length:]
                response = await handler(request)
                if response.hang:
                    await trio.sleep_forever()
                if response.delay_s:
                    await trio.sleep(response.delay_s)
                await stream.send_all(_encode(request, response))
                if response.truncate or request.headers.get("connection", "").lower() == "close":
                    return
    except (trio.BrokenResourceError, trio.ClosedResourceError, ConnectionError):
        return


def _refusal(request: HttpRequest | None) -> HTTPStatus | None:
    """Why a request cannot be read, if it cannot."""
    if request is None:
        return HTTPStatus.BAD_REQUEST
    if "transfer-encoding" in request.headers:
        return HTTPStatus.NOT_IMPLEMENTED
    length = request.headers.get("content-length", "0")
    if not length.isdigit():
        return HTTPStatus.BAD_REQUEST
    if int(length) > MAX_BODY_BYTES:
        return HTTPStatus.REQUEST_ENTITY_TOO_LARGE
    return None


async def _refuse(stream: trio.SocketStream, status: HTTPStatus) -> None:
    """Answer a request we will not handle, and leave the connection to be closed."""
    head = f"HTTP/1.1 {status.value} {status.phrase}\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
    await stream.send_all(head.encode("latin-1"))


def _parse(head: bytes) -> HttpRequest | None:
    try:
        lines = head.decode("latin-1").split("\r\n")
        method, target, _version = lines[0].split(" ", 2)
    except ValueError:
        return None
    headers = {}
    for line in lines[1:]:
        name, sep, value = line.partition(":")
        if sep:
            headers[name.strip().lower()] = value.strip()
    parts = urlsplit(target)
    return HttpRequest(method=method, path=parts.path, query=parse_qs(parts.query), headers=headers)


def _encode(request: HttpRequest, response: Response) -> bytes:
    reason = HTTPStatus(response.status).phrase if response.status in HTTPStatus._value2member_map_ else "Status"
    body = response.body
    head = [
        f"HTTP/1.1 {response.status} {reason}",
        f"Content-Type: {response.content_type}",
        f"Content-Length: {len(body)}",
        "Cache-Control: no-store",
        *(f"{k}: {v}" for k, v in response.headers),
    ]
    if response.truncate:
        body = body[: len(body) // 2]
        head.append("Connection: close")
    data = ("\r\n".join(head) + "\r\n\r\n").encode("latin-1")
    return data if request.method == "HEAD" else data + body
