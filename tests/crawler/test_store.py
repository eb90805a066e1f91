"""The SQLite frontier: every transition is one transaction; done happens at most once."""

from __future__ import annotations

import pytest

from crawler.store import Job, SqliteStore


@pytest.fixture
def store(tmp_path):
    s = SqliteStore(tmp_path / "s.db")
    yield s
    s.close()


async def test_duplicates_are_one_row_and_claims_go_in_order(store):
    assert await store.add_urls(["http://a/1", "http://a/2", "http://a/1"]) == 2
    assert await store.add_urls(["http://a/2", "http://a/3"]) == 1
    jobs = [await store.claim() for _ in range(4)]
    assert [j.url for j in jobs[:3]] == ["http://a/1", "http://a/2", "http://a/3"] and jobs[3] is None
    assert all(j.attempt == 1 for j in jobs[:3])
    assert (await store.counts())["in_progress"] == 3


async def test_complete_is_atomic_and_happens_once(store):
    await store.add_urls(["http://a/1"])
    job = await store.claim()
    assert await store.complete(job, {"url": job.url, "x": 1}, 200, 0.5)
    assert not await store.complete(job, {"url": job.url, "x": 2}, 200, 0.5)  # not in progress any more
    assert list(await store.items()) == [{"url": "http://a/1", "x": 1}]
    (done_count,) = store._db.execute("SELECT done_count FROM frontier").fetchone()
    assert done_count == 1


async def test_a_job_that_is_no_longer_held_cannot_be_completed(store):
    """A stale job object (its row released and claimed again) cannot write twice."""
    await store.add_urls(["http://a/1"])
    first = await store.claim()
    await store.release(first)
    second = await store.claim()
    assert await store.complete(second, {"url": second.url}, 200, 0.1)
    assert not await store.complete(first, {"url": first.url, "stale": True}, 200, 0.1)
    assert list(await store.items()) == [{"url": "http://a/1"}]


async def test_retry_later_waits_and_counts_attempts(store):
    await store.add_urls(["http://a/1"])
    job = await store.claim()
    await store.retry_later(job, "timeout: no item", 3600, None)
    assert await store.claim() is None
    assert 3500 < await store.next_ready_in() <= 3600
    store._db.execute("UPDATE frontier SET next_attempt_at = 0")
    again = await store.claim()
    assert again.attempt == 2
    await store.fail(again, "timeout: no item")
    assert await store.next_ready_in() is None
    assert await store.failures_by_reason() == {"timeout": 1}


async def test_recover_puts_interrupted_rows_back_without_charging_the_attempt(store):
    """After a kill, rows left in progress are pending again with the attempt undone."""
    await store.add_urls(["http://a/1", "http://a/2"])
    await store.claim()
    await store.claim()
    assert await store.recover() == 2
    assert (await store.counts())["pending"] == 2
    job = await store.claim()
    assert job.attempt == 1


async def test_state_survives_reopening(tmp_path):
    path = tmp_path / "s.db"
    first = SqliteStore(path)
    await first.add_urls(["http://a/1", "http://a/2"])
    job = await first.claim()
    await first.complete(job, {"url": job.url}, 200, 0.1)
    first.close()
    second = SqliteStore(path)
    assert (await second.counts())["done"] == 1 and (await second.counts())["pending"] == 1
    await second.reset()
    assert sum((await second.counts()).values()) == 0
    second.close()


def test_job_is_a_value():
    assert Job(1, "u", 1) == Job(1, "u", 1)
