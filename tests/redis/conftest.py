"""Fixtures for the Redis store tests: a throwaway redis-server, a crawl per test.

- ``redis_server`` (session): Debian's ``redis-server`` started on 127.0.0.1, a free
  port, a temporary folder, no persistence; stopped at the end of the session.  When
  ``redis-server`` is not installed the tests fail (not skip): run scripts/bootstrap.
- ``crawl_name``: a crawl (key prefix) of its own for each test.
- ``redis_config``: a config for that crawl on that server.
"""

from __future__ import annotations

import shutil
import socket
import subprocess
import time
import uuid
from collections.abc import Iterator
from typing import Any

import attrs
import pytest

from crawler import config as config_mod
from tests.crawler.conftest import DEMO_EXTRACT

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


@pytest.fixture
def crawl_name() -> str:
    return f"test-{uuid.uuid4().hex[:10]}"


def redis_config_dict(server: RedisServer, crawl: str, urls: list[str], **sections: dict[str, Any]) -> dict[str, Any]:
    data: dict[str, Any] = {
        "site": {"name": crawl},
        "input": {"urls": urls},
        "pool": {"concurrency": 2, "tab_close_timeout_s": 3.0},
        "watchdog": {"timeout_s": 20.0, "jitter_s": 0.0},
        "retry": {"max_attempts": 3, "backoff_s": [0.05, 0.2]},
        "extract": dict(DEMO_EXTRACT),
        "monitor": {"sample_interval_s": 0.5, "invariant_interval_s": 0.5},
        "store": {"backend": "redis", "url": server.url, "lease_s": 3.0, "crawl": crawl},
    }
    for name, values in sections.items():
        data[name] = {**data.get(name, {}), **values}
    return data


def make_redis_config(
    server: RedisServer, crawl: str, urls: list[str] | None = None, **sections: dict[str, Any]
) -> config_mod.Config:
    """A validated config for ``crawl`` on ``server`` (urls default to one placeholder)."""
    data = redis_config_dict(server, crawl, urls or ["http://127.0.0.1:1/product/1"], **sections)
    return config_mod.from_dict(data, source="redis-test.toml")


@pytest.fixture
def redis_config(redis_server: RedisServer, crawl_name: str) -> config_mod.Config:
    return make_redis_config(redis_server, crawl_name)
