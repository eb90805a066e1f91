"""crawler.run.paths: which path a job takes (browser, HTTP, or a check of both), and
how an ``auto`` label earns HTTP and loses it; pure bookkeeping, driven here the way
the job runner drives it (``plan``, then ``done`` / ``compare`` / ``needs_browser`` /
``disagree``), on stand-ins for a job's output."""

from __future__ import annotations

import json
import logging
import random
from typing import Any

import attrs
import pytest

from crawler.errors import PageFailure
from crawler.observe.stats import LabelPaths
from crawler.request import Request
from crawler.run.paths import MAX_CHECK_GAP, NEEDS_BROWSER_KINDS, FetchPaths, difference

URL = "http://shop.example/p/1"
MODES = {"list": "browser", "api": "http", "product": "auto", "review": "auto", None: "auto"}


@attrs.define
class Output:
    """What ``difference`` and ``FetchPaths`` read of a job's output (a JobOutput)."""

    items: list[dict[str, Any]] = attrs.Factory(list)
    links: list[Request] = attrs.Factory(list)

    @property
    def requested(self) -> list[tuple[str, str | None, str]]:
        """Every link enqueued, as JobOutput keeps them (here: the new ones are all)."""
        return [(r.url, r.label, json.dumps(r.data, sort_keys=True)) for r in self.links]


ITEM = {"name": "Shoe", "price": "1,000", "tags": ["a", "b"]}
FOUND = Output([ITEM], [Request("http://shop.example/p/2", "product", data={"from": 1})])
SAME = Output([dict(ITEM)], [Request("http://shop.example/p/2", "product", data={"from": 1})])
OTHER = Output([ITEM | {"price": None}], FOUND.links)


def fetch_paths(*, agree_after: int = 3, recheck_ratio: float = 0.0, seed: int = 1) -> FetchPaths:
    return FetchPaths(
        lambda label: MODES[label], agree_after=agree_after, recheck_ratio=recheck_ratio, rng=random.Random(seed)
    )


def run_job(paths: FetchPaths, label: str | None, *, http: Output | None = SAME, browser: Output = FOUND) -> str:
    """One job of ``label`` as the job runner runs it (a check stores the browser's
    output and compares HTTP's): returns its plan."""
    plan = paths.plan(label)
    if plan == "http":
        paths.done(label, "http", http)
        return plan
    paths.done(label, "browser", browser)
    if plan == "check":
        paths.compare(label, URL, browser, http, None)
    return plan


def to_http(paths: FetchPaths, label: str | None = "product") -> None:
    """Agreeing checks of ``label`` until it runs over HTTP."""
    name = "(default)" if label is None else label
    for _ in range(100):
        run_job(paths, label)
        if paths.statistics()[name].path == "http":
            return
    raise AssertionError(f"{name} never went over HTTP")


# -- plan ---------------------------------------------------------------------------------


def test_a_browser_or_http_route_plans_its_own_path_whatever_happens():
    """Only ``auto`` routes are judged: a "browser" or "http" route's plan is its mode,
    disagreements or not."""
    paths = fetch_paths()
    for _ in range(20):
        assert paths.plan("list") == "browser"
        assert paths.plan("api") == "http"
        paths.disagree("list", URL, "whatever")
        paths.disagree("api", URL, "whatever")
    assert paths.plan_mode("list") == "browser" and not paths.is_auto("list")
    assert paths.plan_mode("product") == "auto" and paths.is_auto("product")


def test_an_auto_label_checks_every_page_until_agree_after_agreements_then_runs_over_http(caplog):
    """Rule 1: from the start, every job is a check; ``agree_after`` agreements in a row
    and the label's jobs go over HTTP (no rechecks at ratio 0), with one info line."""
    caplog.set_level(logging.INFO, logger="crawler.run.paths")
    paths = fetch_paths(agree_after=3)
    assert [run_job(paths, "product") for _ in range(8)] == ["check"] * 3 + ["http"] * 5
    stats = paths.statistics()["product"]
    assert stats == LabelPaths(
        fetch="auto",
        path="http",
        pages={"browser": 3, "http": 5},
        checks=3,
        disagreements=0,
        reason="HTTP found what the browser found on 3 pages in a row",
    )
    assert [r.getMessage() for r in caplog.records] == [
        f"route product: fetching over HTTP from now on: {stats.reason}"
    ]


