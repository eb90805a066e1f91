"""Start a local Chromium, and stop it without leaving a process or a directory behind.

CDP goes over two pipes (``--remote-debugging-pipe``; see ``cdp/_transport.py``), not a
DevTools port: nothing listens, so no other local process or user can reach the
browser.  The pipes must be Chromium's file descriptors 3 and 4, which is why Chromium
is started with ``posix_spawn`` (``cdp/_process.py``) rather than ``subprocess``.
``--no-sandbox`` is passed only where the sandbox cannot start (``cdp/_sandbox.py``).

Stop sequence (shielded, bounded by ``stop_timeout_s`` in all):

1. ``Browser.close`` over the connection, then wait for the process to exit;
2. SIGTERM to the whole process group, wait; then SIGKILL to the group;
3. reap the browser (our child) by its pid; wait until no other process of its group
   is alive (they were the browser's children: whoever adopted them reaps them);
4. SIGKILL the browser's processes outside its group: Crashpad's handler daemonizes
   into its own session, so ``killpg`` misses it (it exits by itself once the browser
   is gone, but not always at once);
5. only when no such process is left, remove the temporary profile
   (Chromium rewrites it while shutting down, so an earlier ``rmtree`` races it).

Reaping: the launcher waits for its own child only, by pid, and reaps a process of
the browser that the host adopted (a host that made itself a child subreaper) by pid;
it never changes how the host process reaps, and never waits for anything else.  The
browser's orphans (Crashpad's handler; renderers, when the browser dies first) go to
init, or to whichever ancestor chose to be a subreaper; in a container, run an init
(``init: true``) so that orphans are reaped.

Crash dumps go to ``<profile>/Crash Reports`` (``BREAKPAD_DUMP_LOCATION``), not to
``~/.config/chromium``, so a crashed renderer leaves nothing outside the profile;
that path in the handler's command line is also how its processes are recognized.
With a temporary profile, Chromium's ``TMPDIR`` is ``<profile>/tmp``: a killed
browser leaves its ``org.chromium.Chromium.*`` directory (the singleton socket)
there, removed with the profile, rather than in /tmp for good.
"""

from __future__ import annotations

import logging
import os
import shutil
import signal
import subprocess
import tempfile
from collections.abc import AsyncIterator, Iterable, Sequence
from contextlib import asynccontextmanager
from functools import partial
from pathlib import Path

import psutil
import trio

from ._browser import Browser
from ._connection import DEFAULT_COMMAND_TIMEOUT_S, DEFAULT_MAX_MESSAGE_BYTES, Connection, open_pipe_connection
from ._errors import BrowserError, CDPError, ConnectionLost
from ._process import SpawnedProcess, spawn
from ._sandbox import no_sandbox_reason, read_sandbox_host

log = logging.getLogger("cdp.launcher")

EXECUTABLE_NAMES = ("chromium", "chromium-browser", "google-chrome", "headless_shell")

# Every default switch and why.  Not here, on purpose: ``--no-zygote`` (every child a
# fresh exec sharing no pages: the raw floor's peak PSS 496 -> 705 MiB over 100 pages in
# benchmarks/compare.py, CPU within noise) and ``--single-process`` (one renderer crash
# would kill the browser).  Added by launch() only where needed: ``--no-sandbox`` where
# the sandbox cannot start (root, no user namespaces: cdp/_sandbox.py; elsewhere it
# keeps a compromised renderer from the host's files), ``--disable-dev-shm-usage``
# where /dev/shm is small; and always ``--remote-debugging-pipe`` (no DevTools port).
DEFAULT_ARGS = (
    "--disable-setuid-sandbox",  # the namespace sandbox or none: never the setuid helper (rarely installed setuid)
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
    # Features off, in one switch (Chromium keeps only the last --disable-features):
    # - SpareRendererForSitePerProcess: the spare renderer Chromium starts ahead of the next
    #   navigation belongs to one browser context; with two contexts navigating in turn it
    #   was thrown away and started again at almost every navigation (200 pages at
    #   concurrency 4 started 82 renderers, 27 without);
    # - WebUIOmniboxPopup, WebUIOmniboxAimPopup: every window (each browser context has
    #   one) preloads its address bar's popup as WebUI pages in a renderer of its own,
    #   ~45 MiB, for an address bar no one sees (light profile, 300 pages: 41 renderers and
    #   640 MiB peak PSS with them, 33 and 510 MiB without, CPU per page 0.14 -> 0.10 s).
    "--disable-features=" + ",".join(("SpareRendererForSitePerProcess", "WebUIOmniboxPopup", "WebUIOmniboxAimPopup")),
    # A crawler works in many tabs at once, each in a window of its own, and none has the
    # user's attention: no tab's timers are throttled, its renderer deprioritised or its
    # window treated as occluded (without these, a hidden tab's setTimeout chain ran 9
    # times in its first second instead of 240).
    "--disable-background-timer-throttling",
    "--disable-renderer-backgrounding",
    "--disable-backgrounding-occluded-windows",
)
SMALL_SHM_BYTES = 512 * 2**20  # 512 MiB: below this /dev/shm (Docker's default is 64 MiB), use /tmp instead

