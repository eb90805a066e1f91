"""The public surface of ``import crawler``: small, sorted, and every name is there."""

from __future__ import annotations

import inspect

import cdp
import crawler

CONTRACT = {
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
}


def test_all_is_sorted_and_holds_exactly_the_public_names():
    assert crawler.__all__ == sorted(crawler.__all__)
    assert set(crawler.__all__) == CONTRACT
    assert all(hasattr(crawler, name) for name in crawler.__all__)


def test_the_contracts_signatures_hold():
    """The names and parameters issue 9 made binding (users' handlers depend on them)."""
    page = crawler.Page
    assert {"url", "label", "data", "depth"} <= {n for n, _ in inspect.getmembers(page)}
    params = {
        name: list(inspect.signature(member).parameters)
        for name, member in inspect.getmembers(page, inspect.isfunction)
        if not name.startswith("_")
    }
    assert params["goto"] == ["self", "url"]
    assert params["wait_for"] == ["self", "selector", "timeout_s"]
    assert params["evaluate"] == ["self", "expression", "await_promise"]
    assert params["extract_all"] == ["self", "selector", "fields"]
    assert params["click_if_present"] == ["self", "selector"] and params["fill"] == ["self", "selector", "text"]
    assert params["scroll_to_end"] == ["self", "max_rounds", "settle_s", "within"]
    assert params["enqueue"] == ["self", "urls", "selector", "label", "data"]
    assert params["push"] == ["self", "item"] and params["responses"] == ["self", "url_contains", "wait_s"]
    # wait_s (issue 11: a required capture is waited for) is keyword-only: positional calls are unchanged
    assert inspect.signature(page.responses).parameters["wait_s"].kind is inspect.Parameter.KEYWORD_ONLY
    assert {"wait_for_idle", "extract", "click", "html", "screenshot"} <= set(params)
    # issue 13: the page's session, and a handler's retirement of it
    assert params["retire_session"] == ["self", "reason"] and isinstance(page.session, property)
    assert [f.name for f in crawler.Session.__attrs_attrs__] == ["id", "proxy", "context_id"]
    assert issubclass(crawler.SessionRetired, crawler.PageFailure)
    assert list(inspect.signature(crawler.crawl).parameters)[:2] == ["config", "router"]
    assert inspect.signature(crawler.PageFailure).parameters["retryable"].kind is inspect.Parameter.KEYWORD_ONLY
    # issue 24: frames, widgets, scrolling as a reader, an idle that ends; a Frame reads and acts as a page does
    assert params["frame"] == ["self", "selector", "timeout_s"]
    assert params["select_option"] == ["self", "selector", "value", "label"]
    assert params["hover"] == ["self", "selector"] and params["press"] == ["self", "selector", "key"]
    assert params["scroll_into_view"] == ["self", "selector", "within"]
    assert params["wait_for_idle"] == ["self", "idle_s", "timeout_s"]
    for keyword in ("timeout_s", "label", "within"):
        kinds = [
            inspect.signature(m).parameters[keyword].kind
            for n, m in inspect.getmembers(page)
            if n in params
            and keyword in inspect.signature(m).parameters
            and n in ("frame", "select_option", "scroll_to_end")
        ]
        assert set(kinds) <= {inspect.Parameter.KEYWORD_ONLY}
    frame_methods = {n for n, _ in inspect.getmembers(crawler.Frame, inspect.isfunction) if not n.startswith("_")}
    assert {
        "wait_for", "extract", "extract_all", "evaluate", "html", "click", "click_if_present", "fill",
        "select_option", "hover", "press", "scroll_to_end", "scroll_into_view", "frame",
    } <= frame_methods  # fmt: skip
    assert "render" in inspect.signature(crawler.Router.route).parameters


def test_the_http_paths_contract_holds():
    """Issue 25's binding names: ``fetch`` on routes, ``page.fetch`` on both pages, and
    the HTTP page's handler API."""
    route = inspect.signature(crawler.Router.route).parameters
    assert route["fetch"].kind is inspect.Parameter.KEYWORD_ONLY and route["fetch"].default is None
    for page in (crawler.Page, crawler.HttpPage):
        fetch = inspect.signature(page.fetch).parameters
        assert list(fetch) == ["self", "url", "method", "json", "headers"]
        assert fetch["method"].default == "GET" and fetch["method"].kind is inspect.Parameter.KEYWORD_ONLY
    members = {n for n, _ in inspect.getmembers(crawler.HttpPage)}
    assert {
        "url", "label", "data", "depth", "status", "headers", "extract", "extract_all", "html", "json",
        "enqueue", "push", "retire_session", "fetch", "session",
    } <= members  # fmt: skip
    assert {"json", "text", "status", "headers", "url", "raise_for_status"} <= {
        n for n, _ in inspect.getmembers(crawler.Response)
    }
    assert issubclass(crawler.BrowserOnly, crawler.PageFailure)


def test_a_router_refuses_a_label_twice_and_a_handler_that_is_not_async():
    router = crawler.Router()

    @router.route("product")
    async def product(page):
        pass

    try:
        router.add("product", product)
    except ValueError as exc:
        assert "defined twice" in str(exc)
    else:
        raise AssertionError("a second route for one label was accepted")
    try:
        router.route()(lambda page: None)
    except TypeError as exc:
        assert "async function" in str(exc)
    else:
        raise AssertionError("a sync handler was accepted")


def test_cdp_all_is_sorted_and_every_name_is_there():
    """``cdp.__all__`` is sorted (isort-style: constants, classes, functions) and every name
    resolves; the transport seam and the sandbox decision are public, and there is no
    subreaper helper: launching never changes how the host reaps."""
    import cdp

    assert cdp.__all__ == sorted(cdp.__all__, key=lambda n: (not n.isupper(), not n[0].isupper(), n))
    assert all(hasattr(cdp, name) for name in cdp.__all__)
    assert {"Transport", "TransportClosed", "open_pipe_connection", "SandboxHost", "no_sandbox_reason"} <= set(
        cdp.__all__
    )
    assert "become_child_subreaper" not in cdp.__all__ and not hasattr(cdp, "become_child_subreaper")


def test_cdp_exports_only_cdp_and_no_trio_helpers():
    """The crawler has its own trio helpers (``crawler._trio``); ``cdp`` exports none."""
    for name in ("open_service_nursery", "unwrapped_exception_groups"):
        assert name not in cdp.__all__ and not hasattr(cdp, name)


def test_the_version_is_written_once_and_the_installed_metadata_agrees():
    from importlib.metadata import version

    assert crawler.__version__ == version("trio-cdp-crawler")
