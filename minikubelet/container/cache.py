"""What the agent knows of its containers: the runtime cache.

The cache plays the part of the kubelet's PLEG plus its runtime cache
(pkg/kubelet/container/cache.go). The runtime keeps it current without
polling: by the results of the agent's own calls (create, start), by the
engine's event stream (start, die, oom, destroy), and by relists when the
stream reconnects, when the agent starts and every few minutes. Reading a
pod's state is therefore free, and a container's death reaches its pod
worker as soon as the engine reports it.

Records are immutable; an update replaces one. Pure data, no engine here.
"""

from __future__ import annotations

import contextlib
import dataclasses
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass

from minikubelet.container.state import (
    ContainerID,
    ContainerRecord,
    ContainerState,
    PodRuntimeState,
)
from minikubelet.model.spec import PodUID

# Forward-only: a late "start" never revives a container already seen dead.
_RANK = {
    ContainerState.CREATED: 0,
    ContainerState.UNKNOWN: 0,
    ContainerState.RUNNING: 1,
    ContainerState.EXITED: 2,
}


def _newest_first(records: Iterable[ContainerRecord]) -> tuple[ContainerRecord, ...]:
    return tuple(sorted(records, key=lambda r: (r.attempt, r.created_at), reverse=True))


@dataclass(frozen=True, slots=True)
class Observation:
    """When the engine was asked: what the cache learnt after ``seq`` is newer than its answer."""

    seq: int
    # The event-stream epoch it began in, and whether events were flowing:
    # only a list taken while they flowed, with no loss since, makes the cache current.
    epoch: int
    watching: bool


class RuntimeCache:
    """Records by container id, grouped by pod; tells a listener which pod changed.

    Every change is stamped with a sequence number, so a relist (a list taken
    before its awaits, applied after them) can tell which of its records the
    events and the agent's own calls have overtaken meanwhile, and leave those
    alone: a death seen while the list was in flight stays a death, a
    container destroyed meanwhile is not brought back, one created meanwhile
    is not dropped for being absent from the list.
    """

    def __init__(self) -> None:
        self._records: dict[ContainerID, ContainerRecord] = {}
        self._by_pod: dict[PodUID, set[ContainerID]] = {}
        self._listeners: list[Callable[[PodUID], None]] = []
        self._seq = 0
        self._changed: dict[ContainerID, int] = {}
        # Removals while a relist is in flight, so its list cannot resurrect them.
        self._removed: dict[ContainerID, int] = {}
        self._open: list[int] = []
        self._epoch = 0
        self._watching = False
        self._stale = False

    @property
    def stale(self) -> bool:
        """True from losing the engine's event stream until a relist has caught up:
        records may be out of date, so nothing should act on them."""
        return self._stale

    def events_lost(self) -> None:
        self._stale = True
        self._watching = False
        self._epoch += 1

    def events_resumed(self) -> None:
        """Events flow again; the cache stays stale until a relist begun from now on ends."""
        self._watching = True
        self._epoch += 1

    def add_listener(self, listener: Callable[[PodUID], None]) -> None:
        self._listeners.append(listener)

    def _notify(self, uid: PodUID) -> None:
        for listener in self._listeners:
            listener(uid)

    def _stamp(self, container_id: ContainerID) -> None:
        self._seq += 1
        self._changed[container_id] = self._seq

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
        self._removed.pop(record.id, None)
        self._stamp(record.id)
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
            self._stamp(old.id)

    def remove(self, container_id: str) -> None:
        uid = self._drop(ContainerID(container_id))
        if uid is not None:
            self._notify(uid)

    def _drop(self, cid: ContainerID) -> PodUID | None:
        self._changed.pop(cid, None)
        if self._open:
            self._seq += 1
            self._removed[cid] = self._seq
        old = self._records.pop(cid, None)
        if old is None:
            return None
        ids = self._by_pod.get(old.pod_uid)
        if ids is not None:
            ids.discard(old.id)
            if not ids:
                del self._by_pod[old.pod_uid]
        return old.pod_uid

    # --- what the engine said, applied after an await ---

    @contextlib.contextmanager
    def observing(self) -> Iterator[Observation]:
        """Mark the moment the engine is asked, for applying its answer after awaits."""
        mark = Observation(seq=self._seq, epoch=self._epoch, watching=self._watching)
        self._open.append(mark.seq)
        try:
            yield mark
        finally:
            self._open.remove(mark.seq)
            # A removal matters only to observations that began before it.
            oldest = min(self._open, default=self._seq)
            self._removed = {cid: seq for cid, seq in self._removed.items() if seq > oldest}

    def _overtaken(self, mark: Observation, record: ContainerRecord) -> bool:
        """The cache learnt something about ``record``'s container after ``mark``."""
        if self._removed.get(record.id, 0) > mark.seq:
            return True
        old = self._records.get(record.id)
        if old is None or self._changed.get(record.id, 0) <= mark.seq:
            return False
        # Newer, unless the engine showed a later state than it (a death
        # whose event is still on its way).
        return _RANK[record.state] <= _RANK[old.state]

    def put_observed(self, mark: Observation, record: ContainerRecord) -> None:
        """Put a record read from the engine after ``mark``, unless overtaken since."""
        if not self._overtaken(mark, record):
            self.put(record)

    def finish_relist(
        self,
        mark: Observation,
        *,
        listed: Iterable[str],
        records: Iterable[ContainerRecord],
    ) -> None:
        """Merge a full list taken after ``mark``, notifying every pod that changed.

        ``listed``: every id the engine listed (and did not deny when inspected);
        ``records``: fresh records for those whose cached record did not match
        the list. A container cached but not listed has gone, unless it was
        put since the mark (created meanwhile).
        """
        touched: set[PodUID] = set()
        present = {ContainerID(i) for i in listed}
        for cid in list(self._records):
            if cid not in present and self._changed.get(cid, 0) <= mark.seq:
                uid = self._drop(cid)
                if uid is not None:
                    touched.add(uid)
        for record in records:
            if record.id not in present or self._overtaken(mark, record):
                continue
            if self._records.get(record.id) != record:
                touched.add(record.pod_uid)
            self.put(record, notify=False)
        if self._stale and mark.watching and mark.epoch == self._epoch:
            # Back from an outage: every pod's workers waited, so wake them all.
            touched.update(self._by_pod)
            self._stale = False
        for uid in touched:
            self._notify(uid)
