"""The v1 Node of this agent, computed from readings: pure, as the kubelet's nodestatus setters.

Everything here takes data and ``now`` and returns data, so each rule is
tested with made-up readings: capacity and allocatable, the pressure
signals against the kubelet's hard-eviction defaults, the conditions with
their reasons, messages and transition times, and the Node object itself.

Conditions follow pkg/kubelet/nodestatus/setters.go: MemoryPressure,
DiskPressure, PIDPressure, then Ready, each with the kubelet's reason and
message; ``lastHeartbeatTime`` moves on every update, ``lastTransitionTime``
only when the status flips, and each flip is a Normal node event
(``NodeHasSufficientMemory``, ``NodeReady``…). A pressure seen once holds
for ``PRESSURE_TRANSITION_PERIOD`` after it was last seen, as the eviction
manager's evictionPressureTransitionPeriod keeps a node from flapping.
"""

from __future__ import annotations

import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from minikubelet.nodestatus.readings import FsReading, HostFacts, Readings
from minikubelet.util.timefmt import rfc3339

MIB = 1 << 20
# The kubelet's maxPods default.
MAX_PODS = 110
# evictionPressureTransitionPeriod: a pressure condition stays True this long after the
# signal was last over its threshold.
PRESSURE_TRANSITION_PERIOD = 300.0
# Names the node's uid is derived from: stable for a machine and node name, distinct
# across machines that share a name.
_UID_NAMESPACE = uuid.UUID("8f1d7b0e-6f55-4d6e-9a35-0c5b8f0b7d11")


@dataclass(frozen=True, slots=True)
class Thresholds:
    """Hard-eviction thresholds: the kubelet's defaults (evictionHard), except ``pid``.

    The kubelet has no default for pid.available on Linux; 10 % of the PID space
    leaves room to run a shell and the agent's own probes when it fires.
    """

    memory_available: int = 100 * MIB  # memory.available<100Mi
    nodefs_available: float = 0.10  # nodefs.available<10%
    nodefs_inodes_free: float = 0.05  # nodefs.inodesFree<5%
    imagefs_available: float = 0.15  # imagefs.available<15%
    imagefs_inodes_free: float = 0.05  # imagefs.inodesFree<5%
    pid_available: float = 0.10  # pid.available<10% (our choice)


DEFAULT_THRESHOLDS = Thresholds()


def _short(available: int, total: int, fraction: float) -> bool:
    # The eviction manager's thresholdMet: pressure when the threshold exceeds what is
    # available, so exactly at the threshold is not pressure.
    return total > 0 and int(total * fraction) > available


def _fs_short(fs: FsReading, space: float, inodes: float) -> bool:
    return _short(fs.available, fs.capacity, space) or _short(fs.inodes_free, fs.inodes, inodes)


def observed_pressures(readings: Readings, thresholds: Thresholds = DEFAULT_THRESHOLDS) -> set[str]:
    """The condition types whose signal is over its threshold in these readings."""
    out = set()
    if readings.memory_available < thresholds.memory_available:
        out.add("MemoryPressure")
    if _fs_short(
        readings.nodefs, thresholds.nodefs_available, thresholds.nodefs_inodes_free
    ) or _fs_short(readings.imagefs, thresholds.imagefs_available, thresholds.imagefs_inodes_free):
        out.add("DiskPressure")
    if _short(
        readings.pid_capacity - readings.pids, readings.pid_capacity, thresholds.pid_available
    ):
        out.add("PIDPressure")
    return out


def pressures(last_seen: Mapping[str, float], now: float) -> set[str]:
    """The pressure conditions that hold: seen within the transition period."""
    return {t for t, seen in last_seen.items() if now - seen < PRESSURE_TRANSITION_PERIOD}


@dataclass(frozen=True, slots=True)
class Condition:
    type: str
    status: str
    reason: str
    message: str
    heartbeat: float
    transition: float

    def to_api(self) -> dict[str, Any]:
        return {
            "type": self.type,
            "status": self.status,
            "lastHeartbeatTime": rfc3339(self.heartbeat),
            "lastTransitionTime": rfc3339(self.transition),
            "reason": self.reason,
            "message": self.message,
        }


