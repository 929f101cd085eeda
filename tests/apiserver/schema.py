"""The official OpenAPI schema, as the test API server checks and patches objects with it.

Validation is ``minikubelet.model.schema.validate_schema`` (kubernetes-validate's strict
JSON Schema of the newest bundled version: unknown fields and wrong types fail); this
module adds what the API server checks besides: object names, at most one controller
ownerReference, and the two timestamp types, which the real server's JSON decoder parses
(so a malformed one is a 400, not a 422): ``metav1.Time`` is RFC 3339 and stored in whole
seconds, ``metav1.MicroTime`` (Lease renewTime/acquireTime) must have exactly six
fractional digits, as Go's ``time.Parse`` with the layout ``...05.000000Z07:00`` insists.

The schema's ``x-kubernetes-patch-*`` extensions drive the strategic merge (patch.py)
through ``child`` and ``items``.
"""

from __future__ import annotations

import datetime
import functools
import json
import re
from typing import Any

from minikubelet.model.schema import _schema_root, field_path, validate_schema

Schema = dict[str, Any]
_DNS_SUBDOMAIN = re.compile(r"[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*")
_TIME = re.compile(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d{1,9})?(Z|[+-]\d\d:\d\d)")
_MICRO = re.compile(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{6}(Z|[+-]\d\d:\d\d)")
TIME_LAYOUT = "2006-01-02T15:04:05Z07:00"
MICRO_LAYOUT = "2006-01-02T15:04:05.000000Z07:00"


class DecodeError(Exception):
    """A value the API server's decoder cannot parse: 400 BadRequest."""


@functools.cache
def _definitions() -> dict[str, Schema]:
    # The same bundled files minikubelet's manifest validation loads (its loader picks the
    # newest strict version); here only the shared definitions are needed, to walk types.
    defs: dict[str, Schema] = json.loads(_schema_root().joinpath("_definitions.json").read_text())[
        "$defs"
    ]
    return defs


def definition(name: str) -> Schema:
    """The schema of a type by its OpenAPI name, e.g. ``io.k8s.api.core.v1.Pod``."""
    return _definitions()[name]


def _resolve(node: Any) -> tuple[Schema, str]:
    """The schema a node stands for (following ``$ref``) and the type name it refers to."""
    if not isinstance(node, dict):
        return {}, ""
    ref = node.get("$ref")
    if isinstance(ref, str):
        name = ref.rpartition("/")[2]
        return _definitions().get(name, {}), name
    return node, ""


def child(node: Any, key: str) -> Schema:
    """The schema of the field ``key`` of an object (or a value of a map)."""
    schema, _ = _resolve(node)
    props = schema.get("properties") or {}
    if key in props:
        found: Schema = props[key]
        return found
    extra = schema.get("additionalProperties")
    return extra if isinstance(extra, dict) else {}


def items(node: Any) -> Schema:
    """The schema of a list's items."""
    schema, _ = _resolve(node)
    found = schema.get("items")
    return found if isinstance(found, dict) else {}


def normalize_times(value: Any, node: Any, path: tuple[str | int, ...] = ()) -> Any:
    """``value`` with every Time in whole UTC seconds and every MicroTime in UTC with six
    digits, as the server stores them; DecodeError for one Go's parser refuses."""
    schema, name = _resolve(node)
    if name.endswith(("meta.v1.Time", "meta.v1.MicroTime")):
        if value is None:
            return None
        micro = name.endswith("MicroTime")
        pattern, layout = (_MICRO, MICRO_LAYOUT) if micro else (_TIME, TIME_LAYOUT)
        parsed = _parse(value, pattern)
        if parsed is None:
            raise DecodeError(
                f"{field_path(path)}: parsing time {json.dumps(value)} as {json.dumps(layout)}: "
                "cannot parse"
            )
        utc = parsed.astimezone(datetime.UTC)
        if micro:
            return utc.strftime("%Y-%m-%dT%H:%M:%S.%fZ")
        return utc.strftime("%Y-%m-%dT%H:%M:%SZ")
    if isinstance(value, dict):
        return {k: normalize_times(v, child(schema, k), (*path, k)) for k, v in value.items()}
    if isinstance(value, list):
        sub = items(schema)
        return [normalize_times(v, sub, (*path, i)) for i, v in enumerate(value)]
    return value


def _parse(value: Any, pattern: re.Pattern[str]) -> datetime.datetime | None:
    if not isinstance(value, str) or not pattern.fullmatch(value):
        return None
    head, _, rest = value.partition(".")
    if rest:  # Python takes at most six fractional digits; Go takes nine.
        digits = re.match(r"\d+", rest)
        assert digits is not None
        head += "." + digits.group()[:6].ljust(6, "0") + rest[digits.end() :]
    try:
        return datetime.datetime.fromisoformat(head.replace("Z", "+00:00"))
    except ValueError:
        return None


def invalid_fields(obj: dict[str, Any]) -> list[tuple[str, str]]:
    """(field, message) for every way ``obj`` is invalid; empty when the server stores it."""
    errors = [(e.field, e.message) for e in validate_schema(obj)]
    metadata = obj.get("metadata") or {}
    name = metadata.get("name")
    if isinstance(name, str) and (len(name) > 253 or not _DNS_SUBDOMAIN.fullmatch(name)):
        errors.append(
            (
                "metadata.name",
                f"Invalid value: {json.dumps(name)}: a lowercase RFC 1123 subdomain must consist "
                "of lower case alphanumeric characters, '-' or '.', and must start and end with "
                "an alphanumeric character",
            )
        )
    owners = metadata.get("ownerReferences") or []
    if sum(1 for o in owners if isinstance(o, dict) and o.get("controller")) > 1:
        errors.append(
            (
                "metadata.ownerReferences",
                "Invalid value: only one reference can have Controller set to true",
            )
        )
    return errors
