"""Fields compiled into JavaScript: one ``Runtime.evaluate`` extracts any number of
fields (:func:`extract_expression`, :func:`extract_all_expression`), and
:func:`when_ready` waits inside the page for a selector before extracting.  The field
language itself is :mod:`crawler.config.fields`'s."""

from __future__ import annotations

import json

from crawler.config.fields import Field
from crawler.page.dom import QUERY_JS

READY_POLL_MS = 100  # when_ready: also re-checked this often

# Helpers defined once per expression; ``root`` is document or the match.  Selectors go
# through shadow roots (crawler.page.dom).  A text is textContent with each run of
# whitespace made one space, trimmed: the rule of crawler.http.document.normalise_text,
# so both paths give the same value.
_PRELUDE = (
    QUERY_JS
    + """
  const __ws = /[\\t\\n\\v\\f\\r \\u00a0\\u1680\\u2000-\\u200a\\u2028\\u2029\\u202f\\u205f\\u3000\\ufeff]+/g;
  const __v = (e, a) => { if (!e) return null; if (a === null) return e.textContent.replace(__ws, ' ').trim();
    const v = e.getAttribute(a);
    return v !== null && (a === 'src' || a === 'href') ? new URL(v, document.baseURI).href : v; };
  const __one = (root, s, a) => __v(s === null ? root : __q(s, root === document ? null : root), a);
  const __all = (root, s, a) => s === null ? [__v(root, a)] : __qa(s, root === document ? null : root).map((e) => __v(e, a));
"""
)


def _getter(field: Field, root: str) -> str:
    if field.js is not None:
        return f"((el) => ({field.js}))({root})"
    fn = "__all" if field.all else "__one"
    if field.css is None and root == "document":
        root = "document.documentElement"  # an attribute of the element itself: the root element
    return f"{fn}({root}, {json.dumps(field.css)}, {json.dumps(field.attr)})"


def _object(fields: tuple[Field, ...], root: str) -> str:
    """JS statements that fill ``out`` (and ``errors``, for js fields that throw)."""
    lines = []
    for f in fields:
        key = json.dumps(f.name)
        lines.append(
            f"try {{ out[{key}] = {_getter(f, root)}; }} catch (e) {{ out[{key}] = null; errors[{key}] = String(e); }}"
        )
    return "\n".join("    " + line for line in lines)


def extract_expression(fields: tuple[Field, ...], *, wait_for: str = "") -> str:
    """JS returning ``{fields, errors}`` for the document; with ``wait_for``, null until
    that selector matches (readiness and extraction in one round trip)."""
    ready = f"__q({json.dumps(wait_for)}) !== null" if wait_for else "true"
    return (
        "(() => {\n"
        + _PRELUDE
        + f"  if (!({ready})) return null;\n"
        + "  const out = {}, errors = {};\n"
        + _object(fields, "document")
        + "\n  return {fields: out, errors: errors};\n})()"
    )


def when_ready(expression: str, slice_ms: int) -> str:
    """JS: a promise of ``expression``'s value once it is not null, checked now and after
    every change to the document (a MutationObserver: no polling round trips) and every
    ``READY_POLL_MS`` (a change inside a shadow root is not the document's); null after
    ``slice_ms``, so that no single evaluation outlives a command deadline."""
    return (
        "new Promise((resolve) => {\n"
        f"  const attempt = () => {expression};\n"
        "  const first = attempt();\n"
        "  if (first !== null) return resolve(first);\n"
        "  const check = () => {\n"
        "    const value = attempt();\n"
        "    if (value !== null) { observer.disconnect(); clearTimeout(timer); clearInterval(poll); resolve(value); }\n"
        "  };\n"
        "  const observer = new MutationObserver(check);\n"
        "  observer.observe(document, {subtree: true, childList: true, attributes: true, characterData: true});\n"
        f"  const poll = setInterval(check, {READY_POLL_MS});\n"
        f"  const timer = setTimeout(() => {{ observer.disconnect(); clearInterval(poll); resolve(null); }}, {int(slice_ms)});\n"
        "})"
    )


def extract_all_expression(selector: str, fields: tuple[Field, ...]) -> str:
    """JS returning ``{rows, errors}``: one ``{name: value}`` per match of ``selector``."""
    return (
        "(() => {\n" + _PRELUDE + "  const rows = [], errors = {};\n"
        f"  for (const match of __qa({json.dumps(selector)})) {{\n"
        "    const out = {};\n"
        + _object(fields, "match")
        + "\n    rows.push(out);\n  }\n  return {rows: rows, errors: errors};\n})()"
    )
