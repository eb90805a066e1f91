"""The store contract (``crawler.store.Store``), once, run against both backends.

Every test takes ``store`` (a store of a fresh crawl) or ``backend`` (which opens more
stores of the same crawl: with a ``max_urls`` cap, or for a worker about to die), both
parametrised over ``sqlite`` (a file in tmp_path), ``redis`` (a crawl of its own on
the session's redis-server) and ``redis-cluster`` (the same on the session's
three-master Redis Cluster).  Nothing here relies on one backend's own behaviour:
what only Redis does (leases, takeover, renewal, tokens) is tested in ``tests/crawler/store/redis``.
"""

from __future__ import annotations

import random
import uuid
from collections.abc import AsyncIterator
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from pathlib import Path
from typing import Any, Protocol

import pytest
import trio

from crawler.config import Config
from crawler.request import Request
from crawler.run.engine import Crawler
from crawler.store import StoreSettings
from crawler.store.base import Store
from crawler.store.redis.store import open_redis_store
from crawler.store.sqlite import SqliteStore
from tests.conftest import RedisServer
from tests.crawler.conftest import make_config
from tests.crawler.store.redis.conftest import make_redis_config
from tests.crawler.store.redis.servers import RedisCluster3
from tests.fake.browser import shop_url
from tests.fake.harness import FakeBrowsers, no_memory_reading

URLS = [f"http://shop.test/product/{i}" for i in range(1, 6)]
LINKS = [f"http://shop.test/list/{i}" for i in range(1, 4)]
NO_URLS = {"pending": 0, "in_progress": 0, "done": 0, "failed": 0}
MORTAL_LEASE_S = 0.3  # redis: the lease of a worker about to die (it is not renewed)


class Backend(Protocol):
    name: str

    def open(self, *, max_urls: int = 0) -> AbstractAsyncContextManager[Store]:
        """A store of this test's crawl (a worker of it), closed on exit."""

    def open_mortal(self) -> AbstractAsyncContextManager[Store]:
        """A store of this test's crawl whose worker will die holding its claims."""

    def config(self, urls: list[str], **sections: dict[str, Any]) -> Config:
        """A config of this test's crawl for ``urls``, on this backend."""

    async def kill(self, store: Store) -> None:
        """The worker of ``store`` (from ``open_mortal``) is gone, its claims left in
        progress, as after SIGKILL: afterwards, ``recover`` by another store finds them."""


class SqliteBackend:
    name = "sqlite"

    def __init__(self, path: Path):
        self.path = path

    @asynccontextmanager
    async def open(self, *, max_urls: int = 0) -> AsyncIterator[Store]:
        store = SqliteStore(self.path, max_urls=max_urls)
        try:
            yield store
        finally:
            store.close()

    def open_mortal(self) -> AbstractAsyncContextManager[Store]:
        return self.open()

    async def kill(self, store: Store) -> None:
        store.close()  # what the kernel does for a killed process; its rows stay in progress

    def config(self, urls: list[str], **sections: dict[str, Any]) -> Config:
        """A crawl of ``urls`` into this backend's store (``sections`` override keys)."""
        return make_config(self.path.parent, urls, output={"db": str(self.path)}, **sections)


class RedisBackend:
    name = "redis"

    def __init__(self, server: RedisServer | RedisCluster3, crawl: str, *, cluster: bool = False):
        self.server = server
        self.crawl = crawl
        self.cluster = cluster

    def _config(self, urls: list[str] | None = None, **sections: dict[str, Any]) -> Config:
        sections["store"] = {"cluster": self.cluster, **sections.get("store", {})}
        return make_redis_config(self.server, self.crawl, urls, **sections)

    @asynccontextmanager
    async def open(self, *, max_urls: int = 0) -> AsyncIterator[Store]:
        async with open_redis_store(StoreSettings.of(self._config(crawl={"max_pages": max_urls}))) as store:
            yield store

    @asynccontextmanager
    async def open_mortal(self) -> AsyncIterator[Store]:
        async with open_redis_store(
            StoreSettings.of(self._config(store={"lease_s": MORTAL_LEASE_S})), renew=False
        ) as store:
            yield store

    async def kill(self, store: Store) -> None:
        await trio.sleep(MORTAL_LEASE_S + 0.2)  # it never renews: its leases have expired

    def config(self, urls: list[str], **sections: dict[str, Any]) -> Config:
        return self._config(urls, **sections)


@pytest.fixture(params=["sqlite", "redis", "redis-cluster"])
def backend(request: pytest.FixtureRequest, tmp_path: Path) -> Backend:
    if request.param == "sqlite":
        return SqliteBackend(tmp_path / "c.db")
    crawl = f"contract-{uuid.uuid4().hex[:10]}"
    if request.param == "redis-cluster":
        return RedisBackend(request.getfixturevalue("redis_cluster"), crawl, cluster=True)
    return RedisBackend(request.getfixturevalue("redis_server"), crawl)


