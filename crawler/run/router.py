"""Routes: which handler runs a job, by the label its URL was enqueued with.

A :class:`Router` maps labels to async handlers (``None`` is the default route, for
``[input]`` URLs and links enqueued without a label) and holds an optional session
hook, run once in every new browser context before its first job (a login), and an
optional session check, which says whether a saved login restored in a new context
still works (``[session] persist``; see :mod:`crawler.run.session_gate`).  Routes
come from Python (``@router.route("product")``), from a site's handlers file
(``[site] handlers``), and from TOML (``[[route]]`` tables, and ``[extract]`` as the
default route): :func:`router_for` puts them together, and every job runs through
the same handler path whichever way its route was written.
"""

from __future__ import annotations

import importlib.util
import inspect
import sys
from collections.abc import Callable
from typing import Any, TypeVar

import cdp
from crawler.config import Config, RouteSpec
from crawler.config.fields import Field, missing_required
from crawler.config.model import CONTENT_KINDS, FETCH_MODES, RENDER_MODES
from crawler.errors import ConfigError, PageFailure, SessionRetired
from crawler.http.body import HTML_TYPES
from crawler.http.client import ANY_ACCEPT, HTML_ACCEPT
from crawler.http.cookies import ContextCookies, Cookies
from crawler.page.http import HttpPage
from crawler.page.page import Page, PageEnv, open_page
from crawler.page.scope import Scope
from crawler.request import Request
from crawler.run.session_gate import Check, Handler, SessionGate

__all__ = ["Check", "Handler", "Router", "SessionGate", "load_handlers", "router_for", "run_http_route", "run_route"]

H = TypeVar("H", bound=Handler)
C = TypeVar("C", bound=Check)


class Router:
    """Handlers by label, and the session hook."""

    def __init__(self) -> None:
        self._routes: dict[str | None, Handler] = {}
        self._recrawl: dict[str | None, float] = {}
        self._render: dict[str | None, str] = {}
        self._fetch: dict[str | None, str] = {}
        self._content: dict[str | None, str] = {}
        self.session_hook: Handler | None = None
        self.session_check_hook: Check | None = None

    def route(
        self,
        label: str | None = None,
        *,
        recrawl_after_s: float | None = None,
        render: str = "visible",
        fetch: str | None = None,
        content: str = "html",
    ) -> Callable[[H], H]:
        """Decorator: ``fn`` handles jobs enqueued with ``label`` (None: the default
        route).  ``recrawl_after_s``: its URLs are due again that long after they were
        done (0: never; None: ``[crawl] recrawl_after_s``).  ``render``: "visible" (the
        default: the page renders as the visible, focused tab, so lazy content loads)
        or "hidden" (nothing renders: for pages known to be static).  ``fetch``:
        "browser", "http" (one request, no browser: ``fn`` gets an
        :class:`~crawler.page.http.HttpPage`) or "auto" (the browser until HTTP is shown
        to give the same output); None: ``[crawl] fetch``.  ``content``: what an HTTP
        fetch of the route expects, "html" or "json" (an API: ``page.json()``)."""

        def register(fn: H) -> H:
            self.add(label, fn, recrawl_after_s=recrawl_after_s, render=render, fetch=fetch, content=content)
            return fn

        return register

    def session(self, fn: H) -> H:
        """Decorator: ``fn(page)`` runs once in every new browser context, before the
        context's first job, on that job's tab and inside its watchdog (a login: the
        context's cookies are the session).  If it raises, that job fails (retryable)
        and the next job in the context runs it again."""
        _check_handler(fn, "session hook")
        if self.session_hook is not None:
            raise ValueError("the router already has a session hook")
        self.session_hook = fn
        return fn

    def session_check(self, fn: C) -> C:
        """Decorator: ``fn(page)`` returns whether the session a new context restored
        (``[session] persist``) is still logged in.  It runs in that context before its
        first job, on that job's tab and inside its watchdog, as the session hook does,
        and goes where it needs to (``await page.goto("/account")``; or it reads a
        cookie and goes nowhere).  Falsy, or an exception (one log line): the saved
        state is dropped from the context and the session hook logs in again."""
        _check_handler(fn, "session check")
        if self.session_check_hook is not None:
            raise ValueError("the router already has a session check")
        self.session_check_hook = fn
        return fn

    def add(
        self,
        label: str | None,
        handler: Handler,
        *,
        recrawl_after_s: float | None = None,
        render: str = "visible",
        fetch: str | None = None,
        content: str = "html",
    ) -> None:
        _check_handler(handler, f"route {label!r}")
        if label in self._routes:
            raise ValueError(f"route {label!r} is defined twice")
        for key, value, allowed in (("render", render, RENDER_MODES), ("content", content, CONTENT_KINDS)):
            if value not in allowed:
                raise ValueError(
                    f"route {label!r}: {key} must be one of {', '.join(map(repr, allowed))}, got {value!r}"
                )
        if fetch is not None and fetch not in FETCH_MODES:
            raise ValueError(
                f"route {label!r}: fetch must be one of {', '.join(map(repr, FETCH_MODES))} (or None), got {fetch!r}"
            )
        if fetch is not None:
            self._fetch[label] = fetch
        self._render[label] = render
        self._content[label] = content
        if recrawl_after_s is not None:
            if recrawl_after_s < 0:
                raise ValueError(f"route {label!r}: recrawl_after_s must be >= 0, got {recrawl_after_s!r}")
            self._recrawl[label] = float(recrawl_after_s)
        self._routes[label] = handler

    def recrawl_after_s(self, label: str | None, default: float | None = None) -> float | None:
        """How long after it was done a URL of route ``label`` is due again (0: never):
        the route's own, else ``default``."""
        return self._recrawl.get(label, default)

    def render(self, label: str | None) -> str:
        """How the pages of route ``label`` render ("visible" unless it said "hidden")."""
        return self._render.get(label, "visible")

    def fetch(self, label: str | None, default: str | None = None) -> str | None:
        """How the pages of route ``label`` are fetched: its own ``fetch``, else
        ``default`` (a crawl's is ``[crawl] fetch``)."""
        return self._fetch.get(label, default)

    def content(self, label: str | None) -> str:
        """What an HTTP fetch of route ``label`` expects ("html" unless it said "json")."""
        return self._content.get(label, "html")

    @property
    def labels(self) -> frozenset[str | None]:
        return frozenset(self._routes)

    def handler(self, label: str | None) -> Handler:
        """The handler of ``label``; PageFailure ``no_route`` (not retried) if none."""
        try:
            return self._routes[label]
        except KeyError:
            known = ", ".join(repr(k) for k in self._routes) or "none"
            raise PageFailure("no_route", f"no route for label {label!r} (routes: {known})") from None


