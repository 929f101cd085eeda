"""The node's status from made-up readings: pressure signals at and around the kubelet's
hard-eviction thresholds, conditions with their words, transition times and events,
capacity and allocatable quantities, and the Node object."""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any

import pytest

from minikubelet.events import EventRecorder, ObjectRef
from minikubelet.nodestatus import setters
from minikubelet.nodestatus.manager import NodeStatus
from minikubelet.nodestatus.readings import FsReading, HostFacts, Readings, go_arch, os_image
from minikubelet.nodestatus.setters import (
    PRESSURE_TRANSITION_PERIOD,
    NodeIdentity,
    binary_quantity,
    observed_pressures,
    update_conditions,
)

MI = 1 << 20
GI = 1 << 30
T0 = 1_700_000_000.0

FACTS = HostFacts(
    kernel_version="6.1.0-18-amd64",
    os_image="Debian GNU/Linux 12 (bookworm)",
    architecture="amd64",
    machine_id="3d1219c7c4c5404aaa1f6d2a48adfda4",
    boot_id="4c11f278-0cd8-483a-92d7-baf56605b16c",
    system_uuid="",
    cpu_count=2,
)
DISK = FsReading(capacity=100 * GI, available=50 * GI, inodes=1000, inodes_free=500)
HEALTHY = Readings(
    memory_capacity=8 * GI,
    memory_available=4 * GI,
    nodefs=DISK,
    imagefs=DISK,
    pid_capacity=32768,
    pids=200,
)
IDENTITY = NodeIdentity(
    name="n1",
    created=T0,
    host_ip="192.0.2.7",
    port=10255,
    kubelet_version="v0.1.0",
    pod_cidr="10.217.0.0/16",
    runtime_version="docker://20.10.24",
)


def readings(**changes: Any) -> Readings:
    return dataclasses.replace(HEALTHY, **changes)


def disk(**changes: int) -> FsReading:
    return dataclasses.replace(DISK, **changes)


# --- signals against thresholds --------------------------------------------------------


@pytest.mark.parametrize(
    ("reading", "expected"),
    [
        (readings(), set()),
        (readings(memory_available=100 * MI), set()),
        (readings(memory_available=100 * MI - 1), {"MemoryPressure"}),
        (readings(nodefs=disk(available=10 * GI)), set()),
        (readings(nodefs=disk(available=10 * GI - 1)), {"DiskPressure"}),
        (readings(nodefs=disk(inodes_free=50)), set()),
        (readings(nodefs=disk(inodes_free=49)), {"DiskPressure"}),
        (readings(nodefs=disk(inodes=0, inodes_free=0)), set()),
        (readings(imagefs=disk(available=15 * GI)), set()),
        (readings(imagefs=disk(available=15 * GI - 1)), {"DiskPressure"}),
        (readings(imagefs=disk(inodes_free=49)), {"DiskPressure"}),
        (readings(pids=32768 - 3276), set()),
        (readings(pids=32768 - 3275), {"PIDPressure"}),
        (
            readings(memory_available=0, nodefs=disk(available=0), pids=32768),
            {"MemoryPressure", "DiskPressure", "PIDPressure"},
        ),
    ],
    ids=[
        "healthy",
        "memory-at-100Mi",
        "memory-below-100Mi",
        "nodefs-at-10%",
        "nodefs-below-10%",
        "nodefs-inodes-at-5%",
        "nodefs-inodes-below-5%",
        "no-inode-count-no-signal",
        "imagefs-at-15%",
        "imagefs-below-15%",
        "imagefs-inodes-below-5%",
        "pids-at-10%",
        "pids-below-10%",
        "everything-exhausted",
    ],
)
def test_pressure_is_seen_only_past_the_threshold(reading: Readings, expected: set[str]) -> None:
    assert observed_pressures(reading) == expected


