"""The one owner of every pod's status.

Pod workers write statuses here; everything that reports (``/pods``, the
pods API, watches, and later mirror pods) reads here or subscribes. Each
change bumps a global resource version, as the API server does, and the last
``HISTORY`` changes are kept, so a watcher can resume from a version it saw.
The API JSON of each pod is serialised once per version and reused by every
reader.

A pod removed from its source stays here, with a ``deletionTimestamp``, while
its worker stops it (``begin_deletion``), as the API server keeps a pod being
deleted; it goes when its worker is done (``untrack``).
"""

from __future__ import annotations

import collections
import datetime
import itertools
import json
import time
from collections.abc import Iterator
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

from minikubelet.model import naming
from minikubelet.model.spec import Pod, PodUID
from minikubelet.status.types import PodPhase, PodStatus
from minikubelet.util.feed import Feed
from minikubelet.util.timefmt import rfc3339

SUBSCRIBER_QUEUE = 10_000
# Changes kept for watchers resuming from a resource version (the API server's watch
# cache keeps a window too); one older than the window gets 410 Expired and relists.
# Each change keeps the status of its version alive (the one before it is the previous
# change's), so the window costs about as many PodStatus values: a few MB at most.
HISTORY = 1000


class WatchType(StrEnum):
    ADDED = "ADDED"
    MODIFIED = "MODIFIED"
    DELETED = "DELETED"


@dataclass(frozen=True, slots=True)
class Deletion:
    """A pod being deleted: ``timestamp`` is when its grace period ends, as the API
    server sets ``deletionTimestamp`` (request time + grace)."""

    timestamp: float
    grace_seconds: int


@dataclass(frozen=True, slots=True)
class PodState:
    """One version of a pod as the API shows it."""

    pod: Pod
    status: PodStatus
    version: int
    deletion: Deletion | None = None


@dataclass(frozen=True, slots=True)
class PodChange:
    """A new version of a pod; ``previous`` is the version before it (None for ADDED),
    so a filtered watch can tell an object entering or leaving its selection."""

    type: WatchType
    uid: PodUID
    resource_version: int
    pod: Pod
    status: PodStatus
    deletion: Deletion | None = None
    previous: PodState | None = None


# A pod watcher's feed: bounded, cut off past its lag (see util/feed.py).
Subscription = Feed[PodChange]


@dataclass(slots=True)
class _Entry:
    pod: Pod
    status: PodStatus
    version: int
    json: bytes | None = None
    obj: dict[str, Any] | None = None
    deletion: Deletion | None = None

    def state(self) -> PodState:
        return PodState(self.pod, self.status, self.version, self.deletion)


def initial_status() -> PodStatus:
    return PodStatus(phase=PodPhase.PENDING)


def _seen_time(pod: Pod) -> str | None:
    """``config.seen`` (when the agent first saw this pod; kept across restarts) as an
    API timestamp: the pod's creation, as its mirror pod's would be."""
    seen = pod.annotations.get(naming.CONFIG_SEEN)
    if not seen:
        return None
    head, dot, rest = seen.partition(".")
    if dot:
        # Nanoseconds are more than fromisoformat reads; the offset follows the digits.
        digits = len(rest) - len(rest.lstrip("0123456789"))
        seen = head + rest[digits:]
    try:
        return rfc3339(datetime.datetime.fromisoformat(seen).timestamp())
    except ValueError:
        return None


def pod_object(
    pod: Pod, status: PodStatus, version: int, deletion: Deletion | None = None
) -> dict[str, Any]:
    """The v1 Pod object: the defaulted manifest plus the status."""
    manifest = pod.manifest
    metadata = dict(manifest.get("metadata") or {})
    metadata["resourceVersion"] = str(version)
    if "creationTimestamp" not in metadata:
        created = _seen_time(pod)
        if created is not None:
            metadata["creationTimestamp"] = created
    if deletion is not None:
        metadata["deletionTimestamp"] = rfc3339(deletion.timestamp)
        metadata["deletionGracePeriodSeconds"] = deletion.grace_seconds
    return {
        "kind": "Pod",
        "apiVersion": "v1",
        "metadata": metadata,
        "spec": manifest.get("spec") or {},
        "status": status.to_api(),
    }


