"""The browser a crawl's ``[browser]`` section asks for: launched, or reached at ``cdp_url``."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import cdp
from crawler.config import BrowserSection


@asynccontextmanager
async def open_configured_browser(b: BrowserSection) -> AsyncIterator[cdp.Browser]:
    """The browser ``[browser]`` asks for: connect to ``cdp_url``, or launch Chromium.
    On exit the connection is closed (and a launched browser stopped), as
    :func:`cdp.connect` and :func:`cdp.launch` do."""
    if b.cdp_url:
        async with cdp.connect(
            b.cdp_url, timeout_s=b.connect_timeout_s, command_timeout_s=b.command_timeout_s
        ) as browser:
            yield browser
    else:
        async with cdp.launch(
            executable=b.executable or None, headless=b.headless, args=b.args, command_timeout_s=b.command_timeout_s
        ) as browser:
            yield browser
