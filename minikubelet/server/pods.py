"""``/api/v1/pods``: the node's pods as the API server lists, gets and watches them.

Lists across namespaces and in one, a pod by name (and its ``status``
subresource), with label and field selectors, as plain JSON or as the
server-side Table kubectl asks for (columns and words in ``podprint.py``).
A plain JSON list is a join of the status manager's cached per-pod JSON, so
it costs about what serving a static file would. Watches are in
``watch.py``.

Pods being stopped (removed from the manifest directory) are listed with a
``deletionTimestamp`` until their containers are gone, as the API server
lists a pod in its grace period; kubectl prints them Terminating.
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Callable

from aiohttp import web

from minikubelet.model.spec import PodUID
from minikubelet.server.deps import DEPS, LIMITS
from minikubelet.server.errors import StatusError, read_only
from minikubelet.server.podquery import PodQuery, parse_query, pod_table
from minikubelet.server.stream import send_body
from minikubelet.server.watch import admitted, watch_pods
from minikubelet.status.manager import StatusManager


def selected(status: StatusManager, query: PodQuery) -> list[PodUID]:
    return [uid for uid in status.sorted_uids() if admitted(status, uid, query.filter)]


def joined_items(status: StatusManager, query: PodQuery) -> bytes:
    """The selected pods' JSON joined with commas; unfiltered, the status manager's
    join kept between changes, so a poll costs about a static file's write."""
    pod_filter = query.filter
    if pod_filter.namespace is None and not pod_filter.labels and not pod_filter.fields:
        return status.items_json(deleting=not pod_filter.hide_deleting)
    return b",".join(
        body for body in map(status.pod_json, selected(status, query)) if body is not None
    )


class ListCache:
    """The last whole body of an unfiltered list and what it was built from.

    The status manager joins the items anew after every change, so the same
    parts (compared by identity first) mean the same body: a poll between two
    changes costs no copy of a few hundred KiB, which is half of what a list
    costs otherwise (bench/api.py).
    """

    def __init__(self) -> None:
        self._parts: tuple[object, ...] = ()
        self._body = b""

    def body(self, parts: tuple[object, ...], build: Callable[[], bytes]) -> bytes:
        if parts != self._parts:
            self._parts, self._body = parts, build()
        return self._body


API_LIST = web.AppKey("api_list", ListCache)


def list_body(status: StatusManager, query: PodQuery, cache: ListCache) -> bytes:
    """The list in the form asked for: a PodList or a Table."""
    version = status.resource_version
    if query.table is not None:
        uids = selected(status, query)
        objects = [obj for obj in map(status.pod_api_object, uids) if obj is not None]
        return json.dumps(
            pod_table(query, objects, resource_version=version), separators=(",", ":")
        ).encode()
    items = joined_items(status, query)

    def build() -> bytes:
        return b"".join(
            [
                b'{"kind":"PodList","apiVersion":"v1","metadata":{"resourceVersion":"',
                str(version).encode(),
                b'"},"items":[',
                items,
                b"]}",
            ]
        )

    return cache.body((version, items), build) if query.filter.everything else build()


async def list_pods(request: web.Request) -> web.StreamResponse:
    query = parse_query(request, namespace=request.match_info.get("namespace"))
    if query.watch:
        return await watch_pods(request, query)
    return await send_body(
        request,
        list_body(request.app[DEPS].status, query, request.app[API_LIST]),
        content_type="application/json",
        timeout=request.app[LIMITS].write_timeout,
    )


async def watch_path(request: web.Request) -> web.StreamResponse:
    """``/api/v1/watch/...``: the deprecated watch paths, a watch whatever ``watch`` says."""
    query = parse_query(request, namespace=request.match_info.get("namespace"))
    return await watch_pods(request, dataclasses.replace(query, watch=True))


def find(status: StatusManager, namespace: str, name: str) -> PodUID | None:
    """The pod of that name; of two (a pod replaced while the old one stops), the new one."""
    found = None
    for uid in status.sorted_uids():
        pod_of = status.pod_of(uid)
        if pod_of is None:
            continue
        pod, deletion = pod_of
        if pod.namespace == namespace and pod.name == name:
            if deletion is None:
                return uid
            found = uid
    return found


async def get_pod(request: web.Request) -> web.StreamResponse:
    namespace = request.match_info["namespace"]
    name = request.match_info["name"]
    query = parse_query(request, namespace=namespace)
    status = request.app[DEPS].status
    uid = find(status, namespace, name)
    body = None
    if uid is not None:
        if query.table is not None:
            obj = status.pod_api_object(uid)
            if obj is not None:
                body = json.dumps(
                    pod_table(query, [obj], resource_version=status.resource_version),
                    separators=(",", ":"),
                ).encode()
        else:
            body = status.pod_json(uid)
    if body is None:
        raise StatusError(404, f'pods "{name}" not found')
    return await send_body(
        request,
        body,
        content_type="application/json",
        timeout=request.app[LIMITS].write_timeout,
    )


ROUTES = (
    ("/api/v1/pods", list_pods),
    ("/api/v1/namespaces/{namespace}/pods", list_pods),
    ("/api/v1/namespaces/{namespace}/pods/{name}", get_pod),
    ("/api/v1/namespaces/{namespace}/pods/{name}/status", get_pod),
    ("/api/v1/watch/pods", watch_path),
    ("/api/v1/watch/namespaces/{namespace}/pods", watch_path),
)


def add_routes(app: web.Application) -> None:
    app[API_LIST] = ListCache()
    for path, handler in ROUTES:
        app.router.add_get(path, handler)
        # Any other method (kubectl delete, apply...) gets a v1 Status, not aiohttp's text.
        app.router.add_route("*", path, read_only)
