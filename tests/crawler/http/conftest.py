"""Fixtures of the HTTP path's tests: the static shop on 127.0.0.1."""

from __future__ import annotations

import pytest

from tests.crawler.http.static_shop import StaticShop, start_static_shop


@pytest.fixture
async def static_shop(nursery) -> StaticShop:
    """A StaticShop served on 127.0.0.1; ``static_shop.base`` is its URL."""
    shop = StaticShop()
    shop.base = await start_static_shop(nursery, shop)
    return shop
