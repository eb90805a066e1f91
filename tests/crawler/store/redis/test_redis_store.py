"""What only the Redis store does, against a real redis-server: several workers,
leases (renewal, expiry, takeover), tokens, retried scripts, the key layout.  What
both backends do is in tests/crawler/store/test_contract.py."""

from __future__ import annotations

import json

import pytest
import trio

from crawler.errors import ConfigError
from crawler.request import Request
from crawler.store import StoreSettings
from crawler.store.redis import store as redis_store
from crawler.store.redis.layout import RedisLayoutError
from crawler.store.redis.store import open_redis_store
from tests.crawler.store.redis.conftest import make_redis_config

URLS = [f"http://shop.test/product/{i}" for i in range(1, 6)]
ITEM = {"url": URLS[0], "name": "Tee #1", "price": "₩9,900"}


@pytest.fixture
def cfg(redis_server, crawl_name):
    return make_redis_config(redis_server, crawl_name, URLS, store={"lease_s": 0.5}, retry={"max_attempts": 2})


async def test_add_urls_counts_each_url_once_across_workers(cfg):
    """The same URL added twice, by one worker or two, is one pending URL."""
    async with open_redis_store(StoreSettings.of(cfg)) as a, open_redis_store(StoreSettings.of(cfg)) as b:
        assert await a.add_urls(URLS[:3]) == 3
        assert await b.add_urls(URLS + URLS) == 2
        assert await a.counts() == {"pending": 5, "in_progress": 0, "done": 0, "failed": 0}


async def test_each_claim_has_its_own_token_and_a_held_url_comes_back_within_a_lease(cfg):
    """Every claim gets a fresh lease token; with every URL held, next_ready_in is at
    most lease_s: the earliest lease may expire by then."""
    async with open_redis_store(StoreSettings.of(cfg)) as store:
        await store.add_urls(URLS)
        jobs = [await store.claim() for _ in URLS]
        assert len({j.token for j in jobs}) == 5
        assert await store.claim() is None
        ready_in = await store.next_ready_in()
        assert ready_in is not None and 0 < ready_in <= cfg.store.lease_s


async def test_a_retried_complete_call_is_true_and_adds_nothing_again(cfg):
    """The client resends a script whose connection broke: the same complete call
    (same token, same call id) run twice is True both times and stores the items and
    links once.  (A second complete *call* is False: see the contract suite.)"""
    async with open_redis_store(StoreSettings.of(cfg)) as store:
        await store.add_urls(URLS[:1])
        job = await store.claim()
        args = (str(job.id), job.token, "call-1", json.dumps([ITEM]), "200", "0.25", "0", '["h"]', "0", "0")
        link = ["http://shop.test/list/1", "", "1", "", "=" + job.url]
        assert await store._run("complete", *args, *link) == 1
        assert await store._run("complete", *args, *link) == 1  # the client's retry of the same call
        state = await store.url_state(job.url)
        assert (state["state"], state["done_count"], state["status"], state["done_by"]) == (
            "done",
            1,
            200,
            store.worker,
        )
        assert list(await store.items()) == [ITEM]
        assert await store.counts() == {"pending": 1, "in_progress": 0, "done": 1, "failed": 0}


async def test_in_progress_urls_are_only_this_stores_leases(cfg):
    """Two workers each hold a URL; each store reports only its own."""
    async with open_redis_store(StoreSettings.of(cfg)) as a, open_redis_store(StoreSettings.of(cfg)) as b:
        await a.add_urls(URLS[:2])
        ja, jb = await a.claim(), await b.claim()
        assert await a.in_progress_urls() == {ja.url}
        assert await b.in_progress_urls() == {jb.url}
        assert (await a.counts())["in_progress"] == 2


async def test_recover_does_not_steal_live_leases_of_other_workers(cfg):
    async with open_redis_store(StoreSettings.of(cfg)) as a, open_redis_store(StoreSettings.of(cfg)) as b:
        await a.add_urls(URLS[:1])
        job = await a.claim()
        assert await b.recover() == 0
        assert await b.claim() is None
        assert await a.complete(job, [ITEM], [], 200, 0.1)


