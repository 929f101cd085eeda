"""Mirror pods: each static pod shown on the API server as a read-only Pod, with
its status, as the kubelet's mirror client and status manager keep them.

Three loops, none waiting on another:

- The reflector lists the pods bound to this node (``spec.nodeName``) and
  watches from that list, keeping what the decisions need of each (uid,
  ``config.mirror``, deletion, status, resourceVersion). It lists again on an
  expired watch or a broken connection. A restarted agent finds its mirrors
  here and adopts them. It is also the one thing the status is diffed against:
  no GET before a write.
- The StatusManager feed only *marks* the pod's name; a ``Slots`` pass per name
  then decides (``mirrordiff.decide``) and sends at most one request: create,
  delete, or the status patch. Changes during a request fold into one more pass
  with the newest state, so a burst is one request per pod.
- Every ``RESYNC_PERIOD`` every name is marked again; a pass that finds nothing
  to do costs a dictionary comparison.

The API server being down, slow or refusing only delays this: each name backs
off on its own (jittered, ``Retry-After`` honoured), and a relist after an
outage marks every name, so the server ends with the node's current state.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Protocol

from prometheus_client import CollectorRegistry, Counter, Histogram

from minikubelet.cluster.api import STRATEGIC_MERGE_PATCH, ApiError, KubeApi
from minikubelet.cluster.health import describe
from minikubelet.cluster.mirrordiff import (
    Action,
    MirrorView,
    StaticView,
    decide,
    mirror_body,
    pod_status_patch,
    status_patch,
)
from minikubelet.cluster.retry import Retry
from minikubelet.cluster.slots import Slots
from minikubelet.events import EventRecorder, EventType, ObjectRef
from minikubelet.model import naming
from minikubelet.model.spec import PodUID
from minikubelet.status.manager import PodChange, StatusManager, WatchType, initial_status

log = logging.getLogger(__name__)

Key = tuple[str, str]

# The kubelet's status manager resyncs every 10 s; its housekeeping (orphaned
# mirrors) every 2 s: a name is checked again at least this often.
RESYNC_PERIOD = 10.0
# How often the sources' readiness is looked at: mirrors without a static pod
# are deleted this soon after every source has been read once.
READY_CHECK_PERIOD = 1.0
# The server ends each watch after this long (client-go picks 5-10 min at random,
# so that a fleet's watches do not all end together).
WATCH_TIMEOUT = (300, 600)
# Per-name back-off: quick first tries (a 409 is usually a race the watch
# settles), capped so a pod's state reaches a server that is back within this.
NAME_RETRY_INITIAL = 0.5
NAME_RETRY_CAP = 10.0
DELAY_BUCKETS = (0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0)


class NodeUidSource(Protocol):
    """The Node's uid, once the node part has registered it (mirrors name it as owner)."""

    async def wait(self) -> str: ...


@dataclass(slots=True)
class Mirror:
    """What the reflector keeps of a pod bound to this node."""

    uid: str
    hash: str | None
    deleting: bool
    status: dict[str, Any]
    resource_version: str

    @classmethod
    def of(cls, obj: dict[str, Any]) -> tuple[Key, Mirror] | None:
        metadata = obj.get("metadata")
        if not isinstance(metadata, dict):
            return None
        annotations = metadata.get("annotations") or {}
        mirror_hash = annotations.get(naming.CONFIG_MIRROR)
        status = obj.get("status")
        key = (str(metadata.get("namespace") or ""), str(metadata.get("name") or ""))
        return key, cls(
            uid=str(metadata.get("uid") or ""),
            hash=mirror_hash if isinstance(mirror_hash, str) else None,
            deleting=metadata.get("deletionTimestamp") is not None,
            status=status if isinstance(status, dict) else {},
            resource_version=str(metadata.get("resourceVersion") or ""),
        )

    def view(self) -> MirrorView:
        return MirrorView(self.uid, self.hash, self.deleting)


def _newer(new: Mirror, old: Mirror) -> bool:
    """Whether ``new`` is a later state than the cached ``old``: a watch event can
    arrive after a write's answer already told us more. resourceVersions are
    compared as numbers when both are (etcd's are); otherwise any change counts."""
    if new.uid != old.uid:
        return True
    try:
        return int(new.resource_version) > int(old.resource_version)
    except ValueError:
        return new.resource_version != old.resource_version


