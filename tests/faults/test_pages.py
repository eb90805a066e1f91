"""Fault matrix, part 1: a hostile server and hostile pages, against real Chromium.

One test per fault; each crawls the faulty pages among good ones and ends with
``assert_invariants`` (see ``conftest.py``): every URL terminal once with the right
data, nothing requested after it was done, leases balanced, no stray tab or context
during or after the crawl, no Chromium process or profile left.
"""

from __future__ import annotations

import pytest

from tests.faults.conftest import assert_invariants, matrix_config, run_crawl

pytestmark = pytest.mark.chromium


def products(shop, ids) -> list[str]:
    return [f"{shop.base}/product/{i}" for i in ids]


async def test_server_that_never_answers_times_out_and_the_rest_is_done(shop, tmp_path):
    """The server accepts the request and never answers: each attempt ends as a timeout
    within timeout + jitter + 2 s, the URL fails 'timeout' after its attempts, and every
    good page is done."""
    hang = f"{shop.base}/hang/1"
    urls = [hang, *products(shop, range(1, 8))]
    crawl = await run_crawl(matrix_config(tmp_path, urls, watchdog={"timeout_s": 3.0, "jitter_s": 0.5}))
    rows = await assert_invariants(crawl, shop, urls, done=set(urls[1:]), failed={hang: "timeout"})
    assert rows[hang]["attempts"] == 2 and crawl.engine.statistics().jobs.watchdog_expiries == 2
    assert rows[hang]["elapsed_s"] <= 3.0 + 0.5 + 2.0
    assert len(shop.page_hits("hang", 1)) == 2


async def test_server_that_answers_late_is_done_within_budget_and_a_timeout_beyond(shop, tmp_path):
    """An answer after 1.5 s fits the 4 s budget: done.  One after 30 s does not: it
    times out on every attempt, and its late answer changes nothing."""
    late, too_late = f"{shop.base}/slow/2?s=1.5", f"{shop.base}/slow/3?s=30"
    urls = [late, too_late, *products(shop, range(4, 9))]
    crawl = await run_crawl(matrix_config(tmp_path, urls))
    await assert_invariants(crawl, shop, urls, done={late, *urls[2:]}, failed={too_late: "timeout"})


async def test_429_and_503_with_retry_after_are_retried_no_sooner(shop, tmp_path):
    """429 and 503 with Retry-After: 1 are retried no sooner than 1 s later and then
    done; a 503 that never clears fails 'http_503' after max_attempts."""
    busy = f"{shop.base}/status/429/1?times=1&retry_after=1"
    unavailable = f"{shop.base}/status/503/2?times=2&retry_after=1"
    down = f"{shop.base}/status/503/3?times=99&retry_after=1"
    urls = [busy, unavailable, down, *products(shop, range(4, 8))]
    crawl = await run_crawl(matrix_config(tmp_path, urls, retry={"max_attempts": 3}))
    await assert_invariants(crawl, shop, urls, done={busy, unavailable, *urls[3:]}, failed={down: "http_503"})
    for path, n in (("/status/429/1", 2), ("/status/503/2", 3), ("/status/503/3", 3)):
        hits = shop.hits[path]
        assert len(hits) == n, (path, hits)
        assert min(b - a for a, b in zip(hits, hits[1:], strict=False)) >= 1.0, (path, hits)


async def test_connection_closed_mid_response_fails_with_a_reason(shop, tmp_path):
    """The server closes the connection halfway through the document: the URL fails
    with a reason (whatever Chromium makes of half a page), the rest is done."""
    cut = f"{shop.base}/truncate/1"
    urls = [cut, *products(shop, range(2, 8))]
    crawl = await run_crawl(matrix_config(tmp_path, urls, watchdog={"timeout_s": 3.0}))
    await assert_invariants(crawl, shop, urls, done=set(urls[1:]), failed={cut: ""})


