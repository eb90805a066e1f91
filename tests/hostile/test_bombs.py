"""Hostile remote files, round 3 (issue 26): sitemaps and robots.txt made to eat memory.

A server on 127.0.0.1 (a thread, stopped by the fixture) makes each bomb as it sends
it: a gzip stream repeats one compressed block, so a GiB costs it a few KB.  Each case
is read by ``tests/hostile/bomb_reader.py`` in a process of its own, whose peak
resident memory (VmHWM, imports included) must stay under :data:`PEAK_LIMIT_MIB`; and
each asserts the outcome: the URLs read, the one clear line per problem.  (Not
``getrusage(RUSAGE_CHILDREN).ru_maxrss``: it is the largest of every child the test
process has had, and Linux carries a child's pre-exec high-water mark, its copy of
the parent, across exec.)
"""

from __future__ import annotations

import json
import os
import struct
import subprocess
import sys
import threading
import zlib
from collections.abc import Callable, Iterable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from crawler.policy.robots import ROBOTS_MAX_BYTES
from crawler.sources.sitemaps import (
    MAX_INDEX_CHARS,
    MAX_INDEX_SITEMAPS,
    MAX_NESTING,
    MAX_SITEMAP_BYTES,
    MAX_SITEMAP_URLS,
    MAX_TOKEN_BYTES,
)
from crawler.urls import MAX_URL_CHARS
from tests.procs import REPO

MiB = 2**20
PEAK_LIMIT_MIB = 100  # the bound on reading any one bomb, the interpreter and its imports included
READ_TIMEOUT_S = 60.0
NS = 'xmlns="http://www.sitemaps.org/schemas/sitemap/0.9"'
XML_HEAD = b'<?xml version="1.0" encoding="UTF-8"?>\n'
URLSET = XML_HEAD + f"<urlset {NS}>\n".encode()
FIRST = b"<url><loc>http://h.test/first</loc></url>\n"
GZIP_HEADER = b"\x1f\x8b\x08\x00\x00\x00\x00\x00\x02\xff"  # deflate, no name, no time, max compression, unix

Body = Callable[[], Iterable[bytes]]


def _deflated(data: bytes, mode: int) -> bytes:
    packer = zlib.compressobj(9, zlib.DEFLATED, -zlib.MAX_WBITS)
    return packer.compress(data) + packer.flush(mode)


def gzip_stream(prefix: bytes, block: bytes, count: int, suffix: bytes) -> Iterator[bytes]:
    """The gzip file of ``prefix + block * count + suffix``, made as it is sent: the
    block is compressed once, and a full flush after it makes its deflate bytes stand
    on their own, so they are sent ``count`` times as they are."""
    packed = _deflated(block, zlib.Z_FULL_FLUSH)
    yield GZIP_HEADER + _deflated(prefix, zlib.Z_FULL_FLUSH)
    crc = zlib.crc32(prefix)
    for sent in range(0, count, 16):
        batch = min(16, count - sent)
        yield packed * batch
        for _ in range(batch):
            crc = zlib.crc32(block, crc)
    size = len(prefix) + len(block) * count + len(suffix)
    yield _deflated(suffix, zlib.Z_FINISH) + struct.pack("<II", zlib.crc32(suffix, crc), size & 0xFFFFFFFF)


def gzip_of(parts: Iterable[bytes]) -> Iterator[bytes]:
    """``parts`` gzipped as they come (for text that does not repeat)."""
    packer = zlib.compressobj(1, zlib.DEFLATED, 16 + zlib.MAX_WBITS)
    for part in parts:
        if packed := packer.compress(part):
            yield packed
    yield packer.flush()


class BombServer(ThreadingHTTPServer):
    """Answers GET ``path`` from ``routes`` (path -> (headers, body maker)), 404 for the
    rest; a client that goes away mid-body ends that answer, quietly."""

    daemon_threads = True

    def __init__(self) -> None:
        super().__init__(("127.0.0.1", 0), _Handler)
        self.routes: dict[str, tuple[dict[str, str], Body]] = {}
        self.base = f"http://127.0.0.1:{self.server_address[1]}"


class _Handler(BaseHTTPRequestHandler):
    server: BombServer

    def do_GET(self) -> None:
        route = self.server.routes.get(self.path)
        if route is None:
            self.send_response(404)
            self.send_header("Content-Length", "0")
            self.end_headers()
            return
        headers, body = route
        self.send_response(200)
        for name, value in headers.items():
            self.send_header(name, value)
        self.end_headers()
        try:
            for chunk in body():
                self.wfile.write(chunk)
        except (BrokenPipeError, ConnectionResetError):
            pass

    def log_message(self, format: str, *args: object) -> None:
        pass


