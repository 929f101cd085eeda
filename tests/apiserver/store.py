"""The objects of the test API server and the rules of every write, as the real server keeps them.

One global resourceVersion is bumped by every write and stamped on the object written
(a no-op update writes nothing and keeps it, as the real server does); a bounded history
of changes feeds watches from a resourceVersion, and one too old for it is 410 Expired.
The rules are those of the registry strategies for the resources used: a pod is created
Pending with any status in the body dropped; a write to a pod or node ignores ``.status``
and one to ``/status`` changes nothing else; a bound pod deleted with a grace period is
only marked (deletionTimestamp) until deleted again with grace 0. No finalizers, no
garbage collection (deleting a Node leaves its pods), no admission, no defaulting but
the pod's phase and terminationGracePeriodSeconds.

Everything here runs on the server's event loop; ``lock`` lets another thread read.
"""

from __future__ import annotations

import asyncio
import copy
import datetime
import json
import threading
import uuid
from collections import deque
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from minikubelet.server.errors import REASONS
from minikubelet.server.selectors import (
    FieldRequirement,
    LabelRequirement,
    matches_labels,
    parse_field_selector,
    parse_label_selector,
)
from tests.apiserver import schema
from tests.apiserver.patch import PATCH_TYPES, PatchError, apply_patch

Obj = dict[str, Any]


class ApiError(Exception):
    """A refusal, answered as a v1 Status with the real server's reason and wording."""

    def __init__(
        self, code: int, message: str, *, reason: str = "", details: Obj | None = None
    ) -> None:
        super().__init__(message)
        self.code = code
        self.message = message
        self.reason = reason or REASONS.get(code, "Unknown")
        self.details = details

    def status(self) -> Obj:
        body: Obj = {
            "kind": "Status",
            "apiVersion": "v1",
            "metadata": {},
            "status": "Failure",
            "message": self.message,
            "reason": self.reason,
            "code": self.code,
        }
        if self.details is not None:
            body["details"] = self.details
        return body


@dataclass(frozen=True, slots=True)
class Resource:
    plural: str
    kind: str
    # The OpenAPI definition of the type, for validation, patches and timestamps.
    definition: str
    group: str = ""
    namespaced: bool = True
    status: bool = False  # has a status subresource
    writable: bool = True
    short_names: tuple[str, ...] = ()
    # Field selectors beyond metadata.name (and metadata.namespace when namespaced).
    fields: tuple[str, ...] = ()

    @property
    def api_version(self) -> str:
        return f"{self.group}/v1" if self.group else "v1"

    @property
    def qualified(self) -> str:
        """``pods``, ``leases.coordination.k8s.io``: how messages and details name it."""
        return f"{self.plural}.{self.group}" if self.group else self.plural

    def field_table(self) -> dict[str, tuple[str, ...]]:
        names = ["metadata.name", *(["metadata.namespace"] if self.namespaced else [])]
        return {f: tuple(f.split(".")) for f in (*names, *self.fields)}

    def details(self, name: str) -> Obj:
        out: Obj = {"name": name, "kind": self.plural}
        if self.group:
            out["group"] = self.group
        return out


_CORE = "io.k8s.api.core.v1."
RESOURCES = {
    r.qualified: r
    for r in (
        Resource(
            "pods",
            "Pod",
            _CORE + "Pod",
            status=True,
            short_names=("po",),
            fields=("spec.nodeName", "status.phase"),
        ),
        Resource(
            "nodes",
            "Node",
            _CORE + "Node",
            namespaced=False,
            status=True,
            short_names=("no",),
            fields=("spec.unschedulable",),
        ),
        Resource(
            "namespaces",
            "Namespace",
            _CORE + "Namespace",
            namespaced=False,
            writable=False,
            short_names=("ns",),
            fields=("status.phase",),
        ),
        Resource("events", "Event", _CORE + "Event", short_names=("ev",)),
        Resource("leases", "Lease", "io.k8s.api.coordination.v1.Lease", "coordination.k8s.io"),
        Resource("events", "Event", "io.k8s.api.events.v1.Event", "events.k8s.io"),
    )
}
NAMESPACES = ("default", "kube-node-lease", "kube-public", "kube-system")


