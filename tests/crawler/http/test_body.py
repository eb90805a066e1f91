"""crawler.http.body: a response body read within ``max_bytes`` (identity, gzip,
deflate: never inflated past the limit, however compressed), and the charset a
browser would decode it with."""

from __future__ import annotations

import codecs
import functools
import gzip
import random
import tracemalloc
import zlib
from collections.abc import AsyncIterator, Iterable

import httpx
import pytest

from crawler.errors import PageFailure
from crawler.http.body import META_SCAN_BYTES, BodyTooLarge, charset_of, decode, read_bounded

MiB = 2**20
CHUNK_BYTES = 64 * 1024  # what a bomb is fed in: a network read's worth


class Raw:
    """An async iterator over ``chunks`` (a response's raw body) that counts how many
    of them were read."""

    def __init__(self, chunks: Iterable[bytes]):
        self._chunks = iter(chunks)
        self.read = 0

    def __aiter__(self) -> AsyncIterator[bytes]:
        return self

    async def __anext__(self) -> bytes:
        try:
            chunk = next(self._chunks)
        except StopIteration:
            raise StopAsyncIteration from None
        self.read += 1
        return chunk


def pieces(data: bytes, size: int) -> list[bytes]:
    return [data[i : i + size] for i in range(0, len(data), size)]


def page_body() -> bytes:
    """About 400 KB of HTML that compresses about 8:1 (not a bomb)."""
    return b"".join(b"<li>%d caf\xc3\xa9 \xeb\x98\xa0</li>\n" % i for i in range(20_000))


@functools.cache
def gzip_bomb(decoded_mib: int) -> bytes:
    """``decoded_mib`` MiB of zeros, gzipped, compressed a MiB at a time (never held whole);
    made once per process (0.6 s for 200 MiB)."""
    compressor = zlib.compressobj(9, zlib.DEFLATED, 16 + zlib.MAX_WBITS)
    zeros = bytes(MiB)
    return b"".join(compressor.compress(zeros) for _ in range(decoded_mib)) + compressor.flush()


def raw_deflate(data: bytes) -> bytes:
    compressor = zlib.compressobj(6, zlib.DEFLATED, -zlib.MAX_WBITS)
    return compressor.compress(data) + compressor.flush()


ENCODERS = {
    "gzip": ("gzip", gzip.compress),
    "x-gzip": ("x-gzip", gzip.compress),
    "deflate, zlib-wrapped": ("deflate", zlib.compress),
    "deflate, raw": ("deflate", raw_deflate),
    "header with case and spaces": (" GZip ", gzip.compress),
}


# -- read_bounded: identity ---------------------------------------------------------------


@pytest.mark.parametrize("content_encoding", ["", "identity"])
async def test_an_identity_body_up_to_the_limit_is_returned_whole(content_encoding):
    """A body of exactly ``max_bytes``, in several chunks, comes back byte for byte."""
    body = bytes(range(256)) * 40
    raw = Raw(pieces(body, 1000))
    got = await read_bounded(raw, content_encoding=content_encoding, max_bytes=len(body), content_length=len(body))
    assert got == body
    assert raw.read == 11


async def test_an_identity_body_one_byte_over_the_limit_fails_body_too_large_naming_the_limit():
    """One byte past ``max_bytes`` (no Content-Length declared): BodyTooLarge, kind
    ``body_too_large``, not retried, its message naming the limit."""
    with pytest.raises(BodyTooLarge) as info:
        await read_bounded(Raw(pieces(b"x" * 10_001, 4096)), content_encoding="", max_bytes=10_000)
    assert info.value.kind == "body_too_large"
    assert not info.value.retryable
    assert "10000" in info.value.reason


async def test_a_body_longer_than_its_declared_content_length_is_still_cut_at_the_limit():
    """The limit counts the bytes that come, not the ones announced."""
    with pytest.raises(BodyTooLarge):
        await read_bounded(Raw([b"x" * 600, b"x" * 600]), content_encoding="", max_bytes=1000, content_length=10)


