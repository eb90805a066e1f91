"""Helpers for the monitoring tests."""

from __future__ import annotations

import logging
import socket
from collections.abc import Callable

import httpx
import pytest
import trio

from tests.crawler.conftest import shop  # noqa: F401  (the fixture shop, for these tests too)


def free_port() -> int:
    """A TCP port free on 127.0.0.1 right now (the endpoint's port 0 means "off")."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


async def scrape_endpoint(port: int, into: list[str], interval_s: float = 0.1) -> None:
    """Until cancelled: the metrics (``/metrics``) and the status page (``/``) on
    ``port``, each text appended to ``into``, every ``interval_s`` (a crawl in another
    process: refused while it is not listening)."""
    async with httpx.AsyncClient(timeout=5) as client:
        while True:
            for path in ("/metrics", "/"):
                try:
                    into.append((await client.get(f"http://127.0.0.1:{port}{path}")).text)
                except httpx.TransportError:
                    pass
            await trio.sleep(interval_s)


def png_size(data: bytes) -> tuple[int, int]:
    """(width, height) from a PNG's IHDR chunk; AssertionError if it is not a PNG."""
    assert data[:8] == b"\x89PNG\r\n\x1a\n", data[:8]
    assert data[12:16] == b"IHDR"
    return int.from_bytes(data[16:20], "big"), int.from_bytes(data[20:24], "big")


@pytest.fixture
def engine_log(caplog):
    """Records the engine's log records (INFO and up), from each of its parts' loggers
    (``crawler.run.engine``, ``crawler.observe.invariants``, ``crawler.observe.memory`` ...)."""
    caplog.set_level(logging.INFO, logger="crawler")
    return caplog


def warnings_about(caplog, text: str) -> list[str]:
    return [
        r.getMessage()
        for r in caplog.records
        if r.name.startswith("crawler.") and r.levelno >= logging.WARNING and text in r.getMessage()
    ]


async def wait_until(predicate: Callable[[], object], *, timeout_s: float = 20.0, poll_s: float = 0.01) -> None:
    """Poll ``predicate`` until it is true; TooSlowError after ``timeout_s``."""
    with trio.fail_after(timeout_s):
        while True:
            if predicate():
                return
            await trio.sleep(poll_s)
