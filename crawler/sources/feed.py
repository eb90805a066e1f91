"""The input feed: the config's URLs stream into the frontier alongside the crawl.

An input may be huge (an id range of 10^11, a file of 10^7 lines): inserting it all
before the first page would take minutes, fill the disk and ignore Ctrl-C.  Instead
:class:`InputFeed` keeps about ``[input] lookahead`` URLs pending ahead of the
workers: it tops the frontier up whenever fewer than half of them are left, reading
the input in batches off the event loop (files block), and it records in the store
how many input entries it has fed (:meth:`~crawler.store.Store.save_input_position`),
after the batch is added.  A rerun continues the input at that entry; a crash between
the add and the save re-adds one batch, which the frontier drops as known: nothing is
lost and nothing is stored twice.

A bad entry (a ``file:`` URL, a malformed id) is a ConfigError naming its source.  In
the first batch, fed before any page is fetched, it stops the crawl before it starts;
later, it stops the feeding: the workers finish the URLs fed before it, the crawl
ends with the error as its finish reason, and the rerun, once the entry is fixed,
continues where it stopped.
"""

from __future__ import annotations

import itertools
import logging
from collections.abc import Callable, Iterator
from pathlib import Path

import attrs
import trio

from crawler.config import InputSection
from crawler.errors import ConfigError
from crawler.sources.inputs import input_key, iter_urls
from crawler.store.base import Store

log = logging.getLogger(__name__)

FEED_POLL_S = 0.5  # how often the feed looks at how many URLs are pending
FEED_BATCH = 1000  # input entries read and added per transaction, at most


@attrs.frozen
class FeedStatistics:
    position: int  # input entries fed so far (all runs)
    fed_this_run: int  # entries fed in this run
    added_this_run: int  # of those, URLs that were new to the frontier
    exhausted: bool  # the whole input is in the frontier (or the frontier is full)


class InputFeed:
    """Feeds the ``[input]`` section ``inp`` into ``store``, ``lookahead`` URLs ahead of the
    workers, never past ``max_urls`` in the frontier (0: no cap); file paths are
    relative to ``base_dir``, and errors name ``source`` (the config file).
    ``on_fed`` is called after every batch added (the job runner wakes idle workers)."""

    def __init__(
        self,
        inp: InputSection,
        store: Store,
        *,
        base_dir: str | Path = ".",
        source: str = "<config>",
        max_urls: int = 0,
        on_fed: Callable[[], None] = lambda: None,
    ):
        self._input = inp
        self._base_dir = base_dir
        self._source = source
        self._store = store
        self._on_fed = on_fed
        self._key = input_key(inp, base_dir)
        self._lookahead = inp.lookahead
        self._max_urls = max_urls
        self._reads_files = bool(inp.url_file or inp.ids_file or inp.sitemaps)  # blocking
        # A sitemap server may stall a read for its whole deadline (30 s): a feed cancelled
        # meanwhile (the run ends) leaves that thread behind rather than wait for it; the
        # batch it was reading is not recorded, so the next run reads it again.
        self._abandon_reads = bool(inp.sitemaps)
        self._urls: Iterator[str] | None = None
        self._start = 0
        self._position = 0
        self._added = 0
        self._exhausted = False

    def statistics(self) -> FeedStatistics:
        return FeedStatistics(self._position, self._position - self._start, self._added, self._exhausted)

    @property
    def exhausted(self) -> bool:
        return self._exhausted

    async def fill(self) -> int:
        """Top the frontier up to ``lookahead`` pending URLs (if fewer than half are
        left), or until the input ends; returns how many new URLs it added.  Raises
        ConfigError for a bad entry (what was fed before it stays fed), StoreError if
        the store fails.  Cancelled half-way: every batch added so far is recorded,
        and the one in flight is added again by the next run if it was not."""
        if self._urls is None:
            self._start = self._position = await self._store.input_position(self._key)
            self._urls = iter_urls(self._input, self._position, base_dir=self._base_dir, source=self._source)
        counts = await self._store.counts()
        pending = counts["pending"]
        if self._exhausted or pending * 2 > self._lookahead:
            return 0
        added = 0
        while not self._exhausted and pending + added < self._lookahead:
            want = min(FEED_BATCH, self._lookahead - pending - added)
            if self._reads_files:  # a file read blocks: off the event loop
                batch, bad = await trio.to_thread.run_sync(
                    _take, self._urls, want, abandon_on_cancel=self._abandon_reads
                )
            else:  # urls and id ranges are computed: no thread (nor its wait under a test's MockClock)
                await trio.lowlevel.checkpoint()
                batch, bad = _take(self._urls, want)
            if batch:
                new = await self._store.add_urls(batch)
                added += new
                self._added += new
                self._position += len(batch)
                await self._store.save_input_position(self._key, self._position)
                self._on_fed()
            if bad is not None:  # the entries before it are fed; the rerun starts at it
                self._exhausted = True
                raise bad
            if len(batch) < want:
                self._exhausted = True
                log.info("input fed: all %d entries", self._position)
            elif self._max_urls and sum(counts.values()) + added >= self._max_urls:
                self._exhausted = True  # the frontier is full ([crawl] max_pages): feeding more drops it
                log.info("input: the frontier is full (max_pages %d) at entry %d", self._max_urls, self._position)
        return added

    async def run(self) -> None:
        """Keep the frontier topped up until the input is exhausted.  Raises what
        :meth:`fill` raises (the crawl's owner decides what a bad entry does)."""
        while not self._exhausted:
            await trio.sleep(FEED_POLL_S)
            await self.fill()


def _take(urls: Iterator[str], n: int) -> tuple[list[str], ConfigError | None]:
    """Up to ``n`` URLs, and the error of a bad entry that ended the batch early."""
    batch: list[str] = []
    try:
        batch.extend(itertools.islice(urls, n))
    except ConfigError as exc:
        return batch, exc
    return batch, None
