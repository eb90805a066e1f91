"""The tab pool: one browser's contexts and tabs, leased to jobs one at a time.

Ownership: the pool owns every tab and context it created; a job holds a tab only
inside ``async with pool.lease()``.  On exit of that block the tab is either given
back (idle, for the next lease) or closed and replaced, and that decision and the
cleanup happen there, once, shielded and bounded.  No other code path closes a
leased tab.  Counts (leases, live tabs, contexts) are the sizes of the sets the pool
holds, never counters moved up and down on separate paths.

Why recycle a tab every N pages: a page reused for hundreds of navigations keeps
accumulating DOM, listeners and caches (the seeds' workers died near 400 pages);
closing the target frees its renderer's memory.  Why rotate the context every M
pages: caches, cookies and storage live in the context, and disposing it is the only
way to drop them all (Playwright's maintainers give the same advice).

Every page renders as a user's would (see ``crawler.page.open_page``): each tab is
alone in a window of its own, and its page is told it is the visible, focused tab
(focus emulation), so requestAnimationFrame and IntersectionObserver run and lazy
images load; a page in a hidden tab runs neither, and a crawler that hides its tabs
finds less than a user sees.  The window itself stays minimised (nothing rastered)
unless a job scrolls or points.  An idle tab is minimised and its page's scripts are
stopped (see ``_stop_idle_page``) until its next job navigates.

How the two meet: a context's M pages are handed out to its tabs as they open, each
tab an allotment of N pages or what is left of M.  Once all M are handed out the
context takes no new tab (it has rotated: the next tab opens in a new context), its
tabs serve out their allotments, and it is disposed when its last tab closes.  So a
context serves at most M pages and no tab is cut short by a rotation: every tab
costs Chromium a renderer process, and closing all C leased tabs at each rotation
had doubled the renderers a crawl starts at concurrency 8 (benchmarks/compare.py).
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager

import trio

import cdp
from crawler._trio import open_service_nursery
from crawler.browser.pool_stats import Holdings, InvariantReport, PoolStatistics

log = logging.getLogger(__name__)

POPUP_CLOSE_TIMEOUT_S = 5.0

# The seed's table: pages per tab before recycling, by memory available to the browser.
AUTO_RECYCLE = ((4096, 4), (8192, 8), (16384, 12))  # (up to MiB, pages)
AUTO_RECYCLE_MAX = 15


def auto_recycle_every(budget_mb: int) -> int:
    """Pages per tab for a memory budget: 3-5 on 4 GB, 5-10 on 8 GB, 10-15 on 16 GB."""
    for limit_mb, pages in AUTO_RECYCLE:
        if budget_mb <= limit_mb:
            return pages
    return AUTO_RECYCLE_MAX


class _ContextSlot:
    """A browser context and the tabs the pool holds in it."""

    def __init__(self, context: cdp.BrowserContext):
        self.context = context
        self.tabs: set[_PooledTab] = set()
        self.opening = 0  # tabs whose Target.createTarget is in flight (not yet in ``tabs``)
        self.pages = 0
        self.allotted = 0  # pages handed out to the tabs opened in it
        self.retired = False  # its session was retired: its tabs serve no more pages


class _PooledTab:
    def __init__(self, tab: cdp.Tab, slot: _ContextSlot, allotment: int):
        self.tab = tab
        self.slot = slot
        self.allotment = allotment  # pages this tab may serve (its share of the context's)
        self.pages = 0


class Lease:
    """One job's exclusive hold on one tab. Created by :meth:`TabPool.lease`, released once by :meth:`TabPool.release`."""

    def __init__(self, pooled: _PooledTab, number: int, serves_page: bool = True):
        self._pooled = pooled
        self.number = number
        self.serves_page = serves_page  # counted against the tab's and context's pages
        self.discard_reason: str | None = None
        self.retire_reason: str | None = None
        self.released = False

    @property
    def tab(self) -> cdp.Tab:
        return self._pooled.tab

    @property
    def pages(self) -> int:
        """Pages this tab served before this lease."""
        return self._pooled.pages

    def discard(self, reason: str) -> None:
        """Close the tab instead of giving it back when the lease ends."""
        self.discard_reason = self.discard_reason or reason

    def retire_context(self, reason: str) -> None:
        """Close the tab, and drain the tab's context (no new job in it; disposed once
        its last tab is closed) when the lease ends: its session was retired."""
        self.discard(reason)
        self.retire_reason = self.retire_reason or reason


