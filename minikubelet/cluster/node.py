"""The Node and its Lease on the API server, kept as the kubelet keeps them.

``NodeReporter`` registers the Node (POST, retried forever 100 ms doubling to
7 s; AlreadyExists → GET, reconcile the default labels, adopt its uid) and then
PATCHes ``nodes/{name}/status`` whenever ``NodeStatus.version`` moved since the
last write that succeeded: on a real change, and every 5 minutes since
``NodeStatus`` bumps the version then (the kubelet's nodeStatusReportFrequency).
Heartbeats in between are the Lease's job.

``LeaseRenewer`` keeps ``kube-node-lease/{node}`` as client-go's lease
controller does (component-helpers/apimachinery/lease): every 10 s (+0–4 %)
a PUT of the object the server last returned, with a new ``renewTime``, and no
GET; a conflict fetches the current object and retries, up to 5 tries a round;
a missing Lease is created (GET → 404 → POST, 200 ms doubling to 7 s) owned by
the Node, which is why creation waits for the Node's uid.

Each loop retries on its own and never waits on the other, nor does anything
else wait on them: the API server being down only delays what it is told. A
401 has KubeApi re-read the kubeconfig before the next try (a rotated tokenFile). Answers
that are refusals rather than faults (400, 404, 409, 422, which ``ApiHealth``
counts as a working server) are recorded as Warning events of the node here,
so a Node or Lease the server will not take is visible, not just retried.
"""

from __future__ import annotations

import asyncio
import copy
import logging
import random
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from minikubelet.cluster.api import STRATEGIC_MERGE_PATCH, ApiError, KubeApi
from minikubelet.cluster.retry import Retry
from minikubelet.events import EventRecorder, EventType, ObjectRef
from minikubelet.nodestatus.manager import UPDATE_PERIOD, NodeStatus
from minikubelet.util.timefmt import rfc3339_micro

if TYPE_CHECKING:
    from minikubelet.cluster.reporter import NodeUid

log = logging.getLogger(__name__)

LEASE_NAMESPACE = "kube-node-lease"
# The kubelet's nodeLeaseDurationSeconds, renewed at a quarter of it
# (NodeLeaseRenewIntervalFraction), with wait.JitterUntil's 4 % on top.
LEASE_DURATION_SECONDS = 40
RENEW_INTERVAL = 10.0
RENEW_JITTER = 0.04
# client-go's lease maxUpdateRetries and the kubelet's nodeStatusUpdateRetry.
MAX_TRIES = 5

# The labels the kubelet owns on its Node (updateDefaultLabels): set again at every
# registration when they differ; any other label belongs to the cluster's operators.
DEFAULT_LABELS = (
    "kubernetes.io/hostname",
    "kubernetes.io/os",
    "kubernetes.io/arch",
    "beta.kubernetes.io/os",
    "beta.kubernetes.io/arch",
)


def registration_body(node: Mapping[str, Any]) -> dict[str, Any]:
    """The Node to POST, from the one the local API serves.

    The server assigns uid, resourceVersion and creationTimestamp (a create that
    carries a resourceVersion is refused). The spec stays empty, as the
    kubelet's initialNode leaves it: a pod CIDR on the server is the node IPAM
    controller's to assign, and the local one need not match it.
    """
    metadata = node["metadata"]
    return {
        "apiVersion": "v1",
        "kind": "Node",
        "metadata": {"name": metadata["name"], "labels": dict(metadata.get("labels") or {})},
        "spec": {},
        "status": copy.deepcopy(node["status"]),
    }


def label_patch(wanted: Mapping[str, str], existing: Mapping[str, str] | None) -> dict[str, Any]:
    """The patch of ``metadata.labels`` that makes an existing Node carry the
    kubelet's default labels; ``{}`` when it already does. Labels the kubelet does
    not own, and default labels it has no value for, are left alone."""
    existing = existing or {}
    changed = {
        key: wanted[key]
        for key in DEFAULT_LABELS
        if wanted.get(key) and existing.get(key) != wanted[key]
    }
    return {"metadata": {"labels": changed}} if changed else {}


