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

META_SCAN_BYTES = 1024  # how far into the body a <meta charset> is looked for (the HTML standard's prescan)
HTML_TYPES = frozenset({"text/html", "application/xhtml+xml"})

_META_CHARSET = re.compile(rb"""<meta[^>]+charset\s*=\s*["']?\s*([A-Za-z0-9_.:-]+)""", re.IGNORECASE)
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
    "x-sjis": "shift_jis",
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
        if encoding in ("gzip", "x-gzip"):
            self._z: zlib._Decompress | None = zlib.decompressobj(16 + zlib.MAX_WBITS)
        elif encoding == "deflate":
            self._z = None  # zlib-wrapped or raw: decided by the first bytes (servers send both)
        else:
            raise PageFailure("content_encoding", f"unsupported Content-Encoding {encoding!r}")
        self._tail = b""

    def feed(self, data: bytes, room: int) -> bytes:
        """Up to ``room`` + 1 decoded bytes of what was fed so far (one past: the caller's
        sign that the limit is crossed)."""
        if self._z is None:
            self._z = zlib.decompressobj(zlib.MAX_WBITS if data[:1] and data[0] & 0x0F == 8 else -zlib.MAX_WBITS)
        try:
            out = self._z.decompress(self._tail + data, room + 1)
        except zlib.error as exc:
            raise PageFailure("bad_body", f"{self.encoding}: {exc}", retryable=True) from None
        self._tail = self._z.unconsumed_tail
        return out

    @property
    def pending(self) -> bool:
        return bool(self._tail)


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
        found = _META_CHARSET.search(body[:META_SCAN_BYTES])
        if found and (codec := _codec(found.group(1).decode("ascii", "replace"))):
            # A page that says UTF-16 in ASCII bytes is not UTF-16 (the HTML standard).
            return "utf-8" if codec.startswith("utf-16") else codec
    return "utf-8"


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
