"""The state directory: its modes, and the lock that says an agent is using it.

The agent runs as root and keeps pod data (emptyDir contents, termination
messages, hosts files) here, so, as the kubelet's root directory, it is
neither readable nor traversable by other users (0750, owned by root).

The lock is an flock(2) on ``<state>/agent.lock``, held for the life of the
process: the kernel drops it when the process dies, however it dies, so a
stale lock cannot outlive its agent. Another agent tests it to tell a live
owner of a node name from a stopped one (runtime/owner.py).
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import os
from pathlib import Path

from minikubelet.errors import ConfigError

STATE_DIR_MODE = 0o750
LOCK_NAME = "agent.lock"


class StateDirLock:
    def __init__(self, path: Path, fd: int) -> None:
        self.path = path
        self._fd = fd

    def release(self) -> None:
        if self._fd >= 0:
            os.close(self._fd)
            self._fd = -1


def prepare_state_dir(path: Path) -> StateDirLock:
    """Create the state directory with the kubelet's mode and take its lock.

    Raises ConfigError when another live agent holds it.
    """
    path.mkdir(parents=True, exist_ok=True, mode=STATE_DIR_MODE)
    if path.is_symlink() or not path.is_dir():
        raise ConfigError(f"stateDir: {path} is not a directory")
    os.chmod(path, STATE_DIR_MODE)
    lock_path = path / LOCK_NAME
    fd = os.open(lock_path, os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW | os.O_CLOEXEC, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError as e:
        holder = _read_pid(fd)
        os.close(fd)
        if e.errno in (errno.EWOULDBLOCK, errno.EAGAIN):
            raise ConfigError(
                f"stateDir: {path} is in use by another minikubelet"
                + (f" (pid {holder})" if holder else "")
            ) from None
        raise
    os.ftruncate(fd, 0)
    os.write(fd, f"{os.getpid()}\n".encode())
    return StateDirLock(path, fd)


def _read_pid(fd: int) -> str:
    with contextlib.suppress(OSError):
        return os.pread(fd, 32, 0).decode(errors="replace").strip()
    return ""


def state_dir_in_use(path: Path) -> bool:
    """True if a live agent holds the lock of the state directory ``path``."""
    try:
        fd = os.open(path / LOCK_NAME, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC)
    except OSError:
        return False
    try:
        fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
    except OSError as e:
        return e.errno in (errno.EWOULDBLOCK, errno.EAGAIN)
    finally:
        os.close(fd)  # also drops the shared lock if it was taken
    return False
