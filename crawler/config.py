"""Crawl configuration: TOML validated into frozen attrs sections.

Precedence: defaults (here, in the field definitions) < the TOML file < command-line
options (applied by the CLI with :func:`override`).  Every error is one line that names
the file, the key and what was expected; unknown keys are errors, never ignored.

Paths inside the file (``url_file``, ``ids_file``) are relative to the file's folder;
``[output] db`` is relative to the working directory, like ``--db``.
"""

from __future__ import annotations

import json
import re
import tomllib
from collections.abc import Callable
from pathlib import Path
from typing import Any

import attrs

from .fields import Field, FieldError, check_selector, parse_fields
from .identity import IdentityError, Proxy, load_cookies, parse_headers, parse_proxy
from .urls import normalise_url, short_url

CAPTURE_TIMEOUT_S = 30.0  # a required capture not received this long after the page's item is ready: missing_capture
# [store] outage_s: longer than a Redis restart or a failover (a Sentinel or Cluster
# failover takes cluster-node-timeout, 15 s by default, plus an election), short enough
# that a fleet whose Redis is gone for good does not sit holding browsers for long.
OUTAGE_S = 60.0
INPUT_LOOKAHEAD = 1000  # input URLs fed into the frontier ahead of the workers (pending at most about this many)
SNAPSHOT_EVERY = 100  # after the first failure of a reason, one snapshot per this many more failures of it
SESSION_BACKOFF_S = (30.0, 600.0)  # (first, cap) seconds a blocked or failing proxy is benched


class ConfigError(Exception):
    """Bad configuration or input: the message is one line naming file and key."""


class _Bad(Exception):
    """A value failed its check; the loader adds where."""


# -- value checks -----------------------------------------------------------------------


def _int(minimum: int = 0) -> Callable[[Any], int]:
    def check(value: Any) -> int:
        if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
            raise _Bad(f"expected an integer >= {minimum}, got {value!r}")
        return value

    return check


def _float(minimum: float = 0.0, *, positive: bool = False) -> Callable[[Any], float]:
    def check(value: Any) -> float:
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise _Bad(f"expected a number, got {value!r}")
        if value < minimum or (positive and value <= 0):
            raise _Bad(f"expected a number {'>' if positive else '>='} {minimum:g}, got {value!r}")
        return float(value)

    return check


def _str(value: Any) -> str:
    if not isinstance(value, str):
        raise _Bad(f"expected a string, got {value!r}")
    return value


def _bool(value: Any) -> bool:
    if not isinstance(value, bool):
        raise _Bad(f"expected true or false, got {value!r}")
    return value


def _str_list(value: Any) -> tuple[str, ...]:
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise _Bad(f"expected a list of strings, got {value!r}")
    return tuple(value)


def _pair(kind: Callable[[Any], Any]) -> Callable[[Any], tuple[Any, Any]]:
    def check(value: Any) -> tuple[Any, Any]:
        if not isinstance(value, list) or len(value) != 2:
            raise _Bad(f"expected [min, max], got {value!r}")
        low, high = kind(value[0]), kind(value[1])
        if low > high:
            raise _Bad(f"expected [min, max] with min <= max, got {value!r}")
        return (low, high)

    return check


def _choice(*options: str) -> Callable[[Any], str]:
    def check(value: Any) -> str:
        if value not in options:
            raise _Bad(f"expected one of {', '.join(map(repr, options))}, got {value!r}")
        return value

    return check


# [browser] block_resources: the CDP resource types a crawl may refuse to load.  Not
# documents, scripts or XHR/fetch: without them a page shows something else.
BLOCKABLE_RESOURCES = {
    "image": "Image",
    "media": "Media",
    "font": "Font",
    "stylesheet": "Stylesheet",
    "texttrack": "TextTrack",
    "prefetch": "Prefetch",
    "ping": "Ping",
    "manifest": "Manifest",
}


