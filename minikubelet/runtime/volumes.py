"""The host side of a pod's volumes and files, under ``<state>/pods/<uid>/``.

Layout follows the kubelet's pod directory: ``volumes/kubernetes.io~empty-dir/
<name>`` for emptyDir (a tmpfs mount there for ``medium: Memory``),
``volume-subpaths/<volume>/<container>/<index>`` for subPath bind mounts,
``containers/<name>/<restart>`` for termination-message files, ``etc-hosts``
for the managed hosts file. The agent and the Docker engine must see the
same filesystem and mounts, as kubelet and its runtime do.

The agent runs as root and containers write into volumes, so everything
here treats what is below a volume as hostile:

- every path is built by ``paths.contained`` from checked names;
- the pods directory and pod directories are ``0750``, as on the kubelet:
  containers reach their volumes through bind mounts, nobody else does;
- a subPath is opened one component at a time from the volume root without
  following symlinks, and that open file is bind-mounted (through
  ``/proc/self/fd``) onto a target only root can reach; Docker gets the
  target. A container swapping a component for a symlink between our check
  and Docker's mount therefore cannot redirect it (CVE-2017-1002101);
- removal unmounts only what the agent mounted, deletes through directory
  descriptors without following symlinks, and never enters another mount.
"""

from __future__ import annotations

import contextlib
import ctypes
import ctypes.util
import errno
import functools
import logging
import os
import re
import secrets
import stat
from collections.abc import Iterable
from pathlib import Path

from minikubelet.errors import MountError
from minikubelet.model.spec import Container, EmptyDirSource, HostPathSource, Pod, Volume
from minikubelet.runtime.dockerspec import HostMount
from minikubelet.runtime.paths import (
    UnsafePathError,
    check_name,
    check_pod_uid,
    contained,
    valid_name,
    valid_pod_uid,
)

log = logging.getLogger(__name__)

EMPTY_DIR = "kubernetes.io~empty-dir"
SUBPATHS = "volume-subpaths"
# The kubelet's modes: only root may enter the pods directory and a pod's.
DIR_MODE = 0o750
MS_NOSUID = 2
MS_NODEV = 4
MS_BIND = 4096
MNT_DETACH = 2
UMOUNT_NOFOLLOW = 8
# Bound on mounts stacked on one target that are taken off before giving up.
MAX_STACKED_MOUNTS = 32
# Deeper directories are moved up to the pod directory and removed from there,
# so removing a tree holds at most this many descriptors, however deep it is.
MAX_REMOVE_DEPTH = 64
MAX_REMOVE_PASSES = 1000

_OPEN_DIR = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC
_OPEN_PATH = os.O_PATH | os.O_NOFOLLOW | os.O_CLOEXEC
_CREATE_FILE = os.O_WRONLY | os.O_CREAT | os.O_NOFOLLOW | os.O_CLOEXEC
_INDEX = re.compile(r"[0-9]{1,9}")


@functools.cache
def _get_libc() -> ctypes.CDLL:
    return ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6", use_errno=True)


def mount_tmpfs(target: Path, size: int) -> None:
    options = f"size={size},mode=0777".encode()
    rc = _get_libc().mount(b"tmpfs", bytes(target), b"tmpfs", MS_NOSUID | MS_NODEV, options)
    if rc != 0:
        err = ctypes.get_errno()
        raise MountError(f"cannot mount tmpfs at {target}: {os.strerror(err)}")


def bind_mount(source: str, target: Path) -> None:
    rc = _get_libc().mount(os.fsencode(source), bytes(target), None, MS_BIND, None)
    if rc != 0:
        err = ctypes.get_errno()
        raise OSError(err, os.strerror(err), str(target))


def unmount(target: Path) -> None:
    rc = _get_libc().umount2(bytes(target), MNT_DETACH | UMOUNT_NOFOLLOW)
    if rc != 0:
        err = ctypes.get_errno()
        if err not in (errno.EINVAL, errno.ENOENT):
            log.warning("cannot unmount %s: %s", target, os.strerror(err))


