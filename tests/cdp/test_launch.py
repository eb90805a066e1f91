"""launch(): finding Chromium, and stopping it without leaving a process or a directory behind."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import sys
import tempfile
import time
from pathlib import Path

import psutil
import pytest
import trio

import cdp
from tests.cdp.conftest import assert_nothing_left, browser_processes, profile_dir_of, singleton_dir_of, wait_until

NEVER = "new Promise(() => {})"
REPO = Path(__file__).resolve().parents[2]


class Boom(Exception):
    pass


# -- find_executable (no Chromium needed) ---------------------------------------------


def test_find_executable_explicit_bad_path_raises_browser_error_naming_it(tmp_path: Path) -> None:
    """An explicit executable that does not exist (or is not executable) is an error naming it,
    even when a Chromium is on PATH."""
    missing = tmp_path / "no-such-chrome"
    with pytest.raises(cdp.BrowserError, match=str(missing)):
        cdp.find_executable(missing)
    not_executable = tmp_path / "chrome.txt"
    not_executable.write_text("")
    with pytest.raises(cdp.BrowserError, match=str(not_executable)):
        cdp.find_executable(str(not_executable))


def test_find_executable_uses_chrome_path_when_no_argument(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """$CHROME_PATH is used when no executable is passed; an explicit argument wins over it;
    a bad $CHROME_PATH is an error naming CHROME_PATH and the path."""
    fake = tmp_path / "my-chrome"
    fake.write_text("#!/bin/sh\nexit 0\n")
    fake.chmod(0o755)
    monkeypatch.setenv("CHROME_PATH", str(fake))
    assert cdp.find_executable() == str(fake)
    other = tmp_path / "other-chrome"
    other.write_text("#!/bin/sh\nexit 0\n")
    other.chmod(0o755)
    assert cdp.find_executable(other) == str(other)
    monkeypatch.setenv("CHROME_PATH", str(tmp_path / "gone"))
    with pytest.raises(cdp.BrowserError, match="CHROME_PATH") as info:
        cdp.find_executable()
    assert str(tmp_path / "gone") in str(info.value)


def test_find_executable_without_argument_or_env_finds_chromium_on_path(monkeypatch: pytest.MonkeyPatch) -> None:
    """Without argument and CHROME_PATH, a Chromium on PATH is found (the test machine has one)."""
    monkeypatch.delenv("CHROME_PATH", raising=False)
    assert os.access(cdp.find_executable(), os.X_OK)


# -- failed start ---------------------------------------------------------------------


async def test_launch_of_executable_that_exits_raises_browser_error_and_removes_profile(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A 'browser' that exits at once makes launch() raise BrowserError quoting its stderr,
    and its temporary profile is removed."""
    fake = tmp_path / "bin" / "fake-chrome"
    fake.parent.mkdir()
    fake.write_text("#!/bin/sh\necho 'fake chrome says no' >&2\nexit 3\n")
    fake.chmod(0o755)
    temp = tmp_path / "temp"
    temp.mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(temp))
    with trio.fail_after(10), pytest.raises(cdp.BrowserError, match="fake chrome says no") as info:
        async with cdp.launch(executable=fake):
            pytest.fail("launched a browser that exited")
    assert "code 3" in str(info.value)
    assert list(temp.iterdir()) == []


# -- stop on exit ---------------------------------------------------------------------


@pytest.mark.chromium
@pytest.mark.parametrize("how", ["returned", "raised", "cancelled"])
async def test_launch_exit_leaves_no_process_and_no_profile(how: str) -> None:
    """However the launch() block exits - normally, by an exception (which propagates as
    itself, not wrapped in an ExceptionGroup) or by an outer cancellation (absorbed by the
    outer move_on_after) - its tab and context are closed politely first (the cancellation
    does not take the connection down with it), then every process of the browser, its
    group and Crashpad's handler outside it, is stopped and reaped (no zombie) and the
    temporary profile is removed, in well under the stop budget."""
    seen: dict = {}
    started = time.monotonic()
    since = time.time()

    async def body() -> None:
        async with cdp.launch() as browser:
            seen["pgid"] = browser.pid
            seen["profile"] = profile_dir_of(browser.pid)
            async with browser.new_context() as context, context.new_tab() as tab:
                seen["browser"], seen["context"], seen["tab"] = browser, context, tab
                assert (await tab.send("Runtime.evaluate", expression="1+1"))["result"]["value"] == 2
                seen["processes"] = browser_processes(browser.pid, seen["profile"], since)
                seen["singleton_dir"] = singleton_dir_of(seen["profile"])
                seen["exit_started"] = time.monotonic()
                if how == "raised":
                    raise Boom("from the body")
                if how == "cancelled":
                    scope.deadline = trio.current_time() + 0.1
                    await tab.send("Runtime.evaluate", expression=NEVER, awaitPromise=True)
                    pytest.fail("the never-resolving command returned")

    with trio.fail_after(30):
        with trio.move_on_after(25) as scope:
            if how == "raised":
                with pytest.raises(Boom) as info:
                    await body()
                assert type(info.value) is Boom
                assert str(info.value) == "from the body"
            else:
                await body()
        assert scope.cancelled_caught == (how == "cancelled")
    exit_s = time.monotonic() - seen["exit_started"]
    assert exit_s < 5.0, f"stopping took {exit_s:.1f} s: the polite path (Browser.close) failed?"
    assert seen["tab"].closed
    assert seen["context"].disposed
    assert (seen["browser"].leaked_tabs, seen["browser"].leaked_contexts) == (0, 0)
    assert time.monotonic() - started < 15
    assert_nothing_left(seen["pgid"], seen["profile"], seen["processes"], seen["singleton_dir"])


