"""The session gate: what happens in a new browser context before its first job.

Without ``[session] persist``: the session hook (``@router.session``, a login) runs
once per context, on the tab of the context's first job, inside that job's watchdog.

With it (:class:`~crawler.browser.saved.SavedSessions`), per new context of an
identity (``direct``, or its proxy):

1. a saved state of the identity, younger than ``state_ttl_s``, is restored (its
   cookies, its localStorage), and the session check (``@router.session_check``), if
   any, says whether it still works; if it does, the context is ready, no login;
2. otherwise (no state, too old, or the check said no: the state is taken out of the
   context again) the hook logs in, with the identity's login turn held (one login per
   identity at a time, in the process and across workers: a context that finds
   another one logging in waits for its state, then goes to 1), and the context's
   state is saved as the identity's;
3. a context whose session is retired (a block, ``page.retire_session``) has its
   state deleted, unless a newer login's replaced it (:meth:`SessionGate.retired`).

Why the check is written as the hook is (a handler that goes where it needs), not as
a URL to load: a check may need no page at all (a cookie's expiry), or a request of
its own (``page.fetch`` of an account API), and the user already writes the hook so.

Jobs that arrive in a context whose gate is running wait for it (FIFO); if it fails,
the job that ran it fails (retryable) and the next one tries again.  State is kept
per context id and dropped when the context is gone.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from contextlib import AbstractAsyncContextManager
from typing import Any

import attrs
import trio

import cdp
from crawler.browser.saved import SavedSessions, identity_of
from crawler.config import SessionSection
from crawler.errors import PageFailure, SessionRetired
from crawler.page.page import Page
from crawler.store.base import Store

log = logging.getLogger(__name__)

Handler = Callable[[Page], Awaitable[None]]
Check = Callable[[Page], Awaitable[Any]]  # truthy: the restored session still works


@attrs.frozen
class SessionGateStatistics:
    logins: int  # session hook runs that returned (a context logged in)
    restored: int  # contexts that restored a saved state (and passed the check, if any)
    checks_failed: int  # restored states the check said no to (false, or raised)


def saved_sessions(section: SessionSection, store: Store) -> SavedSessions | None:
    """The saved sessions of a crawl into ``store``: None unless ``[session] persist``."""
    return SavedSessions(store.session_states, section.state_ttl_s) if section.persist else None


class SessionGate:
    """Runs the session hook, or restores a saved login (see the module docstring),
    once per browser context, before the context's first job.  ``saved`` None: no
    saved sessions (each context runs the hook)."""

    def __init__(self, hook: Handler | None, check: Check | None = None, saved: SavedSessions | None = None):
        self.hook = hook
        self.check = check
        self.saved = saved
        self._logins = 0
        self._restored = 0
        self._checks_failed = 0
        self._ready: set[str] = set()
        self._locks: dict[str, trio.Lock] = {}
        self._warned: set[str] = set()  # identities said to have no state and no hook to make one

    def statistics(self) -> SessionGateStatistics:
        return SessionGateStatistics(self._logins, self._restored, self._checks_failed)

    async def ensure(
        self,
        tab: cdp.Tab,
        live_contexts: set[str],
        open_hook_page: Callable[[], AbstractAsyncContextManager[Page]],
    ) -> None:
        """Make ``tab``'s context ready for its jobs (see the module docstring), on a
        page opened by ``open_hook_page``; nothing if it is already.  Raises
        SessionRetired (the site refused the session), PageFailure ``session``
        (retryable: the hook failed, or the store), or the tab's CDP error.  Cancelled
        half-way: the context is not ready, and the next job starts over."""
        if self.hook is None and self.saved is None:
            return
        context_id = tab.context.id
        if context_id in self._ready:
            await self._prepare_tab(tab)
            return
        for gone in [c for c in self._locks if c not in live_contexts and c != context_id]:
            self._locks.pop(gone)
            self._ready.discard(gone)
        if self.saved is not None:
            self.saved.forget_contexts(live_contexts | {context_id})
        lock = self._locks.setdefault(context_id, trio.Lock())
        async with lock:
            if context_id in self._ready:  # made ready while this job waited
                await self._prepare_tab(tab)
                return
            async with open_hook_page() as page:
                try:
                    if self.saved is None:
                        await self._log_in(page)
                    else:
                        await self._restore_or_log_in(page, self.saved)
                except SessionRetired:
                    raise  # the site refused the session: the job retires it
                except PageFailure as exc:
                    raise PageFailure("session", exc.reason, retryable=True) from exc
                except cdp.CDPError:
                    raise  # the tab's or the browser's failure, not the hook's
                except Exception as exc:  # the user's hook, or the store
                    raise PageFailure("session", f"{type(exc).__name__}: {exc}", retryable=True) from exc
            self._ready.add(context_id)

    async def _prepare_tab(self, tab: cdp.Tab) -> None:
        """A later tab of a restored context gets its localStorage script."""
        if self.saved is not None:
            await self.saved.prepare_tab(tab)

    async def _log_in(self, page: Page) -> None:
        assert self.hook is not None
        await self.hook(page)
        self._logins += 1

    async def _restore_or_log_in(self, page: Page, saved: SavedSessions) -> None:
        identity = identity_of(page.session)
        rejected_at = float("-inf")  # a state saved at or before this failed its check here
        async with saved.turn(identity):
            while True:
                if self.hook is None:  # restoring only (a state imported by `crawler session import`)
                    state = await saved.load(identity, rejected_at)
                    if state is None:
                        if identity not in self._warned:
                            self._warned.add(identity)
                            log.warning("session %s: no usable saved state, and no session hook to log in", identity)
                        return
                else:
                    async with saved.login_lease(identity, rejected_at) as state:
                        if state is None:
                            await self._log_in(page)
                            await saved.save(identity, page.tab)
                            return
                await saved.restore(identity, page.tab, state)
                if await self._check(page, identity):
                    self._restored += 1
                    return
                self._checks_failed += 1
                rejected_at = state.saved_at
                await saved.unrestore(page.tab, state)

    async def _check(self, page: Page, identity: str) -> bool:
        """The session check's verdict on a restored state (True without a check).  An
        exception is a no, in one log line; CDP errors (the tab's) go on."""
        if self.check is None:
            return True
        try:
            verdict = bool(await self.check(page))
        except cdp.CDPError:
            raise
        except Exception as exc:
            log.info("session %s: the session check raised %s: %s; logging in again", identity, type(exc).__name__, exc)
            return False
        if not verdict:
            log.info(
                "session %s: the session check said the restored state no longer works; logging in again", identity
            )
        return verdict

    async def retired(self, context_id: str, reason: str) -> None:
        """The context's session was retired (``reason``): its saved state is deleted
        (see :meth:`crawler.browser.saved.SavedSessions.retired`).  Never raises."""
        if self.saved is not None:
            await self.saved.retired(context_id, reason)
