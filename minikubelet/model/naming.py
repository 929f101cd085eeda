"""Names, hashes and Docker labels: the identity of pods and containers.

Names and labels follow the dockershim / cri-dockerd convention, so that
``docker ps`` reads like a kubelet node and so that the agent can adopt its
own containers after a restart from the labels alone.
"""

from __future__ import annotations

import hashlib
import json
from typing import Any

from minikubelet.model.spec import PodUID

# Docker label keys (cri-dockerd spelling).
POD_NAME = "io.kubernetes.pod.name"
POD_NAMESPACE = "io.kubernetes.pod.namespace"
POD_UID = "io.kubernetes.pod.uid"
CONTAINER_NAME = "io.kubernetes.container.name"
DOCKER_TYPE = "io.kubernetes.docker.type"
SANDBOX_ID = "io.kubernetes.sandbox.id"
TYPE_SANDBOX = "podsandbox"
TYPE_CONTAINER = "container"
SANDBOX_CONTAINER_NAME = "POD"
ANNOTATION_PREFIX = "annotation."
CONTAINER_HASH = "annotation.io.kubernetes.container.hash"
RESTART_COUNT = "annotation.io.kubernetes.container.restartCount"
TERMINATION_MESSAGE_PATH = "annotation.io.kubernetes.container.terminationMessagePath"
TERMINATION_MESSAGE_POLICY = "annotation.io.kubernetes.container.terminationMessagePolicy"
POD_GRACE_PERIOD = "annotation.io.kubernetes.pod.terminationGracePeriod"
PRE_STOP_HANDLER = "annotation.io.kubernetes.container.preStopHandler"
CONTAINER_PORTS = "annotation.io.kubernetes.container.ports"

# Our own labels. ``NODE`` marks everything this agent owns: adoption,
# event filters and cleanup select on it and touch nothing else.
NODE = "io.minikubelet.node"
SANDBOX_ATTEMPT = "io.minikubelet.sandbox.attempt"
POD_IP = "io.minikubelet.pod.ip"
# Crash back-off delay (seconds) in force when this container instance started.
BACKOFF_DELAY = "io.minikubelet.backoff.delay"
POD_START_TIME = "io.minikubelet.pod.start-time"
CONTAINER_KIND = "io.minikubelet.container.kind"
TERMINATION_LOG = "io.minikubelet.termination-log"
# The manifest a pod came from: a pod whose file exists but cannot be read
# right now is kept, not collected as an orphan (config/file.py).
CONFIG_ORIGIN = "io.minikubelet.config.origin"

# Static pod annotations (kubelet spelling).
CONFIG_SOURCE = "kubernetes.io/config.source"
CONFIG_HASH = "kubernetes.io/config.hash"
CONFIG_SEEN = "kubernetes.io/config.seen"
CONFIG_MIRROR = "kubernetes.io/config.mirror"

HOSTNAME_MAX = 63


def canonical_json(value: Any) -> bytes:
    """A stable byte form: the same data gives the same bytes whatever its layout."""
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()


def static_pod_uid(document: Any, *, node_name: str, origin: str) -> PodUID:
    """The uid of a static pod: a hash of its parsed content, the node and the file.

    Hashing the parsed document, not the bytes, means comments and formatting
    do not change the uid; hashing what the user wrote, not our defaulted
    form, means an upgrade of the agent does not either.
    """
    h = hashlib.sha256()
    h.update(canonical_json(document))
    h.update(b"\x00host:" + node_name.encode())
    h.update(b"\x00file:" + origin.encode())
    return PodUID(h.hexdigest()[:32])


def container_spec_hash(container: Any) -> str:
    return hashlib.sha256(canonical_json(container)).hexdigest()[:16]


def static_pod_name(name: str, node_name: str) -> str:
    return f"{name}-{node_name.lower()}"


def pod_hostname(pod_name: str, spec_hostname: str = "") -> str:
    """``spec.hostname`` or the pod name, cut to 63 characters as kubelet does."""
    hostname = spec_hostname or pod_name
    if len(hostname) > HOSTNAME_MAX:
        hostname = hostname[:HOSTNAME_MAX].rstrip("-.")
    return hostname


def sandbox_name(pod_name: str, namespace: str, uid: str, attempt: int) -> str:
    return f"k8s_{SANDBOX_CONTAINER_NAME}_{pod_name}_{namespace}_{uid}_{attempt}"


def container_name(
    container: str, pod_name: str, namespace: str, uid: str, restart_count: int
) -> str:
    return f"k8s_{container}_{pod_name}_{namespace}_{uid}_{restart_count}"