STARTUP_TIMEOUT_S = 30.0
STOP_TIMEOUT_S = 10.0
POLITE_CLOSE_S = 3.0  # Browser.close and the wait for the process to exit
TERM_GRACE_S = 2.0  # after SIGTERM, before SIGKILL
EXIT_CODE_WAIT_S = 1.0  # a browser that closed its pipe at start: how long to wait for its exit code
STDERR_TAIL_BYTES = 2000
CRASH_DUMPS_DIR = "Crash Reports"
UNIX_SOCKET_PATH_MAX = 107  # bytes of a Unix socket's path (sun_path, less its NUL)
PROFILE_SOCKET_SUFFIX = "/cdp-profile-XXXXXXXX/tmp/org.chromium.Chromium.XXXXXX/SingletonSocket"


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

    The connection is a pair of pipes (``--remote-debugging-pipe``): the browser opens
    no DevTools port.  The sandbox stays on unless it cannot start here (see
    ``cdp/_sandbox.py``; one log line says why).  The profile is a fresh 0700
    temporary directory unless ``user_data_dir`` is given (then it is kept).  On exit,
    however the block exits (returned, raised, cancelled), the browser is stopped as
    described in the module docstring; the stop is shielded and bounded by
    ``stop_timeout_s``.  Raises BrowserError if Chromium cannot be found or started,
    exits early or does not answer within ``startup_timeout_s``.  Starts Chromium
    and the connection's reader task; no task outlives the block.  The host
    process's reaping is left as it was (no subreaper).
    """
    exe = find_executable(executable)
    no_sandbox = no_sandbox_reason(await read_sandbox_host())
    own_profile = user_data_dir is None
    profile = _temporary_profile() if own_profile else Path(user_data_dir)  # type: ignore[arg-type]
    profile.mkdir(parents=True, exist_ok=True)
    stderr_path = profile / "chromium-stderr.log"
    argv = [exe, *default_args, *_shm_args()]
    if no_sandbox is not None:
        argv.append("--no-sandbox")
        log.info("Chromium runs without its sandbox: %s", no_sandbox)
    if headless:
        argv.append("--headless=new")
    argv += ["--remote-debugging-pipe", f"--user-data-dir={profile}", *args, "about:blank"]
    argv = merge_feature_switches(argv)
    if any(arg.startswith("--remote-debugging-port") for arg in args):
        log.warning("a DevTools port was asked for (%s): any local process or user can drive this browser", args)
    env = {**os.environ, "BREAKPAD_DUMP_LOCATION": str(profile / CRASH_DUMPS_DIR)}
    if own_profile:  # a given profile may have a long path: keep the socket path short
        (profile / "tmp").mkdir()
        env["TMPDIR"] = str(profile / "tmp")
    proc: SpawnedProcess | None = None
    guard: trio.Process | None = None
    satellites: dict[int, psutil.Process] = {}
    try:
        proc, read_fd, write_fd = await _start_browser(argv, env, stderr_path)
        async with open_pipe_connection(  # owns our ends of the pipes from here on
            read_fd,
            write_fd,
            name=f"chromium[{proc.pid}]",
            max_message_bytes=max_message_bytes,
            command_timeout_s=command_timeout_s,
        ) as conn:
            guard = await _start_guard(proc.pid, profile if own_profile else None)
            browser = Browser(conn, pid=proc.pid)
            await _wait_started(browser, proc, stderr_path, startup_timeout_s)
            _find_satellites(proc.pid, profile, satellites)  # while alive: a zombie's command line is unreadable
            try:
                yield browser
            finally:
                with trio.move_on_after(POLITE_CLOSE_S, shield=True):
                    await _close_politely(conn)
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


def _temporary_profile() -> Path:
    """A fresh 0700 profile directory, in the temporary directory unless that is too
    deep for Chromium: its singleton socket, ``<profile>/tmp/org.chromium.Chromium.XXXXXX
    /SingletonSocket``, must fit a Unix socket address, and a longer one aborts Chromium
    at start ("Socket path too long").  Then it goes under /tmp, with one log line."""
    base = tempfile.gettempdir()
    if len(base) + len(PROFILE_SOCKET_SUFFIX) > UNIX_SOCKET_PATH_MAX and os.path.isdir("/tmp"):
        log.info("the temporary directory %s is too deep for Chromium's socket: its profile goes under /tmp", base)
        base = "/tmp"
    return Path(tempfile.mkdtemp(prefix="cdp-profile-", dir=base))


async def _start_browser(argv: list[str], env: dict[str, str], stderr_path: Path) -> tuple[SpawnedProcess, int, int]:
    """Spawn Chromium with the two CDP pipes on its fds 3 and 4 (stdin and stdout
    /dev/null, stderr to ``stderr_path``); returns it with our ends of the pipes (read,
    write), which the caller owns.  The spawn runs in a thread and is not cancellable
    (a cancelled spawn would leave a browser nobody knows of)."""
    commands_r, commands_w = os.pipe()  # we write commands; the browser reads on fd 3
    messages_r, messages_w = os.pipe()  # the browser writes on fd 4; we read
    child_ends = [commands_r, messages_w]
    ours = [messages_r, commands_w]
    try:
        child_ends.append(os.open(os.devnull, os.O_RDWR))
        child_ends.append(os.open(stderr_path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600))
        devnull, stderr_fd = child_ends[2], child_ends[3]
        fds = {0: devnull, 1: devnull, 2: stderr_fd, 3: commands_r, 4: messages_w}
        proc = await trio.to_thread.run_sync(partial(spawn, argv, env=env, fds=fds))
    except OSError as exc:
        for fd in ours:
            os.close(fd)
        raise BrowserError(f"cannot start {argv[0]}: {exc}") from exc
    except BaseException:
        for fd in ours:
            os.close(fd)
        raise
    finally:
        for fd in child_ends:
            os.close(fd)
    return proc, messages_r, commands_w


async def _wait_started(browser: Browser, proc: SpawnedProcess, stderr_path: Path, timeout_s: float) -> None:
    """The browser's first answers (discovery on, the initial tab closed) within
    ``timeout_s``; BrowserError with Chromium's stderr tail if it exits or stays silent."""
    with trio.move_on_after(timeout_s):
        try:
            await browser._start(close_initial_tabs=True)
            return
        except ConnectionLost:
            pass  # it closed the pipe: it exited, or is about to
        with trio.move_on_after(EXIT_CODE_WAIT_S):
            await proc.wait()
        code = "unknown" if proc.returncode is None else proc.returncode
        raise BrowserError(f"Chromium exited with code {code} at start: {_tail(stderr_path)}")
    raise BrowserError(f"Chromium did not answer on its DevTools pipe within {timeout_s:g} s: {_tail(stderr_path)}")


