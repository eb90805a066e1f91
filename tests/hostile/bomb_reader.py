"""The reading half of tests/hostile/test_bombs.py, run as its own process so that its
peak memory is its own: ``python -m tests.hostile.bomb_reader MODE URL``.

- ``baseline``: only the imports (what any of the others costs before reading a byte);
- ``sitemap URL``: ``iter_sitemap_urls([URL])`` to its end;
- ``robots URL``: ``fetch_robots(URL)``, then a :class:`RobotsPolicy` given that answer
  is asked about ``/private/x``, ``/late/x`` and ``/public/x`` of the URL's origin.

Prints one JSON object: what was read, every warning line (cut to 400 characters,
with its full length), and ``vmhwm_kib``, the process's peak resident memory (VmHWM).
"""

from __future__ import annotations

import json
import logging
import sys
from urllib.parse import urlsplit

import trio

from crawler.policy.robots import RobotsPolicy, fetch_robots
from crawler.sources.sitemaps import iter_sitemap_urls

QUOTE_CHARS = 400


class Lines(logging.Handler):
    """Every WARNING (and worse) line, kept cut short with its length."""

    def __init__(self) -> None:
        super().__init__(logging.WARNING)
        self.lines: list[dict[str, object]] = []

    def emit(self, record: logging.LogRecord) -> None:
        text = record.getMessage()
        self.lines.append({"text": text[:QUOTE_CHARS], "chars": len(text)})


def read_sitemap(url: str) -> dict[str, object]:
    count, head, last = 0, [], ""
    for found in iter_sitemap_urls([url]):
        count += 1
        last = found[:200]
        if count <= 3:
            head.append(found[:200])
    return {"urls": count, "head": head, "last": last}


def read_robots(url: str) -> dict[str, object]:
    async def main() -> dict[str, object]:
        answer = await fetch_robots(url)

        async def fetch(_: str):
            return answer

        policy = RobotsPolicy(fetch=fetch)
        parts = urlsplit(url)
        origin = f"{parts.scheme}://{parts.netloc}"
        verdicts = {}
        for path in ("/private/x", "/late/x", "/public/x"):
            failure = await policy.check(origin + path)
            verdicts[path] = failure.kind if failure is not None else "allowed"
        return {"status": answer.status, "body_bytes": len(answer.body), "error": answer.error, "verdicts": verdicts}

    return trio.run(main)


def peak_kib() -> int:
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith("VmHWM:"):
                return int(line.split()[1])
    raise RuntimeError("no VmHWM in /proc/self/status")


def main(argv: list[str]) -> None:
    lines = Lines()
    logging.getLogger().addHandler(lines)
    mode = argv[0]
    if mode == "sitemap":
        result = read_sitemap(argv[1])
    elif mode == "robots":
        result = read_robots(argv[1])
    elif mode == "baseline":
        result = {}
    else:
        raise SystemExit(f"unknown mode {mode!r}")
    result.update(warnings=lines.lines, vmhwm_kib=peak_kib())
    print(json.dumps(result))


if __name__ == "__main__":
    main(sys.argv[1:])