# (reason, message, event) when the pressure holds, then when it does not.
_PRESSURE_WORDS = {
    "MemoryPressure": (
        ("KubeletHasInsufficientMemory", "kubelet has insufficient memory available"),
        ("KubeletHasSufficientMemory", "kubelet has sufficient memory available"),
        ("NodeHasInsufficientMemory", "NodeHasSufficientMemory"),
    ),
    "DiskPressure": (
        ("KubeletHasDiskPressure", "kubelet has disk pressure"),
        ("KubeletHasNoDiskPressure", "kubelet has no disk pressure"),
        ("NodeHasDiskPressure", "NodeHasNoDiskPressure"),
    ),
    "PIDPressure": (
        ("KubeletHasInsufficientPID", "kubelet has insufficient PID available"),
        ("KubeletHasSufficientPID", "kubelet has sufficient PID available"),
        ("NodeHasInsufficientPID", "NodeHasSufficientPID"),
    ),
}
CONDITION_ORDER = ("MemoryPressure", "DiskPressure", "PIDPressure", "Ready")


def update_conditions(
    previous: Mapping[str, Condition],
    *,
    pressure: set[str],
    ready_errors: Sequence[str],
    now: float,
) -> tuple[list[Condition], list[str]]:
    """The node's conditions now, and the node events their flips call for (in order).

    ``ready_errors`` are why the node is not ready (the runtime is down…); none
    means Ready. A condition seen for the first time counts as a flip, as the
    kubelet's start from Unknown does.
    """
    out: list[Condition] = []
    events: list[str] = []
    for type_ in CONDITION_ORDER:
        if type_ == "Ready":
            ok = not ready_errors
            status = "True" if ok else "False"
            reason = "KubeletReady" if ok else "KubeletNotReady"
            if ok:
                message = "kubelet is posting ready status"
            elif len(ready_errors) == 1:
                message = ready_errors[0]
            else:
                # utilerrors.NewAggregate's wording of several errors.
                message = "[" + ", ".join(ready_errors) + "]"
            event = "NodeReady" if ok else "NodeNotReady"
        else:
            held = type_ in pressure
            (on_reason, on_message), (off_reason, off_message), (on_event, off_event) = (
                _PRESSURE_WORDS[type_]
            )
            status = "True" if held else "False"
            reason, message, event = (
                (on_reason, on_message, on_event) if held else (off_reason, off_message, off_event)
            )
        before = previous.get(type_)
        flipped = before is None or before.status != status
        out.append(
            Condition(
                type=type_,
                status=status,
                reason=reason,
                message=message,
                heartbeat=now,
                transition=now if flipped or before is None else before.transition,
            )
        )
        if flipped:
            events.append(event)
    return out, events


# --- quantities ------------------------------------------------------------------------

_BINARY_SUFFIXES = (("Ei", 60), ("Pi", 50), ("Ti", 40), ("Gi", 30), ("Mi", 20), ("Ki", 10))


def binary_quantity(value: int) -> str:
    """A byte count as resource.Quantity prints a BinarySI value: the largest power-of-two
    suffix that divides it exactly, else plain bytes."""
    for suffix, shift in _BINARY_SUFFIXES:
        if value and value % (1 << shift) == 0:
            return f"{value >> shift}{suffix}"
    return str(value)


def capacity(facts: HostFacts, readings: Readings) -> dict[str, str]:
    return {
        "cpu": str(facts.cpu_count),
        "ephemeral-storage": binary_quantity(readings.nodefs.capacity),
        "memory": binary_quantity(readings.memory_capacity),
        "pods": str(MAX_PODS),
    }


