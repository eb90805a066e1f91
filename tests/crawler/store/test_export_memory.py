"""Exports stream: 200,000 items come out of either store with the export process's
peak RSS within a fixed bound over that of exporting 2,000.  Holding the items (as
the export did before it streamed) costs well over 100 MiB here."""

from __future__ import annotations

import os
import subprocess
import sys
import uuid
from pathlib import Path

import pytest
import trio

from crawler.config import to_toml
from crawler.store import StoreSettings
from crawler.store.base import Store
from crawler.store.redis.store import open_redis_store
from crawler.store.sqlite import SqliteStore
from tests.crawler.store.redis.conftest import make_redis_config, redis_config_dict
from tests.procs import REPO

ITEMS_PER_PAGE = 100
BIG_PAGES, SMALL_PAGES = 2_000, 20  # 200,000 items and 2,000
RSS_BOUND_MIB = 40  # the big export's peak RSS over the small one's
REVIEW = "a review of a product, long enough to be a real one; " * 4  # ~200 bytes


async def fill(store: Store, pages: int) -> None:
    urls = [f"http://shop.test/product/{i}" for i in range(pages)]
    await store.add_urls(urls)
    await store.start_run()
    for _ in range(pages):
        job = await store.claim()
        items = [{"url": job.url, "n": n, "stars": n % 5, "review": REVIEW} for n in range(ITEMS_PER_PAGE)]
        assert await store.complete(job, items, [], 200, 0.1)


def export_peak_rss_mib(where: list[str], fmt: str, out: Path) -> tuple[float, str]:
    """Run ``python -m crawler export`` to ``out``; its peak RSS (MiB) and stderr."""
    proc = subprocess.Popen(
        [sys.executable, "-m", "crawler", "export", *where, "--format", fmt, "--out", str(out)],
        env={**os.environ, "PYTHONPATH": str(REPO)},
        stderr=subprocess.PIPE,
    )
    err = proc.stderr.read().decode()  # the child's one summary line: no deadlock on the pipe
    _, status, usage = os.wait4(proc.pid, 0)
    proc.returncode = os.waitstatus_to_exitcode(status)
    assert proc.returncode == 0, err
    return usage.ru_maxrss / 1024, err


async def sqlite_stores(tmp_path: Path) -> tuple[list[str], list[str]]:
    where = []
    for name, pages in (("small", SMALL_PAGES), ("big", BIG_PAGES)):
        store = await SqliteStore.open(tmp_path / f"{name}.db")
        try:
            await fill(store, pages)
        finally:
            store.close()
        where.append(["--db", str(tmp_path / f"{name}.db")])
    return where[0], where[1]


async def redis_stores(tmp_path: Path, server) -> tuple[list[str], list[str]]:
    where = []
    for name, pages in (("small", SMALL_PAGES), ("big", BIG_PAGES)):
        crawl = f"export-{name}-{uuid.uuid4().hex[:8]}"
        async with open_redis_store(StoreSettings.of(make_redis_config(server, crawl))) as store:
            await fill(store, pages)
        config = tmp_path / f"{name}.toml"
        config.write_text(to_toml(redis_config_dict(server, crawl, ["http://127.0.0.1:1/product/1"])))
        where.append(["--config", str(config)])
    return where[0], where[1]


@pytest.mark.parametrize("backend", ["sqlite", "redis"])
@pytest.mark.parametrize("fmt", ["jsonl", "csv"])
async def test_exporting_200000_items_stays_within_a_fixed_rss_bound(backend, fmt, tmp_path, request):
    if backend == "sqlite":
        small, big = await sqlite_stores(tmp_path)
    else:
        small, big = await redis_stores(tmp_path, request.getfixturevalue("redis_server"))
    small_rss, _ = await trio.to_thread.run_sync(export_peak_rss_mib, small, fmt, tmp_path / f"small.{fmt}")
    big_rss, err = await trio.to_thread.run_sync(export_peak_rss_mib, big, fmt, tmp_path / f"big.{fmt}")
    assert f"exported {BIG_PAGES * ITEMS_PER_PAGE} items" in err
    lines = sum(1 for _ in (tmp_path / f"big.{fmt}").open(encoding="utf-8"))
    assert lines == BIG_PAGES * ITEMS_PER_PAGE + (1 if fmt == "csv" else 0)
    assert big_rss - small_rss <= RSS_BOUND_MIB, f"peak RSS {big_rss:.0f} MiB against {small_rss:.0f} MiB for 2,000"
