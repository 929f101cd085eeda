"""Pod directories on the host: names, containment, modes, subPath binds and removal.

Mounting needs root: those tests run as root on the real kernel (a tmpfs or
a bind mount in a tmp pod directory) and unmount whatever they made.
"""

from __future__ import annotations

import os
import stat
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from minikubelet.container.state import ContainerState
from minikubelet.errors import MountError
from minikubelet.model import naming
from minikubelet.runtime import volumes
from minikubelet.runtime.inspect import termination_message
from minikubelet.runtime.labels import record_from_labels
from minikubelet.runtime.paths import UnsafePathError, contained, valid_pod_uid
from minikubelet.runtime.volumes import (
    EMPTY_DIR,
    PodDirectory,
    PodPaths,
    bind_mount,
    mount_tmpfs,
    mounts_below,
    open_subpath,
)

UID = "0123456789abcdef"
root_only = pytest.mark.skipif(os.geteuid() != 0, reason="mounting needs root")


@pytest.fixture
def paths(tmp_path: Path) -> Iterator[PodPaths]:
    state = tmp_path / "state"
    state.mkdir()
    yield PodPaths(state)
    # Whatever a failed test left mounted, so pytest can delete its directory.
    if os.geteuid() == 0:
        for rel in sorted(mounts_below(tmp_path), key=len, reverse=True):
            volumes.unmount(tmp_path.joinpath(*rel))


def mode_of(path: Path) -> int:
    return stat.S_IMODE(os.lstat(path).st_mode)


# --- names and containment ---


@pytest.mark.parametrize(
    "uid",
    ["../../x", "a/b", "..", ".", "x\n", "", "a" * 129, "a..b", "-a", ".a", "a b", "a\0b", "é"],
    ids=[
        "dotdot-path",
        "slash",
        "dotdot",
        "dot",
        "trailing-newline",
        "empty",
        "too-long",
        "inner-dotdot",
        "leading-dash",
        "leading-dot",
        "space",
        "nul",
        "non-ascii",
    ],
)
def test_bad_pod_uids_never_name_a_directory(paths: PodPaths, uid: str) -> None:
    assert not valid_pod_uid(uid)
    with pytest.raises(UnsafePathError, match="cannot name a directory"):
        paths.pod(uid)


@pytest.mark.parametrize(
    "uid",
    ["a", "a" * 128, "0123-4567.89ab", "6f1c0d3e-7c7a-4c1e-9a8f-1d2e3f4a5b6c"],
    ids=["one-char", "128-chars", "dots-and-dashes", "uuid"],
)
def test_good_pod_uids_name_a_directory_inside_pods(paths: PodPaths, uid: str) -> None:
    pod_dir = paths.pod(uid)
    assert pod_dir.root == Path(os.path.realpath(paths.pods)) / uid


@pytest.mark.parametrize("name", ["..", "a/b", "Upper", "x\n", "a" * 64, "", "-a", "a_b"], ids=repr)
def test_bad_volume_and_container_names_are_refused(paths: PodPaths, name: str) -> None:
    pod_dir = paths.pod(UID)
    with pytest.raises(UnsafePathError, match="DNS-1123"):
        pod_dir.empty_dir(name)
    with pytest.raises(UnsafePathError, match="DNS-1123"):
        pod_dir.termination_log(name, 0)
    with pytest.raises(UnsafePathError, match="DNS-1123"):
        pod_dir.subpath_target("v", name, 0)


def test_contained_refuses_components_that_are_not_plain(tmp_path: Path) -> None:
    for part in ("..", ".", "", "a/b"):
        with pytest.raises(UnsafePathError):
            contained(tmp_path, part)


def test_a_symlinked_pod_directory_is_refused(paths: PodPaths, tmp_path: Path) -> None:
    outside = tmp_path / "outside"
    outside.mkdir()
    paths.pods.mkdir()
    (paths.pods / UID).symlink_to(outside)
    with pytest.raises(UnsafePathError, match="symlink"):
        paths.pod(UID)


@pytest.mark.parametrize(
    ("parent", "build"),
    [
        ("volumes", lambda d: d.empty_dir("v")),
        ("containers", lambda d: d.termination_log("c", 0)),
        ("volume-subpaths", lambda d: d.subpath_target("v", "c", 0)),
        ("volumes", lambda d: d.make_dirs("volumes", EMPTY_DIR)),
    ],
    ids=["empty-dir", "termination-log", "subpath-target", "make-dirs"],
)
def test_symlinked_parents_inside_a_pod_directory_are_refused(
    paths: PodPaths, tmp_path: Path, parent: str, build: Callable[[PodDirectory], Path]
) -> None:
    outside = tmp_path / "outside"
    for sub in (EMPTY_DIR, "v", "c"):
        (outside / sub).mkdir(parents=True)
    pod_dir = paths.pod(UID)
    pod_dir.create()
    (pod_dir.root / parent).symlink_to(outside)
    with pytest.raises(UnsafePathError, match="symlink"):
        build(pod_dir)
    assert sorted(os.listdir(outside)) == sorted([EMPTY_DIR, "v", "c"])


