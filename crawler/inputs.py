"""The URLs a config asks for, streamed: files are read line by line, never whole."""

from __future__ import annotations

from collections.abc import Iterator

from .config import Config, ConfigError, check_url, parse_id_range


def iter_urls(config: Config) -> Iterator[str]:
    """Every input URL in order (duplicates included; the store drops them).
    Raises ConfigError naming the file and line of a bad entry."""
    inp, src = config.input, config.source
    yield from inp.urls
    if inp.url_file:
        path = config.path(inp.url_file)
        for lineno, line in _lines(path, src, "url_file"):
            yield check_url(line, where=f"{path}:{lineno}")
    if inp.url_template:
        if inp.ids:
            low, high = parse_id_range(inp.ids, where=f"{src}: [input] ids")
            for i in range(low, high + 1):
                yield inp.url_template.replace("{id}", str(i))
        if inp.ids_file:
            path = config.path(inp.ids_file)
            for lineno, line in _lines(path, src, "ids_file"):
                if any(c.isspace() or c in "/?#" for c in line):
                    raise ConfigError(f"{path}:{lineno}: expected an id, got {line!r}")
                yield inp.url_template.replace("{id}", line)


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
