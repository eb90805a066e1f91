"""Killing or interrupting `python -m crawler` and running it again."""

from __future__ import annotations

import json
import signal
import sqlite3

import pytest
import trio

from crawler.demo import expected_item
from tests.procs import descendants, existing, profile_dirs, site_toml, start_crawler, wait_gone, write_config

pytestmark = pytest.mark.chromium

PAGES = 60


def config_text(base: str, db: str) -> str:
    settings = """
[pool]
concurrency = 2
recycle_tab_every = 5
rotate_context_every = 20
[watchdog]
timeout_s = 20
jitter_s = 1
[rate_limit]
wait_ms = [40, 60]
"""
    return site_toml("resume-test", f'url_template = "{base}/product/{{id}}"\nids = "1-{PAGES}"', db, settings)


def rows(db: str) -> dict[str, tuple]:
    with sqlite3.connect(db) as conn:
        return {r[0]: r[1:] for r in conn.execute("SELECT url, state, attempts, done_count FROM frontier")}


def items(db: str) -> dict[str, dict]:
    with sqlite3.connect(db) as conn:
        pairs = conn.execute("SELECT f.url, i.data FROM items i JOIN frontier f ON f.id = i.url_id").fetchall()
    by_url = {url: json.loads(data) for url, data in pairs}
    assert len(by_url) == len(pairs), "a page's item was stored twice"
    return by_url


async def wait_done(db: str, at_least: int, proc: trio.Process, timeout_s: float = 60) -> None:
    with trio.fail_after(timeout_s):
        while True:
            assert proc.poll() is None, "the crawler exited before it was killed"
            try:
                done = sum(1 for state, *_ in rows(db).values() if state == "done")
            except sqlite3.OperationalError:
                done = 0
            if done >= at_least:
                return
            await trio.sleep(0.05)


def page_paths(shop, urls) -> dict[str, int]:
    return {u: len(shop.hits["/" + u.split("/", 3)[3]]) for u in urls}


async def test_crawl_killed_with_sigkill_resumes_and_every_url_is_done_exactly_once(shop, tmp_path):
    """SIGKILL mid-crawl, then the same command: every URL ends done with correct data,
    done_count is 1 everywhere, no URL done in the first run is fetched again, and the
    killed crawler's Chromium and profile are gone."""
    db = str(tmp_path / "crawl.db")
    cfg = write_config(tmp_path / "site.toml", config_text(shop.base, db))
    first = await start_crawler("--config", str(cfg), cwd=tmp_path)
    await wait_done(db, 15, first)
    family = descendants(first.pid)
    profiles = profile_dirs(family)
    assert any("chromium" in p.name() for p in family) and profiles
    first.kill()
    await first.wait()
    assert await wait_gone(family) == []  # the browser guard killed them; we reaped them
    assert existing(profiles) == set()  # and it removed the temporary profile

    before = rows(db)
    done_first = [u for u, (state, *_) in before.items() if state == "done"]
    assert 15 <= len(done_first) < PAGES
    assert any(state == "in_progress" for state, *_ in before.values()) or len(done_first) < PAGES
    hits_first = page_paths(shop, done_first)

    second = await start_crawler("--config", str(cfg), cwd=tmp_path)
    assert await second.wait() == 0, (tmp_path / "crawler.err").read_text()[-2000:]

    after = rows(db)
    assert len(after) == PAGES
    assert all(state == "done" and done_count == 1 for state, _, done_count in after.values()), after
    assert page_paths(shop, done_first) == hits_first  # nothing done was redone
    got = items(db)
    assert got == {f"{shop.base}/product/{i}": expected_item(shop.base, i) for i in range(1, PAGES + 1)}
    assert "resuming" in (tmp_path / "crawler.err").read_text()


async def test_sigint_stops_within_seconds_leaves_in_flight_pending_and_rerun_finishes(shop, tmp_path):
    """SIGINT: exit code 130 within 5 s, a resume hint, no row left in progress, no
    attempt charged for the interrupted pages, no Chromium or profile left; the rerun
    completes everything."""
    db = str(tmp_path / "crawl.db")
    cfg = write_config(tmp_path / "site.toml", config_text(shop.base, db))
    proc = await start_crawler("--config", str(cfg), cwd=tmp_path)
    await wait_done(db, 10, proc)
    family = descendants(proc.pid)
    profiles = profile_dirs(family)
    proc.send_signal(signal.SIGINT)
    with trio.fail_after(5):
        code = await proc.wait()
    assert code == 130
    err = (tmp_path / "crawler.err").read_text()
    assert "resume with the same command" in err
    assert await wait_gone(family) == []
    assert profiles and existing(profiles) == set()
    states = rows(db)
    assert not [u for u, (state, *_) in states.items() if state == "in_progress"]
    assert all(attempts == 0 for state, attempts, _ in states.values() if state == "pending")

    again = await start_crawler("--config", str(cfg), cwd=tmp_path)
    assert await again.wait() == 0
    assert all(state == "done" and n == 1 for state, _, n in rows(db).values())


DISCOVERY_PRODUCTS = 24


@pytest.fixture
async def storefront(nursery):
    from crawler.demo import DemoShop
    from tests.shop import start_shop

    shop = DemoShop(DISCOVERY_PRODUCTS)
    shop.base = await start_shop(nursery, shop)
    return shop


async def test_a_discovery_crawl_killed_with_sigkill_resumes_with_every_product_and_review_stored_once(
    storefront, tmp_path
):
    """The demo crawl (home -> listings -> products -> reviews, questions; a login per
    context), SIGKILLed half-way, then the same command: every product, review, question
    and wish of the shop is stored exactly once, checked by its key."""
    from crawler.demo import ITEM_KINDS, truth
    from tests.procs import REPO

    db = str(tmp_path / "crawl.db")
    text = f"""
[site]
name = "discovery"
handlers = "{REPO / "config" / "demo_handlers.py"}"
[input]
urls = ["{storefront.base}/"]
[pool]
concurrency = 3
recycle_tab_every = 5
rotate_context_every = 7
[watchdog]
timeout_s = 30
jitter_s = 1
[retry]
max_attempts = 3
backoff_s = [0.1, 0.5]
[output]
db = "{db}"
[monitor]
progress_interval_s = 0.5
"""
    cfg = write_config(tmp_path / "site.toml", text)
    first = await start_crawler("--config", str(cfg), cwd=tmp_path)
    await wait_done(db, 20, first, timeout_s=120)
    first.kill()
    await first.wait()
    with sqlite3.connect(db) as conn:
        (left,) = conn.execute("SELECT COUNT(*) FROM frontier WHERE state != 'done'").fetchone()
    assert left > 0, "the crawl finished before it was killed: the test exercised nothing"

    second = await start_crawler("--config", str(cfg), cwd=tmp_path)
    assert await second.wait() == 0, (tmp_path / "crawler.err").read_text()[-2000:]

    with sqlite3.connect(db) as conn:
        stored = [json.loads(d) for (d,) in conn.execute("SELECT data FROM items")]
        counts = conn.execute("SELECT done_count FROM frontier").fetchall()
    keys = [(item["kind"], item["id"]) for item in stored]
    assert len(keys) == len(set(keys)), "an item was stored twice"
    expected = {(kind, key) for kind, ids in truth(DISCOVERY_PRODUCTS).items() for key in ids}
    assert {k for k in keys if k[0] in ITEM_KINDS} == expected
    assert all(n == 1 for (n,) in counts)
