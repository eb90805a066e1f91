"""What every contender shares: its command line, and its lines to the driver.

Standard library only: the peers' contenders run in their own virtual environment
(``benchmarks/peers-venv``), without this project installed.

Protocol on stdout, one JSON object a line: ``{"event": "ready"}`` once imports are
done (the driver starts counting CPU and time there), ``{"event": "result", ...}``
last, after the browser is closed and reaped, carrying this process's rusage
(itself and every descendant it reaped, so the whole tree).  Items go to ``--items``
as JSON lines: ``url`` plus the fields of :data:`FIELDS_JS` plus ``goods``; on the
render profile (``--profile render``) also ``reviews``, the ids :data:`REVIEWS_JS`
reads after the contender has scrolled the page its own way.
"""

from __future__ import annotations

import argparse
import json
import resource
import sys

# The fields every contender extracts, in one evaluation, the same on both profiles.
FIELDS_JS = """() => {
  const text = (s) => { const e = document.querySelector(s); return e ? e.textContent.trim() : null; };
  const img = document.querySelector('img.main');
  const src = img ? img.getAttribute('src') : null;
  return {
    name: text('h1'),
    brand: text('p.brand'),
    price: text('#price'),
    image: src === null ? null : new URL(src, document.baseURI).href,
    stock: document.querySelector('#stock').textContent,
  };
}"""
# The render profile's reviews, read after scrolling: the ids of those the page loaded.
REVIEWS_JS = "() => Array.from(document.querySelectorAll('#reviews .review'), (e) => e.dataset.id)"
READY_SELECTOR = "body[data-ready]"
CAPTURE = "/api/goods/"  # the response whose JSON body is the item's "goods"
MAX_ATTEMPTS = 3


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser()
    p.add_argument("--urls", required=True, help="file with one URL a line")
    p.add_argument("--items", required=True, help="JSON lines out")
    p.add_argument("--concurrency", type=int, default=8)
    p.add_argument("--recycle-tab-every", type=int, default=10)
    p.add_argument("--rotate-context-every", type=int, default=50)
    p.add_argument("--chromium", default="/usr/bin/chromium")
    p.add_argument(
        "--profile", default="light", help="light, heavy or render (render: scroll, then read the reviews too)"
    )
    p.add_argument("--block", default="", help="comma-separated resource types to block (ours only)")
    p.add_argument(
        "--context", action="store_true", help="raw only: its tabs in one created browser context, not the default one"
    )
    p.add_argument(
        "--hidden", action="store_true", help="raw only: no focus emulation, so its tabs stay hidden and unpainted"
    )
    return p.parse_args(argv)


def read_urls(path: str) -> list[str]:
    with open(path, encoding="utf-8") as f:
        return [line.strip() for line in f if line.strip()]


def emit(**obj) -> None:
    sys.stdout.write(json.dumps(obj) + "\n")
    sys.stdout.flush()


def tree_cpu_s() -> float:
    """User + system CPU of this process and of every descendant it (transitively) reaped."""
    own, kids = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    return own.ru_utime + own.ru_stime + kids.ru_utime + kids.ru_stime


def record(out, counts: dict[str, int], url: str, item: dict | None, error: str) -> None:
    """One URL's outcome: its item as a JSON line, or a line on stderr; counted."""
    if item is None:
        counts["failed"] += 1
        print(f"failed {url}: {error}", file=sys.stderr)
    else:
        out.write(json.dumps(item) + "\n")
        counts["done"] += 1


def own_cpu_s() -> float:
    """User + system CPU of this process alone (the client, without any browser)."""
    own = resource.getrusage(resource.RUSAGE_SELF)
    return own.ru_utime + own.ru_stime


def ready() -> None:
    """Tell the driver that imports are done: CPU and time count from here."""
    emit(event="ready", cpu_s=tree_cpu_s(), own_cpu_s=own_cpu_s())


def report(done: int, failed: int, **extra) -> None:
    emit(event="result", done=done, failed=failed, cpu_s=tree_cpu_s(), own_cpu_s=own_cpu_s(), **extra)
