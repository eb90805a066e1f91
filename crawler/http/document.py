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
route that fetches over HTTP refuses one when it is loaded.  Known differences: the
content of ``<noscript>`` is text in a browser that runs scripts and elements here;
shadow roots exist only in the browser (declarative ones are ignored here).
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any
from urllib.parse import quote, urljoin

from selectolax.lexbor import LexborHTMLParser, LexborNode

from crawler.config.fields import Field, check_selector, parse_fields
from crawler.errors import PageFailure

# JavaScript's \s (what String.prototype.trim and the page's normalising regex take as
# whitespace), so that both paths cut the same characters.
_WHITESPACE = re.compile("[\t\n\v\f\r \u00a0\u1680\u2000-\u200a\u2028\u2029\u202f\u205f\u3000\ufeff]+")
# Left alone when a URL is made absolute: what WHATWG URL serialising leaves unescaped.
_URL_SAFE = "%/:?#[]@!$&'()*+,;=~-._"


def normalise_text(text: str) -> str:
    """``text`` with each run of whitespace made one space, and trimmed."""
    return _WHITESPACE.sub(" ", text).strip(" ")


def absolute_url(value: str, base: str) -> str:
    """``value`` resolved against ``base``, as ``new URL(value, base).href`` gives it for
    ordinary URLs: trimmed, tabs and newlines dropped, spaces and non-ASCII escaped."""
    value = value.strip("\x00\x01\x02\x03\x04\x05\x06\x07\x08\t\n\x0b\x0c\r\x0e\x0f \x7f")
    value = value.replace("\t", "").replace("\n", "").replace("\r", "")
    try:
        return quote(urljoin(base, value), safe=_URL_SAFE)
    except ValueError:
        return value


class Document:
    """``html`` parsed; ``url`` is where it came from (the base of its relative links,
    unless a ``<base href>`` says otherwise)."""

    def __init__(self, html: str, url: str):
        self.tree = LexborHTMLParser(html)
        base = self.tree.css_first("base[href]")
        self.base_url = absolute_url(str(base.attributes.get("href") or ""), url) if base is not None else url

    def _all(self, selector: str, root: LexborNode | None = None) -> list[LexborNode]:
        """The matches of ``selector`` in the document, or among ``root``'s descendants
        (``querySelectorAll``: lexbor also offers the root itself)."""
        try:
            found = (self.tree if root is None else root).css(selector)
        except Exception as exc:  # lexbor refuses a selector cssselect accepted
            raise PageFailure("selector", f"{selector!r}: {exc}") from None
        return list(found) if root is None else [node for node in found if node != root]

    def _first(self, selector: str, root: LexborNode | None = None) -> LexborNode | None:
        if root is not None:
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
        value = node.attributes.get(attr)
        if value is None:
            return None
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
            value = node.attributes.get("href")
            if value is None:
                value = node.attributes.get("src")
            if value is not None:
                out.append(value)
        return out

    def html(self) -> str:
        return self.tree.html or ""


def _fields(fields: Mapping[str, Any] | tuple[Field, ...]) -> tuple[Field, ...]:
    return fields if isinstance(fields, tuple) else parse_fields(fields)
