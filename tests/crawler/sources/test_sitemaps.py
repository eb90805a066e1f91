"""Sitemaps as input (``[input] sitemaps``): streamed, gzipped or not, nested indexes,
filtered by ``sitemap_include``, fed into the frontier like any input; a broken
sitemap is one warning.  A test server on 127.0.0.1 serves them; no browser."""

from __future__ import annotations

import gzip
import logging
import tracemalloc
import zlib
from xml.sax.saxutils import escape

import psutil
import pytest
import trio

from crawler import config as config_mod
from crawler.demo import expected_item
from crawler.httpserver import Response, serve_http
from crawler.sources.feed import InputFeed
from crawler.sources.inputs import iter_urls
from crawler.sources.sitemaps import ACCEPT_ENCODING, iter_sitemap_urls
from crawler.store.sqlite import SqliteStore
from crawler.urls import MAX_URL_CHARS
from tests.crawler.conftest import crawl, make_config
from tests.shop import FaultShop, start_shop

NS = 'xmlns="http://www.sitemaps.org/schemas/sitemap/0.9"'


def urlset(urls) -> bytes:
    rows = "".join(
        f"<url><loc>{escape(u)}</loc><lastmod>2026-11-30</lastmod><changefreq>daily</changefreq><priority>0.8</priority></url>\n"
        for u in urls
    )
    return f'<?xml version="1.0" encoding="UTF-8"?>\n<urlset {NS}>\n{rows}</urlset>\n'.encode()


def index(locs) -> bytes:
    rows = "".join(f"<sitemap><loc>{loc}</loc></sitemap>\n" for loc in locs)
    return f'<?xml version="1.0" encoding="UTF-8"?>\n<sitemapindex {NS}>\n{rows}</sitemapindex>\n'.encode()


class SitemapServer:
    """Serves ``files`` (path -> bytes), each with its ``encodings`` entry as its
    Content-Encoding if it has one; 404 for the rest; logs every path asked for, and
    every Accept-Encoding header."""

    def __init__(self, files: dict[str, bytes]):
        self.files = files
        self.encodings: dict[str, str] = {}
        self.paths: list[str] = []
        self.accepted: list[str] = []

    async def __call__(self, request) -> Response:
        self.paths.append(request.path)
        self.accepted.append(request.headers.get("accept-encoding", ""))
        body = self.files.get(request.path)
        if body is None:
            return Response(status=404, body=b"no\n", content_type="text/plain")
        if request.path in self.encodings:
            return Response(
                body=body, content_type="application/xml", headers=(("Content-Encoding", self.encodings[request.path]),)
            )
        kind = "application/gzip" if body[:2] == b"\x1f\x8b" else "application/xml"
        return Response(body=body, content_type=kind)


async def serve(nursery, files: dict[str, bytes]) -> tuple[str, SitemapServer]:
    server = SitemapServer(files)
    port = await nursery.start(serve_http, server)
    return f"http://127.0.0.1:{port}", server


def product_url(i: int) -> str:
    return f"http://shop.test/product/{i}?colour=navy&size=medium&ref=sitemap-long-tail-entry"


