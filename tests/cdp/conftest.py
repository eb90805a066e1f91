"""Fixtures for the real-Chromium tests of ``cdp``.

- ``http_server``: a tiny trio HTTP/1.0 server on 127.0.0.1 (port 0), serving a
  few fixed pages; it runs in the fixture's nursery and stops when the test ends.
- ``browser``: a launched headless Chromium (``cdp.launch``), stopped on exit.
- ``tab``: a tab in a fresh context of ``browser``.
- ``chromium_process``: a factory that starts Chromium as a plain subprocess on a
  given DevTools port (for ``cdp.connect``); every process it started is killed
  with its whole group, reaped, and its profile removed at teardown.

Plus helpers that check a launched browser left nothing behind.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import socket
import subprocess
import tempfile
from collections.abc import AsyncIterator, Callable
from functools import partial
from pathlib import Path

import attrs
import psutil
import pytest
import trio

import cdp
from tests.procs import become_child_subreaper

HTTP_READ_TIMEOUT_S = 5.0
STOP_BUDGET_S = 10.0

PAGES: dict[str, tuple[str, bytes]] = {
    "/": ("text/html", b"<!doctype html><title>index</title><p>index</p>"),
    "/answer": (
        "text/html",
        b"<!doctype html><title>answer page</title>"
        b"<script>window.answer = {value: 42, items: ['a', 'b']};</script><p id=p>forty-two</p>",
    ),
    "/other": ("text/html", b"<!doctype html><title>other</title><p>other</p>"),
}


@attrs.define
class HttpServer:
    port: int
    requests: list[str] = attrs.field(factory=list)

    def url(self, path: str = "/") -> str:
        return f"http://127.0.0.1:{self.port}{path}"


async def _handle(server: HttpServer, stream: trio.SocketStream) -> None:
    """Answer one request and close. A client that sends nothing (a speculative
    preconnect) is dropped after HTTP_READ_TIMEOUT_S."""
    async with stream:
        data = b""
        with trio.move_on_after(HTTP_READ_TIMEOUT_S):
            while b"\r\n\r\n" not in data and len(data) < 65536:
                chunk = await stream.receive_some(4096)
                if not chunk:
                    break
                data += chunk
        request_line = data.split(b"\r\n", 1)[0].decode("latin-1")
        parts = request_line.split()
        if len(parts) < 2:
            return
        path = parts[1].split("?", 1)[0]
        server.requests.append(path)
        content_type, body = PAGES.get(path, ("text/plain", b"not found"))
        status = "200 OK" if path in PAGES else "404 Not Found"
        head = (
            f"HTTP/1.0 {status}\r\nContent-Type: {content_type}\r\n"
            f"Content-Length: {len(body)}\r\nCache-Control: no-store\r\nConnection: close\r\n\r\n"
        )
        try:
            await stream.send_all(head.encode() + body)
        except trio.BrokenResourceError:
            pass


@pytest.fixture
async def http_server() -> AsyncIterator[HttpServer]:
    """An HTTP server on 127.0.0.1 serving PAGES; stopped (cancelled) at teardown."""
    async with trio.open_nursery() as nursery:
        server = HttpServer(port=0)
        listeners = await nursery.start(partial(trio.serve_tcp, partial(_handle, server), 0, host="127.0.0.1"))
        server.port = listeners[0].socket.getsockname()[1]
        yield server
        nursery.cancel_scope.cancel()


@pytest.fixture
async def browser() -> AsyncIterator[cdp.Browser]:
    async with cdp.launch(stop_timeout_s=STOP_BUDGET_S) as browser:
        yield browser


@pytest.fixture
async def tab(browser: cdp.Browser) -> AsyncIterator[cdp.Tab]:
    async with browser.new_context() as context, context.new_tab() as tab:
        yield tab


# -- helpers -------------------------------------------------------------------------


async def wait_until(predicate: Callable[[], object], *, timeout_s: float = 5.0) -> None:
    """Poll state that no event signals (the connection's tables, the process table)."""
    with trio.fail_after(timeout_s):
        while not predicate():  # noqa: ASYNC110 - nothing to wait on but the state itself
            await trio.sleep(0.01)


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on (right now)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def profile_dir_of(pid: int) -> Path:
    """The --user-data-dir of a running Chromium, from its command line."""
    for arg in psutil.Process(pid).cmdline():
        if arg.startswith("--user-data-dir="):
            return Path(arg.split("=", 1)[1])
    raise AssertionError(f"process {pid} has no --user-data-dir")


# cdp.launch() opens no DevTools port (it talks over pipes).  A test that attaches a
# second client to a browser it launched (cdp.connect, a proxy in between) asks for a
# port as well, with these extra args, and finds it with devtools_ws_url().
WITH_DEVTOOLS_PORT = ("--remote-debugging-port=0",)


async def devtools_ws_url(browser: cdp.Browser, *, timeout_s: float = 10.0) -> str:
    """The browser websocket URL of a browser launched with WITH_DEVTOOLS_PORT, from the
    ``DevToolsActivePort`` file in its profile (two lines: port, path)."""
    port_file = profile_dir_of(browser.pid) / "DevToolsActivePort"  # type: ignore[arg-type]

    def complete() -> bool:
        try:
            lines = port_file.read_text().split("\n")
        except FileNotFoundError:
            return False
        return len(lines) >= 2 and lines[0].strip().isdigit() and bool(lines[1].strip())

    await wait_until(complete, timeout_s=timeout_s)
    port, path = port_file.read_text().split("\n")[:2]
    return f"ws://127.0.0.1:{port.strip()}{path.strip()}"


def describe(pids: list[int]) -> list[str]:
    out = []
    for pid in pids:
        try:
            proc = psutil.Process(pid)
            out.append(f"{pid} {proc.status()} {' '.join(proc.cmdline()[:2])}")
        except psutil.Error:
            out.append(f"{pid} (gone)")
    return out


def processes_of_profile(profile: Path) -> list[psutil.Process]:
    """Every live process whose command line names the profile: the browser's group
    (--user-data-dir) and Crashpad's handler outside it (--database=<profile>/Crash Reports)."""
    found = []
    for proc in psutil.process_iter():
        try:
            if any(str(profile) in arg for arg in proc.cmdline()):
                found.append(proc)
        except psutil.Error:
            continue
    return found


def browser_processes(pgid: int, profile: Path, since: float) -> list[psutil.Process]:
    """Every process of a running browser, to check later that none is left: its group,
    whatever names its profile (Crashpad's handler daemonizes into its own session),
    and our children started since ``since`` (time.time()) outside the group (the
    handler, adopted by the test process when an earlier test made it a subreaper)."""
    found = {p.pid: p for p in processes_of_profile(profile)}
    for pid in cdp.group_pids(pgid):
        try:
            found.setdefault(pid, psutil.Process(pid))
        except psutil.Error:
            continue
    for child in psutil.Process().children():
        try:
            if child.create_time() >= since - 1:
                found.setdefault(child.pid, child)
        except psutil.Error:
            continue
    return list(found.values())


def singleton_dir_of(profile: Path) -> Path:
    """The directory of Chromium's singleton socket (``org.chromium.Chromium.*`` in its
    TMPDIR), which a killed Chromium does not remove."""
    return Path(os.readlink(profile / "SingletonSocket")).parent


def assert_nothing_left(pgid: int, profile: Path, processes: list[psutil.Process], singleton_dir: Path) -> None:
    """No process of the browser's group and none of ``processes`` (snapshotted while
    the browser ran) is alive, and none is left unreaped to us: a dead one may only
    wait for another parent (init, which adopts the browser's children when the
    browser exits first, and reaps on its own schedule).  No profile directory and no
    singleton socket directory remain."""
    me = os.getpid()
    group = [p for p in map(_process, cdp.group_pids(pgid)) if p is not None]
    # is_running() is True for a zombie, and False for a pid reused by another process.
    left = [p for p in {p.pid: p for p in [*group, *processes]}.values() if p.is_running()]
    alive = [p.pid for p in left if _status(p) not in (psutil.STATUS_ZOMBIE, None)]
    assert alive == [], f"processes of the browser left running: {describe(alive)}"
    ours = [p.pid for p in left if _parent(p) == me]
    assert ours == [], f"processes of the browser left to us unreaped: {describe(ours)}"
    assert not profile.exists(), f"profile {profile} left behind: {os.listdir(profile)}"
    assert not singleton_dir.exists(), f"{singleton_dir} left behind"


def _process(pid: int) -> psutil.Process | None:
    try:
        return psutil.Process(pid)
    except psutil.Error:
        return None


def _status(proc: psutil.Process) -> str | None:
    try:
        return proc.status()
    except psutil.Error:
        return None


def _parent(proc: psutil.Process) -> int | None:
    try:
        return proc.ppid()
    except psutil.Error:
        return None


def _kill_and_reap(pgid: int, others: list[psutil.Process]) -> bool:
    """SIGKILL a process group and ``others``, reap those that are our children.
    True when none is left to reap."""
    try:
        os.killpg(pgid, signal.SIGKILL)
    except ProcessLookupError:
        pass
    left = False
    for pid in cdp.group_pids(pgid):
        left = True
        try:
            os.waitpid(pid, os.WNOHANG)
        except ChildProcessError:
            pass
    for proc in others:
        try:
            proc.kill()
            left = left or os.waitpid(proc.pid, os.WNOHANG)[0] == 0
        except (psutil.NoSuchProcess, ChildProcessError):
            pass
    return not left


@attrs.define
class ChromiumProcesses:
    """Chromiums started as plain subprocesses, each in its own session."""

    started: list[tuple[trio.Process, Path]] = attrs.field(factory=list)

    async def start(self, port: int) -> trio.Process:
        become_child_subreaper()  # orphaned renderers become ours, to be reaped
        profile = Path(tempfile.mkdtemp(prefix="cdp-test-profile-"))
        (profile / "tmp").mkdir()  # Chromium's TMPDIR: what it leaves when killed goes with the profile
        no_sandbox = cdp.no_sandbox_reason(await cdp.read_sandbox_host()) is not None
        argv = [
            cdp.find_executable(),
            *cdp.DEFAULT_ARGS,
            *(["--no-sandbox"] if no_sandbox else []),
            "--headless=new",
            f"--remote-debugging-port={port}",
            f"--user-data-dir={profile}",
            "about:blank",
        ]
        proc = await trio.lowlevel.open_process(
            argv,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            # Crash dumps into the profile, which also marks Crashpad's handler as ours.
            env={
                **os.environ,
                "BREAKPAD_DUMP_LOCATION": str(profile / "Crash Reports"),
                "TMPDIR": str(profile / "tmp"),
            },
            start_new_session=True,
        )
        self.started.append((proc, profile))
        return proc

    async def kill(self, proc: trio.Process) -> None:
        """SIGKILL one Chromium's whole process group (a container stopped hard), reap it
        and remove its profile."""
        (profile,) = [profile for started, profile in self.started if started is proc]
        await self._kill(proc, profile)

    async def _kill(self, proc: trio.Process, profile: Path) -> None:
        pgid = proc.pid
        others = [p for p in processes_of_profile(profile) if p.pid not in cdp.group_pids(pgid)]
        with contextlib.suppress(trio.TooSlowError):  # the leftovers check of stop_all reports it
            _kill_and_reap(pgid, others)
            with trio.fail_after(STOP_BUDGET_S):
                await proc.wait()
            await wait_until(partial(_kill_and_reap, pgid, others), timeout_s=STOP_BUDGET_S)
        shutil.rmtree(profile, ignore_errors=True)

    async def stop_all(self) -> None:
        for proc, profile in self.started:
            await self._kill(proc, profile)
        leftovers = [pid for proc, _ in self.started for pid in cdp.group_pids(proc.pid)]
        self.started.clear()
        assert leftovers == [], f"test Chromium processes left behind: {describe(leftovers)}"


@pytest.fixture
async def chromium_process() -> AsyncIterator[ChromiumProcesses]:
    """Start Chromium subprocesses with ``await chromium_process.start(port)``;
    all are killed (whole group), reaped and their profiles removed at teardown."""
    procs = ChromiumProcesses()
    try:
        yield procs
    finally:
        with trio.CancelScope(shield=True):
            await procs.stop_all()