def test_a_bad_uid_label_makes_no_record() -> None:
    labels = {naming.POD_UID: "../../etc", naming.DOCKER_TYPE: naming.TYPE_CONTAINER}
    assert record_from_labels("c1", labels, state=ContainerState.RUNNING, created_at=0) is None
    labels[naming.POD_UID] = UID
    record = record_from_labels("c1", labels, state=ContainerState.RUNNING, created_at=0)
    assert record is not None
    assert record.pod_uid == UID


def test_termination_message_is_read_only_from_the_agents_own_file(paths: PodPaths) -> None:
    log = paths.pod(UID).new_termination_log("c", 2)
    log.write_text("done")
    labels = {
        naming.POD_UID: UID,
        naming.CONTAINER_NAME: "c",
        naming.RESTART_COUNT: "2",
        naming.TERMINATION_LOG: str(log),
    }
    assert termination_message(paths, labels) == "done"
    # A label naming any other file (here a secret of the host) is not read.
    secret = paths.state_dir / "secret"
    secret.write_text("root:hash")
    assert termination_message(paths, {**labels, naming.TERMINATION_LOG: str(secret)}) == ""
    assert termination_message(paths, {**labels, naming.POD_UID: ".."}) == ""


# --- modes ---


def test_pods_and_pod_directories_are_closed_to_other_users(paths: PodPaths) -> None:
    paths.pods.mkdir(mode=0o755)
    os.chmod(paths.pods, 0o755)  # as an older agent left it
    pod_dir = paths.pod(UID)
    pod_dir.write_hosts("127.0.0.1 localhost\n")
    log = pod_dir.new_termination_log("c", 0)
    assert mode_of(paths.pods) == 0o750
    assert mode_of(pod_dir.root) == 0o750
    assert mode_of(pod_dir.root / "containers") == 0o750
    assert mode_of(pod_dir.root / "containers" / "c") == 0o750
    assert mode_of(pod_dir.hosts_path) == 0o644
    assert mode_of(log) == 0o666
    assert os.stat(pod_dir.root).st_uid == os.geteuid()


def test_empty_dirs_stay_writable_by_every_container_user(paths: PodPaths) -> None:
    from tests.unit.helpers import make_pod

    pod = make_pod(
        ("a",),
        extra={"volumes": [{"name": "data", "emptyDir": {}}]},
    )
    pod_dir = paths.pod(pod.uid)
    got = volumes.prepare_volumes(pod, pod_dir, node_memory=1 << 30)
    assert got == {"data": pod_dir.empty_dir("data")}
    assert mode_of(got["data"]) == 0o777
    assert mode_of(pod_dir.root / "volumes") == 0o750
    assert mode_of(pod_dir.root / "volumes" / EMPTY_DIR) == 0o750


# --- subPath ---


def make_volume(tmp_path: Path) -> Path:
    volume = tmp_path / "volume"
    (volume / "real").mkdir(parents=True)
    (volume / "real" / "inside").write_text("inside")
    return volume


@pytest.mark.parametrize(
    ("sub_path", "message"),
    [
        ("../x", "relative path inside"),
        ("a/../../x", "relative path inside"),
        ("/etc", "relative path inside"),
        ("escape", "leaves its volume"),
        ("escape/passwd", "leaves its volume"),
    ],
    ids=["dotdot", "inner-dotdot", "absolute", "symlink-to-root", "through-symlink"],
)
def test_subpaths_that_leave_the_volume_are_refused(
    tmp_path: Path, sub_path: str, message: str
) -> None:
    volume = make_volume(tmp_path)
    (volume / "escape").symlink_to("/etc")
    with pytest.raises(MountError, match=message):
        open_subpath(volume, sub_path)


def test_subpath_symlinks_inside_the_volume_and_missing_directories(tmp_path: Path) -> None:
    volume = make_volume(tmp_path)
    (volume / "link").symlink_to("real")
    fd = open_subpath(volume, "link")
    try:
        assert os.listdir(f"/proc/self/fd/{fd}") == ["inside"]
    finally:
        os.close(fd)
    fd = open_subpath(volume, "new/deeper")
    os.close(fd)
    assert (volume / "new" / "deeper").is_dir()
    assert mode_of(volume / "new") == 0o755


