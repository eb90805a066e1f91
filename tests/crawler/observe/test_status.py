"""The Grafana dashboard (docker/grafana/crawler.json) and the status page (``/`` of the
metrics port), each against a real crawl of the fixture shop."""

from __future__ import annotations

import json
import re
from pathlib import Path

import httpx
import pytest
import trio
from prometheus_client.parser import text_string_to_metric_families

import cdp
from crawler.run.engine import Crawler
from crawler.store.sqlite import SqliteStore
from tests.crawler.conftest import make_config
from tests.crawler.observe.conftest import free_port, wait_until

pytestmark = pytest.mark.chromium
DASHBOARD = Path(__file__).resolve().parents[3] / "docker" / "grafana" / "crawler.json"
# Names the dashboard may query before /metrics serves them: crawler_sessions_retired_total
# was, until issue 13's session pool (merged) added it; none is pending now.
PENDING_METRICS: set[str] = set()


def dashboard_metrics() -> set[str]:
    """Every crawler_* name in the dashboard's queries (panels and template variables)."""
    text = DASHBOARD.read_text()
    dashboard = json.loads(text)
    queries = [t["expr"] for p in dashboard["panels"] for t in p["targets"]]
    queries += [v["definition"] for v in dashboard["templating"]["list"] if "definition" in v]
    return {name for q in queries for name in re.findall(r"\bcrawler_[a-z_]+\b", q)}


def served_metrics(text: str) -> set[str]:
    """The names a query may use for what /metrics serves: each family, counters with
    their ``_total``, and every sample name."""
    names = set()
    for family in text_string_to_metric_families(text):
        names.add(family.name)
        if family.type == "counter":
            names.add(family.name + "_total")
        names.update(s.name for s in family.samples)
    return names


async def test_every_metric_the_grafana_dashboard_queries_is_served_during_a_crawl(shop, tmp_path, nursery):
    """The dashboard has the panels it promises (throughput, failures by reason, browser
    PSS, tabs and contexts, sessions retired), and every metric its queries name is in
    /metrics scraped from a short real crawl (crawler_sessions_retired_total included)."""
    titles = {p["title"] for p in json.loads(DASHBOARD.read_text())["panels"]}
    assert {
        "Throughput (pages/s)",
        "Failures by reason",
        "Browser memory (PSS)",
        "Tabs and contexts",
        "Sessions retired",
    } <= titles
    port = free_port()
    urls = [f"{shop.base}/slow/{i}?s=0.3" for i in range(1, 5)] + [f"{shop.base}/status/404/5?times=9"]
    cfg = make_config(tmp_path, urls, retry={"max_attempts": 1}, monitor={"metrics_port": port})
    crawler = Crawler(cfg, SqliteStore(cfg.output.db))
    scraped: list[str] = []

    async def scrape():
        await wait_until(lambda: crawler.metrics_port is not None, timeout_s=60)
        async with httpx.AsyncClient(timeout=10) as client:
            while True:
                try:
                    scraped.append((await client.get(f"http://127.0.0.1:{port}/metrics")).text)
                except httpx.TransportError:
                    return
                await trio.sleep(0.1)

    nursery.start_soon(scrape)
    assert await crawler.run() == "finished"
    assert scraped
    wanted = dashboard_metrics()
    assert len(wanted) >= 15
    missing = wanted - served_metrics(scraped[-1])
    assert missing <= PENDING_METRICS, f"the dashboard queries metrics nobody serves: {sorted(missing)}"
    assert "crawler_sessions_retired_total" in wanted


READ_STATUS = """(() => {
  const text = (id) => document.getElementById(id).textContent;
  return {
    state: text('state'), total: +text('urls-total'), done: +text('urls-done'), failed: +text('urls-failed'),
    pending: +text('urls-pending'), rate: text('rate'),
    points: +document.getElementById('memory').dataset.points,
    polyline: !!document.querySelector('#memory polyline'),
    failures: Array.from(document.querySelectorAll('#failures tr[data-reason]'),
                         (tr) => [tr.dataset.reason, +tr.cells[1].textContent]),
    snapshots: Array.from(document.querySelectorAll('#snapshots li[data-kind]'), (li) => li.textContent),
    type: document.contentType,
  };
})()"""


async def read_status_page(tab: cdp.Tab, url: str) -> dict:
    async with tab.listen("Page.loadEventFired") as loads:
        with trio.fail_after(10):
            reply = await tab.send("Page.navigate", url=url)
            assert "errorText" not in reply, reply
            await loads.receive()
    result = await tab.send("Runtime.evaluate", expression=READ_STATUS, returnByValue=True)
    assert "exceptionDetails" not in result, result
    return result["result"]["value"]


async def test_status_page_shows_counts_rate_memory_failures_and_snapshots_in_a_browser(shop, tmp_path, nursery):
    """Loaded in headless Chromium while a crawl runs (two pages that time out, then
    slow product pages): the page is text/html and, still running, shows every URL
    counted (done + failed + pending = total), a rate, a memory chart of several
    samples, the ``timeout`` failures and their first snapshot."""
    port = free_port()
    never = [f"{shop.base}/never/{i}" for i in (1, 2)]
    slow = [f"{shop.base}/slow/{i}?s=0.5" for i in range(3, 15)]
    cfg = make_config(
        tmp_path,
        never + slow,
        watchdog={"timeout_s": 1.0, "jitter_s": 0.0},
        retry={"max_attempts": 1},
        debug={"snapshots_dir": str(tmp_path / "snaps")},
        monitor={"metrics_port": port, "progress_interval_s": 0.2, "sample_interval_s": 0.1},
    )
    crawler = Crawler(cfg, SqliteStore(cfg.output.db))
    readings: list[dict] = []
    async with cdp.launch() as browser, browser.new_context() as context, context.new_tab() as tab:
        await tab.send("Page.enable")
        finished = trio.Event()

        async def run_crawl():
            assert await crawler.run() in ("finished", "interrupted")
            finished.set()

        nursery.start_soon(run_crawl)
        await wait_until(lambda: crawler.metrics_port is not None, timeout_s=60)
        while not finished.is_set():
            reading = await read_status_page(tab, f"http://127.0.0.1:{port}/")
            if crawler.statistics().finish_reason != "running":
                break
            readings.append(reading)
            if reading["snapshots"] and reading["points"] >= 3 and reading["failed"] == 2:
                break
            await trio.sleep(0.2)
        crawler.stop()  # seen what it had to show: the rest of the crawl is not needed
        await finished.wait()
    assert readings, "the crawl ended before the page could be read"
    last = readings[-1]
    assert last["type"] == "text/html" and last["state"] == "running"
    assert last["total"] == 14 and last["done"] + last["failed"] + last["pending"] == 14
    assert last["failed"] == 2 and ["timeout", 2] in last["failures"]
    assert any("timeout-000001.json" in s for s in last["snapshots"])
    assert last["points"] >= 3 and last["polyline"]
    assert float(last["rate"].split()[0]) >= 0