def status_patch(node: Mapping[str, Any]) -> dict[str, Any]:
    """The strategic-merge patch of ``nodes/{name}/status`` that makes the
    server's status this node's.

    The whole status is sent rather than a diff: a patch that says everything
    is right whatever the server held before (after an outage, after someone
    else's write). Conditions merge by ``type``, so a condition another
    component set (NetworkUnavailable) stays. ``addresses`` is declared to merge
    by ``type`` too, which is wrong for two addresses of one type, so the list is
    replaced whole, as the kubelet's fixupPatchForNodeStatusAddresses does.
    """
    status = copy.deepcopy(dict(node["status"]))
    if "addresses" in status:
        status["addresses"] = [{"$patch": "replace"}, *status["addresses"]]
    return {"status": status}


def owner_reference(node_name: str, uid: str) -> dict[str, str]:
    """The Lease's owner, as the kubelet's setNodeOwnerFunc writes it (no
    ``controller``): deleting the Node lets the garbage collector take the Lease."""
    return {"apiVersion": "v1", "kind": "Node", "name": node_name, "uid": uid}


def new_lease(node_name: str, *, uid: str, now: float) -> dict[str, Any]:
    return {
        "apiVersion": "coordination.k8s.io/v1",
        "kind": "Lease",
        "metadata": {
            "name": node_name,
            "namespace": LEASE_NAMESPACE,
            "ownerReferences": [owner_reference(node_name, uid)],
        },
        "spec": {
            "holderIdentity": node_name,
            "leaseDurationSeconds": LEASE_DURATION_SECONDS,
            "renewTime": rfc3339_micro(now),
        },
    }


def renewed_lease(
    base: Mapping[str, Any], node_name: str, *, uid: str, now: float
) -> dict[str, Any]:
    """A copy of the Lease the server last returned (its resourceVersion makes the
    PUT a compare-and-swap) with a new renewTime and this node as its holder.

    The owner reference is pointed at the Node's current uid: the kubelet only
    sets one when none is there, but a Node registered again here while the
    agent runs has a new uid, and no garbage collector would ever fix it.
    Owners that are not this Node are kept.
    """
    lease = copy.deepcopy(dict(base))
    metadata = lease.setdefault("metadata", {})
    spec = lease.setdefault("spec", {})
    spec["holderIdentity"] = node_name
    spec["leaseDurationSeconds"] = LEASE_DURATION_SECONDS
    spec["renewTime"] = rfc3339_micro(now)
    owners = [
        ref
        for ref in metadata.get("ownerReferences") or []
        if not (ref.get("kind") == "Node" and ref.get("name") == node_name)
    ]
    metadata["ownerReferences"] = [owner_reference(node_name, uid), *owners]
    return lease


def renew_delay(rand: float) -> float:
    """The wait after one renewal round: wait.JitterUntil(10 s, 0.04), sliding."""
    return RENEW_INTERVAL * (1.0 + RENEW_JITTER * rand)


def uid_of(obj: Mapping[str, Any]) -> str:
    uid = (obj.get("metadata") or {}).get("uid")
    if not isinstance(uid, str) or not uid:
        raise ApiError(0, "BadAnswer", "the answer has no metadata.uid")
    return uid


def is_refusal(error: ApiError) -> bool:
    """An answer that ``ApiHealth`` counts as a working server but that means this
    write was not taken: worth an event of its own. Conflicts are not: the loops
    resolve them (a newer object, an existing one) by themselves."""
    return not error.server_fault and error.code not in (401, 403, 409)


