"""A lease is released exactly once: a second release is impossible, not merely absent.

The seed's post-mortem: a watchdog, a ``finally`` and a ``disconnected`` handler each
decremented one counter.  Here every path out of a lease goes through
``TabPool.release``, which runs once per lease: calling it again, for a tab given
back or one retired, changes no count, gives no tab back twice and closes none twice.
"""

from __future__ import annotations

import pytest
import trio

import cdp
from crawler.browser.pool import open_pool

pytestmark = pytest.mark.chromium


async def no_setup(tab: cdp.Tab) -> None:
    await trio.lowlevel.checkpoint()


@pytest.fixture
async def pool():
    async with (
        cdp.launch() as browser,
        open_pool(browser, concurrency=2, recycle_tab_every=10, rotate_context_every=10, prepare_tab=no_setup) as pool,
    ):
        yield pool


async def test_releasing_a_returned_lease_again_changes_nothing(pool):
    """A lease whose tab went back to the pool, released a second time: the statistics
    are unchanged and the tab is idle once, so the next two leases get it and a new tab."""
    async with pool.lease() as lease:
        tab = lease.tab
    before = pool.statistics()
    assert (before.leases_acquired, before.leases_released, before.leases, before.idle_tabs) == (1, 1, 0, 1)
    await pool.release(lease)
    await pool.release(lease)
    assert pool.statistics() == before
    held: list[cdp.Tab] = []
    both = trio.Event()

    async def hold_one() -> None:
        async with pool.lease() as held_lease:
            held.append(held_lease.tab)
            if len(held) == 2:
                both.set()
            await both.wait()

    async with trio.open_nursery() as nursery:
        nursery.start_soon(hold_one)
        nursery.start_soon(hold_one)
    assert tab in held and len(set(held)) == 2  # one lease got it; the other a new tab
    stats = pool.statistics()
    assert stats.leases_acquired == stats.leases_released == 3 and stats.tabs_opened == 2


async def test_releasing_a_retired_lease_again_closes_nothing_twice(pool):
    """A lease discarded on release (its tab closed), released a second time: no second
    close, no count moves, the closed tab is never leased again."""
    async with pool.lease() as lease:
        lease.discard("test")
        tab = lease.tab
    assert tab.closed and tab.context.browser.leaked_tabs == 0
    before = pool.statistics()
    assert before.tabs_discarded == 1 and before.tabs == 0
    await pool.release(lease)
    assert pool.statistics() == before and tab.context.browser.leaked_tabs == 0
    async with pool.lease() as again:
        assert again.tab is not tab


async def test_a_release_inside_the_block_makes_the_exit_a_no_op(pool):
    """Released from inside its block (as a second cleanup path would), the lease's own
    exit then does nothing: acquired and released stay one each, the lease is gone
    from the pool once, and its tab is idle once."""
    async with pool.lease() as lease:
        await pool.release(lease)
        assert pool.statistics().leases == 0
    stats = pool.statistics()
    assert (stats.leases_acquired, stats.leases_released, stats.leases, stats.idle_tabs) == (1, 1, 0, 1)


async def test_a_cancelled_lease_is_released_once_and_its_tab_closed(pool):
    """The body cancelled (a watchdog): the exit closes the tab, once; releasing again
    changes nothing."""
    with trio.CancelScope() as watchdog:
        async with pool.lease() as lease:
            watchdog.cancel()
            await trio.sleep_forever()
    assert watchdog.cancelled_caught
    assert lease.released and lease.tab.closed
    before = pool.statistics()
    assert before.leases_acquired == before.leases_released == 1 and before.tabs_discarded == 1
    await pool.release(lease)
    assert pool.statistics() == before