@pytest.fixture
async def store(backend: Backend) -> AsyncIterator[Store]:
    async with backend.open() as s:
        yield s


async def claim(store: Store) -> Any:
    """The next job; fails the test if none is ready."""
    job = await store.claim()
    assert job is not None, "no URL was ready"
    return job


async def items(store: Store) -> list[dict[str, Any]]:
    return list(await store.items())


# -- add_urls, known, max_urls ------------------------------------------------------------


async def test_add_urls_returns_how_many_were_new_and_keeps_one_record_per_url(store):
    """``add_urls`` takes Requests and plain strings; a URL already in the frontier
    (from this call or an earlier one) is not added again; it returns how many were new."""
    assert await store.add_urls([URLS[0], Request(URLS[1]), URLS[0]]) == 2
    assert await store.add_urls([Request(URLS[1], label="other"), URLS[2]]) == 1
    assert await store.counts() == {**NO_URLS, "pending": 3}


async def test_add_urls_keeps_the_first_request_for_a_url(store):
    """A request for a URL already in the frontier changes nothing of its record."""
    await store.add_urls([Request(URLS[0], label="product", depth=1, data={"n": 1}, parent=LINKS[0])])
    await store.add_urls([Request(URLS[0], label="other", depth=5, data={"n": 2}, parent=LINKS[1])])
    state = await store.url_state(URLS[0])
    assert (state["label"], state["depth"], state["data"], state["parent"]) == ("product", 1, {"n": 1}, LINKS[0])


async def test_add_urls_drops_requests_beyond_max_urls(backend):
    """The frontier never grows past ``max_urls``: the first requests are added, the
    rest dropped (not counted as new, not known)."""
    async with backend.open(max_urls=3) as store:
        assert await store.add_urls(URLS) == 3
        assert await store.add_urls(["http://shop.test/late"]) == 0
        assert await store.known([*URLS, "http://shop.test/late"]) == set(URLS[:3])
        assert await store.counts() == {**NO_URLS, "pending": 3}


async def test_max_urls_counts_every_url_ever_added_whatever_its_state(backend):
    """URLs done or failed still count against ``max_urls``: finishing URLs makes no room."""
    async with backend.open(max_urls=2) as store:
        await store.add_urls(URLS[:2])
        assert await store.complete(await claim(store), [], [], 200, 0.1)
        await store.fail(await claim(store), "http_404: gone", 404)
        assert await store.add_urls(URLS[2:]) == 0
        assert await store.counts() == {**NO_URLS, "done": 1, "failed": 1}


async def test_complete_adds_no_links_beyond_max_urls(backend):
    """Links count against ``max_urls`` as added URLs do: those beyond it are dropped,
    and the job is completed all the same."""
    async with backend.open(max_urls=3) as store:
        await store.add_urls(URLS[:2])
        job = await claim(store)
        assert await store.complete(job, [{"n": 1}], [Request(u, parent=job.url) for u in LINKS], 200, 0.1)
        assert await store.known(LINKS) == {LINKS[0]}
        assert await store.counts() == {**NO_URLS, "pending": 2, "done": 1}


async def test_known_returns_the_urls_in_the_frontier_in_any_state(store):
    """``known`` is the subset of the given URLs in the frontier: pending, in progress,
    done or failed; URLs never added are not in it."""
    await store.add_urls(URLS[:4])
    assert await store.complete(await claim(store), [], [], 200, 0.1)
    await store.fail(await claim(store), "http_404: gone", 404)
    await claim(store)
    assert await store.known([*URLS, *LINKS]) == set(URLS[:4])
    assert await store.known([]) == set()


# -- claim and the request fields ---------------------------------------------------------


async def test_claim_hands_out_fresh_urls_in_the_order_they_were_added_then_none(store):
    """Each fresh URL is claimed once, in the order added, as attempt 1; then None."""
    await store.add_urls(URLS[:3])
    await store.add_urls(URLS[3:])
    jobs = [await claim(store) for _ in URLS]
    assert [(j.url, j.attempt) for j in jobs] == [(u, 1) for u in URLS]
    assert len({j.id for j in jobs}) == len(URLS)
    assert await store.claim() is None
    assert await store.counts() == {**NO_URLS, "in_progress": 5}


async def test_a_claimed_job_carries_its_requests_label_depth_data_and_parent(store):
    """label, depth, data (any JSON object) and parent come back in the Job as given."""
    data = {"category": "Tees — été", "page": 2, "price": 9.9, "tags": ["a", None, True], "nested": {"k": []}}
    request = Request(URLS[0], label="product", depth=3, data=data, parent=LINKS[0])
    await store.add_urls([request])
    job = await claim(store)
    assert (job.url, job.label, job.depth, job.data, job.parent) == (URLS[0], "product", 3, data, LINKS[0])
    assert job.request == request and job.request.data == data


async def test_a_plain_url_is_claimed_with_the_default_request_fields(store):
    """A ``str`` is ``Request(url)``: no label, depth 0, data {}, no parent."""
    await store.add_urls([URLS[0]])
    job = await claim(store)
    assert (job.label, job.depth, job.data, job.parent) == (None, 0, {}, None)


