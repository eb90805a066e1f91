"""One login per identity at a time (crawler.browser.saved.SavedSessions), on an
in-memory SessionStates under trio's MockClock: within a process (its turn), across
workers (the store's login lease, renewed while the login runs, expiring when its
holder dies), and which saved states may be restored (age, a failed check)."""

from __future__ import annotations

import secrets
from typing import Any

import pytest
import trio

from crawler.browser.saved import SavedSessions
from crawler.errors import SessionRetired
from crawler.store.base import SavedState

STATE = {"cookies": [], "origins": []}


class MemoryStates:
    """SessionStates in memory; leases expire on trio's clock."""

    def __init__(self) -> None:
        self.states: dict[str, SavedState] = {}
        self.leases: dict[str, tuple[str, float]] = {}
        self.renewals = 0

    async def load(self, identity: str) -> SavedState | None:
        await trio.lowlevel.checkpoint()
        return self.states.get(identity)

    async def save(self, identity: str, state: dict[str, Any], saved_at: float) -> None:
        await trio.lowlevel.checkpoint()
        self.states[identity] = SavedState(state, saved_at)

    async def delete(self, identity: str, saved_at: float | None = None) -> bool:
        saved = self.states.get(identity)
        if saved is None or (saved_at is not None and saved.saved_at != saved_at):
            return False
        del self.states[identity]
        return True

    async def identities(self) -> list[str]:
        return sorted(self.states)

    async def clear(self) -> int:
        n = len(self.states)
        self.states.clear()
        return n

    async def acquire_lease(self, identity: str, ttl_s: float) -> str | None:
        await trio.lowlevel.checkpoint()
        held = self.leases.get(identity)
        if held is not None and held[1] > trio.current_time():
            return None
        token = secrets.token_hex(4)
        self.leases[identity] = (token, trio.current_time() + ttl_s)
        return token

    async def renew_lease(self, identity: str, token: str, ttl_s: float) -> bool:
        await trio.lowlevel.checkpoint()
        held = self.leases.get(identity)
        if held is None or held[0] != token or held[1] <= trio.current_time():
            return False
        self.renewals += 1
        self.leases[identity] = (token, trio.current_time() + ttl_s)
        return True

    async def release_lease(self, identity: str, token: str) -> None:
        await trio.lowlevel.checkpoint()
        if self.leases.get(identity, ("",))[0] == token:
            del self.leases[identity]


async def log_in_or_restore(
    saved: SavedSessions, states: MemoryStates, login_s: float, log: list[tuple[str, float]]
) -> None:
    """What the session gate does with a turn: log in (``login_s``, then save), or
    take the state saved by another; ``log`` gets ("login" | "restore", time)."""
    async with saved.turn("direct"), saved.login_lease("direct") as state:
        if state is None:
            await trio.sleep(login_s)
            await states.save("direct", STATE, trio.current_time())
            log.append(("login", trio.current_time()))
        else:
            log.append(("restore", trio.current_time()))


async def test_a_second_context_waits_for_the_first_ones_login_and_restores_its_state(autojump_clock):
    """Two contexts of one identity in one process: the first logs in (5 s), the second
    waits for its turn and restores the state the first saved, at once, without polling."""
    states = MemoryStates()
    saved = SavedSessions(states, clock=trio.current_time)
    log: list[tuple[str, float]] = []
    async with trio.open_nursery() as nursery:
        nursery.start_soon(log_in_or_restore, saved, states, 5.0, log)
        nursery.start_soon(log_in_or_restore, saved, states, 5.0, log)
    assert log == [("login", 5.0), ("restore", 5.0)]


async def test_across_workers_one_logs_in_under_a_renewed_lease_and_the_other_waits_for_its_state(autojump_clock):
    """Two workers (two SavedSessions on one store): a login of 35 s outlives the 30 s
    lease, which is renewed every 10 s, so the other worker never takes it; it polls
    and restores the state within a poll of its save."""
    states = MemoryStates()
    first = SavedSessions(states, lease_s=30.0, poll_s=0.5, clock=trio.current_time)
    second = SavedSessions(states, lease_s=30.0, poll_s=0.5, clock=trio.current_time)
    log: list[tuple[str, float]] = []
    async with trio.open_nursery() as nursery:
        nursery.start_soon(log_in_or_restore, first, states, 35.0, log)
        await trio.sleep(1.0)
        nursery.start_soon(log_in_or_restore, second, states, 35.0, log)
    assert log[0] == ("login", 35.0)
    assert log[1][0] == "restore" and 35.0 <= log[1][1] <= 35.5
    assert states.renewals == 3  # at 10, 20 and 30 s
    assert states.leases == {}  # given back


async def test_a_lease_its_dead_holder_no_longer_renews_expires_and_the_waiting_worker_logs_in(autojump_clock):
    """A worker died holding the lease (30 s, never renewed, no state saved): the next
    one waits until it expires, then logs in."""
    states = MemoryStates()
    assert await states.acquire_lease("direct", 30.0) is not None
    saved = SavedSessions(states, poll_s=0.5, clock=trio.current_time)
    log: list[tuple[str, float]] = []
    await log_in_or_restore(saved, states, 2.0, log)
    assert log == [("login", 32.0)]


async def test_a_state_is_usable_while_younger_than_ttl_s_and_newer_than_one_whose_check_failed(autojump_clock):
    states = MemoryStates()
    saved = SavedSessions(states, ttl_s=60.0, clock=trio.current_time)
    await trio.sleep(100.0)
    state = SavedState(STATE, 50.0)
    assert saved.usable(state)
    assert not saved.usable(state, rejected_at=50.0)
    assert saved.usable(state, rejected_at=49.0)
    await trio.sleep(10.0)  # 60 s old
    assert not saved.usable(state)
    assert not saved.usable(None)
    assert SavedSessions(states, ttl_s=0.0, clock=trio.current_time).usable(SavedState(STATE, -1e9))
    await states.save("direct", STATE, 50.0)
    assert await saved.load("direct") is None  # too old
    await states.save("direct", STATE, trio.current_time())
    assert await saved.load("direct") is not None


async def test_a_failed_login_comes_out_as_itself_and_gives_the_lease_back(autojump_clock):
    """The login's exception leaves the lease's block as itself (not in an exception
    group: the gate tells a retired session from a failed hook by its type), and the
    lease is free at once for the next try."""
    states = MemoryStates()
    saved = SavedSessions(states, clock=trio.current_time)
    with pytest.raises(SessionRetired):
        async with saved.turn("direct"), saved.login_lease("direct") as state:
            assert state is None
            raise SessionRetired("status_403")
    assert states.leases == {}
    assert await states.acquire_lease("direct", 30.0) is not None
