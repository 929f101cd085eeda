"""Contained paths through the running agent: subPath under attack, private pod directories.

The subPath test is CVE-2017-1002101's setting: a container of the pod keeps
swapping a directory of a shared emptyDir for a symlink to a host directory,
while the agent creates and re-creates containers that mount that directory
by subPath. Whatever the timing, a container may see the volume's files (or
get no container, the mount refused), never the host's.
"""

from __future__ import annotations

import contextlib
import os
import re
import stat
import threading
from collections.abc import Callable
from pathlib import Path

import docker
import pytest

from minikubelet.model import naming
from tests.integration.conftest import Agent, pod_manifest, sh, wait_until

pytestmark = pytest.mark.docker

VICTIMS = 12


def swapper_script(outside: Path) -> str:
    # Each round puts a fresh directory at `sub`, then, briefly, a symlink to
    # the host. Directories are renamed away, not deleted at once, so a mount
    # made of one stays usable for the container being started on it; rm
    # never follows the symlink.
    return (
        "cd /data; i=0; mkdir sub; while true; do i=$((i+1)); "
        "mkdir -p d$i/inner; touch d$i/inside d$i/inner/inside; "
        "rm -rf k$((i-500)) d$((i-500)); "
        f"mv sub k$i; ln -s {outside} sub; rm -f sub; mv d$i sub; "
        "done 2>/dev/null"
    )


def victim(index: int) -> dict[str, object]:
    sub_path = "sub" if index % 2 == 0 else "sub/inner"
    name = f"v{index}"
    return sh(
        name,
        f"f=$(mktemp /results/{name}.XXXXXX); ls -a /m > $f; exit 1",
        volumeMounts=[
            {"name": "data", "mountPath": "/m", "subPath": sub_path},
            {"name": "results", "mountPath": "/results"},
        ],
    )


class MountWatcher:
    """Samples the host's mount table for the pod's subPath mounts and what they show."""

    def __init__(self, subpaths: Callable[[], str]) -> None:
        self.subpaths = subpaths
        self.roots: set[str] = set()
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while not self.stop.is_set():
            prefix = self.subpaths()
            with open("/proc/self/mountinfo") as f:
                for line in f:
                    fields = line.split()
                    if fields[4].startswith(prefix):
                        # The mount's root inside its filesystem: where it really is.
                        self.roots.add(re.sub(r"\\040", " ", fields[3]))
            self.stop.wait(0.01)

    def __enter__(self) -> MountWatcher:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop.set()
        self.thread.join(5)


def test_subpath_swapped_for_a_symlink_never_mounts_outside_the_volume(
    agent: Agent, tmp_path: Path
) -> None:
    outside = tmp_path / "outside"
    (outside / "inner").mkdir(parents=True)
    (outside / "host-secret").write_text("host\n")
    (outside / "inner" / "host-secret").write_text("host\n")
    manifest = pod_manifest(
        "swap",
        [victim(i) for i in range(VICTIMS)],
        # A sidecar: it runs, swapping, before the victims are first created.
        initContainers=[
            sh(
                "swapper",
                swapper_script(outside),
                restartPolicy="Always",
                volumeMounts=[{"name": "data", "mountPath": "/data"}],
            )
        ],
        volumes=[{"name": "data", "emptyDir": {}}, {"name": "results", "emptyDir": {}}],
    )
    agent.write("swap.yaml", manifest)
    pod = agent.wait_pod("swap", lambda p: bool(p["metadata"].get("uid")), what="the pod's uid")
    pod_dir = agent.state / "pods" / pod["metadata"]["uid"]
    results = pod_dir / "volumes" / "kubernetes.io~empty-dir" / "results"

    def subpaths() -> str:
        return str(pod_dir.resolve() / "volume-subpaths") + "/"

    def observations() -> dict[str, str]:
        try:
            return {p.name: p.read_text() for p in results.iterdir()}
        except FileNotFoundError:
            return {}

    with MountWatcher(subpaths) as watcher:
        # Each victim's mount is resolved under attack at its first start, and
        # at once again after it exits (a crash's first restart has no
        # back-off). Many are refused (the swap landed mid-resolution) and
        # retried after ~10 s: failing is fine, escaping is not.
        wait_until(
            lambda: len(observations()) >= VICTIMS // 2,
            timeout=40,
            what=f"{VICTIMS // 2} container starts of the victims",
        )
    seen = observations()
    escaped = {name: text for name, text in seen.items() if "host-secret" in text}
    assert not escaped, f"a container saw host files: {escaped}"
    # What the containers saw came from the volume: the swapper's markers,
    # what it moved into a directory the agent made while `sub` was absent,
    # or the symlink itself when `ln -s <outside> sub` ran while `sub` was
    # such a directory (ln then makes the link inside it, named after its
    # target: an entry in the volume, not a way out of it).
    allowed = re.compile(r"\.|\.\.|inside|inner|d[0-9]+|" + re.escape(os.path.basename(outside)))
    for text in seen.values():
        assert all(allowed.fullmatch(entry) for entry in text.split()), seen
    # And on the host, every subPath mount the agent made was of the volume.
    assert watcher.roots, "no subPath mount was ever seen in the mount table"
    volume_root = "/volumes/kubernetes.io~empty-dir/data"
    assert all(volume_root in root for root in watcher.roots), watcher.roots

    agent.remove("swap.yaml")
    wait_until(lambda: not agent.containers(), timeout=20, what="no container left")
    wait_until(lambda: not pod_dir.exists(), timeout=10, what="the pod directory removed")
    assert (outside / "host-secret").read_text() == "host\n"
    assert (outside / "inner" / "host-secret").read_text() == "host\n"


