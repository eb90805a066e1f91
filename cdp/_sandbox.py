"""Whether Chromium's sandbox can start on this host, and why not where it cannot.

The sandbox is what keeps a compromised renderer (a hostile page exploiting a bug)
from reading the host's files: renderers run in their own user, PID and network
namespaces with a seccomp filter.  ``--no-sandbox`` turns all of that off, so
:func:`cdp.launch` passes it only where the sandbox cannot start at all:

- running as root (euid 0): Chromium refuses to start its sandbox as root;
- user namespaces disabled: ``kernel.unprivileged_userns_clone = 0`` (Debian's and
  Ubuntu's kernels) or ``user.max_user_namespaces = 0``;
- a probe (a child process that tries to ``unshare`` a user, PID and network
  namespace, as Chromium's sandbox does) fails: a container's seccomp profile or an
  AppArmor policy forbids it.  Probed once per process, and only when nothing above
  already decided.

The decision itself, :func:`no_sandbox_reason`, is a pure function of what was read
(:class:`SandboxHost`), so that each case is tested without such a host.  Where the
sandbox is off, the launcher logs one line with the reason.
"""

from __future__ import annotations

import functools
import os
import subprocess
import sys
from pathlib import Path

import attrs
import trio

USERNS_CLONE = Path("/proc/sys/kernel/unprivileged_userns_clone")
MAX_USER_NAMESPACES = Path("/proc/sys/user/max_user_namespaces")
PROBE_TIMEOUT_S = 5.0

# unshare(CLONE_NEWUSER | CLONE_NEWPID | CLONE_NEWNET): what Chromium's namespace
# sandbox needs; exit status 0 if the kernel (and its seccomp filter) allowed it.
PROBE_SCRIPT = (
    "import ctypes, sys; libc = ctypes.CDLL(None, use_errno=True); "
    "sys.exit(0 if libc.unshare(0x10000000 | 0x20000000 | 0x40000000) == 0 else 1)"
)


@attrs.frozen
class SandboxHost:
    """What the host says about the sandbox's prerequisites (None: not known)."""

    euid: int
    unprivileged_userns_clone: int | None = None  # absent on kernels without the switch
    max_user_namespaces: int | None = None
    userns_probe_ok: bool | None = None  # None: not probed


def no_sandbox_reason(host: SandboxHost) -> str | None:
    """Why Chromium's sandbox cannot start on ``host``, or None if it can (then
    Chromium runs with it)."""
    if host.euid == 0:
        return "running as root (Chromium will not start its sandbox as root)"
    if host.unprivileged_userns_clone == 0:
        return "unprivileged user namespaces are disabled (kernel.unprivileged_userns_clone = 0)"
    if host.max_user_namespaces == 0:
        return "user namespaces are disabled (user.max_user_namespaces = 0)"
    if host.userns_probe_ok is False:
        return "a user namespace cannot be created here (a seccomp or AppArmor policy forbids unshare)"
    return None


async def read_sandbox_host() -> SandboxHost:
    """Read this host's :class:`SandboxHost`: the effective uid, the two sysctls and,
    only if none of them decides, the probe (run once per process).  Runs in a worker
    thread, the probe bounded by PROBE_TIMEOUT_S; cancelled, it still runs to its end
    there and leaves no process behind."""
    return await trio.to_thread.run_sync(_read_host)


def _read_host() -> SandboxHost:
    host = SandboxHost(
        euid=os.geteuid(),
        unprivileged_userns_clone=_read_int(USERNS_CLONE),
        max_user_namespaces=_read_int(MAX_USER_NAMESPACES),
    )
    if no_sandbox_reason(host) is None:
        host = attrs.evolve(host, userns_probe_ok=_probe_userns())
    return host


def _read_int(path: Path) -> int | None:
    try:
        return int(path.read_text().strip())
    except (OSError, ValueError):
        return None


@functools.cache
def _probe_userns() -> bool | None:
    """True if a child could unshare the namespaces, False if the kernel refused, None
    if the probe itself could not run (then the sandbox is left on: Chromium says so
    at start if it cannot have it)."""
    try:
        done = subprocess.run(
            [sys.executable, "-c", PROBE_SCRIPT],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            timeout=PROBE_TIMEOUT_S,
            check=False,
        )
    except (OSError, subprocess.TimeoutExpired):
        return None
    return {0: True, 1: False}.get(done.returncode)
