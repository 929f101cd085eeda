"""Mirror pods as data: the body of a new mirror, the status patch it needs, and what
to do about one pod name. Pure: no I/O, no clock (the kubelet's mirror_client.go,
status_manager.go and pkg/util/pod's patch, reduced to the fields the agent owns).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

from minikubelet.model import naming

# Metadata the server assigns; a copy of the static pod's must not carry them.
SERVER_METADATA = (
    "uid",
    "resourceVersion",
    "creationTimestamp",
    "deletionTimestamp",
    "deletionGracePeriodSeconds",
    "generation",
    "managedFields",
    "selfLink",
)
# Conditions the kubelet owns (podutil.PodConditionsByKubelet): a server condition of
# one of these types that the agent no longer reports is deleted; others (a
# readiness gate's, a controller's) are left alone.
KUBELET_CONDITIONS = frozenset(
    {"PodScheduled", "Ready", "Initialized", "ContainersReady", "PodReadyToStartContainers"}
)
# Status fields others write (the scheduler, the resize and resource-claim
# controllers): never cleared because the agent does not report them.
FOREIGN_STATUS = frozenset({"nominatedNodeName", "resize", "resourceClaimStatuses"})
# Compared, not merged: the API declares these lists atomic, so a patch carries the
# whole list and the server replaces it.
ATOMIC_LISTS = frozenset(
    {"containerStatuses", "initContainerStatuses", "ephemeralContainerStatuses"}
)
# Lists the API merges by a key (``ip``): a changed one is sent with a replace
# directive, or the server would keep the old addresses beside the new.
MERGED_LISTS = frozenset({"podIPs", "hostIPs"})
# Timestamps a condition change alone does not warrant a write for (the kubelet's
# status cache compares conditions without them).
CONDITION_TIMES = ("lastProbeTime", "lastTransitionTime")


def mirror_body(pod: Mapping[str, Any], *, node_name: str, node_uid: str) -> dict[str, Any]:
    """The mirror pod to POST for a static pod's API object (``pod``: the agent's,
    defaulted, bound to the node): its metadata less what the server assigns, plus
    the ``config.mirror`` annotation and the Node as controlling owner; no status
    (the server starts every pod Pending; the status follows as a patch)."""
    metadata = {k: v for k, v in pod["metadata"].items() if k not in SERVER_METADATA}
    annotations = dict(metadata.get("annotations") or {})
    annotations[naming.CONFIG_MIRROR] = annotations.get(naming.CONFIG_HASH, "")
    metadata["annotations"] = annotations
    metadata["ownerReferences"] = [
        {
            "apiVersion": "v1",
            "kind": "Node",
            "name": node_name,
            "uid": node_uid,
            "controller": True,
        }
    ]
    return {"apiVersion": "v1", "kind": "Pod", "metadata": metadata, "spec": pod["spec"]}


def _condition_key(condition: Mapping[str, Any]) -> tuple[Any, ...]:
    return (
        condition.get("status"),
        condition.get("reason") or "",
        condition.get("message") or "",
        # Any other field (an unknown one from a newer server) still counts.
        *sorted(
            (k, repr(v))
            for k, v in condition.items()
            if k not in CONDITION_TIMES and k not in ("type", "status", "reason", "message")
        ),
    )


def _conditions_patch(
    desired: list[Mapping[str, Any]], held: list[Mapping[str, Any]]
) -> list[dict[str, Any]]:
    """Strategic-merge items (merged by ``type``): the agent's conditions that differ
    from the server's, and a ``$patch: delete`` for kubelet conditions it dropped."""
    held_by_type = {c.get("type"): c for c in held}
    items: list[dict[str, Any]] = []
    wanted = set()
    for condition in desired:
        type_ = condition.get("type")
        wanted.add(type_)
        old = held_by_type.get(type_)
        if old is None or _condition_key(old) != _condition_key(condition):
            item = dict(condition)
            if old is not None:
                # Merged into the server's by type, field by field: a field the agent
                # dropped (the reason of a condition now True) has to be removed.
                item.update({k: None for k in old if k not in condition})
            items.append(item)
    for type_ in held_by_type:
        if type_ in KUBELET_CONDITIONS and type_ not in wanted:
            items.append({"type": type_, "$patch": "delete"})
    return items


def status_patch(desired: Mapping[str, Any], held: Mapping[str, Any]) -> dict[str, Any] | None:
    """The ``status`` part of a strategic merge patch taking the server's status
    (``held``) to the agent's (``desired``), or None when they already agree.

    A two-way diff, as the kubelet's: changed fields are sent, fields the agent no
    longer reports are set to null, conditions go by ``type`` (foreign ones kept,
    timestamps alone not a change) and container status lists go whole.
    """
    patch: dict[str, Any] = {}
    for key, value in desired.items():
        old = held.get(key)
        if key == "conditions":
            items = _conditions_patch(value or [], old or [])
            if items:
                patch[key] = items
        elif value != old:
            replace = key in MERGED_LISTS and old and isinstance(value, list)
            patch[key] = [*value, {"$patch": "replace"}] if replace else value
    for key, old in held.items():
        if key in desired or key in FOREIGN_STATUS or old is None:
            continue
        if key == "conditions":
            items = _conditions_patch([], old)
            if items:
                patch[key] = items
        else:
            patch[key] = None
    return patch or None


def pod_status_patch(mirror_uid: str, status: Mapping[str, Any]) -> dict[str, Any]:
    """The whole patch body: the mirror's uid is a precondition, so a status never
    lands on a mirror that was replaced meanwhile (409 instead)."""
    return {"metadata": {"uid": mirror_uid}, "status": status}


@dataclass(frozen=True, slots=True)
class StaticView:
    """The static pod a mirror stands for: its config hash, and whether it is being
    stopped (its manifest is gone, its containers not yet)."""

    hash: str
    deleting: bool = False


@dataclass(frozen=True, slots=True)
class MirrorView:
    """A pod on the server bound to this node, as far as the decision goes: ``hash``
    is its ``config.mirror`` annotation, None for a pod that is not a mirror."""

    uid: str
    hash: str | None
    deleting: bool = False


class Action(StrEnum):
    NOTHING = "nothing"
    CREATE = "create"
    # Delete (grace 0, uid precondition); the next pass creates the new one.
    REPLACE = "replace"
    DELETE = "delete"
    STATUS = "status"
    # A pod of that name that is not a mirror: not the agent's to touch.
    FOREIGN = "foreign"


def decide(static: StaticView | None, mirror: MirrorView | None, *, sources_ready: bool) -> Action:
    """What one pod name needs (the kubelet's syncPod mirror checks and housekeeping).

    A static pod being stopped keeps its mirror, and its status, until it is done;
    only then, and only once every source has been read whole (before that a pod can
    look gone when it is not), is a mirror without a static pod deleted.
    """
    if mirror is not None and mirror.hash is None:
        return Action.FOREIGN if static is not None else Action.NOTHING
    if static is None:
        if mirror is None or not sources_ready:
            return Action.NOTHING
        return Action.DELETE
    if mirror is None:
        return Action.NOTHING if static.deleting else Action.CREATE
    if mirror.hash != static.hash or mirror.deleting:
        return Action.NOTHING if static.deleting else Action.REPLACE
    return Action.STATUS