class MirrorMetrics:
    def __init__(self, registry: CollectorRegistry | None) -> None:
        self.status_writes = Counter(
            "minikubelet_mirror_pod_status_writes_total",
            "Status patches of mirror pods, by result.",
            ["result"],
            registry=registry,
        )
        self.writes = Counter(
            "minikubelet_mirror_pod_writes_total",
            "Creations and deletions of mirror pods, by operation and result.",
            ["operation", "result"],
            registry=registry,
        )
        self.coalesced = Counter(
            "minikubelet_mirror_pod_changes_coalesced_total",
            "Pod changes folded into a request already due for the same pod.",
            registry=registry,
        )
        self.lists = Counter(
            "minikubelet_mirror_pod_lists_total",
            "Lists of this node's pods (the first, and each after a broken watch).",
            registry=registry,
        )
        self.delay = Histogram(
            "minikubelet_mirror_pod_sync_delay_seconds",
            "From a pod's change on the node to the server holding it.",
            buckets=DELAY_BUCKETS,
            registry=registry,
        )


def _result(error: ApiError | None) -> str:
    if error is None:
        return "success"
    if error.code == 0:
        return "no_answer"
    if error.conflict:
        return "conflict"
    if error.code == 429:
        return "throttled"
    if error.code >= 500:
        return "server_error"
    if error.code in (401, 403):
        return "unauthorized"
    return "refused"


