"""Saved sessions (``[session] persist``): a login's state kept in the crawl's store
per identity, put into new contexts instead of logging in again, and one login per
identity at a time.

The identity of a session is its proxy slot: ``direct``, or the proxy as
``scheme://host:port`` (as the logs and metrics name it).  A state belongs to an
identity rather than to one context because a site ties a login to the address it
came from: a state made through proxy A is not shown through proxy B.

One login per identity at a time:

- in a process, a turn per identity (:meth:`SavedSessions.turn`, FIFO): a second
  context of the identity waits for the first one's login, then restores what it
  saved;
- across workers, the store's login lease (:meth:`SavedSessions.login_lease`),
  taken for :data:`LOGIN_LEASE_S` and renewed every third of that while the login
  runs; the others poll the store every :data:`LOGIN_POLL_S` for the state it saves.
  A holder that dies stops renewing; its lease expires and the next one logs in.

``state_ttl_s`` counts from the save that followed a login (or an import): a state
restored is not saved again, so a site's refreshed cookies do not make an old login
look new.  0: no age limit (the session check, if any, is then what finds a state
that no longer works).  Ages are judged by this machine's clock (``time.time``).

A state is a secret: log lines name the identity and count cookies and origins, and
no value reaches a log line, an error, a metric or the status page.
"""

from __future__ import annotations

import logging
import time
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager

import trio

import cdp
from crawler._trio import open_service_nursery
from crawler.browser.context_state import (
    add_script,
    clear_state,
    local_storage_script,
    read_state,
    remove_script,
    restore_cookies,
)
from crawler.browser.session import DIRECT, PROXY_FAILURES, Session
from crawler.browser.storage_state import describe
from crawler.errors import StoreError
from crawler.store.base import SavedState, SessionStates

log = logging.getLogger(__name__)

LOGIN_LEASE_S = 30.0  # a login lease's life; renewed every third of it while the login runs
LOGIN_POLL_S = 0.2  # how often a context waiting for another worker's login looks for its state
STORE_CLEANUP_TIMEOUT_S = 5.0  # bound on a lease's release, a retired state's deletion (shielded)


def identity_of(session: Session | None) -> str:
    """A session's identity: its proxy (``scheme://host:port``), or ``direct``."""
    return session.proxy if session is not None and session.proxy else DIRECT