@pytest.mark.parametrize(
    ("sub_path", "message"),
    [("real", "not a directory or a regular file"), ("real/deep", "changed while it was opened")],
    ids=["last", "middle"],
)
def test_a_component_swapped_for_a_symlink_after_resolving_fails_the_open(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, sub_path: str, message: str
) -> None:
    """The CVE-2017-1002101 window, made deterministic: the swap lands after the check."""
    volume = make_volume(tmp_path)
    (volume / "real" / "deep").mkdir()
    (tmp_path / "host" / "deep").mkdir(parents=True)
    real_realpath = os.path.realpath

    def swap_after(path: str | os.PathLike[str]) -> str:
        result = real_realpath(path)
        if str(path) == str(volume / sub_path):
            os.rename(volume / "real", volume / "moved")
            (volume / "real").symlink_to(tmp_path / "host")
        return result

    monkeypatch.setattr(os.path, "realpath", swap_after)
    with pytest.raises(MountError, match=message):
        open_subpath(volume, sub_path)
    monkeypatch.undo()
    assert (volume / "real").is_symlink()


@root_only
def test_subpath_bind_mounts_what_was_opened(paths: PodPaths, tmp_path: Path) -> None:
    volume = make_volume(tmp_path)
    (volume / "file").write_text("a file")
    pod_dir = paths.pod(UID)
    target = pod_dir.mount_subpath(
        volume="v", container="c", index=0, volume_root=volume, sub_path="real"
    )
    assert target == pod_dir.root / "volume-subpaths" / "v" / "c" / "0"
    assert os.listdir(target) == ["inside"]
    file_target = pod_dir.mount_subpath(
        volume="v", container="c", index=1, volume_root=volume, sub_path="file"
    )
    assert file_target.read_text() == "a file"
    # A new instance of the container binds afresh: no mount stacks up on the target.
    (volume / "other").mkdir()
    again = pod_dir.mount_subpath(
        volume="v", container="c", index=0, volume_root=volume, sub_path="other"
    )
    assert again == target
    assert os.listdir(target) == []
    below = mounts_below(pod_dir.root)
    assert below == {("volume-subpaths", "v", "c", "0"), ("volume-subpaths", "v", "c", "1")}
    assert pod_dir.remove()
    assert mounts_below(pod_dir.root) == set()
    assert not pod_dir.root.exists()
    assert (volume / "real" / "inside").read_text() == "inside"
    assert (volume / "file").read_text() == "a file"


SWAPPER = """
import os, sys
volume, host = sys.argv[1:]
sub, spare = os.path.join(volume, "sub"), os.path.join(volume, "spare")
while True:
    try:
        os.mkdir(spare)
        open(os.path.join(spare, "inside"), "w").close()
        os.rename(spare, sub)  # a directory, inside
    except OSError:
        pass
    try:
        os.rename(sub, spare)
        os.unlink(os.path.join(spare, "inside"))
        os.rmdir(spare)
    except OSError:
        pass
    try:
        os.symlink(host, sub)  # a symlink, outside
        os.unlink(sub)
    except OSError:
        pass
"""


@root_only
def test_subpath_swapped_in_a_loop_never_mounts_outside_the_volume(
    paths: PodPaths, tmp_path: Path
) -> None:
    """A writer swaps a component between a directory and a symlink to a host
    directory while it is mounted again and again; every mount that succeeds
    shows what is inside the volume."""
    volume = make_volume(tmp_path)
    host = tmp_path / "host"
    host.mkdir()
    (host / "secret").write_text("host")
    pod_dir = paths.pod(UID)
    # Another process, so the swaps land at any point of the agent's work.
    swapper = subprocess.Popen([sys.executable, "-c", SWAPPER, str(volume), str(host)])
    seen: list[list[str]] = []
    refused = 0
    try:
        deadline = time.monotonic() + 2.0
        while time.monotonic() < deadline:
            try:
                target = pod_dir.mount_subpath(
                    volume="v", container="c", index=0, volume_root=volume, sub_path="sub"
                )
            except MountError:
                refused += 1
                continue
            seen.append(sorted(os.listdir(target)))
    finally:
        swapper.kill()
        swapper.wait(5)
    assert all("secret" not in listing for listing in seen), seen
    assert seen, f"no mount succeeded in 2 s ({refused} refused)"
    print(f"{len(seen)} mounts, {refused} refused")
    assert pod_dir.remove()
    assert (host / "secret").read_text() == "host"


# --- removal ---


@root_only
def test_removal_unmounts_the_agents_mounts_and_deletes_everything(paths: PodPaths) -> None:
    pod_dir = paths.pod(UID)
    memory = pod_dir.make_dirs("volumes", EMPTY_DIR, "mem")
    mount_tmpfs(memory, 1 << 20)
    (memory / "data").write_text("x")
    pod_dir.write_hosts("")
    pod_dir.new_termination_log("c", 0)
    assert mounts_below(pod_dir.root) == {("volumes", EMPTY_DIR, "mem")}
    assert pod_dir.remove()
    assert not pod_dir.root.exists()
    assert mounts_below(paths.pods) == set()


