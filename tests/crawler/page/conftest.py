"""Fixtures of the page tests: the test process's one Chromium, and the two test sites."""

from __future__ import annotations

import pytest

from tests.crawler.page.pages import start_sites


@pytest.fixture
async def browser(shared_browser):
    """The test process's one Chromium: every test here works in a context of its own."""
    return shared_browser


@pytest.fixture
async def sites(nursery):
    """The test pages on two sites (see ``pages.start_sites``)."""
    return await start_sites(nursery)