async def test_a_nested_gzipped_index_of_50000_urls_is_read_in_bounded_memory(nursery):
    """An index (gzipped) of an index (gzipped) of two gzipped sitemaps of 25,000 URLs
    each (over 4 MB of XML each): every URL comes out once, in order.  Memory: the
    process's RSS grows by less than 32 MiB over the whole read (a parsed tree of one
    sitemap alone is far bigger), and across the switch from the first sitemap to the
    second (URLs 24,000 to 27,000: the second is fetched and starts being parsed) the
    reader's peak traced allocations stay under 2 MiB, less than half of that
    sitemap's text: it is never held whole."""
    per_file = 25_000
    files: dict[str, bytes] = {}
    base, server = await serve(nursery, files)
    files["/sitemap.xml.gz"] = gzip.compress(index([f"{base}/inner-index.xml.gz"]))
    files["/inner-index.xml.gz"] = gzip.compress(index([f"{base}/s1.xml.gz", f"{base}/s2.xml.gz"]))
    for part in (1, 2):
        ids = range((part - 1) * per_file + 1, part * per_file + 1)
        text = urlset(product_url(i) for i in ids)
        assert len(text) > 4 * 2**20
        files[f"/s{part}.xml.gz"] = gzip.compress(text)
    process = psutil.Process()

    def read() -> tuple[int, bool, int, int]:
        count, in_order, peak = 0, True, 0
        rss = [process.memory_info().rss]
        try:
            for i, url in enumerate(iter_sitemap_urls([f"{base}/sitemap.xml.gz"]), 1):
                in_order = in_order and url == product_url(i)
                count += 1
                if i % 5000 == 0:
                    rss.append(process.memory_info().rss)
                if i == 24_000:
                    tracemalloc.start()  # only here: tracing every allocation is slow
                elif i == 27_000:
                    peak = tracemalloc.get_traced_memory()[1]
                    tracemalloc.stop()
        finally:
            tracemalloc.stop()
        return count, in_order, peak, max(rss) - rss[0]

    count, in_order, peak, rss_growth = await trio.to_thread.run_sync(read)
    assert count == 2 * per_file and in_order
    assert 0 < peak < 2 * 2**20, f"peak {peak / 2**20:.1f} MiB"
    assert rss_growth < 32 * 2**20, f"RSS grew {rss_growth / 2**20:.1f} MiB"
    assert server.paths == ["/sitemap.xml.gz", "/inner-index.xml.gz", "/s1.xml.gz", "/s2.xml.gz"]


