"""The Prometheus endpoint, /healthz and the heartbeat."""

from __future__ import annotations

import os
import socket
from functools import partial

import httpx
import pytest
import trio
from prometheus_client import generate_latest
from prometheus_client.parser import text_string_to_metric_families

from crawler.errors import ConfigError
from crawler.observe import metrics
from crawler.run.engine import Crawler
from crawler.store.sqlite import SqliteStore
from tests.crawler.conftest import make_config
from tests.crawler.observe.conftest import free_port, wait_until


def parse(text: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    """(sample name, sorted labels) -> value."""
    return {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
    }


class FakeClock:
    def __init__(self):
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


async def test_metrics_lists_every_documented_name_and_healthz_follows_the_heartbeat(tmp_path, nursery):
    """Before the first beat /healthz is 503; after a beat 200 until the beat is older
    than stale_after_s, then 503 (a wedged loop stops beating); /metrics names every
    counter (with _total) and gauge in crawler.observe.metrics, and unknown paths are 404."""
    cfg = make_config(tmp_path, ["http://127.0.0.1:9/x"])
    crawler = Crawler(cfg, SqliteStore(cfg.output.db))
    clock = FakeClock()
    heartbeat = metrics.Heartbeat(stale_after_s=30.0, clock=clock)
    registry = metrics.build_registry(crawler.statistics, heartbeat)
    port = await nursery.start(partial(metrics.serve_metrics, registry, heartbeat))
    async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}") as client:
        assert (await client.get("/healthz")).status_code == 503
        heartbeat.beat()
        clock.now += 29.0
        ok = await client.get("/healthz")
        assert ok.status_code == 200 and ok.text.startswith("ok: heartbeat 29.0 s ago")
        clock.now += 2.0
        stale = await client.get("/healthz")
        assert stale.status_code == 503 and stale.text.startswith("stale: heartbeat 31.0 s ago")

        response = await client.get("/metrics")
        assert response.status_code == 200
        assert response.headers["content-type"].startswith("text/plain; version=")
        families = {f.name: f.type for f in text_string_to_metric_families(response.text)}
        assert {name: "counter" for name in metrics.COUNTERS}.items() <= families.items()
        assert {name: "gauge" for name in metrics.GAUGES}.items() <= families.items()
        assert ("crawler_pages_done_total", ()) in parse(response.text)
        assert (await client.get("/nope")).status_code == 404


async def test_heartbeat_file_mtime_is_renewed_while_the_task_runs(tmp_path, nursery):
    """The heartbeat task creates the file before it reports started, and moves its
    mtime forward at every beat."""
    path = tmp_path / "alive"
    heartbeat = metrics.Heartbeat(path, interval_s=0.05)
    await nursery.start(heartbeat.run)
    first = os.stat(path).st_mtime_ns
    await wait_until(lambda: os.stat(path).st_mtime_ns != first, timeout_s=5)
    assert heartbeat.fresh()
    nursery.cancel_scope.cancel()


async def test_metrics_port_in_use_is_a_configuration_error(tmp_path):
    """A metrics_port another process holds stops the run before any browser starts,
    with a one-line ConfigError naming the key."""
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        cfg = make_config(tmp_path, ["http://127.0.0.1:9/x"], monitor={"metrics_port": port})
        opened = []

        def open_browser():
            opened.append(True)
            raise AssertionError("a browser was opened")

        crawler = Crawler(cfg, SqliteStore(cfg.output.db), open_browser=open_browser)
        with pytest.raises(ConfigError, match=rf"\[monitor\] metrics_port: cannot listen on 127.0.0.1:{port}"):
            await crawler.run()
        assert opened == []


@pytest.mark.chromium
async def test_endpoint_is_scraped_during_a_real_crawl_of_the_demo_shop(shop, tmp_path, nursery):
    """Scraped with httpx while a crawl runs: pages in flight and leases show the work,
    the pool's tabs and the browser's own page targets agree, the browser tree's PSS
    is measured, /healthz is 200; at the end pages done, failures by reason and
    recycles match the crawler's own counts."""
    port = free_port()
    urls = [f"{shop.base}/slow/{i}?s=0.2" for i in range(1, 17)] + [f"{shop.base}/status/404/1?times=9"]
    cfg = make_config(
        tmp_path,
        urls,
        pool={"concurrency": 2, "recycle_tab_every": 3},
        retry={"max_attempts": 1},
        monitor={"metrics_port": port, "sample_interval_s": 0.1, "invariant_interval_s": 0.2},
    )
    crawler = Crawler(cfg, SqliteStore(cfg.output.db))
    scrapes: list[dict] = []
    health: list[int] = []

    async def scrape():
        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}", timeout=10) as client:
            await wait_until(lambda: crawler.metrics_port is not None, timeout_s=60)
            while True:
                try:
                    response = await client.get("/metrics")
                    health.append((await client.get("/healthz")).status_code)
                except httpx.TransportError:
                    return  # the run ended and took the endpoint with it
                scrapes.append(parse(response.text))
                await trio.sleep(0.05)

    nursery.start_soon(scrape)
    assert await crawler.run() == "finished"

    def value(sample: dict, name: str, **labels: str) -> float:
        return sample[(name, tuple(sorted(labels.items())))]

    assert len(scrapes) >= 5
    busy = [s for s in scrapes if value(s, "crawler_pages_in_flight") >= 1 and value(s, "crawler_tab_leases") >= 1]
    assert busy, "no scrape saw a page in flight"
    assert any(value(s, "crawler_browser_pss_bytes") > 10 * 2**20 for s in scrapes)
    assert any(value(s, "crawler_browser_processes") >= 2 for s in scrapes)
    assert any(value(s, "crawler_process_pss_bytes") > 0 for s in scrapes)
    assert any(value(s, "crawler_browser_page_targets") >= 1 for s in scrapes)
    assert all(value(s, "crawler_browser_contexts") <= 2 for s in scrapes)
    assert set(health) == {200}
    done = [value(s, "crawler_pages_done_total") for s in scrapes]
    stats = crawler.statistics()
    assert done == sorted(done) and done[-1] <= stats.jobs.done == 16
    last = scrapes[-1]
    assert value(last, "crawler_pool_concurrency") == 2 and value(last, "crawler_recycle_tab_every") == 3
    assert value(last, "crawler_invariant_violations_total") == 0
    # The final figures, read the way a last scrape would see them.
    final = parse(generate_latest(metrics.build_registry(crawler.statistics, metrics.Heartbeat())).decode())
    assert value(final, "crawler_pages_done_total") == 16
    assert value(final, "crawler_pages_failed_total", reason="http_404") == 1
    assert value(final, "crawler_tabs_recycled_total") == stats.browser.pool_totals.tabs_recycled >= 4
    assert value(final, "crawler_watchdog_expiries_total") == 0
    assert value(final, "crawler_browser_restarts_total") == 0
