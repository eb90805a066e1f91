"""Start a local Chromium, and stop it without leaving a process or a directory behind.

Stop sequence (shielded, bounded by ``stop_timeout_s`` in all):

1. ``Browser.close`` over the connection, then wait for the process to exit;
2. SIGTERM to the whole process group, wait; then SIGKILL to the group;
3. reap: the browser through its ``trio.Process``, its children (which became
   ours because we are a child subreaper on Linux) by pid;
4. SIGKILL and reap the browser's processes outside its group: Crashpad's handler
   daemonizes into its own session, so ``killpg`` misses it, and as subreaper we
   inherit it (left unreaped, it stays a zombie for good);
5. only when no such process is left, remove the temporary profile
   (Chromium rewrites it while shutting down, so an earlier ``rmtree`` races it).

Crash dumps go to ``<profile>/Crash Reports`` (``BREAKPAD_DUMP_LOCATION``), not to
``~/.config/chromium``, so a crashed renderer leaves nothing outside the profile;
that path in the handler's command line is also how its processes are recognized.
With a temporary profile, Chromium's ``TMPDIR`` is ``<profile>/tmp``: a killed
browser leaves its ``org.chromium.Chromium.*`` directory (the singleton socket)
there, removed with the profile, rather than in /tmp for good.
"""

from __future__ import annotations

import ctypes
import logging
import os
import shutil
import signal
import subprocess
import sys
import tempfile
from collections.abc import AsyncIterator, Iterable, Sequence
from contextlib import asynccontextmanager
from pathlib import Path

import psutil
import trio

from ._browser import Browser
from ._connection import DEFAULT_COMMAND_TIMEOUT_S, DEFAULT_MAX_MESSAGE_BYTES, open_connection
from ._errors import BrowserError, CDPError

log = logging.getLogger("cdp.launcher")

EXECUTABLE_NAMES = ("chromium", "chromium-browser", "google-chrome", "headless_shell")

# Every default switch and why.  Not here, on purpose: ``--no-zygote`` (every child a
# fresh exec sharing no pages: the raw floor's peak PSS 496 -> 705 MiB over 100 pages in
# benchmarks/compare.py, CPU within noise) and ``--single-process`` (one renderer crash
# would kill the browser).  ``--disable-dev-shm-usage`` is added by launch() only where /dev/shm is small.
DEFAULT_ARGS = (
    "--no-sandbox",  # the setuid/namespace sandbox cannot start as root or in most containers
    "--disable-setuid-sandbox",  # the same, for the setuid helper
    "--disable-blink-features=AutomationControlled",  # navigator.webdriver stays false: sites block bots on it
    "--disable-gpu",  # servers have no GPU; compositing runs on the CPU anyway
    "--disable-software-rasterizer",  # no SwiftShader (software WebGL): CPU no product page needs
    "--disable-extensions",  # a fresh profile has none; no extension system to start
    "--disable-background-networking",  # no update, safe-browsing or field-trial requests on a closed network
    "--disable-default-apps",  # no default apps installed into the fresh profile
    "--no-first-run",  # no first-run dialogs and their set-up work
    "--disable-component-update",  # no component downloads (killed Chromes left their scratch in /tmp)
    "--disable-sync",  # no sync service
    "--disable-quic",  # TCP only: HTTP/3 over UDP bypasses HTTP proxies and is often blocked on servers
    "--no-default-browser-check",  # no default-browser probe at start
    "--mute-audio",  # servers have no audio device
    "--disable-back-forward-cache",  # a crawler never goes back: the cache only keeps old pages alive
    # The spare renderer Chromium starts ahead of the next navigation belongs to one browser
    # context: with two contexts navigating in turn it was thrown away and started again at
    # almost every navigation (200 pages at concurrency 4 started 82 renderers, 27 without).
    "--disable-features=SpareRendererForSitePerProcess",
    # A crawler works in many tabs at once and none of them has the user's attention:
    # no tab's timers are throttled or its renderer deprioritised as a background one.
    "--disable-background-timer-throttling",
    "--disable-renderer-backgrounding",
    "--disable-backgrounding-occluded-windows",
)
SMALL_SHM_BYTES = 512 * 2**20  # 512 MiB: below this /dev/shm (Docker's default is 64 MiB), use /tmp instead