# -- complete -----------------------------------------------------------------------------


async def test_complete_marks_the_url_done_and_stores_its_items_in_push_order(store):
    """A completed job's URL is done (once), and its items are stored in push order."""
    await store.add_urls(URLS[:1])
    job = await claim(store)
    pushed = [{"url": job.url, "n": n} for n in (3, 1, 2)]
    assert await store.complete(job, pushed, [], 200, 0.25)
    assert await items(store) == pushed
    assert await store.counts() == {**NO_URLS, "done": 1}
    assert (await store.url_state(job.url))["done_count"] == 1


async def test_complete_adds_the_new_links_with_their_request_fields(store):
    """In the same step, the links are added as by ``add_urls``: new URLs only, each
    with its label, depth, data and parent; a link to a URL already known changes nothing."""
    await store.add_urls(URLS[:2])
    job = await claim(store)
    links = [
        Request(LINKS[0], label="list", depth=1, data={"page": 1}, parent=job.url),
        Request(URLS[1], label="again", depth=1, parent=job.url),  # already known
    ]
    assert await store.complete(job, [], links, 200, 0.1)
    assert await store.counts() == {**NO_URLS, "pending": 2, "done": 1}
    assert (await store.url_state(URLS[1]))["label"] is None
    jobs = [await claim(store), await claim(store)]
    assert [j.url for j in jobs] == [URLS[1], LINKS[0]]
    link = jobs[1]
    assert (link.label, link.depth, link.data, link.parent) == ("list", 1, {"page": 1}, URLS[0])


async def test_complete_of_a_released_job_returns_false_and_writes_nothing(store):
    """A job no longer held (here: released) cannot complete: False, and neither its
    items nor its links are stored; the URL stays pending."""
    await store.add_urls(URLS[:1])
    job = await claim(store)
    await store.release(job)
    assert not await store.complete(job, [{"stale": True}], [Request(LINKS[0])], 200, 0.1)
    assert await items(store) == []
    assert await store.known(LINKS) == set()
    assert await store.counts() == {**NO_URLS, "pending": 1}


async def test_complete_of_a_released_job_returns_false_after_its_url_is_claimed_again(store):
    """A released job stays not held when its URL is claimed again by a new job: the
    stale job's complete is False and writes nothing; the new job completes it."""
    await store.add_urls(URLS[:1])
    stale = await claim(store)
    await store.release(stale)
    fresh = await claim(store)
    assert not await store.complete(stale, [{"by": "stale"}], [Request(LINKS[0])], 200, 0.1)
    assert await store.counts() == {**NO_URLS, "in_progress": 1}
    assert await store.complete(fresh, [{"by": "fresh"}], [], 200, 0.1)
    assert await items(store) == [{"by": "fresh"}]
    assert await store.known(LINKS) == set()


async def test_a_second_complete_of_the_same_job_returns_false_and_stores_nothing_more(store):
    """A job completes once: a second ``complete`` call for it returns False and stores
    neither its items nor its links; the URL's done count stays 1."""
    await store.add_urls(URLS[:1])
    job = await claim(store)
    assert await store.complete(job, [{"n": 1}], [Request(LINKS[0])], 200, 0.1)
    assert not await store.complete(job, [{"n": 2}], [Request(LINKS[1])], 200, 0.1)
    assert await items(store) == [{"n": 1}]
    assert await store.known(LINKS) == {LINKS[0]}
    assert (await store.url_state(job.url))["done_count"] == 1


# -- the other outcomes -------------------------------------------------------------------


async def test_retry_later_makes_the_url_ready_after_the_delay_with_the_attempt_counted(store):
    """After ``retry_later(delay_s)`` the URL is pending but not claimable until the
    delay has passed; the next claim is attempt 2; the reason and status are kept."""
    await store.add_urls(URLS[:1])
    job = await claim(store)
    await store.retry_later(job, "http_503: busy", 0.3, 503)
    assert await store.claim() is None
    ready_in = await store.next_ready_in()
    assert ready_in is not None and 0 < ready_in <= 0.3
    state = await store.url_state(job.url)
    assert (state["state"], state["attempts"], state["last_error"], state["status"]) == (
        "pending",
        1,
        "http_503: busy",
        503,
    )
    await trio.sleep(ready_in + 0.05)
    again = await claim(store)
    assert (again.url, again.attempt) == (job.url, 2)


async def test_only_complete_stores_items(store):
    """Attempts that end in release, retry_later or fail store no item: only the items
    of the attempt that completes are stored."""
    await store.add_urls(URLS[:2])
    await store.release(await claim(store))
    await store.retry_later(await claim(store), "timeout: no item", 0.0)
    await store.fail(await claim(store), "http_404: gone", 404)
    last = await claim(store)
    assert last.url == URLS[0]
    assert await store.complete(last, [{"attempt": last.attempt}], [], 200, 0.1)
    assert await items(store) == [{"attempt": 2}]


