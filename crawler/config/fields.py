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

Selectors are checked when a field is parsed (:func:`parse_fields`), so a typo is one
clear error up front, not a slow timeout on every page.  Fields are compiled into one
JavaScript expression by :mod:`crawler.page.script`, so extracting any number of fields
is one ``Runtime.evaluate``.
"""

from __future__ import annotations

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
