"""Typed reads of an unchecked JSON document: each answers its type or nothing.

Semantic rules run on documents whose types the schema may have faulted, so
they never index or call methods on a raw value: they read through these,
which return the value when it has the expected type and an empty value
(``""``, ``{}``, ``[]``, ``None``) otherwise. A wrong type is the schema's
error to report; the rule just sees "not set".
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

JSONMap = Mapping[str, Any]
_EMPTY: JSONMap = {}


def as_map(value: object) -> JSONMap:
    return value if isinstance(value, Mapping) else _EMPTY


def get_map(obj: object, key: str) -> JSONMap:
    return as_map(as_map(obj).get(key))


def get_list(obj: object, key: str) -> list[Any]:
    value = as_map(obj).get(key)
    return value if isinstance(value, list) else []


def get_maps(obj: object, key: str) -> list[tuple[int, JSONMap]]:
    """The mappings of a list, with their indexes (other items are skipped)."""
    return [(i, v) for i, v in enumerate(get_list(obj, key)) if isinstance(v, Mapping)]


def get_strs(obj: object, key: str) -> list[tuple[int, str]]:
    """The strings of a list, with their indexes (other items are skipped)."""
    return [(i, v) for i, v in enumerate(get_list(obj, key)) if isinstance(v, str)]


def get_str(obj: object, key: str) -> str:
    value = as_map(obj).get(key)
    return value if isinstance(value, str) else ""


def get_opt_str(obj: object, key: str) -> str | None:
    value = as_map(obj).get(key)
    return value if isinstance(value, str) else None


def get_int(obj: object, key: str) -> int | None:
    value = as_map(obj).get(key)
    return value if isinstance(value, int) and not isinstance(value, bool) else None


def get_bool(obj: object, key: str) -> bool | None:
    value = as_map(obj).get(key)
    return value if isinstance(value, bool) else None


def is_true(obj: object, key: str) -> bool:
    return get_bool(obj, key) is True


def has(obj: object, key: str) -> bool:
    """Whether ``key`` is set (the reader drops null values, so present means set)."""
    return as_map(obj).get(key) is not None
