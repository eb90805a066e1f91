"""What the tab pool (:mod:`crawler.browser.pool`) reports: its statistics, what it
holds at one instant, and its view checked against the browser's own lists.  Frozen
values, no behaviour; :mod:`crawler.browser.pool` re-exports them.
"""

from __future__ import annotations

import attrs


@attrs.frozen
class PoolStatistics:
    leases: int
    tabs: int
    idle_tabs: int
    contexts: int
    leases_acquired: int
    leases_released: int
    tabs_opened: int
    tabs_recycled: int
    tabs_discarded: int
    contexts_rotated: int
    contexts_retired: int
    popups_closed: int
    concurrency: int
    recycle_tab_every: int


@attrs.frozen
class InvariantReport:
    """Pool's view against the browser's own target list."""

    leases: int
    tabs: int
    browser_tabs: int
    contexts: int
    browser_contexts: int
    stray_tabs: tuple[str, ...]  # page targets in our contexts that the pool does not hold
    missing_tabs: tuple[str, ...]  # tabs the pool holds that the browser does not list
    stray_contexts: tuple[str, ...]
    missing_contexts: tuple[str, ...]
    popups: tuple[str, ...]  # page targets with an opener, awaiting the popup closer

    @property
    def ok(self) -> bool:
        return not (self.stray_tabs or self.missing_tabs or self.stray_contexts or self.missing_contexts)


@attrs.frozen
class Holdings:
    """What the pool holds at one instant, by id (:meth:`crawler.browser.pool.TabPool.holdings`)."""

    tabs: frozenset[str]
    closing_tabs: frozenset[str]
    opening_tabs: int
    contexts: frozenset[str]
    closing_contexts: frozenset[str]
    opening_contexts: int
    context_tabs: frozenset[str]  # tabs our contexts' own objects hold, the pool's or in transit
