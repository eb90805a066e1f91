"""Sitemaps as input (``[input] sitemaps``): the page URLs of sitemap XML files and
sitemap indexes, gzipped or not, read as a stream and never held whole.

:func:`iter_sitemap_urls` is a blocking iterator (the input feed runs it in a worker
thread, a batch at a time, as it does files): each sitemap is fetched with httpx's
streaming client and its raw bytes are decoded here, a bounded piece at a time: first
its ``Content-Encoding`` (gzip or deflate), then gzip again if the result starts with
the gzip magic (whatever its name or headers say).  httpx's own decoders are not used:
they inflate each network chunk whole, so one 64 KiB chunk of a gzip bomb would be
64 MiB in memory at once.

The XML is parsed by expat (:mod:`xml.parsers.expat`) directly: ElementTree's parsers
keep an element's text until the element ends, so one 250 MiB ``<loc>`` was once held
whole (1.2 GiB at peak).  Here only the text of an entry's ``<loc>`` is kept, and only
up to the URL limit; and expat's own memory is bounded too: the elements open at once,
the distinct names it has met, the token it holds until it ends (see the limits
below).  A DOCTYPE with declarations is refused: a sitemap has none, and entities are
what XML bombs (billion laughs, XXE) are made of.  Memory is one network chunk, one
bounded piece of XML, and the child sitemaps of the indexes being read.

A sitemap index's child sitemaps are read after the index, in order, depth first, up
to :data:`MAX_INDEX_DEPTH` levels; a sitemap seen twice is read once.  Every page URL
goes through :func:`crawler.config.check_url` and then the ``sitemap_include`` globs.

Remote content is not the user's input: a sitemap that cannot be fetched (a status
>= 400, a network error, a timeout), is not XML, or passes a limit, is one warning line
and the input continues with the next one, keeping the URLs read before the break; a
``<loc>`` that is not an http(s) URL, or is too long, is skipped and counted (one
warning per sitemap, and one more with the count when there are several).
"""

from __future__ import annotations

import hashlib
import itertools
import logging
import xml.parsers.expat as expat
import zlib
from collections.abc import Iterable, Iterator
from fnmatch import fnmatchcase

import httpx

from crawler.config import check_url
from crawler.errors import ConfigError
from crawler.http.client import (
    ACCEPT_ENCODING,  # gzip and deflate: what is inflated here, within bounds (httpx would add br and zstd)
)
from crawler.urls import MAX_URL_CHARS, REFUSED_QUOTE_CHARS, redact_url, short_url

log = logging.getLogger(__name__)

SITEMAP_TIMEOUT_S = 30.0  # httpx deadline of each network step (connect, each read) of a sitemap fetch
MAX_INDEX_DEPTH = 4  # sitemap indexes nested deeper than this are not followed
# 64 MiB of XML per sitemap, after decompression: the protocol's limit is 50 MB, and
# beyond it a file is not a sitemap made for crawlers (a gzip bomb inflates 1,000 to 1).
MAX_SITEMAP_BYTES = 64 * 2**20
# <url> entries read from one sitemap: ten times the protocol's 50,000, because some sites
# publish bigger files and an entry costs no memory once read; past it the sitemap stops.
MAX_SITEMAP_URLS = 500_000
# Child sitemaps read from one index: the protocol's limit.  They are held until the
# index is read, so they are bounded in characters too (50,000 URLs of 160 characters).
MAX_INDEX_SITEMAPS = 50_000
MAX_INDEX_CHARS = 8 * 2**20
# The text of a <loc> kept: the longest URL, with room for the spaces and line breaks
# around it.  Past it the entry is refused at once and the rest of its text not kept.
MAX_LOC_CHARS = MAX_URL_CHARS + 1024
# Expat's own memory, bounded: it holds a token (a tag, a comment, a declaration) whole
# until it ends, and parses it again at every piece fed; it keeps each open element
# (a sitemap needs 4 levels; extensions a few more); and it keeps every distinct element
# and attribute name for the document's life (a sitemap uses a few dozen).
MAX_TOKEN_BYTES = 2**20  # 1 MiB
MAX_NESTING = 32
MAX_NAME_CHARS = 16 * 2**10  # of distinct names, in all
# 64 KiB: the most XML parsed at once, gunzipped or not.
PIECE_BYTES = 64 * 2**10
GZIP_MAGIC = b"\x1f\x8b"
GZIP_WBITS = 16 + zlib.MAX_WBITS
ROOTS = ("urlset", "sitemapindex")

# One entry of a sitemap: "url" or "sitemap", the text of its <loc>, and whether that
# is the whole text (False: the <loc> was over MAX_LOC_CHARS, and this is its start).
Entry = tuple[str, str, bool]


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
        seen: set[bytes] = set()  # digests of the sitemaps read: a child URL may be 8 KiB long
        for sitemap in sitemaps:
            yield from _walk(http, sitemap, globs, 0, seen)
    finally:
        if own:
            http.close()


