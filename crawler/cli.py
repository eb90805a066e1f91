"""Command line: ``python -m crawler [crawl] --config FILE``, ``export``, ``demo``, ``report``,
``try``, ``session`` (export, import, clear: :mod:`crawler.run.session_commands`).

Exit codes (of a crawl, they describe the database at the end, not only this run):

===  ==================================================================="""

from __future__ import annotations

import argparse
import json
import logging
import os
import sqlite3
import sys
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import attrs
import trio

import cdp
from crawler import config as config_mod
from crawler.config import Config
from crawler.errors import ConfigError, StoreError
from crawler.observe.summary import format_summary
from crawler.store import StoreSettings, open_store
from crawler.store.base import Store
from crawler.store.exports import FORMATS, ItemQuery, export_items, parse_utc
from crawler.store.sqlite.dblock import DatabaseInUse

log = logging.getLogger("crawler")

EXIT_OK, EXIT_FAILED, EXIT_USAGE, EXIT_IN_USE, EXIT_INTERRUPTED = 0, 1, 2, 3, 130
COMMANDS = ("crawl", "export", "demo", "report", "try", "session")
REPO_CONFIG = Path(__file__).resolve().parent.parent / "config"


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="crawler", description="A trio crawler that drives headless Chromium over CDP."
    )
    parser.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    sub = parser.add_subparsers(dest="command")

    crawl = sub.add_parser("crawl", help="crawl the URLs of a config (the default command)")
    crawl.add_argument("--config", required=True, help="site TOML file")
    _crawl_options(crawl)

    export = sub.add_parser("export", help="write the extracted items")
    where = export.add_mutually_exclusive_group(required=True)
    where.add_argument("--db", help="SQLite database")
    where.add_argument("--config", help="config whose [store]/[output] names the store")
    export.add_argument("--format", choices=FORMATS, default="jsonl", help="parquet needs the [parquet] extra")
    export.add_argument("--out", help="output file (default: standard output; parquet needs a file)")
    export.add_argument("--label", help="only the items of URLs with this label (route)")
    export.add_argument("--run", type=_positive, metavar="N", help="only the items stored by run N")
    export.add_argument(
        "--changed-since",
        metavar="TIME",
        help="only items fetched at or after TIME, in UTC: 2026-12-01T08:00:00Z, or a date 2026-12-01",
    )
    export.add_argument("--meta", action="store_true", help="add leading _url, _label, _fetched_at columns")

    demo = sub.add_parser("demo", help="start the bundled demo shop on 127.0.0.1 and crawl it")
    demo.add_argument("--config", default=str(REPO_CONFIG / "demo.toml"), help="default: config/demo.toml")
    demo.add_argument(
        "--products", type=_positive, default=None, help="number of products (default: the config's ids, else 200)"
    )
    demo.add_argument("--port", type=int, default=0, help="port of the shop (default: any free port)")
    demo.add_argument("--serve-only", action="store_true", help="only run the shop until interrupted")
    demo.add_argument("--out", default="demo-items.jsonl", help="where the items are exported (JSONL)")
    demo.add_argument("--resume", action="store_true", help="keep earlier progress instead of starting fresh")
    _crawl_options(demo)

    trial = sub.add_parser("try", help="run one URL's route once and print what it yields; stores nothing")
    trial.add_argument("--config", required=True, help="site TOML file")
    trial.add_argument("url", help="the URL to try")
    trial.add_argument("--label", help="the route to run (default: the default route)")
    trial.add_argument("--screenshot", metavar="FILE", help="write a PNG of the page at the end")
    trial.add_argument("--html", metavar="FILE", help="write the page's HTML at the end")
    trial.add_argument("--cdp-url", help="attach to a running Chromium instead of launching one")

    report = sub.add_parser("report", help="print a run's figures and plot memory against pages")
    source = report.add_mutually_exclusive_group(required=True)
    source.add_argument("--db", help="SQLite database")
    source.add_argument("--config", help="config whose [store]/[output] names the store (Redis too)")
    report.add_argument("--run", type=_positive, help="the run to report (default: the last)")
    report.add_argument("--out", help="PNG file (default: next to the database)")

    session = sub.add_parser("session", help="the saved sessions of [session] persist (Playwright's format)")
    what = session.add_subparsers(dest="what", metavar="{export,import,clear}", required=True)
    out = what.add_parser("export", help="write an identity's saved state as Playwright storage-state JSON")
    out.add_argument("identity", help="direct, or the proxy as scheme://host:port")
    out.add_argument("--config", required=True, help="site TOML file (its store)")
    out.add_argument("--out", help="file to write, created 0600 (default: standard output)")
    into = what.add_parser("import", help="save a Playwright storage-state JSON file as the crawl's state")
    into.add_argument("file", help="storage-state JSON (Playwright's context.storage_state())")
    into.add_argument("--config", required=True, help="site TOML file (its store)")
    into.add_argument("--identity", help="only this identity (default: every identity of the config)")
    wipe = what.add_parser("clear", help="delete every saved session state of the crawl")
    wipe.add_argument("--config", required=True, help="site TOML file (its store)")
    return parser


