"""Pod watches (``/api/v1/pods?watch``, ``/pods?watch``), streamed as the API server streams them.

Where a watch starts: with no ``resourceVersion`` (or "0") the pods shown now
come first as ADDED; with a version, the changes after it are replayed from
the status manager's history, or, when that version is no longer known, the
stream is one ERROR event carrying a 410 ``Expired`` Status ("too old resource
version"), as the API server answers, and the client lists again. Then every
change follows as it is published, so a client sees a status the moment a
worker sets it. ``timeoutSeconds`` ends the stream. ``sendInitialEvents``
(client-go's watch-list) always starts from the current pods, and marks their
end with a BOOKMARK annotated ``k8s.io/initial-events-end``.

Selectors are applied to the object before and after each change, as the
API server's watch cache does: a pod entering the selection is ADDED, one
leaving it DELETED (with its last content and the new version). A Table
watch (``kubectl get -w``) gets each event's object as a Table of one row.
``allowWatchBookmarks`` adds a BOOKMARK every ``bookmark_interval`` seconds
carrying the version the client has seen everything up to.

What a watcher may hold is bounded: at most ``max_watches`` streams at once
(429 past it); a watcher more than ``watch_max_lag`` changes behind gets an
ERROR event with a 410 ``Expired`` Status and the stream ends, as an expired
API watch does; one that stops reading is dropped by the write deadline
(``stream.py``); one that disconnects has its handler cancelled by aiohttp.
Each way, the subscription and the slot are released.
"""

from __future__ import annotations

import contextlib
import json
from collections.abc import Iterable, Iterator, Mapping
from typing import Any

from aiohttp import web

from minikubelet.model.spec import PodUID
from minikubelet.server.deps import DEPS, LIMITS
from minikubelet.server.errors import StatusError, status_bytes
from minikubelet.server.follow import follow
from minikubelet.server.podquery import PodFilter, PodQuery, pod_table
from minikubelet.server.stream import BoundedStream
from minikubelet.status.manager import (
    PodChange,
    StatusManager,
    WatchType,
    pod_object,
)


class WatchSlots:
    """How many watch streams are open, against ``max_watches``."""

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self.active = 0

    @contextlib.contextmanager
    def hold(self) -> Iterator[None]:
        if self.active >= self.limit:
            raise StatusError(
                429,
                f"too many watches: {self.limit} are open, the most this agent serves; retry later",
                retry_after=1,
            )
        self.active += 1
        try:
            yield
        finally:
            self.active -= 1


WATCH_SLOTS = web.AppKey("watch_slots", WatchSlots)


def event_bytes(type_: str, body: bytes) -> bytes:
    return b'{"type":"' + type_.encode() + b'","object":' + body + b"}\n"


def transition(change: PodChange, pod_filter: PodFilter, status: StatusManager) -> WatchType | None:
    """What a watcher with ``pod_filter`` sees of ``change``: the object entering its
    selection is ADDED, staying in it MODIFIED, leaving it DELETED; else nothing."""
    previous = change.previous
    if pod_filter.everything:
        # The common watch, no selector: the change is what the watcher sees.
        return change.type
    before = previous is not None and pod_filter.admits(
        previous.pod,
        previous.deletion,
        lambda: pod_object(previous.pod, previous.status, previous.version, previous.deletion),
    )
    after = change.type is not WatchType.DELETED and pod_filter.admits(
        change.pod, change.deletion, lambda: status.change_object(change)
    )
    if after:
        return WatchType.MODIFIED if before else WatchType.ADDED
    return WatchType.DELETED if before else None


