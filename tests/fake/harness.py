"""Running the real engine against fake browsers, and checking what it left.

- :class:`FakeBrowsers`: the ``open_browser`` seam of ``Crawler``: each call starts a
  new :class:`FakeChromium` (as ``cdp.launch`` starts a new Chromium) and connects to
  it, optionally through a chaos socket; when the engine is done with it, the
  browser's own state is compared with what the engine says it leaked.
- :func:`pool_vs_browser`: the pool's tabs and contexts against the fake's, read
  synchronously, so that it is an exact snapshot at a checkpoint (a real browser can
  only be read with commands, which take time).
- :func:`virtual_store_time`: the SQLite store's clock on trio's clock, so retry
  delays and ``finished_at`` are virtual times like everything else.
- :func:`no_memory_reading`: the ``read_memory`` seam of ``Crawler`` for fake browsers.
"""

from __future__ import annotations

import random
import sqlite3
import time
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager, closing, contextmanager
from typing import Any

import pytest
import trio

import cdp
import crawler.store.sqlite.store
from crawler.browser.pool import TabPool
from crawler.observe.memory import MemoryReading
from tests.fake.browser import FakeChromium, connect_fake, expected_item_for, open_fake_chromium
from tests.fake.chaos import ChaosPlan, ChaosSocket

EPOCH = 1_700_000_000.0  # the virtual wall clock starts here


class _VirtualTime:
    """Stands in for the ``time`` module inside ``crawler.store``."""

    def time(self) -> float:
        try:
            return EPOCH + trio.current_time()
        except RuntimeError:  # outside trio.run (opening the store)
            return time.time()


@contextmanager
def virtual_store_time() -> Iterator[None]:
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(crawler.store.sqlite.store, "time", _VirtualTime())
        yield


async def no_memory_reading(browser_pid: int | None) -> MemoryReading:
    """The engine's ``read_memory`` seam for fake browsers: nothing to measure, and no
    worker thread (the default reader's threads take real time, not virtual)."""
    return MemoryReading(browser_pss=0, browser_processes=0, crawler_pss=0)


class FakeBrowsers:
    """The ``open_browser`` factory: a fresh fake Chromium per call.

    ``problems`` collects every broken invariant seen at the end of a browser's
    session (after the pool closed everything): commands still waiting in the
    connection, sessions or subscriptions left, and targets or contexts the browser
    still holds beyond those the engine counted as leaked.
    """

    def __init__(
        self,
        rng: random.Random,
        *,
        plan: ChaosPlan | None = None,
        command_timeout_s: float = 30.0,
        latency_s: tuple[float, float] | None = None,
    ):
        self.rng = rng
        self.plan = plan
        self.command_timeout_s = command_timeout_s
        self.latency_s = latency_s
        self.chromiums: list[FakeChromium] = []
        self.current: FakeChromium | None = None
        self.socket: Any = None
        self.problems: list[str] = []
        self.leaked: list[tuple[int, int]] = []  # per browser session: (leaked_tabs, leaked_contexts)

    @asynccontextmanager
    async def __call__(self) -> AsyncIterator[cdp.Browser]:
        options = {} if self.latency_s is None else {"latency_s": self.latency_s}
        async with open_fake_chromium(rng=random.Random(self.rng.random()), **options) as chromium:
            self.chromiums.append(chromium)
            wrap = None
            if self.plan is not None:
                plan = self.plan

                def wrap(socket):
                    return ChaosSocket(socket, plan, chromium.spawn)

            async with connect_fake(
                chromium, command_timeout_s=self.command_timeout_s, wrap=wrap, name=f"fake{len(self.chromiums)}"
            ) as browser:
                self.current, self.socket = chromium, browser.connection.transport
                try:
                    yield browser
                finally:
                    self.current = None
                    self.leaked.append((browser.leaked_tabs, browser.leaked_contexts))
                    unowned = self.plan.unowned if self.plan is not None else set()
                    hung = getattr(self.socket, "hung", False)
                    self.problems += end_of_session_problems(chromium, browser, hung=hung, unowned=unowned)
            # Closed: every waiter has been woken with ConnectionLost and, once it ran, removed itself.
            with trio.CancelScope(shield=True):
                for _ in range(3):
                    await trio.lowlevel.checkpoint()
            stats = browser.connection.statistics()
            if stats.pending_commands or stats.sessions or stats.subscriptions:
                self.problems.append(f"after close the connection still holds {stats}")
            # Every context was made with disposeOnDetach: once we are gone, nothing of ours is left.
            if chromium.alive and (chromium.contexts or chromium.targets):
                self.problems.append(
                    f"after the connection closed the browser still holds {sorted(chromium.contexts)} {list(chromium.targets)}"
                )

    def hits(self, url: str) -> list[float]:
        return sorted(t for chromium in self.chromiums for t in chromium.hits.get(url, ()))


