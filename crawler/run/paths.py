"""Which path a job takes, browser or HTTP: the route's ``fetch``, and for ``"auto"``
routes the evidence gathered per label.

Why: a page that is static HTML costs a renderer in the browser and one request over
HTTP; but a page that builds its content with scripts gives HTTP less, silently.  So
an ``auto`` label earns HTTP by showing, page after page, that HTTP finds what the
browser finds, and loses it at the first sign that it does not (Crawlee's
AdaptivePlaywrightCrawler learns the same way; it predicts from a model, we count).

The rules, per label:

1. It starts on the browser.  While it is there, jobs also fetch their page over HTTP
   ("check" jobs) and compare the output: the items pushed, and the links enqueued
   (URL, label, data).  ``agree_after`` agreements in a row, and the label runs over
   HTTP.  After a disagreement the checks thin out (one page in 2, 4... up to
   :data:`MAX_CHECK_GAP`), so a label that needs the browser costs the site few
   extra requests; each agreement halves the gap again.
2. On HTTP, a share ``recheck_ratio`` of its jobs are checks again.  Any disagreement
   sends the label back to the browser, with one log line saying why.
3. An HTTP job that misses a required field, asks for a browser's step, or finds no
   item where the browser found some goes straight to the browser, in the same job
   (no attempt charged), and counts as a disagreement.
4. A check job stores the browser's output: what is stored always comes whole from
   one path, never a mix.

Pure bookkeeping: no I/O, no clock; the job runner asks :meth:`FetchPaths.plan` and
reports back.
"""

from __future__ import annotations

import json
import logging
import random
from collections import Counter
from collections.abc import Callable
from typing import Any

import attrs

from crawler.errors import PageFailure
from crawler.observe.stats import LabelPaths
from crawler.page.output import JobOutput
from crawler.urls import short_url

log = logging.getLogger(__name__)

MAX_CHECK_GAP = 64  # a label that needs the browser is checked over HTTP at least once per this many pages
# How an HTTP job of an auto label says the page needs the browser (rule 3).
NEEDS_BROWSER_KINDS = frozenset({"missing_field", "browser_only", "wait_for", "missing_capture", "content_type"})


@attrs.define(eq=False)
class _Evidence:
    path: str = "browser"
    agreed: int = 0  # agreements in a row
    gap: int = 0  # browser jobs between two checks
    since: int = 0  # browser jobs since the last check
    browser_items: bool = False  # the browser found items for this label
    pages: Counter[str] = attrs.Factory(Counter)
    checks: int = 0
    disagreements: int = 0
    reason: str = ""