def _resource_types(value: Any) -> tuple[str, ...]:
    kinds = _str_list(value)
    for kind in kinds:
        if kind.lower() not in BLOCKABLE_RESOURCES:
            raise _Bad(f"unknown resource type {kind!r}; choose from {', '.join(BLOCKABLE_RESOURCES)}")
    return tuple(BLOCKABLE_RESOURCES[kind.lower()] for kind in kinds)


def _recycle_every(value: Any) -> int | str:
    if value == "auto":
        return value
    try:
        return _int(1)(value)
    except _Bad:
        raise _Bad(f'expected an integer >= 1 or "auto", got {value!r}') from None


def _proxies(value: Any) -> tuple[Proxy, ...]:
    if not isinstance(value, list):
        raise _Bad(f"expected a list of proxy URLs, got {value!r}")
    try:
        return tuple(parse_proxy(url) for url in value)
    except IdentityError as exc:
        raise _Bad(str(exc)) from None


def _headers(value: Any) -> tuple[tuple[str, str], ...]:
    try:
        return parse_headers(value)
    except IdentityError as exc:
        raise _Bad(str(exc)) from None


def _statuses(value: Any) -> tuple[int, ...]:
    if not isinstance(value, list) or not all(
        isinstance(v, int) and not isinstance(v, bool) and 400 <= v <= 599 for v in value
    ):
        raise _Bad(f"expected a list of HTTP statuses (400-599), got {value!r}")
    return tuple(value)


def _selector(value: Any) -> str:
    text = _str(value)
    if text:
        try:
            check_selector(text)
        except FieldError as exc:
            raise _Bad(str(exc)) from None
    return text


def _field(default: Any, check: Callable[[Any], Any], doc: str) -> Any:
    return attrs.field(default=default, metadata={"check": check, "doc": doc})


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


@attrs.frozen
class SiteSection:
    name: str = _field("site", _str, "name used in logs and metrics")
    handlers: str = _field("", _str, "Python file defining `router` (relative to this file); empty: TOML routes")


@attrs.frozen
class CrawlSection:
    max_depth: int = _field(0, _int(0), "links followed at most this many hops from an [input] URL; 0: no limit")
    same_host: bool = _field(True, _bool, "follow only links to the host of the page they were found on")
    include: tuple[str, ...] = _field((), _str_list, "URL globs a followed link must match (any); empty: all")
    exclude: tuple[str, ...] = _field((), _str_list, "URL globs a followed link must not match")
    max_pages: int = _field(0, _int(0), "the frontier never holds more URLs than this; 0: no limit")
    obey_robots: bool = _field(
        False, _bool, "fetch each host's /robots.txt once and fail the URLs it disallows (reason robots)"
    )
    recrawl_after_s: float = _field(
        0.0,
        _float(),
        "a done URL is due again this long after it was fetched (at the next run's start); 0: never",
    )


@attrs.frozen
class InputSection:
    urls: tuple[str, ...] = _field((), _str_list, "URLs to crawl")
    url_file: str = _field("", _str, "file with one URL per line (streamed)")
    url_template: str = _field("", _str, "URL with {id}, filled from ids / ids_file")
    ids: str = _field("", _str, 'a range "a-b" of integer ids')
    ids_file: str = _field("", _str, "file with one id per line")
    lookahead: int = _field(
        INPUT_LOOKAHEAD, _int(1), "input URLs fed into the frontier ahead of the workers (the rest stream in)"
    )
    sitemaps: tuple[str, ...] = _field((), _str_list, "sitemap or sitemap index URLs (XML, gzipped or not), streamed")
    sitemap_include: tuple[str, ...] = _field((), _str_list, "URL globs a sitemap's URL must match (any); empty: all")


