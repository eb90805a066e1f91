"""``python -m crawler export --config FILE`` reads the store the config names: Redis here."""

from __future__ import annotations

import csv
import json
import subprocess
import sys

import trio

from crawler.config import to_toml
from crawler.store import StoreSettings
from crawler.store.redis.store import open_redis_store
from tests.crawler.store.redis.conftest import make_redis_config, redis_config_dict

URLS = [f"http://shop.test/product/{i}" for i in range(1, 4)]


async def test_export_writes_the_redis_items_in_crawl_order(tmp_path, redis_server, crawl_name):
    """Items completed by any worker come out as JSONL (and CSV) in crawl order;
    pending and failed URLs have no item."""
    cfg = make_redis_config(redis_server, crawl_name, URLS)
    async with open_redis_store(StoreSettings.of(cfg)) as store:
        await store.add_urls(URLS)
        jobs = [await store.claim() for _ in URLS]
        await store.complete(jobs[2], [{"url": URLS[2], "name": "Cap #3", "goods": {"id": 3}}], [], 200, 0.1)
        await store.complete(jobs[0], [{"url": URLS[0], "name": "Tee #1", "goods": {"id": 1}}], [], 200, 0.1)
        await store.fail(jobs[1], "http_404: gone", 404)
    config = tmp_path / "export.toml"
    config.write_text(to_toml(redis_config_dict(redis_server, crawl_name, URLS)))

    out = tmp_path / "items.jsonl"
    result = await trio.run_process(
        [sys.executable, "-m", "crawler", "export", "--config", str(config), "--format", "jsonl", "--out", str(out)],
        capture_stdout=True,
        capture_stderr=True,
        check=False,
    )
    assert result.returncode == 0, result.stderr.decode()
    assert "exported 2 items" in result.stderr.decode()
    assert [json.loads(line) for line in out.read_text().splitlines()] == [
        {"url": URLS[0], "name": "Tee #1", "goods": {"id": 1}},
        {"url": URLS[2], "name": "Cap #3", "goods": {"id": 3}},
    ]

    out_csv = tmp_path / "items.csv"
    result = await trio.run_process(
        [sys.executable, "-m", "crawler", "export", "--config", str(config), "--format", "csv", "--out", str(out_csv)],
        stdin=subprocess.DEVNULL,
        capture_stderr=True,
        check=False,
    )
    assert result.returncode == 0, result.stderr.decode()
    with open(out_csv, newline="", encoding="utf-8") as f:  # noqa: ASYNC230 - a small local file
        rows = list(csv.DictReader(f))
    assert [(r["url"], json.loads(r["goods"])) for r in rows] == [(URLS[0], {"id": 1}), (URLS[2], {"id": 3})]


async def test_export_reads_a_crawl_written_by_the_previous_layout(tmp_path, redis_server, crawl_name):
    """A crawl whose items were stored one JSON object per URL (the previous layout)
    still exports, each object as one item, in crawl order with the items of this
    version."""
    cfg = make_redis_config(redis_server, crawl_name, URLS)
    async with open_redis_store(StoreSettings.of(cfg)) as store:
        await store.add_urls(URLS[:2])
        old, new = await store.claim(), await store.claim()
        await store.complete(new, [{"url": URLS[1], "n": 1}, {"url": URLS[1], "n": 2}], [], 200, 0.1)
        # What the previous version's complete wrote for the first URL:
        await store.complete(old, [], [], 200, 0.1)
        await store.client.hset(store.key("items"), {str(old.id): json.dumps({"url": URLS[0], "n": 0})})
    config = tmp_path / "export.toml"
    config.write_text(to_toml(redis_config_dict(redis_server, crawl_name, URLS)))
    out = tmp_path / "items.jsonl"
    result = await trio.run_process(
        [sys.executable, "-m", "crawler", "export", "--config", str(config), "--format", "jsonl", "--out", str(out)],
        capture_stdout=True,
        capture_stderr=True,
        check=False,
    )
    assert result.returncode == 0, result.stderr.decode()
    assert [json.loads(line) for line in out.read_text().splitlines()] == [
        {"url": URLS[0], "n": 0},
        {"url": URLS[1], "n": 1},
        {"url": URLS[1], "n": 2},
    ]


async def test_export_from_an_unreachable_redis_is_a_one_line_error(tmp_path, redis_server, crawl_name):
    data = redis_config_dict(redis_server, crawl_name, URLS, store={"url": "redis://127.0.0.1:1/0"})
    config = tmp_path / "dead.toml"
    config.write_text(to_toml(data))
    result = await trio.run_process(
        [sys.executable, "-m", "crawler", "export", "--config", str(config), "--out", str(tmp_path / "x.jsonl")],
        capture_stdout=True,
        capture_stderr=True,
        check=False,
    )
    assert result.returncode == 2
    assert result.stderr.decode().strip().splitlines()[-1].startswith("crawler: error: ")
    assert "cannot reach Redis" in result.stderr.decode()


async def test_report_reads_a_redis_crawls_last_run_and_plots_it(tmp_path, redis_server, crawl_name):
    """``report --config`` on a Redis crawl whose worker was killed (no summary): the
    last run's figures from its memory samples, pages done counted from them, and a
    plot whose throughput comes from the samples."""
    cfg = make_redis_config(redis_server, crawl_name, URLS)
    async with open_redis_store(StoreSettings.of(cfg)) as store:
        await store.add_urls(URLS)
        await store.start_run()
        t0 = await store.server_time()
        for n, _ in enumerate(URLS, start=1):
            job = await store.claim()
            await store.complete(job, [{"url": job.url}], [], 200, 0.1)
            sample = {"t": t0 + n, "pages_done": n, "browser_pss": 300 << 20, "crawler_pss": 50 << 20}
            await store.add_memory_sample({**sample, "processes": 3, "tabs": 2, "contexts": 1})
    config = tmp_path / "report.toml"
    config.write_text(to_toml(redis_config_dict(redis_server, crawl_name, URLS)))
    out = tmp_path / "plot.png"
    result = await trio.run_process(
        [sys.executable, "-m", "crawler", "report", "--config", str(config), "--out", str(out)],
        capture_stdout=True,
        capture_stderr=True,
        check=False,
    )
    assert result.returncode == 0, result.stderr.decode()
    text = result.stdout.decode()
    assert "run 1: not finished" in text and "pages done      3 (no summary" in text
    assert "browser PSS     first 300 MiB" in text and "memory samples  3" in text
    assert out.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
