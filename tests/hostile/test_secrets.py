"""Secrets never leave (issue 26): a unique secret in every place a crawl can be given
one, and none of them in anything the crawl writes or shows.

The places: the Redis URL's password (an ACL user of the test's Redis), a proxy's
password, the password of a URL the pages link to, a cookie of ``[session]
cookies_file``, and an ``Authorization`` header of ``[session] headers``.  The outputs:
the crawl's stdout and stderr (with ``-v``), its metrics and status page scraped while
it runs, everything it stored in Redis, the items' export, its failure snapshots, and
``crawler try``'s output.  The site is reached only through the proxy (a name only the
proxy resolves), so each secret is really used.
"""

from __future__ import annotations

import sys
import uuid
from typing import Any

import coredis
import pytest
import trio

from crawler import config as config_mod
from crawler.httpserver import HttpRequest, Response, serve_http
from tests.crawler.observe.conftest import free_port, scrape_endpoint
from tests.httpproxy import HttpProxy

pytestmark = pytest.mark.chromium

HOST = "shop.test"
PAGES = 8
FAILING = 5  # /p/5 answers 404: a failure snapshot


def secret(name: str) -> str:
    return f"{name}-{uuid.uuid4().hex}"


class LinkingShop:
    """``/p/{i}``: a product page linking to every page through URLs with
    credentials; ``/p/5`` is not found.  Records the cookie and authorization each
    request carried."""

    def __init__(self, url_password: str):
        self.url_password = url_password
        self.base = ""
        self.seen: list[dict[str, str]] = []
        self.paths: list[str] = []

    async def __call__(self, request: HttpRequest) -> Response:
        self.seen.append(dict(request.headers))
        self.paths.append(request.path)
        tail = request.path.removeprefix("/p/")
        number = int(tail) if tail.isdigit() else 0
        if number == FAILING:
            return Response(status=404, body=b"<h1>Not found</h1>")
        if not 1 <= number <= PAGES:
            return Response(status=404, body=b"<h1>Not found</h1>")
        host = self.base.split("//", 1)[1]
        links = "".join(
            f"<a class='next' href='http://reader:{self.url_password}@{host}/p/{n}'>{n}</a>"
            for n in range(1, PAGES + 1)
        )
        body = f"<h1>Product {number}</h1><p class='price'>{1000 + number}</p>{links}"
        return Response(body=body.encode())


HANDLERS = """
from crawler import Router

router = Router()


@router.route()
async def product(page):
    await page.push(await page.extract({"name": "h1", "price": ".price"}, wait_for="h1"))
    await page.enqueue(selector="a.next")
"""


async def redis_acl_url(redis_server, password: str) -> str:
    """A Redis ACL user with ``password``, for the crawl's store URL."""
    async with coredis.Redis(host="127.0.0.1", port=redis_server.port) as client:
        await client.acl_setuser("crawler", "on", f">{password}", "~*", "&*", "+@all")
    return f"redis://crawler:{password}@127.0.0.1:{redis_server.port}/0"


async def redis_dump(redis_server) -> str:
    """Every key and value in the test's Redis, as text."""
    out: list[str] = []
    async with coredis.Redis(host="127.0.0.1", port=redis_server.port, decode_responses=False) as client:
        async for key in client.scan_iter(match=b"*"):
            out.append(key.decode("utf-8", "replace"))
            out.append((await client.dump(key) or b"").decode("utf-8", "replace"))
    return "\n".join(out)


async def run(*args: str) -> str:
    done = await trio.run_process(
        [sys.executable, "-m", "crawler", *args], capture_stdout=True, capture_stderr=True, check=False
    )
    return f"exit {done.returncode}\n" + done.stdout.decode() + done.stderr.decode()


async def test_no_secret_given_to_a_crawl_appears_in_any_of_its_outputs(tmp_path, redis_server, shared_chromium):
    secrets_ = {name: secret(name) for name in ("redis", "proxy", "url", "cookie", "header")}
    shop = LinkingShop(secrets_["url"])
    proxy = HttpProxy("P", hosts={HOST: "127.0.0.1"}, credentials=("alice", secrets_["proxy"]))
    metrics_port = free_port()
    async with trio.open_nursery() as nursery:
        port = await nursery.start(lambda task_status: serve_http(shop, port=0, task_status=task_status))
        shop.base = f"http://{HOST}:{port}"
        await nursery.start(proxy.serve)
        cookies = tmp_path / "cookies.json"
        cookies.write_text(f'[{{"name": "sid", "value": "{secrets_["cookie"]}", "domain": "{HOST}", "path": "/"}}]')
        data: dict[str, Any] = {
            "site": {"name": "secrets", "handlers": "handlers.py"},
            "input": {"urls": [f"{shop.base}/p/1"]},
            "crawl": {"same_host": True},
            "browser": {"cdp_url": shared_chromium.url},
            "pool": {"concurrency": 2},
            "retry": {"max_attempts": 1},
            "session": {
                "proxies": [proxy.url()],
                "cookies_file": str(cookies),
                "headers": {"Authorization": f"Bearer {secrets_['header']}"},
            },
            "store": {"backend": "redis", "url": await redis_acl_url(redis_server, secrets_["redis"])},
            "monitor": {"metrics_port": metrics_port, "progress_interval_s": 0.2},
            "debug": {"snapshots_dir": str(tmp_path / "snapshots")},
        }
        (tmp_path / "handlers.py").write_text(HANDLERS)
        config = tmp_path / "site.toml"
        config.write_text(config_mod.to_toml(data))
        outputs: dict[str, str] = {}
        scraped: list[str] = []
        async with trio.open_nursery() as scraping:
            scraping.start_soon(scrape_endpoint, metrics_port, scraped, 0.05)
            outputs["crawl"] = await run("-v", "--config", str(config), "--fresh")
            scraping.cancel_scope.cancel()
        outputs["metrics and status page"] = "\n".join(scraped)
        outputs["redis"] = await redis_dump(redis_server)
        exported = tmp_path / "items.jsonl"
        outputs["export"] = await run("export", "--config", str(config), "--out", str(exported))
        outputs["export"] += exported.read_text()
        outputs["try"] = await run("-v", "try", f"{shop.base}/p/2", "--config", str(config))
        nursery.cancel_scope.cancel()
    outputs["snapshots"] = "\n".join(
        p.read_bytes().decode("utf-8", "replace") for p in (tmp_path / "snapshots").rglob("*") if p.is_file()
    )

    # The crawl did what the secrets are for: every page through the proxy, with the
    # cookie and the header, the links with credentials followed without them.
    assert outputs["crawl"].startswith("exit 1"), outputs["crawl"][-2000:]  # /p/5 failed, on purpose
    assert f"{shop.base}/p/{PAGES}" in outputs["export"], outputs["crawl"][-3000:]
    assert outputs["export"].count('"name"') == PAGES - 1 + 0  # every page but the failing one
    pages = [h for h in shop.seen if h.get("cookie")]
    assert pages and all(f"sid={secrets_['cookie']}" in h["cookie"] for h in pages)
    assert all(h.get("authorization") == f"Bearer {secrets_['header']}" for h in shop.seen)
    assert any("crawler_pages_done" in s for s in scraped) and any("<html" in s for s in scraped)
    assert outputs["snapshots"], "no failure snapshot was taken"
    assert "Product 2" in outputs["try"]
    for where, text in outputs.items():
        for name, value in secrets_.items():
            assert value not in text, f"the {name} secret is in the {where} output"
