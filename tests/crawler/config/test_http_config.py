"""The HTTP path's configuration: ``fetch`` and ``content`` checked, and a route that
fetches over HTTP refused at load if it asks for what only a browser can do: one line
naming the file, the route and the key."""

from __future__ import annotations

import pytest

import crawler
from crawler import config as config_mod
from crawler.errors import ConfigError


def load(routes, **sections):
    data = {"input": {"urls": ["http://127.0.0.1:1/"]}, "route": routes, **sections}
    return config_mod.from_dict(data, source="site.toml")


@pytest.mark.parametrize(
    ("routes", "sections", "message"),
    [
        (
            [{"label": "p", "fetch": "curl"}],
            {},
            "site.toml: [[route]] p: fetch: expected one of 'browser', 'http', 'auto', got 'curl'",
        ),
        (
            [{"label": "p", "content": "xml"}],
            {},
            "site.toml: [[route]] p: content: expected one of 'html', 'json', got 'xml'",
        ),
        (
            [{"label": "p", "fetch": "http", "fields": {"t": {"js": "document.title"}}}],
            {},
            "site.toml: [[route]] p: field 't' is JavaScript, and the route fetches over HTTP: use css (and attr),"
            ' or set fetch = "browser"',
        ),
        (
            [{"label": "p", "items": {"selector": "li", "fields": {"id": {"js": "el.id"}}}}],
            {"crawl": {"fetch": "http"}},
            "site.toml: [[route]] p: field 'id' is JavaScript",
        ),
        (
            [{"label": "p", "fetch": "http", "scroll": True}],
            {},
            'site.toml: [[route]] p: scroll needs a browser, and the route fetches over HTTP: set fetch = "browser"',
        ),
        (
            [{"label": "p", "fetch": "http", "capture": [{"name": "api", "url_contains": "/api/"}]}],
            {},
            "site.toml: [[route]] p: capture needs a browser",
        ),
        ([], {"crawl": {"fetch": "sometimes"}}, "site.toml: [crawl] fetch"),
        (
            [],
            {"crawl": {"fetch": "http"}, "extract": {"fields": {"t": {"js": "1"}}}},
            "site.toml: [extract]: field 't'",
        ),
    ],
)
def test_bad_http_settings_get_one_line_naming_the_route_and_key(routes, sections, message):
    with pytest.raises(ConfigError) as caught:
        load(routes, **sections)
    assert str(caught.value).startswith(message), str(caught.value)
    assert "\n" not in str(caught.value)


def test_a_browser_route_in_an_http_crawl_keeps_its_browser_keys():
    """``[crawl] fetch = "http"`` is the default; a route that says "browser" may scroll."""
    cfg = load([{"label": "p", "fetch": "browser", "scroll": True}], crawl={"fetch": "http"})
    assert cfg.routes[0].fetch == "browser" and cfg.crawl.fetch == "http"


def test_router_refuses_an_unknown_fetch_or_content():
    router = crawler.Router()

    async def handler(page):
        pass

    with pytest.raises(ValueError, match="fetch must be one of 'browser', 'http', 'auto'"):
        router.add("a", handler, fetch="wget")
    with pytest.raises(ValueError, match="content must be one of 'html', 'json'"):
        router.add("b", handler, content="yaml")
    router.add("c", handler, fetch="http", content="json")
    assert (router.fetch("c"), router.content("c"), router.fetch("d", "auto")) == ("http", "json", "auto")
