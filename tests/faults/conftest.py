"""The fault matrix's fixtures and the invariants every fault test asserts.

Each test crawls a mix of good and faulty pages of the hostile shop with the real
engine and a real Chromium, and ends with :func:`assert_invariants`:

1. every input URL is in exactly one terminal state: done (``done_count`` 1, the
   demo shop's data) or failed with a reason;
2. no done URL was requested again after it was done (the shop's own log);
3. every tab lease acquired was released (summed over browser restarts) and none is
   held;
4. the browser's own target list held no tab or context the pool does not own,
   sampled during the crawl (:class:`Watcher`, through ``pool.check_invariants`` on
   the pool in use, from the engine's ``open_pool`` seam), and none at the end of
   each browser (:func:`checked_browsers`, the ``open_browser`` seam around the
   engine's own launch or connect), or through a connection the test owns;
5. no Chromium process the crawler started is alive or defunct after it exits, and
   no temporary profile (``cdp-profile-*``) it created is left.
"""

from __future__ import annotations

import sqlite3
import time
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager, closing
from pathlib import Path
from typing import Any

import attrs
import psutil
import pytest
import trio

import cdp
from crawler.browser.launch import open_configured_browser
from crawler.browser.pool import InvariantReport
from crawler.demo import expected_item
from crawler.httpserver import Response
from crawler.run.engine import Crawler
from crawler.store.sqlite import SqliteStore
from tests.crawler.conftest import CurrentPool, make_config, url_states
from tests.procs import become_child_subreaper, existing, profile_dirs, wait_gone
from tests.shared_browser import SHARED_PIDS, SHARED_PROFILES
from tests.shop import FaultShop, start_shop

# Pages that misbehave in ways tests/shop.py does not cover.
EXTRA_SCRIPTS = {
    # Navigates itself to the same product under another URL five times, then settles.
    "navaway": "<script>const hop = +(new URLSearchParams(location.search).get('hop') || 0);"
    "if (hop < 5) setTimeout(() => { location.href = location.pathname + '?hop=' + (hop + 1); }, 20);</script>",
}


class MatrixShop(FaultShop):
    """The fault shop plus :data:`EXTRA_SCRIPTS` pages, and the base URL once served."""

    base = ""

    async def __call__(self, request):
        parts = request.path.strip("/").split("/")
        if len(parts) == 2 and parts[0] in EXTRA_SCRIPTS:
            self.hits[request.path].append(trio.current_time())
            i = self._id(parts[1])
            if i is not None:
                return Response(body=self._html(i, EXTRA_SCRIPTS[parts[0]]))
        return await super().__call__(request)


@pytest.fixture
async def shop(nursery) -> MatrixShop:
    matrix_shop = MatrixShop()
    matrix_shop.base = await start_shop(nursery, matrix_shop)
    return matrix_shop


def matrix_config(tmp_path: Path, urls: list[str], **sections: dict[str, Any]):
    """Fast settings for a fault test: short watchdog, close and command deadlines."""
    base: dict[str, dict[str, Any]] = {
        "browser": {"command_timeout_s": 10.0, "restart_limit": 3},
        "pool": {
            "concurrency": 3,
            "recycle_tab_every": 3,
            "rotate_context_every": 5,
            "tab_close_timeout_s": 3.0,
            "context_dispose_timeout_s": 5.0,
        },
        "watchdog": {"timeout_s": 4.0, "jitter_s": 0.5},
        "retry": {"max_attempts": 2, "backoff_s": [0.05, 0.2]},
        "monitor": {"sample_interval_s": 0.5, "invariant_interval_s": 1.0},
    }
    for name, values in sections.items():
        base[name] = {**base.get(name, {}), **values}
    return make_config(tmp_path, urls, **base)


def item_for(shop: MatrixShop, url: str) -> dict[str, Any]:
    """What the shop's page at ``url`` renders: product ``id``'s data under ``url``."""
    i = int(url.split("?", 1)[0].rstrip("/").split("/")[-1])
    return {**expected_item(shop.base, i), "url": url}


# -- processes ---------------------------------------------------------------------------


def chromium_family(
    root: psutil.Process, exclude_pids: set[int] = frozenset(), exclude_profiles: set[str] = frozenset()
) -> list[psutil.Process]:
    """Chromium processes below ``root`` (with Crashpad's handlers, adopted by us as
    child subreaper, and the launcher's guard shells), except those of the browsers in
    ``exclude_pids`` (with their descendants) or naming a profile in ``exclude_profiles``,
    and except the test process's shared browser (``tests/shared_browser.py``)."""
    exclude_pids = {*exclude_pids, *SHARED_PIDS}
    exclude_profiles = {*exclude_profiles, *SHARED_PROFILES}
    excluded = set(exclude_pids)
    for pid in exclude_pids:
        try:
            excluded.update(p.pid for p in psutil.Process(pid).children(recursive=True))
        except psutil.Error:
            pass
    found = []
    for proc in root.children(recursive=True):
        try:
            cmdline = proc.cmdline()
        except psutil.Error:
            continue
        if proc.pid in excluded or any(profile in arg for arg in cmdline for profile in exclude_profiles):
            continue
        if (cmdline and "chrom" in Path(cmdline[0]).name) or "cdp-browser-guard" in cmdline:
            found.append(proc)
    return found