def _check_handler(fn: Any, what: str) -> None:
    if not inspect.iscoroutinefunction(fn):
        raise TypeError(f"{what}: expected an async function taking a Page, got {fn!r}")


# -- TOML routes ------------------------------------------------------------------------------


def toml_handler(spec: RouteSpec) -> Handler:
    """The handler a ``[[route]]`` table (or ``[extract]``) describes: go into
    ``frame`` (each selector a frame in the last); wait for ``wait_for``; hover each
    ``hover`` selector; choose each ``select`` option; click ``click_until_gone`` while
    present; scroll to the end; push one item of ``fields`` and the captures (``url``,
    ``status`` included); push one item per ``items.selector`` match; enqueue every
    ``follow`` selector.  All of it in the frame, if any, but the captures (the page's
    and its frames' responses).

    Nothing is pushed incomplete without saying so: a required capture is waited for
    (up to its ``timeout_s``, inside the watchdog) and fails the job
    ``missing_capture: NAME`` if it never comes; a required field that is null fails
    it ``missing_field: NAME``; both are retried."""

    async def handle(page: Page) -> None:
        prepared = bool(spec.click_until_gone or spec.scroll or spec.hover or spec.select)
        # Unprepared with fields: readiness and extraction are one evaluation per poll.
        one_trip = spec.wait_for and spec.fields and not prepared
        if not spec.wait_for and not spec.frame:
            await page.wait_for_load()
        scope: Scope = page
        for selector in spec.frame:
            scope = await scope.frame(selector)
        if spec.wait_for and not one_trip:
            await scope.wait_for(spec.wait_for)
        for selector in spec.hover:
            await scope.hover(selector)
        for selector, choice in spec.select:
            try:
                await scope.select_option(selector, choice)
            except PageFailure:  # no option has that value: it may be the label
                await scope.select_option(selector, label=choice)
        if spec.select:
            await page.wait_for_idle()
        while spec.click_until_gone and await scope.click_if_present(spec.click_until_gone):
            await page.wait_for_idle()
        if spec.scroll:
            await scope.scroll_to_end()
        if spec.fields or spec.capture or spec.items is None:
            found = (
                await scope.extract(spec.fields, wait_for=spec.wait_for if one_trip else None) if spec.fields else {}
            )
            _check_required(spec.fields, found)
            item: dict[str, Any] = {"url": page.url, "status": page.status, **found}
            for rule in spec.capture:
                bodies = await page.responses(rule.url_contains, wait_s=rule.timeout_s if rule.required else None)
                if rule.required and not bodies:
                    raise PageFailure("missing_capture", rule.name, retryable=True)
                item[rule.name] = bodies if rule.all else (bodies[0] if bodies else None)
            await page.push(item)
        if spec.items is not None:
            for row in await scope.extract_all(spec.items.selector, spec.items.fields):
                _check_required(spec.items.fields, row)
                await page.push(row)
        for follow in spec.follow:
            await scope.enqueue(selector=follow.selector, label=follow.label)

    handle.__name__ = handle.__qualname__ = f"toml_route_{spec.label or 'default'}"
    return handle


