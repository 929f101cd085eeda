"""What runs, as plain data: container records, a pod's snapshot, verdicts on containers.

The kubelet's pkg/kubelet/container: observed state that the runtime fills
in and that status, probes and pod workers read. Nothing here knows which
engine runs the containers; the runtime turns what its engine says into
these records (for Docker, runtime/labels.py and runtime/inspect.py).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from typing import NewType

from minikubelet.model import naming
from minikubelet.model.spec import PodUID

ContainerID = NewType("ContainerID", str)


class ContainerState(StrEnum):
    CREATED = "created"
    RUNNING = "running"
    EXITED = "exited"
    UNKNOWN = "unknown"


@dataclass(frozen=True, slots=True)
class ContainerRecord:
    id: ContainerID
    pod_uid: PodUID
    pod_name: str
    pod_namespace: str
    # The container's name in the pod spec; "POD" for the sandbox.
    name: str
    # Restart count for containers, attempt for sandboxes.
    attempt: int
    state: ContainerState
    created_at: float
    is_sandbox: bool = False
    started_at: float | None = None
    finished_at: float | None = None
    exit_code: int | None = None
    oom_killed: bool = False
    # A sandbox whose pod network was taken away while it runs (Docker's
    # network disconnect): the pod must get a new sandbox, as on the kubelet.
    network_lost: bool = False
    error: str = ""
    message: str = ""
    image: str = ""
    image_id: str = ""
    spec_hash: str = ""
    labels: Mapping[str, str] = field(default_factory=dict, compare=False)

    @property
    def running(self) -> bool:
        return self.state is ContainerState.RUNNING

    @property
    def exited(self) -> bool:
        return self.state is ContainerState.EXITED

    @property
    def docker_id(self) -> str:
        return f"docker://{self.id}"

    def label(self, key: str, default: str = "") -> str:
        return self.labels.get(key, default)


@dataclass(frozen=True, slots=True)
class PodRuntimeState:
    """A snapshot of one pod's containers, newest instance first."""

    uid: PodUID
    sandboxes: tuple[ContainerRecord, ...] = ()
    containers: tuple[ContainerRecord, ...] = ()

    @property
    def sandbox(self) -> ContainerRecord | None:
        return self.sandboxes[0] if self.sandboxes else None

    @property
    def pod_ip(self) -> str:
        """The IP the agent gave the newest sandbox ("" for hostNetwork or none yet)."""
        sandbox = self.sandbox
        return sandbox.label(naming.POD_IP) if sandbox is not None else ""

    def instances(self, name: str) -> tuple[ContainerRecord, ...]:
        return tuple(c for c in self.containers if c.name == name)

    def latest(self, name: str) -> ContainerRecord | None:
        for c in self.containers:
            if c.name == name:
                return c
        return None

    def previous(self, name: str) -> ContainerRecord | None:
        found = False
        for c in self.containers:
            if c.name == name:
                if found:
                    return c
                found = True
        return None

    @property
    def empty(self) -> bool:
        return not self.sandboxes and not self.containers

    @property
    def any_running(self) -> bool:
        return any(r.running for r in (*self.sandboxes, *self.containers))


@dataclass(frozen=True, slots=True)
class Waiting:
    """Why a container is not running yet: a Kubernetes waiting reason and its message."""

    reason: str
    message: str


@dataclass(frozen=True, slots=True)
class Unhealthy:
    """A liveness or startup verdict against one running container instance."""

    container_id: str
    probe: str  # "liveness" | "startup"
    grace_override: int | None = None
