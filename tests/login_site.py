"""A local site behind a login, for the saved-session tests: it counts logins, and its
pages show whether the request was logged in (a cookie) and whether the page's
localStorage holds the login's token.

=================  ==========================================================
``/login``         logs in: counted; sets ``sid`` (HttpOnly, a fresh secret
                   each time) and a script puts a token in localStorage
``/p/{i}``         a page: ``.user`` is "demo" for a live ``sid``, else
                   "anonymous"; ``.token`` says whether localStorage holds a
                   login's token ("yes"/"no", never the token);
                   ``body[data-ready]`` once both are set
``/account``       ``.user`` as on a page (what a session check reads)
=================  ==========================================================

The secrets are unique per site (``SECRET_PREFIX`` and a random part), so a test can
look for them in every output.  :meth:`LoginSite.log_everyone_out` ends every session
on the server (a check then fails).
"""

from __future__ import annotations

import secrets
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import trio

from crawler.httpserver import HttpRequest, Response, serve_http

SECRET_PREFIX = "s3cr3t-"

PAGE = (
    "<!doctype html><html><body><h1>Page {i}</h1><p class='user'>{user}</p><p class='token'></p>"
    "<script>document.querySelector('.token').textContent ="
    " (localStorage.getItem('token') || '').startsWith('{prefix}ls-') ? 'yes' : 'no';"
    " document.body.dataset.ready = '1';</script></body></html>"
)
LOGIN = (
    "<!doctype html><html><body><p class='done'>logged in</p>"
    "<script>localStorage.setItem('token', '{token}');</script></body></html>"
)


class LoginSite:
    def __init__(self) -> None:
        self.logins = 0
        self.token = SECRET_PREFIX + "ls-" + secrets.token_hex(8)  # the localStorage token
        self.sessions: set[str] = set()  # live sid values
        self.issued: list[str] = []  # every sid ever set
        self.pages = 0
        self.base = ""

    def log_everyone_out(self) -> None:
        self.sessions.clear()

    def _user(self, request: HttpRequest) -> str:
        return "demo" if request.cookies.get("sid") in self.sessions else "anonymous"

    async def __call__(self, request: HttpRequest) -> Response:
        path = request.path
        if path == "/login":
            self.logins += 1
            sid = SECRET_PREFIX + "sid-" + secrets.token_hex(8)
            self.sessions.add(sid)
            self.issued.append(sid)
            return Response(
                body=LOGIN.format(token=self.token).encode(),
                headers=(("set-cookie", f"sid={sid}; Path=/; HttpOnly"),),
            )
        if path == "/account":
            return Response(body=f"<html><body><p class='user'>{self._user(request)}</p></body></html>".encode())
        if path.startswith("/p/"):
            self.pages += 1
            i = path.rsplit("/", 1)[1]
            return Response(body=PAGE.format(i=i, user=self._user(request), prefix=SECRET_PREFIX).encode())
        return Response(status=404, body=b"not found")


@asynccontextmanager
async def serve_login_site() -> AsyncIterator[LoginSite]:
    """A :class:`LoginSite` on 127.0.0.1 (a free port), stopped at the end of the block."""
    site = LoginSite()
    async with trio.open_nursery() as nursery:
        port = await nursery.start(lambda task_status: serve_http(site, host="127.0.0.1", task_status=task_status))
        site.base = f"http://127.0.0.1:{port}"
        yield site
        nursery.cancel_scope.cancel()