def test_each_label_is_judged_on_its_own_evidence():
    paths = fetch_paths(agree_after=2)
    to_http(paths, "product")
    assert paths.plan("review") == "check"
    assert paths.plan(None) == "check"
    assert paths.plan("product") == "http"


def test_a_disagreement_on_the_browser_restarts_the_count_of_agreements():
    """The agreements must be in a row: agree, disagree, then ``agree_after`` more."""
    paths = fetch_paths(agree_after=2)
    run_job(paths, "product")  # agrees
    run_job(paths, "product", http=OTHER)  # disagrees: gap 1
    plans = [run_job(paths, "product") for _ in range(5)]
    # gap 1: a browser page, then a check that agrees (the gap halves to 0), and a second in a row
    assert plans == ["browser", "check", "check", "http", "http"]
    assert paths.statistics()["product"].path == "http"


@pytest.mark.parametrize(("ratio", "checks"), [(0.0, 0), (1.0, 1000)])
def test_on_http_a_recheck_ratio_of_0_never_checks_and_of_1_always_does(ratio, checks):
    """Rule 2 at its ends (with agreeing checks, so the label stays on HTTP)."""
    paths = fetch_paths(agree_after=1, recheck_ratio=ratio)
    to_http(paths)
    plans = [run_job(paths, "product") for _ in range(1000)]
    assert plans.count("check") == checks
    assert plans.count("http") == 1000 - checks


def test_on_http_a_recheck_ratio_checks_about_that_share_of_jobs():
    """Rule 2: the rechecks are drawn from the rng (seeded: the same run every time)."""
    paths = fetch_paths(agree_after=1, recheck_ratio=0.1, seed=7)
    to_http(paths)
    plans = [run_job(paths, "product") for _ in range(2000)]
    assert 150 <= plans.count("check") <= 250
    assert paths.statistics()["product"].path == "http"


def test_one_disagreement_on_http_sends_the_label_back_to_the_browser_with_a_warning(caplog):
    """Rule 2: the first recheck that differs puts the label on the browser, with one
    warning naming the route, the URL and what differed; the reason is in the figures."""
    caplog.set_level(logging.INFO, logger="crawler.run.paths")
    paths = fetch_paths(agree_after=1, recheck_ratio=1.0)
    to_http(paths)
    caplog.clear()
    assert paths.plan("product") == "check"
    assert paths.compare("product", URL, FOUND, OTHER, None) is False
    assert paths.plan("product") in ("browser", "check")
    stats = paths.statistics()["product"]
    assert stats.path == "browser"
    assert stats.reason == f'{URL}: items differ: price: "1,000" in the browser, null over HTTP'
    warnings = [r for r in caplog.records if r.levelno == logging.WARNING]
    assert [r.getMessage() for r in warnings] == [f"route product: back to the browser: {stats.reason}"]


def test_a_failed_http_check_is_a_disagreement_naming_the_failure(caplog):
    caplog.set_level(logging.WARNING, logger="crawler.run.paths")
    paths = fetch_paths(agree_after=1, recheck_ratio=1.0)
    to_http(paths)
    failure = PageFailure("http_403", "forbidden")
    assert paths.compare("product", URL, FOUND, None, failure) is False
    assert paths.statistics()["product"].reason == f"{URL}: HTTP failed: http_403: forbidden"
    assert "route product: back to the browser" in caplog.records[-1].getMessage()


