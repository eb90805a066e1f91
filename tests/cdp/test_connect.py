"""cdp.connect() to a Chromium the test started itself (a stand-in for a Chromium container)."""

from __future__ import annotations

import contextlib
import ssl
import subprocess
import time
from functools import partial
from pathlib import Path
from urllib.parse import urlsplit

import attrs
import httpx
import pytest
import trio

import cdp
from tests.cdp.conftest import ChromiumProcesses, HttpServer, free_port
from tests.cdp.test_navigation import evaluate, navigate
from tests.container import ChromiumContainer, NameResolver


@pytest.mark.chromium
async def test_connect_http_endpoint_navigates_and_evaluates(
    chromium_process: ChromiumProcesses, http_server: HttpServer
) -> None:
    """connect("http://127.0.0.1:PORT") finds the browser websocket via /json/version and
    yields a Browser that opens contexts and tabs, navigates and evaluates like a launched one;
    leaving the block disposes its context but leaves the browser running."""
    port = free_port()
    proc = await chromium_process.start(port)
    with trio.fail_after(30):
        async with cdp.connect(f"http://127.0.0.1:{port}", timeout_s=20) as browser:
            assert browser.pid is None  # not ours to stop
            async with browser.new_context() as context, context.new_tab() as tab:
                await navigate(tab, http_server.url("/answer"))
                assert await evaluate(tab, "window.answer.value") == 42
                context_id = context.id
            contexts = (await browser.send("Target.getBrowserContexts"))["browserContextIds"]
            assert context_id not in contexts
        assert proc.poll() is None, "connect() must not stop a browser it did not launch"
        # The browser still serves a second client.
        async with cdp.connect(f"http://127.0.0.1:{port}", timeout_s=10) as again:
            assert "Chrome" in (await again.send("Browser.getVersion"))["product"]


@pytest.mark.chromium
async def test_connect_block_cancelled_from_outside_still_disposes_context_and_closes_tab(
    chromium_process: ChromiumProcesses,
) -> None:
    """When a scope around connect() is cancelled while a command is pending, the tab and
    context blocks inside still clean up over the connection (the reader is not cancelled
    with them): the tab is closed and the context disposed in the browser, which another
    client then sees."""
    port = free_port()
    await chromium_process.start(port)
    url = f"http://127.0.0.1:{port}"
    seen: dict = {}
    with trio.fail_after(30):
        with trio.move_on_after(20) as scope:
            async with cdp.connect(url, timeout_s=20) as browser:
                async with browser.new_context() as context, context.new_tab() as tab:
                    seen.update(context=context, tab=tab, browser=browser)
                    scope.deadline = trio.current_time() + 0.1
                    await tab.send("Runtime.evaluate", expression="new Promise(() => {})", awaitPromise=True)
        assert scope.cancelled_caught
        assert seen["tab"].closed
        assert seen["context"].disposed
        assert (seen["browser"].leaked_tabs, seen["browser"].leaked_contexts) == (0, 0)
        async with cdp.connect(url, timeout_s=10) as observer:
            contexts = (await observer.send("Target.getBrowserContexts"))["browserContextIds"]
            assert seen["context"].id not in contexts
            assert seen["tab"].target_id not in {t.target_id for t in await observer.targets()}


@pytest.mark.chromium
async def test_connect_retries_until_endpoint_comes_up(chromium_process: ChromiumProcesses) -> None:
    """connect() started before anything listens keeps retrying, and succeeds once Chromium
    (started later) opens its DevTools port."""
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    connected_at: list[float] = []
    version: list[dict] = []

    async def connect_early() -> None:
        async with cdp.connect(url, timeout_s=30) as browser:
            connected_at.append(time.monotonic())
            version.append(await browser.send("Browser.getVersion"))

    with trio.fail_after(40):
        async with trio.open_nursery() as nursery:
            nursery.start_soon(connect_early)
            await trio.sleep(1.0)  # several refused attempts (retry interval 0.25 s)
            assert connected_at == []
            started_at = time.monotonic()
            await chromium_process.start(port)
    assert connected_at and connected_at[0] > started_at
    assert "Chrome" in version[0]["product"]


async def test_connect_fails_with_endpoint_unavailable_naming_url_when_nothing_listens() -> None:
    """With nothing listening, connect() gives up after timeout_s with EndpointUnavailable
    naming the URL (http:// and ws:// alike), not sooner and not much later."""
    port = free_port()
    for url in (f"http://127.0.0.1:{port}", f"ws://127.0.0.1:{port}/devtools/browser/x"):
        started = time.monotonic()
        with pytest.raises(cdp.EndpointUnavailable) as info:
            async with cdp.connect(url, timeout_s=0.6):
                pytest.fail("connected to nothing")
        elapsed = time.monotonic() - started
        assert 0.5 <= elapsed < 3.0, elapsed
        assert info.value.url == url
        assert url in str(info.value)
        assert isinstance(info.value, cdp.BrowserError)