STARTUP_TIMEOUT_S = 30.0
STOP_TIMEOUT_S = 10.0
POLITE_CLOSE_S = 3.0  # Browser.close and the wait for the process to exit
TERM_GRACE_S = 2.0  # after SIGTERM, before SIGKILL
STDERR_TAIL_BYTES = 2000
CRASH_DUMPS_DIR = "Crash Reports"


def find_executable(executable: str | os.PathLike[str] | None = None) -> str:
    """The Chromium binary: ``executable``, else ``$CHROME_PATH``, else the first of
    EXECUTABLE_NAMES on PATH. Raises BrowserError naming what was tried."""
    for candidate, source in ((executable, "executable"), (os.environ.get("CHROME_PATH"), "CHROME_PATH")):
        if candidate:
            path = shutil.which(str(candidate))
            if path is None:
                raise BrowserError(f"{source}={candidate!s} is not an executable file")
            return path
    for name in EXECUTABLE_NAMES:
        path = shutil.which(name)
        if path is not None:
            return path
    raise BrowserError(
        "no Chromium found: set CHROME_PATH, or install it (Debian: apt-get install -y chromium); "
        f"tried {', '.join(EXECUTABLE_NAMES)} on PATH"
    )


def become_child_subreaper() -> bool:
    """Make orphaned descendants (Chromium's renderers, once the browser died) our
    children, so that we can reap them instead of leaving zombies when PID 1 does
    not (Linux only; True if set)."""
    if not sys.platform.startswith("linux"):
        return False
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        PR_SET_CHILD_SUBREAPER = 36
        return libc.prctl(PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0) == 0
    except (OSError, AttributeError):
        return False