def test_the_default_route_is_named_default_in_log_lines_and_figures(caplog):
    caplog.set_level(logging.WARNING, logger="crawler.run.paths")
    paths = fetch_paths(agree_after=1)
    to_http(paths, None)
    paths.disagree(None, URL, "HTTP: missing_field: price")
    assert list(paths.statistics()) == ["(default)"]
    assert caplog.records[-1].getMessage() == f"route (default): back to the browser: {URL}: HTTP: missing_field: price"


def test_checks_thin_out_after_each_disagreement_up_to_max_check_gap():
    """Rule 1: a label that keeps disagreeing is checked after 1, 2, 4... browser jobs,
    never fewer than one job in MAX_CHECK_GAP + 1: 9 checks in 200 jobs, not 200."""
    paths = fetch_paths(agree_after=3)
    plans = [run_job(paths, "product", http=OTHER) for _ in range(200)]
    checks_at = [i for i, plan in enumerate(plans) if plan == "check"]
    gaps = [b - a - 1 for a, b in zip(checks_at, checks_at[1:], strict=False)]
    assert gaps == [1, 2, 4, 8, 16, 32, MAX_CHECK_GAP, MAX_CHECK_GAP]
    assert plans.count("http") == 0
    stats = paths.statistics()["product"]
    assert (stats.checks, stats.disagreements, stats.path) == (9, 9, "browser")
    assert stats.pages == {"browser": 200}


# -- needs_browser ------------------------------------------------------------------------


@pytest.mark.parametrize("kind", sorted(NEEDS_BROWSER_KINDS))
def test_an_http_failure_that_a_browser_would_not_have_needs_the_browser(kind):
    """Rule 3: a missing required field, a browser-only step, a wait_for the HTML cannot
    satisfy (and the other NEEDS_BROWSER_KINDS) send the job to the browser, saying why."""
    paths = fetch_paths()
    failure = PageFailure(kind, "detail")
    assert paths.needs_browser("product", None, failure) == f"HTTP: {kind}: detail"


@pytest.mark.parametrize("kind", ["http_404", "net", "timeout", "body_too_large", "selector"])
def test_an_http_failure_of_another_kind_does_not_need_the_browser(kind):
    assert fetch_paths().needs_browser("product", None, PageFailure(kind, "detail")) is None


def test_an_http_page_with_no_item_needs_the_browser_once_the_browser_found_items():
    """Rule 3: no item over HTTP is suspect only for a label whose browser jobs found some."""
    paths = fetch_paths()
    assert paths.needs_browser("product", Output(), None) is None
    paths.done("product", "browser", Output())  # a browser page without items proves nothing
    paths.done("product", "http", FOUND)  # nor do items found over HTTP
    assert paths.needs_browser("product", Output(), None) is None
    paths.done("product", "browser", FOUND)
    assert paths.needs_browser("product", Output(), None) == "HTTP found no item where the browser found some"
    assert paths.needs_browser("product", FOUND, None) is None
    assert paths.needs_browser("review", Output(), None) is None  # another label's evidence


def test_a_route_that_is_not_auto_never_needs_the_browser():
    paths = fetch_paths()
    paths.done("api", "browser", FOUND)
    for label in ("api", "list"):
        assert paths.needs_browser(label, None, PageFailure("missing_field", "price")) is None
        assert paths.needs_browser(label, Output(), None) is None


# -- difference ---------------------------------------------------------------------------


def test_the_same_items_and_links_in_another_order_are_no_difference():
    a, b = {"n": 1, "x": ["p", "q"]}, {"n": 2, "x": []}
    links = [Request("http://h/1", "product", data={"k": 1, "j": 2}), Request("http://h/2")]
    browser = Output([a, b], links)
    http = Output(
        [dict(b), dict(reversed(list(a.items())))],
        [Request("http://h/2"), Request("http://h/1", "product", data={"j": 2, "k": 1})],
    )
    assert difference(browser, http) is None