def end_of_session_problems(
    chromium: FakeChromium, browser: cdp.Browser, *, hung: bool, unowned: set[str] = frozenset()
) -> list[str]:
    """What is wrong once the engine has closed its pool on this browser."""
    problems = []
    stats = browser.connection.statistics()
    if not stats.closed and stats.sessions:
        problems.append(f"connection still routes {stats.sessions} sessions after the pool closed")
    if not chromium.alive or not browser.connected or hung:
        return problems  # the browser died or stopped answering: closing it (or detaching) cleans up
    # A context left (counted as leaked, or never known: unowned) holds whatever is in it;
    # any other tab left must have been counted as leaked.
    contexts = sorted(chromium.contexts - unowned)
    if len(contexts) > browser.leaked_contexts:
        problems.append(f"browser still holds contexts {contexts}, engine counted {browser.leaked_contexts} leaked")
    tabs = [
        t.target_id
        for t in chromium.targets.values()
        if t.context_id not in chromium.contexts and t.target_id not in unowned and not t.closing
    ]
    if len(tabs) > browser.leaked_tabs:
        problems.append(f"browser still holds tabs {tabs}, engine counted {browser.leaked_tabs} leaked")
    return problems


def pool_vs_browser(pool: TabPool, chromium: FakeChromium, unowned: set[str] = frozenset()) -> list[str]:
    """Tabs and contexts the browser holds that the pool does not (strays), and the
    reverse (missing), allowing only what is in transit at this checkpoint: a tab or
    context whose creation command is in flight, one whose close or dispose has
    started, tabs and contexts the engine already counted as leaked, and the
    ``unowned``: those whose creation reply the chaos layer lost, so that the engine
    never learnt their ids."""
    held = pool.holdings()
    browser = pool.browser
    problems = []
    pages = [t for t in chromium.targets.values() if t.context_id in held.contexts and t.opener_id is None]
    # A context's own tab objects (not yet, or no longer, in the pool) count as in transit
    # while the pool's creation or close of them runs.
    in_transit = held.tabs | held.context_tabs | unowned
    stray = [t.target_id for t in pages if t.target_id not in in_transit and not t.closing]
    if len(stray) > held.opening_tabs + browser.leaked_tabs:
        problems.append(f"stray tabs {stray} (opening {held.opening_tabs}, leaked {browser.leaked_tabs})")
    live = {t.target_id for t in chromium.targets.values()}
    missing = sorted(held.tabs - held.closing_tabs - live)
    if missing:
        problems.append(f"missing tabs {missing}: the pool holds them, the browser does not")
    stray_contexts = sorted(chromium.contexts - held.contexts - unowned)
    if len(stray_contexts) > held.opening_contexts + browser.leaked_contexts:
        problems.append(f"stray contexts {stray_contexts} (leaked {browser.leaked_contexts})")
    missing_contexts = sorted(held.contexts - held.closing_contexts - chromium.contexts)
    if missing_contexts:
        problems.append(f"missing contexts {missing_contexts}")
    return problems


async def watch_pool(get_pool, browsers: FakeBrowsers, problems: list[str], interval_s: float = 0.02) -> None:
    """Compare the pool with the browser at every ``interval_s`` (until cancelled)."""
    while True:
        await trio.sleep(interval_s)
        pool = get_pool()
        chromium = browsers.current
        socket = browsers.socket
        if pool is None or chromium is None or not chromium.alive or socket is None or socket.closed:
            continue
        if not pool.browser.connected or getattr(socket, "hung", False):
            continue
        unowned = browsers.plan.unowned if browsers.plan is not None else set()
        for problem in pool_vs_browser(pool, chromium, unowned):
            problems.append(f"t={trio.current_time():.3f}: {problem}")


async def outcome_problems(store: crawler.store.base.Store, urls: list[str], browsers: FakeBrowsers) -> list[str]:
    """Every URL in exactly one terminal state with the right data, none loaded after it was done."""
    problems = []
    with closing(sqlite3.connect(store.path)) as db:  # a connection of its own, read at once
        rows = {
            url: (state, done_count, last_error, finished_at)
            for url, state, done_count, last_error, finished_at in db.execute(
                "SELECT url, state, done_count, last_error, finished_at FROM frontier"
            )
        }
    if set(rows) != set(urls):
        problems.append(f"frontier holds {sorted(set(rows) ^ set(urls))} unexpectedly")
    items = {item["url"]: item for item in await store.items()}
    for url in urls:
        state, done_count, last_error, finished_at = rows.get(url, (None, 0, None, None))
        if state == "done":
            if done_count != 1:
                problems.append(f"{url}: done {done_count} times")
            if items.get(url) != expected_item_for(url):
                problems.append(f"{url}: item {items.get(url)} != expected")
            late = [t for t in browsers.hits(url) if EPOCH + t > finished_at]
            if late:
                problems.append(f"{url}: loaded again at {late} after it was done at {finished_at - EPOCH:.3f}")
        elif state == "failed":
            if not last_error:
                problems.append(f"{url}: failed without a reason")
            if url in items:
                problems.append(f"{url}: failed but has an item")
        else:
            problems.append(f"{url}: left {state}")
    return problems