def test_a_pressure_holds_for_the_transition_period_after_it_was_last_seen() -> None:
    seen = {"MemoryPressure": T0}
    assert setters.pressures(seen, T0) == {"MemoryPressure"}
    assert setters.pressures(seen, T0 + PRESSURE_TRANSITION_PERIOD - 1) == {"MemoryPressure"}
    assert setters.pressures(seen, T0 + PRESSURE_TRANSITION_PERIOD) == set()


# --- conditions ------------------------------------------------------------------------


def as_rows(conditions: list[setters.Condition]) -> list[tuple[str, str, str, str]]:
    return [(c.type, c.status, c.reason, c.message) for c in conditions]


def test_first_conditions_are_the_kubelets_and_each_is_an_event() -> None:
    conditions, events = update_conditions({}, pressure=set(), ready_errors=[], now=T0)
    assert as_rows(conditions) == [
        (
            "MemoryPressure",
            "False",
            "KubeletHasSufficientMemory",
            "kubelet has sufficient memory available",
        ),
        ("DiskPressure", "False", "KubeletHasNoDiskPressure", "kubelet has no disk pressure"),
        (
            "PIDPressure",
            "False",
            "KubeletHasSufficientPID",
            "kubelet has sufficient PID available",
        ),
        ("Ready", "True", "KubeletReady", "kubelet is posting ready status"),
    ]
    assert events == [
        "NodeHasSufficientMemory",
        "NodeHasNoDiskPressure",
        "NodeHasSufficientPID",
        "NodeReady",
    ]
    assert {(c.heartbeat, c.transition) for c in conditions} == {(T0, T0)}


def test_pressure_words_when_it_holds() -> None:
    conditions, events = update_conditions(
        {},
        pressure={"MemoryPressure", "DiskPressure", "PIDPressure"},
        ready_errors=[],
        now=T0,
    )
    assert as_rows(conditions)[:3] == [
        (
            "MemoryPressure",
            "True",
            "KubeletHasInsufficientMemory",
            "kubelet has insufficient memory available",
        ),
        ("DiskPressure", "True", "KubeletHasDiskPressure", "kubelet has disk pressure"),
        (
            "PIDPressure",
            "True",
            "KubeletHasInsufficientPID",
            "kubelet has insufficient PID available",
        ),
    ]
    assert events[:3] == [
        "NodeHasInsufficientMemory",
        "NodeHasDiskPressure",
        "NodeHasInsufficientPID",
    ]


@pytest.mark.parametrize(
    ("errors", "message"),
    [
        (["container runtime is down"], "container runtime is down"),
        (["a", "b"], "[a, b]"),
    ],
    ids=["one-error", "errors-aggregated"],
)
def test_not_ready_says_why(errors: list[str], message: str) -> None:
    conditions, events = update_conditions({}, pressure=set(), ready_errors=errors, now=T0)
    ready = conditions[-1]
    assert (ready.status, ready.reason, ready.message) == ("False", "KubeletNotReady", message)
    assert events[-1] == "NodeNotReady"


def test_transition_time_moves_only_when_the_status_flips() -> None:
    first, _ = update_conditions({}, pressure=set(), ready_errors=[], now=T0)
    by_type = {c.type: c for c in first}
    # Ten seconds on, nothing changed: heartbeats move, transitions do not, no events.
    second, events = update_conditions(by_type, pressure=set(), ready_errors=[], now=T0 + 10)
    assert events == []
    assert {(c.heartbeat, c.transition) for c in second} == {(T0 + 10, T0)}
    # Memory runs short and the runtime goes: those two flip, the others keep their time.
    third, events = update_conditions(
        {c.type: c for c in second},
        pressure={"MemoryPressure"},
        ready_errors=["container runtime is down"],
        now=T0 + 20,
    )
    assert events == ["NodeHasInsufficientMemory", "NodeNotReady"]
    assert {c.type: c.transition for c in third} == {
        "MemoryPressure": T0 + 20,
        "DiskPressure": T0,
        "PIDPressure": T0,
        "Ready": T0 + 20,
    }
    # A new message without a flip is no transition.
    fourth, events = update_conditions(
        {c.type: c for c in third},
        pressure={"MemoryPressure"},
        ready_errors=["something else"],
        now=T0 + 30,
    )
    assert events == []
    assert fourth[-1].transition == T0 + 20
    assert fourth[-1].message == "something else"


