"""Fixtures for the crawler tests: the hostile fixture shop and in-process crawls."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import pytest

import cdp
from crawler import config as config_mod
from crawler.browser.pool import TabPool, open_pool
from crawler.run.engine import Crawler
from crawler.store.sqlite import SqliteStore
from tests.shop import FaultShop, start_shop

DEMO_EXTRACT = {
    "wait_for": "body[data-ready]",
    "poll_interval_s": 0.02,
    "fields": {
        "name": "h1",
        "brand": {"css": "p.brand"},
        "price": {"css": "#price"},
        "image": {"css": "img.main", "attr": "src"},
        "stock": {"js": "document.querySelector('#stock').textContent"},
    },
    "capture": [{"name": "goods", "url_contains": "/api/goods/"}],
}


@pytest.fixture
async def shop(nursery):
    """A FaultShop served on 127.0.0.1; ``shop.base`` is its URL."""
    fault_shop = FaultShop()
    fault_shop.base = await start_shop(nursery, fault_shop)
    return fault_shop


def make_config(tmp_path, urls: list[str], **sections: dict[str, Any]) -> config_mod.Config:
    """A config for ``urls`` with the demo extraction, fast defaults, and overrides per section."""
    data: dict[str, Any] = {
        "input": {"urls": urls},
        "pool": {"concurrency": 2, "tab_close_timeout_s": 3.0},
        "watchdog": {"timeout_s": 20.0, "jitter_s": 0.0},
        "retry": {"max_attempts": 2, "backoff_s": [0.05, 0.2]},
        "extract": dict(DEMO_EXTRACT),
        "output": {"db": str(tmp_path / "crawl.db")},
        "monitor": {"sample_interval_s": 0.5, "invariant_interval_s": 0.5},
    }
    for name, values in sections.items():
        data[name] = {**data.get(name, {}), **values}
    return config_mod.from_dict(data, source="test.toml", base_dir=str(tmp_path))


async def crawl(cfg: config_mod.Config, **kwargs: Any) -> tuple[Crawler, SqliteStore, str]:
    """Run a whole crawl in-process; returns the crawler, its (open) store and the finish reason."""
    store = SqliteStore(cfg.output.db)
    crawler = Crawler(cfg, store, **kwargs)
    reason = await crawler.run()
    return crawler, store, reason


async def url_states(store: SqliteStore, urls) -> dict[str, dict[str, Any]]:
    """url -> the store's record of it (``url_state``)."""
    return {url: await store.url_state(url) for url in urls}


class CurrentPool:
    """The ``open_pool`` seam of :class:`Crawler`, keeping track of the pool in use:
    ``pool`` is the pool the engine works with, None before the first browser and
    from the moment the engine is done with a pool (before it closes)."""

    def __init__(self) -> None:
        self.pool: TabPool | None = None
        self.opened = 0

    @asynccontextmanager
    async def __call__(self, browser: cdp.Browser, **options: Any) -> AsyncIterator[TabPool]:
        async with open_pool(browser, **options) as pool:
            self.pool = pool
            self.opened += 1
            try:
                yield pool
            finally:
                self.pool = None
