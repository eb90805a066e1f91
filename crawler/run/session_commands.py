"""``crawler session export|import|clear``: the saved sessions of a crawl's store
(``[session] persist``, see :mod:`crawler.browser.saved`), in and out as Playwright's
storage-state JSON (:mod:`crawler.browser.storage_state`).

- ``export IDENTITY --config F [--out FILE]``: the identity's state (``direct``, or a
  proxy as ``scheme://host:port``) on standard output, or in FILE, created 0600 (a
  state is a login: whoever reads it is logged in).
- ``import FILE --config F [--identity ID]``: FILE checked (one line naming it and
  what is wrong, exit 2, if it is not storage-state JSON), then saved, as of now, for
  ID, or for every identity of the config (each proxy of ``[session] proxies``, or
  ``direct``): one login used through each.
- ``clear --config F``: every saved state of the crawl deleted.

The line on standard error says which identity and how many cookies and origins,
never a value.  Writing to a SQLite database a crawl holds is refused (exit 3), as
for any second process on it; export only reads, so it may run beside the crawl.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from typing import Any

import trio

from crawler import config as config_mod
from crawler.browser.session import DIRECT
from crawler.browser.storage_state import StateError, check_state, describe
from crawler.config import Config
from crawler.errors import ConfigError
from crawler.store import StoreSettings, open_store
from crawler.urls import redact_url

MAX_STATE_BYTES = 16 * 2**20  # a storage-state file larger than this is refused (16 MiB)


def session_command(args: argparse.Namespace) -> int:
    """Run ``crawler session <what>`` (``args.what``); 0 on success.  Raises
    ConfigError (exit 2) for bad input: an unreadable or invalid file, an identity
    without a state or not of the config."""
    cfg = config_mod.load(args.config)
    if cfg.store.backend != "redis" and not os.path.isfile(cfg.output.db) and args.what != "import":
        if args.what == "export":
            raise ConfigError(f"{cfg.source}: [output] db: no such database {cfg.output.db!r}")
        _say(f"crawler: no database at {cfg.output.db}: no saved session state to clear")
        return 0
    command = {"export": export_state, "import": import_state, "clear": clear_states}[args.what]
    return trio.run(command, cfg, args)


def identities(cfg: Config) -> list[str]:
    """The identities of a crawl of ``cfg``: each proxy's, or ``direct`` without any."""
    return [proxy.server for proxy in cfg.session.proxies] or [DIRECT]


def _where(cfg: Config) -> str:
    """The store, as the lines name it (no credentials)."""
    if cfg.store.backend == "redis":
        return f"the Redis store at {redact_url(cfg.store.url)}"
    return str(cfg.output.db)


def _say(text: str) -> None:
    print(text, file=sys.stderr, flush=True)


async def export_state(cfg: Config, args: argparse.Namespace) -> int:
    async with open_store(StoreSettings.of(cfg), exclusive=False) as store:  # a reader, as export is
        saved = await store.session_states.load(args.identity)
        if saved is None:
            known = await store.session_states.identities()
            raise ConfigError(
                f"{args.identity}: no saved session state in {_where(cfg)} (saved: {', '.join(known) or 'none'})"
            )
    text = json.dumps(saved.state, indent=2, ensure_ascii=False) + "\n"
    if args.out:
        await trio.to_thread.run_sync(write_private, args.out, text)
    else:
        sys.stdout.write(text)
        sys.stdout.flush()
    when = time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime(saved.saved_at))
    to = f" to {args.out}" if args.out else ""
    _say(f"crawler: exported the session state of {args.identity}{to} ({describe(saved.state)}; saved {when})")
    return 0


def write_private(path: str, text: str) -> None:
    """Write ``text`` to ``path``, readable by its owner only (0600, also when the file
    was there before).  ConfigError, one line, if it cannot be written."""
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_CLOEXEC, 0o600)
        with os.fdopen(fd, "w", encoding="utf-8") as out:
            os.fchmod(out.fileno(), 0o600)
            out.write(text)
    except OSError as exc:
        raise ConfigError(f"--out: cannot write {path!r}: {exc.strerror or exc}") from None


def read_state(path: str) -> dict[str, Any]:
    """The storage state in file ``path``, checked.  ConfigError, one line naming the
    file and what is wrong (never a value of it), if it is not one."""
    try:
        if os.path.getsize(path) > MAX_STATE_BYTES:
            raise ConfigError(f"{path}: over {MAX_STATE_BYTES} bytes: not a storage state")
        with open(path, encoding="utf-8") as file:
            data = json.load(file)
    except FileNotFoundError:
        raise ConfigError(f"{path}: no such file") from None
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read: {exc.strerror or exc}") from None
    except UnicodeDecodeError:
        raise ConfigError(f"{path}: not Playwright storage-state JSON: not UTF-8 text") from None
    except json.JSONDecodeError as exc:  # its message gives the place, not the text
        raise ConfigError(
            f"{path}: not Playwright storage-state JSON: not JSON ({exc.msg} at line {exc.lineno})"
        ) from None
    except RecursionError:
        raise ConfigError(f"{path}: not Playwright storage-state JSON: nested too deep") from None
    try:
        return check_state(data)
    except StateError as exc:
        raise ConfigError(f"{path}: not Playwright storage-state JSON: {exc}") from None


async def import_state(cfg: Config, args: argparse.Namespace) -> int:
    state = await trio.to_thread.run_sync(read_state, args.file)
    targets = identities(cfg)
    if args.identity is not None:
        if args.identity not in targets:
            raise ConfigError(
                f"--identity: {args.identity!r} is not an identity of {cfg.source} ({', '.join(targets)})"
            )
        targets = [args.identity]
    saved_at = time.time()
    async with open_store(StoreSettings.of(cfg)) as store:
        for identity in targets:
            await store.session_states.save(identity, state, saved_at)
    _say(f"crawler: imported {args.file} for {', '.join(targets)} ({describe(state)}) into {_where(cfg)}")
    if not cfg.session.persist:
        _say(f"crawler: {cfg.source}: [session] persist is off: a crawl restores it only with persist = true")
    return 0


async def clear_states(cfg: Config, args: argparse.Namespace) -> int:
    async with open_store(StoreSettings.of(cfg)) as store:
        cleared = await store.session_states.clear()
    _say(f"crawler: cleared {cleared} saved session state{'s' * (cleared != 1)} from {_where(cfg)}")
    return 0