# --- quantities and the object ---------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "text"),
    [
        (0, "0"),
        (1000, "1000"),
        (1024, "1Ki"),
        (1536 * MI, "1536Mi"),
        (8 * GI, "8Gi"),
        (8 * GI + 1024, "8388609Ki"),
        (3 << 40, "3Ti"),
        (243497856615, "243497856615"),
    ],
)
def test_byte_quantities_print_as_the_api_server_prints_them(value: int, text: str) -> None:
    assert binary_quantity(value) == text


def test_allocatable_is_capacity_less_the_hard_eviction_thresholds() -> None:
    assert setters.capacity(FACTS, HEALTHY) == {
        "cpu": "2",
        "ephemeral-storage": "100Gi",
        "memory": "8Gi",
        "pods": "110",
    }
    assert setters.allocatable(FACTS, HEALTHY) == {
        "cpu": "2",
        "ephemeral-storage": "90Gi",
        "memory": "8092Mi",
        "pods": "110",
    }


def test_the_node_object() -> None:
    conditions, _ = update_conditions({}, pressure=set(), ready_errors=[], now=T0 + 5)
    node = setters.node_object(IDENTITY, FACTS, HEALTHY, conditions, version=7)
    metadata = node["metadata"]
    assert (node["kind"], node["apiVersion"]) == ("Node", "v1")
    assert metadata["name"] == "n1"
    assert metadata["resourceVersion"] == "7"
    assert metadata["creationTimestamp"] == "2023-11-14T22:13:20Z"
    assert metadata["labels"] == {
        "beta.kubernetes.io/arch": "amd64",
        "beta.kubernetes.io/os": "linux",
        "kubernetes.io/arch": "amd64",
        "kubernetes.io/hostname": "n1",
        "kubernetes.io/os": "linux",
    }
    # Stable for a machine and name; another name or machine is another node.
    assert metadata["uid"] == setters.node_uid(FACTS.machine_id, "n1")
    assert metadata["uid"] != setters.node_uid(FACTS.machine_id, "n2")
    assert metadata["uid"] != setters.node_uid("another-machine", "n1")
    status = node["status"]
    assert status["addresses"] == [
        {"type": "InternalIP", "address": "192.0.2.7"},
        {"type": "Hostname", "address": "n1"},
    ]
    assert status["daemonEndpoints"] == {"kubeletEndpoint": {"Port": 10255}}
    assert [c["type"] for c in status["conditions"]] == [
        "MemoryPressure",
        "DiskPressure",
        "PIDPressure",
        "Ready",
    ]
    assert status["conditions"][-1]["lastHeartbeatTime"] == "2023-11-14T22:13:25Z"
    assert status["nodeInfo"] == {
        "machineID": FACTS.machine_id,
        "systemUUID": "",
        "bootID": FACTS.boot_id,
        "kernelVersion": "6.1.0-18-amd64",
        "osImage": "Debian GNU/Linux 12 (bookworm)",
        "containerRuntimeVersion": "docker://20.10.24",
        "kubeletVersion": "v0.1.0",
        "kubeProxyVersion": "",
        "operatingSystem": "linux",
        "architecture": "amd64",
    }
    assert node["spec"] == {"podCIDR": "10.217.0.0/16", "podCIDRs": ["10.217.0.0/16"]}


@pytest.mark.parametrize(
    ("machine", "arch"),
    [
        ("x86_64", "amd64"),
        ("aarch64", "arm64"),
        ("armv7l", "arm"),
        ("i686", "386"),
        ("mips", "mips"),
    ],
)
def test_architectures_are_gos(machine: str, arch: str) -> None:
    assert go_arch(machine) == arch