def _crawl_options(p: argparse.ArgumentParser) -> None:
    p.add_argument("--db", help="database path (overrides [output] db)")
    p.add_argument("--limit", type=_positive, help="process at most N URLs in this run")
    p.add_argument(
        "--concurrency",
        type=_concurrency,
        help='tabs working at once, or "auto" (overrides [pool] concurrency)',
    )
    p.add_argument("--cdp-url", help="attach to a running Chromium (http://host:9222) instead of launching one")
    p.add_argument("--fresh", action="store_true", help="discard earlier progress for this database")
    p.add_argument(
        "--retry-failed",
        nargs="?",
        const="",
        metavar="REASON",
        help="put failed URLs back to pending first: all of them, or those whose reason starts with REASON",
    )


def _say(text: str) -> None:
    """One line to stderr, for the operator.  A closed or broken stderr (``2>&1 | head
    -1`` once head has exited) drops it quietly: what the crawl stored, and its exit
    code, never depend on whether anyone is still reading."""
    try:
        print(text, file=sys.stderr, flush=True)
    except (BrokenPipeError, OSError, ValueError):  # ValueError: the stream was closed
        _silence(sys.stderr)


def _silence(stream: Any) -> None:
    """Point ``stream``'s file descriptor at /dev/null (its reader is gone): later writes,
    the interpreter's last flush included, succeed and go nowhere."""
    try:
        os.dup2(os.open(os.devnull, os.O_WRONLY), stream.fileno())
    except (OSError, ValueError):
        pass