@pytest.fixture
def bombs() -> Iterator[BombServer]:
    server = BombServer()
    thread = threading.Thread(target=server.serve_forever, name="bomb-server", daemon=True)
    thread.start()
    try:
        yield server
    finally:
        server.shutdown()
        server.server_close()
        thread.join(5)


def read(mode: str, url: str = "") -> dict:
    """What ``bomb_reader MODE URL`` printed, in a process of its own; its peak memory
    is printed too (the figure the issue's closing note quotes)."""
    path = os.pathsep.join(p for p in (str(REPO), os.environ.get("PYTHONPATH", "")) if p)
    done = subprocess.run(
        [sys.executable, "-m", "tests.hostile.bomb_reader", mode, *([url] if url else [])],
        cwd=REPO,
        env={**os.environ, "PYTHONPATH": path},
        capture_output=True,
        timeout=READ_TIMEOUT_S,
        check=False,
    )
    assert done.returncode == 0, done.stderr.decode(errors="replace")[-3000:]
    result = json.loads(done.stdout)
    result["peak_mib"] = result["vmhwm_kib"] / 1024
    print(f"{mode} {url.rsplit('/', 1)[-1]}: peak {result['peak_mib']:.1f} MiB")
    return result


def lines(result: dict) -> list[str]:
    return [w["text"] for w in result["warnings"]]


def serve_gzip(bombs: BombServer, path: str, make: Body, *, encoded: bool = False) -> str:
    """Serves ``make``'s gzip stream at ``path``: as a gzip file, or as XML sent with
    Content-Encoding: gzip (``encoded``).  Returns its URL."""
    if encoded:
        bombs.routes[path] = ({"Content-Type": "application/xml", "Content-Encoding": "gzip"}, make)
    else:
        bombs.routes[path] = ({"Content-Type": "application/gzip"}, make)
    return bombs.base + path


def test_the_reader_process_alone_is_far_under_the_limit():
    """The baseline every figure below includes: the interpreter, httpx, trio and the
    crawler's modules; what is left of the limit is what a bomb may cost."""
    assert read("baseline")["peak_mib"] < PEAK_LIMIT_MIB / 2


@pytest.mark.parametrize("encoded", [False, True], ids=["gzip-file", "content-encoding"])
def test_a_gzip_bomb_sitemap_stops_at_the_size_limit_in_flat_memory(bombs, encoded):
    """1 GiB of spaces inside a urlset, gzipped (1 MB on the wire), as a .xml.gz file
    or sent with Content-Encoding: gzip: the URL before the spaces is read, then one
    line says the sitemap is over MAX_SITEMAP_BYTES; memory stays flat (never a whole
    network chunk inflated at once, never the spaces held)."""
    url = serve_gzip(
        bombs, "/bomb.xml", lambda: gzip_stream(URLSET + FIRST, b" " * MiB, 1024, b"</urlset>\n"), encoded=encoded
    )
    result = read("sitemap", url)
    assert result["urls"] == 1 and result["head"] == ["http://h.test/first"]
    assert lines(result) == [
        f"sitemap {url}: larger than {MAX_SITEMAP_BYTES // MiB} MiB of XML; 1 URLs read from it before that"
    ]
    assert result["peak_mib"] < PEAK_LIMIT_MIB


def test_a_250_mib_loc_is_refused_in_one_line_and_never_held(bombs):
    """The field report's sitemap: one <loc> of 250 MiB gzipped to 255 KB.  It is
    refused as soon as it passes the URL limit, in one line quoting its first 100
    characters; the sitemap then stops at its size limit."""
    prefix = URLSET + FIRST + b"<url><loc>http://h.test/"
    suffix = b"</loc></url>\n<url><loc>http://h.test/after</loc></url>\n</urlset>\n"
    url = serve_gzip(bombs, "/long-loc.xml.gz", lambda: gzip_stream(prefix, b"x" * MiB, 250, suffix))
    result = read("sitemap", url)
    assert result["urls"] == 1 and result["head"] == ["http://h.test/first"]
    quoted = "http://h.test/" + "x" * 86
    assert lines(result) == [
        f"sitemap {url}: a <loc> of more than {MAX_URL_CHARS} characters: {quoted!r}...;"
        " skipped (and any further such entries of this sitemap)",
        f"sitemap {url}: larger than {MAX_SITEMAP_BYTES // MiB} MiB of XML; 1 URLs read from it before that",
    ]
    assert result["peak_mib"] < PEAK_LIMIT_MIB