@attrs.frozen
class BrowserSection:
    cdp_url: str = _field("", _str, "empty: launch Chromium; else attach (http://host:9222 or ws://...)")
    executable: str = _field("", _str, "path to Chromium; empty: CHROME_PATH, then PATH")
    args: tuple[str, ...] = _field((), _str_list, "extra Chromium flags, appended to the defaults")
    headless: bool = _field(True, _bool, "run without a window")
    block_urls: tuple[str, ...] = _field(
        (), _str_list, "URL patterns never loaded (Network.setBlockedURLs), e.g. *.png"
    )
    block_resources: tuple[str, ...] = _field(
        (),
        _resource_types,
        'resource types never loaded, e.g. ["image", "media", "font"] (stylesheet too, if no selector needs layout)',
    )
    command_timeout_s: float = _field(30.0, _float(positive=True), "deadline of one CDP command")
    connect_timeout_s: float = _field(
        4.0,
        _float(positive=True),
        "per attempt to reach cdp_url; if the first fails the crawl stops (exit 2), later ones are retried",
    )
    restart_limit: int = _field(5, _int(0), "browser restarts in a row without a finished page before the crawl aborts")
    max_resource_buffer_mb: int = _field(
        8, _int(1), "largest response body the browser keeps for captures (Network.enable maxResourceBufferSize)"
    )
    max_total_buffer_mb: int = _field(
        32, _int(1), "response bodies the browser keeps per tab (Network.enable maxTotalBufferSize)"
    )


@attrs.frozen
class PoolSection:
    concurrency: int = _field(4, _int(1), "tabs working at once")
    recycle_tab_every: int | str = _field(
        10, _recycle_every, 'pages per tab before it is closed and replaced, or "auto"'
    )
    rotate_context_every: int = _field(
        50, _int(1), "pages per browser context (shared out among its tabs) before it is disposed and replaced"
    )
    memory_budget_mb: int = _field(0, _int(0), "PSS budget of the browser tree; 0: no budget")
    tab_close_timeout_s: float = _field(5.0, _float(positive=True), "bound on closing one tab")
    context_dispose_timeout_s: float = _field(10.0, _float(positive=True), "bound on disposing one context")


@attrs.frozen
class WatchdogSection:
    timeout_s: float = _field(300.0, _float(positive=True), "per page, from lease to extracted item")
    jitter_s: float = _field(30.0, _float(0), "each job's deadline gets uniform 0..jitter_s added")


@attrs.frozen
class RateLimitSection:
    wait_ms: tuple[int, int] = _field((0, 0), _pair(_int(0)), "per host: uniform random gap between request starts")


@attrs.frozen
class RetrySection:
    max_attempts: int = _field(3, _int(1), "attempts per URL before it is failed")
    backoff_s: tuple[float, float] = _field(
        (1.0, 60.0), _pair(_float(0)), "[base, cap] of exponential backoff with full jitter"
    )


@attrs.frozen
class ExtractSection:
    wait_for: str = _field("", _str, "CSS selector that must appear before extraction; empty: the load event")
    fields: tuple[Field, ...] = _field((), lambda v: v, "field name -> selector, {css, attr}, {js} or {css, all}")
    capture: tuple[CaptureRule, ...] = _field((), lambda v: v, "network responses whose JSON body is kept")
    poll_interval_s: float = _field(0.05, _float(positive=True), "how often wait_for is checked")


@attrs.frozen
class OutputSection:
    db: str = _field("crawl.db", _str, "SQLite database of frontier and items (relative to the working directory)")


@attrs.frozen
class MonitorSection:
    progress_interval_s: float = _field(5.0, _float(positive=True), "log line interval when output is not a terminal")
    memory_interval_s: float = _field(60.0, _float(positive=True), "memory log line interval")
    sample_interval_s: float = _field(2.0, _float(positive=True), "PSS sampling interval")
    invariant_interval_s: float = _field(
        10.0, _float(positive=True), "how often leases are compared with the browser's targets"
    )
    metrics_port: int = _field(0, _int(0), "Prometheus endpoint on 127.0.0.1; 0: off")
    metrics_host: str = _field("127.0.0.1", _str, "address of the metrics endpoint")
    heartbeat_file: str = _field("", _str, "file whose mtime is touched while the crawler is alive")