@pytest.mark.chromium
async def test_browser_sigkill_fails_pending_command_with_connection_lost_and_exit_cleans_up() -> None:
    """SIGKILL of the browser process while a tab command is pending: the command fails with
    ConnectionLost within 2 s, later commands fail the same way at once, and after the launch
    block exits no process of the group remains (not even a zombie), the profile is gone and
    so is the singleton socket directory the killed browser could not remove."""
    since = time.time()
    with trio.fail_after(30):
        async with cdp.launch() as browser:
            pgid = browser.pid
            profile = profile_dir_of(browser.pid)
            assert profile.is_dir()
            async with browser.new_context() as context, context.new_tab() as tab:
                outcome: dict = {}
                failed = trio.Event()

                async def pending() -> None:
                    try:
                        await tab.send("Runtime.evaluate", expression=NEVER, awaitPromise=True)
                    except cdp.CDPError as exc:
                        outcome["error"] = exc
                        outcome["at"] = time.monotonic()
                    failed.set()

                async with trio.open_nursery() as nursery:
                    nursery.start_soon(pending)
                    await wait_until(lambda: browser.connection.statistics().pending_commands == 1)
                    await trio.sleep(0.1)
                    processes = browser_processes(pgid, profile, since)
                    singleton_dir = singleton_dir_of(profile)
                    killed_at = time.monotonic()
                    os.kill(browser.pid, signal.SIGKILL)
                    with trio.fail_after(2):
                        await failed.wait()
                assert isinstance(outcome["error"], cdp.ConnectionLost), repr(outcome["error"])
                assert outcome["at"] - killed_at < 2.0
                assert not browser.connected
                assert browser.connection.statistics().pending_commands == 0
                with pytest.raises(cdp.ConnectionLost):
                    await browser.send("Browser.getVersion")
                with pytest.raises((cdp.ConnectionLost, cdp.TargetClosed)):
                    await tab.send("Runtime.evaluate", expression="1")
    assert_nothing_left(pgid, profile, processes, singleton_dir)


async def test_a_callers_disable_features_is_merged_with_the_defaults_not_replacing_them() -> None:
    """Chromium keeps only the last ``--disable-features``: launched with one of the
    caller's own, the browser runs with a single such switch that lists the caller's
    feature and the defaults' alike."""
    async with cdp.launch(
        args=["--disable-features=Translate,Translate", "--enable-features=NetworkService"]
    ) as browser:
        argv = psutil.Process(browser.pid).cmdline()
    disabled = [a for a in argv if a.startswith("--disable-features=")]
    assert len(disabled) == 1, argv
    assert disabled[0].split("=", 1)[1].split(",") == [
        "SpareRendererForSitePerProcess",
        "WebUIOmniboxPopup",
        "WebUIOmniboxAimPopup",
        "Translate",
    ]
    assert [a for a in argv if a.startswith("--enable-features=")] == ["--enable-features=NetworkService"]


async def test_browser_contexts_start_no_browser_ui_pages_or_their_renderers() -> None:
    """Every window of a browser context would preload its address bar's popup as
    WebUI pages (``browser_ui`` targets) in a renderer of their own; with the default
    switches three contexts, each with a tab, have no such target and no such process."""
    async with cdp.launch() as browser:
        for _ in range(3):
            context = await browser.create_context()
            await context.create_tab()
        await trio.sleep(1.0)  # the preload starts just after the window opens
        targets = (await browser.send("Target.getTargets", filter=[{}]))["targetInfos"]
        kinds = sorted(t["type"] for t in targets)
        argvs = [p.cmdline() for p in psutil.Process(browser.pid).children(recursive=True)]
    assert "browser_ui" not in kinds, targets
    assert kinds.count("page") == 3, targets
    assert not [a for a in argvs if "--top-chrome-webui" in a], argvs