def unmount_all(target: Path) -> None:
    """Take off every mount stacked on ``target``; raises OSError if one stays."""
    for _ in range(MAX_STACKED_MOUNTS):
        if _get_libc().umount2(bytes(target), MNT_DETACH | UMOUNT_NOFOLLOW) != 0:
            err = ctypes.get_errno()
            if err in (errno.EINVAL, errno.ENOENT):
                return  # not (or no longer) a mount point
            raise OSError(err, os.strerror(err), str(target))
    raise OSError(errno.EBUSY, "too many mounts stacked", str(target))


def _unescape_mountinfo(field: bytes) -> str:
    return os.fsdecode(re.sub(rb"\\([0-7]{3})", lambda m: bytes([int(m[1], 8)]), field))


def mounts_below(root: Path) -> set[tuple[str, ...]]:
    """Mount points at or below ``root`` in this mount namespace, relative to it."""
    top = str(root)
    prefix = top.rstrip("/") + "/"
    found: set[tuple[str, ...]] = set()
    with open("/proc/self/mountinfo", "rb") as f:
        for line in f:
            fields = line.split(b" ")
            if len(fields) < 5:
                continue
            point = _unescape_mountinfo(fields[4])
            if point == top:
                found.add(())
            elif point.startswith(prefix):
                found.add(tuple(point[len(prefix) :].split("/")))
    return found


def _agent_mount(rel: tuple[str, ...]) -> bool:
    """Whether a mount at ``rel`` in a pod directory is one the agent makes."""
    if len(rel) == 3 and rel[:2] == ("volumes", EMPTY_DIR):
        return valid_name(rel[2])
    if len(rel) == 4 and rel[0] == SUBPATHS:
        return valid_name(rel[1]) and valid_name(rel[2]) and _INDEX.fullmatch(rel[3]) is not None
    return False


def _mount_id(fd: int) -> int:
    with open(f"/proc/self/fdinfo/{fd}", "rb") as f:
        for line in f:
            if line.startswith(b"mnt_id:"):
                return int(line.split(b":", 1)[1])
    raise OSError(errno.ENOTSUP, "no mnt_id in fdinfo")


def _identity(fd: int) -> tuple[int, int]:
    """Device and mount of an open file: equal for two files on the same mount.

    The device alone would miss a bind mount from the same filesystem.
    """
    return os.fstat(fd).st_dev, _mount_id(fd)


def _make_dir(path: Path, mode: int, *, own: bool = True) -> None:
    """A directory with exactly ``mode`` (umask aside), owned by us unless ``own`` is False."""
    with contextlib.suppress(FileExistsError):
        os.mkdir(path, mode)
    _set_mode(path, mode, own=own)


def _set_mode(path: Path, mode: int, *, own: bool = True, group: int | None = None) -> None:
    # Through a descriptor opened without following: chmod on a path would follow a symlink.
    fd = os.open(path, _OPEN_DIR)
    try:
        st = os.fstat(fd)
        uid = os.geteuid() if own else -1
        gid = os.getegid() if own else -1
        if group is not None:
            gid = group
        if uid not in (-1, st.st_uid) or gid not in (-1, st.st_gid):
            os.fchown(fd, uid, gid)
            st = os.fstat(fd)  # a chown may clear the set-group-ID bit
        if stat.S_IMODE(st.st_mode) != mode:
            os.fchmod(fd, mode)
    finally:
        os.close(fd)


class PodPaths:
    """The one way to a pod's directory: ``<state>/pods/<uid>`` from a checked uid."""

    def __init__(self, state_dir: Path) -> None:
        self.state_dir = Path(os.path.abspath(state_dir))

    @property
    def pods(self) -> Path:
        return self.state_dir / "pods"

    def pod(self, uid: str) -> PodDirectory:
        """Raises UnsafePathError for a uid that cannot name a directory."""
        return PodDirectory(self.pods, uid)

    def uids(self) -> list[str]:
        return pod_uids(self.pods)


def pod_uids(pods: Path) -> list[str]:
    """The uids that have a directory in ``pods``; other names there are logged and skipped."""
    try:
        names = os.listdir(pods)
    except FileNotFoundError:
        return []
    good = [n for n in names if valid_pod_uid(n)]
    for name in sorted(set(names) - set(good)):
        log.error("%s/%r does not name a pod; leaving it", pods, name)
    return good


