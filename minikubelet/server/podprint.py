"""The cells of a pod's row as kubectl prints them: NAME READY STATUS RESTARTS AGE (+ wide).

A port of ``printPod`` in kubernetes/kubernetes pkg/printers/internalversion/
printers.go, the code the API server runs to answer a Table request for pods
(kubectl 1.32 prints what the server sends). It reads the v1 Pod object a
client receives, not the agent's own types, so what is printed is exactly
what ``-o json`` shows; the quirks are kept on purpose (the last app
container in the list with a reason wins, since the loop walks them backwards;
a regular init container that exited 0 is skipped; a started sidecar counts
in READY).

Pure: the object and ``now`` in, strings out.
"""

from __future__ import annotations

import datetime
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from minikubelet.server.table import Column
from minikubelet.util.timefmt import human_duration

# printers.go's podColumnDefinitions; descriptions as the API server's swagger docs.
COLUMNS = (
    Column(
        "Name",
        format="name",
        description="Name must be unique within a namespace. Is required when creating "
        "resources, although some resources may allow a client to request the generation "
        "of an appropriate name automatically. Name is primarily intended for creation "
        "idempotence and configuration definition. Cannot be updated.",
    ),
    Column("Ready", description="The aggregate readiness state of this pod for accepting traffic."),
    Column("Status", description="The aggregate status of the containers in this pod."),
    Column(
        "Restarts",
        description="The number of times the containers in this pod have been restarted and "
        "when the last container in this pod has restarted.",
    ),
    Column(
        "Age",
        description="CreationTimestamp is a timestamp representing the server time when this "
        "object was created.",
    ),
    Column("IP", priority=1, description="podIP address allocated to the pod."),
    Column("Node", priority=1, description="NodeName is the node the pod runs on."),
    Column(
        "Nominated Node",
        priority=1,
        description="nominatedNodeName is set only when this pod preempts other pods on the node.",
    ),
    Column(
        "Readiness Gates",
        priority=1,
        description="If specified, all readiness gates will be evaluated for pod readiness.",
    ),
)

# k8s.io/kubernetes/pkg/util/node.NodeUnreachablePodReason.
NODE_LOST = "NodeLost"


@dataclass(frozen=True, slots=True)
class PodSummary:
    """What printPod computes before formatting: READY, STATUS and the restarts."""

    ready: int
    total: int
    reason: str
    restarts: int
    last_restart: float | None

    @property
    def ready_text(self) -> str:
        return f"{self.ready}/{self.total}"

    def restarts_text(self, now: float) -> str:
        if self.restarts != 0 and self.last_restart is not None:
            return f"{self.restarts} ({human_duration(now - self.last_restart)} ago)"
        return str(self.restarts)


def parse_time(value: Any) -> float | None:
    """An API timestamp (RFC 3339) as seconds since the epoch; None when absent or unreadable."""
    if not isinstance(value, str) or not value:
        return None
    try:
        parsed = datetime.datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return None
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=datetime.UTC)
    return parsed.timestamp()


def age(value: Any, now: float) -> str:
    """translateTimestampSince: ``<unknown>`` for no timestamp."""
    ts = parse_time(value)
    return "<unknown>" if ts is None else human_duration(now - ts)


def _dict(value: Any) -> Mapping[str, Any]:
    return value if isinstance(value, Mapping) else {}


def _list(value: Any) -> Sequence[Any]:
    return value if isinstance(value, list) else []


def _int(value: Any) -> int:
    return value if isinstance(value, int) and not isinstance(value, bool) else 0


def _str(value: Any) -> str:
    return value if isinstance(value, str) else ""


def _condition_true(status: Mapping[str, Any], type_: str) -> bool:
    return any(
        _dict(c).get("type") == type_ and _dict(c).get("status") == "True"
        for c in _list(status.get("conditions"))
    )


def _later(current: float | None, terminated: Mapping[str, Any]) -> float | None:
    finished = parse_time(terminated.get("finishedAt"))
    if finished is None:
        return current
    return finished if current is None or current < finished else current


