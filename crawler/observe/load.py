"""Load figures for the autoscaler: the process tree's CPU share, the event loop's lag.

- :class:`TreeCpu`: CPU seconds used by this process and every descendant (the
  launched browser and its renderers), as a share of the cores this process may run
  on, between two readings.  psutil's ``cpu_times`` of each live member of the tree,
  counted by pid: a member's delta since the last reading, plus what it reaped in the
  meantime (its ``children_*`` times: Chromium reaps its renderers, so a renderer that
  lived and died between two readings is still counted), less what was counted
  already of the members that are gone.
- :func:`available_memory`: what the machine (or the container) has free.
- :class:`LoopLag`: how late the event loop runs a timer.  A probe task sleeps
  :data:`LAG_PROBE_S` again and again and records how much later than asked it woke:
  the time other tasks held the loop (parsing, CDP messages, a handler's blocking
  call) plus scheduling delay when the machine is busy.  The figure the autoscaler
  reads is the mean over the probes since the last reading: one long stall shows, a
  single late wake-up among many does not decide alone.

Both are readings, not decisions (:mod:`crawler.policy.autoscale` decides).
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from pathlib import Path

import psutil
import trio

LAG_PROBE_S = 0.1  # the lag probe's sleep: 10 wake-ups a second, each a few microseconds of work
CGROUP_CPU_MAX = Path("/sys/fs/cgroup/cpu.max")  # cgroup v2: "quota period", or "max period"
CGROUP_MEMORY_MAX = Path("/sys/fs/cgroup/memory.max")  # cgroup v2: bytes, or "max"
CGROUP_MEMORY_CURRENT = Path("/sys/fs/cgroup/memory.current")  # cgroup v2: bytes in use


def usable_cores(cpu_max: Path = CGROUP_CPU_MAX) -> float:
    """The cores this process may use: its CPU affinity, or less under a cgroup CPU
    quota (a container's ``--cpus``).  Never below 0.1."""
    try:
        cores = float(len(os.sched_getaffinity(0)))
    except (AttributeError, OSError):
        cores = float(os.cpu_count() or 1)
    try:
        quota, period = cpu_max.read_text().split()[:2]
        if quota != "max":
            cores = min(cores, int(quota) / int(period))
    except (OSError, ValueError):
        pass
    return max(0.1, cores)


def available_memory(memory_max: Path = CGROUP_MEMORY_MAX, memory_current: Path = CGROUP_MEMORY_CURRENT) -> int:
    """Bytes this process's tree may still take: the machine's available memory, or
    less under a cgroup memory limit (a container's ``--memory``: the kernel's OOM
    killer acts at that limit, whatever the machine has free).  Blocking (reads
    /proc and /sys); call it from a thread."""
    free = psutil.virtual_memory().available
    try:
        limit = memory_max.read_text().strip()
        if limit != "max":
            free = min(free, int(limit) - int(memory_current.read_text()))
    except (OSError, ValueError):
        pass
    return max(0, free)


def _times(proc: psutil.Process) -> tuple[float, float]:
    """(own user+system, user+system of the children it reaped) in seconds."""
    t = proc.cpu_times()
    return t.user + t.system, t.children_user + t.children_system


class TreeCpu:
    """The CPU share of a process tree between readings (see the module docstring).

    ``root_pid``: the tree's root (default: this process).  ``clock`` is a seam for
    tests.  :meth:`read` blocks (it reads /proc): call it from a thread.
    """

    def __init__(
        self,
        root_pid: int | None = None,
        *,
        cores: float | None = None,
        clock: Callable[[], float] = time.monotonic,
    ):
        self._root_pid = root_pid if root_pid is not None else os.getpid()
        self.cores = cores if cores is not None else usable_cores()
        self._clock = clock
        self._last: dict[tuple[int, float], tuple[float, float]] = {}  # (pid, started) -> times
        self._at: float | None = None

    def read(self) -> float | None:
        """The tree's CPU since the last reading, as a share of the usable cores (1.0:
        all of them busy); None at the first reading (nothing to compare with) or if
        the root is gone."""
        try:
            root = psutil.Process(self._root_pid)
            members = [root, *root.children(recursive=True)]
        except psutil.Error:
            return None
        now = self._clock()
        seen: dict[tuple[int, float], tuple[float, float]] = {}
        used = 0.0
        for proc in members:
            try:
                key = (proc.pid, proc.create_time())
                own, reaped = _times(proc)
            except psutil.Error:
                continue  # exited while we read: its last interval is lost
            seen[key] = (own, reaped)
            before_own, before_reaped = self._last.get(key, (0.0, 0.0))
            used += max(0.0, own - before_own) + max(0.0, reaped - before_reaped)
        # A member gone since the last reading was reaped (most often by a member: its
        # whole life is in that member's reaped times now, counted above): what of it
        # was counted already comes off.  One reaped outside the tree undercounts its
        # last interval at most.
        used -= sum(own + reaped for key, (own, reaped) in self._last.items() if key not in seen)
        used = max(0.0, used)
        first, self._last = self._at is None, seen
        elapsed = now - self._at if self._at is not None else 0.0
        self._at = now
        if first or elapsed <= 0:
            return None
        return used / elapsed / self.cores


class LoopLag:
    """How late the event loop runs a timer (see the module docstring).  Run
    :meth:`run` in a nursery; :meth:`take` returns the mean lateness of the probes
    since the last call, and starts a new window."""

    def __init__(self, probe_s: float = LAG_PROBE_S):
        self.probe_s = probe_s
        self._total_s = 0.0
        self._probes = 0
        self._worst_s = 0.0

    def record(self, late_s: float) -> None:
        """One probe's lateness (seconds); the seam :meth:`run` feeds."""
        self._total_s += max(0.0, late_s)
        self._probes += 1
        self._worst_s = max(self._worst_s, late_s)

    def take(self) -> tuple[float, float]:
        """The mean and the worst lateness since the last call, in seconds ((0.0, 0.0)
        if no probe woke meanwhile: a loop so blocked that no probe woke shows in the
        next window)."""
        mean = self._total_s / self._probes if self._probes else 0.0
        window = (mean, self._worst_s)
        self._total_s, self._probes, self._worst_s = 0.0, 0, 0.0
        return window

    async def run(self) -> None:
        """Probe until cancelled.  Starts no task; never raises but Cancelled."""
        while True:
            asked = trio.current_time() + self.probe_s
            await trio.sleep_until(asked)
            self.record(trio.current_time() - asked)
