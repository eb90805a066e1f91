"""A failed page's snapshot is taken before its tab is let go, whatever the failure
(issue 26): a URL that failed with a 404 got none ("Not attached to an active page"),
although the page was there to see."""

from __future__ import annotations

import json

import pytest

from tests.crawler.conftest import crawl, make_config
from tests.shop import FaultShop, start_shop

pytestmark = pytest.mark.chromium


@pytest.fixture
async def shop(nursery):
    fault_shop = FaultShop()
    fault_shop.base = await start_shop(nursery, fault_shop)
    return fault_shop


@pytest.mark.parametrize("status", [404, 410, 500])
async def test_a_page_failing_by_its_status_gets_a_snapshot_of_what_it_showed(tmp_path, shop, status):
    url = f"{shop.base}/status/{status}/7?times=99"
    snapshots = tmp_path / "snapshots"
    cfg = make_config(tmp_path, [url], retry={"max_attempts": 1}, debug={"snapshots_dir": str(snapshots)})
    engine, store, reason = await crawl(cfg)
    assert reason == "finished"
    assert (await store.url_state(url))["state"] == "failed"
    kind = f"http_{status}"
    (found,) = snapshots.glob(f"{kind}-*.json")
    record = json.loads(found.read_text())
    assert record["url"] == url and record["reason"].startswith(kind), record
    assert found.with_suffix(".png").stat().st_size > 0, record
    assert "<h1>Busy</h1>" in found.with_suffix(".html").read_text(), record  # the page the server sent
