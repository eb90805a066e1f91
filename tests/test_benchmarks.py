"""Smoke tests of the benchmarks: crawl_bench.py's measuring helpers and one small real
run; compare.py's shop (paint beacon, render pages), its counts and small real runs."""

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


BENCHMARKS_DIR = Path(__file__).resolve().parent.parent / "benchmarks"
COMPARE_PATH = BENCHMARKS_DIR / "compare.py"


def _load_compare():
    sys.path.insert(0, str(BENCHMARKS_DIR))  # compare.py imports bench_shop from its folder
    try:
        spec = importlib.util.spec_from_file_location("compare", COMPARE_PATH)
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
        return module
    finally:
        sys.path.remove(str(BENCHMARKS_DIR))


compare = _load_compare()


def _get(url_path: str, **query: str):
    from crawler.httpserver import HttpRequest

    return HttpRequest(method="GET", path=url_path, query={k: [v] for k, v in query.items()}, headers={})


async def test_bench_shop_puts_the_paint_beacon_in_each_page_and_counts_it_per_run():
    """Every HTML page the benchmark serves carries the rAF beacon first in its head (the
    demo's and the render pages); a beacon hit counts its path in the current run only;
    a new run counts from zero; the demo's other answers pass through unchanged."""
    shop = compare.BenchShop(5)
    for path in ("/product/2", "/heavy/product/2", "/render/product/2"):
        page = (await shop(_get(path))).body.decode()
        assert page.index("requestAnimationFrame") < page.index("</head>") < page.index("<h1>"), path
    assert (await shop(_get("/api/goods/2"))).body == (await shop.demo(_get("/api/goods/2"))).body
    first = shop.begin_run()
    for path in ("/product/2", "/product/2", "/product/3"):
        assert (await shop(_get("/beacon/paint", path=path))).status == 204
    assert (first.painted, first.beacons) == ({"/product/2", "/product/3"}, 3)
    assert compare.painted(first, "light", 2) == 1  # only the run's own pages count
    assert shop.begin_run().painted == set() and first.painted == {"/product/2", "/product/3"}


async def test_render_page_holds_lazy_images_and_pages_its_reviews_and_the_shop_counts_images():
    """The render page has RENDER_IMAGES lazy images and an observed end of its review
    list; the reviews API gives them REVIEWS_PER_PAGE at a time, 404 past the last page;
    each image requested counts once for its (product, image)."""
    from bench_shop import RENDER_IMAGES, RENDER_REVIEWS, REVIEWS_PER_PAGE

    shop = compare.BenchShop(5)
    page = (await shop(_get("/render/product/4"))).body.decode()
    assert page.count('loading="lazy"') == RENDER_IMAGES and "IntersectionObserver" in page
    pages = -(-RENDER_REVIEWS // REVIEWS_PER_PAGE)
    seen = []
    for n in range(1, pages + 1):
        data = json.loads((await shop(_get("/render/api/reviews/4", page=str(n)))).body)
        assert (data["page"], data["pages"]) == (n, pages)
        seen += [r["id"] for r in data["reviews"]]
    assert seen == [r["id"] for r in compare.render_reviews(4)] and len(seen) == RENDER_REVIEWS
    assert (await shop(_get("/render/api/reviews/4", page=str(pages + 1)))).status == 404
    run = shop.begin_run()
    for path in ("/render/img/4/1.png", "/render/img/4/1.png", "/render/img/4/2.png"):
        assert (await shop(_get(path))).status == 200
    assert (await shop(_get(f"/render/img/4/{RENDER_IMAGES + 1}.png"))).status == 404
    assert (await shop(_get("/render/product/6"))).status == 404  # past the shop's products
    assert run.images == {(4, 1), (4, 2)}


def test_compare_counts_render_content_and_flags_rows_that_painted_less_than_the_floor(tmp_path, capsys):
    """check_render counts the right product's reviews in the items against all of
    them, and the images the shop saw; the table flags a row that painted fewer pages
    than the floor's median, and not one that painted as many."""
    base = "http://127.0.0.1:1"
    items = tmp_path / "items.jsonl"
    reviews = [r["id"] for r in compare.render_reviews(1)]
    items.write_text(
        json.dumps({"url": f"{base}/render/product/1", "reviews": reviews[:10] + ["2-1"]})
        + "\n"
        + json.dumps({"url": f"{base}/render/product/2"})
        + "\n"
    )
    seen = compare.RunCounts(images={(1, 1), (1, 2), (3, 1)})
    assert compare.check_render(items, seen, base, 2) == {
        "reviews": 10,
        "reviews_expected": 2 * compare.RENDER_REVIEWS,
        "images": 2,
        "images_expected": 2 * compare.RENDER_IMAGES,
    }
    row = {"profile": "light", "concurrency": 8, "pages": 10, "pages_per_s": 1.0, "cpu_s_per_page": 0.1}
    row |= {"peak_pss_mib": 100.0, "renderers": 5}
    compare.print_table(
        [
            {**row, "contender": "raw", "painted": 10},
            {**row, "contender": "ours", "painted": 10},
            {**row, "contender": "raw-hidden", "painted": 3},
        ]
    )
    lines = {line.split(" | ")[2]: line for line in capsys.readouterr().out.splitlines() if line.startswith("| light")}
    assert "fewer than the floor" in lines["raw-hidden"] and "3/10" in lines["raw-hidden"]
    assert "fewer" not in lines["ours"] and "10/10" in lines["ours"]


@pytest.mark.chromium
@pytest.mark.timeout(150)
def test_compare_runs_the_floor_and_this_crawler_on_the_same_pages_and_counts_their_trees(tmp_path):
    """benchmarks/compare.py, small: both contenders do every page right and paint every
    page (the floor's tabs by focus emulation, ours' while leased), their whole tree's
    CPU is counted (the orphans Chromium leaves included: more than the floor's own
    rusage shows), and renderers are seen."""
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
        assert row["painted"] == 12, row
        assert row["cpu_s_per_page"] > 0 and row["renderers"] >= 1 and row["peak_pss_mib"] > 0, row
    assert rows["raw"]["cpu_s_per_page"] > rows["raw"]["cpu_s_per_page_self_reported"]


@pytest.mark.chromium
@pytest.mark.timeout(90)
def test_compare_render_profile_reports_what_the_floors_scrolling_reached(tmp_path):
    """The render profile, small, the floor alone: every page right and painted, and
    reviews and images counted, some found by its naive scroll, against all there are;
    the hidden floor paints fewer pages and is flagged for it."""
    out = tmp_path / "compare.json"
    proc = subprocess.run(
        [
            sys.executable,
            str(COMPARE_PATH),
            "--pages",
            "6",
            "--concurrency",
            "2",
            "--profiles",
            "render",
            "--contenders",
            "raw,raw-hidden",
            "--json",
            str(out),
        ],  # fmt: skip
        capture_output=True,
        text=True,
        timeout=80,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    rows = {r["contender"]: r for r in json.loads(out.read_text())}
    raw = rows["raw"]
    assert raw["check"] == {"right": 6, "wrong": 0, "missing": 0} and raw["painted"] == 6, raw
    content = raw["render"]
    assert (content["reviews_expected"], content["images_expected"]) == (6 * 30, 6 * 10), content
    assert 0 < content["reviews"] <= 180 and 0 < content["images"] <= 60, content
    assert rows["raw-hidden"]["painted"] < 6, rows["raw-hidden"]
    assert "fewer than the floor" in proc.stdout


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