@attrs.frozen
class DebugSection:
    snapshots_dir: str = _field(
        "", _str, "folder for failure snapshots (PNG, HTML, JSON), relative to the working directory; empty: none"
    )
    snapshot_every: int = _field(
        SNAPSHOT_EVERY, _int(1), "a snapshot at the first failure of each reason, then every this many of it"
    )


@attrs.frozen
class StoreSection:
    backend: str = _field("sqlite", _choice("sqlite", "redis"), "where frontier and items live")
    url: str = _field("", _str, "redis://host:port/db for the redis backend")
    lease_s: float = _field(60.0, _float(positive=True), "redis: how long a claimed URL stays held without renewal")
    outage_s: float = _field(
        OUTAGE_S, _float(positive=True), "redis: how long workers wait out an unreachable Redis before the crawl ends"
    )
    cluster: bool = _field(False, _bool, "redis: url is a startup node of a Redis Cluster")
    crawl: str = _field(
        "", _str, "redis: the crawl all workers share (key prefix); default: site name + hash of the config's path"
    )


@attrs.frozen
class SessionSection:
    proxies: tuple[Proxy, ...] = _field(
        (), _proxies, "proxy URLs (scheme://[user:pass@]host:port), one per browser context in turn; empty: direct"
    )
    user_agent: str = _field("", _str, 'empty: Chromium\'s own, minus "HeadlessChrome"')
    locale: str = _field("", _str, "e.g. ko-KR (Intl, navigator.language, Accept-Language); empty: the browser's")
    timezone: str = _field("", _str, "IANA name, e.g. Asia/Seoul; empty: the machine's")
    headers: tuple[tuple[str, str], ...] = _field((), _headers, "extra HTTP headers sent with every request")
    cookies_file: str = _field(
        "", _str, "cookies loaded into every new context: devtools JSON export or Netscape cookies.txt"
    )
    retire_on_status: tuple[int, ...] = _field(
        (), _statuses, "a main document with one of these statuses retires the session (e.g. [403, 429])"
    )
    retire_if: str = _field("", _selector, "CSS selector of a challenge page: a match retires the session")
    max_pages_per_session: int = _field(0, _int(0), "pages per session (context); 0: only rotate_context_every")
    backoff_s: tuple[float, float] = _field(
        SESSION_BACKOFF_S, _pair(_float(0)), "[first, cap] a blocked or failing proxy is left out, doubling"
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
}


# -- loading ------------------------------------------------------------------------------


def load(path: str | Path) -> Config:
    """Read and validate a TOML file. Raises ConfigError (one line) on any problem."""
    path = Path(path)
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ConfigError(f"{path}: no such file") from None
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read: {exc.strerror or exc}") from None
    except UnicodeDecodeError:
        raise ConfigError(f"{path}: not UTF-8 text") from None
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{path}: invalid TOML: {exc}") from None
    return from_dict(data, source=str(path), base_dir=str(path.parent))


def from_dict(data: dict[str, Any], *, source: str = "<config>", base_dir: str = ".") -> Config:
    sections: dict[str, Any] = {}
    for name, table in data.items():
        if name == "route":
            sections["routes"] = _routes(table, source)
            continue
        cls = SECTIONS.get(name)
        if cls is None:
            raise ConfigError(f"{source}: unknown section [{name}] (known: {', '.join(SECTIONS)}, [[route]])")
        if not isinstance(table, dict):
            raise ConfigError(f"{source}: [{name}] must be a table, got {table!r}")
        if name == "extract":
            sections[name] = _extract_section(table, source)
        else:
            sections[name] = _section(cls, name, table, source)
    config = Config(source=source, base_dir=base_dir, **sections)
    validate(config)
    if config.session.cookies_file:
        try:
            cookies = load_cookies(config.path(config.session.cookies_file))
        except IdentityError as exc:
            raise ConfigError(f"{source}: [session] cookies_file: {exc}") from None
        config = attrs.evolve(config, cookies=cookies)
    return config