def find_resource(name: str) -> Resource:
    """By plural (``pods``) or qualified name (``leases.coordination.k8s.io``)."""
    if name in RESOURCES:
        return RESOURCES[name]
    matches = [r for r in RESOURCES.values() if r.plural == name]
    if len(matches) != 1:
        raise KeyError(f"no resource {name!r}")
    return matches[0]


def now_time() -> str:
    return datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


@dataclass(frozen=True, slots=True)
class Change:
    rv: int
    type: str  # ADDED, MODIFIED, DELETED
    resource: Resource
    obj: Obj
    prev: Obj | None


@dataclass(frozen=True, slots=True)
class Rejection:
    """An object the server refused as malformed, so a test can assert there were none."""

    resource: str
    name: str
    object: Any
    errors: list[str]


@dataclass(eq=False)
class Watcher:
    resource: Resource
    namespace: str | None
    labels: list[LabelRequirement]
    fields: list[FieldRequirement]
    # (type, object); None ends the stream.
    queue: asyncio.Queue[tuple[str, Obj] | None] = field(
        default_factory=lambda: asyncio.Queue(maxsize=10_000)
    )
    closed: bool = False

    def selects(self, obj: Obj | None) -> bool:
        if obj is None:
            return False
        meta = obj.get("metadata") or {}
        if self.namespace is not None and meta.get("namespace") != self.namespace:
            return False
        table = self.resource.field_table()
        return all(f.matches(obj, table) for f in self.fields) and matches_labels(
            self.labels, meta.get("labels") or {}
        )

    def offer(self, change: Change) -> None:
        """Queue the change as this watch sees it: an object leaving the selection is
        DELETED to it, one entering it ADDED."""
        if self.closed or change.resource != self.resource:
            return
        now, before = self.selects(change.obj), self.selects(change.prev)
        if change.type == "DELETED":
            kind = "DELETED" if now else ""
        elif now:
            kind = "MODIFIED" if before else "ADDED"
        else:
            kind = "DELETED" if before else ""
        if kind:
            self.send(kind, change.obj)

    def send(self, kind: str, obj: Obj) -> None:
        try:
            self.queue.put_nowait((kind, obj))
        except asyncio.QueueFull:
            # A client too slow to read: the real server ends its watch too.
            self.close()

    def close(self) -> None:
        self.closed = True
        while True:
            try:
                self.queue.put_nowait(None)
                return
            except asyncio.QueueFull:
                self.queue.get_nowait()