class TabPool:
    """Leases tabs of one browser. Create it with :func:`open_pool`."""

    def __init__(
        self,
        browser: cdp.Browser,
        *,
        concurrency: int,
        recycle_tab_every: int,
        rotate_context_every: int,
        prepare_tab: Callable[[cdp.Tab], Awaitable[None]],
        tab_close_timeout_s: float = 5.0,
        context_dispose_timeout_s: float = 10.0,
        create_context: Callable[[cdp.Browser], Awaitable[cdp.BrowserContext]] | None = None,
    ):
        self.browser = browser
        self._create_context = create_context  # the session pool's (proxy, cookies); None: a plain context
        self.recycle_tab_every = recycle_tab_every
        self.rotate_context_every = rotate_context_every
        self._prepare_tab = prepare_tab
        self._tab_close_timeout_s = tab_close_timeout_s
        self._context_dispose_timeout_s = context_dispose_timeout_s
        self._capacity = trio.CapacityLimiter(concurrency)
        self._slots: set[_ContextSlot] = set()
        self._current: _ContextSlot | None = None
        self._context_lock = trio.Lock()
        self._opening_context = False  # Target.createBrowserContext in flight
        self._idle: list[_PooledTab] = []
        self._leases: dict[int, Lease] = {}
        self._lease_numbers = 0
        self.leases_released = 0
        self.tabs_opened = 0
        self.tabs_recycled = 0
        self.tabs_discarded = 0
        self.contexts_rotated = 0
        self.contexts_retired = 0
        self.popups_closed = 0
        self.on_tab_retired: Callable[[cdp.Tab, int], Awaitable[None]] | None = None

    # -- derived counts ------------------------------------------------------------------

    @property
    def context_ids(self) -> set[str]:
        return {slot.context.id for slot in self._slots}

    @property
    def concurrency(self) -> int:
        return int(self._capacity.total_tokens)

    def set_concurrency(self, value: int) -> None:
        """Change how many leases may be held at once (the memory throttle).  Leases
        already held run to their end; idle tabs beyond the new limit are closed at
        their next return."""
        self._capacity.total_tokens = max(1, value)

    def statistics(self) -> PoolStatistics:
        return PoolStatistics(
            leases=len(self._leases),
            tabs=sum(len(slot.tabs) for slot in self._slots),
            idle_tabs=len(self._idle),
            contexts=len(self._slots),
            leases_acquired=self._lease_numbers,
            leases_released=self.leases_released,
            tabs_opened=self.tabs_opened,
            tabs_recycled=self.tabs_recycled,
            tabs_discarded=self.tabs_discarded,
            contexts_rotated=self.contexts_rotated,
            contexts_retired=self.contexts_retired,
            popups_closed=self.popups_closed,
            concurrency=self.concurrency,
            recycle_tab_every=self.recycle_tab_every,
        )

    # -- leasing -------------------------------------------------------------------------

    @asynccontextmanager
    async def lease(self, *, serves_page: bool = True) -> AsyncIterator[Lease]:
        """Hold one tab for one job.  ``serves_page=False``: the job loads no page in the
        tab (an HTTP job, which needs only the tab's context: its cookies, its session),
        so the lease does not count against the tab's or the context's pages.

        Waits while ``concurrency`` leases are held.  On exit the tab is given back,
        or closed if the body raised or was cancelled (a watchdog expiry: the tab may
        be hung mid-navigation), if the tab crashed, if it served ``recycle_tab_every``
        pages or its share of its context's ``rotate_context_every``, or if
        ``discard()`` was called.  That exit
        work is shielded and bounded by the tab-close and context-dispose deadlines.
        """
        async with self._capacity:
            pooled = await self._take_tab()
            self._lease_numbers += 1
            lease = Lease(pooled, self._lease_numbers, serves_page)
            self._leases[lease.number] = lease
            try:
                yield lease
            except BaseException as exc:
                lease.discard("cancelled" if isinstance(exc, trio.Cancelled) else type(exc).__name__)
                raise
            finally:
                with trio.move_on_after(self._tab_close_timeout_s + self._context_dispose_timeout_s, shield=True):
                    await self.release(lease)

    async def _take_tab(self) -> _PooledTab:
        # Idle tabs of a rotated context first, so that it finishes and is disposed.
        self._idle.sort(key=lambda p: p.slot is not self._current)
        while self._idle:
            pooled = self._idle.pop(0)
            if pooled.tab.error is not None:
                await self._retire(pooled, "stale")
            elif (reason := self._spent(pooled)) is not None:  # the interval was lowered while it was idle
                await self._retire(pooled, reason)
            else:
                return pooled
        slot, allotment = await self._allot()
        slot.opening += 1
        try:
            tab = await slot.context.create_tab()
        finally:
            slot.opening -= 1
        pooled = _PooledTab(tab, slot, allotment)
        slot.tabs.add(pooled)
        self.tabs_opened += 1
        try:
            await self._prepare_tab(tab)
        except BaseException:
            with trio.move_on_after(self._tab_close_timeout_s, shield=True):
                await self._retire(pooled, "setup failed")
            raise
        return pooled

    async def _allot(self) -> tuple[_ContextSlot, int]:
        """The context the next tab opens in, and that tab's allotment of pages.  The
        context that hands out its last pages rotates: the next tab opens in a new one."""
        async with self._context_lock:
            if self._current is None:
                self._opening_context = True
                try:
                    create = self._create_context
                    context = await (create(self.browser) if create is not None else self.browser.create_context())
                    self._current = _ContextSlot(context)
                finally:
                    self._opening_context = False
                self._slots.add(self._current)
            slot = self._current
            allotment = min(self.recycle_tab_every, self.rotate_context_every - slot.allotted)
            slot.allotted += allotment
            if slot.allotted >= self.rotate_context_every:
                self._current = None
                self.contexts_rotated += 1
            return slot, allotment

    def _spent(self, pooled: _PooledTab) -> str | None:
        """Why this tab has served its last page, if it has: ``recycled`` (its own
        interval), ``rotated`` (the rest of its context's pages went to other tabs) or
        ``retired`` (its context's session was)."""
        if pooled.slot.retired:
            return "retired"
        if pooled.pages >= self.recycle_tab_every:
            return "recycled"
        if pooled.pages >= pooled.allotment:
            return "rotated"
        return None

    async def release(self, lease: Lease) -> None:
        """Return or retire the lease's tab now, rather than at the end of its block.

        Idempotent: it runs once per lease, and a second call, or the block's own exit
        after it, does nothing.  Not shielded: :meth:`lease` calls it shielded and
        bounded; a caller of its own should do the same."""
        if lease.released:
            return
        lease.released = True
        del self._leases[lease.number]
        self.leases_released += 1
        pooled = lease._pooled
        slot = pooled.slot
        if lease.serves_page:
            pooled.pages += 1
            slot.pages += 1
        if lease.retire_reason is not None and not slot.retired:
            # Its session was retired: no new tab opens in it, and no tab of it serves
            # another page (see _spent); it is disposed once its last tab is closed.
            slot.retired = True
            if slot is self._current:
                self._current = None
            self.contexts_retired += 1
        reason = lease.discard_reason
        if reason is None and pooled.tab.error is not None:
            reason = "crashed"
        if reason is None:
            reason = self._spent(pooled)
        if reason is None and len(self._idle) + len(self._leases) >= self.concurrency:
            reason = "throttled"
        if reason is None and not await self._stop_idle_page(pooled.tab):
            reason = "reset failed"
        if reason is None:
            self._idle.append(pooled)
        else:
            await self._retire(pooled, reason)
        if slot.retired:
            # Other leases of this slot may be released meanwhile (each retire awaits):
            # take its idle tabs one at a time, each out of the list before it is retired.
            while (idle := next((p for p in self._idle if p.slot is slot), None)) is not None:
                self._idle.remove(idle)
                await self._retire(idle, "retired")

    async def _stop_idle_page(self, tab: cdp.Tab) -> bool:
        """Stop the page of a tab going idle: no script of it runs any more
        (``Emulation.setScriptExecutionDisabled``: its timers, polling and callbacks
        stop), bounded by the tab-close deadline.  False if that failed (the tab is then
        retired).  The next job lets scripts run again before it navigates
        (``crawler.page.open_page``).

        Why: a page left running in an idle tab keeps its timers, polling and reloads
        going: requests to a URL already done, which no rate limit sees.  Two commands
        per page, where navigating to about:blank cost a whole navigation.  Not
        ``Page.setWebLifecycleState`` frozen: a page told it is the visible tab (focus
        emulation, see ``crawler.page.tab``) is not frozen, and switching the emulation
        off and on around every job cost 10-15% of the CPU per page on the light
        benchmark (the page re-renders as hidden, then as visible).
        That no data of this page is read under the next job is the next job's to
        ensure: it reads nothing before its own document is parsed, and counts only its
        own documents' responses (see ``crawler.page.traffic``)."""
        with trio.move_on_after(self._tab_close_timeout_s):
            try:
                await tab.set_visible(False)  # a job that scrolled showed it
                await tab.send("Emulation.setScriptExecutionDisabled", value=True)
            except (cdp.CDPError, trio.ClosedResourceError):
                return False
            return True
        return False

    async def _retire(self, pooled: _PooledTab, reason: str) -> None:
        """Close one tab; dispose its context if that was the context's last tab and
        the context takes no new ones (it rotated)."""
        if reason == "recycled":
            self.tabs_recycled += 1
        elif reason not in ("rotated", "retired", "stale", "throttled"):
            self.tabs_discarded += 1
        if self.on_tab_retired is not None and pooled.tab.error is None and reason == "recycled":
            with trio.move_on_after(1.0):
                await self.on_tab_retired(pooled.tab, pooled.pages)
        await pooled.tab.aclose(self._tab_close_timeout_s)
        slot = pooled.slot
        slot.tabs.discard(pooled)
        if slot is not self._current and not slot.tabs and not slot.opening:
            await self._dispose(slot)

    async def _dispose(self, slot: _ContextSlot) -> None:
        if slot in self._slots and not slot.context.closing:
            await slot.context.aclose(self._context_dispose_timeout_s)
            self._slots.discard(slot)

    async def aclose(self) -> None:
        """Close every idle tab and dispose every context. Leases must be over."""
        for pooled in self._idle:
            await self._retire(pooled, "stale")
        self._idle.clear()
        for slot in list(self._slots):
            for pooled in list(slot.tabs):
                await self._retire(pooled, "stale")
            await self._dispose(slot)
        self._current = None

    # -- invariants ----------------------------------------------------------------------

    async def check_invariants(self) -> InvariantReport:
        """Compare what the pool holds with ``Target.getTargets``/``getBrowserContexts``.

        The browser's lists take two commands to read, and tabs come and go meanwhile,
        so the pool's side is read both before and after them.  Resources in transit
        are not mismatches: a tab or context listed by the browser is stray only if the
        pool held it at neither reading (beyond the creations in flight then), and one
        the pool holds is missing only if it held it at both readings, not closing.
        Cancellation: safe anywhere (it only reads).
        """
        before = self.holdings()
        targets = await self.browser.targets()
        contexts = set((await self.browser.send("Target.getBrowserContexts"))["browserContextIds"])
        after = self.holdings()
        ours = before.contexts | after.contexts
        held = before.tabs | after.tabs
        pages = [t for t in targets if t.type == "page" and t.browser_context_id in ours]
        popups = {t.target_id for t in pages if t.opener_id and t.target_id not in held}
        browser_tabs = {t.target_id for t in pages} - popups
        stray_tabs = browser_tabs - held
        if len(stray_tabs) <= before.opening_tabs + after.opening_tabs:
            stray_tabs = set()
        stray_contexts = contexts - ours
        if len(stray_contexts) <= before.opening_contexts + after.opening_contexts:
            stray_contexts = set()
        steady_tabs = (before.tabs & after.tabs) - before.closing_tabs - after.closing_tabs
        steady_contexts = (before.contexts & after.contexts) - before.closing_contexts - after.closing_contexts
        return InvariantReport(
            leases=len(self._leases),
            tabs=len(after.tabs),
            browser_tabs=len(browser_tabs),
            contexts=len(after.contexts),
            browser_contexts=len(contexts),
            stray_tabs=tuple(sorted(stray_tabs)),
            missing_tabs=tuple(sorted(steady_tabs - browser_tabs)),
            stray_contexts=tuple(sorted(stray_contexts)),
            missing_contexts=tuple(sorted(steady_contexts - contexts)),
            popups=tuple(sorted(popups)),
        )

    def holdings(self) -> Holdings:
        """The ids of what the pool holds now, and the creations in flight (never blocks)."""
        pooled = [p for slot in self._slots for p in slot.tabs]
        return Holdings(
            tabs=frozenset(p.tab.target_id for p in pooled),
            closing_tabs=frozenset(p.tab.target_id for p in pooled if p.tab.closing),
            opening_tabs=sum(slot.opening for slot in self._slots),
            contexts=frozenset(self.context_ids),
            closing_contexts=frozenset(slot.context.id for slot in self._slots if slot.context.closing),
            opening_contexts=int(self._opening_context),
            context_tabs=frozenset(tab.target_id for slot in self._slots for tab in slot.context.tabs),
        )

    # -- popups --------------------------------------------------------------------------

    async def run_popup_closer(self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        """Close every page that a page of ours opened (``window.open``), as it appears.
        Never raises; ends when the browser connection does."""
        try:
            async with self.browser.listen("Target.targetCreated") as events:
                task_status.started()
                async for event in events:
                    info = event.params.get("targetInfo", {})
                    if (
                        info.get("type") == "page"
                        and info.get("openerId")
                        and info.get("browserContextId") in self.context_ids
                    ):
                        try:
                            closed = await self.browser.close_target(info["targetId"], timeout_s=POPUP_CLOSE_TIMEOUT_S)
                        except cdp.CDPError as exc:
                            log.warning("popup %s could not be closed: %s", info["targetId"], exc)
                            continue
                        if closed:
                            self.popups_closed += 1
        except cdp.CDPError:
            pass


@asynccontextmanager
async def open_pool(browser: cdp.Browser, **options) -> AsyncIterator[TabPool]:
    """A :class:`TabPool` on ``browser`` with its popup closer running; on exit every
    tab and context of the pool is closed (shielded, bounded).  Owns one task."""
    pool = TabPool(browser, **options)
    async with open_service_nursery() as nursery:
        await nursery.start(pool.run_popup_closer)
        try:
            yield pool
        finally:
            budget = pool._tab_close_timeout_s * 2 + pool._context_dispose_timeout_s
            with trio.move_on_after(budget, shield=True):
                await pool.aclose()
            nursery.cancel_scope.cancel()