@pytest.mark.parametrize(
    ("content", "image"),
    [
        ('NAME="Debian"\nPRETTY_NAME="Debian 12 (bookworm)"\n', "Debian 12 (bookworm)"),
        ("PRETTY_NAME='Alpine Linux v3.19'\n", "Alpine Linux v3.19"),
        ("NAME=Something\n", "Linux"),
    ],
    ids=["debian", "single-quotes", "no-pretty-name"],
)  # fmt: skip
def test_os_image_is_the_pretty_name(tmp_path: Path, content: str, image: str) -> None:
    path = tmp_path / "os-release"
    path.write_text(content)
    assert os_image(str(path)) == image
    assert os_image(str(tmp_path / "missing")) == "Linux"


# --- the manager -----------------------------------------------------------------------


class Clock:
    def __init__(self) -> None:
        self.now = T0

    def __call__(self) -> float:
        return self.now


def manager(errors: list[str]) -> tuple[NodeStatus, EventRecorder, Clock]:
    clock = Clock()
    recorder = EventRecorder(host="n1", clock=clock)
    status = NodeStatus(
        IDENTITY,
        FACTS,
        recorder=recorder,
        node_ref=ObjectRef("Node", "n1", uid="n1"),
        clock=clock,
        ready_errors=lambda: list(errors),
        nodefs=Path("/"),
    )
    return status, recorder, clock


def test_the_manager_records_a_node_event_per_flip_and_bumps_the_version() -> None:
    errors = ["container runtime status check may not have completed yet"]
    status, recorder, clock = manager(errors)
    assert status.node() is None
    status.update(HEALTHY)
    errors.clear()
    clock.now += 1
    status.update(HEALTHY)
    clock.now += 10
    status.update(readings(memory_available=0))
    # The pressure is gone from the readings but holds for the transition period.
    clock.now += 10
    status.update(HEALTHY)
    clock.now += PRESSURE_TRANSITION_PERIOD
    status.update(HEALTHY)
    assert [(e.reason, e.count) for e in recorder.list()] == [
        ("NodeHasNoDiskPressure", 1),
        ("NodeHasSufficientPID", 1),
        ("NodeNotReady", 1),
        ("NodeReady", 1),
        ("NodeHasInsufficientMemory", 1),
        # Back to sufficient: the event of the start, counted again.
        ("NodeHasSufficientMemory", 2),
    ]
    assert recorder.list()[0].message == "Node n1 status is now: NodeHasNoDiskPressure"
    node = status.node()
    assert node is not None
    # Five updates, one of which changed nothing but heartbeats: four versions.
    assert node["metadata"]["resourceVersion"] == "4"
    assert status.version == 4
    assert status.renewed == clock.now
    memory = node["status"]["conditions"][0]
    assert memory["status"] == "False"
    assert {e.involved.kind for e in recorder.list()} == {"Node"}


def test_the_runtime_version_is_docker_slash_the_engines() -> None:
    status, _, _ = manager([])
    status.set_runtime("26.1.4", "/var/lib/docker")
    status.update(HEALTHY)
    node = status.node()
    assert node is not None
    assert node["status"]["nodeInfo"]["containerRuntimeVersion"] == "docker://26.1.4"


def test_a_status_that_only_moved_its_heartbeats_is_published_every_five_minutes() -> None:
    status, _, clock = manager([])
    status.update(HEALTHY)
    first = status.node()
    for _ in range(29):
        clock.now += 10
        status.update(HEALTHY)
        assert status.node() is first
    # The Lease is renewed at every update all the same.
    assert status.renewed == clock.now
    clock.now += 10  # 300 s after the last report
    status.update(HEALTHY)
    node = status.node()
    assert node is not None
    assert node["metadata"]["resourceVersion"] == "2"
    assert node["status"]["conditions"][0]["lastHeartbeatTime"] == "2023-11-14T22:18:20Z"
    assert node["status"]["conditions"][0]["lastTransitionTime"] == "2023-11-14T22:13:20Z"
    # Anything else that changes is published at once.
    clock.now += 10
    status.update(readings(memory_available=0))
    assert status.version == 3
