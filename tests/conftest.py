"""Fixtures shared by every test folder.

- ``redis_server`` (session): Debian's ``redis-server`` started on 127.0.0.1, a free
  port, a temporary folder, no persistence; stopped at the end of the session, and
  started only if a test asks for it.  When ``redis-server`` is not installed the
  tests that need it fail (not skip): run scripts/bootstrap.
- ``redis_cluster`` (session): a three-master Redis Cluster on 127.0.0.1 (see
  ``tests/crawler/store/redis/servers.py``), started only if a test asks for it.
- ``shared_chromium`` (session): one Chromium per test process, for tests that only
  need *a* browser and work in contexts of their own (``tests/shared_browser.py``);
  ``shared_browser`` attaches a test to it.
- ``chromium_container``: the Compose deployment's browser container, reached by its
  service name through a TCP forwarder (``tests/container.py``); not started until the
  test calls ``start()``; every Chromium it started is killed and reaped at teardown.
"""

from __future__ import annotations

import shutil
import socket
import subprocess
import time
from collections.abc import AsyncIterator, Iterator
from typing import Any

import attrs
import pytest
import trio

import cdp
from tests.cdp.conftest import ChromiumProcesses
from tests.container import ChromiumContainer
from tests.crawler.store.redis.servers import RedisCluster3
from tests.shared_browser import SharedChromium

START_TIMEOUT_S = 10.0
STOP_TIMEOUT_S = 5.0


@attrs.frozen
class RedisServer:
    port: int
    process: subprocess.Popen[bytes]

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _answers_ping(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=0.5) as sock:
            sock.sendall(b"PING\r\n")
            return sock.recv(64).startswith(b"+PONG")
    except OSError:
        return False


def _start(executable: str, folder: Any) -> RedisServer:
    port = _free_port()
    log = open(folder / f"redis-{port}.log", "wb")  # noqa: SIM115 - the server writes it until stopped
    process = subprocess.Popen(
        [
            executable,
            "--bind",
            "127.0.0.1",
            "--port",
            str(port),
            "--save",
            "",
            "--appendonly",
            "no",
            "--dir",
            str(folder),
            "--protected-mode",
            "yes",
        ],
        stdin=subprocess.DEVNULL,
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    log.close()
    deadline = time.monotonic() + START_TIMEOUT_S
    while time.monotonic() < deadline and process.poll() is None:
        if _answers_ping(port):
            return RedisServer(port, process)
        time.sleep(0.05)
    _stop(process)
    raise RuntimeError(
        f"redis-server on port {port} did not start: {(folder / f'redis-{port}.log').read_text()[-500:]}"
    )


def _stop(process: subprocess.Popen[bytes]) -> None:
    process.terminate()
    try:
        process.wait(STOP_TIMEOUT_S)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()


@pytest.fixture(scope="session")
def redis_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RedisServer]:
    """A redis-server of our own for the session (a port picked free may be taken
    before the server binds it: then another port is tried)."""
    executable = shutil.which("redis-server")
    if executable is None:
        pytest.fail(
            "redis-server is not installed: run scripts/bootstrap (it installs Debian's redis-server)", pytrace=False
        )
    folder = tmp_path_factory.mktemp("redis")
    for attempt in range(3):
        try:
            server = _start(executable, folder)
            break
        except RuntimeError:
            if attempt == 2:
                raise
    try:
        yield server
    finally:
        _stop(server.process)


@pytest.fixture(scope="session")
def redis_cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RedisCluster3]:
    """A three-master Redis Cluster of our own for the session (no replicas, no
    persistence), on 127.0.0.1; ``url`` is a startup node.  Started only if a test
    asks for it."""
    cluster = RedisCluster3(tmp_path_factory.mktemp("redis-cluster"))
    cluster.start()
    try:
        yield cluster
    finally:
        cluster.stop()


@pytest.fixture
async def chromium_container(nursery: trio.Nursery) -> AsyncIterator[ChromiumContainer]:
    """The ``chromium`` service of docker-compose.yml, stand-in (see tests/container.py)."""
    processes = ChromiumProcesses()
    container = ChromiumContainer(processes, nursery)
    try:
        yield container
    finally:
        with trio.CancelScope(shield=True):
            await container.stop()
            await processes.stop_all()


@pytest.fixture(scope="session")
def shared_chromium() -> Iterator[SharedChromium]:
    chromium = SharedChromium()
    chromium.start()
    try:
        yield chromium
    finally:
        chromium.stop()


@pytest.fixture
async def shared_browser(shared_chromium: SharedChromium) -> AsyncIterator[cdp.Browser]:
    """A connection of this test's own to the test process's one Chromium: work in a
    context of the test's own (``browser.new_context()``); the connection is closed at
    the end, the browser stays."""
    async with cdp.connect(shared_chromium.url) as browser:
        yield browser
