"""The page a handler gets on a route fetched over HTTP: the same handler API as the
browser's :class:`~crawler.page.Page` wherever no browser is needed.

An :class:`HttpPage` holds one response, read whole and parsed once
(:class:`crawler.http.document.Document`): ``extract``, ``extract_all``, ``html``,
``wait_for`` (a selector the HTML lacks will not appear: it fails at once) read it;
``json()`` reads an API's body; ``push``, ``enqueue``, ``fetch`` and
``retire_session`` are the browser page's own (:class:`~crawler.page.output.JobOutput`).
The steps only a browser can take (``click``, ``scroll_to_end``, ``frame``,
``evaluate``...) raise :class:`BrowserOnly`, naming the route and the fix.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from crawler.config.fields import check_selector
from crawler.errors import PageFailure, SessionRetired
from crawler.http.client import Response
from crawler.http.cookies import Cookies
from crawler.http.document import Document
from crawler.page.output import JobOutput, PageEnv
from crawler.request import Request

# What a handler may call on a browser page and not here (each raises BrowserOnly).
BROWSER_ONLY = (
    "evaluate",
    "click",
    "click_if_present",
    "hover",
    "fill",
    "select_option",
    "press",
    "scroll_into_view",
    "scroll_to_end",
    "frame",
    "goto",
    "responses",
    "screenshot",
    "show",
    "mouse",
)


class BrowserOnly(PageFailure):
    """A handler on a route fetched over HTTP asked for a browser's step: not retried
    (on an ``auto`` route: the job goes to the browser instead)."""

    def __init__(self, step: str, label: str | None):
        route = "the default route" if label is None else f"route {label!r}"
        super().__init__(
            "browser_only",
            f'page.{step}() needs a browser, and {route} fetches over HTTP: set fetch = "browser" (or "auto") on it',
        )


class HttpPage(JobOutput):
    """One job's HTTP response, as a handler sees it (see the module docstring)."""

    def __init__(self, request: Request, env: PageEnv, session_id: str, response: Response, cookies: Cookies):
        super().__init__(request, env, session_id)
        self.response = response
        self._session_cookies = cookies
        self._document: Document | None = None

    @property
    def status(self) -> int:
        return self.response.status

    @property
    def headers(self) -> Mapping[str, str]:
        """The response's headers (lower-case names)."""
        return self.response.headers

    @property
    def final_url(self) -> str:
        """Where the redirects, if any, ended."""
        return self.response.url

    @property
    def document(self) -> Document:
        """The parsed HTML (parsed on first use)."""
        if self._document is None:
            self._document = Document(self.response.text, self.response.url)
        return self._document

    def _cookies(self) -> Cookies:
        return self._session_cookies

    def check_blocked(self) -> None:
        """SessionRetired ``retire_if`` if the ``[session] retire_if`` selector matches."""
        if self.env.retire_if and self.response.content_type != "application/json":
            if self.document.matches(self.env.retire_if):
                raise SessionRetired("retire_if")

    # -- reading -------------------------------------------------------------------------

    async def extract(self, fields: Mapping[str, Any], *, wait_for: str | None = None) -> dict[str, Any]:
        """The fields of the document (see :mod:`crawler.config.fields`; no ``js``).
        With ``wait_for``: PageFailure ``wait_for`` if the HTML has no such element."""
        if wait_for:
            await self.wait_for(wait_for)
        return self.document.extract(fields)

    async def extract_all(self, selector: str, fields: Mapping[str, Any]) -> list[dict[str, Any]]:
        return self.document.extract_all(selector, fields)

    async def wait_for(self, selector: str, timeout_s: float | None = None) -> None:
        """Return if ``selector`` matches; else PageFailure ``wait_for`` at once (the
        HTML will not change: an element a script adds needs ``fetch = "browser"``)."""
        if not self.document.matches(check_selector(selector)):
            raise PageFailure("wait_for", f"{selector!r} is not in the page's HTML (fetched over HTTP)")

    async def wait_for_load(self) -> None:
        """Nothing to wait for: the document was read whole."""

    async def wait_for_idle(self, idle_s: float = 0.0, timeout_s: float = 0.0) -> None:
        """Nothing to wait for: no script runs."""

    async def html(self) -> str:
        """The response's text, decoded (see :attr:`crawler.http.client.Response.charset`)."""
        return self.response.text

    def json(self) -> Any:
        """The body as JSON; PageFailure ``not_json`` if it is not."""
        return self.response.json()

    async def enqueue(
        self,
        urls: Iterable[str] = (),
        *,
        selector: str | None = None,
        label: str | None = None,
        data: Mapping[str, Any] | None = None,
    ) -> int:
        """As :meth:`crawler.page.scope.Scope.enqueue`: ``urls`` (relative to the page's
        URL) and the ``href`` (else ``src``) of the elements matching ``selector``."""
        raw = [(u, self.url) for u in ([urls] if isinstance(urls, str) else urls)]
        if selector is not None:
            document = self.document
            raw += [(link, document.base_url) for link in document.links(selector)]
        return await self.add_links(raw, label=label, data=data)


def _browser_only(step: str) -> Any:
    async def refuse(self: HttpPage, *args: Any, **kwargs: Any) -> Any:
        raise BrowserOnly(step, self.label)

    refuse.__name__ = refuse.__qualname__ = step
    refuse.__doc__ = 'Browser only: raises :class:`BrowserOnly` (the route needs fetch = "browser").'
    return refuse


for _step in BROWSER_ONLY:
    setattr(HttpPage, _step, _browser_only(_step))