async def test_a_declared_content_length_over_the_limit_is_refused_before_a_byte_is_read():
    """Content-Length over ``max_bytes`` on an identity body: BodyTooLarge naming both
    sizes, and the body is never read."""
    raw = Raw([b"x" * 10])
    with pytest.raises(BodyTooLarge) as info:
        await read_bounded(raw, content_encoding="identity", max_bytes=1000, content_length=1001)
    assert raw.read == 0
    assert "1001" in info.value.reason and "1000" in info.value.reason


# -- read_bounded: gzip and deflate -------------------------------------------------------


@pytest.mark.parametrize("how", list(ENCODERS))
@pytest.mark.parametrize("chunk_bytes", [997, CHUNK_BYTES])
async def test_a_compressed_body_is_decoded_whole(how, chunk_bytes):
    """gzip (and x-gzip) and deflate, zlib-wrapped or raw (servers send both), in odd
    and network-sized chunks, decode to the original bytes."""
    content_encoding, encode = ENCODERS[how]
    body = page_body()
    got = await read_bounded(
        Raw(pieces(encode(body), chunk_bytes)), content_encoding=content_encoding, max_bytes=len(body)
    )
    assert got == body


@pytest.mark.parametrize("how", ["gzip", "deflate, zlib-wrapped", "deflate, raw"])
async def test_a_compressed_body_decoding_one_byte_past_the_limit_fails_body_too_large(how):
    """The limit is on the decoded size: exactly ``max_bytes`` decoded passes (above),
    one more fails, however small the compressed body."""
    content_encoding, encode = ENCODERS[how]
    body = page_body()
    with pytest.raises(BodyTooLarge) as info:
        await read_bounded(Raw(pieces(encode(body), 997)), content_encoding=content_encoding, max_bytes=len(body) - 1)
    assert str(len(body) - 1) in info.value.reason


async def test_a_content_length_over_the_limit_does_not_refuse_a_compressed_body():
    """On a gzip body Content-Length counts compressed bytes: one declared (and sent)
    longer than ``max_bytes`` but decoding within it is read."""
    body = random.Random(0).randbytes(4096)  # incompressible: gzip makes it longer
    wire = gzip.compress(body)
    assert len(wire) > len(body)
    got = await read_bounded(
        Raw(pieces(wire, 100)), content_encoding="gzip", max_bytes=len(body), content_length=len(wire)
    )
    assert got == body


async def test_a_gzip_bomb_is_refused_at_the_first_chunk_without_inflating_past_the_limit():
    """200 MiB of zeros gzipped (about 200 KB on the wire), fed in 64 KiB chunks with a
    1 MiB limit: BodyTooLarge naming the limit, after the first chunk, and the memory
    allocated while reading peaks under twice the limit plus a few chunks (the decoded
    bytes and the buffer they are appended to; measured 2.1 MiB) where inflating one
    chunk whole would take 64 MiB."""
    raw = Raw(pieces(gzip_bomb(200), CHUNK_BYTES))
    tracemalloc.start()
    try:
        tracemalloc.reset_peak()
        with pytest.raises(BodyTooLarge) as info:
            await read_bounded(raw, content_encoding="gzip", max_bytes=MiB)
        peak_bytes = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert str(MiB) in info.value.reason
    assert raw.read == 1
    assert peak_bytes < 2 * MiB + 4 * CHUNK_BYTES, f"peak {peak_bytes / MiB:.1f} MiB for a 1 MiB limit"