async def test_connect_rejects_url_without_devtools_scheme() -> None:
    """A URL that is neither http(s):// nor ws(s):// is refused at once with BrowserError."""
    with pytest.raises(cdp.BrowserError, match="ftp://"):
        async with cdp.connect("ftp://127.0.0.1:9222"):
            pytest.fail("connected")


@pytest.mark.chromium
async def test_connect_ws_url_carries_commands_and_tabs(chromium_process: ChromiumProcesses) -> None:
    """A ws://127.0.0.1:PORT/devtools/browser/<id> URL (as /json/version reports it) connects
    directly and carries commands and tabs."""
    port = free_port()
    await chromium_process.start(port)
    with trio.fail_after(30):
        ws_url = await cdp.discover_ws_url(f"http://127.0.0.1:{port}", timeout_s=20)
        assert ws_url.startswith(f"ws://127.0.0.1:{port}/devtools/browser/")
        # The same URL as a client that only speaks HTTP would read it.
        async with httpx.AsyncClient(headers={"Host": "localhost"}) as client:
            reported = (await client.get(f"http://127.0.0.1:{port}/json/version")).json()["webSocketDebuggerUrl"]
        assert reported.split("/devtools/")[1] == ws_url.split("/devtools/")[1]
        async with cdp.connect(ws_url, timeout_s=10) as browser:
            assert "Chrome" in (await browser.send("Browser.getVersion"))["product"]
            async with browser.new_context() as context, context.new_tab() as tab:
                assert await evaluate(tab, "6 * 7") == 42


# -- the container path: a service name, a forwarder, TLS fronts -------------------------


@pytest.mark.chromium
@pytest.mark.parametrize("form", ["http", "ws"])
async def test_connect_by_service_name_through_a_forwarder(
    chromium_container: ChromiumContainer, http_server: HttpServer, form: str
) -> None:
    """Chromium with DevTools on its own 127.0.0.1 behind a TCP forwarder, reached by a
    name that is neither an IP address nor localhost (a Compose service): connect()
    attaches from ``http://chromium:9222`` and from the ``ws://chromium:9222/...`` URL, and
    drives a tab.  The handshake names the address reached; the name itself is what
    Chromium refuses (HTTP 500), so this set-up catches a client that sends it."""
    container = chromium_container
    container.use_name()
    await container.start()
    with trio.fail_after(40):
        url = container.url
        if form == "ws":
            url = await cdp.discover_ws_url(container.url, timeout_s=20)
            assert url.startswith("ws://chromium:9222/devtools/browser/")
        async with cdp.connect(url, timeout_s=20) as browser:
            async with browser.new_context() as context, context.new_tab() as tab:
                await navigate(tab, http_server.url("/answer"))
                assert await evaluate(tab, "window.answer.value") == 42
        ((handshake,),) = container.websocket_handshakes()
        assert f"\r\nHost: {container.address}:9222\r\n" in handshake
        async with httpx.AsyncClient() as client:  # as a client that sends the name
            refused = await client.get(f"{container.url}/json/version")
        assert refused.status_code == 500 and "Host header" in refused.text


@pytest.mark.chromium
async def test_connect_keeps_the_query_string_of_a_websocket_url(chromium_container: ChromiumContainer) -> None:
    """A websocket URL with a query string (hosted services put tokens there) reaches the
    browser with its query intact; the connection's name, which logs carry, leaves it out."""
    container = chromium_container
    container.use_name()
    await container.start()
    with trio.fail_after(40):
        ws_url = await cdp.discover_ws_url(container.url, timeout_s=20)
        async with cdp.connect(f"{ws_url}?token=s3cret&x=1", timeout_s=10) as browser:
            assert "Chrome" in (await browser.send("Browser.getVersion"))["product"]
            assert "s3cret" not in browser.connection.name
    ((handshake,),) = container.websocket_handshakes()
    assert handshake.startswith(f"GET {urlsplit(ws_url).path}?token=s3cret&x=1 HTTP/1.1\r\n")


HOSTED_NAME = "browser.example"  # .example never resolves for real
TOKEN = "s3cret"


