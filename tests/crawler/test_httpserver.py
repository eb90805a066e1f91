"""crawler.httpserver: request bodies, cookies and headers on the response."""

from __future__ import annotations

import httpx
import trio

from crawler.httpserver import MAX_BODY_BYTES, HttpRequest, Response, serve_http


async def echo(request: HttpRequest) -> Response:
    """Answers with what it was given, and sets two cookies."""
    body = f"{request.method} {len(request.body)} {request.body[:20]!r} {sorted(request.cookies.items())}"
    return Response(body=body.encode(), headers=(("Set-Cookie", "a=1; Path=/"), ("Set-Cookie", "b=2; Path=/")))


async def serve(nursery: trio.Nursery) -> str:
    port = await nursery.start(serve_http, echo)
    return f"http://127.0.0.1:{port}"


async def test_post_body_is_read_and_the_next_request_on_the_connection_follows_it(nursery):
    """A Content-Length body reaches the handler whole, and a request pipelined right after
    it on the same connection is parsed from the first byte after the body."""
    base = await serve(nursery)
    body = b"x" * 70_000 + b"GET / HTTP/1.1\r\n\r\n"  # looks like a request; is body
    stream = await trio.open_tcp_stream("127.0.0.1", int(base.rsplit(":", 1)[1]))
    async with stream:
        await stream.send_all(f"POST / HTTP/1.1\r\nContent-Length: {len(body)}\r\n\r\n".encode() + body)
        await stream.send_all(b"GET /next HTTP/1.1\r\nCookie: c=3\r\nConnection: close\r\n\r\n")
        answers = b""
        while chunk := await stream.receive_some(65536):
            answers += chunk
    assert answers.count(b"HTTP/1.1 200 OK") == 2
    assert f"POST {len(body)} b'xxxx".encode() in answers
    assert answers.endswith(b"GET 0 b'' [('c', '3')]")


async def test_body_over_the_limit_is_refused_with_413_and_the_connection_closed(nursery):
    """A Content-Length above MAX_BODY_BYTES is answered 413 without reading the body."""
    base = await serve(nursery)
    stream = await trio.open_tcp_stream("127.0.0.1", int(base.rsplit(":", 1)[1]))
    async with stream:
        await stream.send_all(f"POST / HTTP/1.1\r\nContent-Length: {MAX_BODY_BYTES + 1}\r\n\r\n".encode())
        answer = b""
        while chunk := await stream.receive_some(1000):
            answer += chunk
    assert answer.startswith(b"HTTP/1.1 413 ") and answer.endswith(b"Connection: close\r\n\r\n")


async def test_cookie_header_is_parsed_and_repeated_set_cookie_headers_are_sent(nursery):
    """``HttpRequest.cookies`` holds the cookie header's pairs; every Set-Cookie of a response is sent."""
    base = await serve(nursery)
    async with httpx.AsyncClient(base_url=base) as client:
        response = await client.get("/", headers={"Cookie": "session=abc.def; theme=dark; broken"})
    assert response.text == "GET 0 b'' [('session', 'abc.def'), ('theme', 'dark')]"
    assert response.headers.get_list("set-cookie") == ["a=1; Path=/", "b=2; Path=/"]