@dataclass(frozen=True, slots=True)
class NodeContext:
    """What the node's two loops share: the API, the node's events, time."""

    api: KubeApi
    node_name: str
    recorder: EventRecorder
    node_ref: ObjectRef
    # Wall time: renewTime is read by other machines.
    clock: Callable[[], float]
    sleep: Callable[[float], Awaitable[None]] = asyncio.sleep
    rand: Callable[[], float] = random.random

    async def failed(self, error: ApiError, *, reason: str, doing: str) -> None:
        """After a failed request: make a refusal visible. (A 401 has KubeApi read
        the kubeconfig again, so the next try carries rotated credentials.)"""
        log.debug("node %s: %s: %s", self.node_name, doing, error)
        if is_refusal(error):
            self.recorder.record(
                self.node_ref,
                EventType.WARNING,
                reason,
                f"{doing}: {error.code} {error.reason}: {error.message}",
            )


class NodeReporter:
    """Registers the Node, then keeps its status on the server."""

    def __init__(
        self, ctx: NodeContext, *, node_status: NodeStatus, set_uid: Callable[[str], None]
    ) -> None:
        self.ctx = ctx
        self.node_status = node_status
        self.set_uid = set_uid
        # The NodeStatus version the server holds (None: not known to be current).
        self.written: int | None = None

    async def run(self) -> None:
        # A Node deleted on the server is registered again at once. The kubelet only
        # registers at its start (a deleted Node stays gone until it restarts); here
        # the node would otherwise vanish from the cluster while its pods keep running.
        while True:
            await self.register()
            await self.report()
            log.warning(
                "node %s: deleted on the API server; registering it again", self.ctx.node_name
            )

    async def _current(self) -> tuple[dict[str, Any], int]:
        while (node := self.node_status.node()) is None:
            await self._next_update()
        return node, self.node_status.version

    async def _next_update(self) -> None:
        await self.node_status.changed()
        if self.node_status.closed:
            # Shutting down: changed() no longer waits; the supervisor cancels this soon.
            await self.ctx.sleep(UPDATE_PERIOD)

    async def register(self) -> None:
        """Until the server holds the Node: its uid is then set, and ``written``
        says whether its status still needs a patch."""
        ctx, core = self.ctx, self.ctx.api.core
        retry = Retry(initial=0.1, cap=7.0, random=ctx.rand)
        while True:
            node, version = await self._current()
            try:
                try:
                    answer = await ctx.api.call("create", core.create_node, registration_body(node))
                    # The server keeps a created Node's status; if it did not, patch it.
                    has_status = bool((answer.get("status") or {}).get("conditions"))
                    self.written = version if has_status else None
                    adopted = False
                except ApiError as e:
                    if not e.already_exists:
                        raise
                    answer = await ctx.api.call("get", core.read_node, ctx.node_name)
                    patch = label_patch(
                        node["metadata"].get("labels") or {},
                        (answer.get("metadata") or {}).get("labels"),
                    )
                    if patch:
                        answer = await ctx.api.call(
                            "patch",
                            core.patch_node,
                            ctx.node_name,
                            patch,
                            _content_type=STRATEGIC_MERGE_PATCH,
                        )
                    self.written = None
                    adopted = True
                uid = uid_of(answer)
            except ApiError as e:
                await ctx.failed(
                    e, reason="NodeRegistrationFailed", doing="Unable to register node"
                )
                await ctx.sleep(retry.next_delay(e))
                continue
            log.info(
                "node %s: %s on %s (uid %s)",
                ctx.node_name,
                "found registered" if adopted else "registered",
                ctx.api.server,
                uid,
            )
            ctx.recorder.record(
                ctx.node_ref,
                EventType.NORMAL,
                # The node lifecycle controller's word for the same fact; the kubelet
                # itself records nothing and logs "Successfully registered node".
                "RegisteredNode",
                f"Registered Node {ctx.node_name} with the API server {ctx.api.server}",
            )
            self.set_uid(uid)
            return

    async def report(self) -> None:
        """PATCH the status whenever its version moved; returns when the Node is gone."""
        ctx = self.ctx
        retry = Retry(initial=0.2, cap=7.0, random=ctx.rand)
        failures = 0
        while True:
            node, version = await self._current()
            if version == self.written:
                await self._next_update()
                continue
            try:
                await ctx.api.call(
                    "patch",
                    ctx.api.core.patch_node_status,
                    ctx.node_name,
                    status_patch(node),
                    _content_type=STRATEGIC_MERGE_PATCH,
                )
            except ApiError as e:
                if e.not_found:
                    self.written = None
                    return
                failures += 1
                if failures % MAX_TRIES == 0:
                    # A round of the kubelet's nodeStatusUpdateRetry tries has failed; it
                    # tries again at its next tick, this loop after its back-off.
                    log.warning(
                        "node %s: update node status exceeds retry count (%d): %s",
                        ctx.node_name,
                        failures,
                        e,
                    )
                await ctx.failed(
                    e, reason="NodeStatusUpdateFailed", doing="Error updating node status"
                )
                await ctx.sleep(retry.next_delay(e))
                continue
            self.written = version
            failures = 0
            retry.reset()


