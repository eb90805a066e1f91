"""The Redis store's transitions, one at a time, against a real redis-server."""

from __future__ import annotations

import pytest
import trio

from crawler import redis_store
from crawler.config import ConfigError
from crawler.redis_store import open_redis_store
from tests.redis.conftest import make_redis_config

URLS = [f"http://shop.test/product/{i}" for i in range(1, 6)]
ITEM = {"url": URLS[0], "name": "Tee #1", "price": "₩9,900"}


@pytest.fixture
def cfg(redis_server, crawl_name):
    return make_redis_config(redis_server, crawl_name, URLS, store={"lease_s": 0.5}, retry={"max_attempts": 2})


async def test_add_urls_counts_each_url_once_across_workers(cfg):
    """The same URL added twice, by one worker or two, is one pending URL."""
    async with open_redis_store(cfg) as a, open_redis_store(cfg) as b:
        assert await a.add_urls(URLS[:3]) == 3
        assert await b.add_urls(URLS + URLS) == 2
        assert await a.counts() == {"pending": 5, "in_progress": 0, "done": 0, "failed": 0}


async def test_claim_takes_fresh_urls_in_order_then_none(cfg):
    """Fresh URLs are claimed in the order they were added, each once; then claim
    returns None and next_ready_in says how long until a lease may expire."""
    async with open_redis_store(cfg) as store:
        await store.add_urls(URLS)
        jobs = [await store.claim() for _ in URLS]
        assert [j.url for j in jobs] == URLS
        assert [j.attempt for j in jobs] == [1] * 5
        assert len({j.token for j in jobs}) == 5
        assert await store.claim() is None
        assert await store.counts() == {"pending": 0, "in_progress": 5, "done": 0, "failed": 0}
        ready_in = await store.next_ready_in()
        assert ready_in is not None and 0 < ready_in <= cfg.store.lease_s


async def test_next_ready_in_is_none_only_when_nothing_is_pending_or_in_progress(cfg):
    async with open_redis_store(cfg) as store:
        assert await store.next_ready_in() is None
        await store.add_urls(URLS[:1])
        assert await store.next_ready_in() == 0
        job = await store.claim()
        assert await store.next_ready_in() is not None  # held: it may still come back
        assert await store.complete(job, ITEM, 200, 0.1)
        assert await store.next_ready_in() is None


async def test_complete_stores_item_and_counts_done_once(cfg):
    """complete marks done and stores the item in one step; the per-URL done counter
    is 1; a retried complete of the same token is True and changes nothing."""
    async with open_redis_store(cfg) as store:
        await store.add_urls(URLS[:1])
        job = await store.claim()
        assert await store.complete(job, ITEM, 200, 0.25)
        assert await store.complete(job, ITEM, 200, 0.25)  # the same call retried
        state = await store.url_state(job.url)
        assert state["state"] == "done" and state["done_count"] == "1" and state["status"] == "200"
        assert state["done_by"] == store.worker
        assert list(await store.items()) == [ITEM]
        assert await store.in_progress_urls() == set()
        assert await store.counts() == {"pending": 0, "in_progress": 0, "done": 1, "failed": 0}


async def test_retry_later_makes_the_url_ready_after_the_delay_with_the_attempt_counted(cfg):
    async with open_redis_store(cfg) as store:
        await store.add_urls(URLS[:1])
        job = await store.claim()
        await store.retry_later(job, "http_503: busy", 0.3, 503)
        assert await store.claim() is None
        ready_in = await store.next_ready_in()
        assert ready_in is not None and 0 < ready_in <= 0.3
        state = await store.url_state(job.url)
        assert (state["state"], state["last_error"], state["status"]) == ("pending", "http_503: busy", "503")
        await trio.sleep(ready_in + 0.05)
        again = await store.claim()
        assert (again.url, again.attempt) == (job.url, 2)


async def test_fail_keeps_the_reason_and_counts_by_kind(cfg):
    async with open_redis_store(cfg) as store:
        await store.add_urls(URLS[:3])
        reasons = ["http_404: gone", "timeout: no item within 20.0 s", "http_404: not here"]
        for reason in reasons:
            await store.fail(await store.claim(), reason, 404)
        assert await store.failures_by_reason() == {"http_404": 2, "timeout": 1}
        assert await store.counts() == {"pending": 0, "in_progress": 0, "done": 0, "failed": 3}
        assert (await store.url_state(URLS[1]))["last_error"] == reasons[1]


