"""``python -m crawler try``: one URL's route, once, in a fresh browser, storing nothing."""

from __future__ import annotations

import hashlib
import json
import sys
from pathlib import Path

import pytest
import trio

from crawler import config as config_mod
from crawler.demo import DemoShop, format_price, product, reviews
from crawler.httpserver import serve_http
from crawler.run.tryout import try_url
from crawler.store.sqlite import SqliteStore
from tests.crawler.observe.conftest import png_size

pytestmark = pytest.mark.chromium
REPO = Path(__file__).resolve().parents[3]


@pytest.fixture
async def demo_base(nursery) -> str:
    port = await nursery.start(serve_http, DemoShop(10))
    return f"http://127.0.0.1:{port}"


def demo_config(tmp_path: Path, base: str) -> Path:
    """config/demo.toml pointed at the shop at ``base``, its database in ``tmp_path``."""
    text = (REPO / "config" / "demo.toml").read_text()
    text = text.replace("http://127.0.0.1:8000", base).replace(
        '"demo_handlers.py"', json.dumps(str(REPO / "config" / "demo_handlers.py"))
    )
    text = text.replace('db = "demo.db"', json.dumps(str(tmp_path / "demo.db")).join(["db = ", ""]))
    path = tmp_path / "site.toml"
    path.write_text(text)
    return path


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


async def test_try_prints_a_product_pages_items_and_links_and_stores_nothing(tmp_path, demo_base):
    """`try --label product` on a demo product page (the session hook logs in first)
    prints the product and each of its reviews as one JSON line on stdout, the item's
    own keys at top level; on stderr the link it would enqueue (its questions page),
    the page's one frame (the review widget), no failure and each step's time;
    --screenshot and --html keep the page.  The
    config's database (with a crawl's URL in it) is byte for byte the same after."""
    site = demo_config(tmp_path, demo_base)
    db = tmp_path / "demo.db"
    store = await SqliteStore.open(db)
    await store.add_urls([f"{demo_base}/"])
    store.close()
    before = sha256(db)
    url = f"{demo_base}/product/3"
    proc = await trio.run_process(
        [
            sys.executable,
            "-m",
            "crawler",
            "try",
            "--config",
            str(site),
            url,
            "--label",
            "product",
            "--screenshot",
            str(tmp_path / "page.png"),
            "--html",
            str(tmp_path / "page.html"),
        ],
        capture_stdout=True,
        capture_stderr=True,
        check=False,
        env={"PYTHONPATH": str(REPO), "PATH": "/usr/bin:/bin"},
    )
    err = proc.stderr.decode()
    assert proc.returncode == 0, err[-2000:]
    items = [json.loads(line) for line in proc.stdout.decode().splitlines()]
    assert items[0] == {
        "name": product(3)["name"],
        "brand": product(3)["brand"],
        "price": format_price(product(3)["price"]),
        "user": "demo",
        "kind": "product",
        "id": 3,
        "url": url,
        "label": "product",
    }
    assert [(r["id"], r["text"]) for r in items[1:] if r["kind"] == "review"] == [
        (r["id"], r["text"]) for r in reviews(3)
    ]
    assert all(r["product"] == 3 for r in items[1:])  # its reviews, sizes, images, ratings, photo reviews
    assert f"link questions {url}/questions\n" in err
    frames = [line for line in err.splitlines() if line.startswith("frame ")]
    assert len(frames) == 1 and frames[0].startswith(
        f"frame iframe {demo_base}/"
    )  # the review widget, same origin here
    assert "another origin" not in frames[0]
    assert "failure" not in err
    times = next(line for line in err.splitlines() if line.startswith("time "))
    assert [part.split()[0] for part in times.removeprefix("time ").split(", ")] == [
        "browser",
        "tab",
        "session",
        "navigate",
        "handler",
        "capture",
    ]
    png_size((tmp_path / "page.png").read_bytes())
    assert product(3)["name"] in (tmp_path / "page.html").read_text()
    assert sha256(db) == before
    assert not (tmp_path / "demo.db-wal").exists()


async def test_try_names_the_failure_as_a_crawl_would_when_the_selector_never_appears(tmp_path, demo_base):
    """A route whose wait_for never matches, tried with a short watchdog: no item, the
    failure ``timeout`` with its budget, and every step timed (the handler up to its cancellation)."""
    cfg = config_mod.from_dict(
        {
            "input": {"urls": [f"{demo_base}/"]},
            "watchdog": {"timeout_s": 1.0, "jitter_s": 0.0},
            "extract": {"wait_for": ".never-there", "fields": {"name": "h1"}},
            "output": {"db": str(tmp_path / "never.db")},
        },
        source="t.toml",
    )
    result = await try_url(cfg, f"{demo_base}/product/1")
    assert result.items == () and result.links == ()
    assert result.failures == ("timeout: no item within 1.0 s",)
    assert [step for step, _ in result.timings] == ["browser", "tab", "navigate", "handler"]
    assert not (tmp_path / "never.db").exists()


async def test_try_runs_in_the_sites_identity(tmp_path, demo_base):
    """The tab try uses is made by the session pool as a crawl's are: the page sees
    ``[session]``'s user agent, locale and timezone."""
    cfg = config_mod.from_dict(
        {
            "input": {"urls": [f"{demo_base}/"]},
            "session": {"user_agent": "TryBot/1.0", "locale": "ko-KR", "timezone": "Asia/Seoul"},
            "extract": {
                "fields": {
                    "ua": {"js": "navigator.userAgent"},
                    "lang": {"js": "navigator.language"},
                    "tz": {"js": "Intl.DateTimeFormat().resolvedOptions().timeZone"},
                }
            },
            "output": {"db": str(tmp_path / "x.db")},
        },
        source="t.toml",
    )
    result = await try_url(cfg, f"{demo_base}/product/2")
    assert result.failures == ()
    (item,) = result.items
    assert (item["ua"], item["lang"], item["tz"]) == ("TryBot/1.0", "ko-KR", "Asia/Seoul")


async def test_try_shows_what_a_failing_handler_pushed_before_it_failed(tmp_path, demo_base):
    """A handler that pushes an item, then raises: the failure is named as a crawl would
    name it, and the item pushed before it is shown (a crawl would store none of it)."""
    import crawler

    router = crawler.Router()

    @router.route()
    async def half_done(page):
        await page.push(await page.extract({"name": "h1"}, wait_for="h1"))
        raise ValueError("the reviews selector is wrong")

    cfg = config_mod.from_dict(
        {"input": {"urls": [f"{demo_base}/"]}, "output": {"db": str(tmp_path / "half.db")}}, source="t.toml"
    )
    result = await try_url(cfg, f"{demo_base}/product/1", router=router)
    assert [item["name"] for item in result.items] == [product(1)["name"]]
    assert len(result.failures) == 1 and "the reviews selector is wrong" in result.failures[0]
    assert not (tmp_path / "half.db").exists()
