"""Value checks for the config's settings: each takes a TOML value and returns it
checked (and converted), or raises :class:`BadValue` with what was expected; the
loader adds the file and key."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import attrs

from crawler.config.fields import FieldError, check_selector
from crawler.config.identity import IdentityError, Proxy, parse_headers, parse_proxy


class BadValue(Exception):
    """A value failed its check; the loader adds where."""


# -- value checks -----------------------------------------------------------------------


def integer(minimum: int = 0) -> Callable[[Any], int]:
    def check(value: Any) -> int:
        if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
            raise BadValue(f"expected an integer >= {minimum}, got {value!r}")
        return value

    return check


def number(minimum: float = 0.0, *, positive: bool = False) -> Callable[[Any], float]:
    def check(value: Any) -> float:
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise BadValue(f"expected a number, got {value!r}")
        if value < minimum or (positive and value <= 0):
            raise BadValue(f"expected a number {'>' if positive else '>='} {minimum:g}, got {value!r}")
        return float(value)

    return check


def string(value: Any) -> str:
    if not isinstance(value, str):
        raise BadValue(f"expected a string, got {value!r}")
    return value


def boolean(value: Any) -> bool:
    if not isinstance(value, bool):
        raise BadValue(f"expected true or false, got {value!r}")
    return value


def strings(value: Any) -> tuple[str, ...]:
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise BadValue(f"expected a list of strings, got {value!r}")
    return tuple(value)


def pair(kind: Callable[[Any], Any]) -> Callable[[Any], tuple[Any, Any]]:
    def check(value: Any) -> tuple[Any, Any]:
        if not isinstance(value, list) or len(value) != 2:
            raise BadValue(f"expected [min, max], got {value!r}")
        low, high = kind(value[0]), kind(value[1])
        if low > high:
            raise BadValue(f"expected [min, max] with min <= max, got {value!r}")
        return (low, high)

    return check


def choice(*options: str) -> Callable[[Any], str]:
    def check(value: Any) -> str:
        if value not in options:
            raise BadValue(f"expected one of {', '.join(map(repr, options))}, got {value!r}")
        return value

    return check


# [browser] block_resources: the CDP resource types a crawl may refuse to load.  Not
# documents, scripts or XHR/fetch: without them a page shows something else.
BLOCKABLE_RESOURCES = {
    "image": "Image",
    "media": "Media",
    "font": "Font",
    "stylesheet": "Stylesheet",
    "texttrack": "TextTrack",
    "prefetch": "Prefetch",
    "ping": "Ping",
    "manifest": "Manifest",
}


def resource_types(value: Any) -> tuple[str, ...]:
    kinds = strings(value)
    for kind in kinds:
        if kind.lower() not in BLOCKABLE_RESOURCES:
            raise BadValue(f"unknown resource type {kind!r}; choose from {', '.join(BLOCKABLE_RESOURCES)}")
    return tuple(BLOCKABLE_RESOURCES[kind.lower()] for kind in kinds)


def integer_or_auto(minimum: int) -> Callable[[Any], int | str]:
    def check(value: Any) -> int | str:
        if value == "auto":
            return value
        try:
            return integer(minimum)(value)
        except BadValue:
            raise BadValue(f'expected an integer >= {minimum} or "auto", got {value!r}') from None

    return check


def recycle_every(value: Any) -> int | str:
    if value == "auto":
        return value
    try:
        return integer(1)(value)
    except BadValue:
        raise BadValue(f'expected an integer >= 1 or "auto", got {value!r}') from None


def proxies(value: Any) -> tuple[Proxy, ...]:
    if not isinstance(value, list):
        raise BadValue(f"expected a list of proxy URLs, got {value!r}")
    try:
        return tuple(parse_proxy(url) for url in value)
    except IdentityError as exc:
        raise BadValue(str(exc)) from None


def headers(value: Any) -> tuple[tuple[str, str], ...]:
    try:
        return parse_headers(value)
    except IdentityError as exc:
        raise BadValue(str(exc)) from None


def statuses(value: Any) -> tuple[int, ...]:
    if not isinstance(value, list) or not all(
        isinstance(v, int) and not isinstance(v, bool) and 400 <= v <= 599 for v in value
    ):
        raise BadValue(f"expected a list of HTTP statuses (400-599), got {value!r}")
    return tuple(value)


def selector(value: Any) -> str:
    text = string(value)
    if text:
        try:
            check_selector(text)
        except FieldError as exc:
            raise BadValue(str(exc)) from None
    return text


def setting(default: Any, check: Callable[[Any], Any], doc: str) -> Any:
    return attrs.field(default=default, metadata={"check": check, "doc": doc})
