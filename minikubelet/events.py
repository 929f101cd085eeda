"""Kubernetes-style events: what happened to which object, deduplicated and kept for a while.

Producers (pod workers, the manifest source, the node status) call ``record``;
the events API (server/events.py) lists the store and watches it through a
feed. Like the kubelet's correlator, a repeat of the same event on the same
object raises its ``count`` instead of adding a new one.

Every change gets the next resource version: a new event is ADDED, a repeat
MODIFIED. The store keeps the newest ``MAX_EVENTS``; dropping the oldest is a
compaction, as etcd's, not a deletion: a watch that resumes from before it is
told its version is too old (410 Expired) and lists again, while live
watchers are not sent anything for it (a DELETED row in ``kubectl get events
-w`` for every new event would bury the news).
"""

from __future__ import annotations

import builtins
import itertools
import json
import logging
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

from minikubelet.util.feed import Feed
from minikubelet.util.timefmt import rfc3339

log = logging.getLogger(__name__)

MAX_EVENTS = 1000
MAX_MESSAGE = 1024
# Changes a feed may hold unread before it is cut off (see EventFeed).
FEED_MAX_LAG = 1000


class EventType(StrEnum):
    NORMAL = "Normal"
    WARNING = "Warning"


@dataclass(frozen=True, slots=True)
class ObjectRef:
    kind: str
    name: str
    namespace: str = ""
    uid: str = ""
    field_path: str = ""


@dataclass(slots=True)
class Event:
    name: str
    involved: ObjectRef
    type: EventType
    reason: str
    message: str
    first: float
    last: float
    count: int = 1
    resource_version: int = 0
    host: str = ""
    # The version the event was first recorded with: a watch resuming after it sees a
    # later repeat as MODIFIED, before it as ADDED.
    created_version: int = 0
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def namespace(self) -> str:
        # Events about cluster-scoped objects (the node) live in "default", as the kubelet's.
        return self.involved.namespace or "default"

    def to_api(self) -> dict[str, Any]:
        ref: dict[str, Any] = {
            "kind": self.involved.kind,
            "name": self.involved.name,
            "apiVersion": "v1",
        }
        if self.involved.namespace:
            ref["namespace"] = self.involved.namespace
        if self.involved.uid:
            ref["uid"] = self.involved.uid
        if self.involved.field_path:
            ref["fieldPath"] = self.involved.field_path
        return {
            "kind": "Event",
            "apiVersion": "v1",
            "metadata": {
                "name": self.name,
                "namespace": self.namespace,
                "resourceVersion": str(self.resource_version),
                "creationTimestamp": rfc3339(self.first),
            },
            "involvedObject": ref,
            "reason": self.reason,
            "message": self.message,
            "source": {"component": "kubelet", "host": self.host},
            "firstTimestamp": rfc3339(self.first),
            "lastTimestamp": rfc3339(self.last),
            "count": self.count,
            "type": str(self.type),
            "reportingComponent": "kubelet",
            "reportingInstance": self.host,
        }


class EventChange:
    """One change as a watch sends it: ADDED or MODIFIED, and the event as it was then.

    The object is rendered once, when the change happens, and shared by every
    feed; so are its JSON bytes, built the first time a watcher needs them.
    """

    __slots__ = ("_json", "object", "resource_version", "type")

    def __init__(self, type_: str, event: Event) -> None:
        self.type = type_
        self.resource_version = event.resource_version
        self.object = event.to_api()
        self._json: bytes | None = None

    def json(self) -> bytes:
        if self._json is None:
            self._json = json.dumps(self.object, separators=(",", ":")).encode()
        return self._json


class ResourceExpired(Exception):
    """A watch asked to resume from a version the store can no longer replay (410)."""


# An event watcher's feed: bounded, cut off past its lag (see util/feed.py).
EventFeed = Feed[EventChange]


def _log_level(type_: EventType, count: int) -> int:
    """Repeats are logged at counts 1, 2, 4, 8... only, the others at DEBUG: a probe
    failing every 10 s or a crash loop must not fill the log of an agent that is
    otherwise idle (the event's count says how often; the events API has them all)."""
    if count & (count - 1):
        return logging.DEBUG
    return logging.WARNING if type_ is EventType.WARNING else logging.INFO


