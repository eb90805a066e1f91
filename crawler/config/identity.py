"""A browser identity: the proxy a context's traffic goes through, and what the site
sees of the browser (user agent, locale, timezone, headers, cookies).

Pure parsing (``parse_proxy``, ``parse_headers``, ``load_cookies``: each raises
:class:`IdentityError` with a one-line message, which the config loader names the file
and key for).  The commands that apply an identity to a tab are
:mod:`crawler.browser.identity`'s.

Credentials never leave this module's :class:`Proxy` except to answer the proxy's own
challenge (``Fetch.authRequired``): ``Proxy.server`` (what Chromium is given, what logs
and metrics show) has none, and neither has its ``repr``.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlsplit

import attrs

PROXY_SCHEMES = ("http", "https", "socks4", "socks5")
DEFAULT_PROXY_PORTS = {"http": 80, "https": 443, "socks4": 1080, "socks5": 1080}
HEADER_NAME = re.compile(r"^[!#$%&'*+.^_`|~0-9A-Za-z-]+$")
SAME_SITE = {"no_restriction": "None", "none": "None", "lax": "Lax", "strict": "Strict"}


class IdentityError(ValueError):
    """A proxy URL, header or cookie file that cannot be used (the message is one line)."""


@attrs.frozen(repr=False)
class Proxy:
    """One proxy: ``server`` (``scheme://host:port``, no credentials) and the
    credentials its challenge is answered with (empty: none)."""

    server: str
    username: str = ""
    password: str = attrs.field(default="", eq=False)

    @property
    def credentials(self) -> tuple[str, str] | None:
        return (self.username, self.password) if self.username or self.password else None

    def __repr__(self) -> str:
        return f"Proxy({self.server!r}{', with credentials' if self.credentials else ''})"


def parse_proxy(url: str) -> Proxy:
    """``scheme://[user:pass@]host[:port]`` as a :class:`Proxy`.  The message of the
    IdentityError it raises never repeats the password."""
    if not isinstance(url, str):
        raise IdentityError(f"expected a proxy URL string, got {url!r}")
    try:
        parts = urlsplit(url.strip())
        port = parts.port
    except ValueError:
        raise IdentityError(f"not a proxy URL: {_without_password(url)!r}") from None
    if parts.scheme not in PROXY_SCHEMES:
        raise IdentityError(
            f"expected a proxy URL scheme://[user:pass@]host:port with scheme {', '.join(PROXY_SCHEMES)},"
            f" got {_without_password(url)!r}"
        )
    if not parts.hostname or parts.path not in ("", "/") or parts.query or parts.fragment:
        raise IdentityError(f"expected scheme://[user:pass@]host:port, got {_without_password(url)!r}")
    username, password = unquote(parts.username or ""), unquote(parts.password or "")
    if (username or password) and parts.scheme.startswith("socks"):
        raise IdentityError(f"Chromium cannot authenticate to SOCKS proxies: {_without_password(url)!r}")
    host = f"[{parts.hostname}]" if ":" in parts.hostname else parts.hostname
    server = f"{parts.scheme}://{host}:{port or DEFAULT_PROXY_PORTS[parts.scheme]}"
    return Proxy(server, username, password)


def _without_password(url: Any) -> str:
    text = str(url)
    return re.sub(r"(://[^:/@]*):[^@/]*@", r"\1:***@", text)


def parse_headers(table: Any) -> tuple[tuple[str, str], ...]:
    """A TOML table of header name -> value, checked."""
    if not isinstance(table, dict):
        raise IdentityError(f'expected a table of "Header-Name" = "value", got {table!r}')
    headers = []
    for name, value in table.items():
        if not HEADER_NAME.match(name):
            raise IdentityError(f"not an HTTP header name: {name!r}")
        if not isinstance(value, str) or any(c in value for c in "\r\n"):
            raise IdentityError(f"header {name}: expected a one-line string, got {value!r}")
        headers.append((name, value))
    return tuple(headers)


# -- cookies --------------------------------------------------------------------------------


def load_cookies(path: Path) -> tuple[dict[str, Any], ...]:
    """The cookies of a file, as ``Network.CookieParam`` dicts: a JSON list as browsers'
    devtools and cookie extensions export it (``name``, ``value``, ``domain``, ``path``,
    ``secure``, ``httpOnly``, ``sameSite``, ``expirationDate`` or ``expires``,
    ``hostOnly``), or a Netscape ``cookies.txt`` (curl, wget, yt-dlp).  Blocking:
    call it where files may be read (loading the config)."""
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise IdentityError(f"no such file {str(path)!r}") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise IdentityError(f"cannot read {str(path)!r}: {getattr(exc, 'strerror', None) or exc}") from None
    if text.lstrip().startswith(("[", "{")):
        return _json_cookies(text, path)
    return _netscape_cookies(text, path)


def _json_cookies(text: str, path: Path) -> tuple[dict[str, Any], ...]:
    try:
        data = json.loads(text)
    except ValueError as exc:
        raise IdentityError(f"{path}: invalid JSON: {exc}") from None
    if isinstance(data, dict) and isinstance(data.get("cookies"), list):
        data = data["cookies"]  # Playwright's storage state
    if not isinstance(data, list):
        raise IdentityError(f"{path}: expected a JSON list of cookies")
    cookies = []
    for i, raw in enumerate(data):
        where = f"{path}: cookie #{i + 1}"
        if not isinstance(raw, dict):
            raise IdentityError(f"{where}: expected an object with name, value and domain")
        for key in ("name", "value", "domain"):
            if not isinstance(raw.get(key), str) or (key != "value" and not raw[key]):
                raise IdentityError(f"{where}: {key}: expected a string")
        expires = raw.get("expirationDate", raw.get("expires"))
        if expires is not None and (isinstance(expires, bool) or not isinstance(expires, (int, float))):
            raise IdentityError(f"{where}: expirationDate: expected seconds since the epoch, got {expires!r}")
        same_site = raw.get("sameSite")
        if same_site is not None and str(same_site).lower() not in (*SAME_SITE, "unspecified"):
            raise IdentityError(f"{where}: sameSite: expected Lax, Strict or None, got {same_site!r}")
        cookies.append(
            _cookie(
                raw["name"],
                raw["value"],
                raw["domain"],
                raw.get("path") or "/",
                secure=bool(raw.get("secure", False)),
                http_only=bool(raw.get("httpOnly", False)),
                host_only=bool(raw.get("hostOnly", False)),
                expires=None if raw.get("session") or expires is None or expires < 0 else float(expires),
                same_site=SAME_SITE.get(str(same_site).lower()) if same_site is not None else None,
            )
        )
    return tuple(cookies)


def _netscape_cookies(text: str, path: Path) -> tuple[dict[str, Any], ...]:
    cookies = []
    for number, line in enumerate(text.splitlines(), 1):
        http_only = line.startswith("#HttpOnly_")
        if http_only:
            line = line[len("#HttpOnly_") :]
        if not line.strip() or line.startswith("#"):
            continue
        fields = line.split("\t")
        if len(fields) != 7:
            raise IdentityError(
                f"{path}: line {number}: expected a JSON list of cookies or Netscape cookies.txt lines"
                " (7 tab-separated fields: domain, subdomains, path, secure, expires, name, value)"
            )
        domain, subdomains, cookie_path, secure, expires, name, value = fields
        if subdomains not in ("TRUE", "FALSE") or secure not in ("TRUE", "FALSE") or not expires.strip().isdigit():
            raise IdentityError(f"{path}: line {number}: expected TRUE/FALSE flags and an integer expiry")
        if not domain or not name:
            raise IdentityError(f"{path}: line {number}: a cookie needs a domain and a name")
        cookies.append(
            _cookie(
                name,
                value,
                domain,
                cookie_path or "/",
                secure=secure == "TRUE",
                http_only=http_only,
                host_only=subdomains == "FALSE" and not domain.startswith("."),
                expires=float(expires) if int(expires) > 0 else None,
                same_site=None,
            )
        )
    return tuple(cookies)


def _cookie(
    name: str,
    value: str,
    domain: str,
    path: str,
    *,
    secure: bool,
    http_only: bool,
    host_only: bool,
    expires: float | None,
    same_site: str | None,
) -> dict[str, Any]:
    cookie: dict[str, Any] = {"name": name, "value": value, "path": path, "secure": secure, "httpOnly": http_only}
    if host_only:
        # A host-only cookie is set through its URL: given a domain, Chromium makes it
        # a domain cookie (sent to subdomains too).
        cookie["url"] = f"{'https' if secure else 'http'}://{domain.lstrip('.')}{path}"
    else:
        cookie["domain"] = domain if domain.startswith(".") else "." + domain
    if expires is not None:
        cookie["expires"] = expires
    if same_site is not None:
        cookie["sameSite"] = same_site
    return cookie
