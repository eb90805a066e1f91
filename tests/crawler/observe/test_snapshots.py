"""Snapshots of failures (``[debug] snapshots_dir``): the first failure of each reason,
then every ``snapshot_every``-th, as a PNG, the HTML and a JSON, each capture bounded."""

from __future__ import annotations

import json

import pytest
import trio

from crawler.observe.snapshots import Snapshots
from crawler.observe.summary import format_summary
from tests.crawler.conftest import crawl, make_config
from tests.crawler.observe.conftest import png_size


@pytest.mark.chromium
async def test_timeouts_are_snapshotted_at_the_first_and_every_nth_failure(shop, tmp_path):
    """Three URLs whose wait_for never appears, a 1 s watchdog, snapshot_every 2: the
    failures number 1 to 3, so exactly two sets (1, then 3) of PNG (valid: signature
    and IHDR), HTML (the page's own) and JSON (URL, label, reason, time) are written
    for ``timeout``, and the summary lists them by reason."""
    folder = tmp_path / "snaps"
    urls = [f"{shop.base}/never/{i}" for i in range(1, 4)]
    cfg = make_config(
        tmp_path,
        urls,
        pool={"concurrency": 3},
        watchdog={"timeout_s": 1.0, "jitter_s": 0.0},
        retry={"max_attempts": 1},
        debug={"snapshots_dir": str(folder), "snapshot_every": 2},
    )
    crawler, store, reason = await crawl(cfg)
    assert reason == "finished"
    assert (await store.counts())["failed"] == 3
    names = sorted(p.name for p in folder.iterdir())
    assert names == [f"timeout-{n:06d}.{ext}" for n in (1, 3) for ext in ("html", "json", "png")]
    for n in (1, 3):
        stem = folder / f"timeout-{n:06d}"
        width, height = png_size(stem.with_suffix(".png").read_bytes())
        assert width > 0 and height > 0
        record = json.loads(stem.with_suffix(".json").read_text())
        assert record["url"] in urls and record["label"] is None and record["kind"] == "timeout"
        assert record["reason"].startswith("timeout: no item within 1.0 s")
        assert record["time"].endswith("Z") and record["capture_error"] is None
        assert record["png"] == stem.name + ".png" and record["html"] == stem.name + ".html"
        assert "<html" in stem.with_suffix(".html").read_text()
    summary = await crawler.summary()
    assert summary["snapshots"]["timeout"]["taken"] == 2
    line = next(x for x in format_summary(summary).splitlines() if x.startswith("snapshots"))
    assert line == "snapshots       timeout (2): " + ", ".join(
        f"{folder}/timeout-{n:06d}.{{png,html,json}}" for n in (1, 3)
    )
    store.close()


class HungTab:
    """A tab whose renderer answers nothing (a busy page): every command waits forever."""

    async def send(self, method: str, **params):
        await trio.sleep_forever()

    async def set_visible(self, visible: bool) -> None:
        await trio.sleep_forever()  # the browser's window commands hang too


async def test_a_hung_tab_delays_the_job_by_the_capture_deadline_only(tmp_path, autojump_clock):
    """Capturing a tab that never answers gives up after exactly ``timeout_s`` (also
    when the job is being cancelled: the capture is shielded), and still writes the
    JSON, saying what is missing; nothing raises."""
    snaps = Snapshots(str(tmp_path), 100, timeout_s=5.0)
    start = trio.current_time()
    shot = await snaps.after_failure(
        HungTab(), url="http://x.test/1", label="p", kind="timeout", reason="timeout", attempt=1
    )
    assert trio.current_time() - start == 5.0
    assert shot is not None and shot.png is None and shot.html is None
    record = json.loads((tmp_path / "timeout-000001.json").read_text())
    assert record["capture_error"] == "no answer within 5 s" and record["png"] is None
    # The second failure of the kind is not due (every 100): no capture, no wait.
    start = trio.current_time()
    assert await snaps.after_failure(HungTab(), url="u", label=None, kind="timeout", reason="t", attempt=1) is None
    assert trio.current_time() == start
    with trio.CancelScope() as outer:
        outer.cancel()
        start = trio.current_time()
        await snaps.after_failure(HungTab(), url="u", label=None, kind="http_404", reason="http_404", attempt=1)
        assert trio.current_time() - start == 5.0
    assert snaps.statistics().taken == {"timeout": 1, "http_404": 1}
    assert snaps.statistics().incomplete == 2
