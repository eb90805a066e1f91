"""Run the crawler as a subprocess, kill it, and prove it left nothing behind."""

from __future__ import annotations

import ctypes
import os
import signal
import subprocess
import sys
from collections.abc import Sequence
from pathlib import Path

import psutil
import trio

REPO = Path(__file__).resolve().parent.parent


DEMO_EXTRACT_TOML = """
[extract]
wait_for = "body[data-ready]"
poll_interval_s = 0.02
[extract.fields]
name = "h1"
brand = { css = "p.brand" }
price = { css = "#price" }
image = { css = "img.main", attr = "src" }
stock = { js = "document.querySelector('#stock').textContent" }
[[extract.capture]]
name = "goods"
url_contains = "/api/goods/"
"""


def site_toml(name: str, inputs: str, db: str, settings: str) -> str:
    """A site file for ``python -m crawler``: the demo shop's extraction rules, the given
    ``[input]`` body and other sections, the database, and quick progress lines."""
    return (
        f'[site]\nname = "{name}"\n[input]\n{inputs.strip()}\n{settings.strip()}\n{DEMO_EXTRACT_TOML}'
        f'[output]\ndb = "{db}"\n[monitor]\nprogress_interval_s = 0.5\ninvariant_interval_s = 0.5\n'
    )


def write_config(path: Path, text: str) -> Path:
    path.write_text(text, encoding="utf-8")
    return path


def become_child_subreaper() -> None:
    """Make the test process a child subreaper (Linux), so that what a crawler or a
    Chromium leaves orphaned when a test kills it becomes the test's to reap (by pid,
    as the helpers here do).  The test process's own choice: ``cdp.launch`` never
    changes how its host reaps."""
    PR_SET_CHILD_SUBREAPER = 36
    libc = ctypes.CDLL(None, use_errno=True)
    if libc.prctl(PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0) != 0:
        raise OSError(ctypes.get_errno(), "prctl(PR_SET_CHILD_SUBREAPER) failed")


async def start_crawler(
    *args: str, cwd: Path, wrapper: Sequence[str] = (), env: dict[str, str] | None = None
) -> trio.Process:
    """``python -m crawler ARGS`` with stdout/stderr to files in ``cwd``, run through
    ``wrapper`` (an argv prefix that execs the rest) if given, with ``env`` added to
    the environment.  The test process
    becomes a child subreaper first, so the processes the crawler leaves when it is
    SIGKILLed are ours to reap."""
    become_child_subreaper()
    env = {**os.environ, "PYTHONPATH": str(REPO), "PYTHONUNBUFFERED": "1", **(env or {})}
    out, err = _open_logs(cwd)
    argv = [*wrapper, sys.executable, "-m", "crawler", *args]
    try:
        return await trio.lowlevel.open_process(
            argv, cwd=cwd, env=env, stdout=out, stderr=err, stdin=subprocess.DEVNULL
        )
    finally:
        os.close(out)
        os.close(err)


def _open_logs(cwd: Path) -> tuple[int, int]:
    flags = os.O_WRONLY | os.O_CREAT | os.O_APPEND
    return os.open(cwd / "crawler.out", flags, 0o644), os.open(cwd / "crawler.err", flags, 0o644)


def descendants(pid: int) -> list[psutil.Process]:
    try:
        return psutil.Process(pid).children(recursive=True)
    except psutil.Error:
        return []


async def wait_gone(procs: list[psutil.Process], timeout_s: float = 15.0) -> list[str]:
    """Wait until every process is gone, reaping those that became our children.
    Returns descriptions of any still alive or defunct after ``timeout_s``."""
    with trio.move_on_after(timeout_s):
        while True:
            left = []
            for proc in procs:
                _reap_nowait(proc.pid)
                if proc.is_running():
                    left.append(proc)
            if not left:
                return []
            procs = left
            await trio.sleep(0.05)
    out = []
    for proc in procs:
        try:
            out.append(f"{proc.pid} {proc.status()} {' '.join(proc.cmdline())[:80]}")
        except psutil.Error:
            pass
    return out


def _reap_nowait(pid: int) -> None:
    try:
        os.waitpid(pid, os.WNOHANG)
    except ChildProcessError:
        pass


def existing(paths: set[str]) -> set[str]:
    return {p for p in paths if os.path.exists(p)}


def profile_dirs(procs: list[psutil.Process]) -> set[str]:
    """The --user-data-dir of every Chromium among ``procs``."""
    dirs = set()
    for proc in procs:
        try:
            for arg in proc.cmdline():
                if arg.startswith("--user-data-dir="):
                    dirs.add(arg.split("=", 1)[1])
        except psutil.Error:
            pass
    return dirs


def kill(proc: trio.Process, sig: int = signal.SIGKILL) -> None:
    proc.send_signal(sig)


async def wait_all(procs: list[trio.Process], timeout_s: float) -> list[int]:
    """Every process's exit code, waited for up to ``timeout_s`` in all (TooSlowError
    past it); on the way out, however it leaves, any still running is killed and reaped."""
    try:
        with trio.fail_after(timeout_s):
            return [await proc.wait() for proc in procs]
    finally:
        for proc in procs:
            if proc.poll() is None:
                proc.kill()
                with trio.move_on_after(5, shield=True):
                    await proc.wait()
