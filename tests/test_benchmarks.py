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


def _load_benchmark(name: str):
    """A module of benchmarks/ by file, its folder on sys.path while it loads (it
    imports its neighbours: compare, catalogue, http_bench)."""
    sys.path.insert(0, str(BENCHMARKS_DIR))
    try:
        spec = importlib.util.spec_from_file_location(name, BENCHMARKS_DIR / f"{name}.py")
        module = importlib.util.module_from_spec(spec)
        sys.modules.setdefault(name, module)
        spec.loader.exec_module(module)
        return module
    finally:
        sys.path.remove(str(BENCHMARKS_DIR))


def test_parsers_agree_on_the_demo_pages_and_each_is_timed(monkeypatch, capsys):
    """benchmarks/parsers.py: selectolax, lxml and parsel read the same fields and links
    from both pages (og tags added), and one short round times each of them."""
    parsers = _load_benchmark("parsers")
    monkeypatch.setattr(parsers, "BATCH_S", 0.01)
    pages = {name: parsers.with_og(make()) for name, make in parsers.PAGES.items()}
    assert parsers.check(pages) == []
    fields = parsers.selectolax_fields(pages["product"])
    assert fields["og_title"] and fields["h1"] and len(fields["links"]) >= 3, fields
    results = parsers.measure(pages, 1, out=io.StringIO())
    assert {p: set(by) for p, by in results.items()} == {p: set(parsers.PARSERS) for p in pages}
    assert all(ms > 0 for by in results.values() for ms in by.values())


def test_catalogue_server_serves_its_truth_and_exits_when_its_parent_dies(tmp_path):
    """benchmarks/catalogue.py: the index, a subset index, listings, product pages whose
    fields (read as the floor reads them) are the truth, a reviews page empty in its HTML
    with its API; the requests counted by kind; and the server gone once its parent is
    killed (SIGKILL: no chance to close anything)."""
    import httpx
    from selectolax.lexbor import LexborHTMLParser

    http_bench = _load_benchmark("http_bench")
    catalogue = sys.modules["catalogue"]
    with http_bench.Server(45, [10], reviews_every=5) as server:
        get = lambda path: httpx.get(server.base + path, timeout=10)  # noqa: E731
        index = LexborHTMLParser(get("/").content)
        assert len(index.css(catalogue.INDEX_FOLLOW)) == catalogue.listings(45) == 3
        assert len(LexborHTMLParser(get("/sub/10/").content).css(catalogue.INDEX_FOLLOW)) == 1
        assert len(LexborHTMLParser(get("/list/3").content).css(catalogue.LISTING_FOLLOW)) == 5
        page = LexborHTMLParser(get("/product/5").content)
        found = {k: page.css_first(s).text().strip() for k, s in catalogue.PRODUCT_FIELDS.items()}
        found["reviews"] = [n.text() for n in page.css(catalogue.PRODUCT_REVIEWS)]
        assert found == catalogue.product(5)
        assert page.css_first(catalogue.REVIEWS_FOLLOW).attributes["href"] == "/reviews/5"
        assert LexborHTMLParser(get("/product/6").content).css_first(catalogue.REVIEWS_FOLLOW) is None
        assert LexborHTMLParser(get("/reviews/5").content).css(catalogue.REVIEW_ITEMS) == []
        assert get("/api/reviews/5").json() == {"reviews": catalogue.all_reviews(5)}
        assert get("/product/46").status_code == 404
        stats = server.stats()
        assert stats["requests"] == 8 and stats["by_kind"]["product"] == 3, stats  # 46 included: counted, 404
    assert server.proc.poll() is not None
    assert catalogue.expected_pages(45, 5) == 1 + 3 + 45 + 9

    parent = subprocess.Popen(
        [sys.executable, "-c", f"import sys; sys.path.insert(0, {str(BENCHMARKS_DIR)!r}); import http_bench, time; "
         "s = http_bench.Server(20, []); print(s.proc.pid, flush=True); time.sleep(60)"],
        stdout=subprocess.PIPE, text=True,
    )  # fmt: skip
    server_pid = int(parent.stdout.readline())
    parent.kill()
    parent.wait()
    deadline = time.monotonic() + 10
    import psutil

    while time.monotonic() < deadline and psutil.pid_exists(server_pid):
        try:
            if psutil.Process(server_pid).status() == psutil.STATUS_ZOMBIE:
                break
        except psutil.NoSuchProcess:
            break
        time.sleep(0.1)
    gone = not psutil.pid_exists(server_pid) or psutil.Process(server_pid).status() == psutil.STATUS_ZOMBIE
    assert gone, "the catalogue server outlived its parent"


