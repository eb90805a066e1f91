"""The field language, shared by ``Page.extract``, ``Page.extract_all`` and TOML routes.

A field is one of::

    "h1"                                  the text of the first match, trimmed (None if absent)
    {css = "img", attr = "src"}           an attribute (href and src resolved to absolute URLs)
    {js = "document.title"}               a JavaScript expression; ``el`` is the match (extract_all)
                                          or ``document`` (extract)
    {css = ".tag", all = true}            a list: the texts (or ``attr`` values) of every match
    {attr = "data-id"}                    an attribute of the element itself (the match, in
                                          extract_all; the root element, in extract)

Any table form takes ``required = true``: a TOML route then fails the job
``missing_field: NAME`` (retried) when the field is null (or an empty list), rather
than store an incomplete item.  A js field that throws is null, and its error is
counted (in the summary and the metrics) as well as kept under ``_errors``.

Fields are compiled into one JavaScript expression, so extracting any number of fields
is one ``Runtime.evaluate``.  Selectors are checked when a field is compiled
(:func:`parse_fields`), so a typo is one clear error up front, not a slow timeout on
every page.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

import attrs
import cssselect


class FieldError(ValueError):
    """A field or selector is malformed: the message names the field and says why."""


@attrs.frozen
class Field:
    name: str
    css: str | None = None
    attr: str | None = None
    js: str | None = None
    all: bool = False
    required: bool = False


def missing_required(fields: tuple[Field, ...], values: Mapping[str, Any]) -> str | None:
    """The name of the first required field whose value is null or an empty list."""
    for f in fields:
        if f.required and values.get(f.name) in (None, []):
            return f.name
    return None


def check_selector(selector: Any, *, where: str = "selector") -> str:
    """``selector`` if it is a valid CSS selector, else FieldError naming ``where``."""
    if not isinstance(selector, str) or not selector.strip():
        raise FieldError(f"{where}: expected a CSS selector, got {selector!r}")
    try:
        cssselect.parse(selector)  # syntax only: what matches is the browser's business
    except cssselect.SelectorSyntaxError as exc:
        raise FieldError(f"{where}: invalid CSS selector {selector!r}: {str(exc).splitlines()[0]}") from None
    return selector


def parse_fields(fields: Mapping[str, Any], *, where: str = "fields") -> tuple[Field, ...]:
    """Validate a ``{name: rule}`` mapping into Fields. Raises FieldError."""
    if not isinstance(fields, Mapping) or not fields:
        raise FieldError(f"{where}: expected a table of name = selector, got {fields!r}")
    out = []
    for name, rule in fields.items():
        at = f"{where} {name}"
        if isinstance(rule, str):
            out.append(Field(name, css=check_selector(rule, where=at)))
            continue
        if not isinstance(rule, Mapping):
            raise FieldError(
                f"{at}: expected a CSS selector, {{css, attr}}, {{js}} or {{css, all = true}}, got {rule!r}"
            )
        unknown = set(rule) - {"css", "attr", "js", "all", "required"}
        if unknown:
            raise FieldError(f"{at}: unknown key {sorted(unknown)[0]!r} (known: css, attr, js, all, required)")
        if "css" in rule and "js" in rule or not ({"css", "js", "attr"} & set(rule)):
            raise FieldError(f"{at}: expected exactly one of css or js (or attr alone: the element's own)")
        for key in ("attr", "js"):
            if key in rule and (not isinstance(rule[key], str) or not rule[key]):
                raise FieldError(f"{at}: {key}: expected a non-empty string, got {rule[key]!r}")
        for key in ("all", "required"):
            if key in rule and not isinstance(rule[key], bool):
                raise FieldError(f"{at}: {key}: expected true or false, got {rule[key]!r}")
        if "js" in rule and ("attr" in rule or rule.get("all")):
            raise FieldError(f"{at}: attr and all go with css, not js")
        css = check_selector(rule["css"], where=f"{at}.css") if "css" in rule else None
        out.append(
            Field(
                name,
                css=css,
                attr=rule.get("attr"),
                js=rule.get("js"),
                all=bool(rule.get("all")),
                required=bool(rule.get("required")),
            )
        )
    return tuple(out)


# Helpers defined once per expression; ``root`` is document or the match.
_PRELUDE = """
  const __v = (e, a) => { if (!e) return null; if (a === null) return e.textContent.trim();
    const v = e.getAttribute(a);
    return v !== null && (a === 'src' || a === 'href') ? new URL(v, document.baseURI).href : v; };
  const __one = (root, s, a) => __v(s === null ? root : root.querySelector(s), a);
  const __all = (root, s, a) => s === null ? [__v(root, a)] : Array.from(root.querySelectorAll(s), (e) => __v(e, a));
"""


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
    ready = f"document.querySelector({json.dumps(wait_for)}) !== null" if wait_for else "true"
    return (
        "(() => {\n"
        f"  if (!({ready})) return null;\n"
        + _PRELUDE
        + "  const out = {}, errors = {};\n"
        + _object(fields, "document")
        + "\n  return {fields: out, errors: errors};\n})()"
    )


def when_ready(expression: str, slice_ms: int) -> str:
    """JS: a promise of ``expression``'s value once it is not null, checked now and after
    every change to the DOM (a MutationObserver: no polling round trips); null after
    ``slice_ms``, so that no single evaluation outlives a command deadline."""
    return (
        "new Promise((resolve) => {\n"
        f"  const attempt = () => {expression};\n"
        "  const first = attempt();\n"
        "  if (first !== null) return resolve(first);\n"
        "  const observer = new MutationObserver(() => {\n"
        "    const value = attempt();\n"
        "    if (value !== null) { observer.disconnect(); clearTimeout(timer); resolve(value); }\n"
        "  });\n"
        "  observer.observe(document, {subtree: true, childList: true, attributes: true, characterData: true});\n"
        f"  const timer = setTimeout(() => {{ observer.disconnect(); resolve(null); }}, {int(slice_ms)});\n"
        "})"
    )


def extract_all_expression(selector: str, fields: tuple[Field, ...]) -> str:
    """JS returning ``{rows, errors}``: one ``{name: value}`` per match of ``selector``."""
    return (
        "(() => {\n" + _PRELUDE + "  const rows = [], errors = {};\n"
        f"  for (const match of document.querySelectorAll({json.dumps(selector)})) {{\n"
        "    const out = {};\n"
        + _object(fields, "match")
        + "\n    rows.push(out);\n  }\n  return {rows: rows, errors: errors};\n})()"
    )
