"""What the catalogue contenders (``http_bench.py``, ``auto_bench.py``) share: their
command line, their items, and ``_common``'s protocol lines to the driver.

Standard library only, like ``_common``: the peers' contenders run in
``benchmarks/peers-venv``.  The catalogue's selectors and truth come from
``benchmarks/catalogue.py``, put on ``sys.path`` here.

Every contender starts from ``--start`` (the index), follows ``catalogue.INDEX_FOLLOW``
to the listings and ``catalogue.LISTING_FOLLOW`` to the products, and writes one JSON
line per product page to ``--items``: ``url`` plus :func:`product_item`'s fields.
"""

from __future__ import annotations

import argparse
import json
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import catalogue  # noqa: E402, F401 - re-exported for the contenders
from _common import emit, own_cpu_s, ready, report, tree_cpu_s  # noqa: E402, F401

MAX_ATTEMPTS = 3  # attempts per URL, as the browser contenders'
TIMEOUT_S = 30  # per request


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser()
    p.add_argument("--start", required=True, help="the catalogue's index URL")
    p.add_argument("--items", required=True, help="JSON lines out")
    p.add_argument("--concurrency", type=int, default=16)
    p.add_argument("--fetch", default="http", help="ours only: http, browser or auto (every route)")
    p.add_argument("--mixed", action="store_true", help="ours only: the mixed storefront's routes (reviews pages too)")
    p.add_argument("--chromium", default="/usr/bin/chromium", help="ours only, when it starts a browser")
    return p.parse_args(argv)


def write_item(out, item: dict) -> None:
    out.write(json.dumps(item, ensure_ascii=False) + "\n")