async def assert_all_gone(procs: dict[int, psutil.Process], profiles: set[str], timeout_s: float = 15.0) -> None:
    """Every process is gone (reaping, by pid, those adopted by the test process as
    child subreaper) and every temporary profile directory is removed."""
    left = await wait_gone(list(procs.values()), timeout_s)
    assert not left, f"Chromium processes left alive or defunct: {left}"
    temporary = {p for p in profiles if Path(p).name.startswith("cdp-profile-")}
    assert temporary == profiles or not profiles, f"unexpected profiles {profiles - temporary}"
    remaining = existing(temporary)
    assert not remaining, f"temporary profiles left behind: {sorted(remaining)}"


# -- the crawl, watched ---------------------------------------------------------------------


@attrs.define
class Watcher:
    """Samples, while a crawl runs: the pool against the browser's own target list, and
    the Chromium processes (with their profiles) below ``root``."""

    root: psutil.Process
    exclude_pids: set[int] = attrs.field(factory=set)
    exclude_profiles: set[str] = attrs.field(factory=set)
    interval_s: float = 0.05
    reports: list[InvariantReport] = attrs.field(factory=list)
    bad: list[InvariantReport] = attrs.field(factory=list)
    processes: dict[int, psutil.Process] = attrs.field(factory=dict)
    profiles: set[str] = attrs.field(factory=set)

    def sample_processes(self) -> None:
        family = chromium_family(self.root, self.exclude_pids, self.exclude_profiles)
        for proc in family:
            self.processes.setdefault(proc.pid, proc)
        self.profiles |= profile_dirs(family)

    async def run(self, current: CurrentPool) -> None:
        while True:
            self.sample_processes()
            pool = current.pool
            if pool is not None and pool.browser.connected:
                try:
                    report = await pool.check_invariants()
                except (cdp.CDPError, trio.ClosedResourceError):
                    report = None  # the browser went away mid-reading
                if report is not None and pool.browser.connected:
                    self.reports.append(report)
                    if not report.ok:
                        self.bad.append(report)
            await trio.sleep(self.interval_s)


def checked_browsers(cfg, opened: list[cdp.Browser], ends: list[dict[str, Any]]):
    """The ``open_browser`` seam around the engine's own launch/connect: each browser
    goes into ``opened`` as it opens; when the engine is done with it (its pool closed
    everything) and it still answers, the page targets and contexts it holds go into
    ``ends``."""

    @asynccontextmanager
    async def open_browser() -> AsyncIterator[cdp.Browser]:
        async with open_configured_browser(cfg.browser) as browser:
            opened.append(browser)
            try:
                yield browser
            finally:
                end: dict[str, Any] = {"connected": browser.connected, "leaked_tabs": browser.leaked_tabs}
                if browser.connected:
                    with trio.move_on_after(5.0, shield=True):
                        try:
                            targets = await browser.targets()
                            contexts = await browser.send("Target.getBrowserContexts")
                            end["pages"] = [t for t in targets if t.type == "page"]
                            end["contexts"] = contexts["browserContextIds"]
                        except cdp.CDPError as exc:
                            end["error"] = repr(exc)
                ends.append(end)

    return open_browser


@attrs.define
class Running:
    """A crawl in progress, as ``during`` sees it."""

    engine: Crawler
    store: SqliteStore
    browsers: list[cdp.Browser]  # every browser the engine opened, in order
    current: CurrentPool  # the pool in use

    @property
    def browser(self) -> cdp.Browser | None:
        """The browser opened last (still in use, unless it died)."""
        return self.browsers[-1] if self.browsers else None


@attrs.define
class Crawl:
    engine: Crawler
    store: SqliteStore
    reason: str
    watcher: Watcher
    ends: list[dict[str, Any]]
    browsers: list[cdp.Browser]  # every browser the engine opened, in order
    current: CurrentPool
    started_wall: float
    offset: float  # time.time() - trio.current_time() during the crawl, to compare the shop's times


