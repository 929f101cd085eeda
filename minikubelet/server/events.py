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
from dataclasses import dataclass
from typing import Any

from aiohttp import web

from minikubelet.server import params
from minikubelet.server.deps import DEPS, LIMITS
from minikubelet.server.errors import StatusError, shown
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

# Checked in this order at each position, as apimachinery does: "==" before "=" so that
# "a==b" does not read as the value "=b".
_OPERATORS = ("!=", "==", "=")


@dataclass(frozen=True, slots=True)
class Requirement:
    """One term of a field selector: ``field`` equals (or, ``negated``, differs from) ``value``."""

    field: str
    value: str
    negated: bool = False

    def matches(self, obj: dict[str, Any]) -> bool:
        return (field_value(obj, self.field) == self.value) != self.negated


def field_value(obj: dict[str, Any], field: str) -> str:
    value: Any = obj
    for key in FIELDS[field]:
        value = value.get(key, "") if isinstance(value, dict) else ""
    return value if isinstance(value, str) else ""


def parse_field_selector(text: str) -> list[Requirement]:
    """Terms separated by unescaped commas, each ``field=value``, ``field==value`` or
    ``field!=value``; in a value, ``\\,``, ``\\=`` and ``\\\\`` stand for the character.

    Raises StatusError (400) naming what is wrong, as the API server refuses it.
    """
    requirements = []
    for term in _split_terms(text):
        if not term:
            continue
        split = _split_term(term)
        if split is None:
            raise StatusError(
                400, f"invalid selector: {shown(text)}; can't understand {shown(term)}"
            )
        field, operator, raw = split
        if field not in FIELDS:
            raise StatusError(400, f"field label not supported: {shown(field)}")
        requirements.append(Requirement(field, _unescape(raw), negated=operator == "!="))
    return requirements


def _split_terms(text: str) -> list[str]:
    # An escaped comma belongs to its value; the backslash stays for _unescape to read.
    terms = []
    start = 0
    escaped = False
    for i, char in enumerate(text):
        if escaped:
            escaped = False
        elif char == "\\":
            escaped = True
        elif char == ",":
            terms.append(text[start:i])
            start = i + 1
    terms.append(text[start:])
    return terms


def _split_term(term: str) -> tuple[str, str, str] | None:
    # A field name has no escapes, so the first operator anywhere is the split.
    for i in range(len(term)):
        for operator in _OPERATORS:
            if term.startswith(operator, i):
                return term[:i], operator, term[i + len(operator) :]
    return None


def _unescape(raw: str) -> str:
    value: list[str] = []
    escaped = False
    for char in raw:
        if escaped:
            if char not in "\\,=":
                raise _bad_escape("\\" + char)
            value.append(char)
            escaped = False
        elif char == "\\":
            escaped = True
        elif char in ",=":
            raise StatusError(
                400, f"invalid field selector: unescaped character in value: {shown(char)}"
            )
        else:
            value.append(char)
    if escaped:
        raise _bad_escape("\\")
    return "".join(value)


def _bad_escape(sequence: str) -> StatusError:
    return StatusError(400, f"invalid field selector: invalid escape sequence: {shown(sequence)}")


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
    requirements = parse_field_selector(selectors[0]) if selectors else []
    recorder = request.app[DEPS].recorder
    if recorder is None:
        raise StatusError(404, "events are not recorded")
    namespace = request.match_info.get("namespace")
    events = recorder.list()
    items = [
        obj
        for obj in (event.to_api() for event in events)
        if (namespace is None or obj["metadata"]["namespace"] == namespace)
        and all(r.matches(obj) for r in requirements)
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
