"""The "store unavailable" state machine (crawler.store.redis.link), on trio's MockClock with
a fake Redis: a ping that fails while the fake is away."""

from __future__ import annotations

import coredis.exceptions
import pytest
import trio

from crawler.store.redis.link import RECONNECT_BACKOFF_S, RedisAway, RedisLink, RedisUnavailable


class FakeRedis:
    def __init__(self) -> None:
        self.away = False
        self.calls = 0
        self.back_at: list[float] = []  # when on_back ran

    async def ping(self) -> None:
        if self.away:
            raise coredis.exceptions.ConnectionError("refused")

    async def command(self) -> str:
        self.calls += 1
        await self.ping()
        return "ok"

    async def on_back(self) -> None:
        self.back_at.append(trio.current_time())


def link_to(fake: FakeRedis, outage_s: float) -> RedisLink:
    return RedisLink("fake redis", outage_s, ping=fake.ping, on_back=fake.on_back)


async def test_a_call_waits_while_redis_is_away_and_runs_again_once_it_is_back(autojump_clock, nursery):
    """A call that cannot reach Redis waits; the link pings with a backoff, runs
    on_back once Redis answers, and only then lets the waiting call run again."""
    fake = FakeRedis()
    link = link_to(fake, outage_s=60.0)
    nursery.start_soon(link.run)
    fake.away = True

    async def back_after(delay_s: float) -> None:
        await trio.sleep(delay_s)
        fake.away = False

    nursery.start_soon(back_after, 3.0)
    started = trio.current_time()
    assert await link.call(fake.command) == "ok"
    assert link.up and link.outages == 1
    assert len(fake.back_at) == 1 and fake.back_at[0] - started >= 3.0
    assert trio.current_time() == fake.back_at[0]  # the call ran right after on_back
    assert fake.calls == 2
    # The backoff: pings after 0.1, 0.2, 0.4, 0.8, 1.6 s... the first one after 3 s is at 3.1 s.
    assert fake.back_at[0] - started == pytest.approx(sum(RECONNECT_BACKOFF_S[0] * 2**i for i in range(5)))


async def test_a_call_that_must_not_wait_raises_redis_away_at_once(autojump_clock, nursery):
    fake = FakeRedis()
    link = link_to(fake, outage_s=60.0)
    nursery.start_soon(link.run)
    fake.away = True
    with pytest.raises(RedisAway):
        await link.call(fake.command, wait=False)
    started = trio.current_time()
    with pytest.raises(RedisAway):
        await link.call(fake.command, wait=False)
    assert trio.current_time() == started and not link.up


async def test_redis_away_for_outage_s_gives_the_link_up_and_every_call_raises(autojump_clock, nursery):
    """Past outage_s every waiter wakes with RedisUnavailable (one line naming the
    limit), at outage_s after Redis went away, and later calls raise it at once."""
    fake = FakeRedis()
    link = link_to(fake, outage_s=5.0)
    nursery.start_soon(link.run)
    fake.away = True
    started = trio.current_time()
    with pytest.raises(RedisUnavailable) as caught:
        await link.call(fake.command)
    assert trio.current_time() - started == pytest.approx(5.0)
    assert "outage_s = 5 s" in str(caught.value) and "\n" not in str(caught.value)
    fake.away = False
    with pytest.raises(RedisUnavailable):
        await link.call(fake.command)
    assert link.given_up and fake.back_at == []


async def test_an_error_that_is_not_about_reaching_redis_is_not_an_outage(autojump_clock, nursery):
    """A script error raises StoreError at once and leaves the link up."""
    from crawler.errors import StoreError

    link = link_to(FakeRedis(), outage_s=5.0)
    nursery.start_soon(link.run)

    async def broken() -> None:
        raise coredis.exceptions.ResponseError("ERR user_script:1: bad")

    with pytest.raises(StoreError, match="ResponseError"):
        await link.call(broken)
    assert link.up and link.outages == 0
