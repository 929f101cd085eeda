"""Killing a process by pid without hitting another one that reused the pid.

A pid read from Docker (an exec's) may belong to a different process by the
time the agent acts on it: the exec may have ended and its pid been handed
to anything on the host, and the agent, as root, would kill it. So the pid is
first pinned with a pidfd, then the pinned process is checked to be the one
meant (still running per Docker, started no earlier than the exec, in the
container's cgroup), and the signal goes through the pidfd, which can only
ever reach the pinned process.
"""

from __future__ import annotations

import logging
import os
import select
import signal
import time
from collections.abc import Callable
from pathlib import Path

log = logging.getLogger(__name__)

_CLOCK_TICKS = os.sysconf("SC_CLK_TCK")


def boot_ticks() -> int:
    """Now, in the clock and unit of a process's start time in ``/proc/<pid>/stat``."""
    return int(time.clock_gettime(time.CLOCK_BOOTTIME) * _CLOCK_TICKS)


def start_ticks(pid: int, *, proc: Path = Path("/proc")) -> int:
    """When ``pid`` started, in clock ticks since boot (field 22 of its stat)."""
    data = (proc / str(pid) / "stat").read_bytes()
    # The command name (field 2) may hold spaces and parentheses: count from its end.
    fields = data[data.rindex(b")") + 2 :].split()
    return int(fields[19])


def _exited(pidfd: int) -> bool:
    """A pidfd polls readable once its process has exited."""
    readable, _, _ = select.select([pidfd], [], [], 0)
    return bool(readable)


def kill_if_same(
    pid: int,
    *,
    not_before: int,
    cgroup_marker: str,
    confirm: Callable[[], bool],
    sig: int = signal.SIGKILL,
    proc: Path = Path("/proc"),
) -> bool:
    """Send ``sig`` to ``pid`` only if it is still the process meant; True if sent.

    ``not_before``: ``boot_ticks()`` taken before the process was started.
    ``cgroup_marker``: text its ``/proc/<pid>/cgroup`` must hold (a container id).
    ``confirm``: asks the owner (Docker) whether the process still runs with
    this pid, after the pid is pinned.
    """
    try:
        pidfd = os.pidfd_open(pid)
    except (ProcessLookupError, PermissionError):
        return False
    try:
        if not confirm():
            log.debug("pid %d: no longer the process meant (owner says so); not signalled", pid)
            return False
        try:
            started = start_ticks(pid, proc=proc)
            cgroup = (proc / str(pid) / "cgroup").read_text()
        except (OSError, ValueError, IndexError):
            return False
        # Read after pinning, so while the pidfd's process has not exited the
        # pid cannot have been reused and the files above describe it.
        if _exited(pidfd):
            return False
        if started < not_before:
            log.warning(
                "pid %d started before the process meant (%d < %d ticks); not signalled",
                pid,
                started,
                not_before,
            )
            return False
        if cgroup_marker not in cgroup:
            log.warning("pid %d is not in the cgroup of %s; not signalled", pid, cgroup_marker)
            return False
        try:
            signal.pidfd_send_signal(pidfd, sig)
        except ProcessLookupError:
            return False
        return True
    finally:
        os.close(pidfd)