def summarize(pod: Mapping[str, Any]) -> PodSummary:
    """printPod's READY, STATUS and RESTARTS for a v1 Pod object."""
    metadata = _dict(pod.get("metadata"))
    spec = _dict(pod.get("spec"))
    status = _dict(pod.get("status"))
    phase = _str(status.get("phase"))
    reason = _str(status.get("reason")) or phase
    for condition in _list(status.get("conditions")):
        c = _dict(condition)
        if c.get("type") == "PodScheduled" and c.get("reason") == "SchedulingGated":
            reason = "SchedulingGated"

    init_specs = [_dict(c) for c in _list(spec.get("initContainers"))]
    sidecars = {_str(c.get("name")) for c in init_specs if c.get("restartPolicy") == "Always"}
    total = len(_list(spec.get("containers"))) + len(sidecars)
    ready = 0
    restarts = 0
    sidecar_restarts = 0
    last_restart: float | None = None
    last_sidecar_restart: float | None = None

    initializing = False
    for i, raw in enumerate(_list(status.get("initContainerStatuses"))):
        container = _dict(raw)
        state = _dict(container.get("state"))
        last_terminated = _dict(_dict(container.get("lastState")).get("terminated"))
        count = _int(container.get("restartCount"))
        restarts += count
        if last_terminated:
            last_restart = _later(last_restart, last_terminated)
        is_sidecar = _str(container.get("name")) in sidecars
        if is_sidecar:
            sidecar_restarts += count
            if last_terminated:
                last_sidecar_restart = _later(last_sidecar_restart, last_terminated)
        terminated = _dict(state.get("terminated")) if "terminated" in state else None
        waiting = _dict(state.get("waiting")) if "waiting" in state else None
        if terminated is not None and _int(terminated.get("exitCode")) == 0:
            continue
        if is_sidecar and container.get("started") is True:
            if container.get("ready") is True:
                ready += 1
            continue
        if terminated is not None:
            # Initialization failed.
            why = _str(terminated.get("reason"))
            if why:
                reason = "Init:" + why
            elif _int(terminated.get("signal")) != 0:
                reason = f"Init:Signal:{_int(terminated.get('signal'))}"
            else:
                reason = f"Init:ExitCode:{_int(terminated.get('exitCode'))}"
        elif waiting is not None and _str(waiting.get("reason")) not in ("", "PodInitializing"):
            reason = "Init:" + _str(waiting.get("reason"))
        else:
            reason = f"Init:{i}/{len(init_specs)}"
        initializing = True
        break

    if not initializing or _condition_true(status, "Initialized"):
        restarts = sidecar_restarts
        last_restart = last_sidecar_restart
        has_running = False
        for raw in reversed(_list(status.get("containerStatuses"))):
            container = _dict(raw)
            state = _dict(container.get("state"))
            restarts += _int(container.get("restartCount"))
            last_terminated = _dict(_dict(container.get("lastState")).get("terminated"))
            if last_terminated:
                last_restart = _later(last_restart, last_terminated)
            waiting = _dict(state.get("waiting"))
            terminated = _dict(state.get("terminated")) if "terminated" in state else None
            if _str(waiting.get("reason")):
                reason = _str(waiting.get("reason"))
            elif terminated is not None and _str(terminated.get("reason")):
                reason = _str(terminated.get("reason"))
            elif terminated is not None:
                signal = _int(terminated.get("signal"))
                reason = (
                    f"Signal:{signal}"
                    if signal != 0
                    else f"ExitCode:{_int(terminated.get('exitCode'))}"
                )
            elif container.get("ready") is True and "running" in state:
                has_running = True
                ready += 1
        # Back to Running while a container still runs (a finished sidecar-like container).
        if reason == "Completed" and has_running:
            reason = "Running" if _condition_true(status, "Ready") else "NotReady"

    if metadata.get("deletionTimestamp") is not None:
        if _str(status.get("reason")) == NODE_LOST:
            reason = "Unknown"
        elif phase not in ("Succeeded", "Failed"):
            reason = "Terminating"
    return PodSummary(ready, total, reason, restarts, last_restart)


def readiness_gates(pod: Mapping[str, Any]) -> str:
    gates = _list(_dict(pod.get("spec")).get("readinessGates"))
    if not gates:
        return "<none>"
    conditions = [_dict(c) for c in _list(_dict(pod.get("status")).get("conditions"))]
    true = 0
    for gate in gates:
        wanted = _dict(gate).get("conditionType")
        for condition in conditions:
            if condition.get("type") == wanted:
                true += condition.get("status") == "True"
                break
    return f"{true}/{len(gates)}"


def pod_cells(pod: Mapping[str, Any], now: float) -> list[str]:
    """Every cell of the row, the wide ones included (kubectl hides those unless ``-o wide``)."""
    metadata = _dict(pod.get("metadata"))
    spec = _dict(pod.get("spec"))
    status = _dict(pod.get("status"))
    summary = summarize(pod)
    ips = _list(status.get("podIPs"))
    pod_ip = _str(_dict(ips[0]).get("ip")) if ips else ""
    return [
        _str(metadata.get("name")),
        summary.ready_text,
        summary.reason,
        summary.restarts_text(now),
        age(metadata.get("creationTimestamp"), now),
        pod_ip or "<none>",
        _str(spec.get("nodeName")) or "<none>",
        _str(status.get("nominatedNodeName")) or "<none>",
        readiness_gates(pod),
    ]