async def test_release_puts_the_url_back_first_in_line_without_charging_the_attempt(store):
    """A released URL is pending again, in its place in line, and its next claim is
    the same attempt number."""
    await store.add_urls(URLS[:2])
    first = await claim(store)
    await store.release(first)
    assert (await store.url_state(first.url))["state"] == "pending"
    again = await claim(store)
    assert (again.url, again.attempt) == (first.url, 1)


async def test_fail_counts_failed_urls_by_kind_of_reason(store):
    """``failures_by_reason`` counts failed URLs by the text before ':'; a URL retried
    later is not failed; the last reason of each URL is kept whole."""
    await store.add_urls(URLS[:4])
    reasons = ["http_404: gone", "timeout: no item within 20.0 s", "http_404: not here"]
    for reason in reasons:
        await store.fail(await claim(store), reason, 404)
    await store.retry_later(await claim(store), "timeout: slow", 60.0)
    assert await store.failures_by_reason() == {"http_404": 2, "timeout": 1}
    assert (await store.url_state(URLS[1]))["last_error"] == reasons[1]
    assert await store.counts() == {**NO_URLS, "pending": 1, "failed": 3}


# -- recover ------------------------------------------------------------------------------


async def test_recover_with_nothing_left_in_progress_returns_0(store):
    await store.add_urls(URLS[:2])
    assert await store.complete(await claim(store), [], [], 200, 0.1)
    assert await store.recover() == 0
    assert await store.counts() == {**NO_URLS, "pending": 1, "done": 1}


async def test_recover_puts_the_urls_of_a_worker_that_is_gone_back_to_pending_uncharged(backend):
    """URLs a dead worker held in progress go back to pending with ``recover``, which
    returns how many (then 0: none is left); their next claim is attempt 1 again, in
    the order they were added.  (What recover does to a live worker's claims differs:
    SQLite has one worker, Redis leaves live leases; see tests/crawler/store/redis.)"""
    async with backend.open_mortal() as dying:
        await dying.add_urls(URLS[:3])
        await claim(dying)
        await claim(dying)
        await backend.kill(dying)
        async with backend.open() as store:
            assert await store.recover() == 2
            assert await store.recover() == 0
            assert await store.counts() == {**NO_URLS, "pending": 3}
            jobs = [await claim(store) for _ in range(3)]
            assert [(j.url, j.attempt) for j in jobs] == [(u, 1) for u in URLS[:3]]


# -- reading ------------------------------------------------------------------------------


async def test_counts_has_every_state_of_the_whole_crawl(store):
    """``counts`` has the four states, zero included."""
    assert await store.counts() == NO_URLS
    await store.add_urls(URLS[:4])
    assert await store.complete(await claim(store), [], [], 200, 0.1)
    await store.fail(await claim(store), "http_404: gone", 404)
    await claim(store)
    assert await store.counts() == {"pending": 1, "in_progress": 1, "done": 1, "failed": 1}


async def test_in_progress_urls_are_the_urls_claimed_and_not_finished(store):
    await store.add_urls(URLS[:3])
    jobs = [await claim(store) for _ in range(3)]
    assert await store.in_progress_urls() == set(URLS[:3])
    assert await store.complete(jobs[0], [], [], 200, 0.1)
    await store.release(jobs[1])
    assert await store.in_progress_urls() == {URLS[2]}


async def test_url_state_of_an_unknown_url_is_empty(store):
    await store.add_urls(URLS[:1])
    assert await store.url_state(URLS[1]) == {}


async def test_url_state_of_a_fresh_url_has_the_contract_keys_and_types(store):
    """A fresh URL's record: state, attempts, label, depth, parent, data, last_error,
    status, done_count, typed as the contract says."""
    await store.add_urls([Request(URLS[0], label="product", depth=2, data={"k": [1]}, parent=LINKS[0]), URLS[1]])
    state = await store.url_state(URLS[0])
    expected = {
        "state": "pending",
        "attempts": 0,
        "label": "product",
        "depth": 2,
        "parent": LINKS[0],
        "data": {"k": [1]},
        "last_error": None,
        "status": None,
        "done_count": 0,
    }
    assert {k: state[k] for k in expected} == expected
    plain = await store.url_state(URLS[1])
    assert (plain["label"], plain["depth"], plain["parent"], plain["data"]) == (None, 0, None, {})


async def test_url_state_follows_a_url_through_retry_and_completion(store):
    """After retry_later: pending, one attempt, reason and status (int) kept.  After
    complete: done, done_count 1, last_error None, the completing status (None if none)."""
    await store.add_urls(URLS[:1])
    job = await claim(store)
    await store.retry_later(job, "http_503: busy", 0.0, 503)
    state = await store.url_state(job.url)
    assert (state["state"], state["attempts"], state["last_error"], state["status"]) == (
        "pending",
        1,
        "http_503: busy",
        503,
    )
    assert type(state["attempts"]) is int and type(state["status"]) is int
    job = await claim(store)
    assert await store.complete(job, [], [], 200, 0.1)
    state = await store.url_state(job.url)
    assert (state["state"], state["attempts"], state["done_count"], state["last_error"], state["status"]) == (
        "done",
        2,
        1,
        None,
        200,
    )
    await store.add_urls(URLS[1:2])
    other = await claim(store)
    await store.retry_later(other, "http_503: busy", 0.0, 503)
    other = await claim(store)
    assert await store.complete(other, [], [], None, 0.1)
    assert (await store.url_state(other.url))["status"] is None


