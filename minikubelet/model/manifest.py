"""From manifest bytes to a typed ``Pod``: parse, validate, default, build.

Manifest contents are untrusted, and every step is total: anything that is
not a Pod ends as a ``ManifestError`` naming the file and, for each problem,
the field (``""`` only for whole-document problems such as invalid YAML).

- ``parse_document``: bytes to a JSON value through ``loader``, which bounds
  the document while it is built (``MAX_VALUES`` values, ``MAX_TEXT_CHARS``
  characters, ``MAX_DEPTH`` levels, ``DEADLINE_SECONDS``; the caller bounds
  the file's size). Nulls in mappings are unset fields and are dropped.
- ``check_pod_document``: nulls inside lists, the schema (types, unknown
  fields, enums, integer ranges), then every semantic rule, whatever the
  schema found: rules read through typed getters and cannot raise. A rule
  error under a field the schema already faulted is not reported twice, and
  at most ``MAX_ERRORS`` errors are reported.
- ``apply_pod_defaults`` (the only place API defaults are applied), then
  ``build_pod``, which reads the defaulted fields.

Messages never echo file content beyond a few characters. All of it is
synchronous and thread-safe; the file source runs it off the event loop.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any, Final

from minikubelet.errors import FieldError, ManifestError
from minikubelet.model import naming
from minikubelet.model.access import get_str
from minikubelet.model.build import build_pod
from minikubelet.model.defaults import apply_pod_defaults
from minikubelet.model.loader import (
    DEADLINE_SECONDS,
    MAX_DEPTH,
    MAX_TEXT_CHARS,
    MAX_VALUES,
    load_json,
    load_yaml,
    normalize,
)
from minikubelet.model.schema import field_path, validate_schema
from minikubelet.model.spec import Pod
from minikubelet.model.validation import validate_pod

__all__ = [
    "DEADLINE_SECONDS",
    "MAX_DEPTH",
    "MAX_ERRORS",
    "MAX_TEXT_CHARS",
    "MAX_VALUES",
    "check_pod_document",
    "parse_document",
    "pod_from_document",
]

# A manifest with more problems than this is reported by its first ones.
MAX_ERRORS: Final = 100


def parse_document(data: bytes, *, origin: str, json_only: bool = False) -> dict[str, Any]:
    """Parse one YAML or JSON document holding one object."""
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as e:
        raise ManifestError(origin, [FieldError("", f"not UTF-8 text (byte {e.start})")]) from None
    raw = load_json(text, origin=origin) if json_only else load_yaml(text, origin=origin)
    if raw is None:
        raise ManifestError(origin, [FieldError("", "empty manifest")])
    if not isinstance(raw, dict):
        raise ManifestError(origin, [FieldError("", "must be a mapping (a Kubernetes object)")])
    return raw


def _null_items(document: dict[str, Any]) -> Iterator[FieldError]:
    """Nulls inside lists, in document order: the reader keeps them so the index is named."""
    stack: list[tuple[list[str | int], Any]] = [([], document)]
    while stack:
        path, value = stack.pop()
        if value is _NULL_ITEM:
            yield FieldError(field_path(path), "must not be null")
        elif isinstance(value, dict | list):
            children = value.items() if isinstance(value, dict) else enumerate(value)
            in_list = isinstance(value, list)
            for key, item in reversed(list(children)):
                stack.append(([*path, key], _NULL_ITEM if in_list and item is None else item))


_NULL_ITEM: Final = object()


def _prefixes(field: str) -> Iterator[str]:
    """``a.b[0].c`` → ``a``, ``a.b``, ``a.b[0]``, ``a.b[0].c``."""
    for i, ch in enumerate(field):
        if ch in ".[" and i:
            yield field[:i]
    yield field


def check_pod_document(document: dict[str, Any], *, node_name: str) -> list[FieldError]:
    """Schema and semantic errors of a Pod document, all of them (up to ``MAX_ERRORS``)."""
    kind, api_version = document.get("kind"), document.get("apiVersion")
    if kind != "Pod" or api_version != "v1":
        return [
            FieldError(
                "kind",
                f"unsupported kind {str(kind)[:40]!r} (apiVersion {str(api_version)[:40]!r}): "
                "each manifest must hold one v1 Pod",
            )
        ]
    errors = list(_null_items(document)) + validate_schema(document)
    semantic = validate_pod(document, name_suffix=f"-{node_name.lower()}")
    # A field the schema already faulted is not reported twice.
    faulted = {e.field for e in errors}
    errors += [e for e in semantic if not any(p in faulted for p in _prefixes(e.field))]
    if len(errors) > MAX_ERRORS:
        rest = len(errors) - MAX_ERRORS
        # A lower bound: the schema stops counting at MAX_SCHEMA_ERRORS.
        more = FieldError(errors[MAX_ERRORS].field, f"and at least {rest} more errors")
        errors = [*errors[:MAX_ERRORS], more]
    return errors


def pod_from_document(
    document: dict[str, Any],
    *,
    origin: str,
    node_name: str,
    seen: Callable[[str], str],
    source: str = "file",
) -> Pod:
    """Validate a parsed document and build its static pod.

    ``document`` may come from anywhere: it is normalised as the reader's
    output is (nulls in mappings dropped, budgets applied) before anything
    reads it. ``seen`` maps the pod's uid to the time it was first seen
    (RFC 3339), which the caller keeps so that it stays fixed for a uid.
    """
    if not isinstance(document, dict):
        raise ManifestError(origin, [FieldError("", "must be a mapping (a Kubernetes object)")])
    document = normalize(document, origin=origin)
    errors = check_pod_document(document, node_name=node_name)
    if errors:
        raise ManifestError(origin, errors)
    meta = document["metadata"]
    uid = get_str(meta, "uid") or naming.static_pod_uid(
        document, node_name=node_name, origin=origin
    )
    full_name = naming.static_pod_name(meta["name"], node_name)
    manifest = apply_pod_defaults(
        document, node_name=node_name, uid=uid, full_name=full_name, seen=seen(uid)
    )
    return build_pod(manifest, source=source, origin=origin)
