"""The URLs a config asks for, streamed: files are read line by line, never whole, and
an id range is counted, never listed.

The input is one sequence of *entries* (the ``urls``, then the ``url_file`` lines, then
the ids of ``ids`` and ``ids_file`` filled into ``url_template``, then the page URLs of
the ``sitemaps``, see :mod:`crawler.sources.sitemaps`), each one URL.  The
crawl feeds it into the frontier a little ahead of the workers (see
:mod:`crawler.sources.feed`) and stores how many entries it fed, so that a rerun continues
with entry ``start`` (:func:`iter_urls`) rather than reading everything again.
Every URL passes :func:`crawler.config.check_url`, which names the source of a bad one.
"""

from __future__ import annotations

import hashlib
import itertools
import json
from collections.abc import Generator, Iterator
from pathlib import Path

from crawler.config import InputSection, check_url, parse_id_range
from crawler.errors import ConfigError
from crawler.sources.sitemaps import iter_sitemap_urls


def input_key(inp: InputSection, base_dir: str | Path = ".") -> str:
    """What identifies the input (the keys of ``[input]``, file paths resolved): the
    fed position is kept per key, so a changed input starts again from its first entry
    (the store drops the URLs it has already).  A file that grows (lines appended) keeps
    its key: the rerun continues with the new lines.  ``base_dir``: the config file's
    folder, that file paths are relative to."""
    spec = {
        "urls": list(inp.urls),
        "url_file": str(Path(base_dir, inp.url_file).resolve()) if inp.url_file else "",
        "url_template": inp.url_template,
        "ids": inp.ids,
        "ids_file": str(Path(base_dir, inp.ids_file).resolve()) if inp.ids_file else "",
    }
    if inp.sitemaps:  # only when set: the key of an input without sitemaps stays what it was
        spec.update(sitemaps=list(inp.sitemaps), sitemap_include=list(inp.sitemap_include))
    return hashlib.sha256(json.dumps(spec, sort_keys=True).encode()).hexdigest()[:16]


def iter_urls(
    inp: InputSection, start: int = 0, *, base_dir: str | Path = ".", source: str = "<config>"
) -> Iterator[str]:
    """Every input URL in order, from entry number ``start`` (0: the first), in
    canonical form (duplicates included; the store drops them).  Skipping costs no
    parsing (an id range skips by arithmetic).  Raises ConfigError naming the source
    (the key, or the file and line) of a bad entry.  File paths are relative to
    ``base_dir``; ``source`` (the config file) is named in errors."""
    src = source
    skip = start
    if skip < len(inp.urls):
        for url in inp.urls[skip:]:
            yield check_url(url, where=f"{src}: [input] urls")
    skip = max(0, skip - len(inp.urls))
    if inp.url_file:
        path = Path(base_dir, inp.url_file)
        lines = _lines(path, src, "url_file")
        skip -= _skip(lines, skip)
        for lineno, line in lines:
            yield check_url(line, where=f"{path}:{lineno}")
    if inp.url_template:
        skip = yield from _template_urls(inp, skip, base_dir, src)
    if inp.sitemaps:  # read again from the start on a rerun: the entries fed before are parsed, not fed
        urls = iter_sitemap_urls(inp.sitemaps, inp.sitemap_include)
        _skip(urls, skip)
        yield from urls


def _template_urls(inp: InputSection, skip: int, base_dir: str | Path, src: str) -> Generator[str, None, int]:
    """The URLs of ``url_template`` filled from ``ids`` then ``ids_file``, after the first
    ``skip``; returns how many of ``skip`` are left to skip after them."""
    template = inp.url_template
    where = f"{src}: [input] url_template"
    if inp.ids:
        low, high = parse_id_range(inp.ids, where=f"{src}: [input] ids")
        first = low + skip
        skip = max(0, first - high - 1)
        for i in range(first, high + 1):
            yield check_url(template.replace("{id}", str(i)), where=where)
    if inp.ids_file:
        path = Path(base_dir, inp.ids_file)
        lines = _lines(path, src, "ids_file")
        skip -= _skip(lines, skip)
        for lineno, line in lines:
            if any(c.isspace() or c in "/?#" for c in line):
                raise ConfigError(f"{path}:{lineno}: expected an id, got {line[:60]!r}")
            yield check_url(template.replace("{id}", line), where=f"{where} (id at {path}:{lineno})")
    return skip


def _skip(lines: Iterator[tuple[int, str]], n: int) -> int:
    """Consume up to ``n`` entries of ``lines``; returns how many there were."""
    return sum(1 for _ in itertools.islice(lines, n))


def _lines(path, source: str, key: str) -> Iterator[tuple[int, str]]:
    try:
        with open(path, encoding="utf-8") as f:
            for lineno, raw in enumerate(f, 1):
                line = raw.strip()
                if line and not line.startswith("#"):
                    yield lineno, line
    except OSError as exc:
        raise ConfigError(f"{source}: [input] {key}: cannot read {str(path)!r}: {exc.strerror or exc}") from None
    except UnicodeDecodeError:
        raise ConfigError(f"{source}: [input] {key}: {str(path)!r} is not UTF-8 text") from None
