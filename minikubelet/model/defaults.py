"""API defaults for a Pod, as the API server and the kubelet's file source apply them.

Works on a validated document and returns a new one; the input is never
changed (it is what the uid is hashed from).
"""

from __future__ import annotations

import copy
from typing import Any

from minikubelet.model import naming


def image_has_digest(image: str) -> bool:
    return "@" in image


def image_tag(image: str) -> str:
    """The tag of an image reference, ``""`` when it has none."""
    ref = image.split("@", 1)[0]
    name_end = ref.rfind("/")
    colon = ref.rfind(":")
    return ref[colon + 1 :] if colon > name_end else ""


def default_pull_policy(image: str) -> str:
    if image_has_digest(image):
        return "IfNotPresent"
    tag = image_tag(image)
    return "Always" if tag in ("", "latest") else "IfNotPresent"


def _default_probe(probe: dict[str, Any]) -> None:
    # As in the API's defaulting, 0 means "not set".
    for key, value in (
        ("initialDelaySeconds", 0),
        ("timeoutSeconds", 1),
        ("periodSeconds", 10),
        ("successThreshold", 1),
        ("failureThreshold", 3),
    ):
        if not probe.get(key):
            probe[key] = value
    _default_handler(probe)


def _default_handler(handler: dict[str, Any]) -> None:
    http = handler.get("httpGet")
    if http is not None:
        http.setdefault("path", "/")
        http.setdefault("scheme", "HTTP")
    grpc = handler.get("grpc")
    if grpc is not None and grpc.get("service") is None:
        grpc["service"] = ""


def _default_container(ctr: dict[str, Any], *, host_network: bool) -> None:
    image = ctr.get("image") or ""
    ctr.setdefault("imagePullPolicy", default_pull_policy(image))
    ctr.setdefault("terminationMessagePath", "/dev/termination-log")
    ctr.setdefault("terminationMessagePolicy", "File")
    ctr.setdefault("resources", {})
    resources = ctr["resources"]
    # Requests default to limits, as the API server does.
    limits = resources.get("limits") or {}
    if limits:
        requests = resources.setdefault("requests", {})
        for name, value in limits.items():
            requests.setdefault(name, value)
    for port in ctr.get("ports") or []:
        port.setdefault("protocol", "TCP")
        if host_network and not port.get("hostPort"):
            port["hostPort"] = port["containerPort"]
    for var in ctr.get("env") or []:
        ref = (var.get("valueFrom") or {}).get("fieldRef")
        if ref is not None:
            ref.setdefault("apiVersion", "v1")
    for kind in ("livenessProbe", "readinessProbe", "startupProbe"):
        if ctr.get(kind) is not None:
            _default_probe(ctr[kind])
    for hook in (ctr.get("lifecycle") or {}).values():
        if isinstance(hook, dict):
            _default_handler(hook)


def apply_pod_defaults(
    document: dict[str, Any], *, node_name: str, uid: str, full_name: str, seen: str
) -> dict[str, Any]:
    """The defaulted static pod: renamed, bound to the node, annotated like kubelet's."""
    pod = copy.deepcopy(document)
    pod.pop("status", None)
    meta = pod.setdefault("metadata", {})
    meta["name"] = full_name
    meta["namespace"] = meta.get("namespace") or "default"
    meta["uid"] = uid
    annotations = dict(meta.get("annotations") or {})
    annotations[naming.CONFIG_HASH] = uid
    annotations[naming.CONFIG_SEEN] = seen
    annotations[naming.CONFIG_SOURCE] = "file"
    meta["annotations"] = annotations
    if meta.get("labels") is None:
        meta.pop("labels", None)

    spec = pod.setdefault("spec", {})
    host_network = bool(spec.get("hostNetwork"))
    spec.setdefault("restartPolicy", "Always")
    spec.setdefault("terminationGracePeriodSeconds", 30)
    spec.setdefault("dnsPolicy", "ClusterFirst")
    spec.setdefault("securityContext", {})
    spec.setdefault("schedulerName", "default-scheduler")
    spec.setdefault("enableServiceLinks", True)
    spec["nodeName"] = node_name
    tolerations = list(spec.get("tolerations") or [])
    tolerations.append({"operator": "Exists", "effect": "NoExecute"})
    spec["tolerations"] = tolerations
    for vol in spec.get("volumes") or []:
        if not any(k != "name" and v is not None for k, v in vol.items()):
            vol["emptyDir"] = {}
        if vol.get("hostPath") is not None:
            vol["hostPath"].setdefault("type", "")
    for section in ("initContainers", "containers"):
        for ctr in spec.get(section) or []:
            _default_container(ctr, host_network=host_network)
    return pod