async def test_httpx_own_decoding_of_the_same_bomb_inflates_a_whole_chunk_at_once():
    """Why body.py inflates by itself (its module docstring): httpx's decoder, given the
    same first 64 KiB of the bomb, allocates tens of MiB before the caller can count a
    byte.  If this fails, httpx bounds its decoding and the reason is gone."""

    class Stream(httpx.AsyncByteStream):
        async def __aiter__(self) -> AsyncIterator[bytes]:
            for chunk in pieces(gzip_bomb(200), CHUNK_BYTES):
                yield chunk

    response = httpx.Response(200, headers={"Content-Encoding": "gzip"}, stream=Stream())
    tracemalloc.start()
    try:
        tracemalloc.reset_peak()
        async for decoded in response.aiter_bytes():
            first_bytes = len(decoded)
            break
        peak_bytes = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
        await response.aclose()
    assert first_bytes > 16 * MiB
    assert peak_bytes > 16 * MiB


@pytest.mark.parametrize(
    ("content_encoding", "wire"),
    [
        pytest.param("gzip", b"hello, this is not gzip at all", id="gzip, no gzip header"),
        pytest.param(
            "gzip",
            (lambda g: g[:10] + bytes(b ^ 0xFF for b in g[10:40]) + g[40:])(gzip.compress(page_body())),
            id="gzip, bytes flipped",
        ),
        pytest.param(
            "gzip", (lambda g: g[:-8] + b"\0\0\0\0" + g[-4:])(gzip.compress(page_body())), id="gzip, bad checksum"
        ),
        pytest.param("deflate", (lambda z: z[:2] + b"\xff" * 10 + z[12:])(zlib.compress(page_body())), id="deflate"),
    ],
)
async def test_a_corrupt_compressed_body_fails_bad_body_retryable(content_encoding, wire):
    """A stream zlib cannot inflate: PageFailure ``bad_body`` naming the encoding,
    retryable (the next response may be whole)."""
    with pytest.raises(PageFailure) as info:
        await read_bounded(Raw(pieces(wire, 4096)), content_encoding=content_encoding, max_bytes=10 * MiB)
    assert info.value.kind == "bad_body"
    assert info.value.retryable
    assert content_encoding in info.value.detail


@pytest.mark.parametrize("content_encoding", ["br", "zstd", "compress", "gzip, br"])
async def test_an_unsupported_content_encoding_fails_content_encoding_before_reading(content_encoding):
    """Only gzip and deflate are asked for (Accept-Encoding) and spoken: any other
    Content-Encoding, br included, is PageFailure ``content_encoding`` naming it, and the
    body is not read."""
    raw = Raw([b"\x8b\x00\x80"])
    with pytest.raises(PageFailure) as info:
        await read_bounded(raw, content_encoding=content_encoding, max_bytes=MiB)
    assert info.value.kind == "content_encoding"
    assert repr(content_encoding) in info.value.detail
    assert raw.read == 0


# -- charset_of and decode ----------------------------------------------------------------

# A Korean sample with a syllable outside KS X 1001 (똠): cp949 encodes it, EUC-KR cannot.
KOREAN = "똠방각하 상품"
KOREAN_CP949 = KOREAN.encode("cp949")


def html_with_meta(meta: str, text: bytes = b"") -> bytes:
    return b"<!doctype html><html><head>" + meta.encode() + b"<title>t</title></head><body>" + text + b"</body></html>"


@pytest.mark.parametrize(
    ("bom", "codec", "text"),
    [
        (codecs.BOM_UTF8, "utf-8-sig", "caf\u00e9".encode()),
        (codecs.BOM_UTF16_LE, "utf-16", "caf\u00e9".encode("utf-16-le")),
        (codecs.BOM_UTF16_BE, "utf-16", "caf\u00e9".encode("utf-16-be")),
    ],
    ids=["utf-8", "utf-16le", "utf-16be"],
)
def test_a_byte_order_mark_wins_over_the_header_and_the_meta(bom, codec, text):
    """A BOM decides, whatever the Content-Type and a meta say; decoding drops it."""
    body = bom + text
    charset = charset_of("text/html; charset=euc-kr", body + b"<meta charset=iso-8859-2>")
    assert charset == codec
    assert decode(body, charset) == "caf\u00e9"


