#!/usr/bin/env python
"""This crawler, run as its users run it: ``python -m crawler --config site.toml``.

The site file is ``config/products.toml`` with the benchmark's URLs (``[input]
url_file``), concurrency, recycling and rotation, and no waits between requests:
every other key keeps its default, the store is SQLite, the monitors run.  After
the result line, the items are exported from the database to ``--items``.

On the render profile, ``[extract]`` becomes the default ``[[route]]`` with the same
``wait_for``, fields and capture, plus ``scroll = true`` (its handler calls
``page.scroll_to_end()`` after the ready selector, then extracts) and a ``reviews``
field (``_common.REVIEWS_JS``).
"""

from __future__ import annotations

import json
import os
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, os.path.dirname(__file__))
from _common import REVIEWS_JS, parse_args, ready, report  # noqa: E402

from crawler import cli  # noqa: E402

PRODUCTS_TOML = Path(__file__).resolve().parents[2] / "config" / "products.toml"


def site_file(args, db: str) -> str:
    text = PRODUCTS_TOML.read_text(encoding="utf-8")
    start = text.index("[input]")
    blocked = ", ".join(f'"{kind}"' for kind in args.block.split(",") if kind)
    browser = f"[browser]\nblock_resources = [{blocked}]\n\n" if blocked else ""
    return (
        text[:start]
        + f'[input]\nurl_file = "{args.urls}"\n\n{browser}'
        + f"[pool]\nconcurrency = {args.concurrency}\nrecycle_tab_every = {args.recycle_tab_every}\n"
        + f"rotate_context_every = {args.rotate_context_every}\n\n"
        + render_route(text[text.index("[watchdog]") :], args.profile).replace('db = "demo.db"', f'db = "{db}"')
    )


def render_route(text: str, profile: str) -> str:
    """On the render profile, ``[extract]`` (up to ``[output]``) as a ``[[route]]`` that
    scrolls to the end and reads the reviews too; else ``text`` as it is."""
    if profile != "render":
        return text
    start, end = text.index("[extract]"), text.index("[output]")
    extract = text[start:end].replace("[extract.fields]", "[route.fields]")
    extract = extract.replace("[[extract.capture]]", "[[route.capture]]")
    extract = extract.replace("[extract]", "[[route]]\nscroll = true", 1)
    reviews = REVIEWS_JS.split("=> ", 1)[1]  # the expression, for a js field
    fields_end = extract.index("\n[[route.capture]]")
    extract = extract[:fields_end] + f"reviews = {{ js = {json.dumps(reviews)} }}\n" + extract[fields_end:]
    return text[:start] + extract + text[end:]


def main() -> int:
    args = parse_args()
    with tempfile.TemporaryDirectory(prefix="bench-ours-") as tmp:
        db, site = f"{tmp}/crawl.db", Path(tmp) / "site.toml"
        site.write_text(site_file(args, db), encoding="utf-8")
        ready()
        code = cli.main(["--config", str(site)])
        done, failed = counts(db)
        report(done, failed, exit_code=code)
        cli.main(["export", "--db", db, "--format", "jsonl", "--out", args.items])
    return 0


def counts(db: str) -> tuple[int, int]:
    import sqlite3

    with sqlite3.connect(db) as conn:
        rows = dict(conn.execute("SELECT state, COUNT(*) FROM frontier GROUP BY state").fetchall())
    return rows.get("done", 0), rows.get("failed", 0)


if __name__ == "__main__":
    sys.exit(main())