class MirrorPods:
    def __init__(
        self,
        api: KubeApi,
        *,
        node_name: str,
        status: StatusManager,
        recorder: EventRecorder,
        node_uid: NodeUidSource,
        sources_ready: Callable[[], bool],
        registry: CollectorRegistry | None = None,
        resync_period: float = RESYNC_PERIOD,
    ) -> None:
        self.api = api
        self.node_name = node_name
        self.status = status
        self.recorder = recorder
        self.node_uid = node_uid
        self.sources_ready = sources_ready
        self.metrics = MirrorMetrics(registry)
        self.resync_period = resync_period
        self.mirrors: dict[Key, Mirror] = {}
        # Static pods by full name: normally one uid, two while a changed manifest's
        # old pod stops and its new one starts.
        self.statics: dict[Key, dict[PodUID, None]] = {}
        # Set once the first list is in: before it, nothing is known of the server.
        self.synced = asyncio.Event()
        # Cleared when a request got no answer; set by the next list that did: a
        # name waiting out a back-off for an unreachable server tries again then.
        self._answering = asyncio.Event()
        self.slots: Slots[Key] = Slots(
            self._sync,
            wait=self._wait,
            retry=lambda: Retry(initial=NAME_RETRY_INITIAL, cap=NAME_RETRY_CAP),
            on_settled=lambda _key, seconds: self.metrics.delay.observe(seconds),
            on_failure=self._failed,
        )

    # --- the loops ---

    async def run(self) -> None:
        try:
            async with asyncio.TaskGroup() as group:
                group.create_task(self._reflect())
                group.create_task(self._follow_status())
                group.create_task(self._resync())
                group.create_task(self.slots.crashed())
        finally:
            await self.slots.close()

    async def _reflect(self) -> None:
        selector = f"spec.nodeName={self.node_name}"
        retry = Retry()
        resource_version: str | None = None
        while True:
            try:
                if resource_version is None:
                    listing = await self.api.call(
                        "list", self.api.core.list_pod_for_all_namespaces, field_selector=selector
                    )
                    resource_version = self._replace(listing)
                async for event in self.api.watch(
                    self.api.core.list_pod_for_all_namespaces,
                    field_selector=selector,
                    resource_version=resource_version,
                    allow_watch_bookmarks=True,
                    timeout_seconds=random.randint(*WATCH_TIMEOUT),
                ):
                    resource_version = self._apply(event) or resource_version
                    # Reset only by a watch that works: a list that succeeds before a
                    # watch that fails at once would otherwise relist in a tight loop.
                    retry.reset()
                # The server ended the watch (its timeout): go on from where it was.
            except ApiError as e:
                if e.code == 410:
                    log.info("mirror pods: watch expired, listing again")
                    resource_version = None
                    continue
                log.warning("mirror pods: list/watch of node %s: %s", self.node_name, e)
                # A broken watch may have missed events: list again, after a pause.
                resource_version = None
                await asyncio.sleep(retry.next_delay(e))

    def _replace(self, listing: dict[str, Any]) -> str:
        self.metrics.lists.inc()
        mirrors: dict[Key, Mirror] = {}
        for obj in listing.get("items") or []:
            found = Mirror.of(obj)
            if found is not None:
                mirrors[found[0]] = found[1]
        gone = self.mirrors.keys() - mirrors.keys()
        self.mirrors = mirrors
        self.synced.set()
        self._answering.set()
        # After a list, every name is checked: what changed while the server was
        # away, or while no watch ran, is only known by comparing.
        self.slots.mark_all(self._names() | gone)
        return str((listing.get("metadata") or {}).get("resourceVersion") or "")

    def _apply(self, event: dict[str, Any]) -> str | None:
        obj = event["object"]
        if event.get("type") == "BOOKMARK":
            return str((obj.get("metadata") or {}).get("resourceVersion") or "") or None
        found = Mirror.of(obj)
        if found is None:
            return None
        key, mirror = found
        old = self.mirrors.get(key)
        if event.get("type") == "DELETED":
            if old is not None and old.uid == mirror.uid:
                del self.mirrors[key]
                self._mark(key)
        elif old is None or _newer(mirror, old):
            self.mirrors[key] = mirror
            self._mark(key)
        return mirror.resource_version or None

    async def _follow_status(self) -> None:
        while True:
            feed = self.status.subscribe()
            self.statics.clear()
            for pod, _ in list(self.status.pods()):
                self._track(pod.uid, (pod.namespace, pod.name), pod.annotations)
            self.slots.mark_all(self._names())
            while (change := await feed.next()) is not None:
                self._changed(change)
            # Overrun (fell too far behind): subscribe again and start from a snapshot.
            log.warning("mirror pods: the pod status feed overran; reading every pod again")

    def _track(self, uid: PodUID, key: Key, annotations: Any) -> None:
        if naming.CONFIG_HASH in annotations:
            self.statics.setdefault(key, {})[uid] = None

    def _changed(self, change: PodChange) -> None:
        """Bounded work per change: the feed of every pod's status never waits on the API."""
        key = (change.pod.namespace, change.pod.name)
        if change.type is WatchType.DELETED:
            uids = self.statics.get(key)
            if uids is not None:
                uids.pop(change.uid, None)
                if not uids:
                    del self.statics[key]
        else:
            self._track(change.uid, key, change.pod.annotations)
        self._mark(key)

    async def _resync(self) -> None:
        loop = asyncio.get_running_loop()
        was_ready = False
        last = loop.time()
        while True:
            await asyncio.sleep(READY_CHECK_PERIOD)
            ready = self.sources_ready()
            if (ready and not was_ready) or loop.time() - last >= self.resync_period:
                last = loop.time()
                self.slots.mark_all(self._names())
            was_ready = ready

    def _names(self) -> set[Key]:
        return set(self.statics) | {k for k, m in self.mirrors.items() if m.hash is not None}

    def _mark(self, key: Key) -> None:
        if self.slots.busy(key):
            self.metrics.coalesced.inc()
        self.slots.mark(key)

    async def _wait(self, delay: float, error: ApiError | None) -> None:
        if error is not None and error.code == 0:
            # No answer: the reflector's next list says when the server is back.
            self._answering.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._answering.wait(), delay)
            return
        await asyncio.sleep(delay)

    # --- one name ---

    def _static(self, key: Key) -> tuple[PodUID, StaticView] | None:
        """The static pod the mirror of ``key`` stands for: the one wanted, else one
        still stopping."""
        found: tuple[PodUID, StaticView] | None = None
        for uid in self.statics.get(key, ()):
            entry = self.status.pod_of(uid)
            if entry is None:
                continue
            pod, deletion = entry
            view = StaticView(pod.annotations.get(naming.CONFIG_HASH, ""), deletion is not None)
            if not view.deleting:
                return uid, view
            found = uid, view
        return found

    async def _sync(self, key: Key) -> bool:
        """One step for one name; True if a request was sent (there may be more to do)."""
        if not self.synced.is_set():
            return False
        static = self._static(key)
        mirror = self.mirrors.get(key)
        action = decide(
            static[1] if static else None,
            mirror.view() if mirror else None,
            sources_ready=self.sources_ready(),
        )
        if action is Action.NOTHING:
            return False
        if action is Action.FOREIGN:
            assert static is not None
            self._event(
                key,
                static[0],
                "FailedMirrorPod",
                f"a pod named {key[1]} exists on the API server and is not a mirror pod; "
                "it is left alone",
            )
            return False
        if action is Action.DELETE or action is Action.REPLACE:
            assert mirror is not None
            await self._delete(key, mirror)
            return True
        assert static is not None
        if action is Action.CREATE:
            await self._create(key, static[0])
            return True
        assert mirror is not None
        return await self._write_status(key, static[0], mirror)

    async def _create(self, key: Key, uid: PodUID) -> None:
        # The owner reference needs the Node's uid: creation waits for its registration.
        node_uid = await self.node_uid.wait()
        obj = self.status.pod_api_object(uid)
        if obj is None:
            return
        body = mirror_body(obj, node_name=self.node_name, node_uid=node_uid)
        try:
            answer = await self.api.call(
                "create", self.api.core.create_namespaced_pod, key[0], body
            )
        except ApiError as e:
            if not e.already_exists:
                self.metrics.writes.labels("create", _result(e)).inc()
                raise
            # Made by an earlier run, or a watch event not yet in: read it, and the
            # next pass decides whether it is the right one.
            answer = await self.api.call("get", self.api.core.read_namespaced_pod, key[1], key[0])
            self.metrics.writes.labels("create", "exists").inc()
        else:
            self.metrics.writes.labels("create", "success").inc()
            log.info("mirror pod %s/%s created", *key)
        self._store(answer)

    async def _delete(self, key: Key, mirror: Mirror) -> None:
        try:
            await self.api.call(
                "delete",
                self.api.core.delete_namespaced_pod,
                key[1],
                key[0],
                body={"gracePeriodSeconds": 0, "preconditions": {"uid": mirror.uid}},
            )
        except ApiError as e:
            if not (e.not_found or e.conflict):
                self.metrics.writes.labels("delete", _result(e)).inc()
                raise
            # Gone already, or replaced by someone (the watch brings the new one).
            self.metrics.writes.labels("delete", _result(e)).inc()
        else:
            self.metrics.writes.labels("delete", "success").inc()
            log.info("mirror pod %s/%s deleted (uid %s)", key[0], key[1], mirror.uid)
        current = self.mirrors.get(key)
        if current is not None and current.uid == mirror.uid:
            del self.mirrors[key]

    async def _write_status(self, key: Key, uid: PodUID, mirror: Mirror) -> bool:
        pod_status = self.status.get(uid)
        if pod_status is None or pod_status == initial_status():
            # No status generated yet (the worker's first sync is to come): writing
            # the placeholder would only be undone a moment later, e.g. after a restart.
            return False
        obj = self.status.pod_api_object(uid)
        if obj is None:
            return False
        patch = status_patch(obj["status"], mirror.status)
        if patch is None:
            return False
        log.debug("mirror pod %s/%s: status patch %s", key[0], key[1], patch)
        try:
            answer = await self.api.call(
                "patch",
                self.api.core.patch_namespaced_pod_status,
                key[1],
                key[0],
                pod_status_patch(mirror.uid, patch),
                _content_type=STRATEGIC_MERGE_PATCH,
            )
        except ApiError as e:
            self.metrics.status_writes.labels(_result(e)).inc()
            if e.not_found:
                # Deleted by someone: the next pass creates it again.
                current = self.mirrors.get(key)
                if current is not None and current.uid == mirror.uid:
                    del self.mirrors[key]
                return True
            raise
        self.metrics.status_writes.labels("success").inc()
        self._store(answer)
        return True

    def _store(self, answer: dict[str, Any]) -> None:
        found = Mirror.of(answer)
        if found is None:
            return
        key, mirror = found
        old = self.mirrors.get(key)
        if old is None or _newer(mirror, old):
            self.mirrors[key] = mirror

    def _failed(self, key: Key, error: BaseException) -> None:
        if isinstance(error, ApiError) and (error.code == 0 or error.conflict):
            # Unreachable: the node's event says so once; a conflict is a race the
            # next pass settles.
            return
        static = self._static(key)
        if static is None:
            return
        text = describe(error) if isinstance(error, ApiError) else repr(error)
        self._event(key, static[0], "FailedMirrorPod", f"mirror pod: {text}")

    def _event(self, key: Key, uid: PodUID, reason: str, message: str) -> None:
        self.recorder.record(
            ObjectRef(kind="Pod", name=key[1], namespace=key[0], uid=uid),
            EventType.WARNING,
            reason,
            message,
        )
