"""Kubernetes-style events: what happened to which object, deduplicated and kept for a while.

Producers (pod workers, the manifest source) call ``record``; the events API
(server/events.py) lists the ring buffer. A watch of events (kubectl get
events -w) will add a feed here when it comes.
Like the kubelet's correlator, a repeat of the same event on the same object
raises its ``count`` instead of adding a new one.
"""

from __future__ import annotations

import itertools
import logging
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

from minikubelet.util.timefmt import rfc3339

log = logging.getLogger(__name__)

MAX_EVENTS = 1000
MAX_MESSAGE = 1024


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
    extra: dict[str, Any] = field(default_factory=dict)

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
                "namespace": self.involved.namespace or "default",
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


class EventRecorder:
    def __init__(self, *, host: str, clock: Callable[[], float]) -> None:
        self._host = host
        self._clock = clock
        self._events: OrderedDict[tuple[ObjectRef, str, str, str], Event] = OrderedDict()
        self._versions = itertools.count(1)

    def record(self, obj: ObjectRef, type_: EventType, reason: str, message: str) -> Event:
        message = message if len(message) <= MAX_MESSAGE else message[: MAX_MESSAGE - 3] + "..."
        key = (obj, str(type_), reason, message)
        now = self._clock()
        event = self._events.pop(key, None)
        if event is None:
            version = next(self._versions)
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
            )
        else:
            event.count += 1
            event.last = now
            event.resource_version = next(self._versions)
        self._events[key] = event
        while len(self._events) > MAX_EVENTS:
            self._events.popitem(last=False)
        level = logging.WARNING if type_ is EventType.WARNING else logging.INFO
        log.log(level, "event %s %s %s/%s: %s", reason, obj.kind, obj.namespace, obj.name, message)
        return event

    def list(self) -> list[Event]:
        return sorted(self._events.values(), key=lambda e: e.resource_version)