@pytest.mark.chromium
@pytest.mark.timeout(90)
def test_http_bench_small_run_counts_every_contenders_items_and_tree(tmp_path):
    """benchmarks/http_bench.py, small: the floor, ours over HTTP and ours in the
    browser (on its subset) each store every product's item right, are measured, and
    ours-http's ratios are printed; ours-http starts no browser."""
    out = tmp_path / "http.json"
    proc = subprocess.run(
        [sys.executable, str(BENCHMARKS_DIR / "http_bench.py"), "--pages", "40", "--browser-pages", "20",
         "--contenders", "floor,ours-http,ours-browser", "--repeats", "1", "--json", str(out)],
        capture_output=True, text=True, timeout=80,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stdout + proc.stderr
    rows = {r["contender"]: r for r in json.loads(out.read_text())}
    for name, products in (("floor", 40), ("ours-http", 40), ("ours-browser", 20)):
        row = rows[name]
        assert row["check"] == {"expected": products, "found": products, "right": products, "wrong": 0, "missing": 0, "extra": 0}, row  # fmt: skip
        assert row["done"] == row["pages"] and row["pages_per_s"] > 0 and row["cpu_s_per_page"] > 0, row
        assert row["peak_rss_mib"] > 0 and row["server"]["requests"] >= row["pages"], row
    assert rows["ours-http"]["peak_processes"] == 1, rows["ours-http"]  # no Chromium
    assert rows["ours-browser"]["peak_processes"] > 1 and rows["ours-browser"]["orphans_cpu_s"] >= 0
    assert "| ours-http / floor |" in proc.stdout and "| ours-http / ours-browser |" in proc.stdout


@pytest.mark.chromium
@pytest.mark.timeout(90)
def test_auto_bench_small_run_stores_the_browsers_items(tmp_path):
    """benchmarks/auto_bench.py, small: fetch = "auto" stores exactly the items every
    route in the browser stores, reviews rendered by script included."""
    out = tmp_path / "auto.json"
    proc = subprocess.run(
        [sys.executable, str(BENCHMARKS_DIR / "auto_bench.py"), "--pages", "20", "--reviews-every", "5",
         "--json", str(out)],
        capture_output=True, text=True, timeout=80,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stdout + proc.stderr
    rows = {r["contender"]: r for r in json.loads(out.read_text())}
    reviews = sum(5 + i % 5 for i in (5, 10, 15, 20))
    for row in rows.values():
        assert row["products"]["right"] == 20 and row["reviews"]["right"] == reviews == row["reviews"]["found"], row
    assert rows["auto"]["same_items"]["equal"], rows["auto"]["same_items"]


def test_auto_bench_compares_items_as_multisets():
    """A difference of one item, or one item twice, is a difference; order is not."""
    auto_bench = _load_benchmark("auto_bench")
    a = auto_bench.normalised([{"url": "u", "x": 1}, {"x": 2, "url": "v"}])
    assert auto_bench.compare_items(auto_bench.normalised([{"url": "v", "x": 2}, {"url": "u", "x": 1}]), a)["equal"]
    twice = auto_bench.compare_items(auto_bench.normalised([{"url": "u", "x": 1}] * 2 + [{"url": "v", "x": 2}]), a)
    assert (twice["equal"], twice["only_here"], twice["only_in_reference"]) == (False, 1, 0)


@pytest.mark.chromium
@pytest.mark.timeout(120)
def test_autoscale_bench_quick_run_is_complete_and_reports_the_sweep_and_the_budget(tmp_path):
    """benchmarks/autoscale_bench.py --quick: every crawl (the fixed one, "auto", and both
    again in the budget part) finds everything the demo shop shows; "auto" reports its
    bounds and changes; the budget part measured the browser tree and set a budget
    under the fixed concurrency's peak; the report has the ratio and the verdict."""
    out = tmp_path / "autoscale.json"
    proc = subprocess.run(
        [sys.executable, str(BENCHMARKS_DIR / "autoscale_bench.py"), "--quick", "--json", str(out)],
        capture_output=True, text=True, timeout=110,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stdout + proc.stderr
    results = json.loads(out.read_text())
    rows = {r["contender"]: r for r in results["sweep"]}
    assert set(rows) == {"C=2", "auto"}
    for row in [*rows.values(), results["budget"]["fixed"], results["budget"]["auto"]]:
        assert row["complete"] and row["pages"] > 0 and row["pages_per_s"] > 0, row
        assert row["found"]["product"] == {"found": 3, "expected": 3, "extra": 0}, row
    auto = rows["auto"]["autoscale"]
    assert (auto["min"], auto["max"]) == (1, 2) and 1 <= auto["final"] <= 2
    assert rows["C=2"]["autoscale"] is None
    budget = results["budget"]
    assert budget["fixed"]["sampled_peak_pss_mib"] > budget["budget_mb"] > 0
    assert budget["auto"]["budget_mb"] == budget["budget_mb"] and budget["auto"]["pss_readings"] > 0
    assert results["verdict"]["best_fixed"] == "C=2" and results["verdict"]["ratio"] > 0
    assert "auto / best fixed (C=2): " in proc.stdout and "verdict: pass" in proc.stdout
