"""The README's main job: `python -m crawler demo` crawls the demo shop end to end."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from crawler.demo import expected_item

pytestmark = pytest.mark.chromium
REPO = Path(__file__).resolve().parents[2]


def test_demo_command_exports_every_item_correctly(tmp_path):
    """A fresh `python -m crawler demo` exits 0 and its JSONL export holds every product
    of the demo shop, each exactly as the shop renders it (the config's 200 products)."""
    proc = subprocess.run(
        [sys.executable, "-m", "crawler", "demo", "--out", "items.jsonl", "--db", "demo.db"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=240,
        env={"PYTHONPATH": str(REPO), "PATH": "/usr/bin:/bin:/usr/local/bin"},
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    items = [json.loads(line) for line in (tmp_path / "items.jsonl").read_text().splitlines()]
    base = items[0]["url"].rsplit("/product/", 1)[0]
    assert items == [expected_item(base, i) for i in range(1, 201)]
    assert "items done      200" in proc.stderr and "failed          0" in proc.stderr
