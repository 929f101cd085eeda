"""References from events to the part of a pod they are about.

Owns the ``fieldPath`` of a container reference, as the kubelet's
``GenerateContainerRef`` builds it; recording and sending events is left to
``minikubelet.events``. Pure: it reads only the pod spec.
"""

from __future__ import annotations

from minikubelet.model.spec import Pod


def container_field_path(pod: Pod, container_name: str) -> str:
    """The event ``fieldPath`` of a container: init containers and sidecars are ``initContainers``.

    A name the spec does not have (a stray left by an interrupted start or an
    older spec) gets ``""``, making the event one about the pod: the kubelet
    fails to build that reference and records nothing, and a path to a
    container missing from the spec would point nowhere.
    """
    if any(c.name == container_name for c in pod.spec.containers):
        return f"spec.containers{{{container_name}}}"
    if any(c.name == container_name for c in pod.spec.init_containers):
        return f"spec.initContainers{{{container_name}}}"
    return ""