def test_a_loc_of_40_mib_under_the_size_limit_is_skipped_and_the_rest_read(bombs):
    """An over-long <loc> in a sitemap under the size limit: one line, and the entries
    after it are read."""
    prefix = URLSET + FIRST + b"<url><loc>http://h.test/"
    suffix = b"</loc></url>\n<url><loc>http://h.test/after</loc></url>\n</urlset>\n"
    url = serve_gzip(bombs, "/long-loc.xml.gz", lambda: gzip_stream(prefix, b"y" * MiB, 40, suffix))
    result = read("sitemap", url)
    assert result["urls"] == 2 and result["head"] == ["http://h.test/first", "http://h.test/after"]
    assert len(lines(result)) == 1 and lines(result)[0].startswith(f"sitemap {url}: a <loc> of more than")
    assert result["peak_mib"] < PEAK_LIMIT_MIB


def test_a_sitemap_of_a_million_urls_is_read_up_to_the_limit(bombs):
    """A plain urlset of 1,000,000 entries (45 MB), streamed: exactly MAX_SITEMAP_URLS
    are read, in order, and one line says the rest is not."""

    def urlset() -> Iterator[bytes]:
        yield URLSET
        for start in range(1, 1_000_001, 10_000):
            yield b"".join(b"<url><loc>http://h.test/p/%d</loc></url>\n" % i for i in range(start, start + 10_000))
        yield b"</urlset>\n"

    bombs.routes["/million.xml"] = ({"Content-Type": "application/xml"}, urlset)
    url = bombs.base + "/million.xml"
    result = read("sitemap", url)
    assert result["urls"] == MAX_SITEMAP_URLS
    assert result["head"][0] == "http://h.test/p/1" and result["last"] == f"http://h.test/p/{MAX_SITEMAP_URLS}"
    assert lines(result) == [
        f"sitemap {url}: more than {MAX_SITEMAP_URLS} URLs (the rest is not read);"
        f" {MAX_SITEMAP_URLS} URLs read from it before that"
    ]
    assert result["peak_mib"] < PEAK_LIMIT_MIB


def test_an_index_of_a_million_sitemaps_holds_at_most_the_protocols_50000(bombs):
    """A sitemap index listing one child a million times: MAX_INDEX_SITEMAPS are kept
    (one line says so), and the child is read once."""
    leaf = bombs.base + "/leaf.xml"
    row = f"<sitemap><loc>{leaf}</loc></sitemap>\n".encode()

    def index() -> Iterator[bytes]:
        yield XML_HEAD + f"<sitemapindex {NS}>\n".encode()
        for _ in range(100):
            yield row * 10_000
        yield b"</sitemapindex>\n"

    bombs.routes["/index.xml"] = ({"Content-Type": "application/xml"}, index)
    bombs.routes["/leaf.xml"] = ({"Content-Type": "application/xml"}, lambda: [URLSET + FIRST + b"</urlset>\n"])
    url = bombs.base + "/index.xml"
    result = read("sitemap", url)
    assert result["urls"] == 1 and result["head"] == ["http://h.test/first"]
    assert lines(result) == [
        f"sitemap {url}: more than {MAX_INDEX_SITEMAPS} child sitemaps (the rest is not read);"
        " 0 URLs read from it before that"
    ]
    assert result["peak_mib"] < PEAK_LIMIT_MIB


def test_an_index_of_long_child_urls_holds_at_most_max_index_chars_of_them(bombs):
    """Child sitemap URLs of 8,000 characters, 4,000 of them (32 MB): the index keeps
    MAX_INDEX_CHARS of them (one line says so) and reads those (here each is a 404:
    one line each)."""
    rows = [f"<sitemap><loc>{bombs.base}/c/{i:04d}/{'z' * 7960}</loc></sitemap>\n".encode() for i in range(4000)]
    bombs.routes["/long-index.xml"] = (
        {"Content-Type": "application/xml"},
        lambda: [XML_HEAD + f"<sitemapindex {NS}>\n".encode(), *rows, b"</sitemapindex>\n"],
    )
    url = bombs.base + "/long-index.xml"
    kept = MAX_INDEX_CHARS // len(f"{bombs.base}/c/0000/{'z' * 7960}")
    result = read("sitemap", url)
    assert result["urls"] == 0
    found = lines(result)
    assert found[0] == (
        f"sitemap {url}: child sitemap URLs of more than {MAX_INDEX_CHARS} characters in all (the rest is not read);"
        " 0 URLs read from it before that"
    )
    assert len(found) == 1 + kept and all(": HTTP 404;" in line for line in found[1:])
    assert result["peak_mib"] < PEAK_LIMIT_MIB