class PodDirectory:
    """One pod's directory on the host; every path in it goes through ``path``."""

    def __init__(self, pods: Path, uid: str) -> None:
        self.uid = check_pod_uid(uid)
        self.pods = pods
        self.root = contained(pods, self.uid)

    def path(self, *parts: str) -> Path:
        return contained(self.pods, self.uid, *parts)

    @property
    def hosts_path(self) -> Path:
        return self.path("etc-hosts")

    def empty_dir(self, name: str) -> Path:
        return self.path("volumes", EMPTY_DIR, check_name("volume", name))

    def termination_log(self, container: str, restart_count: int) -> Path:
        if restart_count < 0:
            raise UnsafePathError(f"restart count {restart_count} is negative")
        return self.path("containers", check_name("container", container), str(restart_count))

    def subpath_target(self, volume: str, container: str, index: int) -> Path:
        if index < 0:
            raise UnsafePathError(f"volume mount index {index} is negative")
        return self.path(
            SUBPATHS, check_name("volume", volume), check_name("container", container), str(index)
        )

    def create(self) -> None:
        """The pods directory and this pod's, root's and 0750 (tightened if they were not)."""
        self.pods.parent.mkdir(mode=DIR_MODE, parents=True, exist_ok=True)
        _make_dir(contained(self.pods), DIR_MODE)
        _make_dir(self.root, DIR_MODE)

    def make_dirs(self, *parts: str) -> Path:
        self.create()
        for i in range(len(parts)):
            _make_dir(self.path(*parts[: i + 1]), DIR_MODE)
        return self.path(*parts)

    def write_hosts(self, content: str) -> None:
        self.create()
        tmp = self.path("etc-hosts.tmp")
        fd = os.open(tmp, _CREATE_FILE | os.O_TRUNC, 0o644)
        with os.fdopen(fd, "w") as f:
            os.fchmod(fd, 0o644)
            f.write(content)
        os.replace(tmp, self.hosts_path)

    def new_termination_log(self, container: str, restart_count: int) -> Path:
        path = self.termination_log(container, restart_count)
        self.make_dirs("containers", container)
        # Created fresh for every instance: a restart must not show the last message.
        fd = os.open(path, _CREATE_FILE | os.O_TRUNC, 0o666)
        try:
            # Writable by whatever user the container runs as; reached only through its mount.
            os.fchmod(fd, 0o666)
        finally:
            os.close(fd)
        return path

    def mount_subpath(
        self, *, volume: str, container: str, index: int, volume_root: Path, sub_path: str
    ) -> Path:
        """Bind ``sub_path`` of the volume onto this mount's own target; returns the target.

        What gets mounted is the file opened by ``open_subpath``, not a path
        looked up again, so the container cannot swap it in between.
        """
        target = self.subpath_target(volume, container, index)
        fd = open_subpath(volume_root, sub_path)
        try:
            is_dir = stat.S_ISDIR(os.fstat(fd).st_mode)
            self.make_dirs(SUBPATHS, volume, container)
            _prepare_target(target, is_dir=is_dir)
            bind_mount(f"/proc/self/fd/{fd}", target)
        except OSError as e:
            raise MountError(
                f"subPath {sub_path!r} of volume {volume}: {os.strerror(e.errno or errno.EIO)}"
            ) from None
        finally:
            os.close(fd)
        return target

    def remove(self) -> bool:
        """Unmount what the agent mounted here, then delete the tree; True if all is gone.

        Anything else mounted below the pod's directory (by hand, or by a
        container through a Bidirectional mount) is left, with everything on
        it and the agent's mounts above it, and logged: deleting through it
        would delete someone else's files.
        """
        try:
            st = os.lstat(self.root)
        except FileNotFoundError:
            return True
        if not stat.S_ISDIR(st.st_mode):
            log.error("%s is not a directory; leaving it", self.root)
            return False
        mounted = mounts_below(self.root)
        foreign = sorted(m for m in mounted if not _agent_mount(m))
        for rel in foreign:
            log.error(
                "%s is a mount the agent did not make; leaving it and what is on it",
                os.path.join(self.root, *rel),
            )
        ours = sorted((m for m in mounted if _agent_mount(m)), key=len, reverse=True)
        for rel in ours:
            if any(f[: len(rel)] == rel for f in foreign):
                log.error("%s holds a foreign mount; leaving it", self.path(*rel))
                continue
            try:
                unmount_all(self.path(*rel))
            except OSError as e:
                log.error("cannot unmount %s: %s", self.path(*rel), e.strerror)
        return _remove_tree(self.pods, self.uid)


