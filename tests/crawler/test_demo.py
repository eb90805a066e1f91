"""The README's main job: `python -m crawler demo` serves the demo shop and crawls it end to end."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from crawler.demo import expected_item

pytestmark = pytest.mark.chromium
REPO = Path(__file__).resolve().parents[2]


def run_demo(tmp_path: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "crawler", "demo", "--out", "items.jsonl", "--db", "demo.db", *args],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=240,
        env={"PYTHONPATH": str(REPO), "PATH": "/usr/bin:/bin:/usr/local/bin"},
    )


def test_flat_crawl_of_the_product_pages_exports_every_item_correctly(tmp_path):
    """`python -m crawler demo --config config/products.toml` (the flat list of product
    pages, no handlers) exits 0 and its JSONL export holds every product of the shop,
    each exactly as the shop renders it (the config's 200 products)."""
    proc = run_demo(tmp_path, "--config", str(REPO / "config" / "products.toml"))
    assert proc.returncode == 0, proc.stderr[-3000:]
    items = [json.loads(line) for line in (tmp_path / "items.jsonl").read_text().splitlines()]
    base = items[0]["url"].rsplit("/product/", 1)[0]
    assert items == [expected_item(base, i) for i in range(1, 201)]
    assert "items done      200" in proc.stderr and "failed          0" in proc.stderr
    assert "crawler: products 200/200, reviews 0/" in proc.stderr
