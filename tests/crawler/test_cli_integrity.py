"""`python -m crawler` under the conditions that used to corrupt or lose data: a second
process on a running crawl's database, hostile input, a huge id range, a full disk.
Each runs the real command line, against real Chromium, and checks the database, the
shop's own count of what it served, and that no process printed a traceback."""

from __future__ import annotations

import os
import signal
import subprocess
import sys

import pytest
import trio

from tests.crawler.run.test_resume import page_paths, rows, wait_done
from tests.procs import REPO, site_toml, start_crawler, write_config

pytestmark = pytest.mark.chromium

FAST = """
[pool]
concurrency = 2
[watchdog]
timeout_s = 20
jitter_s = 1
[retry]
max_attempts = 2
backoff_s = [0.05, 0.2]
"""


def site(tmp_path, inputs: str, settings: str = FAST, name: str = "site.toml"):
    return write_config(tmp_path / name, site_toml("integrity", inputs, str(tmp_path / "crawl.db"), settings))


def logs(tmp_path) -> str:
    return (tmp_path / "crawler.err").read_text()


def assert_no_traceback(text: str) -> None:
    assert "Traceback" not in text and "ExceptionGroup" not in text, text[-3000:]


async def run_cli(*args: str, cwd) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    result = await trio.run_process(
        [sys.executable, "-m", "crawler", *args],
        cwd=cwd,
        env=env,
        capture_stdout=True,
        capture_stderr=True,
        check=False,
    )
    return subprocess.CompletedProcess(result.args, result.returncode, result.stdout.decode(), result.stderr.decode())


async def test_a_second_process_on_a_running_crawls_database_is_refused_and_every_url_is_fetched_once(shop, tmp_path):
    """A second ``python -m crawler`` on the same database, 4 s into the first: it exits
    3 at once with one line naming the first one's pid; the first finishes (exit 0)
    with every URL fetched exactly once; neither prints a traceback."""
    pages = 30
    settings = FAST + "[rate_limit]\nwait_ms = [200, 250]\n"
    cfg = site(tmp_path, f'url_template = "{shop.base}/product/{{id}}"\nids = "1-{pages}"', settings)
    first = await start_crawler("--config", str(cfg), cwd=tmp_path)
    await trio.sleep(4)
    assert first.poll() is None, "the first crawl ended before the second started: make it longer"
    second = await run_cli("--config", str(cfg), cwd=tmp_path)
    assert second.returncode == 3, second.stderr
    assert second.stderr.strip().splitlines() == [
        line for line in second.stderr.strip().splitlines() if line.startswith("crawler: error:")
    ]
    assert f"in use by another crawl (pid {first.pid} on " in second.stderr
    with trio.fail_after(120):
        assert await first.wait() == 0, logs(tmp_path)[-3000:]
    assert_no_traceback(logs(tmp_path) + second.stderr)
    urls = list(rows(str(tmp_path / "crawl.db")))
    assert len(urls) == pages
    assert set(page_paths(shop, urls).values()) == {1}
    assert all(state == "done" and n == 1 for state, _, n in rows(str(tmp_path / "crawl.db")).values())


HOSTILE = {
    "urls": 'urls = ["{base}/product/1", "file:///etc/passwd"]',
    "urls, chrome:": 'urls = ["chrome://settings"]',
    "urls, javascript:": 'urls = ["javascript:alert(1)"]',
    "url_file": 'url_file = "urls.txt"',
    "url_template": 'url_template = "file:///etc/passwd?{{id}}"\nids = "1-3"',
    "url_template, chrome:": 'url_template = "chrome://{{id}}"\nids_file = "ids.txt"',
}


@pytest.mark.parametrize("source", list(HOSTILE))
async def test_hostile_input_from_any_source_exits_2_in_one_line_and_nothing_is_fetched(shop, tmp_path, source):
    """``file:``, ``chrome:``, ``javascript:`` from every input source: exit 2, one
    line naming the source and the URL, no page fetched, no traceback."""
    (tmp_path / "urls.txt").write_text(f"{shop.base}/product/2\njavascript:alert(1)\n", encoding="utf-8")
    (tmp_path / "ids.txt").write_text("settings\n", encoding="utf-8")
    cfg = site(tmp_path, HOSTILE[source].format(base=shop.base))
    result = await run_cli("--config", str(cfg), cwd=tmp_path)
    assert result.returncode == 2, result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("crawler: error:") and "expected an http(s) URL" in lines[0], lines
    assert not any(path.startswith("/product/") for path in shop.hits)


async def test_a_huge_id_range_crawls_within_seconds_and_stops_on_sigint_with_exit_130(shop, tmp_path):
    """``ids = "1-99999999999"``: the first pages are done within seconds, the database
    holds about the lookahead, and SIGINT stops it within a few seconds with the summary,
    the resume hint and exit 130."""
    cfg = site(tmp_path, f'url_template = "{shop.base}/product/{{id}}"\nids = "1-99999999999"\nlookahead = 200')
    db = str(tmp_path / "crawl.db")
    proc = await start_crawler("--config", str(cfg), cwd=tmp_path)
    await wait_done(db, 3, proc, timeout_s=30)
    assert len(rows(db)) <= 400
    proc.send_signal(signal.SIGINT)
    with trio.fail_after(8):
        assert await proc.wait() == 130
    err = logs(tmp_path)
    assert "items done" in err and "resume with the same command" in err
    assert_no_traceback(err)
    assert (await trio.Path(db).stat()).st_size < 2 * 2**20