class SavedSessions:
    """The saved states of one crawl, in ``states`` (the store's), restored while they
    are younger than ``ttl_s`` (0: any age).  ``clock`` is the wall clock the ages are
    judged by (a seam for tests)."""

    def __init__(
        self,
        states: SessionStates,
        ttl_s: float = 0.0,
        *,
        lease_s: float = LOGIN_LEASE_S,
        poll_s: float = LOGIN_POLL_S,
        clock: Callable[[], float] = time.time,
    ):
        self._states = states
        self._ttl_s = ttl_s
        self._lease_s = lease_s
        self._poll_s = poll_s
        self._clock = clock
        self._locks: dict[str, trio.Lock] = {}
        self._in_use: dict[str, tuple[str, float]] = {}  # context id -> (identity, saved_at) of its state
        self._scripts: dict[str, _ContextScript] = {}  # context id -> its localStorage script, and the tabs with it

    def usable(self, saved: SavedState | None, rejected_at: float = float("-inf")) -> bool:
        """Whether ``saved`` may be restored: there is one, it is younger than
        ``ttl_s``, and it was saved after ``rejected_at`` (a state whose check failed)."""
        if saved is None or saved.saved_at <= rejected_at:
            return False
        return not self._ttl_s or self._clock() - saved.saved_at < self._ttl_s

    async def load(self, identity: str, rejected_at: float = float("-inf")) -> SavedState | None:
        """The identity's saved state if it is :meth:`usable`, else None."""
        saved = await self._states.load(identity)
        return saved if self.usable(saved, rejected_at) else None

    # -- one login per identity ------------------------------------------------------------

    @asynccontextmanager
    async def turn(self, identity: str) -> AsyncIterator[None]:
        """The identity's turn in this process (FIFO): a new context of it restores,
        checks and logs in while holding it, so that a second context waits for the
        first one's login, and a state that fails its check is checked once, not by
        every context opening at that moment.  Cancelled while waiting: not held."""
        async with self._locks.setdefault(identity, trio.Lock()):
            yield

    @asynccontextmanager
    async def login_lease(self, identity: str, rejected_at: float = float("-inf")) -> AsyncIterator[SavedState | None]:
        """Wait until a usable state of ``identity`` is saved (yields it: restore it), or
        this worker holds the identity's login lease in the store (yields None: log
        in, then :meth:`save`).  Meant inside :meth:`turn`.

        The lease is renewed by a task of the block's own while the block runs, and
        given up on exit (shielded, bounded).  Waiting, it polls the store every
        ``poll_s``.  Cancelled while waiting: nothing held.  Raises StoreError if the
        store fails."""
        saved, token = await self._wait_turn(identity, rejected_at)
        if token is None:
            yield saved
            return
        try:
            async with open_service_nursery() as nursery:  # the login's exception comes out as itself
                nursery.start_soon(self._keep_lease, identity, token)
                yield None
                nursery.cancel_scope.cancel()
        finally:
            with trio.move_on_after(STORE_CLEANUP_TIMEOUT_S, shield=True):
                try:
                    await self._states.release_lease(identity, token)
                except StoreError as exc:  # it expires on its own
                    log.info("session %s: login lease not given back (%s); it expires", identity, exc)

    async def _wait_turn(self, identity: str, rejected_at: float) -> tuple[SavedState | None, str | None]:
        """(a usable state, None), or (None, the login lease's token)."""
        waiting = False
        while True:
            saved = await self.load(identity, rejected_at)
            if saved is not None:
                return saved, None
            token = await self._states.acquire_lease(identity, self._lease_s)
            if token is not None:
                # Another worker may have saved its state between the look and the lease.
                saved = await self.load(identity, rejected_at)
                if saved is None:
                    return None, token
                await self._states.release_lease(identity, token)
                return saved, None
            if not waiting:
                waiting = True
                log.info("session %s: another worker is logging in; waiting for its state", identity)
            await trio.sleep(self._poll_s)

    async def _keep_lease(self, identity: str, token: str) -> None:
        """Renew the login lease every third of its life until cancelled; never raises
        (a lease lost only means another worker may log in too)."""
        while True:
            await trio.sleep(self._lease_s / 3)
            try:
                held = await self._states.renew_lease(identity, token, self._lease_s)
            except StoreError as exc:
                log.warning("session %s: login lease not renewed: %s", identity, exc)
                continue
            if not held:
                log.warning("session %s: login lease lost (expired); another worker may log in too", identity)
                return

    # -- saving, restoring, forgetting ------------------------------------------------------

    async def save(self, identity: str, tab: cdp.Tab) -> SavedState:
        """Read the state of ``tab``'s context after a login and save it as the
        identity's, now.  Raises CDP errors and StoreError (nothing saved then)."""
        state = await read_state(tab)
        saved = SavedState(state, self._clock())
        await self._states.save(identity, state, saved.saved_at)
        self._in_use[tab.context.id] = (identity, saved.saved_at)
        log.info("session %s: state saved (%s)", identity, describe(state))
        return saved

    async def restore(self, identity: str, tab: cdp.Tab, saved: SavedState) -> None:
        """Put ``saved`` into ``tab``'s context (a new one): its cookies now, its
        localStorage by a script on every tab of the context (see
        :mod:`crawler.browser.context_state`; :meth:`prepare_tab` adds it to the
        others).  Raises the tab's or the browser's CDP error."""
        await restore_cookies(tab.context, saved.state)
        script = local_storage_script(saved.state)
        if script is not None:
            self._scripts[tab.context.id] = _ContextScript(script)
            await self.prepare_tab(tab)
        self._in_use[tab.context.id] = (identity, saved.saved_at)
        age_s = self._clock() - saved.saved_at
        log.info("session %s: state restored (%s, saved %.0f s ago)", identity, describe(saved.state), age_s)

    async def prepare_tab(self, tab: cdp.Tab) -> None:
        """Give ``tab`` its context's localStorage script, if the context was restored
        and the tab has not got it yet (one command per tab, once)."""
        entry = self._scripts.get(tab.context.id)
        if entry is not None and tab.target_id not in entry.tabs:
            entry.tabs[tab.target_id] = (tab, await add_script(tab, entry.source))

    async def unrestore(self, tab: cdp.Tab, saved: SavedState) -> None:
        """Take a restored state out of ``tab``'s context (its check failed), so that
        the login runs as in a new context: its cookies and the localStorage of its
        origins cleared, its script taken off the context's tabs (so that it does not
        write the old items after the login).  Raises CDP errors."""
        entry = self._scripts.pop(tab.context.id, None)
        self._in_use.pop(tab.context.id, None)
        for other, identifier in entry.tabs.values() if entry is not None else ():
            if other is tab:
                await remove_script(tab, identifier)
            else:
                try:
                    await remove_script(other, identifier)
                except (cdp.CDPError, trio.ClosedResourceError):
                    pass  # a tab closed meanwhile takes its script with it
        await clear_state(tab, saved.state)

    async def retired(self, context_id: str, reason: str) -> None:
        """The context's session was retired: delete the state it was using (if it is
        still the identity's saved one: not a newer login's), unless the proxy itself
        failed (``proxy_auth``, ``proxy_error``: the state was not at fault).  Shielded
        and bounded; a store failure is logged, not raised."""
        used = self._in_use.pop(context_id, None)
        if used is None or reason in PROXY_FAILURES:
            return
        identity, saved_at = used
        with trio.move_on_after(STORE_CLEANUP_TIMEOUT_S, shield=True):
            try:
                if await self._states.delete(identity, saved_at):
                    log.info("session %s: saved state deleted (the session was retired: %s)", identity, reason)
            except StoreError as exc:
                log.warning("session %s: saved state of a retired session not deleted: %s", identity, exc)

    def forget_contexts(self, live_contexts: set[str]) -> None:
        """Drop what is kept of contexts that are gone."""
        for gone in [c for c in self._in_use if c not in live_contexts]:
            del self._in_use[gone]
        for gone in [c for c in self._scripts if c not in live_contexts]:
            del self._scripts[gone]


class _ContextScript:
    """A restored context's localStorage script, and the tabs that have it."""

    def __init__(self, source: str):
        self.source = source
        self.tabs: dict[str, tuple[cdp.Tab, str]] = {}  # target id -> (tab, the script's identifier there)