async def test_a_recovered_lease_cannot_be_completed_by_its_old_holder(cfg):
    """recover takes back an expired lease of a worker that stopped renewing (frozen,
    not dead): its late complete is False and writes nothing; the URL is pending with
    the attempt not charged."""
    async with open_redis_store(StoreSettings.of(cfg), renew=False) as a, open_redis_store(StoreSettings.of(cfg)) as b:
        await a.add_urls(URLS[:1])
        old = await a.claim()
        await trio.sleep(cfg.store.lease_s + 0.1)
        assert await b.recover() == 1
        assert not await a.complete(old, [ITEM], [Request(URLS[1])], 200, 5.0)
        assert list(await b.items()) == [] and await b.known(URLS) == {URLS[0]}
        state = await b.url_state(old.url)
        assert (state["state"], state["attempts"], state["worker"]) == ("pending", 0, "")
        assert await a.in_progress_urls() == set()


async def test_a_renewed_lease_is_not_taken_over(cfg):
    """The keeper renews every lease_s / 3: a URL held for 4 lease periods stays held."""
    async with open_redis_store(StoreSettings.of(cfg)) as a, open_redis_store(StoreSettings.of(cfg)) as b:
        await a.add_urls(URLS[:1])
        job = await a.claim()
        await trio.sleep(4 * cfg.store.lease_s)
        assert await b.claim() is None
        assert await a.complete(job, [ITEM], [], 200, 2.0)


async def test_a_lease_taken_over_cannot_be_completed_by_its_old_holder(cfg):
    """Worker A claims a URL and stops renewing (as if frozen); once the lease has
    expired, B's claim takes the URL over (attempt 2).  A's late complete returns
    False and writes nothing; B's complete marks the URL done once, with B's item."""
    async with open_redis_store(StoreSettings.of(cfg), renew=False) as a, open_redis_store(StoreSettings.of(cfg)) as b:
        await a.add_urls(URLS[:1])
        old = await a.claim()
        assert await b.claim() is None  # the lease is live
        await trio.sleep(cfg.store.lease_s + 0.1)
        new = await b.claim()
        assert (new.url, new.attempt) == (old.url, 2)
        state = await b.url_state(old.url)
        assert (state["takeovers"], state["taken_from"]) == (1, a.worker)
        assert state["taken_at"] >= state["started_at"] - 1e-3

        assert not await a.complete(old, [{**ITEM, "by": "a"}], [], 200, 5.0)
        await a.retry_later(old, "timeout: late", 0.0)  # no effect either
        await a.fail(old, "timeout: late")
        await a.release(old)
        state = await b.url_state(old.url)
        assert (state["state"], state["done_count"], state["worker"]) == ("in_progress", 0, b.worker)
        assert list(await a.items()) == []

        assert await b.complete(new, [{**ITEM, "by": "b"}], [], 200, 0.5)
        assert not await a.complete(old, [{**ITEM, "by": "a"}], [], 200, 5.0)
        assert (await b.url_state(old.url))["done_count"] == 1
        assert list(await b.items()) == [{**ITEM, "by": "b"}]


async def test_a_url_whose_holders_keep_dying_fails_after_max_attempts(cfg):
    """A takeover counts an attempt; after [retry] max_attempts the URL is failed
    with reason lease_expired instead of being handed to the next victim."""
    async with (
        open_redis_store(StoreSettings.of(cfg), renew=False) as a,
        open_redis_store(StoreSettings.of(cfg), renew=False) as b,
    ):
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
    async with open_redis_store(StoreSettings.of(cfg)) as a:
        await a.add_urls(URLS[:2])
        await a.claim()
        await a.claim()
        worker = a.worker
    async with open_redis_store(StoreSettings.of(cfg)) as b:
        assert await b.counts() == {"pending": 2, "in_progress": 0, "done": 0, "failed": 0}
        assert [(await b.claim()).attempt for _ in range(2)] == [1, 1]
        assert await b.client.zscore(b.key("workers"), worker) is None


async def test_a_cancelled_claim_leaves_nothing_held(cfg):
    """Cancelling claims at every point leaves no URL held by this worker: either
    claim returned the job, or the URL is pending again."""
    async with open_redis_store(StoreSettings.of(cfg)) as store:
        await store.add_urls(URLS)
        got = []
        for delay in (0, 0.0005, 0.001, 0.002, 0.005):
            with trio.move_on_after(delay):
                got.append(await store.claim())
        held = {j.url for j in got}
        assert await store.in_progress_urls() == held
        assert (await store.counts())["pending"] == len(URLS) - len(held)


