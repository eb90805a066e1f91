"""Smoke tests of benchmarks/crawl_bench.py: its measuring helpers, and one small real run."""

from __future__ import annotations

import importlib.util
import io
import subprocess
import sys
import time
from pathlib import Path

import pytest

BENCH_PATH = Path(__file__).resolve().parent.parent / "benchmarks" / "crawl_bench.py"


def _load_bench():
    spec = importlib.util.spec_from_file_location("crawl_bench", BENCH_PATH)
    module = importlib.util.module_from_spec(spec)
    sys.modules.setdefault("crawl_bench", module)
    spec.loader.exec_module(module)
    return module


bench = _load_bench()


def test_slope_and_smoothed_ratio():
    assert bench.least_squares_slope([1, 2, 3], [2, 4, 6]) == pytest.approx(2.0)
    assert bench.least_squares_slope([1], [1]) is None
    samples = [{"pages": p, "browser_pss": 100 if p <= 20 else 110} for p in range(10, 101, 5)]
    assert bench._smoothed_ratio(samples, 100) == pytest.approx(1.1)


def test_verify_items_counts_wrong_and_missing():
    from crawler.demo import expected_item

    base = "http://127.0.0.1:1"
    items = {expected_item(base, i)["url"]: expected_item(base, i) for i in (1, 2, 3)}
    items[expected_item(base, 2)["url"]] = {**expected_item(base, 2), "price": "₩0"}
    check = bench.verify_items(items, base, 4)
    assert (check["correct"], check["mismatched"], check["missing"]) == (2, 1, 1)
    assert list(check["mismatches"][0]["diff"]) == ["price"]


def test_tree_cpu_counts_children_that_exited():
    # A parent that starts a child burning ~0.3 s of CPU, reaps it, and sleeps: the
    # child's CPU must still be counted (through the parent's reaped-children times).
    burn = "import time\nt = time.process_time()\nwhile time.process_time() - t < 0.3: pass"
    parent = subprocess.Popen(
        [
            sys.executable,
            "-c",
            f"import subprocess, sys, time; subprocess.run([sys.executable, '-c', {burn!r}]); time.sleep(30)",
        ]
    )
    try:
        tree = bench.TreeCpu()
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            tree.sample(parent.pid)
            if tree.total >= 0.3:
                break
            time.sleep(0.1)
        assert tree.total >= 0.3
    finally:
        parent.kill()
        parent.wait()


@pytest.mark.chromium
@pytest.mark.timeout(60)
async def test_small_benchmark_run_is_correct_and_measured():
    args = bench.parse_args(["--pages", "30", "--concurrency", "2", "--modes", "recycle", "--interval", "0.5"])
    out = io.StringIO()
    started = time.monotonic()
    results = await bench.bench(args, out=out)
    elapsed = time.monotonic() - started
    run = results["runs"]["recycle"]
    report = out.getvalue()
    assert run["correct"] == 30, report
    assert (run["mismatched"], run["missing"], run["failed"]) == (0, 0, 0), report
    assert run["final_mark_taken"], report
    assert [m["pages"] for m in run["marks"]] == list(range(3, 31, 3)), report
    assert run["pages_per_s"] > 0
    assert run["peak_browser_pss_mib"] > 0
    assert all(m["browser_pss_mib"] > 0 for m in run["marks"]), report
    assert run["cpu_browser_per_page"] > 0 and run["cpu_client_per_page"] > 0, report
    assert "30/30 correct" in report
    assert elapsed < 30, f"took {elapsed:.1f} s"