def test_the_header_charset_wins_over_a_meta_charset():
    body = html_with_meta('<meta charset="utf-8">', KOREAN_CP949)
    charset = charset_of('text/html; charset="EUC-KR"', body)
    assert charset == "cp949"
    assert KOREAN in decode(body, charset)


@pytest.mark.parametrize(
    "meta",
    [
        '<meta charset="euc-kr">',
        "<meta charset='EUC-KR'>",
        "<meta charset=euc-kr>",
        '<meta http-equiv="Content-Type" content="text/html; charset=euc-kr">',
        '<META HTTP-EQUIV="content-type" CONTENT="text/html;charset=ks_c_5601-1987">',
    ],
)
def test_a_meta_charset_or_http_equiv_in_the_first_1024_bytes_decides_without_a_header_charset(meta):
    """No charset in the header (or no header): a ``<meta charset>`` or an ``http-equiv``
    Content-Type within the first 1024 bytes gives the charset."""
    body = html_with_meta(meta, KOREAN_CP949)
    assert charset_of("text/html", body) == "cp949"
    assert charset_of("", body) == "cp949"
    assert KOREAN in decode(body, charset_of("text/html", body))


def test_a_meta_charset_past_the_first_1024_bytes_is_ignored():
    """The prescan reads 1024 bytes: a meta after that (here in the body, after a
    long paragraph) does not count, and the page is read as UTF-8."""
    filler = b"<p>" + b"y" * META_SCAN_BYTES + b"</p>"
    body = html_with_meta("", filler + b'<meta charset="euc-kr">' + "caf\u00e9".encode())
    assert body.index(b"<meta") > META_SCAN_BYTES
    assert charset_of("text/html", body) == "utf-8"
    assert charset_of("text/html", body.replace(filler, b"")) == "cp949"  # the same meta, earlier, counts


def test_a_meta_charset_is_only_looked_for_in_html():
    """A text/plain (or JSON) body that happens to contain a meta tag is UTF-8."""
    body = html_with_meta('<meta charset="euc-kr">')
    assert charset_of("text/plain", body) == "utf-8"
    assert charset_of("application/json", body) == "utf-8"
    assert charset_of("application/xhtml+xml", body) == "cp949"


@pytest.mark.parametrize("label", ["euc-kr", "EUC-KR", "ks_c_5601-1987", "korean", "windows-949"])
def test_korean_labels_decode_as_windows_949_as_browsers_do(label):
    """WHATWG: every EUC-KR label is Windows-949, so a syllable EUC-KR lacks (똠, sent as
    cp949 by servers that say euc-kr) decodes; Python's own euc-kr would refuse it."""
    with pytest.raises(UnicodeDecodeError):
        KOREAN_CP949.decode("euc-kr")
    in_header = charset_of(f"text/html; charset={label}", KOREAN_CP949)
    in_meta = charset_of("text/html", html_with_meta(f"<meta charset={label}>"))
    for charset in (in_header, in_meta):
        assert charset == "cp949"
        assert decode(KOREAN_CP949, charset) == KOREAN


@pytest.mark.parametrize("label", ["iso-8859-1", "ISO-8859-1", "latin1", "us-ascii", "ascii"])
def test_latin1_and_ascii_labels_decode_as_windows_1252(label):
    """WHATWG: ISO-8859-1 and ASCII are Windows-1252, so 0x80 is the euro sign (a C1
    control in real Latin-1) and 0xE9 is é."""
    body = b"\x80 caf\xe9"
    charset = charset_of(f"text/html; charset={label}", body)
    assert charset == "cp1252"
    assert decode(body, charset) == "\u20ac caf\u00e9"


@pytest.mark.parametrize("label", ["utf-16", "UTF-16LE", "utf-16be"])
def test_a_meta_claiming_utf16_in_an_ascii_page_means_utf8(label):
    """A page whose ASCII bytes say UTF-16 cannot be UTF-16 (the HTML standard): UTF-8."""
    body = html_with_meta(f'<meta charset="{label}">', "caf\u00e9".encode())
    assert charset_of("text/html", body) == "utf-8"


