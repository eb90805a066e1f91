"""Start a child process with chosen file descriptors at chosen numbers, and wait for it.

Chromium's ``--remote-debugging-pipe`` reads commands on file descriptor 3 and writes
on 4: the child must find the pipes at exactly those numbers.  ``subprocess`` (and so
``trio.run_process``) can pass descriptors only at the numbers they already have in
the parent (``pass_fds``), and the parent's 3 and 4 are taken (trio's own epoll and
wakeup descriptors, SQLite files...).  The ways around that are all worse:
``preexec_fn`` (arbitrary Python between fork and exec, unsafe with threads), dup2-ing
onto 3 and 4 in the parent for a moment (another thread writing to its fd 3 meanwhile
writes into the browser), a shell or helper that rearranges them before exec.

``os.posix_spawn`` does it in the C library: its file actions ``dup2`` each pipe onto
3 and 4 in the child only, between fork and exec, with no Python running there.  The
child gets 0, 1, 2, 3, 4 and nothing else, as ``subprocess``'s ``close_fds`` would
have it: Python opens every descriptor close-on-exec (PEP 446), and the few that are
inheritable all the same (inherited by the host from whoever started it, a pipe of a
supervisor) are closed in the child by more file actions - a browser holding such a
pipe open would keep that supervisor from ever seeing it close.  ``setsid`` puts the child in a new session (its
own process group, which the launcher signals as a whole), as ``start_new_session``
does; SIGPIPE goes back to its default action (Python ignores it, and ignored signals
survive exec), as ``subprocess`` does, and no signal is blocked.

Waiting: a ``pidfd`` (Linux 5.3) becomes readable when the child exits, so
:meth:`SpawnedProcess.wait` sleeps in trio's I/O loop, as ``trio.Process`` does; where
there is no pidfd it polls ``waitpid(WNOHANG)``.  The child is reaped only by pid:
nothing here waits for any other process.
"""

from __future__ import annotations

import fcntl
import os
import signal
from collections.abc import Mapping, Sequence

import trio

WAIT_POLL_S = 0.05  # without a pidfd: how often wait() asks whether the child exited
_SPARE_FD_FLOOR = 10  # source descriptors are moved at or above this before the dup2s


class SpawnedProcess:
    """A child started by :func:`spawn`: its ``pid``, and ``returncode`` once reaped.

    Like ``trio.Process``: :meth:`poll` never blocks; :meth:`wait` blocks until the
    child exits and reaps it (cancelled, it leaves the child running and unreaped);
    :meth:`send_signal` does nothing once the child is reaped (its pid may be reused).
    """

    def __init__(self, pid: int):
        self.pid = pid
        self.returncode: int | None = None
        try:
            self._pidfd: int | None = os.pidfd_open(pid)
        except (AttributeError, OSError):
            self._pidfd = None

    def poll(self) -> int | None:
        """The exit code (negative: killed by that signal) if the child has exited, else None."""
        if self.returncode is None:
            try:
                pid, status = os.waitpid(self.pid, os.WNOHANG)
            except ChildProcessError:  # reaped elsewhere: gone, code unknown
                pid, status = self.pid, 255 << 8
            if pid != 0:
                self.returncode = os.waitstatus_to_exitcode(status)
                self._close_pidfd()
        return self.returncode

    async def wait(self) -> int:
        """Block until the child exits; reap it and return its exit code."""
        while self.poll() is None:
            if self._pidfd is not None:
                await trio.lowlevel.wait_readable(self._pidfd)
            else:
                await trio.sleep(WAIT_POLL_S)
        await trio.lowlevel.checkpoint()
        return self.returncode  # type: ignore[return-value]

    def send_signal(self, sig: int) -> None:
        if self.poll() is None:
            os.kill(self.pid, sig)

    def kill(self) -> None:
        self.send_signal(signal.SIGKILL)

    def _close_pidfd(self) -> None:
        if self._pidfd is not None:
            fd, self._pidfd = self._pidfd, None
            trio.lowlevel.notify_closing(fd)
            os.close(fd)


def spawn(
    argv: Sequence[str],
    *,
    env: Mapping[str, str],
    fds: Mapping[int, int],
) -> SpawnedProcess:
    """Start ``argv`` (``argv[0]`` a path) in a new session with ``env``; ``fds`` maps a
    number in the child (0, 1, 2, 3, 4...) to one of our descriptors, which stays ours
    (close it after the call).  Standard streams not in ``fds`` are inherited.  Raises
    OSError if the program cannot be started.  Blocks for the fork and exec only (a
    few milliseconds); call it in a thread from async code.
    """
    # Each source is first duplicated at or above _SPARE_FD_FLOOR (close-on-exec), so
    # that no dup2 onto a low number overwrites a source still to be copied, and no
    # source already sits at its target (dup2 of a descriptor onto itself would keep
    # its close-on-exec flag on some C libraries).
    spares = [fcntl.fcntl(source, fcntl.F_DUPFD_CLOEXEC, _SPARE_FD_FLOOR) for source in fds.values()]
    try:
        actions: list[tuple[int, ...]] = [
            (os.POSIX_SPAWN_DUP2, spare, target) for spare, target in zip(spares, fds, strict=True)
        ]
        actions += [(os.POSIX_SPAWN_CLOSE, fd) for fd in _inheritable_fds() if fd > 2 and fd not in fds]
        pid = os.posix_spawn(
            argv[0],
            list(argv),
            dict(env),
            file_actions=actions,
            setsid=True,
            setsigmask=(),  # no signal blocked, whatever the spawning thread blocks
            setsigdef=(signal.SIGPIPE, signal.SIGXFSZ),
        )
    finally:
        for spare in spares:
            os.close(spare)
    return SpawnedProcess(pid)


def _inheritable_fds() -> list[int]:
    """Our descriptors that are not close-on-exec (one closed meanwhile by another
    thread is harmless: closing it in the child fails quietly)."""
    try:
        names = os.listdir("/proc/self/fd")
    except OSError:
        names = os.listdir("/dev/fd")  # not Linux
    found = []
    for name in names:
        try:
            if os.get_inheritable(int(name)):
                found.append(int(name))
        except OSError:  # the directory's own descriptor, closed by now
            continue
    return found