class EventRecorder:
    def __init__(
        self, *, host: str, clock: Callable[[], float], max_events: int = MAX_EVENTS
    ) -> None:
        self._host = host
        self._clock = clock
        self._max_events = max_events
        # Oldest change first: a repeat moves its event to the end, so eviction takes the
        # event that changed longest ago and the order is the order of resource versions.
        self._events: OrderedDict[tuple[ObjectRef, str, str, str], Event] = OrderedDict()
        self._versions = itertools.count(1)
        self._version = 0
        # The version at which the store last dropped an event: a watch cannot resume from
        # before it, as it would miss that removal.
        self._compacted = 0
        self._feeds: set[EventFeed] = set()

    @property
    def resource_version(self) -> int:
        """The newest version given out (0 before any event)."""
        return self._version

    def record(self, obj: ObjectRef, type_: EventType, reason: str, message: str) -> Event:
        message = message if len(message) <= MAX_MESSAGE else message[: MAX_MESSAGE - 3] + "..."
        key = (obj, str(type_), reason, message)
        now = self._clock()
        event = self._events.pop(key, None)
        version = self._version = next(self._versions)
        if event is None:
            event = Event(
                name=f"{obj.name}.{version:016x}",
                involved=obj,
                type=type_,
                reason=reason,
                message=message,
                first=now,
                last=now,
                host=self._host,
                resource_version=version,
                created_version=version,
            )
            change_type = "ADDED"
        else:
            event.count += 1
            event.last = now
            event.resource_version = version
            change_type = "MODIFIED"
        self._events[key] = event
        while len(self._events) > self._max_events:
            self._events.popitem(last=False)
            self._compacted = version
        log.log(
            _log_level(type_, event.count),
            "event %s %s %s/%s: %s%s",
            reason,
            obj.kind,
            obj.namespace,
            obj.name,
            message,
            f" (x{event.count})" if event.count > 1 else "",
        )
        if self._feeds:
            change = EventChange(change_type, event)
            for feed in list(self._feeds):
                feed.offer(change)
        return event

    def list(self) -> list[Event]:
        """The stored events, oldest change first (the order of their resource versions)."""
        return list(self._events.values())

    def get(self, namespace: str, name: str) -> Event | None:
        for event in reversed(self._events.values()):
            if event.name == name and event.namespace == namespace:
                return event
        return None

    def watch(
        self, since: int | None, *, max_lag: int = FEED_MAX_LAG
    ) -> tuple[builtins.list[EventChange], EventFeed]:
        """What a watch from ``since`` sends first, and the feed of what follows.

        ``since`` None: every stored event as ADDED (a watch with no version, or
        "0"). A version: the changes after it, when the store still holds them
        all; else ResourceExpired. Taken together, with no await in between, so
        no change falls between the two or arrives twice.
        """
        if since is None:
            replay = [EventChange("ADDED", e) for e in self._events.values()]
        else:
            if since > self._version:
                # Versions restart with the agent: a client holding one from before
                # would otherwise wait for changes it already saw.
                raise ResourceExpired(
                    f"too large resource version: {since}, current: {self._version} "
                    "(the agent restarted since); list again, then watch"
                )
            if since < self._compacted:
                raise ResourceExpired(f"too old resource version: {since} ({self._compacted})")
            replay = [
                EventChange("ADDED" if e.created_version > since else "MODIFIED", e)
                for e in self._after(since)
            ]
        feed = EventFeed(max_lag, self._feeds.discard)
        self._feeds.add(feed)
        return replay, feed

    def _after(self, since: int) -> builtins.list[Event]:
        newer: builtins.list[Event] = []
        for event in reversed(self._events.values()):
            if event.resource_version <= since:
                break
            newer.append(event)
        newer.reverse()
        return newer

    @property
    def feed_count(self) -> int:
        return len(self._feeds)

    def close_feeds(self) -> None:
        for feed in list(self._feeds):
            feed.close()