class Store:
    def __init__(self, *, history: int = 1000) -> None:
        self.lock = threading.RLock()
        self.rv = 0
        self.objects: dict[tuple[str, str, str], Obj] = {}
        self.history: deque[Change] = deque(maxlen=history)
        # Watches from a resourceVersion before this one can no longer be served.
        self.compacted = 0
        self.watchers: set[Watcher] = set()
        self.rejected: list[Rejection] = []
        namespaces = RESOURCES["namespaces"]
        for ns in NAMESPACES:
            meta = {
                "name": ns,
                "labels": {"kubernetes.io/metadata.name": ns},
                "uid": str(uuid.uuid4()),
                "creationTimestamp": now_time(),
            }
            obj = {"metadata": meta, "spec": {"finalizers": ["kubernetes"]}}
            obj["status"] = {"phase": "Active"}
            self._admit(namespaces, obj)

    # --- reads -----------------------------------------------------------------------

    def get(self, res: Resource, namespace: str | None, name: str) -> Obj:
        with self.lock:
            found = self.objects.get((res.qualified, namespace or "", name))
            if found is None:
                raise ApiError(
                    404, f'{res.qualified} "{name}" not found', details=res.details(name)
                )
            return copy.deepcopy(found)

    def select(
        self, res: Resource, namespace: str | None, *, labels: str = "", fields: str = ""
    ) -> tuple[list[Obj], str]:
        """The selected objects, by namespace and name, and the current resourceVersion."""
        watcher = self.watcher(res, namespace, labels=labels, fields=fields)
        with self.lock:
            found = [
                copy.deepcopy(obj)
                for (kind, _, _), obj in sorted(self.objects.items())
                if kind == res.qualified and watcher.selects(obj)
            ]
            return found, str(self.rv)

    def watcher(
        self, res: Resource, namespace: str | None, *, labels: str = "", fields: str = ""
    ) -> Watcher:
        return Watcher(
            res,
            namespace,
            parse_label_selector(labels) if labels else [],
            parse_field_selector(fields, res.field_table()) if fields else [],
        )

    def watch(self, watcher: Watcher, resource_version: str) -> None:
        """Register ``watcher``, queued first with what it missed since ``resource_version``
        (every selected object as ADDED when it is "" or "0")."""
        with self.lock:
            if resource_version in ("", "0"):
                for (kind, _, _), obj in sorted(self.objects.items()):
                    if kind == watcher.resource.qualified and watcher.selects(obj):
                        watcher.send("ADDED", copy.deepcopy(obj))
            else:
                try:
                    since = int(resource_version)
                except ValueError:
                    raise ApiError(400, f"invalid resource version: {resource_version!r}") from None
                if since < self.compacted:
                    expired = ApiError(410, f"too old resource version: {since} ({self.compacted})")
                    watcher.send("ERROR", expired.status())
                    watcher.close()
                    return
                for change in self.history:
                    if change.rv > since:
                        watcher.offer(change)
            self.watchers.add(watcher)

    def unwatch(self, watcher: Watcher) -> None:
        with self.lock:
            self.watchers.discard(watcher)

    def close_watchers(self) -> None:
        with self.lock:
            for watcher in self.watchers:
                watcher.close()
            self.watchers.clear()

    # --- writes ----------------------------------------------------------------------

    def create(self, res: Resource, namespace: str | None, body: Any) -> Obj:
        self._writable(res)
        if not isinstance(body, dict):
            raise ApiError(400, "the body of the request must be an object")
        obj = copy.deepcopy(body)
        meta = obj.setdefault("metadata", {})
        if not isinstance(meta, dict):
            raise ApiError(400, "metadata: expected an object")
        self._check_kind(res, obj)
        if res.namespaced:
            assert namespace is not None
            self._namespace_exists(namespace)
            if meta.get("namespace", namespace) != namespace:
                raise ApiError(
                    400,
                    "the namespace of the provided object does not match the namespace sent "
                    "on the request",
                )
            meta["namespace"] = namespace
        if not meta.get("name") and meta.get("generateName"):
            meta["name"] = f"{meta['generateName']}{uuid.uuid4().hex[:5]}"
        name = meta.get("name")
        if not isinstance(name, str) or not name:
            raise self._invalid(
                res,
                "",
                obj,
                [("metadata.name", "Required value: name or generateName is required")],
            )
        for system in ("deletionTimestamp", "deletionGracePeriodSeconds", "resourceVersion"):
            meta.pop(system, None)
        meta["uid"] = str(uuid.uuid4())
        meta["creationTimestamp"] = now_time()
        if res.plural == "pods" and not res.group:
            # The pod strategy's PrepareForCreate: whatever status was sent is dropped.
            obj["status"] = {"phase": "Pending"}
            spec = obj.get("spec")
            if isinstance(spec, dict):
                spec.setdefault("terminationGracePeriodSeconds", 30)
        with self.lock:
            if (res.qualified, namespace or "", name) in self.objects:
                raise ApiError(
                    409,
                    f'{res.qualified} "{name}" already exists',
                    reason="AlreadyExists",
                    details=res.details(name),
                )
            return self._admit(res, obj)

    def replace(
        self, res: Resource, namespace: str | None, name: str, body: Any, *, subresource: str = ""
    ) -> Obj:
        self._writable(res)
        current = self.get(res, namespace, name)
        if not isinstance(body, dict) or not isinstance(body.get("metadata", {}), dict):
            raise ApiError(400, "the body of the request must be an object with metadata")
        meta = body.get("metadata") or {}
        if meta.get("name", name) != name:
            raise ApiError(
                400,
                f"the name of the object ({meta.get('name')}) does not match the name on the "
                f"URL ({name})",
            )
        if not meta.get("resourceVersion"):
            raise self._invalid(
                res,
                name,
                body,
                [
                    (
                        "metadata.resourceVersion",
                        "Invalid value: 0x0: must be specified for an update",
                    )
                ],
            )
        return self._update(res, current, copy.deepcopy(body), subresource)

    def patch(
        self,
        res: Resource,
        namespace: str | None,
        name: str,
        body: Any,
        content_type: str,
        *,
        subresource: str = "",
    ) -> Obj:
        self._writable(res)
        if content_type not in PATCH_TYPES:
            raise ApiError(
                415,
                "the body of the request was in an unknown format - accepted media types "
                "include: " + ", ".join(PATCH_TYPES),
            )
        current = self.get(res, namespace, name)
        try:
            patched = apply_patch(current, body, content_type, schema.definition(res.definition))
        except PatchError as e:
            raise ApiError(e.code, str(e)) from None
        if not isinstance(patched, dict) or not isinstance(patched.get("metadata"), dict):
            raise ApiError(422, "the patched object is not an object with metadata")
        patched["metadata"].setdefault("resourceVersion", current["metadata"]["resourceVersion"])
        return self._update(res, current, patched, subresource)

    def delete(
        self, res: Resource, namespace: str | None, name: str, options: Obj, grace: int | None
    ) -> Obj:
        """Remove the object, or only mark a bound pod that is given a grace period."""
        self._writable(res)
        with self.lock:
            current = self.get(res, namespace, name)
            meta = current["metadata"]
            pre = options.get("preconditions") or {}
            if pre.get("uid") and pre["uid"] != meta["uid"]:
                raise self._conflict(
                    res,
                    name,
                    f"the UID in the precondition ({pre['uid']}) does not match the UID in "
                    f"record ({meta['uid']}). The object might have been deleted and then "
                    "recreated",
                )
            rv = pre.get("resourceVersion")
            if rv and rv != meta["resourceVersion"]:
                raise self._conflict(
                    res,
                    name,
                    f"the ResourceVersion in the precondition ({rv}) does not match the "
                    f"ResourceVersion in record ({meta['resourceVersion']}). The object might "
                    "have been modified",
                )
            if options.get("gracePeriodSeconds") is not None:
                grace = int(options["gracePeriodSeconds"])
            if res.qualified == "pods":
                spec, status = current.get("spec") or {}, current.get("status") or {}
                if grace is None:
                    grace = meta.get("deletionGracePeriodSeconds")
                if grace is None:
                    grace = int(spec.get("terminationGracePeriodSeconds", 30))
                # An unscheduled or finished pod has nothing to stop: it goes at once.
                if not spec.get("nodeName") or status.get("phase") in ("Succeeded", "Failed"):
                    grace = 0
                if grace > 0:
                    held = meta.get("deletionGracePeriodSeconds")
                    if held is not None and held <= grace:
                        return current
                    prev = copy.deepcopy(current)
                    stamp = datetime.datetime.now(datetime.UTC) + datetime.timedelta(seconds=grace)
                    meta["deletionTimestamp"] = stamp.strftime("%Y-%m-%dT%H:%M:%SZ")
                    meta["deletionGracePeriodSeconds"] = grace
                    return self._commit(res, "MODIFIED", current, prev)
            del self.objects[(res.qualified, namespace or "", name)]
            return self._commit(res, "DELETED", current, current)

    # --- the rules -------------------------------------------------------------------

    def _update(self, res: Resource, current: Obj, candidate: Obj, subresource: str) -> Obj:
        name = current["metadata"]["name"]
        meta = candidate.get("metadata") or {}
        if meta.get("uid") and meta["uid"] != current["metadata"]["uid"]:
            raise self._conflict(
                res,
                name,
                f"Precondition failed: UID in precondition: {meta['uid']}, UID in object meta: "
                f"{current['metadata']['uid']}",
                plain=True,
            )
        if subresource == "status":
            new = copy.deepcopy(current)
            new["status"] = candidate.get("status")
            if new["status"] is None:
                del new["status"]
        else:
            new = candidate
            self._check_kind(res, new)
            kept = ("uid", "creationTimestamp", "deletionTimestamp", "deletionGracePeriodSeconds")
            for key in ("name", "namespace", *kept):
                if key in current["metadata"]:
                    meta[key] = current["metadata"][key]
                else:
                    meta.pop(key, None)
            if res.status:  # the main resource never writes status
                new.pop("status", None)
                if "status" in current:
                    new["status"] = current["status"]
        with self.lock:
            if (
                meta.get("resourceVersion", "")
                != self._stored(res, current)["metadata"]["resourceVersion"]
            ):
                raise self._conflict(
                    res,
                    name,
                    "the object has been modified; please apply your changes to the latest "
                    "version and try again",
                )
            new["metadata"]["resourceVersion"] = current["metadata"]["resourceVersion"]
            if new == current:  # a no-op: nothing written, no new version, no event
                return current
            return self._admit(res, new, prev=current)

    def _admit(self, res: Resource, obj: Obj, *, prev: Obj | None = None) -> Obj:
        """Validate ``obj``, then store it with the next resourceVersion."""
        obj["apiVersion"], obj["kind"] = res.api_version, res.kind
        name = str(obj["metadata"].get("name", ""))
        try:
            normalized = schema.normalize_times(obj, schema.definition(res.definition))
        except schema.DecodeError as e:
            self._reject(res, name, obj, [str(e)])
            raise ApiError(
                400,
                f'{res.kind} in version "v1" cannot be handled as a {res.kind}: {e}',
            ) from None
        errors = schema.invalid_fields(normalized)
        if errors:
            raise self._invalid(res, name, obj, errors)
        with self.lock:
            return self._commit(res, "MODIFIED" if prev else "ADDED", normalized, prev)

    def _commit(self, res: Resource, kind: str, obj: Obj, prev: Obj | None) -> Obj:
        self.rv += 1
        obj["metadata"]["resourceVersion"] = str(self.rv)
        meta = obj["metadata"]
        key = (res.qualified, meta.get("namespace", ""), meta["name"])
        if kind != "DELETED":
            self.objects[key] = obj
        if len(self.history) == self.history.maxlen:
            self.compacted = self.history[0].rv
        change = Change(self.rv, kind, res, copy.deepcopy(obj), prev)
        self.history.append(change)
        for watcher in list(self.watchers):
            watcher.offer(change)
        return copy.deepcopy(obj)

    def _stored(self, res: Resource, obj: Obj) -> Obj:
        meta = obj["metadata"]
        found = self.objects.get((res.qualified, meta.get("namespace", ""), meta["name"]))
        if found is None:  # deleted meanwhile
            raise ApiError(404, f'{res.qualified} "{meta["name"]}" not found')
        return found

    def _reject(self, res: Resource, name: str, obj: Any, errors: Iterable[str]) -> None:
        with self.lock:
            self.rejected.append(Rejection(res.qualified, name, copy.deepcopy(obj), list(errors)))

    def _invalid(
        self, res: Resource, name: str, obj: Any, errors: list[tuple[str, str]]
    ) -> ApiError:
        texts = [f"{where}: {why}" for where, why in errors]
        self._reject(res, name, obj, texts)
        listed = texts[0] if len(texts) == 1 else "[" + ", ".join(texts) + "]"
        details = res.details(name)
        details["kind"] = res.kind
        details["causes"] = [
            {"reason": "FieldValueInvalid", "message": why, "field": where} for where, why in errors
        ]
        return ApiError(422, f'{res.kind} "{name}" is invalid: {listed}', details=details)

    def _conflict(self, res: Resource, name: str, why: str, *, plain: bool = False) -> ApiError:
        message = (
            why if plain else f'Operation cannot be fulfilled on {res.qualified} "{name}": {why}'
        )
        return ApiError(409, message, reason="Conflict", details=res.details(name))

    def _writable(self, res: Resource) -> None:
        if not res.writable:
            raise ApiError(405, f"the server does not allow this method on {res.qualified}")

    def _check_kind(self, res: Resource, obj: Obj) -> None:
        kind, version = obj.get("kind", res.kind), obj.get("apiVersion", res.api_version)
        if (kind, version) != (res.kind, res.api_version):
            raise ApiError(
                400,
                f"the API version in the data ({version}) does not match the expected API "
                f"version ({res.api_version}) or kind ({json.dumps(kind)}) is not {res.kind}",
            )

    def _namespace_exists(self, namespace: str) -> None:
        if ("namespaces", "", namespace) not in self.objects:
            raise ApiError(
                404,
                f'namespaces "{namespace}" not found',
                details={"name": namespace, "kind": "namespaces"},
            )