class _Renderer:
    """Events in the form the client asked for: the pod itself, or a Table of one row."""

    def __init__(self, status: StatusManager, query: PodQuery) -> None:
        self.status = status
        self.query = query

    def _body(self, obj: Mapping[str, Any], version: int) -> bytes:
        return json.dumps(
            pod_table(self.query, [obj], resource_version=version), separators=(",", ":")
        ).encode()

    def current(self, type_: str, uid: PodUID) -> bytes | None:
        if self.query.table is None:
            body = self.status.pod_json(uid)
        else:
            obj = self.status.pod_api_object(uid)
            body = None if obj is None else self._body(obj, self.status.resource_version)
        return None if body is None else event_bytes(type_, body)

    def change(self, type_: WatchType, change: PodChange) -> bytes:
        if type_ is WatchType.DELETED:
            # The last content the watcher saw, at the version of its leaving.
            previous = change.previous
            assert previous is not None
            obj = pod_object(
                previous.pod, previous.status, change.resource_version, previous.deletion
            )
            if self.query.table is None:
                return event_bytes(type_.value, json.dumps(obj, separators=(",", ":")).encode())
            return event_bytes(type_.value, self._body(obj, change.resource_version))
        if self.query.table is None:
            return event_bytes(type_.value, self.status.change_json(change))
        return event_bytes(
            type_.value,
            self._body(self.status.change_object(change), change.resource_version),
        )

    def bookmark(self, version: int, *, initial_events_end: bool = False) -> bytes:
        metadata: dict[str, Any] = {"resourceVersion": str(version)}
        if initial_events_end:
            metadata["annotations"] = {"k8s.io/initial-events-end": "true"}
        if self.query.table is None:
            obj: dict[str, Any] = {"kind": "Pod", "apiVersion": "v1", "metadata": metadata}
        else:
            obj = pod_table(self.query, [], resource_version=version)
        return event_bytes("BOOKMARK", json.dumps(obj, separators=(",", ":")).encode())


def _changes(
    renderer: _Renderer, changes: Iterable[PodChange], pod_filter: PodFilter
) -> Iterator[bytes]:
    for change in changes:
        type_ = transition(change, pod_filter, renderer.status)
        if type_ is not None:
            yield renderer.change(type_, change)


def too_old(version: int, status: StatusManager) -> bytes:
    # The API server's words for a watch from a compacted version. A version this run
    # never gave out (from an earlier run) is as unusable, and answered the same.
    return status_bytes(410, f"too old resource version: {version} ({status.oldest_resumable + 1})")


async def watch_pods(request: web.Request, query: PodQuery) -> web.StreamResponse:
    """The stream; ``query.timeout`` seconds long (None or 0: until the client leaves)."""
    deps = request.app[DEPS]
    limits = request.app[LIMITS]
    status = deps.status
    pod_filter = query.filter
    renderer = _Renderer(status, query)
    with request.app[WATCH_SLOTS].hold():
        subscription = status.subscribe(max_lag=limits.watch_max_lag)
        try:
            # Nothing awaits between subscribing and reading the state or the history,
            # so the stream sees every change exactly once.
            replay = None
            # With sendInitialEvents the version is a lower bound the current state meets.
            from_version = None if query.initial_events else query.resource_version
            if from_version is not None:
                replay = status.changes_since(from_version)
            else:
                uids = status.sorted_uids()
            response = web.StreamResponse(headers={"Content-Type": "application/json"})
            response.enable_chunked_encoding()
            stream = BoundedStream(request, response, limits.write_timeout)
            if from_version is not None and replay is None:
                if await stream.prepare():
                    gone = too_old(from_version, status)
                    if await stream.write(event_bytes("ERROR", gone)):
                        await stream.finish()
                return response
            if not await stream.prepare():
                return response
            if replay is not None:
                initial: Iterable[bytes] = _changes(renderer, replay, pod_filter)
            else:
                initial = _initial(renderer, status, uids, pod_filter)
            if not await stream.write_all(initial):
                return response
            if query.initial_events and not await stream.write(
                renderer.bookmark(status.resource_version, initial_events_end=True)
            ):
                return response
            await follow(
                stream,
                subscription,
                limits=limits,
                timeout=query.timeout,
                bookmarks=query.bookmarks,
                render=lambda batch: _changes(renderer, batch, pod_filter),
                bookmark=lambda: renderer.bookmark(status.resource_version),
                what="changes",
            )
            return response
        finally:
            subscription.close()


def _initial(
    renderer: _Renderer, status: StatusManager, uids: list[PodUID], pod_filter: PodFilter
) -> Iterator[bytes]:
    for uid in uids:
        if admitted(status, uid, pod_filter):
            event = renderer.current("ADDED", uid)
            if event is not None:
                yield event


def admitted(status: StatusManager, uid: PodUID, pod_filter: PodFilter) -> bool:
    """Whether the pod's current version is in the filter's selection."""
    found = status.pod_of(uid)
    if found is None:
        return False
    pod, deletion = found

    def obj() -> Mapping[str, Any]:
        return status.pod_api_object(uid) or {}

    return pod_filter.admits(pod, deletion, obj)
