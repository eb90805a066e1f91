"""Sitemaps as input (``[input] sitemaps``): the page URLs of sitemap XML files and
sitemap indexes, gzipped or not, read as a stream and never held whole.

:func:`iter_sitemap_urls` is a blocking iterator (the input feed runs it in a worker
thread, a batch at a time, as it does files): each sitemap is fetched with httpx's
streaming client, decompressed incrementally when it is gzip (by its first bytes,
whatever its name or headers say; ``Content-Encoding: gzip`` is undone by httpx), and
parsed by :class:`xml.etree.ElementTree.XMLPullParser`, each ``<url>`` dropped once its
``<loc>`` is read.  Memory is one network chunk, one bounded piece of decompressed
text, and the child sitemaps of the index being read (an index lists at most 50,000).

A sitemap index's child sitemaps are read after the index, in order, depth first, up
to :data:`MAX_INDEX_DEPTH` levels; a sitemap seen twice is read once.  Every page URL
goes through :func:`crawler.config.check_url` and then the ``sitemap_include`` globs.

Remote content is not the user's input: a sitemap that cannot be fetched (a status
>= 400, a network error, a timeout), is not XML, or is too big, is one warning line
and the input continues with the next one, keeping the URLs read before the break; a
``<loc>`` that is not an http(s) URL is skipped and counted (one warning per sitemap).
"""

from __future__ import annotations

import logging
import xml.etree.ElementTree as ET
import zlib
from collections.abc import Iterable, Iterator
from fnmatch import fnmatchcase

import httpx

from crawler.config import check_url
from crawler.errors import ConfigError
from crawler.urls import short_url

log = logging.getLogger(__name__)

SITEMAP_TIMEOUT_S = 30.0  # httpx deadline of each network step (connect, each read) of a sitemap fetch
MAX_INDEX_DEPTH = 4  # sitemap indexes nested deeper than this are not followed
MAX_SITEMAP_BYTES = 256 * 2**20  # 256 MiB of XML per sitemap (the protocol's limit is 50 MB): beyond, it stops
# 64 KiB: the most XML parsed at once, gunzipped or not: the parser holds the elements
# of one piece until they are read (about 100 bytes of objects per byte of entry text).
PIECE_BYTES = 64 * 2**10
GZIP_MAGIC = b"\x1f\x8b"


class SitemapError(Exception):
    """A sitemap could not be read to its end (the reason is the message)."""


def iter_sitemap_urls(
    sitemaps: Iterable[str], include: Iterable[str] = (), *, client: httpx.Client | None = None
) -> Iterator[str]:
    """The page URLs of ``sitemaps`` (URLs of sitemaps or sitemap indexes), in order, in
    canonical form, those matching any ``include`` glob (all if none).  Blocking: run
    it in a thread.  Never raises for a bad sitemap (one warning line each)."""
    globs = tuple(include)
    own = client is None
    http = client or httpx.Client(timeout=SITEMAP_TIMEOUT_S, follow_redirects=True)
    try:
        seen: set[str] = set()
        for sitemap in sitemaps:
            yield from _walk(http, sitemap, globs, 0, seen)
    finally:
        if own:
            http.close()


def _walk(http: httpx.Client, sitemap: str, globs: tuple[str, ...], depth: int, seen: set[str]) -> Iterator[str]:
    if sitemap in seen:
        return
    seen.add(sitemap)
    children: list[str] = []
    pages = bad = 0
    try:
        for kind, loc in _locs(http, sitemap):
            if kind == "sitemap":
                if depth >= MAX_INDEX_DEPTH:
                    log.warning(
                        "sitemap %s: index nested deeper than %d: %s not read",
                        short_url(sitemap),
                        MAX_INDEX_DEPTH,
                        short_url(loc),
                    )
                else:
                    children.append(loc)
                continue
            try:
                url = check_url(loc, where=f"sitemap {short_url(sitemap)}")
            except ConfigError as exc:
                bad += 1
                if bad == 1:
                    log.warning("%s; skipped (and any further such entries of this sitemap)", exc)
                continue
            if globs and not any(fnmatchcase(url, g) for g in globs):
                continue
            pages += 1
            yield url
    except SitemapError as exc:
        log.warning("sitemap %s: %s; %d URLs read from it before that", short_url(sitemap), exc, pages)
    for child in children:
        try:
            child_url = check_url(child, where=f"sitemap index {short_url(sitemap)}")
        except ConfigError as exc:
            log.warning("%s; skipped", exc)
            continue
        yield from _walk(http, child_url, globs, depth + 1, seen)


def _locs(http: httpx.Client, sitemap: str) -> Iterator[tuple[str, str]]:
    """("url" or "sitemap", the text of its <loc>) for each entry of one sitemap, as the
    bytes arrive.  Raises SitemapError when it cannot be read to its end."""
    parser = ET.XMLPullParser(events=("start", "end"))
    root: ET.Element | None = None
    try:
        with http.stream("GET", sitemap) as response:
            if response.status_code >= 400:
                raise SitemapError(f"HTTP {response.status_code}")
            for text in _inflated(response.iter_bytes(PIECE_BYTES)):
                parser.feed(text)
                for event, elem in parser.read_events():
                    if event == "start":
                        root = elem if root is None else root
                        continue
                    kind = _local(elem.tag)
                    if kind in ("url", "sitemap"):
                        loc = next((c.text for c in elem if _local(c.tag) == "loc"), None)
                        if loc and loc.strip():
                            yield kind, loc.strip()
                        if root is not None:
                            root.clear()  # the entries read so far: dropped, memory stays flat
            parser.close()
    except httpx.HTTPError as exc:
        raise SitemapError(f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__) from None
    except ET.ParseError as exc:
        raise SitemapError(f"not a sitemap (invalid XML: {exc})") from None
    except zlib.error as exc:
        raise SitemapError(f"broken gzip data: {exc}") from None
    if root is None or _local(root.tag) not in ("urlset", "sitemapindex"):
        raise SitemapError(f"not a sitemap (its root is <{_local(root.tag) if root is not None else ''}>)")


def _inflated(chunks: Iterator[bytes]) -> Iterator[bytes]:
    """The bytes of ``chunks``, gunzipped if they start with the gzip magic, in pieces
    of at most PIECE_BYTES; SitemapError past MAX_SITEMAP_BYTES."""
    inflate = None
    total = 0
    for chunk in chunks:
        if not chunk:
            continue
        if inflate is None:
            inflate = zlib.decompressobj(16 + zlib.MAX_WBITS) if chunk.startswith(GZIP_MAGIC) else False
        pieces = _pieces(inflate, chunk) if inflate else (chunk,)
        for piece in pieces:
            total += len(piece)
            if total > MAX_SITEMAP_BYTES:
                raise SitemapError(f"larger than {MAX_SITEMAP_BYTES // 2**20} MiB")
            yield piece
    if inflate and not inflate.eof:
        raise SitemapError("broken gzip data: it ends early")


def _pieces(inflate, data: bytes) -> Iterator[bytes]:
    """What ``data`` inflates to, a bounded piece at a time (output the inflater still
    holds is asked for until it gives none)."""
    while True:
        piece = inflate.decompress(data, PIECE_BYTES)
        data = inflate.unconsumed_tail
        if piece:
            yield piece
        if inflate.eof or (not data and not piece):
            return


def _local(tag: object) -> str:
    """An element's name without its namespace."""
    return tag.rsplit("}", 1)[-1] if isinstance(tag, str) else ""
