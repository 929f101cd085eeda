"""Structural validation against the official Kubernetes OpenAPI schema.

The schema comes from the ``kubernetes-validate`` package, which ships the
Kubernetes OpenAPI definitions converted to JSON Schema, in a strict variant
that rejects unknown fields. We load its files once and keep a compiled
validator per kind, because the package's own ``validate()`` re-reads a
1.2 MB definitions file on every call.

Schema checks catch types, unknown fields, enums and the ranges of int32
and int64 fields (which the API server's decoder refuses); rules the schema
cannot express (names, references between fields, ranges) live in
``validation``. At most ``MAX_SCHEMA_ERRORS`` errors are collected: a
document of 200,000 wrong values needs no 200,000 messages.
"""

from __future__ import annotations

import functools
import importlib.resources
import itertools
import json
import re
from collections.abc import Iterable, Sequence
from typing import Any

import jsonschema
from referencing import Registry, Resource

from minikubelet.errors import FieldError

_VERSION_DIR = re.compile(r"v(\d+)\.(\d+)\.(\d+)-local-strict")

# Values echoed in messages are cut: manifest contents are untrusted and the
# messages reach logs, terminals and the status endpoint.
_MAX_ECHO = 40
# Map keys become parts of field paths; long ones are cut the same way.
_MAX_KEY = 64
_PATH_SPECIAL = re.compile(r"[\s\[\]\\\"']")
MAX_SCHEMA_ERRORS = 1000
_INT32 = (-(2**31), 2**31 - 1)
_INT64 = (-(2**63), 2**63 - 1)


def _schema_root() -> Any:
    root = importlib.resources.files("kubernetes_validate").joinpath("kubernetes-json-schema")
    versions = []
    for entry in root.iterdir():
        m = _VERSION_DIR.fullmatch(entry.name)
        if m:
            versions.append((tuple(int(x) for x in m.groups()), entry))
    if not versions:  # pragma: no cover - packaging error
        raise RuntimeError("kubernetes-validate ships no strict schemas")
    return max(versions, key=lambda v: v[0])[1]


@functools.cache
def schema_version() -> str:
    """The Kubernetes version whose schema is used, e.g. ``1.37``."""
    m = _VERSION_DIR.fullmatch(_schema_root().name)
    assert m is not None
    return f"{m.group(1)}.{m.group(2)}"


@functools.cache
def _registry() -> Registry:
    defs = json.loads(_schema_root().joinpath("_definitions.json").read_text())
    registry: Registry = Resource.from_contents(defs) @ Registry()
    return registry


@functools.cache
def _validator(kind: str, api_version: str) -> jsonschema.protocols.Validator:
    group_version = re.sub(r"^([^./]*)(?:\.[^/]*)?/", r"\1-", api_version)
    name = f"{kind.lower()}-{group_version}.json"
    schema = json.loads(_schema_root().joinpath(name).read_text())
    registry = Resource.from_contents(schema) @ _registry()
    return jsonschema.Draft202012Validator(
        schema, registry=registry, format_checker=_format_checker()
    )


@functools.cache
def _format_checker() -> jsonschema.FormatChecker:
    checker = jsonschema.FormatChecker(formats=())

    def in_range(bounds: tuple[int, int]) -> Any:
        def check(instance: object) -> bool:
            if isinstance(instance, int) and not isinstance(instance, bool):
                return bounds[0] <= instance <= bounds[1]
            return True

        return check

    checker.checks("int32")(in_range(_INT32))
    checker.checks("int64")(in_range(_INT64))
    return checker


def _path_key(key: str) -> str:
    if len(key) > _MAX_KEY:
        key = key[: _MAX_KEY - 3] + "..."
    if key and key.isprintable() and _PATH_SPECIAL.search(key) is None:
        return key
    # Keys with spaces, brackets, quotes or control characters are quoted, so
    # the path stays readable and cannot carry terminal escapes.
    return f"[{json.dumps(key)}]"