def test_elements_nested_twenty_million_deep_stop_the_sitemap_at_once(bombs):
    """Expat keeps every open element (20 million <a> would cost it 2 GiB): the
    sitemap stops at MAX_NESTING, in one line."""
    url = serve_gzip(bombs, "/deep.xml.gz", lambda: gzip_stream(URLSET + FIRST, b"<a>" * (MiB // 3), 20, b""))
    result = read("sitemap", url)
    assert result["urls"] == 1  # the entry before the break
    assert lines(result) == [
        f"sitemap {url}: elements nested more than {MAX_NESTING} deep; 1 URLs read from it before that"
    ]
    assert result["peak_mib"] < PEAK_LIMIT_MIB


def test_millions_of_distinct_element_names_stop_the_sitemap(bombs):
    """Expat keeps every distinct element and attribute name it meets for the
    document's life (2 million cost it 330 MiB): the sitemap stops at a bound."""

    def names() -> Iterator[bytes]:
        yield URLSET + FIRST
        for start in range(0, 4_000_000, 10_000):
            yield b"".join(b"<n%d/>" % i for i in range(start, start + 10_000))

    url = bombs.base + "/names.xml.gz"
    bombs.routes["/names.xml.gz"] = ({"Content-Type": "application/gzip"}, lambda: gzip_of(names()))
    result = read("sitemap", url)
    assert result["urls"] == 1
    assert len(lines(result)) == 1 and "distinct element and attribute names" in lines(result)[0]
    assert result["peak_mib"] < PEAK_LIMIT_MIB


def test_a_comment_of_a_gib_stops_the_sitemap_at_the_token_limit(bombs):
    """Expat holds a comment (a tag, a declaration) whole until it ends, and reparses
    it at every piece fed: one that runs past MAX_TOKEN_BYTES stops the sitemap."""
    url = serve_gzip(bombs, "/comment.xml.gz", lambda: gzip_stream(URLSET + FIRST + b"<!--", b"c" * MiB, 1024, b"-->"))
    result = read("sitemap", url)
    assert result["urls"] == 1
    assert lines(result) == [
        f"sitemap {url}: an XML token (a tag, comment or declaration) of more than {MAX_TOKEN_BYTES // MiB} MiB;"
        " 1 URLs read from it before that"
    ]
    assert result["peak_mib"] < PEAK_LIMIT_MIB


ROBOTS_HEAD = b"User-agent: *\nDisallow: /private/\n"


def test_a_gzip_bomb_robots_txt_is_read_to_its_limit_in_flat_memory(bombs):
    """robots.txt sent with Content-Encoding: gzip, 1 GiB of blank lines after its
    first rule: the first ROBOTS_MAX_BYTES are the rules (the rule after the GiB is
    never seen), and memory stays flat."""
    bombs.routes["/robots.txt"] = (
        {"Content-Type": "text/plain", "Content-Encoding": "gzip"},
        lambda: gzip_stream(ROBOTS_HEAD, b"\n" * MiB, 1024, b"Disallow: /late/\n"),
    )
    result = read("robots", bombs.base + "/robots.txt")
    assert (result["status"], result["body_bytes"], result["error"]) == (200, ROBOTS_MAX_BYTES, "")
    assert result["verdicts"] == {"/private/x": "robots", "/late/x": "allowed", "/public/x": "allowed"}
    assert lines(result) == []
    assert result["peak_mib"] < PEAK_LIMIT_MIB


def test_a_robots_txt_of_one_400_mib_line_is_cut_at_its_limit(bombs):
    """A robots.txt whose third line is 400 MiB long (sent as it is made): the body is
    cut at ROBOTS_MAX_BYTES, the rules before the line hold, and memory stays flat."""

    def giant() -> Iterator[bytes]:
        yield ROBOTS_HEAD + b"Disallow: /"
        for _ in range(400):
            yield b"x" * MiB
        yield b"\nDisallow: /late/\n"

    bombs.routes["/robots.txt"] = ({"Content-Type": "text/plain"}, giant)
    result = read("robots", bombs.base + "/robots.txt")
    assert (result["status"], result["body_bytes"], result["error"]) == (200, ROBOTS_MAX_BYTES, "")
    assert result["verdicts"] == {"/private/x": "robots", "/late/x": "allowed", "/public/x": "allowed"}
    assert result["peak_mib"] < PEAK_LIMIT_MIB