async def test_release_puts_the_url_back_without_charging_the_attempt(cfg):
    async with open_redis_store(cfg) as store:
        await store.add_urls(URLS[:2])
        first = await store.claim()
        await store.release(first)
        again = await store.claim()
        assert (again.url, again.attempt) == (first.url, 1)  # back in its place, first in line


async def test_in_progress_urls_are_only_this_stores_leases(cfg):
    """Two workers each hold a URL; each store reports only its own."""
    async with open_redis_store(cfg) as a, open_redis_store(cfg) as b:
        await a.add_urls(URLS[:2])
        ja, jb = await a.claim(), await b.claim()
        assert await a.in_progress_urls() == {ja.url}
        assert await b.in_progress_urls() == {jb.url}
        assert (await a.counts())["in_progress"] == 2


async def test_recover_does_not_steal_live_leases_of_other_workers(cfg):
    async with open_redis_store(cfg) as a, open_redis_store(cfg) as b:
        await a.add_urls(URLS[:1])
        job = await a.claim()
        assert await b.recover() == 0
        assert await b.claim() is None
        assert await a.complete(job, ITEM, 200, 0.1)


async def test_a_renewed_lease_is_not_taken_over(cfg):
    """The keeper renews every lease_s / 3: a URL held for 4 lease periods stays held."""
    async with open_redis_store(cfg) as a, open_redis_store(cfg) as b:
        await a.add_urls(URLS[:1])
        job = await a.claim()
        await trio.sleep(4 * cfg.store.lease_s)
        assert await b.claim() is None
        assert await a.complete(job, ITEM, 200, 2.0)


async def test_a_lease_taken_over_cannot_be_completed_by_its_old_holder(cfg):
    """Worker A claims a URL and stops renewing (as if frozen); once the lease has
    expired, B's claim takes the URL over (attempt 2).  A's late complete returns
    False and writes nothing; B's complete marks the URL done once, with B's item."""
    async with open_redis_store(cfg, renew=False) as a, open_redis_store(cfg) as b:
        await a.add_urls(URLS[:1])
        old = await a.claim()
        assert await b.claim() is None  # the lease is live
        await trio.sleep(cfg.store.lease_s + 0.1)
        new = await b.claim()
        assert (new.url, new.attempt) == (old.url, 2)
        state = await b.url_state(old.url)
        assert (state["takeovers"], state["taken_from"]) == ("1", a.worker)
        assert float(state["taken_at"]) >= float(state["started_at"]) - 1e-3

        assert not await a.complete(old, {**ITEM, "by": "a"}, 200, 5.0)
        await a.retry_later(old, "timeout: late", 0.0)  # no effect either
        await a.fail(old, "timeout: late")
        await a.release(old)
        state = await b.url_state(old.url)
        assert (state["state"], state["done_count"], state["worker"]) == ("in_progress", "0", b.worker)
        assert list(await a.items()) == []

        assert await b.complete(new, {**ITEM, "by": "b"}, 200, 0.5)
        assert not await a.complete(old, {**ITEM, "by": "a"}, 200, 5.0)
        assert (await b.url_state(old.url))["done_count"] == "1"
        assert list(await b.items()) == [{**ITEM, "by": "b"}]


async def test_a_url_whose_holders_keep_dying_fails_after_max_attempts(cfg):
    """A takeover counts an attempt; after [retry] max_attempts the URL is failed
    with reason lease_expired instead of being handed to the next victim."""
    async with open_redis_store(cfg, renew=False) as a, open_redis_store(cfg, renew=False) as b:
        await a.add_urls(URLS[:1])
        assert (await a.claim()).attempt == 1
        await trio.sleep(cfg.store.lease_s + 0.1)
        assert (await b.claim()).attempt == 2
        await trio.sleep(cfg.store.lease_s + 0.1)
        assert await a.claim() is None
        assert await a.failures_by_reason() == {"lease_expired": 1}
        assert await a.counts() == {"pending": 0, "in_progress": 0, "done": 0, "failed": 1}


