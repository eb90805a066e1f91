"""Loading a crawl's configuration: TOML validated into the frozen sections of
:mod:`crawler.config.model`.

Precedence: defaults (in the model's field definitions) < the TOML file < command-line
options (applied by the CLI with :func:`override`).  Every error is one line that names
the file, the key and what was expected; unknown keys are errors, never ignored.

Paths inside the file (``url_file``, ``ids_file``) are relative to the file's folder;
``[output] db`` is relative to the working directory, like ``--db``.
"""

from __future__ import annotations

import json
import os
import re
import tomllib
from pathlib import Path
from typing import Any

import attrs

from crawler.config import checks
from crawler.config.fields import Field, FieldError, check_selector, parse_fields
from crawler.config.identity import IdentityError, load_cookies
from crawler.config.model import (
    BROWSER_ONLY_KEYS,
    CAPTURE_TIMEOUT_S,
    CONTENT_KINDS,
    FETCH_MODES,
    RENDER_MODES,
    SECTIONS,
    CaptureRule,
    Config,
    ExtractSection,
    FollowRule,
    ItemsRule,
    PoolSection,
    RouteSpec,
)
from crawler.errors import ConfigError
from crawler.urls import (
    MAX_URL_CHARS,
    REFUSED_QUOTE_CHARS,
    has_credentials,
    is_loopback_host,
    normalise_url,
    redact_url,
    short_url,
    too_long,
)

MAX_CONFIG_BYTES = 4 * 2**20  # a site file larger than this is refused (4 MiB: routes, not data)


def load(path: str | Path) -> Config:
    """Read and validate a TOML file. Raises ConfigError (one line) on any problem."""
    path = Path(path)
    try:
        if path.is_file() and path.stat().st_size > MAX_CONFIG_BYTES:
            raise ConfigError(
                f"{path}: {path.stat().st_size} bytes, over the limit of {MAX_CONFIG_BYTES} for a site file"
            )
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ConfigError(f"{path}: no such file") from None
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read: {exc.strerror or exc}") from None
    except UnicodeDecodeError:
        raise ConfigError(f"{path}: not UTF-8 text") from None
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{path}: invalid TOML: {exc}") from None
    except RecursionError:
        raise ConfigError(f"{path}: invalid TOML: nested too deep") from None
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
    _check_pool_bounds(data.get("pool"), source)
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
        except checks.BadValue as exc:
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
            flags = {key: checks.boolean(rule[key]) for key in ("all", "required") if key in rule}
            timeout_s = checks.number(positive=True)(rule.get("timeout_s", CAPTURE_TIMEOUT_S))
        except checks.BadValue as exc:
            raise ConfigError(f"{at}: {exc}") from None
        captures.append(CaptureRule(rule["name"], rule["url_contains"], timeout_s=timeout_s, **flags))
    return tuple(captures)


ROUTE_KEYS = (
    "label", "wait_for", "fields", "capture", "items", "follow", "scroll", "click_until_gone", "recrawl_after_s",
    "render", "frame", "hover", "select", "fetch", "content",
)  # fmt: skip


def _selectors(table: dict[str, Any], key: str, where: str) -> tuple[str, ...]:
    """A route key that takes a selector or a list of them."""
    value = table.get(key, [])
    selectors = [value] if isinstance(value, str) else value
    if not isinstance(selectors, list) or not all(isinstance(v, str) and v for v in selectors):
        raise ConfigError(f"{where}: {key}: expected a selector or a list of selectors, got {value!r}")
    try:
        return tuple(check_selector(v, where=f"{where}: {key}") for v in selectors)
    except FieldError as exc:
        raise ConfigError(str(exc)) from None