def field_path(parts: Iterable[str | int]) -> str:
    """``['spec', 'containers', 0, 'image']`` → ``spec.containers[0].image``.

    Map keys that are not plain words are quoted: ``metadata.labels["a b"]``.
    """
    out = ""
    for p in parts:
        if isinstance(p, int):
            out += f"[{p}]"
        else:
            key = _path_key(p)
            out += key if key.startswith("[") or not out else f".{key}"
    return out


def _json_type(value: object) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, int):
        return "integer"
    if isinstance(value, float):
        return "number"
    if isinstance(value, str):
        return "string"
    if isinstance(value, list):
        return "array"
    if isinstance(value, dict):
        return "object"
    return type(value).__name__


def echo(value: object) -> str:
    """A value for a message: JSON-quoted (so no control characters) and cut short."""
    text = json.dumps(value) if isinstance(value, str | int | float | bool) else _json_type(value)
    return text if len(text) <= _MAX_ECHO else text[: _MAX_ECHO - 3] + "..."


def _expected_types(schema: Any) -> list[str]:
    t = schema.get("type") if isinstance(schema, dict) else None
    types = t if isinstance(t, list) else [t] if t else []
    return [x for x in types if x != "null"]


def _to_field_errors(error: jsonschema.ValidationError) -> list[FieldError]:
    path = list(error.absolute_path)
    where = field_path(path)
    validator = error.validator
    if validator == "additionalProperties" and isinstance(error.instance, dict):
        allowed = error.schema.get("properties", {}) if isinstance(error.schema, dict) else {}
        return [
            FieldError(field_path([*path, key]), "unknown field")
            for key in error.instance
            if key not in allowed
        ] or [FieldError(where, "unknown field")]
    if validator == "required":
        missing = re.findall(r"'([^']+)' is a required property", error.message)
        return [FieldError(field_path([*path, m]), "required value") for m in missing] or [
            FieldError(where, "required value")
        ]
    if validator == "format":
        return [FieldError(where, f"out of range for {error.validator_value}")]
    if validator == "type":
        expected = " or ".join(_expected_types(error.schema)) or "another type"
        return [FieldError(where, f"expected {expected}, got {_json_type(error.instance)}")]
    values: list[Any] = (
        list(error.validator_value) if isinstance(error.validator_value, list) else []
    )
    if validator == "enum":
        options = ", ".join(json.dumps(v) for v in values if v is not None)
        return [
            FieldError(where, f"unsupported value {echo(error.instance)}: must be one of {options}")
        ]
    if validator in ("oneOf", "anyOf"):
        # IntOrString and Quantity are oneOf [string, integer|number].
        types = [t for s in values for t in _expected_types(s)]
        if types:
            return [
                FieldError(
                    where, f"expected {' or '.join(types)}, got {_json_type(error.instance)}"
                )
            ]
    return [FieldError(where, error.message[:200])]


def _document_order(error: jsonschema.ValidationError) -> list[tuple[int, int, str]]:
    # Indexes numerically, so args[2] comes before args[10].
    return [(1, p, "") if isinstance(p, int) else (0, 0, str(p)) for p in error.absolute_path]


def validate_schema(document: dict[str, Any]) -> list[FieldError]:
    """Check ``document`` (which must have apiVersion and kind) against the schema."""
    api_version = document.get("apiVersion")
    kind = document.get("kind")
    try:
        validator = _validator(str(kind), str(api_version))
    except (FileNotFoundError, OSError):
        return [
            FieldError("kind", f"no schema for kind {echo(kind)} in apiVersion {echo(api_version)}")
        ]
    errors: list[FieldError] = []
    found = itertools.islice(validator.iter_errors(document), MAX_SCHEMA_ERRORS)
    for error in sorted(found, key=_document_order):
        errors.extend(_to_field_errors(error))
    return _dedupe(errors)


def _dedupe(errors: Sequence[FieldError]) -> list[FieldError]:
    seen: set[FieldError] = set()
    out = []
    for e in errors:
        if e not in seen:
            seen.add(e)
            out.append(e)
    return out
