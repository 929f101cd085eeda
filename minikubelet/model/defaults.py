"""API defaults for a Pod, as the API server and the kubelet's file source apply them.

The one place defaults are applied: ``build`` reads the fields set here and
applies none of its own. Works on a validated document (the schema checked
every type, the reader dropped nulls in mappings) and returns a new one; the
input is never changed (it is what the uid is hashed from).

As in the API server's defaulting, where Go cannot tell an empty string from
an unset one, ``""`` is unset too (``restartPolicy: ""`` becomes Always); a
field that is a pointer in Go (``terminationGracePeriodSeconds``) is
defaulted only when absent, so 0 stays 0.
"""

from __future__ import annotations

from typing import Any

from minikubelet.model import naming
from minikubelet.model.loader import copy_json


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


def _default(obj: dict[str, Any], key: str, value: object) -> None:
    """Set ``key`` unless it holds something: absent and ``""`` are unset."""
    if obj.get(key) in (None, ""):
        obj[key] = value


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
        _default(http, "path", "/")
        _default(http, "scheme", "HTTP")
    grpc = handler.get("grpc")
    if grpc is not None:
        grpc.setdefault("service", "")


def _default_container(ctr: dict[str, Any], *, host_network: bool) -> None:
    _default(ctr, "imagePullPolicy", default_pull_policy(ctr["image"]))
    _default(ctr, "terminationMessagePath", "/dev/termination-log")
    _default(ctr, "terminationMessagePolicy", "File")
    ctr.setdefault("resources", {})
    resources = ctr["resources"]
    # Requests default to limits, as the API server does.
    limits = resources.get("limits") or {}
    if limits:
        requests = resources.setdefault("requests", {})
        for name, value in limits.items():
            requests.setdefault(name, value)
    for port in ctr.get("ports") or []:
        _default(port, "protocol", "TCP")
        if host_network and not port.get("hostPort"):
            port["hostPort"] = port["containerPort"]
    for var in ctr.get("env") or []:
        ref = (var.get("valueFrom") or {}).get("fieldRef")
        if ref is not None:
            _default(ref, "apiVersion", "v1")
    for kind in ("livenessProbe", "readinessProbe", "startupProbe"):
        if ctr.get(kind) is not None:
            _default_probe(ctr[kind])
    lifecycle = ctr.get("lifecycle") or {}
    for hook in ("postStart", "preStop"):
        if lifecycle.get(hook) is not None:
            _default_handler(lifecycle[hook])


def apply_pod_defaults(
    document: dict[str, Any], *, node_name: str, uid: str, full_name: str, seen: str
) -> dict[str, Any]:
    """The defaulted static pod: renamed, bound to the node, annotated like kubelet's."""
    pod: dict[str, Any] = copy_json(document)
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

    spec = pod.setdefault("spec", {})
    host_network = bool(spec.get("hostNetwork"))
    _default(spec, "restartPolicy", "Always")
    spec.setdefault("terminationGracePeriodSeconds", 30)
    _default(spec, "dnsPolicy", "ClusterFirst")
    spec.setdefault("securityContext", {})
    _default(spec, "schedulerName", "default-scheduler")
    spec.setdefault("enableServiceLinks", True)
    spec["nodeName"] = node_name
    tolerations = list(spec.get("tolerations") or [])
    tolerations.append({"operator": "Exists", "effect": "NoExecute"})
    spec["tolerations"] = tolerations
    for vol in spec.get("volumes") or []:
        if not any(k != "name" for k in vol):
            vol["emptyDir"] = {}
        if vol.get("hostPath") is not None:
            vol["hostPath"].setdefault("type", "")
    for section in ("initContainers", "containers"):
        for ctr in spec.get(section) or []:
            _default_container(ctr, host_network=host_network)
    return pod