def to_toml(data: dict[str, Any]) -> str:
    """The TOML text of a config in the form :func:`from_dict` takes (sections of scalars,
    lists and inline tables; a dict is a subtable, a list of dicts an array of tables),
    for tools that write site files (the benchmarks, the tests)."""
    lines: list[str] = []
    for section, table in data.items():
        arrays = {k: v for k, v in table.items() if isinstance(v, list) and v and isinstance(v[0], dict)}
        subtables = {k: v for k, v in table.items() if isinstance(v, dict)}
        lines.append(f"[{section}]")
        lines += [f"{k} = {_toml_value(v)}" for k, v in table.items() if k not in arrays and k not in subtables]
        for key, value in subtables.items():
            lines.append(f"[{section}.{key}]")
            lines += [f"{k} = {_toml_value(v)}" for k, v in value.items()]
        for key, rows in arrays.items():
            for row in rows:
                lines.append(f"[[{section}.{key}]]")
                lines += [f"{k} = {_toml_value(v)}" for k, v in row.items()]
    return "\n".join(lines) + "\n"


def _toml_value(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (int, float)):
        return repr(value)
    if isinstance(value, str):
        return json.dumps(value)  # a JSON string is a valid TOML basic string
    if isinstance(value, (list, tuple)):
        return "[" + ", ".join(_toml_value(v) for v in value) + "]"
    if isinstance(value, dict):
        return "{" + ", ".join(f"{k} = {_toml_value(v)}" for k, v in value.items()) + "}"
    raise TypeError(f"no TOML for {value!r}")


def _section(cls: type, name: str, table: dict[str, Any], source: str) -> Any:
    known = {f.name: f for f in attrs.fields(cls)}
    values = {}
    for key, value in table.items():
        field = known.get(key)
        if field is None:
            raise ConfigError(f"{source}: [{name}] unknown key {key!r} (known: {', '.join(known)})")
        try:
            values[key] = field.metadata["check"](value)
        except _Bad as exc:
            raise ConfigError(f"{source}: [{name}] {key}: {exc}") from None
    return cls(**values)


def _extract_section(table: dict[str, Any], source: str) -> ExtractSection:
    table = dict(table)
    fields_table = table.pop("fields", {})
    capture_list = table.pop("capture", [])
    base = _section(ExtractSection, "extract", table, source)
    if base.wait_for:
        try:
            check_selector(base.wait_for, where=f"{source}: [extract] wait_for")
        except FieldError as exc:
            raise ConfigError(str(exc)) from None
    if not isinstance(fields_table, dict):
        raise ConfigError(f"{source}: [extract.fields] must be a table of field = selector")
    fields = _parse_fields(fields_table, f"{source}: [extract.fields]") if fields_table else ()
    captures = _captures(capture_list, f"{source}: [[extract.capture]]")
    names = [f.name for f in fields] + [c.name for c in captures]
    reserved = {"url", "status"} & set(names)
    if reserved:
        raise ConfigError(
            f"{source}: [extract] field name {sorted(reserved)[0]!r} is reserved (url and status are always recorded)"
        )
    dupes = {n for n in names if names.count(n) > 1}
    if dupes:
        raise ConfigError(
            f"{source}: [extract] name {sorted(dupes)[0]!r} is used twice (fields and captures share names)"
        )
    return attrs.evolve(base, fields=tuple(fields), capture=tuple(captures))


def _parse_fields(table: Any, where: str) -> tuple[Field, ...]:
    if not isinstance(table, dict):
        raise ConfigError(f"{where}: must be a table of field = selector")
    try:
        return parse_fields(table, where=where)
    except FieldError as exc:
        raise ConfigError(str(exc)) from None