async def run_crawl(
    cfg,
    *,
    during: Callable[[Running], Any] | None = None,
    owned: cdp.Browser | None = None,
    store: SqliteStore | None = None,
) -> Crawl:
    """Run a crawl in-process with the :class:`Watcher` sampling, and ``during`` (an
    async function of the :class:`Running` crawl) alongside; returns everything to check.  ``owned``
    is a browser the test launched itself (the connect path): its processes are not
    the crawler's."""
    become_child_subreaper()
    store = store or SqliteStore(cfg.output.db)
    ends: list[dict[str, Any]] = []
    browsers: list[cdp.Browser] = []
    current = CurrentPool()
    engine = Crawler(cfg, store, open_browser=checked_browsers(cfg, browsers, ends), open_pool=current)
    watcher = Watcher(psutil.Process())
    if owned is not None and owned.pid is not None:  # the test's own browser is not the crawler's
        watcher.exclude_pids.add(owned.pid)
        watcher.exclude_profiles |= profile_dirs([psutil.Process(owned.pid)])
    offset = time.time() - trio.current_time()
    started = time.time()
    async with trio.open_nursery() as nursery:
        nursery.start_soon(watcher.run, current)
        if during is not None:
            nursery.start_soon(during, Running(engine, store, browsers, current))
        reason = await engine.run()
        nursery.cancel_scope.cancel()
    watcher.sample_processes()
    return Crawl(engine, store, reason, watcher, ends, browsers, current, started, offset)


async def assert_invariants(
    crawl: Crawl,
    shop: MatrixShop,
    urls: list[str],
    *,
    done: set[str] | None = None,
    failed: dict[str, str] | None = None,
    launched: bool = True,
) -> dict[str, dict[str, Any]]:
    """The five invariants of the module docstring, plus, if given, which URLs must end
    done and which failed (url -> reason prefix).  Returns the frontier rows."""
    rows = await url_states(crawl.store, urls)
    items = {item["url"]: item for item in await crawl.store.items()}
    assert_outcome(rows, items, shop, urls, offset=crawl.offset, done=done, failed=failed)
    stats = crawl.engine.statistics()
    counters = stats.browser.pool_totals
    assert counters.leases_acquired == counters.leases_released > 0, counters
    assert crawl.current.pool is None and stats.browser.pool is None and stats.jobs.in_flight == 0
    assert await crawl.store.in_progress_urls() == set()

    watcher = crawl.watcher
    assert len(watcher.reports) >= 3, "the watcher never read the browser's targets"
    assert watcher.bad == [], watcher.bad[:3]
    for end in crawl.ends:
        if end["connected"]:
            assert "error" not in end, end
            assert end["pages"] == [] and end["contexts"] == [], end
    if launched:
        assert watcher.processes, "no Chromium process was seen"
        await assert_all_gone(watcher.processes, watcher.profiles)
    return rows


def assert_outcome(
    rows: dict[str, dict[str, Any]],
    items: dict[str, dict[str, Any]],
    shop: MatrixShop,
    urls: list[str],
    *,
    offset: float,
    done: set[str] | None = None,
    failed: dict[str, str] | None = None,
) -> None:
    """Invariants 1 and 2 on the frontier rows and items: every URL terminal once, done
    ones with the shop's data and never requested again after their finish (``offset``:
    wall clock minus trio clock, to compare the shop's times with the store's)."""
    assert set(rows) == set(urls)
    for url in urls:
        row = rows[url]
        assert row["state"] in ("done", "failed"), f"{url}: left {row['state']} ({row['last_error']})"
        if row["state"] == "done":
            assert row["done_count"] == 1, f"{url}: done {row['done_count']} times"
            assert items.get(url) == item_for(shop, url), f"{url}: wrong item {items.get(url)}"
            path = "/" + url.split("/", 3)[3].split("?", 1)[0]
            late = [t + offset - row["finished_at"] for t in shop.hits.get(path, ())]
            assert max(late, default=-1.0) < 0.05, f"{url}: requested again {max(late):.3f} s after it was done"
        else:
            assert row["done_count"] == 0 and row["last_error"], f"{url}: failed without a reason"
            assert url not in items
    for url in done or ():
        assert rows[url]["state"] == "done", f"{url}: {rows[url]['state']} ({rows[url]['last_error']})"
    for url, reason in (failed or {}).items():
        assert rows[url]["state"] == "failed" and rows[url]["last_error"].startswith(reason), (url, rows[url])


async def wait_for(predicate: Callable[[], bool], *, timeout_s: float = 30.0, interval_s: float = 0.02) -> None:
    """Poll state that no event signals (the store, the engine's counters)."""
    with trio.fail_after(timeout_s):
        while not predicate():  # noqa: ASYNC110 - nothing to wait on but the state itself
            await trio.sleep(interval_s)


def count_done(store: SqliteStore) -> int:
    """Done URLs, read through a connection of its own (a sync predicate for polling)."""
    with closing(sqlite3.connect(store.path)) as db:
        return db.execute("SELECT COUNT(*) FROM frontier WHERE state = 'done'").fetchone()[0]
