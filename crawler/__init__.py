"""A trio structured-concurrency crawler that drives headless Chromium over CDP.

The public surface::

    router = crawler.Router()

    @router.route("product")
    async def product(page: crawler.Page) -> None:
        await page.push(await page.extract({"name": "h1"}, wait_for="h1"))

    await crawler.crawl(crawler.load_config("site.toml"), router)   # in a trio program

Handlers run inside their job's watchdog scope; what they push and enqueue is stored
with the job's outcome, in one transaction.  See the README, "Write a crawler in Python".
"""

from .config import Config as Config
from .config import ConfigError as ConfigError
from .config import load as load_config
from .engine import crawl as crawl
from .failure import JavaScriptError as JavaScriptError
from .failure import PageFailure as PageFailure
from .failure import SessionRetired as SessionRetired
from .page import Page as Page
from .router import Router as Router
from .session import Session as Session
from .store import Request as Request

__version__ = "0.2.0"

__all__ = [
    "Config",
    "ConfigError",
    "JavaScriptError",
    "Page",
    "PageFailure",
    "Request",
    "Router",
    "Session",
    "SessionRetired",
    "crawl",
    "load_config",
]
