"""Docker labels read back: what the agent wrote on a container, decoded in one place.

``dockerspec.py`` writes the labels when it builds a create body; this module
is where they are read: which pod and container a Docker container is, its
attempt or restart count, and the crash back-off it carried across an agent
restart. A label that does not decode is treated as absent, since anyone
with access to Docker can label a container.
"""

from __future__ import annotations

import contextlib
import json
import logging
from collections.abc import Mapping

from minikubelet.container.state import (
    ContainerID,
    ContainerRecord,
    ContainerState,
    PodRuntimeState,
)
from minikubelet.model import naming
from minikubelet.model.build import build_handler
from minikubelet.model.spec import Handler, PodUID
from minikubelet.runtime.paths import valid_pod_uid
from minikubelet.util.backoff import BackOffEntry
from minikubelet.util.timefmt import parse_docker_time

log = logging.getLogger(__name__)


def record_from_labels(
    container_id: str,
    labels: Mapping[str, str],
    *,
    state: ContainerState,
    created_at: float,
    image: str = "",
    image_id: str = "",
) -> ContainerRecord | None:
    """A record for a container found on Docker; None if it is not a pod container of ours.

    A uid label that could not name a pod directory is refused here, so no
    such uid ever reaches a path: the agent never makes one, so the
    container was labelled by someone else, and is left alone.
    """
    uid = labels.get(naming.POD_UID)
    kind = labels.get(naming.DOCKER_TYPE)
    if not uid or kind not in (naming.TYPE_SANDBOX, naming.TYPE_CONTAINER):
        return None
    if not valid_pod_uid(uid):
        log.warning(
            "container %s has pod uid label %r, which no pod has; ignored", container_id[:12], uid
        )
        return None
    is_sandbox = kind == naming.TYPE_SANDBOX
    attempt_label = naming.SANDBOX_ATTEMPT if is_sandbox else naming.RESTART_COUNT
    try:
        attempt = int(labels.get(attempt_label, "0"))
    except ValueError:
        attempt = 0
    return ContainerRecord(
        id=ContainerID(container_id),
        pod_uid=PodUID(uid),
        pod_name=labels.get(naming.POD_NAME, ""),
        pod_namespace=labels.get(naming.POD_NAMESPACE, ""),
        name=naming.SANDBOX_CONTAINER_NAME if is_sandbox else labels.get(naming.CONTAINER_NAME, ""),
        attempt=attempt,
        state=state,
        created_at=created_at,
        is_sandbox=is_sandbox,
        image=image,
        image_id=image_id,
        spec_hash=labels.get(naming.CONTAINER_HASH, ""),
        labels=dict(labels),
    )


def backoff_from_labels(state: PodRuntimeState) -> dict[str, BackOffEntry]:
    """Crash back-off of each container as its latest instance recorded it.

    Used when a worker starts for pods found on Docker (after an agent
    restart), so a crash loop keeps its delay instead of restarting at once.
    """
    entries: dict[str, BackOffEntry] = {}
    for record in state.containers:
        if record.name in entries:
            continue
        raw = record.label(naming.BACKOFF_DELAY)
        try:
            delay = float(raw) if raw else None
        except ValueError:
            delay = None
        if delay is not None and delay > 0:
            entries[record.name] = BackOffEntry(
                delay=delay, last_update=record.started_at or record.created_at
            )
    return entries


# --- what the pod workers need back from labels, for pods no source has any more ---


def pre_stop_handler(record: ContainerRecord) -> Handler | None:
    """The preStop hook recorded on a container; None if there is none or it does not decode."""
    raw = record.label(naming.PRE_STOP_HANDLER)
    if not raw:
        return None
    try:
        return build_handler(json.loads(raw))
    except (ValueError, TypeError, KeyError, AttributeError):
        log.warning("container %s has an unreadable preStop label; skipping the hook", record.id)
        return None


def named_ports(record: ContainerRecord) -> dict[str, int]:
    """The container's named ports, for a hook that names its port."""
    ports: dict[str, int] = {}
    with contextlib.suppress(ValueError, TypeError, KeyError, AttributeError):
        for port in json.loads(record.label(naming.CONTAINER_PORTS) or "[]"):
            if port.get("name"):
                ports[str(port["name"])] = int(port["containerPort"])
    return ports


def grace_period(state: PodRuntimeState) -> int | None:
    """The pod's terminationGracePeriodSeconds as its containers recorded it."""
    for record in (*state.containers, *state.sandboxes):
        value = record.label(naming.POD_GRACE_PERIOD)
        if value.isdigit():
            return int(value)
    return None


def pod_start_time(sandbox: ContainerRecord | None) -> float | None:
    """The pod's startTime, kept on its sandbox so a new sandbox does not reset it."""
    if sandbox is None:
        return None
    try:
        return parse_docker_time(sandbox.label(naming.POD_START_TIME))
    except ValueError:
        # Anyone with access to Docker can label a container; a bad time is no time.
        return None