class StatusManager:
    def __init__(self, *, history: int = HISTORY, first_version: int | None = None) -> None:
        """Versions count up from ``first_version``; by default from the microseconds since
        the epoch, so that every run of the agent gives out versions above any version an
        earlier run gave: a client resuming with one of those gets 410, not a wrong replay."""
        base = time.time_ns() // 1000 if first_version is None else first_version - 1
        self._entries: dict[PodUID, _Entry] = {}
        self._versions = itertools.count(base + 1)
        self._version = base
        self._subscribers: set[Subscription] = set()
        # The sorted, comma-joined pod objects: what every list answers between two changes,
        # keyed by whether pods being deleted are in.
        self._items_json: dict[bool, bytes] = {}
        self._history: collections.deque[PodChange] = collections.deque(maxlen=history)
        # The newest version no longer in the history: a watch may resume after it, not before.
        self._history_floor = base
        self._sorted: list[PodUID] | None = None

    @property
    def resource_version(self) -> int:
        return self._version

    def _bump(self) -> int:
        self._items_json.clear()
        self._version = next(self._versions)
        return self._version

    def track(self, pod: Pod) -> None:
        """Start reporting a desired pod (Pending until its worker says more)."""
        entry = self._entries.get(pod.uid)
        if entry is not None:
            if entry.deletion is not None:
                # Its file came back while it was being stopped: wanted again.
                previous = entry.state()
                entry.pod = pod
                entry.deletion = None
                self._changed(entry, previous)
            elif entry.pod is not pod:
                entry.pod = pod
                entry.json = None
                entry.obj = None
                self._items_json.clear()
            return
        entry = _Entry(pod=pod, status=initial_status(), version=self._bump())
        self._entries[pod.uid] = entry
        self._sorted = None
        self._publish(WatchType.ADDED, entry, None)

    def begin_deletion(self, uid: PodUID, *, now: float, grace_seconds: int) -> None:
        """The pod's source no longer has it: it shows ``deletionTimestamp`` until ``untrack``."""
        entry = self._entries.get(uid)
        if entry is None or entry.deletion is not None:
            return
        previous = entry.state()
        entry.deletion = Deletion(now + grace_seconds, grace_seconds)
        self._changed(entry, previous)

    def untrack(self, uid: PodUID) -> None:
        entry = self._entries.pop(uid, None)
        if entry is not None:
            self._sorted = None
            previous = entry.state()
            entry.version = self._bump()
            self._publish(WatchType.DELETED, entry, previous)

    def set(self, uid: PodUID, status: PodStatus) -> bool:
        """Record a pod's status; True if it changed. Unknown (untracked) pods are ignored."""
        entry = self._entries.get(uid)
        if entry is None or entry.status == status:
            return False
        previous = entry.state()
        entry.status = status
        self._changed(entry, previous)
        return True

    def _changed(self, entry: _Entry, previous: PodState) -> None:
        entry.version = self._bump()
        entry.json = None
        entry.obj = None
        self._publish(WatchType.MODIFIED, entry, previous)

    def get(self, uid: PodUID) -> PodStatus | None:
        entry = self._entries.get(uid)
        return entry.status if entry is not None else None

    def pods(self) -> Iterator[tuple[Pod, PodStatus]]:
        for entry in self._entries.values():
            yield entry.pod, entry.status

    def pod_of(self, uid: PodUID) -> tuple[Pod, Deletion | None] | None:
        """The pod and, while it is being deleted, its deletion."""
        entry = self._entries.get(uid)
        return (entry.pod, entry.deletion) if entry is not None else None

    def deletion(self, uid: PodUID) -> Deletion | None:
        entry = self._entries.get(uid)
        return entry.deletion if entry is not None else None

    def pod_json(self, uid: PodUID) -> bytes | None:
        entry = self._entries.get(uid)
        if entry is None:
            return None
        if entry.json is None:
            entry.json = json.dumps(self._object(entry), separators=(",", ":")).encode()
        return entry.json

    def items_json(self, *, deleting: bool = False) -> bytes:
        """Every pod's object, by namespace and name, joined with commas (no brackets);
        pods being deleted only if ``deleting``.

        Built once per change and shared by every list request until the next one:
        a poller of /pods costs a write, not a sort and a join of 110 objects.
        """
        items = self._items_json.get(deleting)
        if items is None:
            parts = (
                self.pod_json(uid)
                for uid in self.sorted_uids()
                if deleting or self._entries[uid].deletion is None
            )
            items = self._items_json[deleting] = b",".join(p for p in parts if p is not None)
        return items

    def pod_api_object(self, uid: PodUID) -> dict[str, Any] | None:
        """The v1 Pod object, built once per version; callers must not change it."""
        entry = self._entries.get(uid)
        return self._object(entry) if entry is not None else None

    @staticmethod
    def _object(entry: _Entry) -> dict[str, Any]:
        if entry.obj is None:
            entry.obj = pod_object(entry.pod, entry.status, entry.version, entry.deletion)
        return entry.obj

    def sorted_uids(self) -> list[PodUID]:
        """Every pod's uid, by namespace then name (a fresh list the caller may keep)."""
        if self._sorted is None:
            entries = self._entries
            self._sorted = sorted(
                entries, key=lambda u: (entries[u].pod.namespace, entries[u].pod.name)
            )
        return list(self._sorted)

    def _publish(self, type_: WatchType, entry: _Entry, previous: PodState | None) -> None:
        change = PodChange(
            type_, entry.pod.uid, entry.version, entry.pod, entry.status, entry.deletion, previous
        )
        if len(self._history) == self._history.maxlen:
            self._history_floor = self._history[0].resource_version
        self._history.append(change)
        for subscription in list(self._subscribers):
            subscription.offer(change)

    def changes_since(self, version: int) -> list[PodChange] | None:
        """Every change after ``version``, oldest first; None when that is no longer known
        (older than the history kept, or newer than any version given out, e.g. by an
        earlier run of the agent): the client has to list again."""
        if version < self._history_floor or version > self._version:
            return None
        return [c for c in self._history if c.resource_version > version]

    @property
    def oldest_resumable(self) -> int:
        """The oldest version a watch may resume from."""
        return self._history_floor

    def change_json(self, change: PodChange) -> bytes:
        """The pod object of a change, reusing the cached JSON when it is the current one."""
        entry = self._entries.get(change.uid)
        if entry is not None and entry.version == change.resource_version:
            cached = self.pod_json(change.uid)
            if cached is not None:
                return cached
        return json.dumps(self.change_object(change), separators=(",", ":")).encode()

    def change_object(self, change: PodChange) -> dict[str, Any]:
        """The pod object of a change (shared when it is the current one; do not modify)."""
        entry = self._entries.get(change.uid)
        if entry is not None and entry.version == change.resource_version:
            return self._object(entry)
        return pod_object(change.pod, change.status, change.resource_version, change.deletion)

    def subscribe(self, max_lag: int | None = None) -> Subscription:
        """A feed of every change from now on; cut off past ``max_lag`` (default
        ``SUBSCRIBER_QUEUE``) changes not yet taken."""
        subscription = Subscription(
            SUBSCRIBER_QUEUE if max_lag is None else max_lag, self._subscribers.discard
        )
        self._subscribers.add(subscription)
        return subscription

    @property
    def subscriber_count(self) -> int:
        return len(self._subscribers)

    def close_subscriptions(self) -> None:
        for subscription in list(self._subscribers):
            subscription.close()
