"""Fixtures for the Redis store tests: a crawl per test on the session's redis-server
(``redis_server``, in ``tests/conftest.py``).

- ``crawl_name``: a crawl (key prefix) of its own for each test.
- ``redis_config``: a config for that crawl on that server.
- ``aof_redis``: a redis-server of the test's own (AOF on) to kill and restart.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from crawler import config as config_mod
from tests.conftest import RedisServer
from tests.crawler.conftest import DEMO_EXTRACT
from tests.crawler.store.redis.servers import AOF_ARGS, RedisProcess


@pytest.fixture
def crawl_name() -> str:
    return f"test-{uuid.uuid4().hex[:10]}"


def redis_config_dict(server: RedisServer, name: str, urls: list[str], **sections: dict[str, Any]) -> dict[str, Any]:
    """The config of crawl ``name`` on ``server``, as a dict (``sections`` override
    keys per section, ``crawl={"max_pages": 3}`` included)."""
    data: dict[str, Any] = {
        "site": {"name": name},
        "input": {"urls": urls},
        "pool": {"concurrency": 2, "tab_close_timeout_s": 3.0},
        "watchdog": {"timeout_s": 20.0, "jitter_s": 0.0},
        "retry": {"max_attempts": 3, "backoff_s": [0.05, 0.2]},
        "extract": dict(DEMO_EXTRACT),
        "monitor": {"sample_interval_s": 0.5, "invariant_interval_s": 0.5},
        "store": {"backend": "redis", "url": server.url, "lease_s": 3.0, "crawl": name},
    }
    for section, values in sections.items():
        data[section] = {**data.get(section, {}), **values}
    return data


def write_product_crawl(
    path, server: RedisServer, name: str, base: str, pages: int, **sections: dict[str, Any]
) -> Path:
    """Write to ``path`` a crawl of the shop at ``base``'s product pages 1..``pages``
    on ``server``, for worker processes (``sections`` as in :func:`redis_config_dict`);
    returns ``path``."""
    data = redis_config_dict(server, name, [], **sections)
    data["input"] = {"url_template": f"{base}/product/{{id}}", "ids": f"1-{pages}"}
    data["output"] = {"db": str(path.parent / "unused.db")}
    path.write_text(config_mod.to_toml(data))
    return path


def make_redis_config(
    server: RedisServer, name: str, urls: list[str] | None = None, **sections: dict[str, Any]
) -> config_mod.Config:
    """A validated config for crawl ``name`` on ``server`` (urls default to one placeholder)."""
    data = redis_config_dict(server, name, urls or ["http://127.0.0.1:1/product/1"], **sections)
    return config_mod.from_dict(data, source="redis-test.toml")


@pytest.fixture
def redis_config(redis_server: RedisServer, crawl_name: str) -> config_mod.Config:
    return make_redis_config(redis_server, crawl_name)


@pytest.fixture
def aof_redis(tmp_path) -> Iterator[RedisProcess]:
    """A redis-server of this test's own, AOF on (``appendfsync always``), that the
    test may SIGKILL and start again on the same port with the same data."""
    server = RedisProcess(tmp_path / "redis", *AOF_ARGS)
    server.start()
    try:
        yield server
    finally:
        server.stop()