def _captures(rules: Any, where: str) -> tuple[CaptureRule, ...]:
    if not isinstance(rules, list):
        raise ConfigError(f"{where}: must be an array of tables")
    captures = []
    for i, rule in enumerate(rules):
        at = f"{where} #{i + 1}"
        if not isinstance(rule, dict):
            raise ConfigError(f"{at}: expected a table with name and url_contains")
        known = ("name", "url_contains", "all", "required", "timeout_s")
        unknown = set(rule) - set(known)
        if unknown:
            raise ConfigError(f"{at}: unknown key {sorted(unknown)[0]!r} (known: {', '.join(known)})")
        for key in ("name", "url_contains"):
            if not isinstance(rule.get(key), str) or not rule[key]:
                raise ConfigError(f"{at}: {key}: expected a non-empty string")
        try:
            flags = {key: _bool(rule[key]) for key in ("all", "required") if key in rule}
            timeout_s = _float(positive=True)(rule.get("timeout_s", CAPTURE_TIMEOUT_S))
        except _Bad as exc:
            raise ConfigError(f"{at}: {exc}") from None
        captures.append(CaptureRule(rule["name"], rule["url_contains"], timeout_s=timeout_s, **flags))
    return tuple(captures)


ROUTE_KEYS = (
    "label", "wait_for", "fields", "capture", "items", "follow", "scroll", "click_until_gone", "recrawl_after_s",
)  # fmt: skip


def _routes(tables: Any, source: str) -> tuple[RouteSpec, ...]:
    """``[[route]]`` tables (see README, "Routes in TOML")."""
    if not isinstance(tables, list):
        raise ConfigError(f"{source}: [[route]] must be an array of tables")
    routes = []
    for i, table in enumerate(tables):
        if not isinstance(table, dict):
            raise ConfigError(f"{source}: [[route]] #{i + 1}: expected a table")
        where = f"{source}: [[route]] {table.get('label') or '(default)'}"
        unknown = set(table) - set(ROUTE_KEYS)
        if unknown:
            raise ConfigError(f"{where}: unknown key {sorted(unknown)[0]!r} (known: {', '.join(ROUTE_KEYS)})")
        label = table.get("label")
        if label is not None and (not isinstance(label, str) or not label):
            raise ConfigError(f"{where}: label: expected a non-empty string, got {label!r}")
        try:
            wait_for = table.get("wait_for", "")
            if wait_for:
                check_selector(wait_for, where=f"{where}: wait_for")
            click = table.get("click_until_gone", "")
            if click:
                check_selector(click, where=f"{where}: click_until_gone")
        except FieldError as exc:
            raise ConfigError(str(exc)) from None
        if not isinstance(table.get("scroll", False), bool):
            raise ConfigError(f"{where}: scroll: expected true or false")
        recrawl = None
        if "recrawl_after_s" in table:
            try:
                recrawl = _float()(table["recrawl_after_s"])  # as [crawl] recrawl_after_s: seconds >= 0
            except _Bad as exc:
                raise ConfigError(f"{where}: recrawl_after_s: {exc}") from None
        fields = _parse_fields(table["fields"], f"{where}: fields") if "fields" in table else ()
        items = None
        if "items" in table:
            spec = table["items"]
            if not isinstance(spec, dict) or set(spec) != {"selector", "fields"}:
                raise ConfigError(f'{where}: items: expected {{ selector = "...", fields = {{ ... }} }}')
            try:
                selector = check_selector(spec["selector"], where=f"{where}: items.selector")
            except FieldError as exc:
                raise ConfigError(str(exc)) from None
            items = ItemsRule(selector, _parse_fields(spec["fields"], f"{where}: items.fields"))
        follow = []
        for rule in table.get("follow", []):
            if not isinstance(rule, dict) or "selector" not in rule or set(rule) - {"selector", "label"}:
                raise ConfigError(f'{where}: follow: expected {{ selector = "...", label = "..." }}, got {rule!r}')
            try:
                follow.append(FollowRule(check_selector(rule["selector"], where=f"{where}: follow"), rule.get("label")))
            except FieldError as exc:
                raise ConfigError(str(exc)) from None
        routes.append(
            RouteSpec(
                label=label,
                wait_for=wait_for,
                fields=fields,
                capture=_captures(table.get("capture", []), f"{where}: capture"),
                items=items,
                follow=tuple(follow),
                scroll=table.get("scroll", False),
                click_until_gone=click,
                recrawl_after_s=recrawl,
            )
        )
    labels = [r.label for r in routes]
    for label in labels:
        if labels.count(label) > 1:
            raise ConfigError(f"{source}: [[route]] {label or '(default)'}: the route is defined twice")
    return tuple(routes)