@pytest.fixture
def full_disk(tmp_path):
    """A small tmpfs for the database, and a function that fills it (and frees it)."""
    mount = tmp_path / "tmpfs"
    mount.mkdir()
    if subprocess.run(["mount", "-t", "tmpfs", "-o", "size=4m", "tmpfs", str(mount)], capture_output=True).returncode:
        pytest.skip("cannot mount a tmpfs here (needs root): the disk-full test needs one")
    filler = mount / "filler"

    def fill(full: bool) -> None:
        if not full:
            filler.unlink(missing_ok=True)
            return
        try:
            with open(filler, "wb") as f:
                while True:
                    f.write(b"\0" * 65536)
                    f.flush()
        except OSError:
            pass  # full, as asked (already full if even the open failed)

    try:
        yield mount, fill
    finally:
        subprocess.run(["umount", "-l", str(mount)], capture_output=True)


async def test_a_full_disk_is_one_line_with_the_summary_and_the_rerun_resumes_exactly(shop, tmp_path, full_disk):
    """The database's disk fills up mid-crawl: the crawl stops with one error line
    naming the database, the summary and the resume hint, no traceback; once there is
    room again the same command finishes with every URL done exactly once."""
    mount, fill = full_disk
    pages = 30
    db = str(mount / "crawl.db")
    settings = FAST + "[rate_limit]\nwait_ms = [100, 150]\n"
    text = site_toml("disk", f'url_template = "{shop.base}/product/{{id}}"\nids = "1-{pages}"', db, settings)
    cfg = write_config(tmp_path / "site.toml", text)
    proc = await start_crawler("--config", str(cfg), cwd=tmp_path)
    await wait_done(db, 5, proc)
    fill(True)
    with trio.fail_after(60):
        code = await proc.wait()
    err = logs(tmp_path)
    assert code == 1, err[-3000:]
    assert_no_traceback(err)
    assert f"crawler: aborted: {db}: database or disk is full" in err
    assert "items done" in err and "resume with the same command" in err
    fill(False)
    again = await start_crawler("--config", str(cfg), cwd=tmp_path)
    with trio.fail_after(120):
        assert await again.wait() == 0, logs(tmp_path)[-3000:]
    assert_no_traceback(logs(tmp_path))
    final = rows(db)
    assert len(final) == pages and all(state == "done" and n == 1 for state, _, n in final.values()), final


async def test_a_bad_line_deep_in_a_streamed_file_stops_the_crawl_and_the_fixed_rerun_continues(shop, tmp_path):
    """With a lookahead of 2, line 5 of the url_file is only read mid-crawl: the crawl
    stops with exit 2, the line named, the summary and the resume hint; once the line
    is fixed, the same command finishes, every URL done exactly once."""
    lines = [f"{shop.base}/product/{i}" for i in range(1, 9)]
    (tmp_path / "urls.txt").write_text("\n".join([*lines[:4], "chrome://settings", *lines[4:]]) + "\n")
    cfg = site(tmp_path, 'url_file = "urls.txt"\nlookahead = 2')
    result = await run_cli("--config", str(cfg), cwd=tmp_path)
    assert result.returncode == 2, result.stderr[-3000:]
    assert "urls.txt:5: expected an http(s) URL, got 'chrome://settings'" in result.stderr
    assert "items done" in result.stderr and "resume with the same command" in result.stderr
    assert_no_traceback(result.stderr)
    (tmp_path / "urls.txt").write_text("\n".join([*lines[:4], f"{shop.base}/product/99", *lines[4:]]) + "\n")
    again = await run_cli("--config", str(cfg), cwd=tmp_path)
    assert again.returncode == 0, again.stderr[-3000:]
    final = rows(str(tmp_path / "crawl.db"))
    assert len(final) == 9 and all(state == "done" and n == 1 for state, _, n in final.values()), final
    assert set(page_paths(shop, final).values()) == {1}


async def test_failed_urls_come_back_with_retry_failed_and_the_exit_code_follows_the_database(shop, tmp_path):
    """A required field that never matches fails every URL (exit 1, as on every rerun:
    the database still holds them failed); once the config is fixed,
    ``--retry-failed missing_field`` puts them back and the crawl ends with exit 0,
    every URL done once, nothing thrown away."""
    inputs = f'url_template = "{shop.base}/product/{{id}}"\nids = "1-4"'
    broken = FAST + '[extract.fields.sku]\ncss = "#sku"\nrequired = true\n'
    cfg = site(tmp_path, inputs, broken)
    first = await run_cli("--config", str(cfg), cwd=tmp_path)
    assert first.returncode == 1 and "missing_field: 4" in first.stderr, first.stderr[-3000:]
    db = str(tmp_path / "crawl.db")
    assert {state for state, *_ in rows(db).values()} == {"failed"}
    cfg = site(tmp_path, inputs)  # fixed: no sku
    same = await run_cli("--config", str(cfg), cwd=tmp_path)
    assert same.returncode == 1, same.stderr[-3000:]  # nothing ran, but 4 URLs are failed
    again = await run_cli("--config", str(cfg), "--retry-failed", "missing_field", cwd=tmp_path)
    assert again.returncode == 0, again.stderr[-3000:]
    assert "4 failed URLs (missing_field...) are pending again" in again.stderr
    assert all(state == "done" and n == 1 for state, _, n in rows(db).values())
    assert_no_traceback(first.stderr + same.stderr + again.stderr)
