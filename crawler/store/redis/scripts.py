"""The Lua scripts of the Redis store: every transition of a URL is one of them, so it
is atomic on the server (see :mod:`crawler.store.redis.store` for the keys and the states).

Each script of a crawl takes the crawl's key prefix ``P`` as KEYS[1], then the crawl's
fixed keys it touches (``P pending``, ``P leases``...: :data:`SCRIPT_KEYS`, found in
its source), and reads Redis's own clock, so workers whose clocks disagree still agree
on lease expiries and ready times.  The keys of one URL (``P u:<id>``) or one worker
(``P held:<worker>``) cannot be declared: a claim finds its URL as it runs.  They share
the crawl's hash tag (``crawler:{<crawl>}:``), so every key a script touches is in one
Redis Cluster slot, the one its declared keys route it to.  Every
script is safe to run twice (a client retries a call whose connection broke).

The scripts are the files ``lua/<name>.lua`` of this package, read once at import.  A
file opens with its header, comment lines saying what the script takes and returns,
then a blank line; the header is not sent to Redis.  A line ``-- #include <file>``
stands for the code of another file of ``lua/`` (those whose names start with ``_``
are such shared parts, not scripts), and ``{REQUEST_FIELDS}`` and ``{JOB_FIELDS}`` are
filled in from the values below.
"""

from __future__ import annotations

import re
from importlib.resources import files

REQUEST_FIELDS = 5  # script arguments per request: url, label, depth, data, parent (see layout.encode_request)

# The fields of a URL record a claim returns, after the id (see ``_job`` in crawler.store.redis.leases).
_JOB_FIELDS = "'url', 'attempts', 'label', 'depth', 'data', 'parent'"

_LUA = files(__package__) / "lua"
_INCLUDE = re.compile(r"^-- #include (\S+)\n", re.MULTILINE)
_FILLED_IN = {"{REQUEST_FIELDS}": str(REQUEST_FIELDS), "{JOB_FIELDS}": _JOB_FIELDS}


def _code(file: str) -> str:
    """The code of ``lua/<file>``: what follows its header and the blank line after it,
    its includes replaced by the code of the files they name."""
    header, blank, code = (_LUA / file).read_text(encoding="utf-8").partition("\n\n")
    if not blank or not all(line.startswith("--") for line in header.splitlines()):
        raise ValueError(f"lua/{file} does not open with a header of comment lines, then a blank line")
    return _INCLUDE.sub(lambda include: _code(include.group(1)), code)


def _script(name: str) -> str:
    """The text of script ``name`` as sent to Redis."""
    source = "\n" + _code(f"{name}.lua")
    for placeholder, value in _FILLED_IN.items():
        source = source.replace(placeholder, value)
    return source


SCRIPTS = {
    name: _script(name)
    for name in (
        "pace_acquire",  # the shared host pace (crawler.store.redis.pace)
        "pace_release",
        "pace_back_off",
        "time",
        "add_urls",
        "claim",
        "complete",
        "requeue_due",
        "item_batch",
        "recover",
        "finish",
        "release_held",
        "renew",
        "next_ready_in",
        "counts",
        "held_urls",
        "push_capped",
        "retry_failed",
        "save_input_position",
        "session_save",  # the saved session states (crawler.store.redis.sessions)
        "session_load",
        "session_delete",
        "session_clear",
        "login_acquire",
        "login_renew",
        "login_release",
    )
}


# The crawl's fixed keys each crawl script touches (``K .. 'name'`` in its source; not
# the per-URL or per-worker ones, whose names end in ':'), declared after the prefix.
SCRIPT_KEYS: dict[str, tuple[str, ...]] = {
    name: tuple(dict.fromkeys(re.findall(r"K \.\. '([a-z_]+)'", source)))
    for name, source in SCRIPTS.items()
    if "local K" in source
} | {"next_ready_in": ("pending", "leases")}  # named in a Lua list there
