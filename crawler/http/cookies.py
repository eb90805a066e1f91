"""Where an HTTP request's cookies come from and where the response's go: the
session's cookies, wherever the session keeps them.

- :class:`ContextCookies`: a browser context's (through one of its tabs).  The context
  is the truth, both ways: a request carries the cookies the context would send to
  its URL (``Network.getCookies``), and what a response sets goes into the context
  (``Network.setCookies``).  So a session hook that logs in with the browser makes the
  HTTP requests logged in, and a cookie set over HTTP is the browser's next page's.
- :class:`JarCookies`: a jar of our own, for a session without a browser.

Either way a response's cookies are judged by the standard library's cookie policy
first (a site cannot set a cookie for another site's domain).
"""

from __future__ import annotations

from http.cookiejar import Cookie
from typing import Any, Protocol

import httpx

import cdp


class Cookies(Protocol):
    """The session's cookies, as an HTTP request needs them."""

    async def apply(self, request: httpx.Request) -> None:
        """Set ``request``'s Cookie header to the session's cookies for its URL."""

    async def store(self, response: httpx.Response) -> None:
        """Keep the cookies ``response`` sets."""


class JarCookies:
    """A session's cookies in a jar of our own (a session without a browser context)."""

    def __init__(self) -> None:
        self.jar = httpx.Cookies()

    async def apply(self, request: httpx.Request) -> None:
        request.headers.pop("cookie", None)
        if self.jar.jar:  # (the standard library's matching costs ~0.1 ms a request, even for an empty jar)
            self.jar.set_cookie_header(request)

    async def store(self, response: httpx.Response) -> None:
        if "set-cookie" in response.headers:
            self.jar.extract_cookies(response)


class ContextCookies:
    """The cookies of ``tab``'s browser context.  Every call is one CDP command on the
    tab, bounded by the connection's command deadline; raises the tab's CDP error."""

    def __init__(self, tab: cdp.Tab):
        self.tab = tab

    async def apply(self, request: httpx.Request) -> None:
        reply = await self.tab.send("Network.getCookies", urls=[str(request.url)])
        request.headers.pop("cookie", None)
        pairs = [f"{c['name']}={c['value']}" for c in reply.get("cookies", [])]
        if pairs:
            request.headers["cookie"] = "; ".join(pairs)

    async def store(self, response: httpx.Response) -> None:
        if "set-cookie" not in response.headers:
            return
        judged = httpx.Cookies()
        judged.extract_cookies(response)  # the standard library's policy: domain, path, expiry
        params = [cdp_cookie(c, str(response.url)) for c in judged.jar]
        if params:
            await self.tab.send("Network.setCookies", cookies=params)


def cdp_cookie(cookie: Cookie, url: str) -> dict[str, Any]:
    """A cookie of the standard library's jar as CDP's ``CookieParam``: host-only
    cookies (no Domain attribute) are set by ``url``, as the browser would."""
    # The jar keeps attributes it does not model (HttpOnly, SameSite) as they were
    # spelt; read them case-insensitively.
    rest = {k.lower(): v for k, v in getattr(cookie, "_rest", {}).items()}
    param: dict[str, Any] = {
        "name": cookie.name,
        "value": cookie.value or "",
        "path": cookie.path,
        "secure": bool(cookie.secure),
        "httpOnly": "httponly" in rest,
    }
    if cookie.domain_specified:
        param["domain"] = cookie.domain
    else:
        param["url"] = url
    if cookie.expires is not None:
        param["expires"] = float(cookie.expires)
    same_site = str(rest.get("samesite") or "").capitalize()
    if same_site in ("Strict", "Lax", "None"):
        param["sameSite"] = same_site
    return param