async def test_reset_deletes_only_this_crawls_keys(redis_server, crawl_name, cfg):
    other = make_redis_config(redis_server, crawl_name + "-other", URLS)
    async with open_redis_store(StoreSettings.of(cfg)) as store, open_redis_store(StoreSettings.of(other)) as neighbour:
        await store.add_urls(URLS)
        await neighbour.add_urls(URLS)
        await store.reset()
        assert not await store.client.keys(store.key("*"))
        assert await store.counts() == {"pending": 0, "in_progress": 0, "done": 0, "failed": 0}
        assert (await neighbour.counts())["pending"] == 5


async def test_runs_and_samples_are_kept_in_capped_lists(cfg, monkeypatch):
    monkeypatch.setattr(redis_store, "MAX_SAMPLES", 3)
    async with open_redis_store(StoreSettings.of(cfg)) as store:
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
        async with open_redis_store(StoreSettings.of(make_redis_config(redis_server, crawl_name, store={"url": ""}))):
            pass
    dead = make_redis_config(redis_server, crawl_name, store={"url": "redis://127.0.0.1:1/0"})
    with pytest.raises(ConfigError, match="cannot reach Redis"):
        async with open_redis_store(StoreSettings.of(dead)):
            pass


async def test_an_error_in_the_body_comes_out_as_itself(cfg):
    with pytest.raises(KeyError):
        async with open_redis_store(StoreSettings.of(cfg)):
            raise KeyError("mine")


async def test_a_claim_whose_reply_was_lost_is_given_back_by_its_token(cfg):
    """What claim does when cancelled after its script ran: the URL the script took
    with that token (which the caller never learnt) goes back to pending, uncharged;
    other leases of the worker stay.  A retried claim with the same token gets the
    same URL instead of a second one."""
    async with open_redis_store(StoreSettings.of(cfg)) as store:
        await store.add_urls(URLS[:3])
        kept = await store.claim()
        args = (store.worker, "lost-token", repr(store.lease_s), "3", "10")
        first = await store._run("claim", *args)
        assert first[1] == URLS[1]
        assert await store._run("claim", *args) == first  # the client's retry of the same call
        assert await store._run("release_held", store.worker, "lost-token") == 1
        assert await store.in_progress_urls() == {kept.url}
        again = await store.claim()
        assert (again.url, again.attempt) == (first[1], 1)


async def test_one_max_urls_cap_holds_for_every_worker(redis_server, crawl_name):
    """[crawl] max_pages caps the crawl's frontier, whichever workers add the URLs."""
    capped = make_redis_config(redis_server, crawl_name, URLS, crawl={"max_pages": 3})
    async with open_redis_store(StoreSettings.of(capped)) as a, open_redis_store(StoreSettings.of(capped)) as b:
        assert await a.add_urls(URLS[:2]) == 2
        assert await b.add_urls(URLS[2:]) == 1
        assert await a.counts() == {"pending": 3, "in_progress": 0, "done": 0, "failed": 0}


async def test_add_urls_stops_reading_the_requests_once_the_frontier_is_full(redis_server, crawl_name):
    """A capped frontier does not read a long input to the end: it stops at the batch
    that fills it."""
    capped = make_redis_config(redis_server, crawl_name, URLS, crawl={"max_pages": 3})
    read = 0

    def requests():
        nonlocal read
        for i in range(10_000):
            read += 1
            yield f"http://shop.test/product/{i}"

    async with open_redis_store(StoreSettings.of(capped)) as store:
        assert await store.add_urls(requests(), batch=10) == 3
        assert read == 10


