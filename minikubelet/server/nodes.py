"""``/api/v1/nodes``: this agent's Node, listed, got and watched as the API server serves it,
and the node's Lease, which ``kubectl describe node`` reads.

The Node is computed by ``nodestatus`` on its own schedule; a request only
reads the last one. There is one node, so a list holds it or (filtered out
by a selector) nothing, and any other name is 404 ``nodes "x" not found``.
The server-side ``Table`` has the columns of kubectl's ``printNode``. Field
selectors are the API server's for nodes (``metadata.name``,
``spec.unschedulable``); label selectors match the node's labels.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Mapping
from typing import Any

from aiohttp import web

from minikubelet.server import params
from minikubelet.server.deps import DEPS, LIMITS
from minikubelet.server.errors import StatusError, read_only, status_bytes
from minikubelet.server.events import age_of, quoted, resource_version
from minikubelet.server.selectors import (
    matches_labels,
    parse_field_selector,
    parse_label_selector,
)
from minikubelet.server.stream import BoundedStream, send_body
from minikubelet.server.table import Column, include_object, table_bytes, wants_table
from minikubelet.server.watch import WATCH_SLOTS
from minikubelet.util.timefmt import rfc3339_micro

# NodeToSelectableFields: the object's own name, and spec.unschedulable rendered as a bool.
FIELDS: dict[str, tuple[str, ...]] = {
    "metadata.name": ("metadata", "name"),
    "spec.unschedulable": ("spec", "unschedulable"),
}

# kubectl's node columns (pkg/printers/internalversion/printers.go); priority 1 = -o wide.
COLUMNS = (
    Column("Name", format="name", description="Name must be unique within a namespace."),
    Column("Status", description="The status of the node"),
    Column("Roles", description="The roles of the node"),
    Column("Age", description="CreationTimestamp is when this object was created."),
    Column("Version", description="Kubelet Version reported by the node."),
    Column("Internal-IP", priority=1, description="List of addresses reachable to the node."),
    Column("External-IP", priority=1, description="List of addresses reachable to the node."),
    Column("OS-Image", priority=1, description="OS Image reported by the node."),
    Column("Kernel-Version", priority=1, description="Kernel Version reported by the node."),
    Column(
        "Container-Runtime",
        priority=1,
        description="ContainerRuntime Version reported by the node.",
    ),
)

_ROLE_PREFIX = "node-role.kubernetes.io/"
# The Lease the kubelet renews every 10 s, holding it for 40 s.
LEASE_DURATION = 40


def node_roles(labels: Mapping[str, str]) -> list[str]:
    """findNodeRoles: ``node-role.kubernetes.io/<role>`` keys and ``kubernetes.io/role``."""
    roles = set()
    for key, value in labels.items():
        if key.startswith(_ROLE_PREFIX) and key[len(_ROLE_PREFIX) :]:
            roles.add(key[len(_ROLE_PREFIX) :])
        elif key == "kubernetes.io/role" and value:
            roles.add(value)
    return sorted(roles)


def _address(status: Mapping[str, Any], kind: str) -> str:
    for address in status.get("addresses") or []:
        if address.get("type") == kind:
            return str(address.get("address", ""))
    return "<none>"


def node_cells(obj: Mapping[str, Any], now: float) -> list[Any]:
    """One row of ``kubectl get nodes -o wide``, as printNode renders it."""
    metadata = obj.get("metadata") or {}
    spec = obj.get("spec") or {}
    status = obj.get("status") or {}
    words = []
    for condition in status.get("conditions") or []:
        if condition.get("type") == "Ready":
            words.append("Ready" if condition.get("status") == "True" else "NotReady")
    if not words:
        words.append("Unknown")
    if spec.get("unschedulable"):
        words.append("SchedulingDisabled")
    info = status.get("nodeInfo") or {}
    return [
        metadata.get("name", ""),
        ",".join(words),
        ",".join(node_roles(metadata.get("labels") or {})) or "<none>",
        age_of(metadata.get("creationTimestamp"), now),
        info.get("kubeletVersion", ""),
        _address(status, "InternalIP"),
        _address(status, "ExternalIP"),
        info.get("osImage") or "<unknown>",
        info.get("kernelVersion") or "<unknown>",
        info.get("containerRuntimeVersion") or "<unknown>",
    ]


def _selectable(obj: Mapping[str, Any]) -> dict[str, Any]:
    # An unset unschedulable is false to a selector, as in the API server's field set.
    spec = obj.get("spec") or {}
    return {**obj, "spec": {**spec, "unschedulable": bool(spec.get("unschedulable"))}}


def _node(request: web.Request) -> dict[str, Any]:
    status = request.app[DEPS].node
    node = status.node() if status is not None else None
    if node is None:
        raise StatusError(503, "the node's status is not known yet")
    return node


def _matches(request: web.Request, node: Mapping[str, Any]) -> bool:
    try:
        fields = request.query.getall("fieldSelector", [])
        labels = request.query.getall("labelSelector", [])
    except (UnicodeError, ValueError):
        raise StatusError(400, "the query string cannot be decoded") from None
    field_reqs = parse_field_selector(fields[0], FIELDS) if fields else []
    label_reqs = parse_label_selector(labels[0]) if labels else []
    selectable = _selectable(node)
    return all(r.matches(selectable, FIELDS) for r in field_reqs) and matches_labels(
        label_reqs, (node.get("metadata") or {}).get("labels") or {}
    )


def _body(request: web.Request, items: list[dict[str, Any]], version: str, *, one: bool) -> bytes:
    table = wants_table(request)
    if table is not None:
        now = time.time()
        return table_bytes(
            COLUMNS,
            ((node_cells(obj, now), obj) for obj in items),
            include=include_object(request),
            version=table,
            resource_version="" if one else version,
        )
    if one:
        return json.dumps(items[0], separators=(",", ":")).encode()
    envelope = {
        "kind": "NodeList",
        "apiVersion": "v1",
        "metadata": {"resourceVersion": version},
        "items": items,
    }
    return json.dumps(envelope, separators=(",", ":")).encode()


async def _send(request: web.Request, body: bytes) -> web.StreamResponse:
    return await send_body(
        request, body, content_type="application/json", timeout=request.app[LIMITS].write_timeout
    )


async def list_nodes(request: web.Request) -> web.StreamResponse:
    try:
        watch = params.is_watch(request.query) or request.path.startswith("/api/v1/watch/")
        timeout = params.timeout_seconds(request.query)
        since = resource_version(request.query) if watch else None
    except (UnicodeError, ValueError):
        raise StatusError(400, "the query string cannot be decoded") from None
    node = _node(request)
    if watch:
        return await watch_nodes(request, timeout, since)
    items = [node] if _matches(request, node) else []
    version = node["metadata"]["resourceVersion"]
    return await _send(request, _body(request, items, version, one=False))


async def get_node(request: web.Request) -> web.StreamResponse:
    node = _node(request)
    name = request.match_info["name"]
    if name != node["metadata"]["name"]:
        raise StatusError(404, f"nodes {quoted(name)} not found")
    return await _send(request, _body(request, [node], "", one=True))


async def watch_nodes(
    request: web.Request, timeout: int | None, since: int | None
) -> web.StreamResponse:
    """From no version, the node as ADDED; from a version (kubectl's list's), nothing
    until the node changes. Then MODIFIED at each change.

    Only the latest node is kept: a watch from an older version gets it as one
    MODIFIED, the intermediate states merged, which leaves a client where each
    would have. A version newer than the node's is from an earlier run of the
    agent: 410 Expired, and the client lists again.
    """
    status = request.app[DEPS].node
    assert status is not None
    limits = request.app[LIMITS]
    with request.app[WATCH_SLOTS].hold():
        response = web.StreamResponse(headers={"Content-Type": "application/json"})
        response.enable_chunked_encoding()
        stream = BoundedStream(request, response, limits.write_timeout)
        if not await stream.prepare():
            return response
        if since is not None and since > status.version:
            gone = status_bytes(
                410,
                f"too large resource version: {since}, current: {status.version} "
                "(the agent restarted since); list again, then watch",
            )
            if await stream.write(b'{"type":"ERROR","object":' + gone + b"}\n"):
                await stream.finish()
            return response
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout if timeout else None
        sent = since or 0
        kind = b"ADDED" if since is None else b"MODIFIED"
        while True:
            node = status.node()
            if node is not None and status.version != sent:
                sent = status.version
                line = _watch_line(request, kind, node)
                kind = b"MODIFIED"
                if line is not None and not await stream.write(line):
                    return response
                continue  # it may have changed again while we wrote
            try:
                async with asyncio.timeout_at(deadline):
                    await status.changed()
            except TimeoutError:
                break
            if status.closed:
                break
        await stream.finish()
        return response


def _watch_line(request: web.Request, kind: bytes, node: dict[str, Any]) -> bytes | None:
    if not _matches(request, node):
        return None
    body = _body(request, [node], "", one=True)
    return b'{"type":"' + kind + b'","object":' + body + b"}\n"


async def get_lease(request: web.Request) -> web.StreamResponse:
    """The node Lease, as the kubelet renews it, so ``describe node`` shows its RenewTime."""
    node = _node(request)
    name = request.match_info["name"]
    if name != node["metadata"]["name"]:
        raise StatusError(404, f"leases.coordination.k8s.io {quoted(name)} not found")
    status = request.app[DEPS].node
    assert status is not None
    lease = {
        "kind": "Lease",
        "apiVersion": "coordination.k8s.io/v1",
        "metadata": {
            "name": name,
            "namespace": "kube-node-lease",
            "resourceVersion": node["metadata"]["resourceVersion"],
            "creationTimestamp": node["metadata"]["creationTimestamp"],
            "ownerReferences": [
                {
                    "apiVersion": "v1",
                    "kind": "Node",
                    "name": name,
                    "uid": node["metadata"]["uid"],
                }
            ],
        },
        "spec": {
            "holderIdentity": name,
            "leaseDurationSeconds": LEASE_DURATION,
            "renewTime": rfc3339_micro(status.renewed),
        },
    }
    return await _send(request, json.dumps(lease, separators=(",", ":")).encode())


ROUTES = (
    ("/api/v1/nodes", list_nodes),
    ("/api/v1/watch/nodes", list_nodes),
    ("/api/v1/nodes/{name}", get_node),
    ("/apis/coordination.k8s.io/v1/namespaces/kube-node-lease/leases/{name}", get_lease),
)


def add_routes(app: web.Application) -> None:
    for path, handler in ROUTES:
        app.router.add_get(path, handler)
        # kubectl cordon, label, delete...: a v1 Status, not aiohttp's text.
        app.router.add_route("*", path, read_only)

    async def end_watches(app: web.Application) -> None:
        status = app[DEPS].node
        if status is not None:
            status.close()

    app.on_shutdown.append(end_watches)
