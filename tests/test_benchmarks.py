"""Smoke tests of benchmarks/crawl_bench.py: its measuring helpers, and one small real run."""

from __future__ import annotations

import importlib.util
import io
import json
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


COMPARE_PATH = Path(__file__).resolve().parent.parent / "benchmarks" / "compare.py"


@pytest.mark.chromium
@pytest.mark.timeout(150)
def test_compare_runs_the_floor_and_this_crawler_on_the_same_pages_and_counts_their_trees(tmp_path):
    """benchmarks/compare.py, small: both contenders do every page right, their whole
    tree's CPU is counted (the orphans Chromium leaves included: more than the floor's
    own rusage shows), and renderers are seen; the peers are skipped, not failed,
    where their environment is missing."""
    out = tmp_path / "compare.json"
    proc = subprocess.run(
        [
            sys.executable,
            str(COMPARE_PATH),
            "--pages",
            "12",
            "--concurrency",
            "2",
            "--profiles",
            "light",
            "--contenders",
            "raw,ours",
            "--json",
            str(out),
        ],  # fmt: skip
        capture_output=True,
        text=True,
        timeout=140,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    rows = {r["contender"]: r for r in json.loads(out.read_text())}
    for row in rows.values():
        assert row["check"] == {"right": 12, "wrong": 0, "missing": 0}, row
        assert row["cpu_s_per_page"] > 0 and row["renderers"] >= 1 and row["peak_pss_mib"] > 0, row
    assert rows["raw"]["cpu_s_per_page"] > rows["raw"]["cpu_s_per_page_self_reported"]


SCALE_PATH = Path(__file__).resolve().parent.parent / "benchmarks" / "redis_scale.py"


def test_redis_scale_projects_the_workers_one_redis_carries_from_its_cpu_per_page():
    """benchmarks/redis_scale.py's projection: Redis at 2 ms/page fills a core at 500
    pages/s, which is 100 workers of 5 pages/s; the dearest run's CPU per page is used."""
    spec = importlib.util.spec_from_file_location("redis_scale", SCALE_PATH)
    scale = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(scale)
    runs = [
        {"workers": 1, "steady_pages_per_s": 5.0, "redis_cpu_ms_per_page": 1.5},
        {"workers": 2, "steady_pages_per_s": 9.0, "redis_cpu_ms_per_page": 2.0},
    ]
    p = scale.projection(runs)
    assert p["ceiling_pages_per_s"] == pytest.approx(500) and p["workers_at_ceiling"] == pytest.approx(100)


@pytest.mark.chromium
@pytest.mark.timeout(120)
def test_redis_scale_small_run_on_one_redis_and_a_cluster_is_correct_and_measured(tmp_path):
    """benchmarks/redis_scale.py, tiny (8 pages, one worker, both topologies): every
    page done once with its item, and Redis's CPU and memory deltas measured (> 0)."""
    out = tmp_path / "scale.json"
    proc = subprocess.run(
        [sys.executable, str(SCALE_PATH), "--pages", "8", "--workers", "1", "--json", str(out)],
        capture_output=True,
        text=True,
        timeout=110,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    results = json.loads(out.read_text())
    assert [r["topology"] for r in results["runs"]] == ["single", "cluster"]
    for run in results["runs"]:
        assert run["done"] == 8 and run["done_once"] and not run["wrong_items"], run
        assert run["redis_cpu_ms_per_page"] > 0 and run["redis_kib_per_1000_urls"] > 0, run
    assert set(results["projection"]) == {"single", "cluster"}
