"""Fault matrix, part 4: the deployment's container path, against real Chromium.

As ``docker/docker-compose.yml`` runs it: ``--cdp-url http://chromium:9222``, the name a
service name (neither an IP address nor ``localhost``), Chromium's DevTools on its own
127.0.0.1 behind a TCP forwarder (``tests/container.py``).  The crawl by service name
ends with every item right; the browser container stopped hard mid-crawl and started
again 3 s later leaves every URL done exactly once, no attempt charged for the
browser's death, exit 0 and no traceback; a wrong port fails within seconds with one
line and exit 2.
"""

from __future__ import annotations

import json
import time

import pytest
import trio

from tests.container import SERVICE_NAME, SERVICE_URL, ChromiumContainer, compose_crawler_args
from tests.faults.conftest import assert_invariants, assert_outcome, matrix_config, run_crawl
from tests.faults.test_process import read_db, states
from tests.procs import site_toml, start_crawler, write_config

pytestmark = pytest.mark.chromium

WRONG_ENDPOINT_BOUND_S = 10.0  # the bound; [browser] connect_timeout_s is 4 s

SETTINGS = """
[pool]
concurrency = 3
tab_close_timeout_s = 3.0
[watchdog]
timeout_s = 15
jitter_s = 0.5
[retry]
max_attempts = 2
backoff_s = [0.05, 0.2]
"""


async def test_crawl_by_service_name_through_a_forwarder_stores_every_item(shop, tmp_path, chromium_container):
    """The Compose command's endpoint, ``http://chromium:9222``, resolving to the browser
    container: the crawl finishes without a restart, every URL done once with the shop's
    data, every lease released, and the browser holds nothing of the crawler's."""
    chromium_container.use_name()
    await chromium_container.start()
    await chromium_container.close_startup_tabs()
    urls = [f"{shop.base}/product/{i}" for i in range(1, 13)]
    crawl = await run_crawl(matrix_config(tmp_path, urls, browser={"cdp_url": SERVICE_URL}))
    await assert_invariants(crawl, shop, urls, done=set(urls), launched=False)
    assert crawl.reason == "finished" and crawl.engine.statistics().browser.restarts == 0


async def test_browser_container_restarted_mid_crawl_every_url_done_once_exit_0(shop, tmp_path, chromium_container):
    """``python -m crawler`` with the Compose command's arguments; mid-crawl the browser
    container stops hard (Chromium's process group SIGKILLed, the forwarder gone) and
    starts again 3 s later: the crawler waits for the endpoint, reconnects and finishes
    with exit 0 and no traceback; every URL is done exactly once with the shop's data,
    each on its first charged attempt (the pages in flight at the kill were put back
    uncharged), and nothing done before the kill is requested again."""
    container: ChromiumContainer = chromium_container
    await container.start()
    urls = [f"{shop.base}/slow/{i}?s=0.4" for i in range(1, 31)]
    db = str(tmp_path / "crawl.db")
    cfg = write_config(tmp_path / "site.toml", site_toml("container", f"urls = {json.dumps(urls)}", db, SETTINGS))
    offset = time.time() - trio.current_time()
    proc = await start_crawler(*compose_crawler_args(cfg), cwd=tmp_path, wrapper=container.name_wrapper(tmp_path))
    with trio.fail_after(60):
        while True:
            assert proc.poll() is None, (tmp_path / "crawler.err").read_text()[-2000:]
            st = states(db)
            if sum(s == "done" for s in st.values()) >= 4 and sum(s == "in_progress" for s in st.values()) >= 2:
                break
            await trio.sleep(0.02)
    in_flight = {url for url, s in states(db).items() if s == "in_progress"}
    await container.stop()
    await trio.sleep(3.0)
    await container.start()
    with trio.fail_after(90):
        code = await proc.wait()
    err = (tmp_path / "crawler.err").read_text()
    assert code == 0, err[-3000:]
    assert "Traceback" not in err, err[-3000:]
    rows, items, _ = read_db(db)
    assert_outcome(rows, items, shop, urls, offset=offset, done=set(urls))
    assert in_flight and {url: row["attempts"] for url, row in rows.items() if row["attempts"] != 1} == {}
    assert "browser lost; restarting" in err and "browser restarts 1" in err
    assert [len(start) for start in container.websocket_handshakes()] == [1, 1]  # one connection per browser


async def test_wrong_cdp_port_fails_within_seconds_with_one_line_and_exit_2(tmp_path, chromium_container):
    """A mistyped ``--cdp-url`` (the service name resolves; nothing listens at the port):
    the crawler exits 2 (configuration) within WRONG_ENDPOINT_BOUND_S, saying so in one
    line that names the URL, without a traceback."""
    url = f"http://{SERVICE_NAME}:9223"
    db = str(tmp_path / "crawl.db")
    cfg = write_config(tmp_path / "site.toml", site_toml("wrong", 'urls = ["http://127.0.0.1:9/1"]', db, SETTINGS))
    started = trio.current_time()
    proc = await start_crawler(
        "--config", str(cfg), "--cdp-url", url, cwd=tmp_path, wrapper=chromium_container.name_wrapper(tmp_path)
    )
    with trio.fail_after(60):
        code = await proc.wait()
    elapsed = trio.current_time() - started
    err = (tmp_path / "crawler.err").read_text()
    print(f"wrong endpoint: exit {code} after {elapsed:.2f} s")
    assert code == 2, err
    assert elapsed < WRONG_ENDPOINT_BOUND_S, elapsed
    assert "Traceback" not in err, err
    naming = [line for line in err.splitlines() if url in line]
    assert len(naming) == 1 and naming[0].startswith(f"crawler: error: no DevTools endpoint at {url} within 4 s"), err