async def test_items_come_in_the_order_urls_entered_the_frontier_then_push_order(store):
    """Whatever order jobs complete in, ``items`` lists them by when their URL entered
    the frontier (a link after the URLs added before it), then in push order; URLs
    not done have none."""
    await store.add_urls(URLS[:4])
    jobs = [await claim(store) for _ in range(4)]
    assert await store.complete(jobs[2], [{"u": 3, "n": 1}, {"u": 3, "n": 2}], [Request(LINKS[0])], 200, 0.1)
    link = await claim(store)
    assert await store.complete(link, [{"u": "link", "n": 1}], [], 200, 0.1)
    assert await store.complete(jobs[1], [{"u": 2, "n": 1}, {"u": 2, "n": 2}], [], 200, 0.1)
    assert await store.complete(jobs[0], [{"u": 1, "n": 1}], [], 200, 0.1)
    await store.fail(jobs[3], "http_404: gone", 404)
    assert [(i["u"], i["n"]) for i in await items(store)] == [(1, 1), (2, 1), (2, 2), (3, 1), (3, 2), ("link", 1)]


async def test_next_ready_in_is_none_only_when_nothing_is_pending_or_in_progress(store):
    """None for an empty frontier; 0 while a URL is ready; not None while one is in
    progress (it may come back); None once every URL is done or failed."""
    assert await store.next_ready_in() is None
    await store.add_urls(URLS[:2])
    assert await store.next_ready_in() == 0
    first, second = await claim(store), await claim(store)
    assert await store.next_ready_in() is not None
    assert await store.complete(first, [], [], 200, 0.1)
    assert await store.next_ready_in() is not None
    await store.fail(second, "http_404: gone", 404)
    assert await store.next_ready_in() is None


# -- the input feed's position, retry_failed -------------------------------------------------


async def test_input_position_is_0_until_saved_and_kept_per_input(store):
    assert await store.input_position("a") == 0
    await store.save_input_position("a", 1000)
    assert (await store.input_position("a"), await store.input_position("b")) == (1000, 0)


async def test_input_position_never_goes_back(store):
    """Two workers feeding the same input agree: a smaller position is ignored."""
    await store.save_input_position("a", 2000)
    await store.save_input_position("a", 1000)
    assert await store.input_position("a") == 2000


async def test_input_position_survives_reopening_and_goes_with_reset(backend):
    async with backend.open() as store:
        await store.save_input_position("a", 7)
    async with backend.open() as store:
        assert await store.input_position("a") == 7
        await store.reset()
        assert await store.input_position("a") == 0


async def fail_all(store: Store, reasons: list[str]) -> None:
    await store.add_urls(URLS[: len(reasons)])
    for reason in reasons:
        await store.fail(await claim(store), reason)


async def test_retry_failed_puts_every_failed_url_back_to_pending_ready_now(store):
    await fail_all(store, ["http_404", "timeout: no item within 3.0 s", "missing_field: sku"])
    assert await store.retry_failed() == 3
    assert await store.counts() == {**NO_URLS, "pending": 3}
    assert await store.failures_by_reason() == {}
    job = await claim(store)
    assert (job.url, job.attempt) == (URLS[0], 1)  # in crawl order, attempts reset


async def test_retry_failed_with_a_reason_prefix_moves_only_those(store):
    await fail_all(store, ["http_404", "timeout: no item within 3.0 s", "timeout: no item within 9.0 s"])
    assert await store.retry_failed("timeout") == 2
    assert await store.counts() == {**NO_URLS, "pending": 2, "failed": 1}
    assert await store.failures_by_reason() == {"http_404": 1}
    assert (await store.url_state(URLS[0]))["state"] == "failed"
    assert await store.retry_failed("nothing like it") == 0


# -- a crawl's limit ----------------------------------------------------------------------


@pytest.mark.parametrize("limit", [1, 3])
async def test_a_crawl_limited_to_n_jobs_claims_n_urls_whatever_its_concurrency(backend, limit):
    """``Crawler(limit=N)`` (``--limit N``) claims exactly N URLs on either store, with
    four workers whose claims are in flight together: N done, the rest pending and
    never claimed (attempts 0).  On the fake browser."""
    urls = [shop_url("product", i) for i in range(1, 9)]
    cfg = backend.config(urls, pool={"concurrency": 4}, monitor={"sample_interval_s": 1e6})
    async with backend.open() as store:
        engine = Crawler(
            cfg, store, limit=limit, open_browser=FakeBrowsers(random.Random(1)), read_memory=no_memory_reading
        )
        assert await engine.run() == "limit"
        assert engine.statistics().jobs.claimed == limit
        assert await store.counts() == {**NO_URLS, "done": limit, "pending": len(urls) - limit}
        attempts = [(await store.url_state(url))["attempts"] for url in urls]
        assert sorted(attempts) == [0] * (len(urls) - limit) + [1] * limit


