"""The in-flight table and its claims (``crawler.run.claims.Claims``): one claim
serves every waiting worker and one round of the others, never past the run's limit;
jobs claimed ahead that no worker took go back to pending, uncharged."""

from __future__ import annotations

import trio

from crawler.run.claims import Claims
from crawler.store.sqlite import SqliteStore

URLS = [f"http://h{i % 3}.test/p/{i}" for i in range(20)]


async def test_one_claim_takes_a_round_ahead_and_the_next_workers_take_from_it(tmp_path):
    store = SqliteStore(tmp_path / "c.db")
    await store.add_urls(URLS)
    claims = Claims(store, limit=None)
    claims.workers = 4
    first = await claims.claim()
    assert first is not None and claims.claimed == 5 and len(claims) == 5  # one waiting + a round of 4
    taken = [await claims.claim() for _ in range(4)]
    assert claims.claimed == 5  # from the queue: no store call
    assert [first.url, *(j.url for j in taken)] == [URLS[0], URLS[1], URLS[2], URLS[3], URLS[4]]
    assert (await store.counts())["in_progress"] == 5


async def test_claims_never_pass_the_limit(tmp_path):
    store = SqliteStore(tmp_path / "c.db")
    await store.add_urls(URLS)
    claims = Claims(store, limit=3)
    claims.workers = 8
    got = [await claims.claim() for _ in range(5)]
    assert [j is not None for j in got] == [True, True, True, False, False]
    assert claims.claimed == 3 and claims.limit_reached()
    assert (await store.counts())["in_progress"] == 3


async def test_jobs_claimed_ahead_and_never_taken_go_back_to_pending_uncharged(tmp_path):
    store = SqliteStore(tmp_path / "c.db")
    await store.add_urls(URLS)
    claims = Claims(store, limit=None)
    claims.workers = 6
    job = await claims.claim()
    await claims.release_unstarted(5.0)
    assert claims.jobs() == [job]  # the taken one stays in flight, its worker's
    counts = await store.counts()
    assert counts["in_progress"] == 1 and counts["pending"] == len(URLS) - 1
    states = [await store.url_state(u) for u in URLS[1:7]]
    assert all(s["state"] == "pending" and s["attempts"] == 0 for s in states)


class CountingStore:
    """A store whose claim_many calls are counted (everything else passes through)."""

    def __init__(self, store):
        self.store, self.claim_calls = store, 0

    async def claim_many(self, avoid_hosts, n):
        self.claim_calls += 1
        await trio.sleep(0.01)  # a round trip, during which the other workers arrive
        return await self.store.claim_many(avoid_hosts, n)


async def test_workers_waiting_together_are_served_by_one_claim(tmp_path):
    store = CountingStore(SqliteStore(tmp_path / "c.db"))
    await store.store.add_urls(URLS)
    claims = Claims(store, limit=None)
    claims.workers = 1
    got = []

    async def worker():
        got.append(await claims.claim())

    async with trio.open_nursery() as nursery:
        for _ in range(6):
            nursery.start_soon(worker)
    assert len({j.id for j in got}) == 6
    assert store.claim_calls == 1  # the first claimer took one for each of the six waiting
