"""``python -m crawler report``: the figures and the PNG plot."""

from __future__ import annotations

import argparse
import sqlite3
import sys

import pytest
import trio

from crawler import cli
from crawler.observe import report
from crawler.store.sqlite import SqliteStore
from tests.crawler.conftest import crawl, make_config
from tests.crawler.observe.conftest import png_size

MiB = 2**20
EXPECTED_PX = (int(report.PLOT_SIZE_IN[0] * report.PLOT_DPI), int(report.PLOT_SIZE_IN[1] * report.PLOT_DPI))


async def synthetic_db(path, pages: int = 200) -> None:
    """A finished run of ``pages`` pages whose browser PSS grows exactly 2 MiB per
    100 pages from 300 MiB, sampled every 10 pages, one tab sample per 10 pages."""
    store = SqliteStore(path)
    raw = sqlite3.connect(path, isolation_level=None)  # a connection of its own, to set the times
    await store.add_urls(f"http://127.0.0.1:9/p/{i}" for i in range(pages))
    await store.start_run()
    t0 = raw.execute("SELECT started_at FROM runs").fetchone()[0]
    for i in range(pages):
        job = await store.claim()
        await store.complete(job, [{"url": job.url}], [], 200, 0.1)
        raw.execute("UPDATE frontier SET finished_at=? WHERE id=?", (t0 + 0.1 * (i + 1), job.id))
        if i % 10 == 0:
            await store.add_memory_sample(
                {
                    "t": t0 + 0.1 * i,
                    "pages_done": i,
                    "browser_pss": 300 * MiB + i * 2 * MiB // 100,
                    "crawler_pss": 40 * MiB,
                    "processes": 6,
                    "tabs": 4,
                    "contexts": 1,
                }
            )
            await store.add_tab_sample(
                {"t": t0 + 0.1 * i, "pages": 10, "js_heap_used": 2 * MiB, "nodes": 300, "listeners": 5, "documents": 2}
            )
    summary = {
        "finish_reason": "finished",
        "done": pages,
        "failed": 0,
        "pending": 0,
        "failed_by_reason": {},
        "retries": 0,
        "pages": pages,
        "elapsed_s": 0.1 * pages,
        "pages_per_s": 10.0,
        "peak_browser_pss_mb": 304.0,
        "tabs_recycled": pages // 10,
        "tabs_discarded": 0,
        "contexts_rotated": 4,
        "popups_closed": 0,
        "watchdog_expiries": 0,
        "browser_restarts": 0,
        "concurrency": 4,
        "recycle_tab_every": 10,
        "memory_budget_mb": 1000,
        "invariant_violations": 0,
    }
    await store.finish_run("finished", summary)
    raw.execute("UPDATE runs SET finished_at=? WHERE id=?", (t0 + 0.1 * pages, store.run_id))
    store.close()


async def test_report_prints_the_figures_and_writes_a_png_of_the_expected_size(tmp_path, capsys):
    """On a run with known samples: the summary, the PSS figures and the slope (20 MiB
    per 1000 pages) and the tab figures are printed, and the plot is a valid PNG of
    PLOT_SIZE_IN x PLOT_DPI pixels at --out."""
    db = tmp_path / "run.db"
    await synthetic_db(db)
    out = tmp_path / "plot.png"
    assert (
        await trio.to_thread.run_sync(report.report_command, argparse.Namespace(db=str(db), config=None, out=str(out)))
        == 0
    )
    text = capsys.readouterr().out
    assert "run 1: finished" in text
    assert "items done      200" in text
    assert "memory budget 1000 MiB" in text
    assert "browser PSS     first 300 MiB, at 10% of pages 300 MiB, peak 304 MiB, last 304 MiB" in text
    assert "PSS slope       +20.0 MiB per 1000 pages after the first 10%" in text
    assert "tabs at recycle 20: JS heap MiB mean 2.0, max 2.0; nodes mean 300" in text
    assert f"plot            {out}" in text
    assert png_size(out.read_bytes()) == EXPECTED_PX
    assert out.stat().st_size > 20_000  # two panels with curves, not an empty canvas


def test_report_on_a_missing_database_or_folder_is_a_usage_error(tmp_path, capsys):
    """A missing database, or an --out folder that does not exist, is exit 2 with a
    one-line error and no file written."""
    assert cli.main(["report", "--db", str(tmp_path / "none.db")]) == cli.EXIT_USAGE
    assert "no such database" in capsys.readouterr().err
    empty = tmp_path / "empty.db"
    SqliteStore(empty).close()
    assert cli.main(["report", "--db", str(empty)]) == cli.EXIT_USAGE
    assert "holds no run yet" in capsys.readouterr().err
    assert not list(tmp_path.glob("*.png"))


@pytest.mark.chromium
async def test_report_command_works_on_the_db_of_a_short_crawl(shop, tmp_path, engine_log):
    """``python -m crawler report --db`` on a real crawl's database exits 0, prints the
    run's figures (with the tabs' own figures, stored at each recycle) and writes the
    plot next to the database by default.  The memory line carries the tab figures."""
    urls = [f"{shop.base}/product/{i}" for i in range(1, 9)]
    cfg = make_config(
        tmp_path, urls, pool={"recycle_tab_every": 2}, monitor={"sample_interval_s": 0.05, "memory_interval_s": 0.05}
    )
    c, store, reason = await crawl(cfg)
    store.close()
    assert reason == "finished" and c.statistics().jobs.done == 8
    memory_lines = [r.getMessage() for r in engine_log.records if r.getMessage().startswith("memory: browser")]
    assert any("tab(s) recycled since the last line, at recycle: JS heap" in m for m in memory_lines), memory_lines
    result = await trio.run_process(
        [sys.executable, "-m", "crawler", "report", "--db", cfg.output.db], capture_stdout=True, capture_stderr=True
    )
    text = result.stdout.decode()
    assert "run 1: finished" in text and "items done      8" in text
    assert "browser PSS     first" in text
    assert "tabs at recycle" in text  # figures stored at each recycle
    plot = tmp_path / "crawl-report.png"
    assert f"plot            {plot}" in text
    assert png_size(plot.read_bytes()) == EXPECTED_PX


async def test_report_without_matplotlib_prints_the_figures_and_one_line_saying_how_to_get_the_plot(
    tmp_path, capsys, monkeypatch
):
    """matplotlib is the ``plot`` extra: without it the figures are still printed, the
    PNG is not written, and one line names the extra to install."""
    db = tmp_path / "run.db"
    await synthetic_db(db)
    out = tmp_path / "plot.png"
    monkeypatch.setitem(sys.modules, "matplotlib", None)  # import matplotlib... raises ImportError
    monkeypatch.setitem(sys.modules, "matplotlib.figure", None)
    monkeypatch.setitem(sys.modules, "matplotlib.backends.backend_agg", None)
    args = argparse.Namespace(db=str(db), config=None, out=str(out))
    assert await trio.to_thread.run_sync(report.report_command, args) == 0
    text = capsys.readouterr().out
    assert "items done      200" in text
    plot_lines = [line for line in text.splitlines() if line.startswith("plot")]
    assert plot_lines == ["plot            not written: " + report.PLOT_NEEDS_MATPLOTLIB]
    assert "pip install 'trio-cdp-crawler[plot]'" in plot_lines[0]
    assert not out.exists()
