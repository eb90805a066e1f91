"""A response body read within bounds, and decoded.

Why not httpx's own decoding: its decoders inflate each network chunk whole, so one
64 KiB chunk of a gzip bomb becomes 64 MiB in memory before anyone can count it.  Here
the raw bytes are inflated at most ``max_bytes`` at a time (``zlib``'s
``max_length``), so memory stays within the limit whatever the ratio, and a body that
would decode past it fails ``body_too_large`` naming both sizes.

Charset, as a browser decides it: a byte-order mark, else the Content-Type header's
``charset``, else a ``<meta charset>`` (or ``http-equiv``) in the first 1024 bytes,
else UTF-8; labels are read as the WHATWG Encoding standard maps them (``euc-kr`` is
Windows-949, ``iso-8859-1`` is Windows-1252), and bytes that do not decode become
U+FFFD, as in the browser.
"""

from __future__ import annotations

import codecs
import re
import zlib
from collections.abc import AsyncIterator

from crawler.errors import PageFailure

META_SCAN_BYTES = 1024  # a <meta charset> is looked for this far into the body (the HTML standard's prescan)...
HEAD_SCAN_BYTES = 64 * 1024  # ...or to the end of <head>, up to this far (Chromium keeps looking while in <head>)
HTML_TYPES = frozenset({"text/html", "application/xhtml+xml"})

_COMMENT = re.compile(rb"<!--.*?-->", re.DOTALL)
_META = re.compile(rb"<meta\b([^>]*)>", re.IGNORECASE)
_ATTRIBUTE = re.compile(rb"""([^\s=/>]+)\s*(?:=\s*("[^"]*"|'[^']*'|[^\s>]+))?""")
_CONTENT_CHARSET = re.compile(rb"""charset\s*=\s*["']?([^"'\s;]+)""", re.IGNORECASE)
_HEAD_END = re.compile(rb"</head\s*>|<body\b", re.IGNORECASE)
# WHATWG labels Python names differently (or decodes more strictly than browsers do).
_WHATWG = {
    "euc-kr": "cp949",
    "ks_c_5601-1987": "cp949",
    "ks_c_5601-1989": "cp949",
    "korean": "cp949",
    "windows-949": "cp949",
    "iso-8859-1": "cp1252",
    "latin1": "cp1252",
    "l1": "cp1252",
    "ascii": "cp1252",
    "us-ascii": "cp1252",
    "iso-8859-9": "cp1254",
    "iso-8859-8-i": "iso8859-8",
    "shift_jis": "cp932",  # WHATWG Shift_JIS is Windows-31J
    "shift-jis": "cp932",
    "sjis": "cp932",
    "x-sjis": "cp932",
    "ms_kanji": "cp932",
    "csshiftjis": "cp932",
    "windows-31j": "cp932",
    "big5": "big5hkscs",  # WHATWG Big5 has the HKSCS extensions
    "big5-hkscs": "big5hkscs",
    "cn-big5": "big5hkscs",
    "csbig5": "big5hkscs",
    "x-x-big5": "big5hkscs",
    "gb2312": "gb18030",
    "gbk": "gb18030",
    "x-gbk": "gb18030",
}


class BodyTooLarge(PageFailure):
    """A response body over ``[http] max_body_bytes`` (decoded): not retried."""

    def __init__(self, detail: str):
        super().__init__("body_too_large", detail)


class _Inflater:
    """Undoes one Content-Encoding chunk by chunk, never producing more than asked."""

    def __init__(self, encoding: str):
        self.encoding = encoding
        self._gzip = encoding in ("gzip", "x-gzip")
        if self._gzip:
            self._z: zlib._Decompress | None = zlib.decompressobj(16 + zlib.MAX_WBITS)
        elif encoding == "deflate":
            self._z = None  # zlib-wrapped or raw: decided by the first bytes (servers send both)
        else:
            raise PageFailure("content_encoding", f"unsupported Content-Encoding {encoding!r}")
        self._tail = b""

    def feed(self, data: bytes, room: int) -> bytes:
        """Up to ``room`` + 1 decoded bytes of what was fed so far (one past: the caller's
        sign that the limit is crossed).  A gzip body of several members is read whole."""
        data = self._tail + data
        if not data:
            return b""
        if self._z is None:
            self._z = zlib.decompressobj(zlib.MAX_WBITS if data[0] & 0x0F == 8 else -zlib.MAX_WBITS)
        elif self._z.eof and self._gzip and data.lstrip(b"\0"):
            self._z = zlib.decompressobj(16 + zlib.MAX_WBITS)  # the next member
            data = data.lstrip(b"\0")
        try:
            out = self._z.decompress(data, room + 1)
        except zlib.error as exc:
            raise PageFailure("bad_body", f"{self.encoding}: {exc}", retryable=True) from None
        self._tail = self._z.unconsumed_tail or (self._z.unused_data if self._gzip else b"")
        return out

    @property
    def pending(self) -> bool:
        return bool(self._tail)

    def check_complete(self) -> None:
        """PageFailure ``bad_body`` (retried) if the compressed stream stopped short."""
        if self._z is not None and not self._z.eof:
            raise PageFailure("bad_body", f"{self.encoding}: the compressed body ends early", retryable=True)