def test_pod_directories_are_closed_to_other_users(agent: Agent) -> None:
    agent.write(
        "p.yaml",
        pod_manifest(
            "p",
            [
                sh(
                    "c",
                    "sleep 3600 & wait",
                    volumeMounts=[{"name": "d", "mountPath": "/d", "subPath": "x"}],
                )
            ],
            volumes=[{"name": "d", "emptyDir": {}}],
        ),
    )
    pod = agent.wait_running("p")
    pods = agent.state / "pods"
    pod_dir = pods / pod["metadata"]["uid"]
    for path in (pods, pod_dir, pod_dir / "volumes", pod_dir / "volume-subpaths"):
        st = os.stat(path)
        assert stat.S_IMODE(st.st_mode) == 0o750, f"{path}: {oct(st.st_mode)}"
        assert st.st_uid == 0
    # The volume itself stays writable by any user of the pod's containers.
    empty_dir = pod_dir / "volumes" / "kubernetes.io~empty-dir" / "d"
    assert stat.S_IMODE(os.stat(empty_dir).st_mode) == 0o777
    # The container writes through its subPath bind mount into the volume.
    agent.exec(pod, "c", "sh", "-c", "echo hi > /d/f")
    assert (empty_dir / "x" / "f").read_text() == "hi\n"
    agent.remove("p.yaml")
    wait_until(lambda: not pod_dir.exists(), timeout=20, what="the pod directory removed")
    with open("/proc/self/mountinfo") as f:
        left = [line.split()[4] for line in f if line.split()[4].startswith(str(pod_dir))]
    assert not left, f"mounts outlived their pod: {left}"


def test_container_labelled_with_a_hostile_pod_uid_is_left_alone(agent: Agent) -> None:
    """Anyone with Docker access can label a container as the agent's: a uid
    of ``../..`` must never become a path the agent removes."""
    victim_dir = agent.state / "victim"
    victim_dir.mkdir()
    # As after any pod: ../victim resolves from here.
    (agent.state / "pods").mkdir(exist_ok=True)
    (victim_dir / "keep").write_text("keep\n")

    def start_labelled(uid: str, pod: str) -> str:
        labels = {
            naming.NODE: agent.node,
            naming.POD_UID: uid,
            naming.POD_NAME: pod,
            naming.POD_NAMESPACE: "default",
            naming.DOCKER_TYPE: naming.TYPE_CONTAINER,
            naming.CONTAINER_NAME: "c",
            # Were it taken for an orphan pod, it would be removed at once.
            naming.POD_GRACE_PERIOD: "0",
        }
        created = agent.api.create_container(
            "localhost/minikubelet/busybox:1", ["sleep", "3600"], labels=labels
        )
        cids.append(created["Id"])
        agent.api.start(created["Id"])
        return str(created["Id"])

    def seen_by_the_agent(control: str) -> None:
        # A container with a valid uid that no pod has is an orphan, removed at once.
        # Docker's events reach the agent in order, so once this control, started
        # after the event under test, is gone, the agent has handled that event too.
        wait_until(
            lambda: not agent.api.containers(all=True, filters={"id": control}),
            timeout=10,
            what="the control orphan removed by the agent",
        )

    cids: list[str] = []
    try:
        cid = start_labelled("../victim", "evil")
        # The agent sees the start event and refuses the container by its
        # label; taking it for an orphan pod instead would remove the pod's
        # "directory", state/pods/../victim.
        seen_by_the_agent(start_labelled("control-1", "control1"))
        assert (victim_dir / "keep").read_text() == "keep\n"
        assert agent.api.inspect_container(cid)["State"]["Running"]  # left alone
        agent.api.kill(cid)
        wait_until(
            lambda: not agent.api.inspect_container(cid)["State"]["Running"],
            timeout=10,
            what="the labelled container dead",
        )
        seen_by_the_agent(start_labelled("control-2", "control2"))
        assert (victim_dir / "keep").read_text() == "keep\n"
        assert agent.api.inspect_container(cid)["Id"] == cid  # not removed by the agent either
    finally:
        for created in cids:
            with contextlib.suppress(docker.errors.NotFound):
                agent.api.remove_container(created, force=True)