# -- host pacing --------------------------------------------------------------------------


async def test_host_pace_spaces_turns_on_one_host_by_the_gap_and_backs_off(store):
    """The store's ``host_pace``: the next turn on a host starts no sooner than the gap
    after the previous turn's block exited; another host is not held up; a back-off
    (Retry-After) keeps the host's next turn away for its delay."""
    pace = store.host_pace((200, 200))
    a, b = (f"http://{name}-{uuid.uuid4().hex[:8]}.test" for name in "ab")  # hosts of this test's own
    async with pace.hold(f"{a}/1"):
        pass
    left = trio.current_time()
    async with pace.hold(f"{b}/1"):
        other_host = trio.current_time()
    async with pace.hold(f"{a}/2"):
        again = trio.current_time()
    assert other_host - left < 0.2 <= again - left
    await pace.back_off(f"{a}/3", 0.4)
    paused = trio.current_time()
    async with pace.hold(f"{a}/3"):
        after_pause = trio.current_time()
    assert after_pause - paused >= 0.4 - 0.01


# -- fairness -----------------------------------------------------------------------------


async def test_claim_prefers_a_ready_url_of_a_host_not_avoided(store):
    """``claim(avoid_hosts)`` takes the first ready URL whose host is not avoided; when
    every ready URL's host is avoided, the first ready one all the same."""
    a, b = "http://a.test:8080", "http://b.test"
    await store.add_urls([f"{a}/1", f"{a}/2", f"{b}/1", f"{a}/3"])
    assert (await claim(store)).url == f"{a}/1"
    assert (await store.claim(avoid_hosts={"a.test:8080"})).url == f"{b}/1"
    assert (await store.claim(avoid_hosts={"a.test:8080", "b.test"})).url == f"{a}/2"
    assert (await store.claim(avoid_hosts={"b.test"})).url == f"{a}/3"
    assert await store.claim(avoid_hosts={"a.test:8080"}) is None


async def test_claim_many_gives_what_claims_in_a_row_would_each_host_avoided_in_turn(store):
    """``claim_many(avoid_hosts, n)``: up to ``n`` jobs, each preferring a host neither
    avoided nor taken by the ones before it; fewer when fewer are ready, [] when none."""
    a, b, c = "http://a.test", "http://b.test", "http://c.test"
    await store.add_urls([f"{a}/1", f"{a}/2", f"{b}/1", f"{a}/3", f"{c}/1", f"{b}/2"])
    jobs = await store.claim_many({"c.test"}, 3)
    assert [j.url for j in jobs] == [f"{a}/1", f"{b}/1", f"{a}/2"]  # c avoided; then a and b taken: the first
    assert len({j.id for j in jobs}) == 3 and all(j.attempt == 1 for j in jobs)
    assert [j.url for j in await store.claim_many((), 5)] == [f"{a}/3", f"{c}/1", f"{b}/2"]
    assert await store.claim_many((), 2) == []
    assert (await store.counts())["in_progress"] == 6
    for job in jobs:
        assert await store.complete(job, [{"n": job.id}], [], 200, 0.1)
    assert (await store.counts())["done"] == 3


async def test_a_paced_host_first_in_line_does_not_take_every_worker(backend):
    """Eight URLs of host A come first in the frontier, then eight of host B; pages are
    paced 300 ms apart per host, four workers.  B is not starved behind A's queue: its
    first page is fetched before A's fourth (without fairness every worker would wait in
    A's queue, and B would start after all eight of A; the margin of three is for a
    loaded machine, where B's first lease and pace call took over 600 ms on the cluster).
    On the fake browser."""
    a = [shop_url("product", i).replace("shop.test", "a.shop.test") for i in range(1, 9)]
    b = [shop_url("product", i).replace("shop.test", "b.shop.test") for i in range(1, 9)]
    cfg = backend.config(
        [*a, *b], pool={"concurrency": 4}, rate_limit={"wait_ms": [300, 300]}, monitor={"sample_interval_s": 1e6}
    )
    browsers = FakeBrowsers(random.Random(3))
    async with backend.open() as store:
        engine = Crawler(cfg, store, open_browser=browsers, read_memory=no_memory_reading)
        assert await engine.run() == "finished"
        assert (await store.counts())["done"] == 16
    fetched = sorted((browsers.hits(url)[0], url) for url in [*a, *b])
    order = ["a" if url in a else "b" for _, url in fetched]
    assert order.index("b") < [i for i, host in enumerate(order) if host == "a"][3], order


# -- recrawls, streaming reads, run records -------------------------------------------------