def allocatable(
    facts: HostFacts, readings: Readings, thresholds: Thresholds = DEFAULT_THRESHOLDS
) -> dict[str, str]:
    """Capacity less the hard-eviction thresholds (no kube or system reservations are
    configured), as the kubelet's GetNodeAllocatableAbsolute."""
    storage = readings.nodefs.capacity
    return {
        "cpu": str(facts.cpu_count),
        "ephemeral-storage": binary_quantity(
            max(storage - int(storage * thresholds.nodefs_available), 0)
        ),
        "memory": binary_quantity(max(readings.memory_capacity - thresholds.memory_available, 0)),
        "pods": str(MAX_PODS),
    }


# --- the Node --------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class NodeIdentity:
    """What the agent knows of itself: fixed for its run."""

    name: str
    # When the agent started: the Node's creationTimestamp (it is made at registration).
    created: float
    host_ip: str
    port: int
    kubelet_version: str
    pod_cidr: str = ""
    # docker://<engine version>, once the engine answered.
    runtime_version: str = ""


def same_but_heartbeats(a: Mapping[str, Any], b: Mapping[str, Any]) -> bool:
    """Whether two Nodes differ in nothing but their version and conditions' heartbeats:
    the kubelet does not post such a status before nodeStatusReportFrequency."""

    def stripped(node: Mapping[str, Any]) -> tuple[Any, ...]:
        metadata = {k: v for k, v in node["metadata"].items() if k != "resourceVersion"}
        status = {k: v for k, v in node["status"].items() if k != "conditions"}
        conditions = [
            {k: v for k, v in c.items() if k != "lastHeartbeatTime"}
            for c in node["status"]["conditions"]
        ]
        return metadata, node["spec"], status, conditions

    return stripped(a) == stripped(b)


def node_uid(machine_id: str, name: str) -> str:
    """A uid stable for this machine and node name, across restarts and upgrades."""
    return str(uuid.uuid5(_UID_NAMESPACE, f"{machine_id}/{name}"))


def node_labels(name: str, facts: HostFacts) -> dict[str, str]:
    """The labels the kubelet registers its Node with (getNodeLabels), beta ones included."""
    return {
        "beta.kubernetes.io/arch": facts.architecture,
        "beta.kubernetes.io/os": "linux",
        "kubernetes.io/arch": facts.architecture,
        # --node-name plays the kubelet's --hostname-override: the label and the Hostname
        # address follow it.
        "kubernetes.io/hostname": name,
        "kubernetes.io/os": "linux",
    }


def node_object(
    identity: NodeIdentity,
    facts: HostFacts,
    readings: Readings,
    conditions: Sequence[Condition],
    *,
    version: int,
    thresholds: Thresholds = DEFAULT_THRESHOLDS,
) -> dict[str, Any]:
    spec: dict[str, Any] = {}
    if identity.pod_cidr:
        spec = {"podCIDR": identity.pod_cidr, "podCIDRs": [identity.pod_cidr]}
    return {
        "kind": "Node",
        "apiVersion": "v1",
        "metadata": {
            "name": identity.name,
            "uid": node_uid(facts.machine_id, identity.name),
            "resourceVersion": str(version),
            "creationTimestamp": rfc3339(identity.created),
            "labels": node_labels(identity.name, facts),
        },
        "spec": spec,
        "status": {
            "capacity": capacity(facts, readings),
            "allocatable": allocatable(facts, readings, thresholds),
            "conditions": [c.to_api() for c in conditions],
            "addresses": [
                {"type": "InternalIP", "address": identity.host_ip},
                {"type": "Hostname", "address": identity.name},
            ],
            "daemonEndpoints": {"kubeletEndpoint": {"Port": identity.port}},
            "nodeInfo": {
                "machineID": facts.machine_id,
                "systemUUID": facts.system_uuid,
                "bootID": facts.boot_id,
                "kernelVersion": facts.kernel_version,
                "osImage": facts.os_image,
                "containerRuntimeVersion": identity.runtime_version,
                "kubeletVersion": identity.kubelet_version,
                "kubeProxyVersion": "",
                "operatingSystem": "linux",
                "architecture": facts.architecture,
            },
        },
    }
