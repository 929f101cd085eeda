"""``/api/v1/events``: the events the agent recorded, listed, got and watched as the API
server serves them.

The recorder (``minikubelet/events.py``) owns what an event is: de-duplication
into ``count``, first and last timestamps, how many are kept, resource
versions and the feed of changes. This module owns the wire: the list, one
event by name, the watch stream (resumable from a ``resourceVersion`` while the
store still holds what followed it, else a 410 Expired event, as the API
server's watch cache answers), ``fieldSelector`` and ``labelSelector``, and
the server-side ``Table`` with the columns of kubectl's ``printEvent``.

Field selectors are parsed as apimachinery's ``fields.ParseSelector`` and
checked against the fields the API server accepts for events, so a query that
works here works against a cluster and the other way round. Events carry no
labels: a label selector is matched against none, as the API server does
(``-l app=x`` selects nothing, ``-l '!app'`` everything).

The watch loop is the pod watch's (``watch.py``) over a different feed, with
the same slots, write deadlines and lag limit, so the two can become one.
"""

from __future__ import annotations

import datetime
import json
import re
import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from aiohttp import web

from minikubelet.events import EventChange, EventFeed, EventRecorder, ResourceExpired
from minikubelet.server import params
from minikubelet.server.deps import DEPS, LIMITS
from minikubelet.server.errors import StatusError, read_only, shown, status_bytes
from minikubelet.server.follow import follow
from minikubelet.server.selectors import (
    FieldRequirement,
    LabelRequirement,
    matches_labels,
    parse_field_selector,
    parse_label_selector,
)
from minikubelet.server.stream import BoundedStream, send_body
from minikubelet.server.table import Column, include_object, table_bytes, wants_table
from minikubelet.server.watch import WATCH_SLOTS
from minikubelet.util.timefmt import human_duration

# The field labels the API server takes for v1 Events (AddFieldLabelConversionsForEvent),
# each with where it is read in the Event object; a field the object lacks reads as "".
# ``source`` is the source's component there, not the whole struct.
FIELDS: dict[str, tuple[str, ...]] = {
    "metadata.name": ("metadata", "name"),
    "metadata.namespace": ("metadata", "namespace"),
    "involvedObject.kind": ("involvedObject", "kind"),
    "involvedObject.namespace": ("involvedObject", "namespace"),
    "involvedObject.name": ("involvedObject", "name"),
    "involvedObject.uid": ("involvedObject", "uid"),
    "involvedObject.apiVersion": ("involvedObject", "apiVersion"),
    "involvedObject.resourceVersion": ("involvedObject", "resourceVersion"),
    "involvedObject.fieldPath": ("involvedObject", "fieldPath"),
    "reason": ("reason",),
    "reportingComponent": ("reportingComponent",),
    "source": ("source", "component"),
    "type": ("type",),
}

# kubectl's event columns (pkg/printers/internalversion/printers.go); priority 1 = -o wide.
COLUMNS = (
    Column("Last Seen", description="The time at which the most recent occurrence was recorded."),
    Column("Type", description="Type of this event (Normal, Warning)."),
    Column("Reason", description="The reason for the transition into the object's state."),
    Column("Object", description="The object that this event is about."),
    Column("Subobject", priority=1, description="The part of the object, e.g. a container."),
    Column("Source", priority=1, description="The component reporting this event."),
    Column("Message", description="A human-readable description of the status."),
    Column("First Seen", priority=1, description="The time the event was first recorded."),
    Column("Count", priority=1, description="The number of times this event has occurred."),
    Column("Name", priority=1, format="name", description="The name of the event."),
)

_DIGITS = re.compile(r"[0-9]{1,19}", re.ASCII)


def age_of(timestamp: str | None, now: float) -> str:
    """translateTimestampSince: the age of an RFC 3339 time, ``<unknown>`` when unset."""
    if not timestamp:
        return "<unknown>"
    try:
        then = datetime.datetime.strptime(timestamp, "%Y-%m-%dT%H:%M:%SZ")
    except ValueError:
        return "<unknown>"
    return human_duration(now - then.replace(tzinfo=datetime.UTC).timestamp())


def event_cells(obj: Mapping[str, Any], now: float) -> list[Any]:
    """One row of ``kubectl get events -o wide``, as printEvent renders it (the server
    always renders the wide row; kubectl hides the priority-1 cells)."""
    first = age_of(obj.get("firstTimestamp"), now)
    last = age_of(obj.get("lastTimestamp"), now) if obj.get("lastTimestamp") else first
    involved = obj.get("involvedObject") or {}
    kind = str(involved.get("kind", "")).lower()
    name = involved.get("name", "")
    source = obj.get("source") or {}
    component = source.get("component") or obj.get("reportingComponent", "")
    instance = source.get("host") or obj.get("reportingInstance", "")
    return [
        last,
        obj.get("type", ""),
        obj.get("reason", ""),
        f"{kind}/{name}" if name else kind,
        involved.get("fieldPath", ""),
        f"{component}, {instance}" if instance else component,
        str(obj.get("message", "")).strip(),
        first,
        obj.get("count") or 1,
        (obj.get("metadata") or {}).get("name", ""),
    ]


