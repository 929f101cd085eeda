"""From manifest bytes to a typed ``Pod``: parse, validate, default, build.

Manifest contents are untrusted. Parsing is bounded (size is checked by the
caller, node count and depth here, so an alias bomb cannot blow up memory),
and messages never echo file content beyond a few characters.
"""

from __future__ import annotations

import datetime
import json
import math
from collections.abc import Callable
from typing import Any

import yaml

from minikubelet.errors import FieldError, ManifestError
from minikubelet.model import naming
from minikubelet.model.build import build_pod
from minikubelet.model.defaults import apply_pod_defaults
from minikubelet.model.schema import field_path, validate_schema
from minikubelet.model.spec import Pod
from minikubelet.model.validation import validate_pod

MAX_NODES = 200_000
MAX_DEPTH = 64

try:
    _Loader: type[yaml.SafeLoader] = yaml.CSafeLoader  # type: ignore[assignment]
except AttributeError:  # pragma: no cover - PyYAML built without libyaml
    _Loader = yaml.SafeLoader


class _Budget:
    def __init__(self) -> None:
        self.nodes = 0


def _normalize(value: Any, path: list[str | int], budget: _Budget, origin: str) -> Any:
    """A JSON-compatible copy of parsed YAML, or a ManifestError naming the field."""
    budget.nodes += 1
    if budget.nodes > MAX_NODES:
        raise ManifestError(origin, [FieldError("", f"document has more than {MAX_NODES} values")])
    if len(path) > MAX_DEPTH:
        raise ManifestError(
            origin, [FieldError(field_path(path), f"nested deeper than {MAX_DEPTH} levels")]
        )
    if value is None or isinstance(value, bool | int | str):
        return value
    if isinstance(value, float):
        if not math.isfinite(value):
            raise ManifestError(origin, [FieldError(field_path(path), "must be a finite number")])
        return int(value) if value.is_integer() and abs(value) < 2**53 else value
    if isinstance(value, dict):
        out: dict[str, Any] = {}
        for key, item in value.items():
            if not isinstance(key, str):
                raise ManifestError(
                    origin, [FieldError(field_path(path), "mapping keys must be strings")]
                )
            out[key] = _normalize(item, [*path, key], budget, origin)
        return out
    if isinstance(value, list):
        return [_normalize(item, [*path, i], budget, origin) for i, item in enumerate(value)]
    if isinstance(value, datetime.date | datetime.datetime):
        # Kubernetes' YAML-to-JSON conversion turns timestamps into strings.
        return value.isoformat()
    raise ManifestError(
        origin, [FieldError(field_path(path), f"unsupported YAML type {type(value).__name__}")]
    )


def _yaml_error(origin: str, error: yaml.YAMLError) -> ManifestError:
    if isinstance(error, yaml.MarkedYAMLError) and error.problem_mark is not None:
        mark = error.problem_mark
        where = f"line {mark.line + 1}, column {mark.column + 1}"
        problem = error.problem or "invalid YAML"
        return ManifestError(origin, [FieldError("", f"invalid YAML at {where}: {problem}")])
    return ManifestError(origin, [FieldError("", "invalid YAML")])


def parse_document(data: bytes, *, origin: str, json_only: bool = False) -> dict[str, Any]:
    """Parse one YAML or JSON document holding one object."""
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as e:
        raise ManifestError(origin, [FieldError("", f"not UTF-8 text (byte {e.start})")]) from None
    if json_only:
        try:
            raw: Any = json.loads(text)
        except json.JSONDecodeError as e:
            raise ManifestError(
                origin,
                [FieldError("", f"invalid JSON at line {e.lineno}, column {e.colno}: {e.msg}")],
            ) from None
        except RecursionError:
            raise ManifestError(
                origin, [FieldError("", f"nested deeper than {MAX_DEPTH} levels")]
            ) from None
    else:
        try:
            documents = [d for d in yaml.load_all(text, Loader=_Loader) if d is not None]
        except yaml.YAMLError as e:
            raise _yaml_error(origin, e) from None
        except RecursionError:
            raise ManifestError(
                origin, [FieldError("", f"nested deeper than {MAX_DEPTH} levels")]
            ) from None
        if len(documents) > 1:
            raise ManifestError(
                origin,
                [FieldError("", f"holds {len(documents)} documents; put one Pod in each file")],
            )
        raw = documents[0] if documents else None
    if raw is None:
        raise ManifestError(origin, [FieldError("", "empty manifest")])
    if not isinstance(raw, dict):
        raise ManifestError(origin, [FieldError("", "must be a mapping (a Kubernetes object)")])
    result: dict[str, Any] = _normalize(raw, [], _Budget(), origin)
    return result


def check_pod_document(document: dict[str, Any], *, node_name: str) -> list[FieldError]:
    """Schema and semantic errors of a Pod document, all of them."""
    kind, api_version = document.get("kind"), document.get("apiVersion")
    if kind != "Pod" or api_version != "v1":
        return [
            FieldError(
                "kind",
                f"unsupported kind {str(kind)[:40]!r} (apiVersion {str(api_version)[:40]!r}): "
                "each manifest must hold one v1 Pod",
            )
        ]
    errors = validate_schema(document)
    try:
        semantic = validate_pod(document, name_suffix=f"-{node_name.lower()}")
    except (AttributeError, TypeError, KeyError, ValueError):
        # Semantic rules assume the schema's types; with type errors present
        # they may trip, and the schema errors already say what to fix.
        semantic = []
    # A field the schema already faulted is not reported twice.
    faulted = [e.field for e in errors]
    return errors + [
        e
        for e in semantic
        if not any(e.field == f or e.field.startswith((f + ".", f + "[")) for f in faulted)
    ]


def pod_from_document(
    document: dict[str, Any],
    *,
    origin: str,
    node_name: str,
    seen: Callable[[str], str],
    source: str = "file",
) -> Pod:
    """Validate a parsed document and build its static pod.

    ``seen`` maps the pod's uid to the time it was first seen (RFC 3339),
    which the caller keeps so that it stays fixed for a uid.
    """
    errors = check_pod_document(document, node_name=node_name)
    if errors:
        raise ManifestError(origin, errors)
    meta = document["metadata"]
    uid = meta.get("uid") or naming.static_pod_uid(document, node_name=node_name, origin=origin)
    full_name = naming.static_pod_name(meta["name"], node_name)
    manifest = apply_pod_defaults(
        document, node_name=node_name, uid=uid, full_name=full_name, seen=seen(uid)
    )
    return build_pod(manifest, source=source, origin=origin)
