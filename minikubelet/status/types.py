"""The pod status as the API shows it, as immutable values.

``to_api`` gives the v1 JSON form; field order and spelling follow the API.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum
from typing import Any

from minikubelet.util.timefmt import rfc3339


class PodPhase(StrEnum):
    PENDING = "Pending"
    RUNNING = "Running"
    SUCCEEDED = "Succeeded"
    FAILED = "Failed"
    UNKNOWN = "Unknown"

    @property
    def terminal(self) -> bool:
        return self in (PodPhase.SUCCEEDED, PodPhase.FAILED)


@dataclass(frozen=True, slots=True)
class StateWaiting:
    reason: str
    message: str = ""

    def to_api(self) -> dict[str, Any]:
        body: dict[str, Any] = {"reason": self.reason}
        if self.message:
            body["message"] = self.message
        return {"waiting": body}


@dataclass(frozen=True, slots=True)
class StateRunning:
    started_at: float

    def to_api(self) -> dict[str, Any]:
        return {"running": {"startedAt": rfc3339(self.started_at)}}


@dataclass(frozen=True, slots=True)
class StateTerminated:
    exit_code: int
    reason: str
    started_at: float | None
    finished_at: float | None
    container_id: str
    message: str = ""
    signal: int | None = None

    def to_api(self) -> dict[str, Any]:
        body: dict[str, Any] = {"exitCode": self.exit_code}
        if self.signal is not None:
            body["signal"] = self.signal
        body["reason"] = self.reason
        if self.message:
            body["message"] = self.message
        body["startedAt"] = rfc3339(self.started_at) if self.started_at else None
        body["finishedAt"] = rfc3339(self.finished_at) if self.finished_at else None
        # omitempty in the API: a run the kubelet infers (ContainerStatusUnknown) has no id.
        if self.container_id:
            body["containerID"] = self.container_id
        return {"terminated": body}


ContainerStateValue = StateWaiting | StateRunning | StateTerminated


@dataclass(frozen=True, slots=True)
class ContainerStatus:
    name: str
    state: ContainerStateValue
    last_state: StateTerminated | None
    ready: bool
    restart_count: int
    image: str
    image_id: str = ""
    container_id: str = ""
    started: bool | None = None

    def to_api(self) -> dict[str, Any]:
        body: dict[str, Any] = {
            "name": self.name,
            "state": self.state.to_api(),
            "lastState": self.last_state.to_api() if self.last_state else {},
            "ready": self.ready,
            "restartCount": self.restart_count,
            "image": self.image,
            "imageID": self.image_id,
        }
        if self.container_id:
            body["containerID"] = self.container_id
        if self.started is not None:
            body["started"] = self.started
        return body


@dataclass(frozen=True, slots=True)
class PodCondition:
    type: str
    status: bool
    last_transition_time: float
    reason: str = ""
    message: str = ""

    def to_api(self) -> dict[str, Any]:
        body: dict[str, Any] = {
            "type": self.type,
            "status": "True" if self.status else "False",
            "lastProbeTime": None,
            "lastTransitionTime": rfc3339(self.last_transition_time),
        }
        if self.reason:
            body["reason"] = self.reason
        if self.message:
            body["message"] = self.message
        return body


@dataclass(frozen=True, slots=True)
class PodStatus:
    phase: PodPhase
    conditions: tuple[PodCondition, ...] = ()
    host_ip: str = ""
    pod_ip: str = ""
    start_time: float | None = None
    qos_class: str = "BestEffort"
    init_container_statuses: tuple[ContainerStatus, ...] = ()
    container_statuses: tuple[ContainerStatus, ...] = ()
    reason: str = ""
    message: str = ""

    def condition(self, type_: str) -> PodCondition | None:
        for c in self.conditions:
            if c.type == type_:
                return c
        return None

    def container(self, name: str) -> ContainerStatus | None:
        for s in (*self.init_container_statuses, *self.container_statuses):
            if s.name == name:
                return s
        return None

    def to_api(self) -> dict[str, Any]:
        body: dict[str, Any] = {"phase": str(self.phase)}
        if self.conditions:
            body["conditions"] = [c.to_api() for c in self.conditions]
        if self.reason:
            body["reason"] = self.reason
        if self.message:
            body["message"] = self.message
        if self.host_ip:
            body["hostIP"] = self.host_ip
            body["hostIPs"] = [{"ip": self.host_ip}]
        if self.pod_ip:
            body["podIP"] = self.pod_ip
            body["podIPs"] = [{"ip": self.pod_ip}]
        if self.start_time is not None:
            body["startTime"] = rfc3339(self.start_time)
        if self.init_container_statuses:
            body["initContainerStatuses"] = [s.to_api() for s in self.init_container_statuses]
        body["containerStatuses"] = [s.to_api() for s in self.container_statuses]
        body["qosClass"] = self.qos_class
        return body