async def test_hung_renderer_is_released_by_the_watchdog_and_its_tab_closes(shop, tmp_path):
    """The page runs ``while(true){}``: the watchdog still ends the job on time, the lease
    closes the hung tab (not leaked: closing a hung renderer works), the tab is never
    leased again, and the crawl goes on."""
    busy = f"{shop.base}/busy/1"
    urls = [busy, *products(shop, range(2, 9))]
    crawl = await run_crawl(matrix_config(tmp_path, urls, watchdog={"timeout_s": 3.0, "jitter_s": 0.5}))
    rows = await assert_invariants(crawl, shop, urls, done=set(urls[1:]), failed={busy: "timeout"})
    assert rows[busy]["elapsed_s"] <= 3.0 + 0.5 + 2.0
    assert all(end["leaked_tabs"] == 0 for end in crawl.ends), crawl.ends
    assert crawl.engine.statistics().browser.pool_totals.tabs_discarded >= 2


async def test_renderer_out_of_memory_fails_fast_without_waiting_for_the_watchdog(shop, tmp_path):
    """The page allocates until its renderer runs out of memory (V8 heap capped at
    64 MiB so that it takes a moment): the renderer crash fails the job at once, long
    before the 60 s watchdog, as 'crashed'; the crashed tab is replaced."""
    oom = f"{shop.base}/oom/1"
    urls = [oom, *products(shop, range(2, 7))]
    cfg = matrix_config(
        tmp_path,
        urls,
        browser={"args": ["--js-flags=--max-old-space-size=64"]},
        watchdog={"timeout_s": 60.0, "jitter_s": 0.0},
    )
    crawl = await run_crawl(cfg)
    rows = await assert_invariants(crawl, shop, urls, done=set(urls[1:]), failed={oom: "crashed"})
    assert rows[oom]["attempts"] == 2
    assert rows[oom]["elapsed_s"] < 20.0
    assert crawl.engine.statistics().jobs.watchdog_expiries == 0


@pytest.mark.parametrize("blocking", [True, False], ids=["popup-blocker", "no-popup-blocker"])
async def test_popups_in_a_loop_are_closed_and_none_is_left(shop, tmp_path, blocking):
    """The page opens popups as it loads and every 50 ms after.  Chromium's popup
    blocker stops them (no user gesture); with it disabled (as some crawls need),
    each popup is closed as it appears.  Either way the page is done, and no popup or
    tab is left in the browser during or after the crawl."""
    popups = f"{shop.base}/popups/20"
    urls = [popups, *products(shop, range(1, 7))]
    args = [] if blocking else ["--disable-popup-blocking"]
    crawl = await run_crawl(matrix_config(tmp_path, urls, browser={"args": args}))
    await assert_invariants(crawl, shop, urls, done=set(urls))
    closed = crawl.engine.statistics().browser.pool_totals.popups_closed
    assert closed == 0 if blocking else closed >= 5, closed


async def test_alert_confirm_and_prompt_do_not_block_the_page(shop, tmp_path):
    """The page calls alert(), confirm() and prompt() before it renders: nothing blocks,
    the page is done with its data, quickly."""
    dialogs = f"{shop.base}/dialogs/1"
    urls = [dialogs, *products(shop, range(2, 6))]
    crawl = await run_crawl(matrix_config(tmp_path, urls))
    rows = await assert_invariants(crawl, shop, urls, done=set(urls))
    assert rows[dialogs]["attempts"] == 1 and rows[dialogs]["elapsed_s"] < 3.0


async def test_pages_that_navigate_away_or_reload_themselves_end_with_the_right_data(shop, tmp_path):
    """One page reloads itself every 50 ms forever, one navigates itself five times
    before it settles: each ends done with its own product's data, or failed with a
    reason - never done with another page's data, never requested after it was done."""
    reload_, navaway = f"{shop.base}/reload/1", f"{shop.base}/navaway/2"
    urls = [reload_, navaway, *products(shop, range(3, 8))]
    crawl = await run_crawl(matrix_config(tmp_path, urls))
    await assert_invariants(crawl, shop, urls, done=set(urls[2:]))


async def test_page_that_never_produces_wait_for_times_out(shop, tmp_path):
    """The page renders but never produces the ``wait_for`` element: a timeout on each
    attempt, then failed; the rest is done."""
    never = f"{shop.base}/never/1"
    urls = [never, *products(shop, range(2, 8))]
    crawl = await run_crawl(matrix_config(tmp_path, urls, watchdog={"timeout_s": 2.0, "jitter_s": 0.0}))
    await assert_invariants(crawl, shop, urls, done=set(urls[1:]), failed={never: "timeout"})