def _check_required(fields: tuple[Field, ...], values: dict[str, Any]) -> None:
    name = missing_required(fields, values)
    if name is not None:
        raise PageFailure("missing_field", name, retryable=True)


# -- putting a crawl's routes together ---------------------------------------------------------


def load_handlers(config: Config) -> Router:
    """The ``router`` defined by ``[site] handlers`` (a Python file, relative to the
    config).  Raises ConfigError (one line) if it cannot be loaded or defines none."""
    path = config.path(config.site.handlers)
    where = f"{config.source}: [site] handlers: {path}"
    name = f"crawler_site_handlers_{abs(hash(str(path.resolve())))}"
    try:
        spec = importlib.util.spec_from_file_location(name, path)
        if spec is None or spec.loader is None:
            raise ConfigError(f"{where}: not a Python file")
        module = importlib.util.module_from_spec(spec)
        sys.modules[name] = module
        spec.loader.exec_module(module)
    except ConfigError:
        raise
    except FileNotFoundError:
        raise ConfigError(f"{where}: no such file") from None
    except Exception as exc:  # the user's module failed to import: one line, not a traceback
        raise ConfigError(f"{where}: cannot load: {type(exc).__name__}: {exc}") from None
    router = getattr(module, "router", None)
    if not isinstance(router, Router):
        raise ConfigError(f"{where}: defines no `router = crawler.Router()`")
    return router


def router_for(config: Config, router: Router | None = None) -> Router:
    """The routes of a crawl: ``router`` (or the handlers file's), plus the config's
    ``[[route]]`` tables, plus ``[extract]`` as the default route when nothing else
    defines one.  Raises ConfigError on a label defined twice."""
    if router is None:
        router = load_handlers(config) if config.site.handlers else Router()
    combined = Router()
    combined.session_hook = router.session_hook
    combined.session_check_hook = router.session_check_hook
    for label in router.labels:
        combined.add(
            label,
            router.handler(label),
            recrawl_after_s=router.recrawl_after_s(label),
            render=router.render(label),
            fetch=router.fetch(label),
            content=router.content(label),
        )
    for spec in config.routes:
        if spec.label in combined.labels:
            raise ConfigError(f"{config.source}: [[route]] {spec.label or '(default)'!s}: the route is defined twice")
        combined.add(
            spec.label,
            toml_handler(spec),
            recrawl_after_s=spec.recrawl_after_s,
            render=spec.render,
            fetch=spec.fetch,
            content=spec.content,
        )
    if None not in combined.labels:
        combined.add(None, toml_handler(config.extract_route()))
    elif config.extract_route().fields:
        raise ConfigError(f"{config.source}: [extract] fields: the default route is already defined elsewhere")
    for spec in config.routes:
        for follow in spec.follow:
            if follow.label not in combined.labels:
                raise ConfigError(
                    f"{config.source}: [[route]] {spec.label or '(default)'}: follow: no route for label"
                    f" {follow.label!r} (routes: {', '.join(repr(k) for k in combined.labels)})"
                )
    return combined


