"""A trio structured-concurrency crawler that drives headless Chromium over CDP.

The public surface::

    router = crawler.Router()

    @router.route("product")
    async def product(page: crawler.Page) -> None:
        await page.push(await page.extract({"name": "h1"}, wait_for="h1"))

    await crawler.crawl(crawler.load_config("site.toml"), router)   # in a trio program

Handlers run inside their job's watchdog scope; what they push and enqueue is stored
with the job's outcome, in one transaction.  See docs/writing-a-crawler.md.

The package, floor by floor (each imports only the floors below it; ``lint-imports``
checks it, see ``[tool.importlinter]`` in pyproject.toml)::

    crawler.cli                       the command line: a thin layer on this surface
    crawler.run      crawler.demo     a crawl composed: router, job, workers, supervisor, engine, try
    crawler.observe  crawler.sources  figures, checks, outputs | where URLs come from
    crawler.page                      one page: what a handler holds (a tab's, or an HTTP response's)
    crawler.browser                   launch, the tab pool, sessions, identity
    crawler.http                      the HTTP path's transport: a client per session, bounded bodies, parsing
    crawler.store                     the frontier and items: contract, SQLite, Redis, exports
    crawler.policy                    failure, retry, rate limit, watchdog, robots.txt
    crawler.config                    the TOML model and its loader
    crawler.errors  crawler.request  crawler.urls  crawler.httpserver  crawler._trio   (leaves)
    cdp                               the CDP client: knows nothing of crawling
"""

from typing import TYPE_CHECKING

# The public names and where they live.  They are imported on first use (PEP 562), so
# that ``python -m crawler`` runs its first line (the signal handlers of
# crawler/__main__.py) before trio, httpx and the rest are loaded: a signal in those
# few hundred milliseconds used to take its default action.
_EXPORTS = {
    "BrowserOnly": ("crawler.page.http", "BrowserOnly"),
    "Config": ("crawler.config", "Config"),
    "ConfigError": ("crawler.errors", "ConfigError"),
    "Frame": ("crawler.page.frames", "Frame"),
    "HttpPage": ("crawler.page.http", "HttpPage"),
    "JavaScriptError": ("crawler.errors", "JavaScriptError"),
    "Page": ("crawler.page.page", "Page"),
    "PageFailure": ("crawler.errors", "PageFailure"),
    "Request": ("crawler.request", "Request"),
    "Response": ("crawler.http.client", "Response"),
    "Router": ("crawler.run.router", "Router"),
    "Session": ("crawler.browser.session", "Session"),
    "SessionRetired": ("crawler.errors", "SessionRetired"),
    "crawl": ("crawler.run.engine", "crawl"),
    "load_config": ("crawler.config", "load"),
}

if TYPE_CHECKING:
    from crawler.browser.session import Session as Session
    from crawler.config import Config as Config
    from crawler.config import load as load_config
    from crawler.errors import ConfigError as ConfigError
    from crawler.errors import JavaScriptError as JavaScriptError
    from crawler.errors import PageFailure as PageFailure
    from crawler.errors import SessionRetired as SessionRetired
    from crawler.http.client import Response as Response
    from crawler.page.frames import Frame as Frame
    from crawler.page.http import BrowserOnly as BrowserOnly
    from crawler.page.http import HttpPage as HttpPage
    from crawler.page.page import Page as Page
    from crawler.request import Request as Request
    from crawler.run.engine import crawl as crawl
    from crawler.run.router import Router as Router


def __getattr__(name: str) -> object:
    try:
        module, attribute = _EXPORTS[name]
    except KeyError:
        raise AttributeError(f"module 'crawler' has no attribute {name!r}") from None
    import importlib

    value = getattr(importlib.import_module(module), attribute)
    globals()[name] = value  # the next lookup is a plain one
    return value


def __dir__() -> list[str]:
    return sorted({*globals(), *_EXPORTS})


__version__ = "0.2.0"  # the one place: pyproject.toml reads it (tool.setuptools.dynamic)

__all__ = [
    "BrowserOnly",
    "Config",
    "ConfigError",
    "Frame",
    "HttpPage",
    "JavaScriptError",
    "Page",
    "PageFailure",
    "Request",
    "Response",
    "Router",
    "Session",
    "SessionRetired",
    "crawl",
    "load_config",
]
