"""Server-side printing: ``meta.k8s.io/v1`` ``Table`` responses, as kubectl asks for them.

kubectl sends ``Accept: application/json;as=Table;v=v1;g=meta.k8s.io, ...``
on every ``get`` and prints the columns the server chose, so the words and
columns are the server's to get right (this is how ``kubectl get pods``
shows STATUS). Each resource module defines its columns and renders its rows;
this module owns the negotiation and the envelope. Columns with a priority
above 0 are the ``-o wide`` ones.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from aiohttp import web

from minikubelet.server.errors import StatusError, shown

TABLE_VERSIONS = ("v1", "v1beta1")


@dataclass(frozen=True, slots=True)
class Column:
    name: str
    type: str = "string"
    format: str = ""
    description: str = ""
    priority: int = 0

    def to_api(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "type": self.type,
            "format": self.format,
            "description": self.description,
            "priority": self.priority,
        }


def wants_table(request: web.Request) -> str | None:
    """The Table version the client accepts first (``v1``/``v1beta1``), or None for plain JSON.

    Media ranges are tried in the order sent, as the API server negotiates:
    a plain ``application/json`` before any Table means the object itself.
    """
    for accept in request.headers.getall("Accept", []):
        for media in accept.split(","):
            kind, *raw = (part.strip() for part in media.split(";"))
            params = dict(p.partition("=")[::2] for p in raw if "=" in p)
            if kind not in ("application/json", "application/*", "*/*", ""):
                continue
            if params.get("as") == "Table":
                if params.get("g") == "meta.k8s.io" and params.get("v") in TABLE_VERSIONS:
                    return params["v"]
                continue
            if "as" not in params:
                return None
    return None


def include_object(request: web.Request) -> str:
    """``includeObject``: what each row carries besides its cells (default Metadata)."""
    value = request.query.get("includeObject", "Metadata") or "Metadata"
    if value not in ("None", "Metadata", "Object"):
        raise StatusError(
            400, f"includeObject: {shown(value)} must be one of None, Metadata, Object"
        )
    return value


def row_object(obj: Mapping[str, Any], include: str, version: str) -> dict[str, Any] | None:
    if include == "None":
        return None
    if include == "Object":
        return dict(obj)
    return {
        "kind": "PartialObjectMetadata",
        "apiVersion": f"meta.k8s.io/{version}",
        "metadata": obj.get("metadata") or {},
    }


def table(
    columns: Sequence[Column],
    rows: Iterable[tuple[Sequence[Any], Mapping[str, Any]]],
    *,
    include: str,
    version: str = "v1",
    resource_version: str = "",
) -> dict[str, Any]:
    """A Table of ``rows``, each its cells and the object they were printed from."""
    out_rows = []
    for cells, obj in rows:
        row: dict[str, Any] = {"cells": list(cells)}
        carried = row_object(obj, include, version)
        if carried is not None:
            row["object"] = carried
        out_rows.append(row)
    metadata = {"resourceVersion": resource_version} if resource_version else {}
    return {
        "kind": "Table",
        "apiVersion": f"meta.k8s.io/{version}",
        "metadata": metadata,
        "columnDefinitions": [c.to_api() for c in columns],
        "rows": out_rows,
    }


def table_bytes(*args: Any, **kwargs: Any) -> bytes:
    return json.dumps(table(*args, **kwargs), separators=(",", ":")).encode()