def _walk(http: httpx.Client, sitemap: str, globs: tuple[str, ...], depth: int, seen: set[bytes]) -> Iterator[str]:
    digest = hashlib.blake2b(sitemap.encode(), digest_size=16).digest()
    if digest in seen:
        return
    seen.add(digest)
    where = f"sitemap {short_url(sitemap)}"
    children: list[str] = []
    child_chars = pages = urls = bad = too_deep = 0
    try:
        for kind, loc, whole in _entries(http, sitemap):
            if kind == "url":
                urls += 1
                if urls > MAX_SITEMAP_URLS:
                    raise SitemapError(f"more than {MAX_SITEMAP_URLS} URLs (the rest is not read)")
            if not whole:
                bad += 1
                if bad == 1:
                    log.warning(
                        "%s: a <loc> of more than %d characters: %r...; skipped"
                        " (and any further such entries of this sitemap)",
                        where,
                        MAX_URL_CHARS,
                        redact_url(loc[:REFUSED_QUOTE_CHARS]),
                    )
                continue
            if kind == "sitemap":
                if depth >= MAX_INDEX_DEPTH:
                    too_deep += 1
                    continue
                child_chars += len(loc)
                if len(children) >= MAX_INDEX_SITEMAPS:
                    raise SitemapError(f"more than {MAX_INDEX_SITEMAPS} child sitemaps (the rest is not read)")
                if child_chars > MAX_INDEX_CHARS:
                    raise SitemapError(
                        f"child sitemap URLs of more than {MAX_INDEX_CHARS} characters in all (the rest is not read)"
                    )
                children.append(loc)
                continue
            try:
                url = check_url(loc, where=where)
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
        log.warning("%s: %s; %d URLs read from it before that", where, exc, pages)
    if bad > 1:
        log.warning("%s: %d entries skipped in all", where, bad)
    if too_deep:
        log.warning("%s: index nested deeper than %d: its %d child sitemaps not read", where, MAX_INDEX_DEPTH, too_deep)
    for child in children:
        try:
            child_url = check_url(child, where=f"sitemap index {short_url(sitemap)}")
        except ConfigError as exc:
            log.warning("%s; skipped", exc)
            continue
        yield from _walk(http, child_url, globs, depth + 1, seen)


def _entries(http: httpx.Client, sitemap: str) -> Iterator[Entry]:
    """The entries of one sitemap, as the bytes arrive.  Raises SitemapError when it
    cannot be read to its end (after yielding the entries read before that)."""
    reader = _Reader()
    try:
        with http.stream("GET", sitemap, headers={"Accept-Encoding": ACCEPT_ENCODING}) as response:
            if response.status_code >= 400:
                raise SitemapError(f"HTTP {response.status_code}")
            encoding = response.headers.get("Content-Encoding", "")
            for piece in _xml(response.iter_raw(PIECE_BYTES), encoding):
                yield from reader.feed(piece)
                if reader.done:
                    return  # what follows the root element is not read
            yield from reader.feed(b"", final=True)
    except httpx.HTTPError as exc:
        raise SitemapError(f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__) from None


