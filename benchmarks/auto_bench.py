#!/usr/bin/env python
"""The mixed storefront: this crawler with every route ``fetch = "browser"`` against
every route ``fetch = "auto"``, in one run, on the same pages; the items must be equal.

    .venv/bin/python benchmarks/auto_bench.py                      # 1,500 products, 150 reviews pages, C=8
    .venv/bin/python benchmarks/auto_bench.py --pages 200 --repeats 1
    .venv/bin/python benchmarks/auto_bench.py --repeats 3 --json auto.json

The catalogue (``benchmarks/catalogue.py`` with ``--reviews-every``, served from a
process of its own as in ``http_bench.py``) is static HTML but for one kind of page:
the index, ``--pages / 20`` listings and ``--pages`` product pages are static; every
``--reviews-every``-th product page links to ``/reviews/{i}``, whose reviews an
inline script fetches from ``/api/reviews/{i}`` and builds.  An HTTP fetch of a
reviews page finds an empty list; only a browser finds its reviews.

Both contenders are ``contenders/ours_catalogue.py --mixed`` (``python -m crawler
--config site.toml``; see its docstring): four ``[[route]]`` tables (index, listing,
product, reviews; the reviews route waits for its list's items and stores one item
per review), the same site file but for ``fetch``:

- ``browser``: every route ``fetch = "browser"`` (via ``[crawl] fetch``): every page in
  a tab;
- ``auto``: every route ``fetch = "auto"``: each label starts in the browser and moves
  to HTTP once HTTP has found what the browser found (``[http] agree_after`` pages in
  a row), checking a share of its HTTP pages in the browser after
  (``[http] recheck_ratio``).  The index, listing and product routes should learn
  that HTTP is safe; the reviews route, that it needs the browser.

What is fair here: the same pages, the same server, the same concurrency (tabs or
requests in flight), the same routes and store, one after the other, ``--repeats``
times, interleaved.  And the answer must not change: each run's stored items
(every item of every route, read from its SQLite database, as JSON with sorted
keys, less :data:`VOLATILE_KEYS`) must equal the browser run's of the same round as
a multiset, and both must match the catalogue's truth (every product's item, every
review of every reviews page).  Any difference is printed and makes the exit status 1.

Measured per run as in ``http_bench.py`` (pages/s and CPU ms/page of the whole
process tree, Chromium and its orphans included, from the ``ready`` to the
``result`` line; peak RSS and PSS of the tree), plus the requests the server
answered by kind of page: a page fetched both ways, or rechecked, shows there.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
from collections import Counter
from pathlib import Path
from typing import Any

import catalogue
import trio
from compare import become_subreaper
from http_bench import CONTENDERS, Server, check_products, read_items, run_process, show_tail

# name -> extra arguments of contenders/ours_catalogue.py
COMMANDS: dict[str, tuple[str, ...]] = {
    "browser": ("--mixed", "--fetch", "browser"),
    "auto": ("--mixed", "--fetch", "auto"),
}
REFERENCE = "browser"  # every run's items are compared with this contender's of the same round
VOLATILE_KEYS: frozenset[str] = frozenset()  # item keys left out of the comparison (none so far)
SHOW_DIFFERENCES = 5  # items shown from each side of a difference


def normalised(items: list[dict[str, Any]]) -> Counter[str]:
    """The items as a multiset of JSON texts (sorted keys, less VOLATILE_KEYS)."""
    return Counter(
        json.dumps({k: v for k, v in item.items() if k not in VOLATILE_KEYS}, sort_keys=True, ensure_ascii=False)
        for item in items
    )


def check_reviews(items: list[dict[str, Any]], products: int, reviews_every: int) -> dict[str, int]:
    """Review items (the reviews route's) against every review of every reviews page."""
    want = Counter(
        json.dumps({"url": f"/reviews/{i}", **r}, sort_keys=True)
        for i in range(1, products + 1)
        if catalogue.has_reviews_page(i, reviews_every)
        for r in catalogue.all_reviews(i)
    )
    got = Counter()
    for item in items:
        if item.get("_label") == "reviews":
            path = "/" + str(item.get("url", "")).split("/", 3)[-1]
            got[json.dumps({"url": path, **{k: item.get(k) for k in catalogue.REVIEW_FIELDS}}, sort_keys=True)] += 1
    return {
        "expected": sum(want.values()),
        "found": sum(got.values()),
        "right": sum((got & want).values()),
        "missing": sum((want - got).values()),
        "wrong_or_extra": sum((got - want).values()),
    }


def compare_items(mine: Counter[str], reference: Counter[str]) -> dict[str, Any]:
    only_mine, only_ref = mine - reference, reference - mine
    return {
        "equal": not only_mine and not only_ref,
        "only_here": sum(only_mine.values()),
        "only_in_reference": sum(only_ref.values()),
        "examples_here": sorted(only_mine)[:SHOW_DIFFERENCES],
        "examples_in_reference": sorted(only_ref)[:SHOW_DIFFERENCES],
    }


async def run_contender(name: str, args: argparse.Namespace, server: Server, tmp: Path, round_: int) -> dict[str, Any]:
    items_path = tmp / f"items-{name}-{round_}.jsonl"
    argv = [sys.executable, str(CONTENDERS / "ours_catalogue.py"), "--start", f"{server.base}/"]
    argv += ["--items", str(items_path), "--concurrency", str(args.concurrency), "--chromium", args.chromium]
    argv += COMMANDS[name]
    server.stats(reset=True)
    server_cpu = server.cpu_s()
    out: dict[str, Any] = {"contender": name, "round": round_, "concurrency": args.concurrency}
    out["pages"] = catalogue.expected_pages(args.pages, args.reviews_every)
    out.update(await run_process(argv, tmp, f"{name}-{round_}", {server.proc.pid}))
    out["server_cpu_ms_per_page"] = 1000 * (server.cpu_s() - server_cpu) / out["done"] if out["done"] else None
    out["server"] = server.stats()
    items = read_items(items_path)
    out["items"] = len(items)
    out["products"] = check_products(items, args.pages)
    out["reviews"] = check_reviews(items, args.pages, args.reviews_every)
    out["_normalised"] = normalised(items)
    return out


async def bench(args: argparse.Namespace) -> list[dict[str, Any]]:
    results = []
    with (
        tempfile.TemporaryDirectory(prefix="auto-bench-") as tmp_name,
        Server(args.pages, [], args.reviews_every) as server,
    ):
        tmp = Path(tmp_name)
        server.stats(reset=True)
        for round_ in range(1, args.repeats + 1):
            reference: Counter[str] | None = None
            for name in args.contenders:
                r = await run_contender(name, args, server, tmp, round_)
                mine = r.pop("_normalised")
                if name == REFERENCE:
                    reference = mine
                r["same_items"] = (
                    compare_items(mine, reference) if reference is not None and name != REFERENCE else None
                )
                results.append(r)
                print(format_row(r), flush=True)
                if not ok(r):
                    show_problems(r, tmp / f"stderr-{name}-{round_}.txt")
    return results


def ok(r: dict[str, Any]) -> bool:
    p, v = r["products"], r["reviews"]
    same = r["same_items"] is None or r["same_items"]["equal"]
    return same and p["right"] == p["expected"] and not p["extra"] and v["right"] == v["expected"] == v["found"]


def show_problems(r: dict[str, Any], stderr: Path) -> None:
    s = r["same_items"]
    if s and not s["equal"]:
        print(f"  items differ from {REFERENCE}'s: {s['only_here']} only here, {s['only_in_reference']} only there")
        for line in s["examples_here"]:
            print(f"    here:  {line}")
        for line in s["examples_in_reference"]:
            print(f"    there: {line}")
    print(f"  products {r['products']}, reviews {r['reviews']}; the contender's stderr ends:", flush=True)
    show_tail(stderr)


def format_row(r: dict[str, Any]) -> str:
    p, v, s = r["products"], r["reviews"], r["server"]
    same = "" if r["same_items"] is None else ("  items = browser's" if r["same_items"]["equal"] else "  ITEMS DIFFER")
    kinds = ", ".join(f"{k} {n}" for k, n in sorted(s["by_kind"].items()))
    return (
        f"C={r['concurrency']:<3} {r['contender']:<8} {r['pages_per_s']:7.1f} pages/s  {r['cpu_s_per_page'] * 1000:7.2f} CPU ms/page  "
        f"{r['peak_rss_mib']:6.0f} MiB peak RSS ({r['peak_pss_mib']:.0f} PSS)  {r['done']}/{r['pages']} pages, {r['failed']} failed  "
        f"{r['items']} items: products {p['right']}/{p['expected']} right, reviews {v['right']}/{v['expected']} right{same}  "
        f"server: {s['requests']} requests ({kinds})"
    )


KEYS = ("pages_per_s", "cpu_s_per_page", "client_cpu_s_per_page", "peak_rss_mib", "peak_pss_mib")


def print_tables(results: list[dict[str, Any]], out=sys.stdout) -> None:
    groups: dict[str, list[dict[str, Any]]] = {}
    for r in results:
        groups.setdefault(r["contender"], []).append(r)
    rows = {name: {k: statistics.median(r[k] for r in rs) for k in KEYS} for name, rs in groups.items()}
    runs = max(len(rs) for rs in groups.values())
    print(f"\n{'Medians over ' + str(runs) + ' runs' if runs > 1 else 'One run'}:\n", file=out)
    print("| fetch | pages | pages/s | CPU ms/page | client CPU ms/page | peak RSS MiB | peak PSS MiB | server requests | items = browser's |", file=out)  # fmt: skip
    print("|---|---|---|---|---|---|---|---|---|", file=out)
    for name, rs in groups.items():
        m = rows[name]
        same = (
            "-" if rs[0]["same_items"] is None else ("yes" if all(r["same_items"]["equal"] for r in rs) else "**no**")
        )
        requests = statistics.median(r["server"]["requests"] for r in rs)
        print(
            f"| {name} | {rs[0]['pages']} | {m['pages_per_s']:.1f} | {m['cpu_s_per_page'] * 1000:.1f} | "
            f"{m['client_cpu_s_per_page'] * 1000:.1f} | {m['peak_rss_mib']:.0f} | {m['peak_pss_mib']:.0f} | {requests:g} | {same} |",
            file=out,
        )
    if "auto" in rows and "browser" in rows:
        a, b = rows["auto"], rows["browser"]
        print(
            f"\nauto / browser: {a['pages_per_s'] / b['pages_per_s']:.2f}x pages/s, "
            f"{a['cpu_s_per_page'] / b['cpu_s_per_page']:.2f}x CPU per page, "
            f"{a['peak_pss_mib'] / b['peak_pss_mib']:.2f}x peak PSS",
            file=out,
        )


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter
    )
    p.add_argument("--pages", type=int, default=1500, help="product pages (default 1500)")
    p.add_argument(
        "--reviews-every", type=int, default=10, help="every K-th product has a JS-rendered reviews page (default 10)"
    )
    p.add_argument("--concurrency", type=int, default=8, help="tabs or requests at once (default 8)")
    p.add_argument("--contenders", default="browser,auto", help=f"comma-separated: {', '.join(COMMANDS)}")
    p.add_argument("--repeats", type=int, default=1, help="runs of the contender list, interleaved; medians")
    p.add_argument("--chromium", default=os.environ.get("CHROME_PATH", "/usr/bin/chromium"))
    p.add_argument("--json", dest="json_out", help="write every run here")
    args = p.parse_args(argv)
    args.contenders = [x for x in args.contenders.split(",") if x]
    for name in args.contenders:
        if name not in COMMANDS:
            p.error(f"unknown contender {name!r}; choose from {', '.join(COMMANDS)}")
    if REFERENCE in args.contenders:  # the reference runs first in each round
        args.contenders.remove(REFERENCE)
        args.contenders.insert(0, REFERENCE)
    if args.pages < 1 or args.concurrency < 1 or args.repeats < 1 or args.reviews_every < 1:
        p.error("--pages, --reviews-every, --concurrency and --repeats must be at least 1")
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    print(
        f"{args.pages} products, a reviews page every {args.reviews_every} "
        f"({catalogue.expected_pages(args.pages, args.reviews_every)} pages), concurrency {args.concurrency}, "
        f"{args.repeats} repeats; {os.cpu_count()} cores, load {os.getloadavg()[0]:.2f}",
        flush=True,
    )
    become_subreaper()
    results = trio.run(bench, args)
    print_tables(results)
    if args.json_out:
        Path(args.json_out).write_text(json.dumps(results, indent=2))
    return 0 if all(ok(r) for r in results) else 1


if __name__ == "__main__":
    sys.exit(main())
