"""The host side of a pod's volumes and files, under ``<state>/pods/<uid>/``.

Layout follows the kubelet's pod directory: ``volumes/kubernetes.io~empty-dir/
<name>`` for emptyDir (a tmpfs mount there for ``medium: Memory``),
``containers/<name>/<restart>`` for termination-message files, ``etc-hosts``
for the managed hosts file. The agent and the Docker engine must see the
same filesystem, as kubelet and its runtime do.

Paths from manifests are untrusted: subPaths are resolved without following
a symlink out of their volume, and only the pod's own directory is ever
deleted.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import errno
import functools
import logging
import os
import shutil
import stat
from collections.abc import Iterable
from pathlib import Path

from minikubelet.errors import MountError
from minikubelet.model.spec import Container, EmptyDirSource, HostPathSource, Pod, Volume
from minikubelet.runtime.dockerspec import HostMount

log = logging.getLogger(__name__)

EMPTY_DIR = "kubernetes.io~empty-dir"
MS_NOSUID = 2
MS_NODEV = 4
MNT_DETACH = 2


@functools.cache
def _get_libc() -> ctypes.CDLL:
    return ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6", use_errno=True)


def mount_tmpfs(target: Path, size: int) -> None:
    options = f"size={size},mode=0777".encode()
    rc = _get_libc().mount(b"tmpfs", bytes(target), b"tmpfs", MS_NOSUID | MS_NODEV, options)
    if rc != 0:
        err = ctypes.get_errno()
        raise MountError(f"cannot mount tmpfs at {target}: {os.strerror(err)}")


def unmount(target: Path) -> None:
    rc = _get_libc().umount2(bytes(target), MNT_DETACH)
    if rc != 0:
        err = ctypes.get_errno()
        if err not in (errno.EINVAL, errno.ENOENT):
            log.warning("cannot unmount %s: %s", target, os.strerror(err))


class PodDirectory:
    """One pod's directory on the host."""

    def __init__(self, root: Path) -> None:
        self.root = root

    @property
    def hosts_path(self) -> Path:
        return self.root / "etc-hosts"

    def empty_dir(self, name: str) -> Path:
        return self.root / "volumes" / EMPTY_DIR / name

    def termination_log(self, container: str, restart_count: int) -> Path:
        return self.root / "containers" / container / str(restart_count)

    def write_hosts(self, content: str) -> None:
        self.root.mkdir(parents=True, exist_ok=True)
        tmp = self.hosts_path.with_suffix(".tmp")
        tmp.write_text(content)
        os.chmod(tmp, 0o644)
        os.replace(tmp, self.hosts_path)

    def new_termination_log(self, container: str, restart_count: int) -> Path:
        path = self.termination_log(container, restart_count)
        path.parent.mkdir(parents=True, exist_ok=True)
        # Created fresh for every instance: a restart must not show the last message.
        fd = os.open(
            path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_NOFOLLOW | os.O_CLOEXEC, 0o666
        )
        os.close(fd)
        os.chmod(path, 0o666)
        return path

    def remove(self) -> None:
        """Unmount what the pod mounted and delete the directory."""
        if not self.root.exists():
            return
        ed = self.root / "volumes" / EMPTY_DIR
        if ed.is_dir():
            for child in ed.iterdir():
                if os.path.ismount(child):
                    unmount(child)
        shutil.rmtree(self.root, ignore_errors=True)


def _check_host_path(source: HostPathSource) -> None:
    path = source.path
    kind = source.type
    try:
        st: os.stat_result | None = os.stat(path)
    except FileNotFoundError:
        st = None
    except OSError as e:
        raise MountError(f"hostPath {path}: {os.strerror(e.errno or errno.EIO)}") from None
    if st is None:
        if kind in ("", "DirectoryOrCreate"):
            # "" matches kubelet on Docker, whose bind mounts create a missing source directory.
            try:
                os.makedirs(path, mode=0o755, exist_ok=True)
            except OSError as e:
                raise MountError(
                    f"hostPath {path}: cannot create directory: {os.strerror(e.errno or 0)}"
                ) from None
            return
        if kind == "FileOrCreate":
            try:
                fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_NOFOLLOW | os.O_CLOEXEC, 0o644)
                os.close(fd)
            except OSError as e:
                raise MountError(
                    f"hostPath {path}: cannot create file: {os.strerror(e.errno or 0)}"
                ) from None
            return
        raise MountError(f"hostPath type check failed: {path} does not exist")
    mode = st.st_mode
    expected = {
        "Directory": (stat.S_ISDIR, "a directory"),
        "DirectoryOrCreate": (stat.S_ISDIR, "a directory"),
        "File": (stat.S_ISREG, "a file"),
        "FileOrCreate": (stat.S_ISREG, "a file"),
        "Socket": (stat.S_ISSOCK, "a socket"),
        "CharDevice": (stat.S_ISCHR, "a character device"),
        "BlockDevice": (stat.S_ISBLK, "a block device"),
    }.get(kind)
    if expected is not None and not expected[0](mode):
        raise MountError(f"hostPath type check failed: {path} is not {expected[1]}")