@dataclass(frozen=True, slots=True)
class Selection:
    """Which events a request is about: its namespace (None: all) and its selectors."""

    namespace: str | None
    fields: tuple[FieldRequirement, ...] = ()
    labels: tuple[LabelRequirement, ...] = ()

    def matches(self, obj: Mapping[str, Any]) -> bool:
        metadata = obj.get("metadata") or {}
        return (
            (self.namespace is None or metadata.get("namespace") == self.namespace)
            and all(r.matches(obj, FIELDS) for r in self.fields)
            and matches_labels(list(self.labels), metadata.get("labels") or {})
        )


@dataclass(frozen=True, slots=True)
class Output:
    """How objects are written: plain JSON, or a Table (``version``) carrying ``include``."""

    table: str | None
    include: str = "Metadata"

    def body(self, objs: Iterable[Mapping[str, Any]], *, resource_version: str = "") -> bytes:
        assert self.table is not None
        now = time.time()
        return table_bytes(
            COLUMNS,
            ((event_cells(obj, now), obj) for obj in objs),
            include=self.include,
            version=self.table,
            resource_version=resource_version,
        )

    def watch_line(self, change: EventChange) -> bytes:
        body = change.json() if self.table is None else self.body([change.object])
        return b'{"type":"' + change.type.encode() + b'","object":' + body + b"}\n"

    def bookmark(self, version: int, *, initial_events_end: bool = False) -> bytes:
        """A BOOKMARK: every change up to ``version`` has been sent (or filtered out)."""
        if self.table is not None:
            body = self.body([], resource_version=str(version))
        else:
            metadata: dict[str, Any] = {"resourceVersion": str(version)}
            if initial_events_end:
                metadata["annotations"] = {"k8s.io/initial-events-end": "true"}
            body = _json({"kind": "Event", "apiVersion": "v1", "metadata": metadata})
        return b'{"type":"BOOKMARK","object":' + body + b"}\n"


@dataclass(frozen=True, slots=True)
class WatchOptions:
    """What a watch asked for besides its selection."""

    since: int | None = None
    timeout: int | None = None
    # allowWatchBookmarks: a BOOKMARK every ``bookmark_interval`` seconds.
    bookmarks: bool = False
    # sendInitialEvents (watch-list): the current events as ADDED, then a BOOKMARK
    # annotated k8s.io/initial-events-end.
    initial_events: bool = False


def resource_version(query: Mapping[str, str]) -> int | None:
    """``resourceVersion`` of a watch: None for unset, "" and "0" (start from the current
    events); else the version to resume after."""
    raw = query.get("resourceVersion", "")
    if raw in ("", "0"):
        return None
    if not _DIGITS.fullmatch(raw):
        raise StatusError(
            400, f"resourceVersion: invalid value {shown(raw)}: must be a resource version"
        )
    return int(raw)


def _recorder(request: web.Request) -> EventRecorder:
    recorder = request.app[DEPS].recorder
    if recorder is None:
        raise StatusError(404, "events are not recorded")
    return recorder


def _output(request: web.Request) -> Output:
    version = wants_table(request)
    return Output(version, include_object(request) if version else "Metadata")