def fd_targets(pid: int) -> dict[int, str]:
    """What each open descriptor of process ``pid`` refers to (``pipe:[...]``, a path...).
    A starting browser opens and closes files meanwhile: one closed between the listing
    and its reading is left out."""
    targets = {}
    for fd in os.listdir(f"/proc/{pid}/fd"):
        with contextlib.suppress(FileNotFoundError):
            targets[int(fd)] = os.readlink(f"/proc/{pid}/fd/{fd}")
    return targets


@pytest.mark.chromium
async def test_launched_browser_has_the_pipes_at_3_and_4_and_none_of_the_hosts_descriptors(tmp_path: Path) -> None:
    """The browser process reads commands on fd 3 and writes on fd 4, both pipes, and has
    no TCP socket listening; a descriptor of the host that is inheritable (as one
    inherited from a supervisor would be) is not passed on to it."""
    marker = tmp_path / "host-descriptor"
    marker.write_text("")
    stray = os.open(marker, os.O_RDONLY)
    os.set_inheritable(stray, True)
    try:
        with trio.fail_after(30):
            async with cdp.launch() as browser:
                targets = fd_targets(browser.pid)
                listening = [c for c in psutil.Process(browser.pid).net_connections("tcp") if c.status == "LISTEN"]
    finally:
        os.close(stray)
    assert targets[3].startswith("pipe:") and targets[4].startswith("pipe:"), targets
    assert targets[3] != targets[4]
    assert str(marker) not in targets.values(), targets
    assert listening == []


# A host process that launches Chromium and, meanwhile, runs an unrelated command whose
# own child outlives it (``sleep &``: orphaned).  It reports its zombie children once the
# orphan has exited, and whether it is a child subreaper.
ZOMBIE_HOST = """
import ctypes, json, subprocess, time
import psutil, trio, cdp

def zombies():
    return [p.pid for p in psutil.Process().children() if p.status() == psutil.STATUS_ZOMBIE]

def subreaper():
    flag = ctypes.c_int(0)
    ctypes.CDLL(None).prctl(37, ctypes.byref(flag), 0, 0, 0)  # PR_GET_CHILD_SUBREAPER
    return bool(flag.value)

async def main():
    async with cdp.launch() as browser:
        done = await trio.run_process(["/bin/sh", "-c", "sleep 0.3 & echo $!"], capture_stdout=True)
        orphan = psutil.Process(int(done.stdout))
        with trio.fail_after(10):
            while orphan.is_running() and orphan.status() != psutil.STATUS_ZOMBIE:
                await trio.sleep(0.05)
        await trio.sleep(0.2)
        during = zombies()
    print(json.dumps({"orphan": orphan.pid, "during": during, "after": zombies(), "subreaper": subreaper()}))

trio.run(main)
"""


@pytest.mark.chromium
async def test_a_host_that_launched_chromium_keeps_no_zombie_of_an_unrelated_orphan() -> None:
    """In a fresh Python process that launched Chromium, an unrelated command's orphaned
    child exits: the host has no zombie child, neither then nor after the launch block
    (the orphan went to init, or to a subreaper above the host), because launching never
    made the host a child subreaper."""
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    with trio.fail_after(60):
        done = await trio.run_process(
            [sys.executable, "-c", ZOMBIE_HOST], env=env, capture_stdout=True, capture_stderr=True
        )
    report = json.loads(done.stdout.decode().strip().splitlines()[-1])
    reap_if_ours(report["orphan"])  # when this test process is a subreaper, the orphan came here
    assert report["during"] == [] and report["after"] == [], report
    assert report["subreaper"] is False


def reap_if_ours(pid: int) -> None:
    with contextlib.suppress(ChildProcessError):
        os.waitpid(pid, os.WNOHANG)


@pytest.mark.chromium
async def test_a_temporary_directory_too_deep_for_chromiums_socket_still_launches_and_cleans_up(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Issue 26: with TMPDIR some 60 characters deep, Chromium aborted at start ("Socket
    path too long": its singleton socket lives in the profile's tmp), over and over."""
    deep = tmp_path / ("d" * 60)
    deep.mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(deep))  # what TMPDIR sets
    async with cdp.launch() as browser:
        await browser.send("Browser.getVersion")
        profile = profile_dir_of(browser.pid)
    assert str(profile).startswith("/tmp/cdp-profile-") and not profile.exists()
    assert not any(deep.iterdir())