def _prepare_target(target: Path, *, is_dir: bool) -> None:
    """An empty directory or file at ``target`` with nothing mounted on it."""
    unmount_all(target)
    try:
        st: os.stat_result | None = os.lstat(target)
    except FileNotFoundError:
        st = None
    if st is not None and (stat.S_ISDIR(st.st_mode) != is_dir or stat.S_ISLNK(st.st_mode)):
        if stat.S_ISDIR(st.st_mode):
            os.rmdir(target)
        else:
            os.unlink(target)
        st = None
    if st is None:
        if is_dir:
            os.mkdir(target, DIR_MODE)
        else:
            os.close(os.open(target, _CREATE_FILE | os.O_EXCL, 0o640))


def subpath_parts(sub_path: str) -> list[str]:
    parts = [p for p in sub_path.split("/") if p not in ("", ".")]
    if sub_path.startswith("/") or ".." in parts or "\0" in sub_path:
        raise MountError(f"subPath {sub_path!r} must be a relative path inside its volume")
    return parts


def open_subpath(volume_root: Path, sub_path: str) -> int:
    """An ``O_PATH`` descriptor of ``volume_root/sub_path``, missing directories created.

    As on the kubelet, symlinks inside the volume are honoured by resolving
    the path once, refusing it if it leaves the volume; the resolved path is
    then opened one component at a time from the volume root without
    following any symlink, so a component swapped for one since makes the
    open fail rather than leave the volume. The caller closes the descriptor.
    """
    parts = subpath_parts(sub_path)
    try:
        root = os.path.realpath(volume_root)
        resolved = os.path.realpath(os.path.join(root, *parts))
    except OSError:
        # realpath itself can trip over a symlink that goes as it reads it.
        raise MountError(f"subPath {sub_path!r}: changed while it was opened") from None
    if os.path.commonpath([root, resolved]) != root:
        raise MountError(f"subPath {sub_path!r} leaves its volume through a symlink")
    rel = [p for p in os.path.relpath(resolved, root).split(os.sep) if p != "."]
    try:
        fd = os.open(root, os.O_PATH | os.O_DIRECTORY | os.O_CLOEXEC)
    except OSError as e:
        raise MountError(f"volume {volume_root}: {os.strerror(e.errno or errno.EIO)}") from None
    try:
        for i, name in enumerate(rel):
            child = _open_component(fd, name, last=i == len(rel) - 1)
            os.close(fd)
            fd = child
        mode = os.fstat(fd).st_mode
        if not (stat.S_ISDIR(mode) or stat.S_ISREG(mode)):
            raise MountError(f"subPath {sub_path!r} is not a directory or a regular file")
    except OSError as e:
        os.close(fd)
        reason = "changed while it was opened" if e.errno in (errno.ENOTDIR, errno.ELOOP) else ""
        raise MountError(
            f"subPath {sub_path!r}: {reason or os.strerror(e.errno or errno.EIO)}"
        ) from None
    except BaseException:
        os.close(fd)
        raise
    return fd


def _open_component(parent: int, name: str, *, last: bool) -> int:
    flags = _OPEN_PATH | (0 if last else os.O_DIRECTORY)
    try:
        return os.open(name, flags, dir_fd=parent)
    except FileNotFoundError:
        pass
    with contextlib.suppress(FileExistsError):
        os.mkdir(name, 0o755, dir_fd=parent)
    return os.open(name, flags, dir_fd=parent)


