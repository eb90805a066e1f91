"""Chromium's sandbox: off only where it cannot start (``cdp/_sandbox.py``).

The decision is a pure function of what the host says, tested over each case; and, as
an unprivileged user where this host allows it, a launched Chromium really runs its
renderers sandboxed (in a user namespace of their own).
"""

from __future__ import annotations

import json
import os
import shutil
import site
import sys
import tempfile
from pathlib import Path

import pytest
import trio

import cdp

REPO = Path(__file__).resolve().parents[2]
NOBODY = 65534


@pytest.mark.parametrize(
    ("host", "reason"),
    [
        (cdp.SandboxHost(euid=0), "running as root"),
        (cdp.SandboxHost(euid=0, unprivileged_userns_clone=1, max_user_namespaces=100, userns_probe_ok=True), "root"),
        (cdp.SandboxHost(euid=1000, unprivileged_userns_clone=0, max_user_namespaces=100), "unprivileged_userns_clone"),
        (cdp.SandboxHost(euid=1000, unprivileged_userns_clone=1, max_user_namespaces=0), "max_user_namespaces"),
        (cdp.SandboxHost(euid=1000, max_user_namespaces=100, userns_probe_ok=False), "cannot be created"),
        (cdp.SandboxHost(euid=1000, unprivileged_userns_clone=1, max_user_namespaces=100, userns_probe_ok=True), None),
        (cdp.SandboxHost(euid=1000), None),  # nothing known against it (no switches, no probe): sandbox on
        (cdp.SandboxHost(euid=1000, userns_probe_ok=None), None),  # the probe could not run: sandbox on
    ],
)
def test_the_sandbox_is_off_only_where_it_cannot_start(host: cdp.SandboxHost, reason: str | None) -> None:
    """``no_sandbox_reason`` names why for root, disabled user namespaces (either
    switch) and a failed probe; anywhere else (including where nothing is known, or
    the probe itself could not run) it is None and Chromium keeps its sandbox."""
    got = cdp.no_sandbox_reason(host)
    if reason is None:
        assert got is None
    else:
        assert got is not None and reason in got


def sysctl(path: str) -> int | None:
    return int(Path(path).read_text()) if os.path.exists(path) else None


async def test_this_host_is_read_as_it_is() -> None:
    """``read_sandbox_host`` reports the effective uid and the two switches as /proc has
    them (absent: None); it probes only when they do not already decide."""
    host = await cdp.read_sandbox_host()
    assert host.euid == os.geteuid()
    assert host.unprivileged_userns_clone == sysctl("/proc/sys/kernel/unprivileged_userns_clone")
    assert host.max_user_namespaces == sysctl("/proc/sys/user/max_user_namespaces")
    decided_before_probe = cdp.no_sandbox_reason(
        cdp.SandboxHost(host.euid, host.unprivileged_userns_clone, host.max_user_namespaces)
    )
    assert (host.userns_probe_ok is None) == (decided_before_probe is not None)


SANDBOXED_LAUNCH = """
import json, os, psutil, trio, cdp
async def main():
    reason = cdp.no_sandbox_reason(await cdp.read_sandbox_host())
    async with cdp.launch() as browser, browser.new_context() as context, context.new_tab() as tab:
        value = (await tab.send("Runtime.evaluate", expression="6 * 7", returnByValue=True))["result"]["value"]
        namespaces, flags = {}, []
        for proc in psutil.Process(browser.pid).children(recursive=True):
            try:
                kind = next((a[7:] for a in proc.cmdline() if a.startswith("--type=")), "?")
                flags += proc.cmdline()
                namespaces.setdefault(kind, set()).add(os.readlink(f"/proc/{proc.pid}/ns/user"))
            except (psutil.Error, OSError):
                continue
        browser_flags = psutil.Process(browser.pid).cmdline()
    print(json.dumps({"reason": reason, "value": value, "no_sandbox": "--no-sandbox" in browser_flags + flags,
                      "renderer_ns": sorted(namespaces.get("renderer", ())), "own_ns": os.readlink("/proc/self/ns/user")}))
trio.run(main)
"""


@pytest.mark.chromium
async def test_as_an_unprivileged_user_chromium_runs_its_renderers_sandboxed() -> None:
    """Launched by an ordinary user (uid 65534 here, when the tests run as root) on a
    host that allows user namespaces, the decision keeps the sandbox: no
    ``--no-sandbox`` anywhere, a page evaluates, and every renderer runs in a user
    namespace other than the launcher's."""
    if os.geteuid() != 0:
        pytest.skip("needs root to run a process as another user")
    work = Path(tempfile.mkdtemp(prefix="cdp-sandbox-test-"))
    os.chmod(work, 0o777)  # the other user's home, TMPDIR and profiles
    # The other user needs an interpreter it may execute (the venv's may live under a
    # private home) and this interpreter's packages on its path.
    python = shutil.which(f"python{sys.version_info.major}.{sys.version_info.minor}", path="/usr/bin:/usr/local/bin")
    if python is None:
        pytest.skip(f"no system python{sys.version_info.major}.{sys.version_info.minor} for another user to run")
    path = os.pathsep.join([str(REPO), *site.getsitepackages()])
    env = {"PATH": "/usr/bin:/bin", "HOME": str(work), "TMPDIR": str(work), "PYTHONPATH": path}
    try:
        with trio.fail_after(60):
            done = await trio.run_process(
                [python, "-c", SANDBOXED_LAUNCH],
                env=env,
                cwd=str(work),
                user=NOBODY,
                group=NOBODY,
                extra_groups=[],
                capture_stdout=True,
                capture_stderr=True,
                check=False,
            )
    finally:
        await trio.to_thread.run_sync(shutil.rmtree, work, True)
    if done.returncode != 0 and b"Permission denied" in done.stderr:
        pytest.skip("the other user cannot run this interpreter or read its packages")
    assert done.returncode == 0, done.stderr.decode()[-2000:]
    report = json.loads(done.stdout.decode().strip().splitlines()[-1])
    if report["reason"] is not None:
        pytest.skip(f"this host cannot give Chromium its sandbox: {report['reason']}")
    assert report["value"] == 42
    assert report["no_sandbox"] is False
    assert report["renderer_ns"] and report["own_ns"] not in report["renderer_ns"], report
