"""Which crawl a config's workers join on a shared Redis (``crawler.store.redis.store.crawl_name``)."""

from __future__ import annotations

from crawler import config as config_mod
from crawler.config import to_toml
from crawler.store import StoreSettings
from crawler.store.redis.store import crawl_name, open_redis_store


def unnamed_config(folder, redis_server) -> config_mod.Config:
    """A site file with neither ``[site] name`` nor ``[store] crawl``, in ``folder``."""
    folder.mkdir()
    path = folder / "site.toml"
    data = {"input": {"urls": ["http://shop.test/product/1"]}, "store": {"backend": "redis", "url": redis_server.url}}
    path.write_text(to_toml(data))
    return config_mod.load(path)


async def test_two_unrelated_configs_without_names_never_share_keys(tmp_path, redis_server):
    """Two site files without names (both site "site") on one Redis get two crawls:
    different key prefixes, and a URL one adds is unknown to the other.  The same
    file loaded again (another worker of it) joins its crawl."""
    first, second = unnamed_config(tmp_path / "a", redis_server), unnamed_config(tmp_path / "b", redis_server)
    assert first.site.name == second.site.name == "site"
    assert crawl_name(StoreSettings.of(first)) != crawl_name(StoreSettings.of(second))
    assert crawl_name(StoreSettings.of(config_mod.load(first.source))) == crawl_name(StoreSettings.of(first))
    async with open_redis_store(StoreSettings.of(first)) as a, open_redis_store(StoreSettings.of(second)) as b:
        try:
            assert a.prefix != b.prefix and not a.prefix.startswith(b.prefix) and not b.prefix.startswith(a.prefix)
            await a.add_urls(["http://shop.test/product/1"])
            assert await b.known(["http://shop.test/product/1"]) == set()
            assert await b.counts() == {"pending": 0, "in_progress": 0, "done": 0, "failed": 0}
        finally:
            await a.reset()


def test_an_explicit_crawl_name_is_used_as_given(tmp_path, redis_server):
    """``[store] crawl`` names the crawl whatever the file's path: workers on machines
    whose paths differ share it."""
    cfg = unnamed_config(tmp_path / "a", redis_server)
    named = config_mod.override(cfg, store__crawl="shop-2026")
    assert crawl_name(StoreSettings.of(named)) == "shop-2026"