async def complete_next(store: Store, items: list[dict[str, Any]], **kwargs: Any) -> Any:
    job = await claim(store)
    assert await store.complete(job, items, [], 200, 0.1, **kwargs)
    return job


async def streamed(store: Store, **filters: Any) -> list[Any]:
    return [item async for batch in store.stream_items(**filters) for item in batch]


async def test_requeue_due_before_the_recrawl_time_moves_nothing(store):
    await store.add_urls(URLS[:2])
    await complete_next(store, [{"n": 1}], recrawl_after_s=60.0)
    await complete_next(store, [{"n": 2}])  # never due again
    assert await store.requeue_due() == 0
    assert (await store.counts())["done"] == 2


async def test_a_done_url_past_its_recrawl_time_is_pending_again_with_its_items_kept(store):
    await store.add_urls(URLS[:2])
    await complete_next(store, [{"n": 1}], recrawl_after_s=0.05)
    await complete_next(store, [{"n": 2}])
    await trio.sleep(0.15)
    assert await store.requeue_due() == 1
    assert await store.requeue_due() == 0  # once
    assert await store.counts() == {**NO_URLS, "pending": 1, "done": 1}
    state = await store.url_state(URLS[0])
    assert (state["state"], state["attempts"], state["done_count"]) == ("pending", 0, 1)
    assert await items(store) == [{"n": 1}, {"n": 2}]  # kept until the recrawl completes
    job = await claim(store)
    assert (job.url, job.attempt) == (URLS[0], 1)


async def test_a_recrawl_stores_a_changed_item_again_and_keeps_an_unchanged_one_with_its_fetch_time(store):
    await store.add_urls(URLS[:2])
    await store.start_run()
    await complete_next(store, [{"sku": 1, "price": 100}, {"review": "good"}], recrawl_after_s=0.05)
    await complete_next(store, [{"sku": 2, "price": 200}], recrawl_after_s=0.05)
    first = {(i.url, i.seq): i for i in await streamed(store)}
    await trio.sleep(0.15)
    assert await store.requeue_due() == 2
    between = max(i.fetched_at for i in first.values()) + 0.01
    await trio.sleep(0.05)
    second_run = await store.start_run()
    # URLS[0]: the same two items, keys in another order; URLS[1]: its price changed.
    await complete_next(store, [{"price": 100, "sku": 1}, {"review": "good"}])
    await complete_next(store, [{"sku": 2, "price": 150}])

    stored = await streamed(store)
    assert [i.data for i in stored] == [{"price": 100, "sku": 1}, {"review": "good"}, {"sku": 2, "price": 150}]
    unchanged, changed = stored[:2], stored[2]
    assert [i.fetched_at for i in unchanged] == [first[(URLS[0], 0)].fetched_at, first[(URLS[0], 1)].fetched_at]
    assert changed.fetched_at > between and changed.run == second_run
    assert [i.data for i in await streamed(store, changed_since=between)] == [{"sku": 2, "price": 150}]
    assert [i.data for i in await streamed(store, run=second_run)] == [{"sku": 2, "price": 150}]
    a, b = await store.url_state(URLS[0]), await store.url_state(URLS[1])
    assert (a["changed_items"], a["unchanged_items"], a["done_count"]) == (0, 2, 2)
    assert (b["changed_items"], b["unchanged_items"], b["done_count"]) == (1, 0, 2)
    assert await store.requeue_due() == 0  # completed without recrawl_after_s: never due again


async def test_a_recrawl_that_pushes_an_item_twice_keeps_one_and_stores_the_other_as_new(store):
    await store.add_urls(URLS[:1])
    await complete_next(store, [{"r": 1}], recrawl_after_s=0.01)
    await trio.sleep(0.05)
    await store.requeue_due()
    await complete_next(store, [{"r": 1}, {"r": 1}])
    a = await store.url_state(URLS[0])
    assert (a["changed_items"], a["unchanged_items"]) == (1, 1)
    assert len(await items(store)) == 2


async def test_stream_items_filters_by_label_in_crawl_order_in_bounded_batches(store):
    await store.add_urls([Request(URLS[0], label="product"), Request(URLS[1], label="list"), URLS[2]])
    for n in range(3):
        await complete_next(store, [{"page": n, "i": i} for i in range(25)])
    batches = [batch async for batch in store.stream_items(batch=20)]
    assert all(0 < len(batch) <= 20 for batch in batches)  # never the whole crawl at once
    flat = [i for batch in batches for i in batch]
    assert [(i.data["page"], i.data["i"]) for i in flat] == [(n, i) for n in range(3) for i in range(25)]
    assert [i.seq for i in flat[:25]] == list(range(25))
    assert {i.label for i in flat} == {"product", "list", None}
    product = await streamed(store, label="product")
    assert {i.url for i in product} == {URLS[0]} and len(product) == 25
    assert await streamed(store, label="nothing") == []