def _choices(value: Any, where: str) -> tuple[tuple[str, str], ...]:
    """``select = { "select#size" = "M" }``: the option (by value, else by label) each
    ``<select>`` is set to, in order."""
    if not isinstance(value, dict) or not all(isinstance(v, str) for v in value.values()):
        raise ConfigError(f'{where}: expected {{ "<select selector>" = "<option value or label>" }}, got {value!r}')
    try:
        return tuple((check_selector(k, where=where), v) for k, v in value.items())
    except FieldError as exc:
        raise ConfigError(str(exc)) from None


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
        render = table.get("render", "visible")
        if render not in RENDER_MODES:
            raise ConfigError(f"{where}: render: expected one of {', '.join(map(repr, RENDER_MODES))}, got {render!r}")
        fetch = table.get("fetch")
        if fetch is not None and fetch not in FETCH_MODES:
            raise ConfigError(f"{where}: fetch: expected one of {', '.join(map(repr, FETCH_MODES))}, got {fetch!r}")
        content = table.get("content", "html")
        if content not in CONTENT_KINDS:
            raise ConfigError(
                f"{where}: content: expected one of {', '.join(map(repr, CONTENT_KINDS))}, got {content!r}"
            )
        frame, hover = _selectors(table, "frame", where), _selectors(table, "hover", where)
        select = _choices(table.get("select", {}), f"{where}: select")
        recrawl = None
        if "recrawl_after_s" in table:
            try:
                recrawl = checks.number()(table["recrawl_after_s"])  # as [crawl] recrawl_after_s: seconds >= 0
            except checks.BadValue as exc:
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
                render=render,
                frame=frame,
                hover=hover,
                select=select,
                fetch=fetch,
                content=content,
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
    pool = config.pool
    if pool.auto and pool.min_concurrency > pool.max_concurrency:
        raise ConfigError(
            f"{src}: [pool] min_concurrency: expected at most max_concurrency ({pool.max_concurrency}),"
            f" got {pool.min_concurrency}"
        )
    for spec in (*config.routes, config.extract_route()):
        check_http_route(config, spec)
    mon = config.monitor
    if (
        mon.metrics_port
        and not is_loopback_host(mon.metrics_host)
        and not (mon.metrics_token or mon.metrics_allow_public)
    ):
        raise ConfigError(
            f"{src}: [monitor] metrics_host: {mon.metrics_host!r} serves the metrics and the status page beyond this"
            " machine: set metrics_token (a bearer token) or metrics_allow_public = true"
        )
    if config.store.backend == "redis" and not config.store.url.startswith(("redis://", "rediss://", "unix://")):
        raise ConfigError(
            f'{src}: [store] url: expected redis://host:port/db for backend = "redis", got {config.store.url!r}'
        )
    check_persist(config)


def check_persist(config: Config) -> None:
    """``[session] persist`` needs a store that keeps what it is given: not an
    in-memory SQLite database (gone at the end of the run, and out of ``crawler
    session``'s reach), nor one this user cannot write.  ConfigError naming the key."""
    if not config.session.persist or config.store.backend == "redis":
        return
    db = config.output.db
    where = f"{config.source}: [session] persist: the store at [output] db {db!r}"
    if db in ("", ":memory:") or db.startswith("file:"):
        raise ConfigError(f"{where} keeps nothing after the run: give it a database file, or use the Redis store")
    path = Path(db)
    writable = os.access(path, os.W_OK) if path.exists() else os.access(path.parent, os.W_OK | os.X_OK)
    if not writable and path.parent.exists():
        raise ConfigError(f"{where} is read-only: a saved session could not be written")


def _check_pool_bounds(table: Any, source: str) -> None:
    """``min_concurrency`` and ``max_concurrency`` in a file whose ``concurrency`` is a
    number (given, or the default) are refused, not ignored: they would do nothing, and
    whoever wrote ``max_concurrency = 8`` beside ``concurrency = 16`` (or with no
    concurrency at all) expects a cap that is not there, like a misspelt key.  Checked on
    the file only: ``--concurrency 4`` on the command line over a file's "auto" is a
    fixed number for this run, the file's bounds kept for the next."""
    if not isinstance(table, dict) or table.get("concurrency") == "auto":
        return
    given = [key for key in ("min_concurrency", "max_concurrency") if key in table]
    if given:
        raise ConfigError(
            f'{source}: [pool] {given[0]}: applies only to concurrency = "auto"'
            f' (concurrency is {table.get("concurrency", PoolSection().concurrency)!r}): set concurrency = "auto"'
            f" or remove {' and '.join(given)}"
        )


def check_http_route(config: Config, spec: RouteSpec) -> None:
    """A route fetched over HTTP (its own ``fetch``, else ``[crawl] fetch``) carries
    nothing only a browser can do: ConfigError naming the route and the key."""
    if (spec.fetch or config.crawl.fetch) != "http":
        return
    where = (
        f"{config.source}: [[route]] {spec.label or '(default)'}"
        if spec in config.routes
        else f"{config.source}: [extract]"
    )
    for key in BROWSER_ONLY_KEYS:
        if getattr(spec, key):
            raise ConfigError(f'{where}: {key} needs a browser, and the route fetches over HTTP: set fetch = "browser"')
    fields = [*spec.fields, *(spec.items.fields if spec.items else ())]
    for field in fields:
        if field.js is not None:
            raise ConfigError(
                f"{where}: field {field.name!r} is JavaScript, and the route fetches over HTTP: use css (and attr),"
                ' or set fetch = "browser"'
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
    ``data:`` and the rest are refused, and so are URLs longer than
    :data:`~crawler.urls.MAX_URL_CHARS` (quoted by their first 100 characters) and URLs
    with credentials (``user:pass@``: they would be stored and exported; the error
    quotes the URL redacted)."""
    if too_long(url):
        raise ConfigError(
            f"{where}: a URL of {len(url)} characters, over the limit of {MAX_URL_CHARS}:"
            f" {redact_url(url[:REFUSED_QUOTE_CHARS])!r}..."
        )
    if has_credentials(url):
        raise ConfigError(f"{where}: a URL with credentials is refused (they would be stored): {short_url(url)!r}")
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