async def test_closing_the_store_gives_its_leases_back(cfg):
    """Leases still held when open_redis_store exits go back to pending, uncharged."""
    async with open_redis_store(cfg) as a:
        await a.add_urls(URLS[:2])
        await a.claim()
        await a.claim()
        worker = a.worker
    async with open_redis_store(cfg) as b:
        assert await b.counts() == {"pending": 2, "in_progress": 0, "done": 0, "failed": 0}
        assert [(await b.claim()).attempt for _ in range(2)] == [1, 1]
        assert await b.client.zscore(b.key("workers"), worker) is None


async def test_a_cancelled_claim_leaves_nothing_held(cfg):
    """Cancelling claims at every point leaves no URL held by this worker: either
    claim returned the job, or the URL is pending again."""
    async with open_redis_store(cfg) as store:
        await store.add_urls(URLS)
        got = []
        for delay in (0, 0.0005, 0.001, 0.002, 0.005):
            with trio.move_on_after(delay):
                got.append(await store.claim())
        held = {j.url for j in got}
        assert await store.in_progress_urls() == held
        assert (await store.counts())["pending"] == len(URLS) - len(held)


async def test_items_come_in_crawl_order(cfg):
    async with open_redis_store(cfg) as store:
        await store.add_urls(URLS)
        jobs = [await store.claim() for _ in URLS]
        for job in reversed(jobs):
            assert await store.complete(job, {"url": job.url}, 200, 0.1)
        assert [item["url"] for item in await store.items()] == URLS


async def test_reset_deletes_only_this_crawls_keys(redis_server, crawl_name, cfg):
    other = make_redis_config(redis_server, crawl_name + "-other", URLS)
    async with open_redis_store(cfg) as store, open_redis_store(other) as neighbour:
        await store.add_urls(URLS)
        await neighbour.add_urls(URLS)
        await store.reset()
        assert not await store.client.keys(store.key("*"))
        assert await store.counts() == {"pending": 0, "in_progress": 0, "done": 0, "failed": 0}
        assert (await neighbour.counts())["pending"] == 5


async def test_runs_and_samples_are_kept_in_capped_lists(cfg, monkeypatch):
    monkeypatch.setattr(redis_store, "MAX_SAMPLES", 3)
    async with open_redis_store(cfg) as store:
        run = await store.start_run()
        for i in range(5):
            await store.add_memory_sample({"t": i, "pages_done": i})
            await store.add_tab_sample({"t": i, "pages": i})
        await store.finish_run("finished", {"done": 5})
        samples = await store.client.lrange(store.key(f"mem:{run}"), 0, -1)
        assert [s for s in samples] == ['{"t":2,"pages_done":2}', '{"t":3,"pages_done":3}', '{"t":4,"pages_done":4}']
        assert await store.client.llen(store.key(f"tabs:{run}")) == 3
        assert "finished" in await store.client.hget(store.key("runs"), str(run))


async def test_a_missing_or_unreachable_redis_is_a_config_error(redis_server, crawl_name):
    with pytest.raises(ConfigError, match=r"\[store\] url"):
        async with open_redis_store(make_redis_config(redis_server, crawl_name, store={"url": ""})):
            pass
    dead = make_redis_config(redis_server, crawl_name, store={"url": "redis://127.0.0.1:1/0"})
    with pytest.raises(ConfigError, match="cannot reach Redis"):
        async with open_redis_store(dead):
            pass


async def test_an_error_in_the_body_comes_out_as_itself(cfg):
    with pytest.raises(KeyError):
        async with open_redis_store(cfg):
            raise KeyError("mine")


async def test_a_claim_whose_reply_was_lost_is_given_back_by_its_token(cfg):
    """What claim does when cancelled after its script ran: the URL the script took
    with that token (which the caller never learnt) goes back to pending, uncharged;
    other leases of the worker stay.  A retried claim with the same token gets the
    same URL instead of a second one."""
    async with open_redis_store(cfg) as store:
        await store.add_urls(URLS[:3])
        kept = await store.claim()
        args = (store.worker, "lost-token", repr(store.lease_s), "3", "10")
        first = await store._run("claim", *args)
        assert await store._run("claim", *args) == first  # the client's retry of the same call
        assert await store._run("release_held", store.worker, "lost-token") == 1
        assert await store.in_progress_urls() == {kept.url}
        again = await store.claim()
        assert (again.url, again.attempt) == (first[1], 1)
