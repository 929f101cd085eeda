"""The three patch types of the API server, applied to a stored object.

- ``application/merge-patch+json``: RFC 7386 (objects merge, ``null`` deletes, lists replace).
- ``application/json-patch+json``: RFC 6902, by the ``jsonpatch`` library.
- ``application/strategic-merge-patch+json``: apimachinery's strategic merge, driven by the
  OpenAPI extensions of the real API types: a list whose schema says
  ``x-kubernetes-patch-strategy: merge`` merges item by item, by its
  ``x-kubernetes-patch-merge-key`` (pod conditions by ``type``), or as a set for lists of
  scalars (finalizers); any other list (``containerStatuses`` is ``atomic``) is replaced
  whole. Directives: ``$patch: delete`` on a list item (removes the items with its key) or
  on a map (removes it), ``$patch: replace`` (the map or list is the patch's, not a merge),
  ``$retainKeys``, ``$deleteFromPrimitiveList/<field>``; ``$setElementOrder/<field>`` is
  accepted and its order not applied (no client here relies on it).

Errors raise PatchError (the server answers 422, or 400 for a body of the wrong shape).
"""

from __future__ import annotations

import copy
from typing import Any

import jsonpatch

from tests.apiserver.schema import Schema, child, items

MERGE = "application/merge-patch+json"
STRATEGIC = "application/strategic-merge-patch+json"
JSON_PATCH = "application/json-patch+json"
PATCH_TYPES = (MERGE, STRATEGIC, JSON_PATCH)


class PatchError(Exception):
    def __init__(self, code: int, message: str) -> None:
        super().__init__(message)
        self.code = code


def apply_patch(obj: dict[str, Any], patch: Any, content_type: str, schema: Schema) -> Any:
    """``obj`` (left unchanged) with ``patch`` applied as ``content_type`` says."""
    if content_type == JSON_PATCH:
        if not isinstance(patch, list):
            raise PatchError(
                400, "json: cannot unmarshal object into Go value of type jsonpatch.Patch"
            )
        try:
            return jsonpatch.apply_patch(obj, patch)
        except (jsonpatch.JsonPatchException, jsonpatch.JsonPointerException) as e:
            raise PatchError(
                422, f"the server rejected our request due to an error in our request: {e}"
            ) from None
        except (TypeError, KeyError, AttributeError) as e:  # an operation missing its fields
            raise PatchError(400, f"invalid JSON patch: {e}") from None
    if not isinstance(patch, dict):
        raise PatchError(
            400, "json: cannot unmarshal array into Go value of type map[string]interface {}"
        )
    if content_type == MERGE:
        return merge_patch(obj, patch)
    return strategic_merge(obj, patch, schema)


def merge_patch(target: Any, patch: Any) -> Any:
    """RFC 7386."""
    if not isinstance(patch, dict):
        return copy.deepcopy(patch)
    result = dict(target) if isinstance(target, dict) else {}
    for key, value in patch.items():
        if value is None:
            result.pop(key, None)
        else:
            result[key] = merge_patch(result.get(key), value)
    return result


def _strategy(schema: Schema) -> tuple[bool, str]:
    """Whether the list merges, and by which key ('' for a list of scalars)."""
    strategy = str(schema.get("x-kubernetes-patch-strategy", ""))
    return "merge" in strategy.split(","), str(schema.get("x-kubernetes-patch-merge-key", ""))


def strategic_merge(original: Any, patch: dict[str, Any], schema: Schema) -> Any:
    """The map ``original`` with the strategic merge ``patch`` applied."""
    directive = patch.get("$patch")
    if directive == "replace":
        return _strip({k: v for k, v in patch.items() if k != "$patch"}, schema)
    if directive == "delete":
        return None
    if directive is not None:
        raise PatchError(422, f"unknown patch type: {directive}")
    result = dict(original) if isinstance(original, dict) else {}
    retain = patch.get("$retainKeys")
    for key, value in patch.items():
        if key.startswith("$deleteFromPrimitiveList/"):
            field = key.partition("/")[2]
            if isinstance(result.get(field), list) and isinstance(value, list):
                result[field] = [v for v in result[field] if v not in value]
            continue
        if key.startswith("$"):
            continue
        sub = child(schema, key)
        if value is None:
            result.pop(key, None)
        elif isinstance(value, list):
            result[key] = _merge_list(result.get(key), value, sub)
        elif isinstance(value, dict):
            merged = strategic_merge(result.get(key), value, sub)
            if merged is None:
                result.pop(key, None)
            else:
                result[key] = merged
        else:
            result[key] = value
    if isinstance(retain, list):
        result = {k: v for k, v in result.items() if k in retain}
    return result


def _merge_list(original: Any, patch: list[Any], schema: Schema) -> list[Any]:
    merges, key = _strategy(schema)
    item_schema = items(schema)
    if any(isinstance(p, dict) and p.get("$patch") == "replace" for p in patch):
        return [
            _strip(p, item_schema) for p in patch if not (isinstance(p, dict) and "$patch" in p)
        ]
    if not merges or not isinstance(original, list):
        return [
            _strip(p, item_schema)
            for p in patch
            if not (isinstance(p, dict) and p.get("$patch") == "delete")
        ]
    result = list(original)
    if not key:  # a set of scalars
        return result + [p for p in patch if p not in result]
    for item in patch:
        if not isinstance(item, dict) or key not in item:
            raise PatchError(422, f"map: {item} does not contain declared merge key: {key}")
        at = next(
            (i for i, o in enumerate(result) if isinstance(o, dict) and o.get(key) == item[key]),
            None,
        )
        if item.get("$patch") == "delete":
            result = [o for o in result if not (isinstance(o, dict) and o.get(key) == item[key])]
        elif at is None:
            result.append(_strip(item, item_schema))
        else:
            result[at] = strategic_merge(result[at], item, item_schema)
    return result


def _strip(value: Any, schema: Schema) -> Any:
    """A value from a patch with its directives removed, as when nothing is there to merge."""
    if isinstance(value, dict):
        merged = strategic_merge({}, {k: v for k, v in value.items() if k != "$patch"}, schema)
        return {k: v for k, v in merged.items() if v is not None}
    return value