async def read_bounded(
    raw: AsyncIterator[bytes], *, content_encoding: str, max_bytes: int, content_length: int | None = None
) -> bytes:
    """The decoded body from ``raw`` (the response's raw byte chunks), at most
    ``max_bytes``; raises :class:`BodyTooLarge` as soon as it would be more (a declared
    Content-Length over the limit before a byte is read), PageFailure ``bad_body`` for
    a corrupt encoding and ``content_encoding`` for one we do not speak.  Cancelled
    half-way: nothing is returned; the caller closes the response."""
    encoding = content_encoding.strip().lower()
    inflater = _Inflater(encoding) if encoding not in ("", "identity") else None
    if inflater is None and content_length is not None and content_length > max_bytes:
        raise BodyTooLarge(f"Content-Length {content_length} bytes, over the limit of {max_bytes}")
    out = bytearray()
    received = 0
    async for chunk in raw:
        received += len(chunk)
        if inflater is None:
            out += chunk
        else:
            out += inflater.feed(chunk, max_bytes - len(out))
            while inflater.pending and len(out) <= max_bytes:
                out += inflater.feed(b"", max_bytes - len(out))
        if len(out) > max_bytes:
            what = f"{encoding} body decoding past {max_bytes} bytes from {received}" if inflater else "body"
            raise BodyTooLarge(f"{what} over the limit of {max_bytes} bytes")
    if inflater is not None and received:
        inflater.check_complete()
    return bytes(out)


def mime_type(content_type: str) -> str:
    """``text/html`` of ``Text/HTML; charset=utf-8``."""
    return content_type.split(";", 1)[0].strip().lower()


def is_json_type(mime: str) -> bool:
    return mime in ("application/json", "text/json") or mime.endswith("+json")


def charset_of(content_type: str, body: bytes) -> str:
    """The Python codec a browser would decode ``body`` with (see the module docstring)."""
    if body.startswith(codecs.BOM_UTF8):
        return "utf-8-sig"
    if body.startswith((codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE)):
        return "utf-16"
    for param in content_type.split(";")[1:]:
        name, _, value = param.partition("=")
        if name.strip().lower() == "charset" and (codec := _codec(value.strip().strip("'\""))):
            return codec
    if mime_type(content_type) in HTML_TYPES or not content_type:
        label = meta_charset(body)
        if label and (codec := _codec(label)):
            # A page that says UTF-16 in ASCII bytes is not UTF-16 (the HTML standard).
            return "utf-8" if codec.startswith("utf-16") else codec
    return "utf-8"


def meta_charset(body: bytes) -> str | None:
    """The charset a ``<meta charset>``, or a ``<meta http-equiv="Content-Type"
    content="...; charset=...">``, names in the document's head (within 1024 bytes, or
    to the end of ``<head>`` up to 64 KiB), comments skipped; None if none does."""
    scan = body[:HEAD_SCAN_BYTES]
    end = _HEAD_END.search(scan)
    scan = _COMMENT.sub(b"", scan[: max(META_SCAN_BYTES, end.start() if end else META_SCAN_BYTES)])
    for meta in _META.finditer(scan):
        attributes = {name.lower(): value.strip(b"'\"") for name, value in _ATTRIBUTE.findall(meta.group(1))}
        if attributes.get(b"charset"):
            return attributes[b"charset"].decode("ascii", "replace")
        if attributes.get(b"http-equiv", b"").lower() == b"content-type":
            found = _CONTENT_CHARSET.search(attributes.get(b"content", b""))
            if found:
                return found.group(1).decode("ascii", "replace")
    return None


def _codec(label: str) -> str | None:
    label = label.strip().lower()
    if not label:
        return None
    label = _WHATWG.get(label, label)
    try:
        return codecs.lookup(label).name
    except LookupError:
        return None


def decode(body: bytes, charset: str) -> str:
    """``body`` as text in ``charset``; undecodable bytes become U+FFFD."""
    return body.decode(charset, errors="replace")
