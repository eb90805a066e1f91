"""Signals (issue 26): SIGHUP stops a crawl as SIGINT and SIGTERM do (pending again,
the summary, the resume line, exit 130; it used to kill the crawler with no summary)."""

from __future__ import annotations

import signal

import pytest
import trio

from tests.crawler.http.static_shop import StaticShop, start_static_shop
from tests.procs import start_crawler


@pytest.fixture
async def static_shop(nursery):
    shop = StaticShop(products=200)
    shop.base = await start_static_shop(nursery, shop)
    return shop


def slow_http_site(tmp_path, shop) -> str:
    path = tmp_path / "site.toml"
    path.write_text(
        f'[input]\nurl_template = "{shop.base}/p/{{id}}"\nids = "0-199"\n[crawl]\nfetch = "http"\n'
        '[rate_limit]\nwait_ms = [50, 50]\n[extract]\nfields = { name = "h1" }\n'
        f'[output]\ndb = "{tmp_path / "crawl.db"}"\n'
    )
    return str(path)


@pytest.mark.parametrize("signum", [signal.SIGHUP, signal.SIGTERM, signal.SIGINT])
async def test_a_signal_mid_crawl_stops_it_with_the_resume_line_and_exit_130(tmp_path, static_shop, signum):
    proc = await start_crawler("--config", slow_http_site(tmp_path, static_shop), cwd=tmp_path)
    with trio.fail_after(20):
        while len(static_shop.requests) < 5:  # noqa: ASYNC110 - another process's requests
            await trio.sleep(0.05)
    proc.send_signal(signum)
    with trio.fail_after(10):
        assert await proc.wait() == 130
    err = (tmp_path / "crawler.err").read_text()
    assert f"{signal.Signals(signum).name}: stopping" in err and "resume with the same command" in err