async def test_sitemaps_feed_the_frontier_filtered_and_a_rerun_continues(nursery, tmp_path, caplog):
    """[input] sitemaps with sitemap_include: only matching URLs are fed, lookahead at a
    time; a rerun's feed continues at the stored position; a sitemap that is missing
    (404), one that is not XML and one cut off mid-gzip are each one warning line, and
    the URLs of the good ones (and those read before the cut) are all fed."""
    files: dict[str, bytes] = {}
    base, _ = await serve(nursery, files)
    good = [f"http://shop.test/product/{i}" for i in range(1, 31)] + [f"http://shop.test/about/{i}" for i in range(5)]
    files["/good.xml"] = urlset(good)
    files["/junk.xml"] = b"<html><body>not a sitemap"
    cut = gzip.compress(urlset([f"http://shop.test/product/{i}" for i in range(100, 2100)]))
    files["/cut.xml.gz"] = cut[: len(cut) // 2]
    files["/also-good.xml"] = urlset(
        ["http://shop.test/product/31", "javascript:alert(1)", "http://shop.test/product/1"]
    )
    data = {
        "input": {
            "sitemaps": [
                f"{base}/good.xml",
                f"{base}/missing.xml",
                f"{base}/junk.xml",
                f"{base}/cut.xml.gz",
                f"{base}/also-good.xml",
            ],
            "sitemap_include": ["http://shop.test/product/*"],
            "lookahead": 20,
        },
        "output": {"db": str(tmp_path / "s.db")},
    }
    cfg = config_mod.from_dict(data, source="site.toml", base_dir=str(tmp_path))
    caplog.set_level(logging.WARNING, logger="crawler.sources.sitemaps")
    store = SqliteStore(cfg.output.db)
    feed = InputFeed(cfg.input, store, base_dir=cfg.base_dir, source=cfg.source, max_urls=cfg.crawl.max_pages)
    assert await feed.fill() == 20
    assert feed.statistics().position == 20
    for _ in range(20):  # the workers take them
        job = await store.claim()
        assert await store.complete(job, [], [], 200, 0.1)
    rerun = InputFeed(
        cfg.input, store, base_dir=cfg.base_dir, source=cfg.source, max_urls=cfg.crawl.max_pages
    )  # a new run: continues at entry 20
    while not rerun.exhausted:
        await rerun.fill()
        while (job := await store.claim()) is not None:
            assert await store.complete(job, [], [], 200, 0.1)
    everything = list(
        await trio.to_thread.run_sync(lambda: list(iter_urls(cfg.input, base_dir=cfg.base_dir, source=cfg.source)))
    )
    cut_urls = [u for u in everything if int(u.rsplit("/", 1)[1]) >= 100]
    assert 0 < len(cut_urls) < 2000  # read up to the cut
    assert everything == good[:30] + cut_urls + ["http://shop.test/product/31", "http://shop.test/product/1"]
    counts = await store.counts()
    assert counts["done"] == 31 + len(cut_urls) and counts["pending"] == 0
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert any("missing.xml: HTTP 404" in w for w in warnings)
    assert any("junk.xml: not a sitemap" in w for w in warnings)
    assert any("cut.xml.gz: broken gzip data" in w for w in warnings)
    assert any("javascript:alert(1)" in w for w in warnings)
    store.close()


def test_sitemap_keys_are_checked_at_load(tmp_path):
    """A sitemap that is not an http(s) URL, and sitemap_include without sitemaps, are
    one-line errors naming the key; an input of sitemaps only is a valid input."""
    with pytest.raises(config_mod.ConfigError, match=r"site.toml: \[input\] sitemaps: expected an http\(s\) URL"):
        config_mod.from_dict({"input": {"sitemaps": ["file:///etc/passwd"]}}, source="site.toml")
    with pytest.raises(config_mod.ConfigError, match=r"\[input\] sitemap_include needs sitemaps"):
        config_mod.from_dict({"input": {"urls": ["http://a.test/"], "sitemap_include": ["*"]}}, source="site.toml")
    cfg = config_mod.from_dict({"input": {"sitemaps": ["http://a.test/sitemap.xml"]}}, source="site.toml")
    assert cfg.input.sitemaps == ("http://a.test/sitemap.xml",)


async def read_all(sitemaps: list[str], caplog) -> tuple[list[str], list[str]]:
    """The URLs iter_sitemap_urls gives for ``sitemaps``, and its warning lines."""
    caplog.set_level(logging.WARNING, logger="crawler.sources.sitemaps")
    caplog.clear()
    urls = await trio.to_thread.run_sync(lambda: list(iter_sitemap_urls(sitemaps)))
    return urls, [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]


async def test_an_over_long_loc_is_one_line_quoting_its_start_and_the_rest_is_read(nursery, caplog):
    """A <loc> of 1 MiB is refused as soon as its text passes the limit (never held
    whole), in one line quoting its first 100 characters; a second over-long one (9,000
    characters: over MAX_URL_CHARS, so refused by the URL check) adds no line of its
    own, and the count of entries skipped closes the sitemap; the entries between and
    after are read."""
    files: dict[str, bytes] = {}
    base, _ = await serve(nursery, files)
    long_loc = "http://h.test/" + "x" * 2**20
    medium = "http://h.test/" + "m" * 9000
    files["/s.xml.gz"] = gzip.compress(
        urlset(["http://h.test/a", long_loc, "http://h.test/b", medium, "http://h.test/c"])
    )
    urls, warnings = await read_all([f"{base}/s.xml.gz"], caplog)
    assert urls == ["http://h.test/a", "http://h.test/b", "http://h.test/c"]
    assert warnings == [
        f"sitemap {base}/s.xml.gz: a <loc> of more than {MAX_URL_CHARS} characters: {long_loc[:100]!r}...;"
        " skipped (and any further such entries of this sitemap)",
        f"sitemap {base}/s.xml.gz: 2 entries skipped in all",
    ]


LAUGHS = (
    '<?xml version="1.0"?>\n<!DOCTYPE urlset [\n<!ENTITY a "aaaaaaaaaa">\n'
    + "".join(f'<!ENTITY {chr(98 + i)} "{("&" + chr(97 + i) + ";") * 10}">\n' for i in range(9))
    + f"]>\n<urlset {NS}><url><loc>http://h.test/&j;</loc></url></urlset>\n"
)
XXE = (
    '<?xml version="1.0"?>\n<!DOCTYPE urlset [<!ENTITY secret SYSTEM "file:///etc/hostname">]>\n'
    f"<urlset {NS}><url><loc>http://h.test/&secret;</loc></url></urlset>\n"
)


@pytest.mark.parametrize("text", [LAUGHS, XXE], ids=["billion-laughs", "xxe"])
async def test_a_sitemap_declaring_entities_is_refused_in_one_line(nursery, caplog, text):
    """Billion laughs (10^10 characters from 1 KB) and an external entity naming a
    local file: a DOCTYPE with declarations is refused before any is read, in one line;
    no entity is expanded or fetched, and the next sitemap is read."""
    files: dict[str, bytes] = {}
    base, _ = await serve(nursery, files)
    files["/bomb.xml"] = text.encode()
    files["/good.xml"] = urlset(["http://h.test/good"])
    urls, warnings = await read_all([f"{base}/bomb.xml", f"{base}/good.xml"], caplog)
    assert urls == ["http://h.test/good"]
    assert warnings == [
        f"sitemap {base}/bomb.xml: a DOCTYPE with declarations, refused (a sitemap has none;"
        " XML bombs are made of them); 0 URLs read from it before that"
    ]


async def test_a_doctype_naming_an_external_dtd_is_read_and_the_dtd_never_fetched(nursery, caplog):
    files: dict[str, bytes] = {}
    base, server = await serve(nursery, files)
    head = f'<?xml version="1.0"?>\n<!DOCTYPE urlset SYSTEM "{base}/evil.dtd">\n'
    files["/s.xml"] = head.encode() + urlset(["http://h.test/a"]).split(b"\n", 1)[1]
    urls, warnings = await read_all([f"{base}/s.xml"], caplog)
    assert urls == ["http://h.test/a"] and warnings == []
    assert server.paths == ["/s.xml"]


async def test_content_encodings_are_undone_here_and_one_not_asked_for_is_one_line(nursery, caplog):
    """Content-Encoding gzip (of a .xml.gz: gzip twice), deflate zlib-wrapped and raw
    are read (the request asks for gzip and deflate only, whatever httpx could do); br
    is one line naming it."""
    files: dict[str, bytes] = {}
    base, server = await serve(nursery, files)
    raw = zlib.compressobj(6, zlib.DEFLATED, -zlib.MAX_WBITS)
    files["/double.xml.gz"] = gzip.compress(gzip.compress(urlset(["http://h.test/double"])))
    files["/zlib.xml"] = zlib.compress(urlset(["http://h.test/zlib"]))
    files["/raw.xml"] = raw.compress(urlset(["http://h.test/raw"])) + raw.flush()
    files["/br.xml"] = b"\x0b\x02\x80<urlset/>"
    server.encodings.update({"/double.xml.gz": "gzip", "/zlib.xml": "deflate", "/raw.xml": "deflate", "/br.xml": "br"})
    urls, warnings = await read_all(
        [f"{base}{p}" for p in ("/double.xml.gz", "/zlib.xml", "/raw.xml", "/br.xml")], caplog
    )
    assert urls == ["http://h.test/double", "http://h.test/zlib", "http://h.test/raw"]
    assert warnings == [f"sitemap {base}/br.xml: unsupported Content-Encoding 'br'; 0 URLs read from it before that"]
    assert set(server.accepted) == {ACCEPT_ENCODING} == {"gzip, deflate"}


class SitemapShop(FaultShop):
    """The fault shop, with a sitemap index (plain XML) of one gzipped sitemap of its
    first 40 product pages and its about page."""

    async def __call__(self, request) -> Response:
        if request.path == "/sitemap.xml":
            return Response(body=index([f"{self.base}/products.xml.gz"]), content_type="application/xml")
        if request.path == "/products.xml.gz":
            urls = [f"{self.base}/product/{i}" for i in range(1, 41)] + [f"{self.base}/about"]
            return Response(body=gzip.compress(urlset(urls)), content_type="application/gzip")
        return await super().__call__(request)


@pytest.mark.chromium
async def test_a_sitemap_index_is_crawled_as_input(nursery, tmp_path):
    """A crawl whose only input is a sitemap index: its product pages (sitemap_include)
    are fed lookahead 10 at a time, and the pages crawled (limit 3) give the shop's items."""
    shop = SitemapShop()
    shop.base = await start_shop(nursery, shop)
    cfg = make_config(
        tmp_path,
        [],
        input={
            "urls": [],
            "sitemaps": [f"{shop.base}/sitemap.xml"],
            "sitemap_include": ["*/product/*"],
            "lookahead": 10,
        },
        pool={"concurrency": 1},  # --limit counts claims; two workers may both claim the last one
    )
    crawler, store, reason = await crawl(cfg, limit=3)
    assert reason == "limit"
    counts = await store.counts()
    assert counts["done"] == 3 and sum(counts.values()) == 10
    items = list(await store.items())
    assert items == [expected_item(shop.base, int(item["url"].rsplit("/", 1)[1])) for item in items]
    assert {int(item["url"].rsplit("/", 1)[1]) for item in items} <= set(range(1, 11))
    store.close()
