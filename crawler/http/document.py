"""An HTML document parsed without a browser, read with the field language
(:mod:`crawler.config.fields`): the same selectors, the same values as in the browser
wherever the page's scripts do not change the document.

The parser is lexbor (through selectolax): an HTML5 parser that builds the tree a
browser builds from the same bytes, and on our pages the fastest of the three measured
(``benchmarks/parsers.py``: selectolax 0.05 ms per demo product page, lxml +
cssselect 0.12, parsel 0.19).

What is read, as in the browser (:mod:`crawler.page.script`): a text is the element's
``textContent`` with runs of whitespace made one space and the ends trimmed
(:func:`normalise_text`, the same rule as the page's); ``href`` and ``src`` are made
absolute against the document's base URL.  A field with ``js`` has no meaning here: a
route that fetches over HTTP refuses one when it is loaded.  ``:scope`` (which lexbor
does not parse) is read as the match, or the root element.  Known differences: the
content of ``<noscript>`` is text in a browser that runs scripts and elements here;
shadow roots exist only in the browser (declarative ones are ignored here).
"""

from __future__ import annotations

import re
import socket
from collections.abc import Mapping
from typing import Any
from urllib.parse import quote, urljoin, urlsplit, urlunsplit

from selectolax.lexbor import LexborHTMLParser, LexborNode

from crawler.config.fields import Field, check_selector, parse_fields
from crawler.errors import PageFailure

# JavaScript's \s (what String.prototype.trim and the page's normalising regex take as
# whitespace), so that both paths cut the same characters.
_WHITESPACE = re.compile("[\t\n\v\f\r \u00a0\u1680\u2000-\u200a\u2028\u2029\u202f\u205f\u3000\ufeff]+")
SCOPE_MARK = "data-crawler-scope"  # set on a match while a ``:scope`` selector is read relative to it
_SCHEME = re.compile(r"^[A-Za-z][A-Za-z0-9+.-]*:")
_IPV4_ISH = re.compile(r"^(0x[0-9a-f]*|[0-9]+)(\.(0x[0-9a-f]*|[0-9]+)){0,3}\.?$")
# WHATWG URL percent-encode sets (beyond C0 controls, space and non-ASCII, always encoded).
_PATH_SET = frozenset('"#<>?`{}')
_QUERY_SET = frozenset("\"#<>'")  # the special-query set (http, https)
_FRAGMENT_SET = frozenset('"<>`')


def normalise_text(text: str) -> str:
    """``text`` with each run of whitespace made one space, and trimmed."""
    return _WHITESPACE.sub(" ", text).strip(" ")


def absolute_url(value: str, base: str) -> str:
    """``value`` resolved against ``base``, as ``new URL(value, base).href`` gives it:
    trimmed, tabs and newlines dropped; for http(s), backslashes read as slashes, the
    scheme and host lower-cased, an internationalised host in punycode, a numeric IPv4
    host (``0x7f.1``) written out, the default port dropped, dot segments removed,
    and the characters the URL standard escapes escaped (UTF-8); any other scheme
    (``data:``, ``mailto:``) as written.  What :func:`urllib.parse.urljoin` cannot
    parse is returned as it was."""
    value = value.strip(
        "\x00\x01\x02\x03\x04\x05\x06\x07\x08\t\n\x0b\x0c\r\x0e\x0f\x10\x11\x12\x13\x14\x15\x16\x17\x18\x19\x1a\x1b\x1c\x1d\x1e\x1f "
    )
    value = value.replace("\t", "").replace("\n", "").replace("\r", "")
    scheme = value.split(":", 1)[0].lower() if _SCHEME.match(value) else None
    if scheme is not None and scheme not in ("http", "https"):
        return scheme + value[len(scheme) :]  # an opaque URL: as written
    try:
        parts = urlsplit(urljoin(base, value.replace("\\", "/")))
        port = parts.port
    except ValueError:
        return value
    if parts.scheme not in ("http", "https"):
        return urlunsplit(parts)
    host = parts.hostname or ""
    if _IPV4_ISH.match(host):
        try:
            host = socket.inet_ntoa(socket.inet_aton(host.rstrip(".")))
        except OSError:
            pass
    elif not host.isascii():
        try:
            host = host.encode("idna").decode("ascii")
        except UnicodeError:
            host = _escape(host, frozenset())
    if ":" in host:
        host = f"[{host}]"
    netloc = host if port is None or port == {"http": 80, "https": 443}[parts.scheme] else f"{host}:{port}"
    if "@" in parts.netloc:
        netloc = parts.netloc.rsplit("@", 1)[0] + "@" + netloc
    path = _escape(_without_dot_segments(parts.path or "/"), _PATH_SET)
    query = _escape(parts.query, _QUERY_SET)
    url = f"{parts.scheme}://{netloc}{path}"
    if query or value.split("#", 1)[0].endswith("?"):  # an empty query is kept, as the browser keeps it
        url += "?" + query
    if parts.fragment:
        url += "#" + _escape(parts.fragment, _FRAGMENT_SET)
    return url


