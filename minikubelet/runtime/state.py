"""What the agent knows of its containers on Docker: the runtime cache.

The cache plays the part of the kubelet's PLEG plus its runtime cache. It is
kept current without polling: by the results of the agent's own calls
(create, start), by the Docker event stream (start, die, oom, destroy), and
by a relist when the stream reconnects or the agent starts. Reading a pod's
state is therefore free, and a container's death reaches its pod worker as
soon as Docker reports it.

Records are immutable; an update replaces one. Pure data, no Docker here.
"""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from typing import NewType

from minikubelet.model import naming
from minikubelet.model.spec import PodUID
from minikubelet.runtime.paths import valid_pod_uid

log = logging.getLogger(__name__)

ContainerID = NewType("ContainerID", str)


class ContainerState(StrEnum):
    CREATED = "created"
    RUNNING = "running"
    EXITED = "exited"
    UNKNOWN = "unknown"


# Forward-only: a late "start" never revives a container already seen dead.
_RANK = {
    ContainerState.CREATED: 0,
    ContainerState.UNKNOWN: 0,
    ContainerState.RUNNING: 1,
    ContainerState.EXITED: 2,
}


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


def _newest_first(records: Iterable[ContainerRecord]) -> tuple[ContainerRecord, ...]:
    return tuple(sorted(records, key=lambda r: (r.attempt, r.created_at), reverse=True))


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


def record_from_labels(
    container_id: str,
    labels: Mapping[str, str],
    *,
    state: ContainerState,
    created_at: float,
    image: str = "",
    image_id: str = "",
) -> ContainerRecord | None:
    """A record for a container found on Docker; None if it is not a pod container of ours.

    A uid label that could not name a pod directory is refused here, so no
    such uid ever reaches a path: the agent never makes one, so the
    container was labelled by someone else, and is left alone.
    """
    uid = labels.get(naming.POD_UID)
    kind = labels.get(naming.DOCKER_TYPE)
    if not uid or kind not in (naming.TYPE_SANDBOX, naming.TYPE_CONTAINER):
        return None
    if not valid_pod_uid(uid):
        log.warning(
            "container %s has pod uid label %r, which no pod has; ignored", container_id[:12], uid
        )
        return None
    is_sandbox = kind == naming.TYPE_SANDBOX
    attempt_label = naming.SANDBOX_ATTEMPT if is_sandbox else naming.RESTART_COUNT
    try:
        attempt = int(labels.get(attempt_label, "0"))
    except ValueError:
        attempt = 0
    return ContainerRecord(
        id=ContainerID(container_id),
        pod_uid=PodUID(uid),
        pod_name=labels.get(naming.POD_NAME, ""),
        pod_namespace=labels.get(naming.POD_NAMESPACE, ""),
        name=naming.SANDBOX_CONTAINER_NAME if is_sandbox else labels.get(naming.CONTAINER_NAME, ""),
        attempt=attempt,
        state=state,
        created_at=created_at,
        is_sandbox=is_sandbox,
        image=image,
        image_id=image_id,
        spec_hash=labels.get(naming.CONTAINER_HASH, ""),
        labels=dict(labels),
    )


class RuntimeCache:
    """Records by container id, grouped by pod; tells a listener which pod changed."""

    def __init__(self) -> None:
        self._records: dict[ContainerID, ContainerRecord] = {}
        self._by_pod: dict[PodUID, set[ContainerID]] = {}
        self._listeners: list[Callable[[PodUID], None]] = []
        # True from losing the engine's event stream until the next full relist:
        # records may be out of date, so nothing should act on them.
        self.stale = False

    def add_listener(self, listener: Callable[[PodUID], None]) -> None:
        self._listeners.append(listener)

    def _notify(self, uid: PodUID) -> None:
        for listener in self._listeners:
            listener(uid)

    def get(self, container_id: str) -> ContainerRecord | None:
        return self._records.get(ContainerID(container_id))

    def pod_state(self, uid: PodUID) -> PodRuntimeState:
        records = [self._records[i] for i in self._by_pod.get(uid, ())]
        return PodRuntimeState(
            uid=uid,
            sandboxes=_newest_first(r for r in records if r.is_sandbox),
            containers=_newest_first(r for r in records if not r.is_sandbox),
        )

    def pod_uids(self) -> set[PodUID]:
        return set(self._by_pod)

    def records(self) -> list[ContainerRecord]:
        return list(self._records.values())

    def put(self, record: ContainerRecord, *, notify: bool = True) -> None:
        """Insert or replace a record as a whole (from an inspect or our own create)."""
        old = self._records.get(record.id)
        if old is not None and _RANK[record.state] < _RANK[old.state]:
            return
        self._records[record.id] = record
        self._by_pod.setdefault(record.pod_uid, set()).add(record.id)
        if notify and record != old:
            self._notify(record.pod_uid)

    def started(self, container_id: str, at: float) -> None:
        old = self._records.get(ContainerID(container_id))
        if old is None or old.state is not ContainerState.CREATED:
            return
        self.put(dataclasses.replace(old, state=ContainerState.RUNNING, started_at=at))

    def died(
        self,
        container_id: str,
        *,
        at: float,
        exit_code: int,
        oom_killed: bool | None = None,
        error: str | None = None,
        started_at: float | None = None,
    ) -> ContainerRecord | None:
        old = self._records.get(ContainerID(container_id))
        if old is None or old.state is ContainerState.EXITED:
            return None
        new = dataclasses.replace(
            old,
            state=ContainerState.EXITED,
            finished_at=at,
            exit_code=exit_code,
            oom_killed=old.oom_killed if oom_killed is None else oom_killed,
            error=old.error if error is None else error,
            started_at=old.started_at if started_at is None else started_at,
        )
        self.put(new)
        return new

    def update(self, container_id: str, **changes: object) -> None:
        """Refine fields of a record (exact times from an inspect, the termination message)."""
        old = self._records.get(ContainerID(container_id))
        if old is None:
            return
        self.put(dataclasses.replace(old, **changes))  # type: ignore[arg-type]

    def oom(self, container_id: str) -> None:
        old = self._records.get(ContainerID(container_id))
        if old is not None and not old.oom_killed:
            self._records[old.id] = dataclasses.replace(old, oom_killed=True)

    def remove(self, container_id: str) -> None:
        old = self._records.pop(ContainerID(container_id), None)
        if old is None:
            return
        ids = self._by_pod.get(old.pod_uid)
        if ids is not None:
            ids.discard(old.id)
            if not ids:
                del self._by_pod[old.pod_uid]
        self._notify(old.pod_uid)

    def replace_all(self, records: Iterable[ContainerRecord]) -> None:
        """Make the cache exactly ``records`` (a relist), notifying every pod that changed."""
        new = {r.id: r for r in records}
        touched: set[PodUID] = set()
        for cid, old in list(self._records.items()):
            if cid not in new:
                touched.add(old.pod_uid)
                self._records.pop(cid)
        for cid, rec in new.items():
            if self._records.get(cid) != rec:
                touched.add(rec.pod_uid)
            self._records[cid] = rec
        if self.stale:
            # Back from an outage: every pod's workers waited, so wake them all.
            touched.update(self._by_pod)
            self.stale = False
        self._by_pod = {}
        for rec in self._records.values():
            self._by_pod.setdefault(rec.pod_uid, set()).add(rec.id)
        for uid in touched:
            self._notify(uid)
