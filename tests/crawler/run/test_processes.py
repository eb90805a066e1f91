"""What a crawl costs in processes: renderers are started per tab, not per page (real Chromium)."""

from __future__ import annotations

import os

import psutil
import pytest
import trio

from tests.crawler.conftest import crawl, make_config

pytestmark = pytest.mark.chromium

RENDERER_SAMPLE_S = 0.02


class RendererCount:
    """The renderer processes (``--type=renderer``) among this process's descendants:
    ``seen`` is every one sampled (a lower bound), ``highest_id`` the highest
    ``--renderer-client-id`` among them (Chromium numbers its child processes in
    order, so it bounds from above how many renderers were ever started)."""

    def __init__(self) -> None:
        self.seen: set[tuple[int, float]] = set()
        self.highest_id = 0

    def sample(self) -> None:
        for proc in psutil.Process(os.getpid()).children(recursive=True):
            try:
                argv = proc.cmdline()
                if "--type=renderer" not in argv:
                    continue
                self.seen.add((proc.pid, proc.create_time()))
                ids = [int(a.split("=", 1)[1]) for a in argv if a.startswith("--renderer-client-id=")]
                self.highest_id = max([self.highest_id, *ids])
            except (psutil.Error, ValueError):
                continue

    async def run(self) -> None:
        while True:
            await trio.to_thread.run_sync(self.sample)
            await trio.sleep(RENDERER_SAMPLE_S)


async def test_renderers_started_stay_under_one_per_three_pages_with_recycling_and_rotation(shop, tmp_path, nursery):
    """200 pages, 4 tabs at once, each tab recycled after 10 pages and each context
    rotated after 50: Chromium starts at most one renderer per three pages (a tab's
    pages share its renderer; no page gets a process of its own), and a rotation
    closes no tab early: each tab serves its 10 pages, bar the last few at the end."""
    pages = 200
    urls = [f"{shop.base}/product/{i}" for i in range(1, pages + 1)]
    cfg = make_config(tmp_path, urls, pool={"concurrency": 4, "recycle_tab_every": 10, "rotate_context_every": 50})
    renderers = RendererCount()
    nursery.start_soon(renderers.run)
    c, _, reason = await crawl(cfg)
    assert reason == "finished" and c.statistics().jobs.done == pages
    totals = c.statistics().browser.pool_totals
    assert totals.tabs_recycled >= pages // 10 - 4 and totals.contexts_rotated >= pages // 50 - 1
    assert totals.tabs_opened <= pages // 10 + 4, totals
    print("RENDERERS", len(renderers.seen), renderers.highest_id, totals)
    assert 0 < len(renderers.seen) <= renderers.highest_id <= pages // 3, (len(renderers.seen), renderers.highest_id)
