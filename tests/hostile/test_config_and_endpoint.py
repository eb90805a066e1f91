"""Hostile files and clients, round 3 (issue 26): a site file nested 10,000 deep or
too big is one line (exit 2); the metrics endpoint beyond loopback needs a token (or
an explicit choice), answers 401 without it, drops clients that never send their
request's head, and serves a bounded number of connections."""

from __future__ import annotations

import pytest
import trio
from prometheus_client import CollectorRegistry

from crawler import config as config_mod
from crawler.errors import ConfigError
from crawler.httpserver import HEADER_TIMEOUT_S, MAX_CONNECTIONS, HttpRequest, Response, serve_http
from crawler.observe import metrics
from tests.procs import start_crawler


def test_a_site_file_nested_ten_thousand_deep_is_one_line(tmp_path):
    path = tmp_path / "site.toml"
    path.write_text("a = " + "[" * 10_000 + "]" * 10_000 + "\n")
    with pytest.raises(ConfigError) as caught:
        config_mod.load(path)
    assert str(caught.value) == f"{path}: invalid TOML: nested too deep"


async def test_the_command_line_says_so_in_one_line_and_exits_2(tmp_path):
    path = tmp_path / "site.toml"
    path.write_text("a = " + "[" * 10_000 + "]" * 10_000 + "\n")
    proc = await start_crawler("--config", str(path), cwd=tmp_path)
    assert await proc.wait() == 2
    assert (tmp_path / "crawler.err").read_text().strip() == f"crawler: error: {path}: invalid TOML: nested too deep"


def test_a_site_file_over_the_size_limit_is_refused(tmp_path):
    path = tmp_path / "site.toml"
    path.write_text("# " + "x" * (config_mod.loader.MAX_CONFIG_BYTES + 1) + "\n")
    with pytest.raises(ConfigError, match=r"bytes, over the limit of 4194304 for a site file"):
        config_mod.load(path)


@pytest.mark.parametrize(
    ("monitor", "refused"),
    [
        ({"metrics_port": 9108, "metrics_host": "0.0.0.0"}, True),
        ({"metrics_port": 9108, "metrics_host": "0.0.0.0", "metrics_token": "t0k"}, False),
        ({"metrics_port": 9108, "metrics_host": "0.0.0.0", "metrics_allow_public": True}, False),
        ({"metrics_port": 9108, "metrics_host": "127.0.0.1"}, False),
    ],
)
def test_a_metrics_endpoint_beyond_loopback_needs_a_token_or_an_explicit_choice(monitor, refused):
    data = {"input": {"urls": ["http://127.0.0.1:1/"]}, "monitor": monitor}
    if refused:
        with pytest.raises(ConfigError, match=r"set metrics_token \(a bearer token\) or metrics_allow_public = true"):
            config_mod.from_dict(data, source="site.toml")
    else:
        config_mod.from_dict(data, source="site.toml")


async def test_with_a_token_the_metrics_and_status_page_answer_401_without_it_and_healthz_stays_open():
    heartbeat = metrics.Heartbeat(None)
    handle = metrics.make_handler(CollectorRegistry(), heartbeat, lambda: b"<html>status</html>", token="t0k")
    for path in ("/", "/metrics"):
        assert (await handle(HttpRequest("GET", path, {}, {}))).status == 401
        answer = await handle(HttpRequest("GET", path, {}, {"authorization": "Bearer t0k"}))
        assert answer.status == 200
    assert (await handle(HttpRequest("GET", "/healthz", {}, {}))).status in (200, 503)


async def ok(request: HttpRequest) -> Response:
    return Response(body=b"ok")


async def test_a_client_that_never_sends_its_head_is_dropped_after_the_header_timeout(nursery, autojump_clock):
    port = await nursery.start(serve_http, ok)
    stream = await trio.open_tcp_stream("127.0.0.1", port)
    await stream.send_all(b"GET / HTTP/1.1\r\nHost: x\r\n")  # and never the blank line
    with trio.fail_after(HEADER_TIMEOUT_S + 5):
        assert await stream.receive_some(100) == b""  # the server hung up
    await stream.aclose()


async def test_connections_past_the_cap_are_closed_and_the_ones_held_still_served(nursery):
    port = await nursery.start(serve_http, ok)
    held = [await trio.open_tcp_stream("127.0.0.1", port) for _ in range(MAX_CONNECTIONS)]
    await trio.sleep(0.2)
    extra = await trio.open_tcp_stream("127.0.0.1", port)
    with trio.fail_after(5):
        assert await extra.receive_some(100) == b""  # closed unanswered
    await held[0].send_all(b"GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
    with trio.fail_after(5):
        assert (await held[0].receive_some(1000)).startswith(b"HTTP/1.1 200")
    for stream in [*held, extra]:
        await stream.aclose()