async def test_run_record_is_the_last_run_with_its_summary_and_samples(store):
    assert await store.run_record() is None
    first = await store.start_run()
    await store.finish_run("finished", {"done": 1})
    second = await store.start_run()
    await store.add_memory_sample(
        {"t": 1.0, "pages_done": 3, "browser_pss": 100, "crawler_pss": 10, "processes": 2, "tabs": 1, "contexts": 1}
    )
    record = await store.run_record()
    assert (record.run_id, record.finish_reason, record.summary) == (second, None, None)
    assert [s["pages_done"] for s in record.samples] == [3] and record.started_at > 0
    old = await store.run_record(first)
    assert (old.finish_reason, old.summary) == ("finished", {"done": 1})
    assert old.finished_at >= old.started_at


# -- saved session states (store.session_states) ------------------------------------------

STATE = {
    "cookies": [
        {
            "name": "sid",
            "value": "s3cr3t",
            "domain": "shop.test",
            "path": "/",
            "expires": -1,
            "httpOnly": True,
            "secure": False,
            "sameSite": "Lax",
        }
    ],
    "origins": [{"origin": "http://shop.test", "localStorage": [{"name": "token", "value": "t-1"}]}],
}
PROXY = "http://proxy.test:3128"


async def test_a_saved_state_loads_back_per_identity_and_a_save_replaces_it(store):
    """``save`` keeps one state per identity, with its time; ``load`` gives it back
    as saved (None for an identity with none); a second save replaces the first."""
    states = store.session_states
    assert await states.load("direct") is None
    await states.save("direct", STATE, 1000.5)
    await states.save(PROXY, {"cookies": [], "origins": []}, 1001.0)
    direct = await states.load("direct")
    assert direct is not None and (direct.state, direct.saved_at) == (STATE, 1000.5)
    await states.save("direct", {"cookies": [], "origins": []}, 2000.25)
    again = await states.load("direct")
    assert again is not None and (again.state, again.saved_at) == ({"cookies": [], "origins": []}, 2000.25)
    assert await states.identities() == ["direct", PROXY]


async def test_deleting_a_state_with_its_time_spares_a_newer_one(store):
    """``delete(identity, saved_at)`` deletes only the state saved then (a retired
    session's), not one saved since (a newer login's); without a time, whatever is
    saved; True only when something was deleted."""
    states = store.session_states
    await states.save("direct", STATE, 1000.5)
    await states.save("direct", STATE, 1200.75)
    assert not await states.delete("direct", saved_at=1000.5)
    assert (await states.load("direct")) is not None
    assert await states.delete("direct", saved_at=1200.75)
    assert await states.load("direct") is None
    await states.save(PROXY, STATE, 5.0)
    assert await states.delete(PROXY)
    assert not await states.delete(PROXY)


async def test_clear_deletes_every_state_and_reset_keeps_them(store):
    """``reset`` (``--fresh``) forgets the crawl's progress but not its saved states;
    ``clear`` deletes them all and says how many."""
    states = store.session_states
    await states.save("direct", STATE, 1.0)
    await states.save(PROXY, STATE, 2.0)
    await store.add_urls(URLS[:2])
    await store.reset()
    assert await store.counts() == NO_URLS
    assert await states.identities() == ["direct", PROXY]
    assert await states.clear() == 2
    assert await states.identities() == [] and await states.load("direct") is None
    assert await states.clear() == 0


async def test_a_login_lease_is_held_by_one_holder_until_released(backend):
    """One holder per identity at a time (two stores of the crawl: two workers); others
    get None until it is released; a release or renewal under another token does
    nothing; leases of two identities are independent."""
    async with backend.open() as one, backend.open() as two:
        token = await one.session_states.acquire_lease("direct", 30.0)
        assert token is not None
        assert await two.session_states.acquire_lease("direct", 30.0) is None
        assert await two.session_states.acquire_lease(PROXY, 30.0) is not None
        await two.session_states.release_lease("direct", "not-the-token")
        assert not await two.session_states.renew_lease("direct", "not-the-token", 30.0)
        assert await two.session_states.acquire_lease("direct", 30.0) is None
        assert await one.session_states.renew_lease("direct", token, 30.0)
        await one.session_states.release_lease("direct", token)
        assert await two.session_states.acquire_lease("direct", 30.0) is not None


async def test_a_login_lease_not_renewed_expires_and_another_takes_it(backend):
    """A holder that stops renewing (it died) loses the lease after its ttl: another
    takes it, and the first one's renewal then fails."""
    async with backend.open() as one, backend.open() as two:
        token = await one.session_states.acquire_lease("direct", 0.3)
        assert token is not None
        await trio.sleep(0.15)
        assert await one.session_states.renew_lease("direct", token, 0.3)  # renewed: 0.3 s from now
        await trio.sleep(0.2)
        assert await two.session_states.acquire_lease("direct", 0.3) is None
        await trio.sleep(0.25)
        assert await two.session_states.acquire_lease("direct", 30.0) is not None
        assert not await one.session_states.renew_lease("direct", token, 30.0)