class _Removal:
    """Deleting one pod directory's contents through descriptors, on its own mount only."""

    def __init__(self, top: int, where: str) -> None:
        self.top = top
        self.where = where
        self.identity = _identity(top)
        self.moved = 0

    def empty(self, fd: int, rel: str, depth: int) -> bool:
        """Delete everything in the directory ``fd``; True if nothing is left."""
        clean = True
        for name in os.listdir(fd):
            path = f"{rel}/{name}"
            try:
                child = os.open(name, _OPEN_DIR | os.O_NONBLOCK, dir_fd=fd)
            except FileNotFoundError:
                continue
            except OSError as e:
                if e.errno not in (errno.ENOTDIR, errno.ELOOP):
                    log.error("cannot open %s%s: %s", self.where, path, e.strerror)
                    clean = False
                    continue
                # Not a directory (a symlink is one of these): unlink never follows.
                try:
                    os.unlink(name, dir_fd=fd)
                except FileNotFoundError:
                    pass
                except OSError as e2:
                    log.error("cannot remove %s%s: %s", self.where, path, e2.strerror)
                    clean = False
                continue
            try:
                emptied = self._descend(fd, child, name, path, depth)
            finally:
                os.close(child)
            if emptied is None:
                continue
            if not emptied:
                clean = False
                continue
            try:
                os.rmdir(name, dir_fd=fd)
            except FileNotFoundError:
                pass
            except OSError as e:
                log.error("cannot remove %s%s: %s", self.where, path, e.strerror)
                clean = False
        return clean

    def _descend(self, parent: int, child: int, name: str, path: str, depth: int) -> bool | None:
        """Empty ``child``; None when it was moved up to be emptied in a later pass."""
        if _identity(child) != self.identity:
            log.error("%s%s is on another mount; leaving it", self.where, path)
            return False
        if depth + 1 >= MAX_REMOVE_DEPTH:
            moved = f".deep-{secrets.token_hex(8)}"
            os.rename(name, moved, src_dir_fd=parent, dst_dir_fd=self.top)
            self.moved += 1
            return None
        return self.empty(child, path, depth + 1)


def _remove_tree(pods: Path, uid: str) -> bool:
    try:
        parent = os.open(contained(pods), os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    except FileNotFoundError:
        return True
    try:
        try:
            top = os.open(uid, _OPEN_DIR, dir_fd=parent)
        except FileNotFoundError:
            return True
        try:
            if _identity(top) != _identity(parent):
                log.error("%s/%s is a mount point; leaving it", pods, uid)
                return False
            removal = _Removal(top, f"{pods}/{uid}")
            for _ in range(MAX_REMOVE_PASSES):
                removal.moved = 0
                clean = removal.empty(top, "", 0)
                if not removal.moved:
                    break
            else:
                log.error("%s/%s is too deep to remove; leaving the rest", pods, uid)
                clean = False
        except OSError as e:
            log.error("cannot remove %s/%s: %s", pods, uid, e)
            return False
        finally:
            os.close(top)
        if clean:
            with contextlib.suppress(FileNotFoundError):
                os.rmdir(uid, dir_fd=parent)
        return clean
    finally:
        os.close(parent)


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
        pod_dir.make_dirs("volumes", EMPTY_DIR)
        with contextlib.suppress(FileExistsError):
            os.mkdir(path, 0o777)
        if source.medium == "Memory" and not os.path.ismount(path):
            mount_tmpfs(path, memory_volume_size(pod, source, node_memory))
        # Any user in any container of the pod may write, as with kubelet; the
        # pod directory above keeps everyone else out.
        mode = 0o2777 if fs_group is not None else 0o777
        _set_mode(path, mode, own=False, group=fs_group)
    except OSError as e:
        raise MountError(f"emptyDir {volume.name}: {os.strerror(e.errno or errno.EIO)}") from None
    return path


def container_mounts(
    container: Container,
    volume_paths: dict[str, Path],
    *,
    pod_dir: PodDirectory,
    hosts_file: Path | None,
    termination_log: Path | None,
) -> tuple[HostMount, ...]:
    """The bind mounts of one container: its volumes, then /etc/hosts and the termination log.

    subPath mounts are bound on the host first (see ``PodDirectory.mount_subpath``).
    """
    mounts: list[HostMount] = []
    targets: set[str] = set()
    for index, m in enumerate(container.volume_mounts):
        source = volume_paths[m.name]
        if m.sub_path:
            source = pod_dir.mount_subpath(
                volume=m.name,
                container=container.name,
                index=index,
                volume_root=source,
                sub_path=m.sub_path,
            )
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


def read_termination_message(path: Path | str, limit: int = 4096) -> str:
    """The termination message a container wrote, at most ``limit`` bytes.

    ``path`` must come from ``PodDirectory.termination_log``: never a path
    read from a label, which would let anyone able to label a container make
    the agent read (and publish) any file.
    """
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
    """Delete pod directories under ``root`` (the pods directory) whose uid is not in ``keep``."""
    keep_set = set(keep)
    for uid in pod_uids(root):
        if uid not in keep_set:
            PodDirectory(root, uid).remove()