@pytest.fixture(scope="module")
def tls_certificate(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """A self-signed certificate for HOSTED_NAME (cert, key), from Debian's openssl."""
    folder = tmp_path_factory.mktemp("tls")
    cert, key = folder / "cert.pem", folder / "key.pem"
    subprocess.run(
        ["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes"]
        + ["-keyout", str(key), "-out", str(cert), "-days", "2", "-subj", f"/CN={HOSTED_NAME}"]
        + ["-addext", f"subjectAltName=DNS:{HOSTED_NAME}"],
        check=True,
        capture_output=True,
    )
    return cert, key


@attrs.define
class TlsFront:
    """The front of a hosted browser service: TLS for HOSTED_NAME, routing by the Host
    header (421 for any other name), a token required in the query string (401), and the
    request passed on to Chromium with a Host it accepts, as such a proxy is set up."""

    context: ssl.SSLContext
    upstream_port: int
    requests: list[tuple[str, str]] = attrs.field(factory=list)  # (request line, Host)

    async def handle(self, client: trio.SocketStream) -> None:
        tls = trio.SSLStream(client, self.context, server_side=True)
        try:
            async with tls:
                head = b""
                while b"\r\n\r\n" not in head:
                    chunk = await tls.receive_some(4096)
                    if not chunk:
                        return
                    head += chunk
                text, _, rest = head.partition(b"\r\n\r\n")
                request_line, *lines = text.decode("latin-1").split("\r\n")
                headers = {k.lower(): v.strip() for k, _, v in (line.partition(":") for line in lines)}
                self.requests.append((request_line, headers.get("host", "")))
                if headers.get("host", "").split(":")[0] != HOSTED_NAME:
                    await tls.send_all(b"HTTP/1.1 421 Misdirected Request\r\nContent-Length: 0\r\n\r\n")
                    return
                if f"token={TOKEN}" not in request_line:
                    await tls.send_all(b"HTTP/1.1 401 Unauthorized\r\nContent-Length: 0\r\n\r\n")
                    return
                lines = [line for line in lines if not line.lower().startswith("host:")] + ["Host: localhost"]
                async with await trio.open_tcp_stream("127.0.0.1", self.upstream_port) as upstream:
                    await upstream.send_all("\r\n".join([request_line, *lines]).encode("latin-1") + b"\r\n\r\n" + rest)
                    async with trio.open_nursery() as nursery:
                        nursery.start_soon(_pump, tls, upstream, nursery.cancel_scope)
                        nursery.start_soon(_pump, upstream, tls, nursery.cancel_scope)
        except (OSError, trio.BrokenResourceError, trio.ClosedResourceError):
            pass  # Chromium not up yet (the client retries), or a side closed


async def _pump(source: trio.abc.Stream, sink: trio.abc.Stream, scope: trio.CancelScope) -> None:
    with contextlib.suppress(trio.BrokenResourceError, trio.ClosedResourceError):
        while data := await source.receive_some(65536):
            await sink.send_all(data)
    scope.cancel()


@pytest.mark.chromium
@pytest.mark.parametrize("form", ["https", "wss"])
async def test_connect_through_a_tls_front_that_routes_by_name(
    chromium_process: ChromiumProcesses, tls_certificate: tuple[Path, Path], nursery: trio.Nursery, form: str
) -> None:
    """``https://`` and ``wss://`` endpoints (a hosted service behind a TLS proxy): the
    certificate is verified against the real name, every request carries that name in its
    Host header (the front routes by it) and the token of the URL's query string, and
    connect() drives the browser behind it."""
    cert, key = tls_certificate
    port = free_port()
    await chromium_process.start(port)
    server_context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    server_context.load_cert_chain(cert, key)
    front = TlsFront(server_context, port)
    listeners = await nursery.start(partial(trio.serve_tcp, front.handle, 0, host="127.0.0.1"))
    front_port = listeners[0].socket.getsockname()[1]
    trio.socket.set_custom_hostname_resolver(NameResolver({HOSTED_NAME: "127.0.0.1"}))
    trusted = ssl.create_default_context(cafile=str(cert))
    base = f"https://{HOSTED_NAME}:{front_port}?token={TOKEN}"
    with trio.fail_after(40):
        url = base
        if form == "wss":
            url = await cdp.discover_ws_url(base, timeout_s=20, ssl_context=trusted)
            assert url.startswith(f"wss://{HOSTED_NAME}:{front_port}/devtools/browser/") and url.endswith(TOKEN)
        async with cdp.connect(url, timeout_s=20, ssl_context=trusted) as browser:
            async with browser.new_context() as context, context.new_tab() as tab:
                assert await evaluate(tab, "6 * 7") == 42
        with pytest.raises(cdp.ConnectionLost, match="CERTIFICATE_VERIFY_FAILED"):  # the system's CAs: untrusted
            async with cdp.connect(url.replace("https://", "wss://"), timeout_s=5):
                pytest.fail("connected to an untrusted certificate")
    assert front.requests
    assert {host for _, host in front.requests} == {f"{HOSTED_NAME}:{front_port}"}
    assert all(f"token={TOKEN}" in line for line, _ in front.requests)