@root_only
def test_removal_never_crosses_a_foreign_mount(paths: PodPaths, tmp_path: Path) -> None:
    pod_dir = paths.pod(UID)
    # A tmpfs someone mounted in the pod's directory, one inside an emptyDir
    # (a container's Bidirectional mount), and a bind mount of a host
    # directory on the same filesystem, which only the mount id tells apart.
    foreign_tmpfs = pod_dir.make_dirs("other")
    nested = pod_dir.make_dirs("volumes", EMPTY_DIR, "data", "mnt")
    bound = pod_dir.make_dirs("bound")
    host = tmp_path / "host"
    host.mkdir()
    (host / "precious").write_text("host data")
    mount_tmpfs(foreign_tmpfs, 1 << 20)
    mount_tmpfs(nested, 1 << 20)
    bind_mount(str(host), bound)
    (foreign_tmpfs / "kept").write_text("a")
    (nested / "kept").write_text("b")
    (pod_dir.root / "gone").write_text("c")
    try:
        assert pod_dir.remove() is False
        assert (foreign_tmpfs / "kept").read_text() == "a"
        assert (nested / "kept").read_text() == "b"
        assert (bound / "precious").read_text() == "host data"
        assert not (pod_dir.root / "gone").exists()
        assert mounts_below(pod_dir.root) == {
            ("other",),
            ("volumes", EMPTY_DIR, "data", "mnt"),
            ("bound",),
        }
    finally:
        for target in (foreign_tmpfs, nested, bound):
            volumes.unmount(target)
    assert (host / "precious").read_text() == "host data"
    # Once they are gone, so is the rest.
    assert pod_dir.remove()
    assert not pod_dir.root.exists()


@root_only
def test_an_agent_mount_holding_a_foreign_one_is_left(paths: PodPaths) -> None:
    pod_dir = paths.pod(UID)
    memory = pod_dir.make_dirs("volumes", EMPTY_DIR, "mem")
    mount_tmpfs(memory, 1 << 20)
    inner = memory / "inner"
    inner.mkdir()
    mount_tmpfs(inner, 1 << 20)
    (inner / "kept").write_text("x")
    try:
        assert pod_dir.remove() is False
        assert (inner / "kept").read_text() == "x"
    finally:
        volumes.unmount(inner)
    assert pod_dir.remove()
    assert not pod_dir.root.exists()


def test_removal_does_not_follow_symlinks(paths: PodPaths, tmp_path: Path) -> None:
    host = tmp_path / "host"
    (host / "dir").mkdir(parents=True)
    (host / "file").write_text("host")
    pod_dir = paths.pod(UID)
    data = pod_dir.make_dirs("volumes", EMPTY_DIR, "data")
    (data / "to-dir").symlink_to(host / "dir")
    (data / "to-file").symlink_to(host / "file")
    (data / "to-root").symlink_to("/")
    os.mkfifo(data / "fifo")
    assert pod_dir.remove()
    assert not pod_dir.root.exists()
    assert (host / "file").read_text() == "host"
    assert (host / "dir").is_dir()


def test_removal_of_a_tree_deeper_than_the_descriptor_bound(paths: PodPaths) -> None:
    pod_dir = paths.pod(UID)
    data = pod_dir.make_dirs("volumes", EMPTY_DIR, "data")
    fd = os.open(data, os.O_RDONLY | os.O_DIRECTORY)
    depth = volumes.MAX_REMOVE_DEPTH * 3 + 5
    try:
        # Built with relative steps: the full path would pass PATH_MAX.
        for _ in range(depth):
            os.mkdir("d", dir_fd=fd)
            child = os.open("d", os.O_RDONLY | os.O_DIRECTORY, dir_fd=fd)
            os.close(fd)
            fd = child
        with open(os.open("leaf", os.O_WRONLY | os.O_CREAT, dir_fd=fd), "w") as leaf:
            leaf.write("x")
    finally:
        os.close(fd)
    before = len(os.listdir("/proc/self/fd"))
    assert pod_dir.remove()
    assert not pod_dir.root.exists()
    assert len(os.listdir("/proc/self/fd")) == before


def test_removing_a_missing_pod_directory_is_done(paths: PodPaths) -> None:
    assert paths.pod(UID).remove()


def test_remove_pod_dirs_keeps_wanted_pods_and_skips_odd_names(paths: PodPaths) -> None:
    for uid in ("keep", "drop"):
        paths.pod(uid).create()
    (paths.pods / "bad name").mkdir()
    volumes.remove_pod_dirs(paths.pods, keep=["keep"])
    assert sorted(os.listdir(paths.pods)) == ["bad name", "keep"]
