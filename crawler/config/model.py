"""The crawl configuration's model: frozen attrs sections, every setting with its
default, its check and its meaning, in one place.  Loading a TOML file into it is
:mod:`crawler.config.loader`'s."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import attrs

from crawler.config import checks
from crawler.config.fields import Field
from crawler.config.identity import Proxy

CAPTURE_TIMEOUT_S = 30.0  # a required capture not received this long after the page's item is ready: missing_capture
# [store] outage_s: longer than a Redis restart or a failover (a Sentinel or Cluster
# failover takes cluster-node-timeout, 15 s by default, plus an election), short enough
# that a fleet whose Redis is gone for good does not sit holding browsers for long.
OUTAGE_S = 60.0
INPUT_LOOKAHEAD = 1000  # input URLs fed into the frontier ahead of the workers (pending at most about this many)
SNAPSHOT_EVERY = 100  # after the first failure of a reason, one snapshot per this many more failures of it
HTTP_MAX_BODY_BYTES = 16 * 2**20  # 16 MiB: the largest body read over HTTP, decoded
SESSION_BACKOFF_S = (30.0, 600.0)  # (first, cap) seconds a blocked or failing proxy is benched
# [pool] concurrency = "auto": the bounds it sizes itself within, by default.  It starts
# at the least (low: a site or a machine that cannot take more is not hit by a burst
# first) and doubles while every signal is healthy, so 1 -> 16 takes four steps.
AUTO_MIN_CONCURRENCY = 1
AUTO_MAX_CONCURRENCY = 16


# -- sections -----------------------------------------------------------------------------


@attrs.frozen
class CaptureRule:
    """Keep the JSON body of the first network response whose URL contains
    ``url_contains`` (``all``: a list of the bodies of every such response).

    ``required`` (the default): the job waits for at least one such response, up to
    ``timeout_s`` once the page's fields are read, and fails ``missing_capture: NAME``
    (retried) if none arrives; an item is never stored with the capture silently
    null.  ``required = false``: the responses received by then, else null."""

    name: str
    url_contains: str
    all: bool = False
    required: bool = True
    timeout_s: float = CAPTURE_TIMEOUT_S


@attrs.frozen
class ItemsRule:
    """Many items per page: one per match of ``selector``, fields relative to it."""

    selector: str
    fields: tuple[Field, ...]


@attrs.frozen
class FollowRule:
    """Enqueue the links of ``selector`` for the route ``label`` (None: the default)."""

    selector: str
    label: str | None = None


# How a route's pages render: "visible" (the default) as the visible, focused tab does
# (requestAnimationFrame, IntersectionObserver, lazy images all run); "hidden" as a
# background tab (nothing renders: for pages the user knows are static).
RENDER_MODES = ("visible", "hidden")
# How a route's pages are fetched: "browser" (a tab renders them), "http" (one HTTP
# request, parsed without a browser) or "auto" (the browser until the evidence says
# HTTP gives the same items; see crawler.run.paths).
FETCH_MODES = ("browser", "http", "auto")
# What an HTTP route's pages are: "html" (parsed), or "json" (an API: page.json()).
CONTENT_KINDS = ("html", "json")
# Route keys that only a browser can carry out: a route that fetches over HTTP refuses them.
BROWSER_ONLY_KEYS = ("scroll", "click_until_gone", "hover", "select", "frame", "capture")


@attrs.frozen
class RouteSpec:
    """A route written in TOML (``[[route]]``, or ``[extract]`` as the default route)."""

    label: str | None = None
    wait_for: str = ""
    fields: tuple[Field, ...] = ()
    capture: tuple[CaptureRule, ...] = ()
    items: ItemsRule | None = None
    follow: tuple[FollowRule, ...] = ()
    scroll: bool = False
    click_until_gone: str = ""
    recrawl_after_s: float | None = None  # None: [crawl] recrawl_after_s
    render: str = "visible"  # RENDER_MODES
    frame: tuple[str, ...] = ()  # the frame (then the frame in it...) the route reads
    hover: tuple[str, ...] = ()  # hovered in turn before reading
    select: tuple[tuple[str, str], ...] = ()  # (select selector, option value or label) chosen before reading
    fetch: str | None = None  # FETCH_MODES; None: [crawl] fetch
    content: str = "html"  # CONTENT_KINDS: what an HTTP fetch of it expects


@attrs.frozen
class SiteSection:
    name: str = checks.setting("site", checks.string, "name used in logs and metrics")
    handlers: str = checks.setting(
        "", checks.string, "Python file defining `router` (relative to this file); empty: TOML routes"
    )


@attrs.frozen
class CrawlSection:
    max_depth: int = checks.setting(
        0, checks.integer(0), "links followed at most this many hops from an [input] URL; 0: no limit"
    )
    same_host: bool = checks.setting(
        True, checks.boolean, "follow only links to the host of the page they were found on"
    )
    include: tuple[str, ...] = checks.setting(
        (), checks.strings, "URL globs a followed link must match (any); empty: all"
    )
    exclude: tuple[str, ...] = checks.setting((), checks.strings, "URL globs a followed link must not match")
    max_pages: int = checks.setting(0, checks.integer(0), "the frontier never holds more URLs than this; 0: no limit")
    obey_robots: bool = checks.setting(
        False, checks.boolean, "fetch each host's /robots.txt once and fail the URLs it disallows (reason robots)"
    )
    recrawl_after_s: float = checks.setting(
        0.0,
        checks.number(),
        "a done URL is due again this long after it was fetched (at the next run's start); 0: never",
    )
    fetch: str = checks.setting(
        "browser",
        checks.choice(*FETCH_MODES),
        'how routes without their own fetch key are fetched: "browser", "http" or "auto"',
    )


@attrs.frozen
class InputSection:
    urls: tuple[str, ...] = checks.setting((), checks.strings, "URLs to crawl")
    url_file: str = checks.setting("", checks.string, "file with one URL per line (streamed)")
    url_template: str = checks.setting("", checks.string, "URL with {id}, filled from ids / ids_file")
    ids: str = checks.setting("", checks.string, 'a range "a-b" of integer ids')
    ids_file: str = checks.setting("", checks.string, "file with one id per line")
    lookahead: int = checks.setting(
        INPUT_LOOKAHEAD, checks.integer(1), "input URLs fed into the frontier ahead of the workers (the rest stream in)"
    )
    sitemaps: tuple[str, ...] = checks.setting(
        (), checks.strings, "sitemap or sitemap index URLs (XML, gzipped or not), streamed"
    )
    sitemap_include: tuple[str, ...] = checks.setting(
        (), checks.strings, "URL globs a sitemap's URL must match (any); empty: all"
    )


@attrs.frozen
class BrowserSection:
    cdp_url: str = checks.setting(
        "", checks.string, "empty: launch Chromium; else attach (http://host:9222 or ws://...)"
    )
    executable: str = checks.setting("", checks.string, "path to Chromium; empty: CHROME_PATH, then PATH")
    args: tuple[str, ...] = checks.setting((), checks.strings, "extra Chromium flags, appended to the defaults")
    headless: bool = checks.setting(True, checks.boolean, "run without a window")
    block_urls: tuple[str, ...] = checks.setting(
        (), checks.strings, "URL patterns never loaded (Network.setBlockedURLs), e.g. *.png"
    )
    block_resources: tuple[str, ...] = checks.setting(
        (),
        checks.resource_types,
        'resource types never loaded, e.g. ["image", "media", "font"] (stylesheet too, if no selector needs layout)',
    )
    command_timeout_s: float = checks.setting(30.0, checks.number(positive=True), "deadline of one CDP command")
    connect_timeout_s: float = checks.setting(
        4.0,
        checks.number(positive=True),
        "per attempt to reach cdp_url; if the first fails the crawl stops (exit 2), later ones are retried",
    )
    restart_limit: int = checks.setting(
        5, checks.integer(0), "browser restarts in a row without a finished page before the crawl aborts"
    )
    max_resource_buffer_mb: int = checks.setting(
        8,
        checks.integer(1),
        "largest response body the browser keeps for captures (Network.enable maxResourceBufferSize)",
    )
    max_total_buffer_mb: int = checks.setting(
        32, checks.integer(1), "response bodies the browser keeps per tab (Network.enable maxTotalBufferSize)"
    )


@attrs.frozen
class PoolSection:
    concurrency: int | str = checks.setting(
        4,
        checks.integer_or_auto(1),
        'tabs working at once, or "auto": the pool sizes itself between min_concurrency and max_concurrency',
    )
    min_concurrency: int = checks.setting(
        AUTO_MIN_CONCURRENCY, checks.integer(1), 'concurrency = "auto": where it starts, and the least it goes down to'
    )
    max_concurrency: int = checks.setting(
        AUTO_MAX_CONCURRENCY, checks.integer(1), 'concurrency = "auto": the most it goes up to (workers started)'
    )
    recycle_tab_every: int | str = checks.setting(
        10, checks.recycle_every, 'pages per tab before it is closed and replaced, or "auto"'
    )
    rotate_context_every: int = checks.setting(
        50,
        checks.integer(1),
        "pages per browser context (shared out among its tabs) before it is disposed and replaced",
    )
    memory_budget_mb: int = checks.setting(0, checks.integer(0), "PSS budget of the browser tree; 0: no budget")
    tab_close_timeout_s: float = checks.setting(5.0, checks.number(positive=True), "bound on closing one tab")
    context_dispose_timeout_s: float = checks.setting(
        10.0, checks.number(positive=True), "bound on disposing one context"
    )

    @property
    def auto(self) -> bool:
        """Whether the pool sizes itself (``concurrency = "auto"``)."""
        return self.concurrency == "auto"

    @property
    def most(self) -> int:
        """The most tabs (and workers) that ever work at once: ``max_concurrency`` with
        "auto", else ``concurrency``."""
        return self.max_concurrency if self.auto else int(self.concurrency)


@attrs.frozen
class WatchdogSection:
    timeout_s: float = checks.setting(300.0, checks.number(positive=True), "per page, from lease to extracted item")
    jitter_s: float = checks.setting(30.0, checks.number(0), "each job's deadline gets uniform 0..jitter_s added")


@attrs.frozen
class RateLimitSection:
    wait_ms: tuple[int, int] = checks.setting(
        (0, 0), checks.pair(checks.integer(0)), "per host: uniform random gap between request starts"
    )


@attrs.frozen
class RetrySection:
    max_attempts: int = checks.setting(3, checks.integer(1), "attempts per URL before it is failed")
    backoff_s: tuple[float, float] = checks.setting(
        (1.0, 60.0), checks.pair(checks.number(0)), "[base, cap] of exponential backoff with full jitter"
    )


@attrs.frozen
class ExtractSection:
    wait_for: str = checks.setting(
        "", checks.string, "CSS selector that must appear before extraction; empty: the load event"
    )
    fields: tuple[Field, ...] = checks.setting(
        (), lambda v: v, "field name -> selector, {css, attr}, {js} or {css, all}"
    )
    capture: tuple[CaptureRule, ...] = checks.setting((), lambda v: v, "network responses whose JSON body is kept")
    poll_interval_s: float = checks.setting(0.05, checks.number(positive=True), "how often wait_for is checked")


@attrs.frozen
class HttpSection:
    max_body_bytes: int = checks.setting(
        HTTP_MAX_BODY_BYTES, checks.integer(1024), "largest response body read over HTTP, decoded (16 MiB)"
    )
    timeout_s: float = checks.setting(
        30.0, checks.number(positive=True), "HTTP: deadline of connecting, and of each read or write"
    )
    max_redirects: int = checks.setting(10, checks.integer(0), "HTTP: redirects followed per request")
    http2: bool = checks.setting(True, checks.boolean, "HTTP: speak HTTP/2 where the server offers it (ALPN)")
    forbid_private: bool = checks.setting(
        False,
        checks.boolean,
        "HTTP: refuse hosts that are or resolve to private, loopback or link-local addresses",
    )
    agree_after: int = checks.setting(
        5,
        checks.integer(1),
        'fetch = "auto": pages in a row on which HTTP found what the browser found, before a label runs over HTTP',
    )
    recheck_ratio: float = checks.setting(
        0.1, checks.number(), 'fetch = "auto": share of a label\'s HTTP pages fetched by the browser too, to check'
    )


@attrs.frozen
class OutputSection:
    db: str = checks.setting(
        "crawl.db", checks.string, "SQLite database of frontier and items (relative to the working directory)"
    )


@attrs.frozen
class MonitorSection:
    progress_interval_s: float = checks.setting(
        5.0, checks.number(positive=True), "log line interval when output is not a terminal"
    )
    memory_interval_s: float = checks.setting(60.0, checks.number(positive=True), "memory log line interval")
    sample_interval_s: float = checks.setting(2.0, checks.number(positive=True), "PSS sampling interval")
    invariant_interval_s: float = checks.setting(
        10.0, checks.number(positive=True), "how often leases are compared with the browser's targets"
    )
    metrics_port: int = checks.setting(0, checks.integer(0), "Prometheus endpoint on 127.0.0.1; 0: off")
    metrics_host: str = checks.setting("127.0.0.1", checks.string, "address of the metrics endpoint")
    metrics_token: str = checks.setting(
        "", checks.string, "a bearer token /metrics and / ask for (Authorization: Bearer ...); /healthz needs none"
    )
    metrics_allow_public: bool = checks.setting(
        False, checks.boolean, "serve a non-loopback metrics_host without a metrics_token (it logs a warning)"
    )
    heartbeat_file: str = checks.setting("", checks.string, "file whose mtime is touched while the crawler is alive")


@attrs.frozen
class DebugSection:
    snapshots_dir: str = checks.setting(
        "",
        checks.string,
        "folder for failure snapshots (PNG, HTML, JSON), relative to the working directory; empty: none",
    )
    snapshot_every: int = checks.setting(
        SNAPSHOT_EVERY, checks.integer(1), "a snapshot at the first failure of each reason, then every this many of it"
    )


@attrs.frozen
class StoreSection:
    backend: str = checks.setting("sqlite", checks.choice("sqlite", "redis"), "where frontier and items live")
    url: str = checks.setting("", checks.string, "redis://host:port/db for the redis backend")
    lease_s: float = checks.setting(
        60.0, checks.number(positive=True), "redis: how long a claimed URL stays held without renewal"
    )
    outage_s: float = checks.setting(
        OUTAGE_S,
        checks.number(positive=True),
        "redis: how long workers wait out an unreachable Redis before the crawl ends",
    )
    cluster: bool = checks.setting(False, checks.boolean, "redis: url is a startup node of a Redis Cluster")
    crawl: str = checks.setting(
        "",
        checks.string,
        "redis: the crawl all workers share (key prefix); default: site name + hash of the config's path",
    )


@attrs.frozen
class SessionSection:
    proxies: tuple[Proxy, ...] = checks.setting(
        (),
        checks.proxies,
        "proxy URLs (scheme://[user:pass@]host:port), one per browser context in turn; empty: direct",
    )
    user_agent: str = checks.setting("", checks.string, 'empty: Chromium\'s own, minus "HeadlessChrome"')
    locale: str = checks.setting(
        "", checks.string, "e.g. ko-KR (Intl, navigator.language, Accept-Language); empty: the browser's"
    )
    timezone: str = checks.setting("", checks.string, "IANA name, e.g. Asia/Seoul; empty: the machine's")
    headers: tuple[tuple[str, str], ...] = checks.setting(
        (), checks.headers, "extra HTTP headers sent with every request"
    )
    cookies_file: str = checks.setting(
        "", checks.string, "cookies loaded into every new context: devtools JSON export or Netscape cookies.txt"
    )
    retire_on_status: tuple[int, ...] = checks.setting(
        (), checks.statuses, "a main document with one of these statuses retires the session (e.g. [403, 429])"
    )
    retire_if: str = checks.setting(
        "", checks.selector, "CSS selector of a challenge page: a match retires the session"
    )
    max_pages_per_session: int = checks.setting(
        0, checks.integer(0), "pages per session (context); 0: only rotate_context_every"
    )
    backoff_s: tuple[float, float] = checks.setting(
        SESSION_BACKOFF_S,
        checks.pair(checks.number(0)),
        "[first, cap] a blocked or failing proxy is left out, doubling",
    )
    persist: bool = checks.setting(
        False,
        checks.boolean,
        "save each identity's state (cookies, localStorage) after the session hook, in the crawl's store;"
        " new contexts restore it instead of logging in",
    )
    state_ttl_s: float = checks.setting(
        0.0, checks.number(0), "a saved state this old (from the login that saved it) is not restored; 0: no limit"
    )


@attrs.frozen
class Config:
    source: str
    site: SiteSection = SiteSection()
    crawl: CrawlSection = CrawlSection()
    input: InputSection = InputSection()
    browser: BrowserSection = BrowserSection()
    pool: PoolSection = PoolSection()
    watchdog: WatchdogSection = WatchdogSection()
    rate_limit: RateLimitSection = RateLimitSection()
    retry: RetrySection = RetrySection()
    extract: ExtractSection = ExtractSection()
    output: OutputSection = OutputSection()
    monitor: MonitorSection = MonitorSection()
    store: StoreSection = StoreSection()
    debug: DebugSection = DebugSection()
    session: SessionSection = SessionSection()
    http: HttpSection = HttpSection()
    routes: tuple[RouteSpec, ...] = ()
    base_dir: str = "."
    cookies: tuple[dict[str, Any], ...] = ()  # [session] cookies_file, read at load

    def extract_route(self) -> RouteSpec:
        """``[extract]`` as a route: the default route of a config that defines no other."""
        e = self.extract
        return RouteSpec(wait_for=e.wait_for, fields=e.fields, capture=e.capture)

    def path(self, relative: str) -> Path:
        """A path from the file, resolved against the file's folder."""
        return Path(self.base_dir, relative)


SECTIONS: dict[str, type] = {
    "site": SiteSection,
    "crawl": CrawlSection,
    "input": InputSection,
    "browser": BrowserSection,
    "pool": PoolSection,
    "watchdog": WatchdogSection,
    "rate_limit": RateLimitSection,
    "retry": RetrySection,
    "extract": ExtractSection,
    "output": OutputSection,
    "monitor": MonitorSection,
    "store": StoreSection,
    "debug": DebugSection,
    "session": SessionSection,
    "http": HttpSection,
}