async def run_route(
    router: Router,
    gate: SessionGate,
    tab: cdp.Tab,
    request: Request,
    env: PageEnv,
    live_contexts: set[str],
) -> Page:
    """One job's page work: the session hook if the tab's context is new, then the
    navigation to ``request.url`` and the route's handler, with the ``[session]
    retire_if`` check before the handler and again after it (SessionRetired: nothing
    of a challenge page is stored).  Returns the Page, whose
    ``items``, ``links`` and ``status`` are the job's output (to be committed with its
    outcome).  Raises whatever the hook or the handler raised (PageFailure, cdp
    errors, the user's own exceptions); if cancelled, the tab is mid-navigation."""
    handler = router.handler(request.label)
    render = router.render(request.label)
    try:
        await gate.ensure(tab, live_contexts, lambda: open_page(tab, request, env, render=render))
        async with open_page(tab, request, env, render=render) as page:
            await page.goto(request.url)
            await page.check_blocked()  # a challenge page is not for the handler
            try:
                await handler(page)
            except SessionRetired:
                raise
            except Exception:
                if page.retired is not None:  # the handler retired the session, then caught it
                    raise SessionRetired(page.retired) from None
                raise
            if page.retired is not None:
                raise SessionRetired(page.retired)
            await page.check_blocked()  # a challenge that came after the document: its items are not stored
    except SessionRetired as exc:
        await gate.retired(tab.context.id, exc.detail)  # its saved state goes with it
        raise
    return page


async def run_http_route(
    router: Router,
    gate: SessionGate,
    tab: cdp.Tab | None,
    session_id: str,
    request: Request,
    env: PageEnv,
    live_contexts: set[str],
) -> HttpPage:
    """One job's work over HTTP: the session hook if the tab's context is new (with a
    browser, the job's tab lends it its context: its cookies and session), one request
    for ``request.url`` in the session (:meth:`crawler.http.client.HttpClient.fetch`),
    its status and content type checked as a navigation's would be, the ``[session]
    retire_if`` check, then the route's handler on an
    :class:`~crawler.page.http.HttpPage`.  Returns the page, whose ``items`` and
    ``links`` are the job's output.  Raises as :func:`run_route` does, and
    PageFailure ``content_type`` for a body that is not HTML on an HTML route."""
    sessions = env.sessions
    assert sessions is not None, "an HTTP job runs in a session"
    if tab is not None:
        render = router.render(request.label)
        try:
            await gate.ensure(tab, live_contexts, lambda: open_page(tab, request, env, render=render))
            return await _http_job(router, session_id, request, env, ContextCookies(tab))
        except SessionRetired as exc:
            await gate.retired(tab.context.id, exc.detail)  # its saved state goes with it
            raise
    return await _http_job(router, session_id, request, env, sessions.jar(session_id))


async def _http_job(router: Router, session_id: str, request: Request, env: PageEnv, cookies: Cookies) -> HttpPage:
    """:func:`run_http_route` once its session is ready: the request, its checks, the handler."""
    handler = router.handler(request.label)
    sessions = env.sessions
    assert sessions is not None, "an HTTP job runs in a session"
    wants_json = router.content(request.label) == "json"
    url = await env.url_rules.check(request.url)
    async with sessions.http_client(session_id) as client:
        response = await client.fetch(
            url,
            cookies=cookies,
            pace=env.limiter,
            rules=env.url_rules,
            headers={"accept": ANY_ACCEPT if wants_json else HTML_ACCEPT},
            on_request=sessions.request_counter(session_id),
        )
    if response.status in env.retire_on_status:
        raise SessionRetired(f"status_{response.status}")
    response.raise_for_status()
    if not wants_json and response.content_type not in (*HTML_TYPES, ""):
        raise PageFailure(
            "content_type",
            f'{response.content_type}, not HTML (a route for an API says content = "json")',
        )
    page = HttpPage(request, env, session_id, response, cookies)
    page.check_blocked()
    try:
        await handler(page)  # type: ignore[arg-type]
    except SessionRetired:
        raise
    except Exception:
        if page.retired is not None:
            raise SessionRetired(page.retired) from None
        raise
    if page.retired is not None:
        raise SessionRetired(page.retired)
    return page
