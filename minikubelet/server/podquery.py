"""What a pods list or watch asked for: namespace, selectors, form, and where to start.

Parsed once per request, with every bad value refused as a 400 ``Status``
naming the parameter, as the API server does; shared by the list and get
handlers (``pods.py``), the watch stream (``watch.py``) and the kubelet-style
``/pods`` (``app.py``).
"""

from __future__ import annotations

import re
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from aiohttp import web
from multidict import MultiMapping

from minikubelet.model.spec import Pod
from minikubelet.server import params, podprint
from minikubelet.server.errors import StatusError, shown
from minikubelet.server.selectors import (
    FieldRequirement,
    LabelRequirement,
    matches_labels,
    parse_field_selector,
    parse_label_selector,
)
from minikubelet.server.table import include_object, table, wants_table
from minikubelet.status.manager import Deletion

# The field labels the API server takes for pods (AddFieldLabelConversionsForPod), each
# read from the view ``field_view`` builds.
FIELDS: dict[str, tuple[str, ...]] = {
    "metadata.name": ("metadata", "name"),
    "metadata.namespace": ("metadata", "namespace"),
    "spec.nodeName": ("spec", "nodeName"),
    "spec.restartPolicy": ("spec", "restartPolicy"),
    "spec.schedulerName": ("spec", "schedulerName"),
    "spec.serviceAccountName": ("spec", "serviceAccountName"),
    "spec.hostNetwork": ("spec", "hostNetwork"),
    "status.phase": ("status", "phase"),
    "status.podIP": ("status", "podIP"),
    "status.nominatedNodeName": ("status", "nominatedNodeName"),
}

_DIGITS = re.compile(r"[0-9]{1,19}", re.ASCII)


def field_view(obj: Mapping[str, Any]) -> dict[str, Any]:
    """The pod's selectable fields as the API server's pod field set has them:
    ``spec.hostNetwork`` is a bool even when the manifest left it out."""
    metadata = obj.get("metadata") or {}
    spec = obj.get("spec") or {}
    status = obj.get("status") or {}
    return {
        "metadata": {"name": metadata.get("name"), "namespace": metadata.get("namespace")},
        "spec": {
            "nodeName": spec.get("nodeName"),
            "restartPolicy": spec.get("restartPolicy"),
            "schedulerName": spec.get("schedulerName"),
            "serviceAccountName": spec.get("serviceAccountName"),
            "hostNetwork": bool(spec.get("hostNetwork")),
        },
        "status": {
            "phase": status.get("phase"),
            "podIP": status.get("podIP"),
            "nominatedNodeName": status.get("nominatedNodeName"),
        },
    }


@dataclass(frozen=True, slots=True)
class PodFilter:
    """Which pods a request shows. ``hide_deleting`` is the kubelet's ``/pods`` view,
    where a pod leaves as soon as its source drops it."""

    namespace: str | None = None
    labels: tuple[LabelRequirement, ...] = ()
    fields: tuple[FieldRequirement, ...] = ()
    hide_deleting: bool = False

    @property
    def everything(self) -> bool:
        """True when every pod is shown, whatever its state."""
        return (
            self.namespace is None
            and not self.labels
            and not self.fields
            and not self.hide_deleting
        )

    def admits(
        self, pod: Pod, deletion: Deletion | None, obj: Callable[[], Mapping[str, Any]]
    ) -> bool:
        """Whether the pod is shown; ``obj`` builds its API object, called only for
        field selectors."""
        if self.hide_deleting and deletion is not None:
            return False
        if self.namespace is not None and pod.namespace != self.namespace:
            return False
        if self.labels and not matches_labels(list(self.labels), pod.labels):
            return False
        if self.fields:
            view = field_view(obj())
            return all(r.matches(view, FIELDS) for r in self.fields)
        return True


@dataclass(frozen=True, slots=True)
class PodQuery:
    filter: PodFilter
    watch: bool = False
    timeout: int | None = None
    # None: start from the current state (absent or "0"); else resume after this version.
    resource_version: int | None = None
    bookmarks: bool = False
    # sendInitialEvents (watch-list): the current pods as ADDED, then a BOOKMARK saying so.
    initial_events: bool = False
    table: str | None = None
    include: str = "Metadata"


def _first(query: MultiMapping[str], name: str) -> str | None:
    values = query.getall(name, [])
    return values[0] if values else None


def parse_query(
    request: web.Request, *, namespace: str | None, hide_deleting: bool = False
) -> PodQuery:
    """The request's query, checked. The first of repeated values counts, as the API
    server converts repeated parameters."""
    try:
        query = request.query
        timeout = params.timeout_seconds(query)
        watch = params.is_watch(query)
        labels_text = _first(query, "labelSelector")
        fields_text = _first(query, "fieldSelector")
        version_text = _first(query, "resourceVersion")
        limit_text = _first(query, "limit")
        bookmarks = params.flag(_first(query, "allowWatchBookmarks"))
        initial_events = params.flag(_first(query, "sendInitialEvents"))
        continue_text = _first(query, "continue")
    except (UnicodeError, ValueError):
        raise StatusError(400, "the query string cannot be decoded") from None
    labels = parse_label_selector(labels_text) if labels_text else []
    fields = parse_field_selector(fields_text, FIELDS) if fields_text else []
    version: int | None = None
    if version_text:
        if not _DIGITS.fullmatch(version_text):
            raise StatusError(
                400, f"resourceVersion: invalid value {shown(version_text)}: must be a number"
            )
        version = int(version_text) or None
    params.check_list_options(
        limit=limit_text or "",
        continue_token=continue_text or "",
        initial_events=initial_events,
        watch=watch,
        bookmarks=bookmarks,
    )
    version_table = wants_table(request)
    return PodQuery(
        filter=PodFilter(namespace, tuple(labels), tuple(fields), hide_deleting),
        watch=watch,
        timeout=timeout,
        resource_version=version,
        bookmarks=bookmarks,
        initial_events=initial_events,
        table=version_table,
        include=include_object(request) if version_table else "Metadata",
    )


def pod_table(
    query: PodQuery, objects: Sequence[Mapping[str, Any]], *, resource_version: int
) -> dict[str, Any]:
    """A Table of ``objects``, each one row of kubectl's pod columns."""
    now = time.time()
    return table(
        podprint.COLUMNS,
        ((podprint.pod_cells(obj, now), obj) for obj in objects),
        include=query.include,
        version=query.table or "v1",
        resource_version=str(resource_version),
    )