def _escape(text: str, extra: frozenset[str]) -> str:
    """``text`` with C0 controls, space, non-ASCII and ``extra`` percent-encoded (UTF-8)."""
    if text.isascii() and not any(c in extra or c <= " " or c == "\x7f" for c in text):
        return text
    return "".join(quote(c, safe="") if c in extra or c <= " " or c >= "\x7f" else c for c in text)


def _without_dot_segments(path: str) -> str:
    """RFC 3986's remove_dot_segments: ``/a/./b/../c`` is ``/a/c``."""
    out: list[str] = []
    segments = path.split("/")
    for i, segment in enumerate(segments):
        last = i == len(segments) - 1
        if segment == ".":
            if last:
                out.append("")
        elif segment == "..":
            if len(out) > 1:
                out.pop()
            if last:
                out.append("")
        else:
            out.append(segment)
    return "/".join(out) if out and out[0] == "" else "/" + "/".join(out)


class Document:
    """``html`` parsed; ``url`` is where it came from (the base of its relative links,
    unless a ``<base href>`` says otherwise)."""

    def __init__(self, html: str, url: str):
        self.tree = LexborHTMLParser(html)
        base = self.tree.css_first("base[href]") if "<base" in html or "<BASE" in html else None
        self.base_url = absolute_url(str(base.attributes.get("href") or ""), url) if base is not None else url

    def _all(self, selector: str, root: LexborNode | None = None) -> list[LexborNode]:
        """The matches of ``selector`` in the document, or among ``root``'s descendants
        (``querySelectorAll``: lexbor also offers the root itself).  ``:scope``, which
        lexbor does not parse, is the root (marked for the query), or ``:root``."""
        if ":scope" in selector:
            return self._scoped(selector, root)
        try:
            found = (self.tree if root is None else root).css(selector)
        except Exception as exc:  # lexbor refuses a selector cssselect accepted
            raise PageFailure("selector", f"{selector!r}: {exc}") from None
        return list(found) if root is None else [node for node in found if node != root]

    def _scoped(self, selector: str, root: LexborNode | None) -> list[LexborNode]:
        if root is None:
            return self._all(selector.replace(":scope", ":root"))
        root.attrs[SCOPE_MARK] = "1"
        try:
            found = self._all(selector.replace(":scope", f"[{SCOPE_MARK}]"))
        finally:
            del root.attrs[SCOPE_MARK]
        return [node for node in found if node != root]

    def _first(self, selector: str, root: LexborNode | None = None) -> LexborNode | None:
        if root is not None or ":scope" in selector:
            return next(iter(self._all(selector, root)), None)
        try:
            return self.tree.css_first(selector)
        except Exception as exc:  # lexbor refuses a selector cssselect accepted
            raise PageFailure("selector", f"{selector!r}: {exc}") from None

    def matches(self, selector: str) -> bool:
        return self._first(check_selector(selector)) is not None

    def _value(self, node: LexborNode | None, attr: str | None) -> Any:
        if node is None:
            return None
        if attr is None:
            return normalise_text(node.text(deep=True, separator="", strip=False))
        attributes = node.attributes
        if attr not in attributes:
            return None
        value = attributes[attr] or ""  # written without a value (<input disabled>): "", as getAttribute says
        return absolute_url(value, self.base_url) if attr in ("src", "href") else value

    def _field(self, field: Field, root: LexborNode | None) -> Any:
        if field.js is not None:
            raise PageFailure("browser_only", f"field {field.name!r} is JavaScript: it needs a browser")
        if field.css is None:
            node = root if root is not None else self.tree.root
            return [self._value(node, field.attr)] if field.all else self._value(node, field.attr)
        if field.all:
            return [self._value(n, field.attr) for n in self._all(field.css, root)]
        return self._value(self._first(field.css, root), field.attr)

    def extract(self, fields: Mapping[str, Any] | tuple[Field, ...]) -> dict[str, Any]:
        """The fields' values in the document (missing elements: None)."""
        return {f.name: self._field(f, None) for f in _fields(fields)}

    def extract_all(self, selector: str, fields: Mapping[str, Any] | tuple[Field, ...]) -> list[dict[str, Any]]:
        """One dict of ``fields`` per match of ``selector``, in document order, the
        fields' selectors relative to the match."""
        parsed = _fields(fields)
        return [{f.name: self._field(f, node) for f in parsed} for node in self._all(check_selector(selector))]

    def links(self, selector: str) -> list[str]:
        """The ``href`` (else ``src``) of every match, as written (relative to :attr:`base_url`)."""
        out = []
        for node in self._all(check_selector(selector)):
            attributes = node.attributes
            name = "href" if "href" in attributes else "src" if "src" in attributes else None
            if name is not None:
                out.append(attributes[name] or "")
        return out

    def html(self) -> str:
        return self.tree.html or ""


def _fields(fields: Mapping[str, Any] | tuple[Field, ...]) -> tuple[Field, ...]:
    return fields if isinstance(fields, tuple) else parse_fields(fields)
