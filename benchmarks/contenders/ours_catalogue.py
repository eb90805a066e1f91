#!/usr/bin/env python
"""This crawler on the catalogue, run as its users run it: ``python -m crawler
--config site.toml`` (``crawler.cli.main``, in this process after the ready line), with
a site file of ``[[route]]`` tables and no code.

The site file (:func:`site_file`): ``[input] urls`` the index, ``[pool] concurrency``
= ``--concurrency``, ``[rate_limit] wait_ms = [0, 0]``, ``[output] db`` in a temporary
folder, every other key at its default (SQLite store, the monitors on), and the routes:

- the default route (the index) follows ``INDEX_FOLLOW`` to ``listing``;
- ``listing`` follows ``LISTING_FOLLOW`` to ``product``;
- ``product``: ``fields`` name and price (``css``, the text, trimmed) and reviews
  (``css``, ``all = true``); on the mixed storefront (``--mixed``) it also follows
  ``REVIEWS_FOLLOW`` to ``reviews``;
- ``reviews`` (``--mixed``): ``wait_for`` its list's items (they are built by the
  page's script), then one item per ``REVIEW_ITEMS`` match.

How pages are fetched: ``--fetch http`` or ``browser`` writes ``[crawl] fetch``
(every route's default); ``--fetch auto`` also writes ``fetch = "auto"`` on every
route; ``--fetch none`` writes no ``fetch`` key (the crawler's own default).

After the result line, every stored item is written to ``--items`` as a JSON line,
its route's label under ``_label`` (read from the database: ``items`` joined to
``frontier``): the driver counts CPU up to the result line only.
"""

from __future__ import annotations

import json
import os
import sqlite3
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, os.path.dirname(__file__))
from _catalogue import MAX_ATTEMPTS, TIMEOUT_S, catalogue, parse_args, ready, report, write_item  # noqa: E402

from crawler import cli  # noqa: E402

FETCH_CHOICES = ("http", "browser", "auto", "none")


def toml_str(s: str) -> str:
    return json.dumps(s)  # a JSON string is a TOML basic string for these selectors


def site_file(args, db: str) -> str:
    if args.fetch not in FETCH_CHOICES:
        raise SystemExit(f"--fetch: one of {', '.join(FETCH_CHOICES)}")
    crawl = f"fetch = {toml_str(args.fetch)}\n" if args.fetch != "none" else ""
    per_route = f"fetch = {toml_str(args.fetch)}\n" if args.fetch == "auto" else ""
    fields = ", ".join(f"{k} = {toml_str(v)}" for k, v in catalogue.PRODUCT_FIELDS.items())
    fields += f", reviews = {{ css = {toml_str(catalogue.PRODUCT_REVIEWS)}, all = true }}"
    product_follow = (
        f'follow = [ {{ selector = {toml_str(catalogue.REVIEWS_FOLLOW)}, label = "reviews" }} ]\n' if args.mixed else ""
    )
    review_fields = ", ".join(f"{k} = {toml_str(v)}" for k, v in catalogue.REVIEW_FIELDS.items())
    reviews = (
        '\n[[route]]\nlabel = "reviews"\n'
        + per_route
        + f"wait_for = {toml_str(catalogue.REVIEW_ITEMS)}\n"
        + f"items = {{ selector = {toml_str(catalogue.REVIEW_ITEMS)}, fields = {{ {review_fields} }} }}\n"
        if args.mixed
        else ""
    )
    return (
        '[site]\nname = "catalogue"\n\n'
        f"[input]\nurls = [{toml_str(args.start)}]\n\n"
        f"[crawl]\n{crawl}same_host = true\n\n"
        f"[browser]\nexecutable = {toml_str(args.chromium)}\n\n"
        f"[pool]\nconcurrency = {args.concurrency}\n\n"
        f"[watchdog]\ntimeout_s = {TIMEOUT_S}\njitter_s = 5\n\n"
        "[rate_limit]\nwait_ms = [0, 0]\n\n"
        f"[retry]\nmax_attempts = {MAX_ATTEMPTS}\nbackoff_s = [0.2, 5.0]\n\n"
        f"[output]\ndb = {toml_str(db)}\n\n"
        "[[route]]\n"
        + per_route
        + f'follow = [ {{ selector = {toml_str(catalogue.INDEX_FOLLOW)}, label = "listing" }} ]\n\n'
        + '[[route]]\nlabel = "listing"\n'
        + per_route
        + f'follow = [ {{ selector = {toml_str(catalogue.LISTING_FOLLOW)}, label = "product" }} ]\n\n'
        + '[[route]]\nlabel = "product"\n'
        + per_route
        + f"fields = {{ {fields} }}\n"
        + product_follow
        + reviews
    )


def counts(db: str) -> tuple[int, int]:
    with sqlite3.connect(db) as conn:
        rows = dict(conn.execute("SELECT state, COUNT(*) FROM frontier GROUP BY state").fetchall())
    return rows.get("done", 0), rows.get("failed", 0)


def export(db: str, path: str) -> int:
    """Every stored item, as a JSON line with its route's label; how many."""
    with sqlite3.connect(db) as conn, open(path, "w", encoding="utf-8") as out:
        rows = conn.execute(
            "SELECT f.label, i.data FROM items i JOIN frontier f ON f.id = i.url_id ORDER BY i.url_id, i.seq"
        ).fetchall()
        for label, data in rows:
            write_item(out, {"_label": label, **json.loads(data)})
    return len(rows)


def main() -> int:
    args = parse_args()
    with tempfile.TemporaryDirectory(prefix="bench-ours-") as tmp:
        db, site = f"{tmp}/crawl.db", Path(tmp) / "site.toml"
        site.write_text(site_file(args, db), encoding="utf-8")
        if os.environ.get("BENCH_SHOW_SITE"):
            print(site.read_text(), file=sys.stderr)
        ready()
        code = cli.main(["--config", str(site)])
        done, failed = counts(db)
        report(done, failed, exit_code=code)
        export(db, args.items)
    return 0


if __name__ == "__main__":
    sys.exit(main())