async def test_request_data_that_is_not_json_is_refused_naming_the_url(cfg):
    """add_urls and complete refuse (ValueError, one line naming the URL) a request
    or item they cannot store, and write nothing."""
    async with open_redis_store(StoreSettings.of(cfg)) as store:
        with pytest.raises(ValueError, match=rf"^{URLS[0]}: request data is not JSON-serialisable"):
            await store.add_urls([Request(URLS[0], data={"when": object()})])
        await store.add_urls(URLS[1:2])
        job = await store.claim()
        with pytest.raises(ValueError, match=rf"^{URLS[1]}: an item is not JSON-serialisable"):
            await store.complete(job, [{"x": {1, 2}}], [], 200, 0.1)
        assert await store.counts() == {"pending": 0, "in_progress": 1, "done": 0, "failed": 0}
        assert await store.complete(job, [ITEM], [], 200, 0.1)


async def test_a_crawl_of_the_previous_layout_reads_as_plain_requests_and_single_items(cfg):
    """Keys written by the previous version: URL records without request fields (and
    '' for no error), an item stored as one JSON object.  They read as Request(url)
    and a one-item list, next to records of this version."""
    async with open_redis_store(StoreSettings.of(cfg)) as store:
        old_item = {"url": URLS[0], "name": "Tee #1"}
        await store.client.set(store.key("seq"), "2")
        await store.client.hset(store.key("ids"), {URLS[0]: "1", URLS[1]: "2"})
        await store.client.hset(
            store.key("u:1"),
            {"url": URLS[0], "state": "done", "attempts": "1", "ready": "1", "done_count": "1", "last_error": "",
             "status": "200"},
        )  # fmt: skip
        await store.client.hset(
            store.key("u:2"),
            {"url": URLS[1], "state": "pending", "attempts": "0", "ready": "2", "done_count": "0"},
        )
        await store.client.zadd(store.key("done"), {"1": 1})
        await store.client.zadd(store.key("pending"), {"2": 2})
        await store.client.hset(store.key("items"), {"1": json.dumps(old_item)})

        state = await store.url_state(URLS[0])
        assert (state["last_error"], state["label"], state["depth"], state["data"]) == (None, None, 0, {})
        job = await store.claim()
        assert (job.url, job.label, job.depth, job.data, job.parent) == (URLS[1], None, 0, {}, None)
        assert await store.complete(job, [{"n": 1}, {"n": 2}], [], 200, 0.1)
        assert list(await store.items()) == [old_item, {"n": 1}, {"n": 2}]


async def test_an_unreadable_stored_item_is_a_one_line_layout_error(cfg):
    """A stored value this version cannot read fails loudly: RedisLayoutError (a
    ConfigError: the CLI prints it as one line), naming the key."""
    async with open_redis_store(StoreSettings.of(cfg)) as store:
        await store.add_urls(URLS[:1])
        assert await store.complete(await store.claim(), [ITEM], [], 200, 0.1)
        await store.client.hset(store.key("items"), {"1": '"just a string"'})
        with pytest.raises(RedisLayoutError, match=r"items 1: expected a JSON array of objects") as caught:
            await store.items()
        assert "\n" not in str(caught.value) and isinstance(caught.value, ConfigError)
        await store.client.hset(store.key("u:1"), {"data": "[1]"})
        with pytest.raises(RedisLayoutError, match=r"u:1 data: expected a JSON object, got list"):
            await store.url_state(URLS[0])


async def test_a_redis_server_gone_for_longer_than_outage_s_is_a_one_line_store_error():
    """Store methods wait out a Redis that cannot be reached; once it has been away for
    ``outage_s`` they raise StoreError naming the server and the limit (what the
    engine turns into "aborted: ..." with the summary), not coredis's own, and later
    calls raise it at once."""
    import socket

    import coredis

    from crawler.errors import StoreError

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]  # nobody listens there once the socket is closed
    url = f"redis://127.0.0.1:{port}/0"
    client = coredis.Redis.from_url(url, decode_responses=True, connect_timeout=1)
    store = redis_store.RedisStore(
        client, "gone", lease_s=1.0, max_attempts=1, where=f"Redis store {url}", outage_s=0.5
    )
    async with client, trio.open_nursery() as nursery:
        nursery.start_soon(store.link.run)
        started = trio.current_time()
        with pytest.raises(StoreError) as caught:
            await store.counts()
        assert trio.current_time() - started >= 0.5
        with pytest.raises(StoreError):
            await store.claim()
    message = str(caught.value)
    assert message.startswith(f"Redis store {url}: ") and "\n" not in message
    assert "outage_s = 0.5 s" in message