def validate(config: Config) -> None:
    """Checks across keys, and that the input files exist. Raises ConfigError."""
    src, inp = config.source, config.input
    if not (inp.urls or inp.url_file or inp.url_template or inp.sitemaps):
        raise ConfigError(
            f"{src}: [input] is empty: give urls, url_file, sitemaps, or url_template with ids / ids_file"
        )
    if inp.sitemap_include and not inp.sitemaps:
        raise ConfigError(f"{src}: [input] sitemap_include needs sitemaps")
    if inp.url_template and not (inp.ids or inp.ids_file):
        raise ConfigError(f"{src}: [input] url_template needs ids or ids_file")
    if (inp.ids or inp.ids_file) and not inp.url_template:
        raise ConfigError(f"{src}: [input] ids / ids_file need url_template")
    if inp.url_template and "{id}" not in inp.url_template:
        raise ConfigError(f"{src}: [input] url_template: expected a URL containing {{id}}, got {inp.url_template!r}")
    if inp.ids:
        parse_id_range(inp.ids, where=f"{src}: [input] ids")
    if inp.url_template:
        check_url(inp.url_template.replace("{id}", "1"), where=f"{src}: [input] url_template")
    for key in ("url_file", "ids_file"):
        name = getattr(inp, key)
        if name:
            path = config.path(name)
            if not path.is_file():
                raise ConfigError(f"{src}: [input] {key}: no readable file {str(path)!r}")
    for url in inp.urls:
        check_url(url, where=f"{src}: [input] urls")
    for url in inp.sitemaps:
        check_url(url, where=f"{src}: [input] sitemaps")
    if config.site.handlers and not config.path(config.site.handlers).is_file():
        raise ConfigError(f"{src}: [site] handlers: no such file {str(config.path(config.site.handlers))!r}")
    if config.browser.max_total_buffer_mb < config.browser.max_resource_buffer_mb:
        raise ConfigError(f"{src}: [browser] max_total_buffer_mb: expected at least max_resource_buffer_mb")
    if config.store.backend == "redis" and not config.store.url.startswith(("redis://", "rediss://", "unix://")):
        raise ConfigError(
            f'{src}: [store] url: expected redis://host:port/db for backend = "redis", got {config.store.url!r}'
        )


def parse_id_range(text: str, *, where: str) -> tuple[int, int]:
    low, sep, high = text.partition("-")
    if not sep or not low.strip().isdigit() or not high.strip().isdigit() or int(low) > int(high):
        raise ConfigError(f'{where}: expected a range "a-b" of integers with a <= b, got {text!r}')
    return int(low), int(high)


_SPACE = re.compile(r"\s")  # what str.isspace() is true of (a URL may hold none)


def check_url(url: str, *, where: str) -> str:
    """The canonical form of an input URL (see :func:`crawler.urls.normalise_url`), or
    ConfigError naming ``where`` (the source: a key, or a file and line) and the URL,
    cut short.  The one check of every input source: only http(s) URLs with a host, in
    any case (``HTTP://`` is ``http://``); ``file:``, ``chrome:``, ``javascript:``,
    ``data:`` and the rest are refused."""
    normal = normalise_url(url) if isinstance(url, str) and not _SPACE.search(url.strip()) else None
    if normal is None:
        raise ConfigError(f"{where}: expected an http(s) URL, got {short_url(url)!r}")
    return normal


def override(config: Config, **changes: Any) -> Config:
    """Apply command-line options (``section__key=value``; None means not given)."""
    for dotted, value in changes.items():
        if value is None:
            continue
        section, key = dotted.split("__")
        config = attrs.evolve(config, **{section: attrs.evolve(getattr(config, section), **{key: value})})
    validate(config)
    return config