class FetchPaths:
    """The path of each job (see the module docstring).  ``mode(label)`` is the route's
    ``fetch``; ``rng`` draws the rechecks."""

    def __init__(
        self,
        mode: Callable[[str | None], str],
        *,
        agree_after: int,
        recheck_ratio: float,
        rng: random.Random,
    ):
        self._mode = mode
        self._agree_after = agree_after
        self._recheck_ratio = recheck_ratio
        self._rng = rng
        self._labels: dict[str | None, _Evidence] = {}

    def _evidence(self, label: str | None) -> _Evidence:
        evidence = self._labels.get(label)
        if evidence is None:
            evidence = self._labels[label] = _Evidence(path="http" if self._mode(label) == "http" else "browser")
        return evidence

    def plan_mode(self, label: str | None) -> str:
        """The route's own mode: "browser", "http" or "auto"."""
        return self._mode(label)

    def is_auto(self, label: str | None) -> bool:
        return self._mode(label) == "auto"

    def plan(self, label: str | None) -> str:
        """The next job of ``label``: "browser", "http", or "check" (the browser's output
        stored, HTTP's compared with it)."""
        mode = self._mode(label)
        if mode != "auto":
            return mode
        evidence = self._evidence(label)
        if evidence.path == "http":
            return "check" if self._rng.random() < self._recheck_ratio else "http"
        if evidence.since >= evidence.gap:
            evidence.since = 0
            return "check"
        evidence.since += 1
        return "browser"

    def done(self, label: str | None, path: str, output: JobOutput | None) -> None:
        """A job of ``label`` ended on ``path`` (with its output, if it succeeded)."""
        evidence = self._evidence(label)
        evidence.pages[path] += 1
        if path == "browser" and output is not None and output.items:
            evidence.browser_items = True

    def needs_browser(self, label: str | None, output: JobOutput | None, failure: PageFailure | None) -> str | None:
        """Why an HTTP job of an auto label must go to the browser (rule 3), or None."""
        if not self.is_auto(label):
            return None
        if failure is not None and failure.kind in NEEDS_BROWSER_KINDS:
            return f"HTTP: {failure.reason}"
        if output is not None and not output.items and self._evidence(label).browser_items:
            return "HTTP found no item where the browser found some"
        return None

    def compare(
        self, label: str | None, url: str, browser: JobOutput, http: JobOutput | None, failure: PageFailure | None
    ) -> bool:
        """Record a check: the browser's output against HTTP's (or HTTP's failure).
        Returns whether they agreed."""
        self._evidence(label).checks += 1
        why = f"HTTP failed: {failure.reason}" if failure is not None else difference(browser, http)
        if why is None:
            self._agree(label)
            return True
        self.disagree(label, url, why)
        return False

    def _agree(self, label: str | None) -> None:
        evidence = self._evidence(label)
        evidence.agreed += 1
        evidence.gap //= 2  # agreeing again: checks come closer together again
        if evidence.path == "browser" and evidence.agreed >= self._agree_after:
            evidence.path = "http"
            evidence.reason = f"HTTP found what the browser found on {evidence.agreed} pages in a row"
            log.info("route %s: fetching over HTTP from now on: %s", _name(label), evidence.reason)

    def disagree(self, label: str | None, url: str, why: str) -> None:
        """HTTP did not give what the browser gives on ``url``: the label goes (or
        stays) on the browser, and is checked less often."""
        evidence = self._evidence(label)
        evidence.disagreements += 1
        evidence.agreed = 0
        evidence.gap = min(MAX_CHECK_GAP, max(1, evidence.gap * 2))
        evidence.since = 0
        if evidence.path == "http":
            evidence.path = "browser"
            evidence.reason = f"{short_url(url)}: {why}"
            log.warning("route %s: back to the browser: %s", _name(label), evidence.reason)
        else:
            log.debug("route %s: HTTP is not enough yet: %s: %s", _name(label), short_url(url), why)

    def statistics(self) -> dict[str, LabelPaths]:
        """Figures by label (the default route as ``(default)``)."""
        return {
            _name(label): LabelPaths(
                fetch=self._mode(label),
                path=e.path,
                pages=dict(e.pages),
                checks=e.checks,
                disagreements=e.disagreements,
                reason=e.reason,
            )
            for label, e in self._labels.items()
        }


def difference(browser: JobOutput, http: JobOutput | None) -> str | None:
    """How HTTP's output differs from the browser's (the first difference found), or
    None if they are the same: the same items (as multisets), the same links."""
    if http is None:
        return "HTTP gave no page"
    ours, theirs = _canonical(browser.items), _canonical(http.items)
    if ours != theirs:
        if len(browser.items) != len(http.items):
            return f"{len(browser.items)} items in the browser, {len(http.items)} over HTTP"
        # Items in one output and not the other, paired in order: the first pair's first field that differs.
        only_ours = [json.loads(text) for text in (ours - theirs).elements()]
        only_theirs = [json.loads(text) for text in (theirs - ours).elements()]
        return f"items differ: {_first_change(only_ours, only_theirs)}"
    # Every link each enqueued, not only those new to the crawl: another job may have
    # added some between the two fetches.
    links_b, links_h = Counter(browser.requested), Counter(http.requested)
    if links_b != links_h:
        only = next(iter((links_b - links_h) or (links_h - links_b)))
        return f"{len(browser.requested)} links in the browser, {len(http.requested)} over HTTP (e.g. {short_url(only[0])})"
    return None


def _canonical(items: list[dict[str, Any]]) -> Counter[str]:
    return Counter(json.dumps(item, sort_keys=True, ensure_ascii=False) for item in items)


def _first_change(browser: list[dict[str, Any]], http: list[dict[str, Any]]) -> str:
    for ours, theirs in zip(browser, http, strict=False):
        for key in sorted(set(ours) | set(theirs)):
            if ours.get(key) != theirs.get(key):
                return f"{key}: {_short(ours.get(key))} in the browser, {_short(theirs.get(key))} over HTTP"
    return "the items differ"


def _short(value: Any) -> str:
    text = json.dumps(value, ensure_ascii=False)
    return text if len(text) <= 60 else text[:57] + "..."


def _name(label: str | None) -> str:
    return label if label is not None else "(default)"