class _Reader:
    """Expat's handlers for one sitemap: the ``<loc>`` of each ``<url>`` or ``<sitemap>``
    entry, kept up to MAX_LOC_CHARS, and the checks that bound expat's own memory."""

    def __init__(self) -> None:
        parser = expat.ParserCreate()
        parser.buffer_text = True  # text in runs of up to 8 KiB, not one call per line
        parser.StartElementHandler = self._start
        parser.EndElementHandler = self._end
        parser.CharacterDataHandler = self._text
        parser.StartDoctypeDeclHandler = self._doctype
        self._parser = parser
        self.done = False  # the root element has ended
        self._found: list[Entry] = []
        self._fed = 0
        self._depth = 0
        self._names: set[str] = set()
        self._name_chars = 0
        self._entry = ""  # "url" or "sitemap" while in one (at _entry_depth)
        self._entry_depth = 0
        self._loc: list[str] | None = None  # the text of the entry's <loc>, while in it
        self._loc_chars = 0
        self._loc_text = ""  # the entry's <loc>, once it has ended
        self._refused = False  # the entry's <loc> was too long: reported already

    def feed(self, data: bytes, final: bool = False) -> Iterator[Entry]:
        """The entries ``data`` completes; then SitemapError if the sitemap cannot go on."""
        failure: SitemapError | None = None
        try:
            self._parser.Parse(data, final)
        except SitemapError as exc:
            failure = exc
        except expat.ExpatError as exc:
            failure = None if self.done else SitemapError(f"not a sitemap (invalid XML: {exc})")
        self._fed += len(data)
        if failure is None and self._fed - max(self._parser.CurrentByteIndex, 0) > MAX_TOKEN_BYTES:
            failure = SitemapError(
                f"an XML token (a tag, comment or declaration) of more than {MAX_TOKEN_BYTES // 2**20} MiB"
            )
        found, self._found = self._found, []
        yield from found
        if failure is not None:
            raise failure

    def _start(self, name: str, attributes: dict[str, str]) -> None:
        self._depth += 1
        if self._depth > MAX_NESTING:
            raise SitemapError(f"elements nested more than {MAX_NESTING} deep")
        for each in (name, *attributes):
            if each not in self._names:
                self._names.add(each)
                self._name_chars += len(each)
                if self._name_chars > MAX_NAME_CHARS:
                    raise SitemapError(f"more than {MAX_NAME_CHARS} characters of distinct element and attribute names")
        local = name.rpartition(":")[2]
        if self._depth == 1:
            if local not in ROOTS:
                raise SitemapError(f"not a sitemap (its root is <{local}>)")
        elif not self._entry:
            if local in ("url", "sitemap"):
                self._entry, self._entry_depth, self._loc_text, self._refused = local, self._depth, "", False
        elif local == "loc" and self._depth == self._entry_depth + 1 and not (self._loc_text or self._refused):
            self._loc, self._loc_chars = [], 0

    def _text(self, text: str) -> None:
        if self._loc is None or self._depth != self._entry_depth + 1:
            return
        self._loc.append(text)
        self._loc_chars += len(text)
        if self._loc_chars > MAX_LOC_CHARS:
            self._found.append((self._entry, "".join(self._loc).strip()[:REFUSED_QUOTE_CHARS], False))
            self._loc, self._refused = None, True  # the rest of its text is not kept

    def _end(self, name: str) -> None:
        if self._loc is not None and self._depth == self._entry_depth + 1:
            self._loc_text, self._loc = "".join(self._loc).strip(), None
        elif self._entry and self._depth == self._entry_depth:
            if self._loc_text:
                self._found.append((self._entry, self._loc_text, True))
            self._entry, self._loc_text = "", ""
        self._depth -= 1
        self.done = self._depth == 0

    def _doctype(self, name: str, system_id: str | None, public_id: str | None, has_internal_subset: bool) -> None:
        if has_internal_subset:
            raise SitemapError("a DOCTYPE with declarations, refused (a sitemap has none; XML bombs are made of them)")


def _xml(raw: Iterator[bytes], content_encoding: str) -> Iterator[bytes]:
    """The sitemap's XML from the response's raw bytes: its Content-Encoding undone,
    then gunzipped if it starts with the gzip magic; in pieces of at most PIECE_BYTES;
    SitemapError past MAX_SITEMAP_BYTES."""
    body = _decoded(raw, content_encoding)
    first = next((piece for piece in body if piece), b"")
    body = itertools.chain((first,), body)
    if first.startswith(GZIP_MAGIC):
        body = _inflated(body, GZIP_WBITS, "gzip data")
    total = 0
    for piece in body:
        total += len(piece)
        if total > MAX_SITEMAP_BYTES:
            raise SitemapError(f"larger than {MAX_SITEMAP_BYTES // 2**20} MiB of XML")
        yield piece


def _decoded(raw: Iterator[bytes], content_encoding: str) -> Iterator[bytes]:
    codings = [c for c in (c.strip().lower() for c in content_encoding.split(",")) if c not in ("", "identity")]
    if not codings:
        return raw
    if codings in (["gzip"], ["x-gzip"]):
        return _inflated(raw, GZIP_WBITS, "gzip data")
    if codings == ["deflate"]:
        return _inflated(raw, None, "deflate data")
    raise SitemapError(f"unsupported Content-Encoding {content_encoding!r}")


def _inflated(chunks: Iterable[bytes], wbits: int | None, what: str) -> Iterator[bytes]:
    """What ``chunks`` inflate to (``wbits`` None: zlib-wrapped or raw deflate, told by
    the first byte, as servers send both), in pieces of at most PIECE_BYTES, output the
    inflater still holds asked for until it gives none.  Stops at the compressed
    stream's end: zlib would keep whatever follows, without bound, as unused data."""
    inflate = None
    for chunk in chunks:
        if not chunk:
            continue
        if inflate is None:
            if wbits is None:
                wbits = zlib.MAX_WBITS if chunk[0] & 0x0F == 8 else -zlib.MAX_WBITS
            inflate = zlib.decompressobj(wbits)
        while True:
            try:
                piece = inflate.decompress(chunk, PIECE_BYTES)
            except zlib.error as exc:
                raise SitemapError(f"broken {what}: {exc}") from None
            chunk = inflate.unconsumed_tail
            if piece:
                yield piece
            if inflate.eof:
                return
            if not chunk and not piece:
                break
    if inflate is not None:
        raise SitemapError(f"broken {what}: it ends early")
