"""The reading side of the Redis store: counts, failures, URL records, the items
(streamed in bounded batches) and the run records of a crawl, as the store contract
(:class:`crawler.store.base.Store`) has them.  Nothing here writes.
"""

from __future__ import annotations

import itertools
import json
from collections.abc import AsyncIterator, Iterable, Iterator
from typing import Any

from crawler.store.base import STATES, RunRecord, StoredItem
from crawler.store.redis.crawl import RedisCrawl, translated
from crawler.store.redis.layout import stored_items, typed_record

READ_BATCH = 1000  # items per read when exporting


def batches(iterable: Iterable[Any], size: int) -> Iterator[list[Any]]:
    """``iterable`` in lists of ``size`` (the last one shorter), read as they go."""
    iterator = iter(iterable)
    while chunk := list(itertools.islice(iterator, size)):
        yield chunk


class RedisReader:
    """What the crawl ``redis`` reaches holds, as ``worker`` reads it.  Every method but
    :meth:`stream_items` and :meth:`run_record` (which go through the link per read)
    waits for a Redis that is away (see :func:`crawler.store.redis.crawl.translated`)."""

    def __init__(self, redis: RedisCrawl, worker: str):
        self.redis = redis
        self.client = redis.client
        self.link = redis.link
        self.worker = worker

    @translated
    async def known(self, urls: Iterable[str]) -> set[str]:
        """The subset of ``urls`` in the frontier, in any state.  Read in batches of
        READ_BATCH, each one consistent; cancelled half-way: nothing is returned."""
        found: set[str] = set()
        for chunk in batches(urls, READ_BATCH):
            ids = await self.client.hmget(self.redis.key("ids"), chunk)
            found.update(url for url, job_id in zip(chunk, ids, strict=True) if job_id is not None)
        return found

    @translated
    async def counts(self) -> dict[str, int]:
        """URLs per state, one consistent snapshot of the whole crawl (all workers)."""
        return dict(zip(STATES, map(int, await self.redis.run("counts")), strict=True))

    @translated
    async def failures_by_reason(self) -> dict[str, int]:
        """Failed URLs per kind of reason (the text before ':'), most frequent first."""
        kinds = await self.client.hgetall(self.redis.key("fail_kinds"))
        return dict(sorted(((k, int(n)) for k, n in kinds.items() if int(n)), key=lambda kv: -kv[1]))

    @translated
    async def in_progress_urls(self) -> set[str]:
        """The URLs whose lease **this worker** holds (not other workers'): the engine
        compares them with its own in-flight jobs."""
        return set(await self.redis.run("held_urls", self.worker))

    async def stream_items(
        self,
        *,
        label: str | None = None,
        run: int | None = None,
        changed_since: float | None = None,
        batch: int = READ_BATCH,
    ) -> AsyncIterator[list[StoredItem]]:
        """The stored items in crawl order (URL id, then push order), filtered as the
        store contract says, in lists of at most ``batch``.  One script call reads the
        items of ``batch // 10`` URL ids (a page pushes about ten; each call's reply is
        held alone), so memory is bounded by the pages of one call, however big the
        crawl.  Items of the layout before recrawls have their URL's finish time and no
        run."""
        step = max(1, batch // 10)
        want = "" if label is None else "=" + label
        last = int(await self.link.call(lambda: self.client.get(self.redis.key("seq"))) or 0)
        for first in range(1, last + 1, step):
            args = [str(first), str(min(last, first + step - 1)), want]
            reply = await self.link.call(lambda a=args: self.redis.run("item_batch", *a))
            found = [
                item
                for item in stored_items(self.redis.key("items"), reply)
                if (run is None or item.run == run) and (changed_since is None or item.fetched_at >= changed_since)
            ]
            for start in range(0, len(found), batch):
                yield found[start : start + batch]

    async def items(self) -> list[dict[str, Any]]:
        """Every stored item's data, in crawl order (all in memory: see :meth:`stream_items`)."""
        return [item.data async for batch in self.stream_items() for item in batch]

    async def run_record(self, run: int | None = None) -> RunRecord | None:
        """Run ``run`` of this crawl (default: the last any worker started), with its
        samples; None if there is none.  Redis keeps no per-page finish times per run:
        ``page_times`` is [] and ``report`` reads throughput from the samples."""

        async def read() -> RunRecord | None:
            number = run if run is not None else int(await self.client.get(self.redis.key("run_seq")) or 0)
            raw = await self.client.hget(self.redis.key("runs"), str(number)) if number else None
            if raw is None:
                return None
            record = json.loads(raw)
            samples = [json.loads(x) for x in await self.client.lrange(self.redis.key(f"mem:{number}"), 0, -1)]
            tabs = [json.loads(x) for x in await self.client.lrange(self.redis.key(f"tabs:{number}"), 0, -1)]
            started = record.get("started_at") or (samples[0]["t"] if samples else 0.0)
            return RunRecord(
                run_id=number,
                started_at=started,
                finished_at=record.get("finished_at"),
                finish_reason=record.get("finish_reason"),
                summary=record.get("summary"),
                samples=sorted(samples, key=lambda x: x["t"]),
                tabs=sorted(tabs, key=lambda x: x["t"]),
                page_times=[],
            )

        return await self.link.call(read)

    @translated
    async def url_state(self, url: str) -> dict[str, Any]:
        """One URL's record; {} if unknown.  The contract's keys, typed as SQLite's:
        ``state`` str, ``attempts``, ``depth``, ``done_count`` int, ``status`` int or
        None, ``label``, ``parent``, ``last_error`` str or None, ``data`` dict.  Then
        the lease's bookkeeping: ``url``, ``token``, ``worker``, ``done_by``,
        ``done_token``, ``done_call``, ``taken_from`` str; ``ready``, ``lease_until``,
        ``started_at``, ``finished_at``, ``elapsed_s``, ``taken_at`` float (server
        time), ``takeovers`` int; each only when set.  Two reads (the id, then the
        record); cancelled half-way: nothing is returned."""
        job_id = await self.client.hget(self.redis.key("ids"), url)
        if job_id is None:
            return {}
        key = self.redis.key(f"u:{job_id}")
        return typed_record(key, await self.client.hgetall(key))

    @translated
    async def input_position(self, key: str) -> int:
        """Entries of the input ``key`` fed into the frontier so far (0 if none)."""
        return int(await self.client.get(self.redis.key(f"input:{key}")) or 0)
