"""Recrawls as a price monitor runs them, end to end through the CLI and real Chromium:
crawl, let ``recrawl_after_s`` pass, change one product, crawl again, export what
changed (``export --changed-since``)."""

from __future__ import annotations

import datetime as dt
import json
import sqlite3
import sys
import time
from collections import Counter
from contextlib import closing
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import trio

from crawler.config import to_toml
from crawler.httpserver import HttpRequest, Response
from tests.procs import REPO
from tests.shop import start_shop

pytestmark = pytest.mark.chromium

RECRAWL_AFTER_S = 1.0


class PriceShop:
    """Three product pages whose prices the test changes; counts requests per path."""

    def __init__(self) -> None:
        self.prices = {1: 100, 2: 200, 3: 300}
        self.hits: Counter[str] = Counter()

    async def __call__(self, request: HttpRequest) -> Response:
        self.hits[request.path] += 1
        sku = int(request.path.rsplit("/", 1)[-1]) if request.path.startswith("/p/") else 0
        if sku not in self.prices:
            return Response(404, b"no such product")
        body = f"<html><body><h1>Product {sku}</h1><b class=price>{self.prices[sku]}</b></body></html>"
        return Response(body=body.encode())


async def crawler_cli(*args: str, cwd: Path) -> str:
    result = await trio.run_process(
        [sys.executable, "-m", "crawler", *args],
        cwd=cwd,
        env={"PYTHONPATH": str(REPO), "PATH": "/usr/bin:/bin"},
        capture_stdout=True,
        capture_stderr=True,
        check=False,
    )
    assert result.returncode == 0, result.stderr.decode()[-2000:]
    return result.stdout.decode()


def iso_utc(t: float) -> str:
    return dt.datetime.fromtimestamp(t, dt.UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


async def test_a_recrawl_stores_the_changed_product_again_and_changed_since_exports_only_it(nursery, tmp_path):
    shop = PriceShop()
    base = await start_shop(nursery, shop)
    config = tmp_path / "monitor.toml"
    config.write_text(
        to_toml(
            {
                "site": {"name": "monitor"},
                "input": {"urls": [f"{base}/p/{sku}" for sku in shop.prices]},
                "crawl": {"recrawl_after_s": RECRAWL_AFTER_S},
                "extract": {"wait_for": ".price", "fields": {"name": "h1", "price": ".price"}},
                "output": {"db": str(tmp_path / "monitor.db")},
                "pool": {"concurrency": 2},
            }
        )
    )
    await crawler_cli("--config", str(config), cwd=tmp_path)
    first_fetch = fetch_times(tmp_path / "monitor.db")
    assert len(first_fetch) == 3

    await trio.sleep(RECRAWL_AFTER_S + 0.2)
    between = time.time()
    shop.prices[2] = 180  # the only change
    await crawler_cli("--config", str(config), cwd=tmp_path)

    assert all(shop.hits[f"/p/{sku}"] == 2 for sku in shop.prices), shop.hits  # each really fetched again
    second_fetch = fetch_times(tmp_path / "monitor.db")
    assert len(second_fetch) == 3  # one row per product: the unchanged are not stored twice
    assert second_fetch[f"{base}/p/1"] == first_fetch[f"{base}/p/1"]
    assert second_fetch[f"{base}/p/3"] == first_fetch[f"{base}/p/3"]
    assert second_fetch[f"{base}/p/2"] > between

    out = tmp_path / "changed.jsonl"
    await crawler_cli(
        *("export", "--db", str(tmp_path / "monitor.db"), "--changed-since", iso_utc(between)),
        *("--out", str(out)),
        cwd=tmp_path,
    )
    changed = [json.loads(line) for line in out.read_text().splitlines()]
    assert [(item["url"], item["price"]) for item in changed] == [(f"{base}/p/2", "180")]

    everything = tmp_path / "all.jsonl"
    await crawler_cli("export", "--db", str(tmp_path / "monitor.db"), "--out", str(everything), cwd=tmp_path)
    prices = {item["url"]: item["price"] for item in map(json.loads, everything.read_text().splitlines())}
    assert prices == {f"{base}/p/1": "100", f"{base}/p/2": "180", f"{base}/p/3": "300"}

    # The same as Parquet, with the fetch times: it reads back with pyarrow, row for row.
    parquet = tmp_path / "all.parquet"
    await crawler_cli(
        *("export", "--db", str(tmp_path / "monitor.db"), "--format", "parquet", "--meta", "--out", str(parquet)),
        cwd=tmp_path,
    )
    table = pq.read_table(parquet)
    assert table.column_names == ["_url", "_label", "_fetched_at", "url", "status", "name", "price"]
    rows = table.to_pylist()
    assert [(r["_url"], r["price"], r["status"]) for r in rows] == [
        (f"{base}/p/{sku}", price, 200) for sku, price in ((1, "100"), (2, "180"), (3, "300"))
    ]
    assert table.schema.field("status").type == pa.int64()
    assert rows[1]["_fetched_at"] >= iso_utc(between)[:23]  # the changed one: fetched after the change
    assert rows[0]["_fetched_at"] < iso_utc(between)[:23]


def fetch_times(db: Path) -> dict[str, float]:
    """url -> fetched_at of its stored item (one item per product page here)."""
    with closing(sqlite3.connect(db)) as conn:
        rows = conn.execute("SELECT f.url, i.extracted_at FROM items i JOIN frontier f ON f.id = i.url_id").fetchall()
    assert len({url for url, _ in rows}) == len(rows)
    return dict(rows)