async def _close_politely(conn: Connection) -> None:
    try:
        await conn.send("Browser.close", timeout_s=POLITE_CLOSE_S)
    except CDPError:
        pass  # already gone, or about to be killed


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


def _tail(path: Path) -> str:
    try:
        data = path.read_bytes()[-STDERR_TAIL_BYTES:]
    except OSError:
        return "(no stderr)"
    return data.decode(errors="replace").strip().replace("\n", " | ") or "(no stderr)"


async def _stop_process_group(proc: SpawnedProcess | None) -> bool:
    """Stop and reap the browser, and wait until no other process of its group is
    alive. True when none is left. Must run shielded; the caller bounds it."""
    if proc is None:
        return True
    pgid = proc.pid  # started in a new session: the browser leads its own group
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
    # The group's other members (zygote, renderers, utility processes) may outlive the
    # browser for a moment.  They were the browser's children: once it is gone they
    # belong to init (or to a subreaper among our ancestors, or to us if the host made
    # itself one: then they are reaped here, by pid).  One that is dead but not ours
    # is its new parent's to reap (init reaps on its own schedule): it is gone for us.
    while True:
        pids = group_pids(pgid)
        for pid in pids:
            _kill_and_reap_nowait(pid)
        if _settled(pids):
            return True
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
    """SIGKILL one satellite and reap it if the host adopted it (never blocks). True when
    it is gone, reaped, or not ours to reap."""
    try:
        sat.kill()  # psutil checks that the pid was not reused
        return os.waitpid(sat.pid, os.WNOHANG)[0] != 0
    except (psutil.Error, ChildProcessError):
        return True  # gone, or not our child: its own parent reaps it


def _kill_and_reap_nowait(pid: int) -> None:
    """SIGKILL one process of the browser and reap it if it is our child and already
    dead (never blocks; waits for that pid only)."""
    try:
        os.kill(pid, signal.SIGKILL)
        os.waitpid(pid, os.WNOHANG)
    except (ChildProcessError, ProcessLookupError):
        pass


def _settled(pids: list[int]) -> bool:
    """Whether each process is gone, or dead and someone else's to reap."""
    me = os.getpid()
    for pid in pids:
        try:
            proc = psutil.Process(pid)
            if proc.status() != psutil.STATUS_ZOMBIE or proc.ppid() == me:
                return False
        except psutil.Error:
            continue
    return True


def _alive(pids: list[int]) -> bool:
    for pid in pids:
        try:
            if psutil.Process(pid).status() != psutil.STATUS_ZOMBIE:
                return True
        except psutil.Error:
            continue
    return False
