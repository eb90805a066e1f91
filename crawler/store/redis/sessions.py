"""Saved session states in Redis (the :class:`~crawler.store.base.SessionStates`
contract), shared by every worker of the crawl, and the login leases that let one
worker at a time log in for an identity.

Keys (``P`` the crawl's prefix, see :mod:`crawler.store.redis.store`):

=========================  ======================================================
``P sessions``             hash: identity -> the state (Playwright's storage-state
                           JSON: a secret)
``P session_saved``        hash: identity -> when it was saved (unix time)
``P login:<identity>``     string: the login lease's token, expiring (``PX``)
=========================  ======================================================

A lease expires on the server's clock: a worker that dies while it logs in stops
renewing, and once its lease has expired another worker takes it.  Every step is one
script (:mod:`crawler.store.redis.scripts`), atomic on the server, and safe to run
twice (the client retries a call whose connection broke); each waits for a Redis that
is away, as the store's other calls do (see :func:`crawler.store.redis.crawl.translated`).
"""

from __future__ import annotations

import json
import secrets
from typing import Any

from crawler.store.base import SavedState
from crawler.store.redis.crawl import RedisCrawl, translated
from crawler.store.redis.layout import RedisLayoutError


class RedisSessionStates:
    """The saved states and login leases of the crawl ``redis`` reaches."""

    def __init__(self, redis: RedisCrawl):
        self.redis = redis
        self.link = redis.link
        self._keys = [redis.key("sessions"), redis.key("session_saved")]

    def _lease_key(self, identity: str) -> str:
        return self.redis.key(f"login:{identity}")

    @translated
    async def load(self, identity: str) -> SavedState | None:
        reply = await self.redis.run_on("session_load", self._keys, [identity])
        if not reply:
            return None
        state, saved_at = reply
        try:
            value = json.loads(state)
            if not isinstance(value, dict):
                raise ValueError(f"expected a JSON object, got {type(value).__name__}")
            return SavedState(value, float(saved_at))
        except (ValueError, TypeError) as exc:  # never the value itself: it is a secret
            raise RedisLayoutError(f"{self._keys[0]} {identity}: not a saved state: {type(exc).__name__}") from None

    @translated
    async def save(self, identity: str, state: dict[str, Any], saved_at: float) -> None:
        text = json.dumps(state, ensure_ascii=False, separators=(",", ":"))
        await self.redis.run_on("session_save", self._keys, [identity, text, repr(float(saved_at))])

    @translated
    async def delete(self, identity: str, saved_at: float | None = None) -> bool:
        when = "" if saved_at is None else repr(float(saved_at))
        return bool(int(await self.redis.run_on("session_delete", self._keys, [identity, when])))

    @translated
    async def identities(self) -> list[str]:
        return sorted(await self.redis.client.hkeys(self._keys[0]))

    @translated
    async def clear(self) -> int:
        return int(await self.redis.run_on("session_clear", self._keys, []))

    async def acquire_lease(self, identity: str, ttl_s: float) -> str | None:
        token = secrets.token_hex(8)  # drawn once: a retried call asks for the same lease
        return token if await self._acquire(identity, token, ttl_s) else None

    @translated
    async def _acquire(self, identity: str, token: str, ttl_s: float) -> bool:
        return bool(int(await self.redis.run_on("login_acquire", [self._lease_key(identity)], [token, _ms(ttl_s)])))

    @translated
    async def renew_lease(self, identity: str, token: str, ttl_s: float) -> bool:
        return bool(int(await self.redis.run_on("login_renew", [self._lease_key(identity)], [token, _ms(ttl_s)])))

    @translated
    async def release_lease(self, identity: str, token: str) -> None:
        await self.redis.run_on("login_release", [self._lease_key(identity)], [token])


def _ms(seconds: float) -> str:
    return str(max(1, round(seconds * 1000)))