class LeaseRenewer:
    """Renews ``kube-node-lease/{node}`` every 10 s once the Node has a uid."""

    def __init__(self, ctx: NodeContext, *, node_uid: NodeUid) -> None:
        self.ctx = ctx
        self.node_uid = node_uid
        # The Lease as the server last returned it: the base of the next PUT.
        self.latest: dict[str, Any] | None = None

    async def run(self) -> None:
        await self.node_uid.wait()
        while True:
            await self.sync()
            await self.ctx.sleep(renew_delay(self.ctx.rand()))

    def _uid(self) -> str:
        uid = self.node_uid.value
        assert uid is not None  # run() waited for it
        return uid

    async def sync(self) -> None:
        """One round: renew from the last object; failing that, make sure the Lease
        exists (creating it counts as the renewal) and renew that."""
        if self.latest is not None and await self.update(self.latest):
            return
        lease, created = await self.ensure()
        self.latest = lease
        if not created:
            await self.update(lease)

    async def update(self, base: dict[str, Any]) -> bool:
        """Up to 5 PUTs; True once one succeeded (``latest`` is then its answer)."""
        ctx = self.ctx
        for _ in range(MAX_TRIES):
            body = renewed_lease(base, ctx.node_name, uid=self._uid(), now=ctx.clock())
            try:
                self.latest = await ctx.api.call(
                    "update",
                    ctx.api.coordination.replace_namespaced_lease,
                    ctx.node_name,
                    LEASE_NAMESPACE,
                    body,
                )
                return True
            except ApiError as e:
                if e.conflict:
                    # Someone else wrote it: renew from what the server holds now.
                    base, created = await self.ensure()
                    if created:
                        self.latest = base
                        return True
                    continue
                if e.not_found:
                    # Another PUT cannot help; ensure() creates it.
                    return False
                await ctx.failed(e, reason="LeaseUpdateFailed", doing="Failed to update lease")
                if e.retry_after is not None:
                    await ctx.sleep(min(e.retry_after, RENEW_INTERVAL))
        log.warning("node %s: failed %d attempts to update lease", ctx.node_name, MAX_TRIES)
        return False

    async def ensure(self) -> tuple[dict[str, Any], bool]:
        """The Lease the server holds, created if absent, retried until the server
        answers (200 ms doubling to 7 s); True when this call created it."""
        ctx, coordination = self.ctx, self.ctx.api.coordination
        retry = Retry(initial=0.2, cap=7.0, random=ctx.rand)
        while True:
            try:
                try:
                    lease = await ctx.api.call(
                        "get", coordination.read_namespaced_lease, ctx.node_name, LEASE_NAMESPACE
                    )
                    return lease, False
                except ApiError as e:
                    if not e.not_found:
                        raise
                body = new_lease(ctx.node_name, uid=self._uid(), now=ctx.clock())
                lease = await ctx.api.call(
                    "create", coordination.create_namespaced_lease, LEASE_NAMESPACE, body
                )
                return lease, True
            except ApiError as e:
                await ctx.failed(
                    e, reason="LeaseUpdateFailed", doing="Failed to ensure lease exists"
                )
                await ctx.sleep(retry.next_delay(e))
