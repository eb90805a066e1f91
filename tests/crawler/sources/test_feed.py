"""The input feed and the database lock, without a browser: the frontier is fed a
bounded lookahead ahead of the workers, a rerun continues the input exactly where it
stopped, and a second process on the same SQLite database is refused."""

from __future__ import annotations

import itertools
import os
import subprocess
import sys

import pytest
import trio

from crawler import config as config_mod
from crawler.sources.feed import InputFeed
from crawler.sources.inputs import iter_urls
from crawler.store.sqlite import SqliteStore
from tests.procs import REPO


def range_config(tmp_path, ids: str, lookahead: int) -> config_mod.Config:
    data = {
        "input": {"url_template": "http://a.test/p/{id}", "ids": ids, "lookahead": lookahead},
        "output": {"db": str(tmp_path / "feed.db")},
    }
    return config_mod.from_dict(data, source="feed.toml", base_dir=str(tmp_path))


async def drain(store: SqliteStore, n: int) -> list[str]:
    """Claim and complete ``n`` URLs, as workers would."""
    urls = []
    for _ in range(n):
        job = await store.claim()
        assert job is not None
        assert await store.complete(job, [{"n": job.url}], [], 200, 0.1)
        urls.append(job.url)
    return urls


async def test_the_frontier_is_fed_a_bounded_lookahead_and_a_rerun_continues_exactly(tmp_path):
    """Lookahead 10 over 45 ids: never more than 10 pending; the feed tops up once
    fewer than half are left; a new feed (a rerun) starts where the last one stopped;
    in the end every URL is in the frontier once and done once."""
    cfg = range_config(tmp_path, "1-45", lookahead=10)
    store = SqliteStore(cfg.output.db)
    feed = InputFeed(cfg.input, store, base_dir=cfg.base_dir, source=cfg.source, max_urls=cfg.crawl.max_pages)
    assert await feed.fill() == 10
    assert (await store.counts())["pending"] == 10
    done = await drain(store, 4)
    assert await feed.fill() == 0  # 6 of 10 left: no top-up yet
    done += await drain(store, 2)
    assert await feed.fill() == 6  # 4 left: back up to 10
    assert feed.statistics().position == 16
    store.close()

    store = SqliteStore(cfg.output.db)  # the rerun
    rerun = InputFeed(cfg.input, store, base_dir=cfg.base_dir, source=cfg.source, max_urls=cfg.crawl.max_pages)
    while not rerun.exhausted:
        await rerun.fill()
        assert (await store.counts())["pending"] <= 10
        done += await drain(store, (await store.counts())["pending"])
    assert rerun.statistics().position == 45
    assert sorted(done) == sorted(f"http://a.test/p/{i}" for i in range(1, 46))
    assert await store.counts() == {"pending": 0, "in_progress": 0, "done": 45, "failed": 0}
    store.close()


async def test_a_feed_killed_between_add_and_save_adds_the_batch_again_without_duplicates(tmp_path):
    """The position is saved after the batch it covers: if the process dies in between,
    the rerun adds the batch again, and the frontier keeps one row per URL."""
    cfg = range_config(tmp_path, "1-40", lookahead=20)
    store = SqliteStore(cfg.output.db)
    await store.add_urls(
        itertools.islice(iter_urls(cfg.input, base_dir=cfg.base_dir, source=cfg.source), 8)
    )  # a batch added, its position never saved
    rerun = InputFeed(cfg.input, store, base_dir=cfg.base_dir, source=cfg.source, max_urls=cfg.crawl.max_pages)
    assert await rerun.fill() == 12  # entries 0-19 read again: the first 8 are known already
    assert rerun.statistics().position == 20
    assert await store.counts() == {"pending": 20, "in_progress": 0, "done": 0, "failed": 0}
    store.close()


async def test_a_huge_range_feeds_its_first_batch_at_once(tmp_path):
    """``ids = "1-99999999999"``: the first fill takes well under a second and the
    database holds the lookahead, not the range."""
    cfg = range_config(tmp_path, "1-99999999999", lookahead=1000)
    store = SqliteStore(cfg.output.db)
    start = trio.current_time()
    assert (
        await InputFeed(cfg.input, store, base_dir=cfg.base_dir, source=cfg.source, max_urls=cfg.crawl.max_pages).fill()
        == 1000
    )
    assert trio.current_time() - start < 5
    assert sum((await store.counts()).values()) == 1000
    store.close()


def test_a_second_process_on_a_held_database_is_refused_naming_the_holder(tmp_path):
    """While this process holds the database, another one refuses at once with one
    line naming this pid; once it is closed, the other one may open it."""
    db = tmp_path / "held.db"
    store = SqliteStore(db)
    probe = f"from crawler.store.sqlite import SqliteStore\nSqliteStore({str(db)!r}).close()\nprint('opened')"
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    held = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, env=env, timeout=60)
    assert held.returncode != 0
    last = held.stderr.strip().splitlines()[-1]
    assert f"in use by another crawl (pid {os.getpid()} on " in last and str(db) in last, held.stderr
    store.close()
    free = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, env=env, timeout=60)
    assert free.stdout.strip() == "opened", free.stderr


async def test_a_bad_entry_mid_batch_feeds_everything_before_it_and_the_rerun_starts_at_it(tmp_path):
    """A url_file whose line 4 is a chrome: URL: lines 1-3 are fed and the position is
    saved at the bad line; once it is fixed, the rerun feeds it and the rest, nothing twice."""
    urls = tmp_path / "urls.txt"
    urls.write_text("http://a.test/1\nhttp://a.test/2\nhttp://a.test/3\nchrome://x\nhttp://a.test/5\n")
    data = {"input": {"url_file": "urls.txt", "lookahead": 100}, "output": {"db": str(tmp_path / "f.db")}}
    cfg = config_mod.from_dict(data, source="feed.toml", base_dir=str(tmp_path))
    store = SqliteStore(cfg.output.db)
    feed = InputFeed(cfg.input, store, base_dir=cfg.base_dir, source=cfg.source, max_urls=cfg.crawl.max_pages)
    with pytest.raises(config_mod.ConfigError, match=r"urls.txt:4: expected an http\(s\) URL, got 'chrome://x'"):
        await feed.fill()
    assert feed.statistics().position == 3 and (await store.counts())["pending"] == 3
    urls.write_text("http://a.test/1\nhttp://a.test/2\nhttp://a.test/3\nhttp://a.test/4\nhttp://a.test/5\n")
    rerun = InputFeed(cfg.input, store, base_dir=cfg.base_dir, source=cfg.source, max_urls=cfg.crawl.max_pages)
    assert await rerun.fill() == 2 and rerun.exhausted
    assert (await store.counts())["pending"] == 5
    store.close()