@pytest.mark.parametrize(
    ("content_type", "body"),
    [
        ("text/html; charset=no-such-charset", b"<p>caf\xc3\xa9</p>"),
        ("text/html; charset=", b"<p>caf\xc3\xa9</p>"),
        ("text/html", html_with_meta('<meta charset="klingon-8">', b"caf\xc3\xa9")),
        ("text/html", b"<p>caf\xc3\xa9</p>"),
    ],
    ids=["unknown header label", "empty header label", "unknown meta label", "nothing declared"],
)
def test_an_unknown_or_missing_label_falls_back_to_utf8(content_type, body):
    assert charset_of(content_type, body) == "utf-8"
    assert "caf\u00e9" in decode(body, "utf-8")


def test_an_unknown_header_label_leaves_the_meta_to_decide():
    body = html_with_meta("<meta charset=euc-kr>", KOREAN_CP949)
    assert charset_of("text/html; charset=no-such-charset", body) == "cp949"


@pytest.mark.parametrize(
    ("body", "charset", "text"),
    [
        (b"caf\xe9 \xff!", "utf-8", "caf\ufffd \ufffd!"),
        (b"\xff" + KOREAN_CP949 + b"\x8c", "cp949", "\ufffd" + KOREAN + "\ufffd"),
    ],
    ids=["utf-8", "cp949"],
)
def test_decode_replaces_undecodable_bytes_with_the_replacement_character(body, charset, text):
    """As in the browser, bytes that do not decode become U+FFFD; nothing raises."""
    assert decode(body, charset) == text


async def test_a_gzip_body_of_several_members_is_read_whole():
    """``gzip`` bodies may be several members one after another (what ``cat a.gz b.gz``
    makes): each is read, as browsers read them."""
    body = gzip.compress(b"<p>first</p>") + gzip.compress(b"<p>second</p>")
    for size in (1, 7, len(body)):
        got = await read_bounded(Raw(pieces(body, size)), content_encoding="gzip", max_bytes=MiB)
        assert got == b"<p>first</p><p>second</p>"


async def test_a_compressed_body_that_ends_early_fails_bad_body_retryable():
    body = gzip.compress(page_body())
    with pytest.raises(PageFailure) as caught:
        await read_bounded(Raw(pieces(body[: len(body) // 2], CHUNK_BYTES)), content_encoding="gzip", max_bytes=MiB)
    assert caught.value.kind == "bad_body" and caught.value.retryable
    assert "ends early" in caught.value.reason


async def test_an_empty_first_chunk_does_not_decide_the_deflate_format():
    body = zlib.compress(b"<p>zlib-wrapped</p>")
    got = await read_bounded(Raw([b"", *pieces(body, 3)]), content_encoding="deflate", max_bytes=MiB)
    assert got == b"<p>zlib-wrapped</p>"


def test_a_meta_in_a_long_head_is_found_and_one_in_a_comment_or_a_content_is_not():
    """As Chromium reads it: a ``<meta charset>`` past 1024 bytes still counts while the
    head goes on; a commented-out one does not, nor ``charset=`` in a description."""
    style = b"<style>/* " + b"x" * 1100 + b" */</style>"
    assert charset_of("text/html", b"<html><head>" + style + b'<meta charset="euc-kr"></head>') == "cp949"
    commented = b'<html><head><!-- <meta charset="euc-kr"> --><meta charset="utf-8"></head>'
    assert charset_of("text/html", commented) == "utf-8"
    described = b'<html><head><meta name="description" content="charset=euc-kr"></head>'
    assert charset_of("text/html", described) == "utf-8"
    equiv = b'<html><head><meta http-equiv="Content-Type" content="text/html; charset=euc-kr"></head>'
    assert charset_of("text/html", equiv) == "cp949"
