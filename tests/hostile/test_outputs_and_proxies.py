"""Hostile outputs and proxies, round 3 (issue 26): the exit code is the crawl's
whoever reads its streams; a proxy that refuses its credentials retires its session
(``proxy_auth``), the URL uncharged; when every proxy does, the crawl stops with one
line naming them, redacted."""

from __future__ import annotations

import os
import sqlite3
import subprocess
import sys

import pytest
import trio

from crawler import config as config_mod
from crawler.run.engine import Crawler
from crawler.store.sqlite import SqliteStore
from tests.crawler.http.static_shop import StaticShop, no_browser, start_static_shop
from tests.httpproxy import HttpProxy
from tests.procs import REPO

SECRET = "pw-77ab31"
HOST = "shop.test"


@pytest.fixture
async def static_shop(nursery):
    shop = StaticShop()
    shop.base = await start_static_shop(nursery, shop)
    return shop


def site_file(tmp_path, shop, *, pages: int = 6) -> str:
    urls = ", ".join(f'"{shop.base}/p/{i}"' for i in range(pages))
    path = tmp_path / "site.toml"
    path.write_text(
        f'[input]\nurls = [{urls}]\n[crawl]\nfetch = "http"\n[extract]\nfields = {{ name = "h1" }}\n'
        f'[output]\ndb = "{tmp_path / "crawl.db"}"\n[monitor]\nprogress_interval_s = 0.05\n'
    )
    return str(path)


async def run_cli(args: list[str], cwd, *, stderr_reader_quits: bool) -> int:
    """``python -m crawler ARGS``; with ``stderr_reader_quits``, its stderr is a pipe
    whose reader reads one line and goes away (``2>&1 | head -1``)."""
    env = {**os.environ, "PYTHONPATH": str(REPO), "PYTHONUNBUFFERED": "1"}
    argv = [sys.executable, "-m", "crawler", *args]
    if not stderr_reader_quits:
        done = await trio.run_process(
            argv, cwd=cwd, env=env, capture_stderr=True, stdout=subprocess.DEVNULL, check=False
        )
        return done.returncode
    proc = await trio.lowlevel.open_process(argv, cwd=cwd, env=env, stderr=subprocess.PIPE, stdout=subprocess.DEVNULL)
    async with proc.stderr:
        await proc.stderr.receive_some(100)  # the first line, or part of it: then the reader is gone
    return await proc.wait()


async def test_a_crawl_with_urls_left_pending_exits_1_whoever_reads_its_stderr(tmp_path, static_shop):
    """``--limit 2`` of six URLs leaves four pending: exit 1 with stderr to a file, and
    exit 1 with stderr to a reader that quit after its first line (it was 0)."""
    site = site_file(tmp_path, static_shop)
    assert await run_cli(["--config", site, "--limit", "2"], tmp_path, stderr_reader_quits=False) == 1
    again = tmp_path / "again"
    again.mkdir()
    site = site_file(again, static_shop)
    assert await run_cli(["--config", site, "--limit", "2"], again, stderr_reader_quits=True) == 1
    with sqlite3.connect(again / "crawl.db") as db:
        states = dict(db.execute("SELECT state, COUNT(*) FROM frontier GROUP BY state").fetchall())
    assert states == {"done": 2, "pending": 4}  # nothing lost either


async def refusing_proxy(nursery, name: str) -> HttpProxy:
    proxy = HttpProxy(name, hosts={HOST: "127.0.0.1"}, credentials=("user", "the-right-one"))
    await nursery.start(proxy.serve)
    return proxy


async def test_when_every_proxy_refuses_its_credentials_the_crawl_stops_with_one_line_naming_them(
    tmp_path, static_shop, nursery
):
    a, b = await refusing_proxy(nursery, "a"), await refusing_proxy(nursery, "b")
    port = static_shop.base.rsplit(":", 1)[1]
    proxies = [p.url().replace("the-right-one", SECRET) for p in (a, b)]
    cfg = config_mod.from_dict(
        {
            "input": {"urls": [f"http://{HOST}:{port}/p/{i}" for i in range(4)]},
            "crawl": {"fetch": "http"},
            "session": {"proxies": proxies, "backoff_s": [0.05, 0.1]},
            "retry": {"max_attempts": 2},
            "extract": {"fields": {"name": "h1"}},
            "output": {"db": str(tmp_path / "crawl.db")},
        },
        source="t.toml",
    )
    store = SqliteStore(cfg.output.db)
    run = Crawler(cfg, store, open_browser=no_browser)
    with trio.fail_after(20):
        reason = await run.run()
    assert reason == (
        f"aborted: every proxy refused its credentials (proxy_auth): http://127.0.0.1:{a.port}, http://127.0.0.1:{b.port}"
    )
    assert SECRET not in reason
    counts = await store.counts()
    assert counts["failed"] == 0 and counts["pending"] + counts["in_progress"] == 4  # nothing lost, nothing charged
    states = [await store.url_state(f"http://{HOST}:{port}/p/{i}") for i in range(4)]
    assert all(s["attempts"] == 0 for s in states), states
