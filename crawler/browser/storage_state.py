"""A session's state in Playwright's storage-state format: what ``[session] persist``
saves, ``crawler session export`` writes and ``crawler session import`` reads::

    {"cookies": [{"name", "value", "domain", "path", "expires", "httpOnly",
                  "secure", "sameSite"}, ...],
     "origins": [{"origin": "https://shop.example",
                  "localStorage": [{"name": ..., "value": ...}, ...]}, ...]}

``expires`` is unix time in seconds, -1 for a session cookie; ``sameSite`` is
"Strict", "Lax" or "None"; a ``domain`` with a leading dot is a domain cookie, one
without is the host's own (host-only).  So a file written by Playwright's
``context.storage_state(path=...)`` imports as it is, and an export loads into
Playwright's ``browser.new_context(storage_state=...)``.

Pure functions, no I/O: checking a document (:func:`check_state`), and converting
cookies from and to CDP's (``Storage.getCookies``, ``Storage.setCookies``).  A state
is a secret: nothing here puts a value in an error message or a log line.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

PLAYWRIGHT_SAME_SITE = ("Strict", "Lax", "None")
_COOKIE_TYPES: dict[str, tuple[type, ...]] = {
    "name": (str,),
    "value": (str,),
    "domain": (str,),
    "path": (str,),
    "expires": (int, float),
    "httpOnly": (bool,),
    "secure": (bool,),
}


class StateError(ValueError):
    """Not a storage state: the message says where and what is wrong, never a value."""


def empty_state() -> dict[str, Any]:
    return {"cookies": [], "origins": []}


def check_state(data: Any) -> dict[str, Any]:
    """``data`` (parsed JSON) as a storage state, each cookie with all its keys (the
    ones Playwright may leave out filled in: path "/", expires -1, httpOnly and secure
    false, sameSite "Lax"); other keys of Playwright's (``partitionKey``, an origin's
    ``indexedDB``) are left out.  Raises :class:`StateError` naming the first thing
    wrong (``cookies[2].value: expected a string``)."""
    if not isinstance(data, dict):
        raise StateError(f"expected a JSON object with cookies and origins, got {_kind(data)}")
    if "cookies" not in data:
        raise StateError("no cookies list")
    cookies, origins = data["cookies"], data.get("origins", [])
    if not isinstance(cookies, list):
        raise StateError(f"cookies: expected a list, got {_kind(cookies)}")
    if not isinstance(origins, list):
        raise StateError(f"origins: expected a list, got {_kind(origins)}")
    return {
        "cookies": [_check_cookie(c, f"cookies[{i}]") for i, c in enumerate(cookies)],
        "origins": [_check_origin(o, f"origins[{i}]") for i, o in enumerate(origins)],
    }


def _check_cookie(cookie: Any, where: str) -> dict[str, Any]:
    if not isinstance(cookie, dict):
        raise StateError(f"{where}: expected an object, got {_kind(cookie)}")
    for key in ("name", "value", "domain"):
        if key not in cookie:
            raise StateError(f"{where}: no {key}")
    checked = {"path": "/", "expires": -1, "httpOnly": False, "secure": False, "sameSite": "Lax"}
    for key, types in _COOKIE_TYPES.items():
        if key in cookie:
            value = cookie[key]
            if not isinstance(value, types) or (types == (int, float) and isinstance(value, bool)):
                raise StateError(f"{where}.{key}: expected {_expected(types)}, got {_kind(value)}")
            checked[key] = value
    if not checked["name"] or not checked["domain"]:
        raise StateError(f"{where}: {'name' if not checked['name'] else 'domain'} is empty")
    same_site = cookie.get("sameSite", "Lax")
    if same_site not in PLAYWRIGHT_SAME_SITE:
        raise StateError(f"{where}.sameSite: expected one of {', '.join(PLAYWRIGHT_SAME_SITE)}")
    checked["sameSite"] = same_site
    return {k: checked[k] for k in ("name", "value", "domain", "path", "expires", "httpOnly", "secure", "sameSite")}


def _check_origin(origin: Any, where: str) -> dict[str, Any]:
    if not isinstance(origin, dict):
        raise StateError(f"{where}: expected an object, got {_kind(origin)}")
    name = origin.get("origin")
    if not isinstance(name, str) or not name.startswith(("http://", "https://")):
        raise StateError(f"{where}.origin: expected an http(s) origin such as https://shop.example")
    items = origin.get("localStorage", [])
    if not isinstance(items, list):
        raise StateError(f"{where}.localStorage: expected a list, got {_kind(items)}")
    checked = []
    for i, item in enumerate(items):
        at = f"{where}.localStorage[{i}]"
        if not isinstance(item, dict) or not isinstance(item.get("name"), str):
            raise StateError(f"{at}: expected an object with a string name and value")
        if not isinstance(item.get("value"), str):
            raise StateError(f"{at}.value: expected a string, got {_kind(item.get('value'))}")
        checked.append({"name": item["name"], "value": item["value"]})
    return {"origin": name.rstrip("/"), "localStorage": checked}


def _kind(value: Any) -> str:
    """What a value is, never the value itself (it may be a secret)."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "a boolean"
    return {dict: "an object", list: "a list", str: "a string", int: "a number", float: "a number"}.get(
        type(value), type(value).__name__
    )


def _expected(types: tuple[type, ...]) -> str:
    return {str: "a string", bool: "true or false", int: "a number"}[types[0]]


def describe(state: Mapping[str, Any]) -> str:
    """What a log line may say of a state: how many cookies and origins, no value."""
    cookies, origins = len(state.get("cookies", ())), len(state.get("origins", ()))
    return f"{cookies} cookie{'s' * (cookies != 1)}, localStorage of {origins} origin{'s' * (origins != 1)}"


# -- CDP ------------------------------------------------------------------------------


def from_cdp_cookies(cookies: Iterable[Mapping[str, Any]]) -> list[dict[str, Any]]:
    """``Storage.getCookies``' cookies in the storage-state form (a cookie without
    sameSite is "Lax", as Chromium treats it and as Playwright writes it)."""
    return [
        {
            "name": c["name"],
            "value": c["value"],
            "domain": c["domain"],
            "path": c.get("path", "/"),
            "expires": -1 if c.get("session", False) else c.get("expires", -1),
            "httpOnly": bool(c.get("httpOnly", False)),
            "secure": bool(c.get("secure", False)),
            "sameSite": c.get("sameSite") if c.get("sameSite") in PLAYWRIGHT_SAME_SITE else "Lax",
        }
        for c in cookies
    ]


def to_cdp_cookies(cookies: Iterable[Mapping[str, Any]]) -> list[dict[str, Any]]:
    """The ``Storage.setCookies`` parameters of checked storage-state cookies.  A host's
    own cookie (domain without a leading dot) is set by ``url``, which keeps it
    host-only; given as ``domain`` it would become a domain cookie, sent to every
    subdomain too."""
    params = []
    for c in cookies:
        param: dict[str, Any] = {
            "name": c["name"],
            "value": c["value"],
            "path": c["path"],
            "secure": c["secure"],
            "httpOnly": c["httpOnly"],
            "sameSite": c["sameSite"],
        }
        if c["expires"] is not None and c["expires"] >= 0:
            param["expires"] = c["expires"]
        if c["domain"].startswith("."):
            param["domain"] = c["domain"]
        else:
            param["url"] = f"{'https' if c['secure'] else 'http'}://{c['domain']}{c['path']}"
        params.append(param)
    return params