def memory_volume_size(pod: Pod, source: EmptyDirSource, node_memory: int) -> int:
    """tmpfs size: the least of node memory, sizeLimit and the pod's memory limit.

    The pod limit only counts when every container has one.
    """
    size = node_memory
    limits = [c.resources.memory_limit for c in pod.spec.containers]
    if limits and all(limit is not None for limit in limits):
        size = min(size, sum(limit for limit in limits if limit is not None))
    if source.size_limit:
        size = min(size, source.size_limit)
    return size


def prepare_volumes(pod: Pod, pod_dir: PodDirectory, *, node_memory: int) -> dict[str, Path]:
    """Create or check every volume's host side; returns volume name → host path."""
    paths: dict[str, Path] = {}
    fs_group = pod.spec.security_context.fs_group
    for volume in pod.spec.volumes:
        paths[volume.name] = _prepare_volume(
            pod, volume, pod_dir, fs_group=fs_group, node_memory=node_memory
        )
    return paths


def _prepare_volume(
    pod: Pod, volume: Volume, pod_dir: PodDirectory, *, fs_group: int | None, node_memory: int
) -> Path:
    source = volume.source
    if isinstance(source, HostPathSource):
        _check_host_path(source)
        return Path(source.path)
    path = pod_dir.empty_dir(volume.name)
    try:
        path.mkdir(parents=True, exist_ok=True)
        if source.medium == "Memory" and not os.path.ismount(path):
            mount_tmpfs(path, memory_volume_size(pod, source, node_memory))
        # Any user in any container of the pod may write, as with kubelet.
        os.chmod(path, 0o777)
        if fs_group is not None:
            os.chown(path, -1, fs_group)
            os.chmod(path, 0o2777)
    except OSError as e:
        raise MountError(f"emptyDir {volume.name}: {os.strerror(e.errno or errno.EIO)}") from None
    return path


def resolve_subpath(volume_root: Path, sub_path: str) -> Path:
    """``volume_root/sub_path``, created if missing, refusing anything that escapes the volume."""
    parts = [p for p in sub_path.split("/") if p not in ("", ".")]
    if any(p == ".." for p in parts) or sub_path.startswith("/"):
        raise MountError(f"subPath {sub_path!r} must be a relative path inside its volume")
    root = os.path.realpath(volume_root)
    current = root
    for part in parts:
        nxt = os.path.join(current, part)
        if os.path.islink(nxt):
            target = os.path.realpath(nxt)
            if target != root and not target.startswith(root + os.sep):
                raise MountError(f"subPath {sub_path!r} leaves its volume through a symlink")
            nxt = target
        elif not os.path.exists(nxt):
            try:
                os.mkdir(nxt, 0o755)
            except FileExistsError:
                pass
            except OSError as e:
                raise MountError(f"subPath {sub_path!r}: {os.strerror(e.errno or 0)}") from None
        current = nxt
    return Path(current)


def container_mounts(
    container: Container,
    volume_paths: dict[str, Path],
    *,
    hosts_file: Path | None,
    termination_log: Path | None,
) -> tuple[HostMount, ...]:
    """The bind mounts of one container: its volumes, then /etc/hosts and the termination log."""
    mounts: list[HostMount] = []
    targets: set[str] = set()
    for m in container.volume_mounts:
        source = volume_paths[m.name]
        if m.sub_path:
            source = resolve_subpath(source, m.sub_path)
        mounts.append(
            HostMount(
                source=str(source),
                target=m.mount_path,
                read_only=m.read_only,
                propagation=m.mount_propagation,
            )
        )
        targets.add(os.path.normpath(m.mount_path))
    # The managed hosts file, unless the container mounts its own /etc/hosts.
    if hosts_file is not None and "/etc/hosts" not in targets:
        mounts.append(HostMount(source=str(hosts_file), target="/etc/hosts"))
    if (
        termination_log is not None
        and os.path.normpath(container.termination_message_path) not in targets
    ):
        mounts.append(
            HostMount(source=str(termination_log), target=container.termination_message_path)
        )
    return tuple(mounts)


def read_termination_message(path: str, limit: int = 4096) -> str:
    """The termination message a container wrote, at most ``limit`` bytes."""
    if not path:
        return ""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC | os.O_NONBLOCK)
    except OSError:
        return ""
    try:
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            return ""
        data = os.read(fd, limit)
    finally:
        os.close(fd)
    return data.decode("utf-8", errors="replace")


def remove_pod_dirs(root: Path, keep: Iterable[str]) -> None:
    """Delete pod directories under ``root`` whose uid is not in ``keep``."""
    keep_set = set(keep)
    if not root.is_dir():
        return
    for child in root.iterdir():
        if child.name not in keep_set and child.is_dir() and not child.is_symlink():
            PodDirectory(child).remove()
