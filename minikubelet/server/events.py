"""``/api/v1/events``: the events the agent recorded, listed as the API server lists them.

The recorder (``minikubelet/events.py``) owns what an event is: de-duplication
into ``count``, first and last timestamps, and how many are kept. This module
owns the wire shape of the list, the namespaced path, and ``fieldSelector``,
parsed as apimachinery's ``fields.ParseSelector`` parses it and checked
against the fields the API server accepts for events, so a query that works
here works against a cluster and the other way round.
"""

from __future__ import annotations

import json

from aiohttp import web

from minikubelet.server import params
from minikubelet.server.deps import DEPS, LIMITS
from minikubelet.server.errors import StatusError
from minikubelet.server.selectors import FieldRequirement, parse_field_selector
from minikubelet.server.stream import send_body

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


async def list_events(request: web.Request) -> web.StreamResponse:
    try:
        query = request.query
        watch = params.is_watch(query)
        selectors = query.getall("fieldSelector", [])
    except (UnicodeError, ValueError):
        raise StatusError(400, "the query string cannot be decoded") from None
    if watch:
        # A list where a watch stream was asked for would be misread by the client.
        raise StatusError(400, "watch: events can be listed, not watched")
    # The first value counts, as the API server converts a repeated string parameter.
    requirements: list[FieldRequirement] = (
        parse_field_selector(selectors[0], FIELDS) if selectors else []
    )
    recorder = request.app[DEPS].recorder
    if recorder is None:
        raise StatusError(404, "events are not recorded")
    namespace = request.match_info.get("namespace")
    events = recorder.list()
    items = [
        obj
        for obj in (event.to_api() for event in events)
        if (namespace is None or obj["metadata"]["namespace"] == namespace)
        and all(r.matches(obj, FIELDS) for r in requirements)
    ]
    # The list's version is the newest the recorder gave out: the event recorded last is
    # the newest in the list and is never the one evicted.
    version = events[-1].resource_version if events else 0
    body = json.dumps(
        {
            "kind": "EventList",
            "apiVersion": "v1",
            "metadata": {"resourceVersion": str(version)},
            "items": items,
        },
        separators=(",", ":"),
    ).encode()
    return await send_body(
        request,
        body,
        content_type="application/json",
        timeout=request.app[LIMITS].write_timeout,
    )


def add_routes(app: web.Application) -> None:
    app.router.add_get("/api/v1/events", list_events)
    app.router.add_get("/api/v1/namespaces/{namespace}/events", list_events)