def _positive(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {text!r}")
    return value


def _concurrency(text: str) -> int | str:
    return "auto" if text == "auto" else _positive(text)


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv and argv[0] not in COMMANDS and argv[0] not in ("-h", "--help", "-v", "--verbose"):
        argv.insert(0, "crawl")
    elif len(argv) >= 2 and argv[0] in ("-v", "--verbose") and argv[1] not in COMMANDS:
        argv.insert(1, "crawl")
    args = build_parser().parse_args(argv)
    if args.command is None:
        build_parser().print_help(sys.stderr)
        return EXIT_USAGE
    logging.raiseExceptions = False  # a log line to a closed stderr is dropped, never a traceback
    logging.basicConfig(
        level=logging.DEBUG if args.verbose else logging.INFO,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        stream=sys.stderr,
    )
    logging.getLogger("trio-websocket").setLevel(logging.WARNING)
    logging.getLogger("httpx").setLevel(logging.WARNING)
    # coredis logs a lost connection with its traceback; the Redis store says it in one line.
    logging.getLogger("coredis").setLevel(logging.CRITICAL)
    try:
        if args.command == "crawl":
            return trio.run(crawl_command, load_config(args), args)
        if args.command == "export":
            return export_command(args)
        if args.command == "demo":
            return trio.run(demo_command, args)
        if args.command == "try":
            cfg = config_mod.override(config_mod.load(args.config), browser__cdp_url=args.cdp_url)
            return trio.run(try_command, cfg, args)
        if args.command == "report":
            from crawler.observe.report import report_command

            return report_command(args)
        if args.command == "session":
            from crawler.run.session_commands import session_command

            return session_command(args)
    except DatabaseInUse as exc:
        _say(f"crawler: error: {exc}")
        return EXIT_IN_USE
    except ConfigError as exc:
        _say(f"crawler: error: {exc}")
        return EXIT_USAGE
    except cdp.EndpointUnavailable as exc:  # --cdp-url never answered: configuration (a browser that
        _say(f"crawler: error: {exc}")  # worked and went away is waited for)
        return EXIT_USAGE
    except StoreError as exc:  # before or after a crawl (--retry-failed on a full disk, export)
        _say(f"crawler: error: {exc}")
        return EXIT_FAILED
    except KeyboardInterrupt:  # before the crawl's own signal handling started
        _say("crawler: interrupted")
        return EXIT_INTERRUPTED
    except cdp.BrowserError as exc:
        _say(f"crawler: error: {exc}")
        return EXIT_FAILED
    except BrokenPipeError:  # an export to stdout piped into head, less...: its reader had enough
        _silence(sys.stdout)
        return EXIT_OK
    return EXIT_USAGE


def load_config(args: argparse.Namespace) -> Config:
    cfg = config_mod.load(args.config)
    return config_mod.override(
        cfg,
        output__db=args.db,
        pool__concurrency=args.concurrency,
        browser__cdp_url=args.cdp_url,
    )


async def crawl_command(cfg: Config, args: argparse.Namespace) -> int:
    from crawler.run.engine import STOP_SIGNALS

    # Signals are received from here on, whatever the crawl is doing (see Crawler.run).
    with trio.open_signal_receiver(*STOP_SIGNALS) as signals:
        async with open_store(StoreSettings.of(cfg)) as store:
            if args.fresh:
                await store.reset()
            await _retry_failed(store, args.retry_failed)
            reason, summary = await _crawl(cfg, store, args.limit, signals)
    return _finish(reason, summary, resume=resume_args(sys.argv[1:]))


async def _crawl(
    cfg: Config, store: Store, limit: int | None, signals: AsyncIterator[int]
) -> tuple[str, dict[str, Any]]:
    from crawler.run.engine import Crawler

    crawler = Crawler(cfg, store, limit=limit)
    reason = await crawler.run(signals=signals)
    return reason, await crawler.summary()


async def try_command(cfg: Config, args: argparse.Namespace) -> int:
    """``try``: the items as JSON lines on standard output (a pipe into jq gets only
    them); the links, failures and step times on standard error.  Exit 0 if the route
    ran without failure, else 1."""
    from crawler.run.tryout import try_url

    result = await try_url(cfg, args.url, label=args.label, screenshot=args.screenshot, html=args.html)
    for item in result.items:
        print(json.dumps(item, ensure_ascii=False))
    _say(
        f"try: {result.url} (route {result.label or 'default'}): status {result.status}, "
        f"{len(result.items)} items, {len(result.links)} links"
    )
    if result.failures and result.items:
        _say(f"try: the route failed: a crawl would store none of these {len(result.items)} items")
    for link in result.links:
        _say(f"link {link.label or '(default)'} {link.url}")
    for name, error in result.field_errors:
        _say(f"field error {name}: {error}")
    for frame in result.frames:
        _say(f"frame {frame}")
    for host in result.shadow_hosts:
        _say(f"shadow host {host}")
    for reason in result.failures:
        _say(f"failure {reason}")
    _say("time " + ", ".join(f"{step} {seconds:.2f} s" for step, seconds in result.timings))
    for what, path in (("screenshot", args.screenshot), ("html", args.html)):
        if path and not any(f.startswith("capture") for f in result.failures):
            _say(f"{what} {path}")
    return EXIT_FAILED if result.failures else EXIT_OK


async def _retry_failed(store: Store, prefix: str | None) -> None:
    """``--retry-failed [REASON]``: failed URLs (with that reason prefix) back to pending."""
    if prefix is None:
        return
    moved = await store.retry_failed(prefix or None)
    log.info("--retry-failed: %d failed URLs%s are pending again", moved, f" ({prefix}...)" if prefix else "")


def resume_args(argv: list[str]) -> list[str]:
    """The command line that resumes a crawl: without ``--fresh`` and ``--retry-failed``
    (and its REASON), which acted once, at the start."""
    out: list[str] = []
    skip_value = False
    for arg in argv:
        if skip_value:
            skip_value = False
            if not arg.startswith("-"):
                continue
        if arg == "--fresh" or arg.startswith("--retry-failed="):
            continue
        if arg == "--retry-failed":
            skip_value = True
            continue
        out.append(arg)
    return out


def _finish(reason: str, summary: dict[str, Any], *, resume: list[str]) -> int:
    """Print the summary and what to do next; the exit code of a crawl."""
    _say(format_summary(summary))
    hint = " ".join(["python -m crawler", *resume])
    if reason == "interrupted":
        _say(f"crawler: interrupted; resume with the same command: {hint}")
        return EXIT_INTERRUPTED
    if reason.startswith("refused: "):
        _say(f"crawler: error: {reason.removeprefix('refused: ')}")
        _say(f"crawler: fix it, then resume with the same command: {hint}")
        return EXIT_USAGE
    if reason.startswith("aborted"):
        _say(f"crawler: {reason}")
        _say(f"crawler: once fixed, resume with the same command: {hint}")
        return EXIT_FAILED
    return exit_code(summary)


def exit_code(summary: dict[str, Any]) -> int:
    """0 only if the database holds no failed and no pending URL and the whole input
    was fed; else 1 (see the module docstring)."""
    if summary["failed"] or summary["pending"] or not summary.get("input_exhausted", True):
        if summary["failed"]:
            _say("crawler: some URLs failed; retry them with --retry-failed [REASON] (see the summary's reasons)")
        return EXIT_FAILED
    return EXIT_OK


def export_command(args: argparse.Namespace) -> int:
    if args.format == "parquet" and args.out is None:  # said before the store is opened
        raise ConfigError("--out: parquet needs a file")
    query = ItemQuery(
        label=args.label,
        run=args.run,
        changed_since=parse_utc(args.changed_since) if args.changed_since is not None else None,
    )
    if args.config:
        cfg = config_mod.load(args.config)
    else:
        if not Path(args.db).is_file():
            raise ConfigError(f"--db: no such database {args.db!r}")
        cfg = config_mod.Config(source="--db", output=config_mod.OutputSection(db=args.db))
    return trio.run(_export, cfg, args, query)


async def _export(cfg: Config, args: argparse.Namespace, query: ItemQuery) -> int:
    """``export``: stream the store's items to ``--out`` (see :mod:`crawler.store.exports`)."""
    async with open_store(StoreSettings.of(cfg), exclusive=False) as store:  # a reader: allowed while a crawl runs
        try:
            count = await export_items(store, args.out, args.format, query=query, meta=args.meta)
        except sqlite3.Error as exc:
            raise StoreError(f"{cfg.output.db}: {exc}") from None
    filters = query.describe()
    _say(f"crawler: exported {count} items" + (f" ({filters})" if filters else ""))
    return EXIT_OK


def _compare_export(path: str, products: int) -> dict[str, dict[str, int]]:
    """The demo's check, read back from the JSONL it exported (line by line: bounded memory)."""
    from crawler import demo

    with open(path, encoding="utf-8") as lines:
        return demo.compare((json.loads(line) for line in lines), products)


async def demo_command(args: argparse.Namespace) -> int:
    from crawler.run.engine import STOP_SIGNALS

    with trio.open_signal_receiver(*STOP_SIGNALS) as signals:  # from here on (see Crawler.run)
        return await _demo(args, signals)


async def _demo(args: argparse.Namespace, signals: AsyncIterator[int]) -> int:
    from crawler import demo

    cfg = load_config(args)
    where = f"{cfg.source}: [input] ids"
    low, high = config_mod.parse_id_range(cfg.input.ids, where=where) if cfg.input.ids else (1, demo.DEFAULT_PRODUCTS)
    products = args.products or high
    async with trio.open_nursery() as nursery:
        site = await nursery.start(
            lambda task_status: demo.serve_demo(products, port=args.port, task_status=task_status)
        )
        base = site.url
        log.info("demo shop with %d products at %s, its review widget at %s", products, base, site.widget_url)
        if args.serve_only:
            await trio.sleep_forever()
        cfg = _point_at_shop(cfg, base, ids=f"{low}-{products}" if cfg.input.ids else "")
        async with open_store(StoreSettings.of(cfg)) as store:
            if not args.resume:
                await store.reset()
            await _retry_failed(store, args.retry_failed)
            reason, summary = await _crawl(cfg, store, args.limit, signals)
            exported = await export_items(store, args.out, "jsonl")
        nursery.cancel_scope.cancel()
    comparison = await trio.to_thread.run_sync(_compare_export, args.out, products)
    _say(f"crawler: {exported} items written to {args.out} (database {cfg.output.db})")
    _say(f"crawler: {demo.format_comparison(comparison)}")
    resume = sys.argv[1:] if "--resume" in sys.argv else [*sys.argv[1:], "--resume"]
    return _finish(reason, summary, resume=resume)


def _point_at_shop(cfg: Config, base: str, *, ids: str) -> Config:
    """``cfg`` with the demo configs' placeholder address replaced by the shop's ``base`` in
    ``[input] urls`` and ``url_template``, and ``ids`` (if given) as the id range."""
    from crawler.demo import CONFIG_BASE_URL

    inp = cfg.input
    return attrs.evolve(
        cfg,
        input=attrs.evolve(
            inp,
            urls=tuple(url.replace(CONFIG_BASE_URL, base) for url in inp.urls),
            url_template=inp.url_template.replace(CONFIG_BASE_URL, base),
            ids=ids or inp.ids,
        ),
    )