def _shm_args() -> list[str]:
    """``--disable-dev-shm-usage`` where /dev/shm is missing or small (containers): there
    Chromium's shared memory runs out and renderers crash; elsewhere /dev/shm is faster."""
    try:
        st = os.statvfs("/dev/shm")
    except OSError:
        return ["--disable-dev-shm-usage"]
    if st.f_frsize * st.f_blocks < SMALL_SHM_BYTES:
        log.info("/dev/shm is under %d MiB: Chromium keeps its shared memory in /tmp", SMALL_SHM_BYTES // 2**20)
        return ["--disable-dev-shm-usage"]
    return []


def merge_feature_switches(argv: Sequence[str]) -> list[str]:
    """``argv`` with every ``--enable-features=`` and every ``--disable-features=`` merged
    into one each, where the first of them stood: Chromium keeps only the last of each,
    so a caller's ``--disable-features=X`` would otherwise undo the defaults' list."""
    merged: dict[str, list[str]] = {}
    out: list[str] = []
    for arg in argv:
        switch, sep, value = arg.partition("=")
        if sep and switch in ("--enable-features", "--disable-features"):
            if switch not in merged:
                merged[switch] = []
                out.append(switch)
            for name in value.split(","):
                if name and name not in merged[switch]:
                    merged[switch].append(name)
        else:
            out.append(arg)
    return [f"{arg}={','.join(merged[arg])}" if arg in merged else arg for arg in out]


def group_pids(pgid: int) -> list[int]:
    """Every live or zombie process of a process group."""
    pids = []
    for proc in psutil.process_iter():
        try:
            if os.getpgid(proc.pid) == pgid:
                pids.append(proc.pid)
        except (ProcessLookupError, PermissionError, psutil.Error):
            continue
    return pids


@asynccontextmanager
async def launch(
    *,
    executable: str | os.PathLike[str] | None = None,
    headless: bool = True,
    args: Sequence[str] = (),
    user_data_dir: str | os.PathLike[str] | None = None,
    default_args: Sequence[str] = DEFAULT_ARGS,
    startup_timeout_s: float = STARTUP_TIMEOUT_S,
    stop_timeout_s: float = STOP_TIMEOUT_S,
    command_timeout_s: float = DEFAULT_COMMAND_TIMEOUT_S,
    max_message_bytes: int = DEFAULT_MAX_MESSAGE_BYTES,
) -> AsyncIterator[Browser]:
    """Start Chromium in its own process group and yield a connected :class:`Browser`.

    The profile is a fresh 0700 temporary directory unless ``user_data_dir`` is
    given (then it is kept).  On exit, however the block exits (returned, raised,
    cancelled), the browser is stopped as described in the module docstring; the
    stop is shielded and bounded by ``stop_timeout_s``.  Raises BrowserError if
    Chromium cannot be found, exits early or does not open its DevTools port in
    ``startup_timeout_s``.  Starts Chromium and the connection's reader task; no
    task outlives the block.
    """
    exe = find_executable(executable)
    become_child_subreaper()
    own_profile = user_data_dir is None
    profile = Path(tempfile.mkdtemp(prefix="cdp-profile-")) if own_profile else Path(user_data_dir)  # type: ignore[arg-type]
    profile.mkdir(parents=True, exist_ok=True)
    port_file = profile / "DevToolsActivePort"
    port_file.unlink(missing_ok=True)
    stderr_path = profile / "chromium-stderr.log"
    argv = [exe, *default_args, *_shm_args()]
    if headless:
        argv.append("--headless=new")
    argv += ["--remote-debugging-port=0", f"--user-data-dir={profile}", *args, "about:blank"]
    argv = merge_feature_switches(argv)
    env = {**os.environ, "BREAKPAD_DUMP_LOCATION": str(profile / CRASH_DUMPS_DIR)}
    if own_profile:  # a given profile may have a long path: keep the socket path short
        (profile / "tmp").mkdir()
        env["TMPDIR"] = str(profile / "tmp")
    proc: trio.Process | None = None
    guard: trio.Process | None = None
    satellites: dict[int, psutil.Process] = {}
    browser: Browser | None = None
    try:
        stderr_fd = os.open(stderr_path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        try:
            proc = await trio.lowlevel.open_process(
                argv,
                stdin=subprocess.DEVNULL,
                stdout=subprocess.DEVNULL,
                stderr=stderr_fd,
                env=env,
                start_new_session=True,
            )
        finally:
            os.close(stderr_fd)
        guard = await _start_guard(proc.pid, profile if own_profile else None)
        ws_url = await _wait_for_port_file(proc, port_file, stderr_path, startup_timeout_s)
        _find_satellites(proc.pid, profile, satellites)  # while alive: a zombie's command line is unreadable
        async with open_connection(
            ws_url, max_message_bytes=max_message_bytes, command_timeout_s=command_timeout_s
        ) as conn:
            browser = Browser(conn, pid=proc.pid)
            await browser._start(close_initial_tabs=True)
            try:
                yield browser
            finally:
                with trio.move_on_after(POLITE_CLOSE_S, shield=True):
                    try:
                        await conn.send("Browser.close", timeout_s=POLITE_CLOSE_S)
                    except CDPError:
                        pass  # already gone, or about to be killed
    finally:
        with trio.move_on_after(stop_timeout_s, shield=True):
            if proc is not None:
                _find_satellites(proc.pid, profile, satellites)
            gone = await _stop_process_group(proc)
            gone = gone and await _stop_satellites(satellites.values())
            await _stop_guard(guard)
            if own_profile and gone:
                await trio.to_thread.run_sync(shutil.rmtree, profile, True)
        if own_profile and profile.exists():
            log.warning("profile %s left behind: Chromium's processes did not all exit", profile)


# The guard: a shell in its own session, blocked reading a pipe whose only writer is
# us.  If we die without stopping the browser (SIGKILL, OOM kill), the pipe closes,
# the read returns, and the guard kills the browser's whole process group, gives
# Crashpad's handler a moment to follow, and removes the temporary profile (given as
# $2, empty for a caller's own profile).  On a normal stop we kill the guard first,
# so it never signals a group id that the system may have reused.
GUARD_SCRIPT = 'read _ ; kill -KILL "-$1" 2>/dev/null; sleep 1; [ -n "$2" ] && rm -rf -- "$2"'


async def _start_guard(pgid: int, profile: Path | None) -> trio.Process:
    return await trio.lowlevel.open_process(
        ["/bin/sh", "-c", GUARD_SCRIPT, "cdp-browser-guard", str(pgid), str(profile) if profile else ""],
        stdin=subprocess.PIPE,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )


async def _stop_guard(guard: trio.Process | None) -> None:
    """Kill and reap the guard (must run shielded; the caller bounds it)."""
    if guard is None:
        return
    guard.kill()
    await guard.wait()
    if guard.stdin is not None:
        await guard.stdin.aclose()


async def _wait_for_port_file(proc: trio.Process, port_file: Path, stderr_path: Path, timeout_s: float) -> str:
    with trio.move_on_after(timeout_s):
        while True:
            if proc.poll() is not None:
                raise BrowserError(f"Chromium exited with code {proc.returncode} at start: {_tail(stderr_path)}")
            ws_url = _read_port_file(port_file)
            if ws_url is not None:
                return ws_url
            await trio.sleep(0.05)
    raise BrowserError(f"Chromium did not write {port_file} within {timeout_s:g} s: {_tail(stderr_path)}")


def _read_port_file(port_file: Path) -> str | None:
    """The browser websocket URL from DevToolsActivePort (port, then path), once complete."""
    try:
        lines = port_file.read_text().split("\n")
    except FileNotFoundError:
        return None
    if len(lines) >= 2 and lines[0].strip().isdigit() and lines[1].strip():
        return f"ws://127.0.0.1:{lines[0].strip()}{lines[1].strip()}"
    return None


def _tail(path: Path) -> str:
    try:
        data = path.read_bytes()[-STDERR_TAIL_BYTES:]
    except OSError:
        return "(no stderr)"
    return data.decode(errors="replace").strip().replace("\n", " | ") or "(no stderr)"


async def _stop_process_group(proc: trio.Process | None) -> bool:
    """Stop and reap the browser and every process of its group. True when none is left.
    Must run shielded; the caller bounds it."""
    if proc is None:
        return True
    pgid = proc.pid  # start_new_session: the browser leads its own group
    with trio.move_on_after(POLITE_CLOSE_S):
        await proc.wait()
    for sig, grace in ((signal.SIGTERM, TERM_GRACE_S), (signal.SIGKILL, None)):
        if proc.returncode is not None and not _alive(group_pids(pgid)):
            break
        try:
            os.killpg(pgid, sig)
        except ProcessLookupError:
            break
        if grace is not None:
            with trio.move_on_after(grace):
                await proc.wait()
    await proc.wait()
    # The group's other members (renderers, utility processes) may outlive the
    # browser for a moment; reap those that became our children, until none is left.
    while True:
        pids = group_pids(pgid)
        if not pids:
            return True
        for pid in pids:
            _kill_and_reap_nowait(pid)
        await trio.sleep(0.02)


def _find_satellites(pgid: int, profile: Path, found: dict[int, psutil.Process]) -> None:
    """Add to ``found`` the live processes outside the browser's group that Chromium
    started for this profile (Crashpad's handler and its monitor)."""
    marker = f"--database={profile / CRASH_DUMPS_DIR}"
    for proc in psutil.process_iter():
        try:
            if proc.pid not in found and os.getpgid(proc.pid) != pgid and marker in proc.cmdline():
                found[proc.pid] = proc
        except (ProcessLookupError, PermissionError, psutil.Error):
            continue


async def _stop_satellites(satellites: Iterable[psutil.Process]) -> bool:
    """SIGKILL the browser's processes outside its group and reap those that are our
    children. True when none is left. Must run shielded; the caller bounds it."""
    left = list(satellites)
    while True:
        left = [sat for sat in left if not _kill_and_reap_satellite(sat)]
        if not left:
            return True
        await trio.sleep(0.02)


def _kill_and_reap_satellite(sat: psutil.Process) -> bool:
    """SIGKILL one satellite and reap it if it is our child (never blocks). True when it
    is gone, reaped, or not ours to reap."""
    try:
        sat.kill()  # psutil checks that the pid was not reused
        return os.waitpid(sat.pid, os.WNOHANG)[0] != 0
    except (psutil.Error, ChildProcessError):
        return True  # gone, or not our child: its own parent reaps it


def _kill_and_reap_nowait(pid: int) -> None:
    """SIGKILL one process and reap it if it is our child and already dead (never blocks)."""
    try:
        os.kill(pid, signal.SIGKILL)
        os.waitpid(pid, os.WNOHANG)
    except (ChildProcessError, ProcessLookupError):
        pass


def _alive(pids: list[int]) -> bool:
    for pid in pids:
        try:
            if psutil.Process(pid).status() != psutil.STATUS_ZOMBIE:
                return True
        except psutil.Error:
            continue
    return False
