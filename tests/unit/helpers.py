"""Builders for pods and runtime records in unit tests."""

from __future__ import annotations

import hashlib
from typing import Any

from minikubelet.container.state import (
    ContainerID,
    ContainerRecord,
    ContainerState,
    PodRuntimeState,
)
from minikubelet.model import naming
from minikubelet.model.manifest import pod_from_document
from minikubelet.model.spec import Pod, PodUID

UID = PodUID("0123456789abcdef0123456789abcdef")
SANDBOX = "sb-current"


def make_pod(
    containers: tuple[str, ...] = ("a",),
    *,
    init: tuple[str, ...] = (),
    sidecars: tuple[str, ...] = (),
    policy: str = "Always",
    extra: dict[str, Any] | None = None,
    container_extra: dict[str, dict[str, Any]] | None = None,
    name: str = "p",
    annotations: dict[str, str] | None = None,
) -> Pod:
    """A pod; ``sidecars`` are init containers with restartPolicy Always, placed first."""
    container_extra = container_extra or {}

    def ctr(name: str, **more: Any) -> dict[str, Any]:
        return {"name": name, "image": "busybox:1", **more, **container_extra.get(name, {})}

    spec: dict[str, Any] = {
        "restartPolicy": policy,
        "containers": [ctr(n) for n in containers],
    }
    inits = [ctr(n, restartPolicy="Always") for n in sidecars] + [ctr(n) for n in init]
    if inits:
        spec["initContainers"] = inits
    spec.update(extra or {})
    uid = UID if name == "p" else hashlib.md5(name.encode()).hexdigest()
    metadata: dict[str, Any] = {"name": name, "uid": uid}
    if annotations:
        metadata["annotations"] = annotations
    doc = {"apiVersion": "v1", "kind": "Pod", "metadata": metadata, "spec": spec}
    return pod_from_document(doc, origin="/m/p.yaml", node_name="node", seen=lambda uid: "t")


def rec(
    pod: Pod,
    name: str,
    *,
    attempt: int = 0,
    state: str = "running",
    exit_code: int | None = None,
    started: float | None = 100.0,
    finished: float | None = None,
    sandbox: str = SANDBOX,
    created: float | None = None,
    spec_hash: str | None = None,
    oom: bool = False,
    cid: str | None = None,
) -> ContainerRecord:
    """A container record of ``pod``; exited records default to exit code 0 at t=200."""
    st = ContainerState(state)
    if st is ContainerState.EXITED:
        exit_code = 0 if exit_code is None else exit_code
        finished = 200.0 if finished is None else finished
    container = pod.spec.container(name)
    labels = {naming.SANDBOX_ID: sandbox, naming.POD_UID: pod.uid}
    return ContainerRecord(
        id=ContainerID(cid or f"{name}-{attempt}-{sandbox}"),
        pod_uid=pod.uid,
        pod_name=pod.name,
        pod_namespace=pod.namespace,
        name=name,
        attempt=attempt,
        state=st,
        created_at=created if created is not None else float(attempt),
        started_at=started if st is not ContainerState.CREATED else None,
        finished_at=finished,
        exit_code=exit_code,
        oom_killed=oom,
        image="busybox:1",
        spec_hash=spec_hash
        if spec_hash is not None
        else (container.spec_hash if container else ""),
        labels=labels,
    )


def sandbox(
    pod: Pod, *, attempt: int = 0, state: str = "running", cid: str = SANDBOX, ip: str = "10.0.0.5"
) -> ContainerRecord:
    return ContainerRecord(
        id=ContainerID(cid),
        pod_uid=pod.uid,
        pod_name=pod.name,
        pod_namespace=pod.namespace,
        name="POD",
        attempt=attempt,
        state=ContainerState(state),
        created_at=float(attempt),
        is_sandbox=True,
        started_at=50.0,
        finished_at=150.0 if state == "exited" else None,
        exit_code=0 if state == "exited" else None,
        labels={naming.POD_IP: ip},
    )


def state_of(pod: Pod, *records: ContainerRecord) -> PodRuntimeState:
    sandboxes = sorted(
        (r for r in records if r.is_sandbox), key=lambda r: (r.attempt, r.created_at), reverse=True
    )
    containers = sorted(
        (r for r in records if not r.is_sandbox),
        key=lambda r: (r.attempt, r.created_at),
        reverse=True,
    )
    return PodRuntimeState(uid=pod.uid, sandboxes=tuple(sandboxes), containers=tuple(containers))
