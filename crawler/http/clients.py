"""The HTTP clients of a crawl's sessions: one per session, made when the session first
fetches over HTTP, closed once the session is over and no request of it is in flight."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager

import attrs

from crawler.http.client import HttpClient


@attrs.define(eq=False)
class _Entry:
    client: HttpClient
    users: int = 0
    over: bool = False  # the session ended: close the client when its last user leaves


class HttpClients:
    """Clients by session id.  Counts derived from what is held: a client is closed by
    the last user of an ended session, or by :meth:`aclose`, once."""

    def __init__(self) -> None:
        self._entries: dict[str, _Entry] = {}
        self.made = 0

    def __len__(self) -> int:
        return len(self._entries)

    @asynccontextmanager
    async def use(self, session_id: str, make: Callable[[], HttpClient]) -> AsyncIterator[HttpClient]:
        """The session's client (made by ``make`` on first use), held for the block.
        A session that ended meanwhile has its client closed as the block exits, if no
        other block holds it (shielded, bounded)."""
        entry = self._entries.get(session_id)
        if entry is None:
            entry = self._entries[session_id] = _Entry(make())
            self.made += 1
        entry.users += 1
        try:
            yield entry.client
        finally:
            entry.users -= 1
            if entry.over and entry.users == 0:
                await self._close(session_id, entry)

    async def end(self, session_id: str) -> None:
        """The session is over (retired, or its context gone): its client is closed now
        if idle, else by its last user."""
        entry = self._entries.get(session_id)
        if entry is not None:
            entry.over = True
            if entry.users == 0:
                await self._close(session_id, entry)

    async def _close(self, session_id: str, entry: _Entry) -> None:
        if self._entries.get(session_id) is entry:
            del self._entries[session_id]
        await entry.client.aclose()  # shielded and bounded

    async def aclose(self) -> None:
        """Close every client (the crawl is over); idempotent."""
        for session_id, entry in list(self._entries.items()):
            await self._close(session_id, entry)