def test_an_item_field_that_differs_is_named_with_both_values():
    browser = Output([{"name": "Shoe", "price": "1,000"}])
    assert difference(browser, Output([{"name": "Shoe", "price": "1.000"}])) == (
        'items differ: price: "1,000" in the browser, "1.000" over HTTP'
    )
    assert (
        difference(browser, Output([{"name": "Shoe"}])) == 'items differ: price: "1,000" in the browser, null over HTTP'
    )


def test_a_long_value_is_cut_in_the_difference():
    browser = Output([{"text": "x" * 200}])
    why = difference(browser, Output([{"text": "y"}]))
    assert why is not None and len(why) < 160
    assert '"' + "x" * 56 + "..." in why


def test_a_different_number_of_items_is_counted():
    assert difference(Output([{"a": 1}, {"a": 2}]), Output([{"a": 1}])) == "2 items in the browser, 1 over HTTP"


@pytest.mark.parametrize(
    "http_links",
    [
        [Request("http://shop.example/p/3", "product", data={"from": 1})],
        [Request("http://shop.example/p/2", "review", data={"from": 1})],
        [Request("http://shop.example/p/2", "product", data={"from": 2})],
        [],
    ],
    ids=["url", "label", "data", "none"],
)
def test_links_that_differ_in_url_label_or_data_are_a_difference(http_links):
    why = difference(FOUND, Output(FOUND.items, http_links))
    assert why is not None
    assert why.startswith(f"1 links in the browser, {len(http_links)} over HTTP (e.g. http://shop.example/p/")


def test_no_http_page_at_all_is_a_difference():
    assert difference(FOUND, None) == "HTTP gave no page"


def test_a_field_that_differs_in_reordered_items_is_the_one_named():
    browser = Output([{"name": "A", "price": "1"}, {"name": "B", "price": "2"}])
    http = Output([{"name": "B", "price": "2"}, {"name": "A", "price": "9"}])
    assert difference(browser, http) == 'items differ: price: "1" in the browser, "9" over HTTP'


# -- statistics ---------------------------------------------------------------------------


def test_statistics_give_each_label_its_pages_per_path_checks_disagreements_and_reason():
    """Per label seen: the route's mode, the path now, jobs per path, checks,
    disagreements (checks and HTTP jobs sent back) and the last switch's reason."""
    paths = fetch_paths(agree_after=2)
    paths.done("list", "browser", Output())
    paths.done("api", "http", FOUND)
    to_http(paths, "product")  # 2 checks
    run_job(paths, "product")  # over HTTP
    paths.disagree("product", URL, "HTTP: missing_field: price")  # rule 3: the job went to the browser
    paths.done("product", "browser", FOUND)
    run_job(paths, "review", http=OTHER)  # a check that disagrees
    assert paths.statistics() == {
        "list": LabelPaths("browser", "browser", {"browser": 1}, 0, 0, ""),
        "api": LabelPaths("http", "http", {"http": 1}, 0, 0, ""),
        "product": LabelPaths("auto", "browser", {"browser": 3, "http": 1}, 2, 1, f"{URL}: HTTP: missing_field: price"),
        "review": LabelPaths("auto", "browser", {"browser": 1}, 1, 1, ""),
    }


@attrs.define
class Enqueued:
    """A JobOutput's two views of its links: the new ones, and every one it enqueued."""

    items: list[dict[str, Any]]
    links: list[Request]
    requested: list[tuple[str, str | None, str]]


def test_links_another_job_added_between_the_two_fetches_are_no_difference():
    """The browser's fetch found both links new; by the HTTP fetch another job had
    stored one: the pages enqueued the same links, so they agree."""
    both = [("http://h/1", "product", "{}"), ("http://h/2", "product", "{}")]
    browser = Enqueued([ITEM], [Request("http://h/1", "product"), Request("http://h/2", "product")], both)
    http = Enqueued([ITEM], [Request("http://h/2", "product")], both)
    assert difference(browser, http) is None