async def list_events(request: web.Request) -> web.StreamResponse:
    try:
        query = request.query
        watch = params.is_watch(query) or request.path.startswith("/api/v1/watch/")
        timeout = params.timeout_seconds(query)
        field_selectors = query.getall("fieldSelector", [])
        label_selectors = query.getall("labelSelector", [])
        since = resource_version(query) if watch else None
        bookmarks = params.flag(query.get("allowWatchBookmarks"))
        initial_events = params.flag(query.get("sendInitialEvents"))
        limit = query.get("limit", "")
        continued = query.get("continue", "")
    except (UnicodeError, ValueError):
        raise StatusError(400, "the query string cannot be decoded") from None
    params.check_list_options(
        limit=limit,
        continue_token=continued,
        initial_events=initial_events,
        watch=watch,
        bookmarks=bookmarks,
    )
    # The first value counts, as the API server converts a repeated string parameter.
    selection = Selection(
        request.match_info.get("namespace"),
        tuple(parse_field_selector(field_selectors[0], FIELDS)) if field_selectors else (),
        tuple(parse_label_selector(label_selectors[0])) if label_selectors else (),
    )
    recorder = _recorder(request)
    output = _output(request)
    if watch:
        options = WatchOptions(
            # With sendInitialEvents the version is a lower bound the current state meets.
            since=None if initial_events else since,
            timeout=timeout,
            bookmarks=bookmarks,
            initial_events=initial_events,
        )
        return await watch_events(
            request, recorder=recorder, selection=selection, output=output, options=options
        )
    items = [obj for obj in (e.to_api() for e in recorder.list()) if selection.matches(obj)]
    # The list's version is the newest the recorder gave out: a watch from it misses nothing.
    version = str(recorder.resource_version)
    if output.table is not None:
        body = output.body(items, resource_version=version)
    else:
        body = _json(
            {
                "kind": "EventList",
                "apiVersion": "v1",
                "metadata": {"resourceVersion": version},
                "items": items,
            }
        )
    return await _send(request, body)


async def get_event(request: web.Request) -> web.StreamResponse:
    recorder = _recorder(request)
    output = _output(request)
    name = request.match_info["name"]
    event = recorder.get(request.match_info["namespace"], name)
    if event is None:
        raise StatusError(404, f"events {quoted(name)} not found")
    obj = event.to_api()
    return await _send(request, _json(obj) if output.table is None else output.body([obj]))


def quoted(name: str, limit: int = 253) -> str:
    """A name as the API server quotes it in NotFound (``%q``), bounded and ASCII."""
    return json.dumps(name if len(name) <= limit else name[:limit] + "...")


def _json(obj: Any) -> bytes:
    return json.dumps(obj, separators=(",", ":")).encode()


async def _send(request: web.Request, body: bytes) -> web.StreamResponse:
    return await send_body(
        request,
        body,
        content_type="application/json",
        timeout=request.app[LIMITS].write_timeout,
    )


async def watch_events(
    request: web.Request,
    *,
    recorder: EventRecorder,
    selection: Selection,
    output: Output,
    options: WatchOptions,
) -> web.StreamResponse:
    """The stream; ``options.timeout`` seconds long (None or 0: until the client or the
    agent stops)."""
    limits = request.app[LIMITS]
    with request.app[WATCH_SLOTS].hold():
        feed: EventFeed | None = None
        expired = ""
        try:
            replay, feed = recorder.watch(options.since, max_lag=limits.watch_max_lag)
        except ResourceExpired as e:
            replay, expired = [], str(e)
        try:
            response = web.StreamResponse(headers={"Content-Type": "application/json"})
            response.enable_chunked_encoding()
            stream = BoundedStream(request, response, limits.write_timeout)
            if not await stream.prepare():
                return response
            if feed is None:
                # As the API server's watch cache: the stream opens, then says why it ends.
                await stream.write(_error_line(expired))
                await stream.finish()
                return response
            if not await stream.write_all(
                output.watch_line(c) for c in replay if selection.matches(c.object)
            ):
                return response
            # The replay was taken with the feed, so it holds everything up to this version.
            if options.initial_events and not await stream.write(
                output.bookmark(recorder.resource_version, initial_events_end=True)
            ):
                return response
            await follow(
                stream,
                feed,
                limits=limits,
                timeout=options.timeout,
                bookmarks=options.bookmarks,
                render=lambda batch: (
                    output.watch_line(c) for c in batch if selection.matches(c.object)
                ),
                bookmark=lambda: output.bookmark(recorder.resource_version),
                what="events",
            )
            return response
        finally:
            if feed is not None:
                feed.close()


def _error_line(message: str) -> bytes:
    return b'{"type":"ERROR","object":' + status_bytes(410, message) + b"}\n"


ROUTES = (
    ("/api/v1/events", list_events),
    ("/api/v1/namespaces/{namespace}/events", list_events),
    ("/api/v1/namespaces/{namespace}/events/{name}", get_event),
    # The deprecated watch paths, still served by the API server and used by old clients.
    ("/api/v1/watch/events", list_events),
    ("/api/v1/watch/namespaces/{namespace}/events", list_events),
)


def add_routes(app: web.Application) -> None:
    for path, handler in ROUTES:
        app.router.add_get(path, handler)
        # Any other method (kubectl delete, create...) gets a v1 Status, not aiohttp's text.
        app.router.add_route("*", path, read_only)

    async def end_feeds(app: web.Application) -> None:
        # Lets event watches return, so shutdown does not wait on them.
        recorder = app[DEPS].recorder
        if recorder is not None:
            recorder.close_feeds()

    app.on_shutdown.append(end_feeds)
