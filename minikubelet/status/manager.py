"""The one owner of every pod's status.

Pod workers write statuses here; everything that reports (``/pods``, and
later watch, events and mirror pods) reads here or subscribes. Each change
bumps a global resource version, as the API server does, so a watcher can
resume from a version. The API JSON of each pod is serialised once per
version and reused by every reader.
"""

from __future__ import annotations

import asyncio
import itertools
import json
from collections.abc import Iterator
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

from minikubelet.model.spec import Pod, PodUID
from minikubelet.status.types import PodPhase, PodStatus

SUBSCRIBER_QUEUE = 10_000


class WatchType(StrEnum):
    ADDED = "ADDED"
    MODIFIED = "MODIFIED"
    DELETED = "DELETED"


@dataclass(frozen=True, slots=True)
class PodChange:
    type: WatchType
    uid: PodUID
    resource_version: int
    pod: Pod
    status: PodStatus


class Subscription:
    """A feed of pod changes that ends (``next`` → None) when closed or overrun.

    A subscriber that falls more than ``max_lag`` changes behind is cut off
    rather than slowing the agent down or growing its memory: its backlog is
    dropped at once and ``overrun`` is set; like an API watch that expired
    (410 Gone), it starts again from a fresh list.
    """

    def __init__(self, manager: StatusManager, max_lag: int) -> None:
        if max_lag < 1:
            raise ValueError(f"max_lag must be at least 1, not {max_lag}")
        self._manager = manager
        self._max_lag = max_lag
        # One slot more than the lag allows, so the None that ends the feed always fits.
        self._queue: asyncio.Queue[PodChange | None] = asyncio.Queue(max_lag + 1)
        self.closed = False
        self.overrun = False

    def _offer(self, change: PodChange) -> None:
        if self.closed:
            return
        if self._queue.qsize() >= self._max_lag:
            self.overrun = True
            # The subscriber has to relist anyway; keeping the backlog would only pin old statuses.
            while not self._queue.empty():
                self._queue.get_nowait()
            self.close()
            return
        self._queue.put_nowait(change)

    def close(self) -> None:
        if not self.closed:
            self.closed = True
            self._manager._subscribers.discard(self)
            self._queue.put_nowait(None)

    def pending(self, limit: int | None = None) -> list[PodChange]:
        """Changes already queued (at most ``limit``), without waiting."""
        out: list[PodChange] = []
        while not self._queue.empty() and (limit is None or len(out) < limit):
            change = self._queue.get_nowait()
            if change is not None:  # None marks the end; next() still reports it via ``closed``
                out.append(change)
        return out

    async def next(self) -> PodChange | None:
        if self.closed and self._queue.empty():
            return None
        return await self._queue.get()


@dataclass(slots=True)
class _Entry:
    pod: Pod
    status: PodStatus
    version: int
    json: bytes | None = None


def initial_status() -> PodStatus:
    return PodStatus(phase=PodPhase.PENDING)


def pod_object(pod: Pod, status: PodStatus, version: int) -> dict[str, Any]:
    """The v1 Pod object: the defaulted manifest plus the status."""
    manifest = pod.manifest
    metadata = dict(manifest.get("metadata") or {})
    metadata["resourceVersion"] = str(version)
    return {
        "kind": "Pod",
        "apiVersion": "v1",
        "metadata": metadata,
        "spec": manifest.get("spec") or {},
        "status": status.to_api(),
    }


class StatusManager:
    def __init__(self) -> None:
        self._entries: dict[PodUID, _Entry] = {}
        self._versions = itertools.count(1)
        self._version = 0
        self._subscribers: set[Subscription] = set()
        # The sorted, comma-joined pod objects: what every list answers between two changes.
        self._items_json: bytes | None = None

    @property
    def resource_version(self) -> int:
        return self._version

    def _bump(self) -> int:
        self._items_json = None
        self._version = next(self._versions)
        return self._version

    def track(self, pod: Pod) -> None:
        """Start reporting a desired pod (Pending until its worker says more)."""
        entry = self._entries.get(pod.uid)
        if entry is not None:
            if entry.pod is not pod:
                entry.pod = pod
                entry.json = None
                self._items_json = None
            return
        entry = _Entry(pod=pod, status=initial_status(), version=self._bump())
        self._entries[pod.uid] = entry
        self._publish(WatchType.ADDED, entry)

    def untrack(self, uid: PodUID) -> None:
        entry = self._entries.pop(uid, None)
        if entry is not None:
            entry.version = self._bump()
            self._publish(WatchType.DELETED, entry)

    def set(self, uid: PodUID, status: PodStatus) -> bool:
        """Record a pod's status; True if it changed. Unknown (untracked) pods are ignored."""
        entry = self._entries.get(uid)
        if entry is None or entry.status == status:
            return False
        entry.status = status
        entry.version = self._bump()
        entry.json = None
        self._publish(WatchType.MODIFIED, entry)
        return True

    def get(self, uid: PodUID) -> PodStatus | None:
        entry = self._entries.get(uid)
        return entry.status if entry is not None else None

    def pods(self) -> Iterator[tuple[Pod, PodStatus]]:
        for entry in self._entries.values():
            yield entry.pod, entry.status

    def pod_json(self, uid: PodUID) -> bytes | None:
        entry = self._entries.get(uid)
        if entry is None:
            return None
        if entry.json is None:
            entry.json = json.dumps(
                pod_object(entry.pod, entry.status, entry.version), separators=(",", ":")
            ).encode()
        return entry.json

    def items_json(self) -> bytes:
        """Every pod's object, by namespace and name, joined with commas (no brackets).

        Built once per change and shared by every list request until the next one:
        a poller of /pods costs a write, not a sort and a join of 110 objects.
        """
        if self._items_json is None:
            parts = (self.pod_json(uid) for uid in self.sorted_uids())
            self._items_json = b",".join(p for p in parts if p is not None)
        return self._items_json

    def sorted_uids(self) -> list[PodUID]:
        return sorted(
            self._entries, key=lambda u: (self._entries[u].pod.namespace, self._entries[u].pod.name)
        )

    def _publish(self, type_: WatchType, entry: _Entry) -> None:
        change = PodChange(type_, entry.pod.uid, entry.version, entry.pod, entry.status)
        for subscription in list(self._subscribers):
            subscription._offer(change)

    def change_json(self, change: PodChange) -> bytes:
        """The pod object of a change, reusing the cached JSON when it is the current one."""
        entry = self._entries.get(change.uid)
        if entry is not None and entry.version == change.resource_version:
            cached = self.pod_json(change.uid)
            if cached is not None:
                return cached
        return json.dumps(
            pod_object(change.pod, change.status, change.resource_version), separators=(",", ":")
        ).encode()

    def subscribe(self, max_lag: int | None = None) -> Subscription:
        """A feed of every change from now on; cut off past ``max_lag`` (default
        ``SUBSCRIBER_QUEUE``) changes not yet taken."""
        subscription = Subscription(self, SUBSCRIBER_QUEUE if max_lag is None else max_lag)
        self._subscribers.add(subscription)
        return subscription

    @property
    def subscriber_count(self) -> int:
        return len(self._subscribers)

    def close_subscriptions(self) -> None:
        for subscription in list(self._subscribers):
            subscription.close()
