"""What ``docker inspect`` of a container tells the agent, as records of ``container/``.

Reads the inspect document only; asking the engine is left to its callers
(the PLEG, pod assembly). The labels part of a record is decoded in
``labels.py``; here come Docker's own fields: state, times, exit code, OOM,
start error, and whether a sandbox lost its network.
"""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Callable, Mapping
from typing import Any

from minikubelet.container.state import ContainerRecord, ContainerState
from minikubelet.model import naming
from minikubelet.runtime.labels import record_from_labels
from minikubelet.runtime.paths import UnsafePathError
from minikubelet.runtime.volumes import PodPaths, read_termination_message
from minikubelet.util.timefmt import parse_docker_time

log = logging.getLogger(__name__)


def state_of(status: str) -> ContainerState:
    """A Docker status (``State.Status``, or ``State`` in a list) as a container state."""
    if status in ("running", "paused", "restarting"):
        return ContainerState.RUNNING
    if status in ("exited", "dead", "removing"):
        return ContainerState.EXITED
    if status == "created":
        return ContainerState.CREATED
    return ContainerState.UNKNOWN


def termination_message(paths: PodPaths | None, labels: Mapping[str, str]) -> str:
    """The message an exited container left in the file the agent made for it.

    The label names that file, but anyone with access to Docker can label a
    container: only a label naming the very path the agent builds from the
    container's checked uid, name and restart count is read.
    """
    label = labels.get(naming.TERMINATION_LOG, "")
    if paths is None or not label:
        return ""
    try:
        expected = paths.pod(labels.get(naming.POD_UID, "")).termination_log(
            labels.get(naming.CONTAINER_NAME, ""), int(labels.get(naming.RESTART_COUNT, ""))
        )
    except (UnsafePathError, ValueError):
        return ""
    if str(expected) != label:
        log.warning("termination log label %r is not the agent's file; not read", label)
        return ""
    return read_termination_message(expected)


def record_from_inspect(
    data: dict[str, Any],
    image_ids: Callable[[str], str] | None = None,
    *,
    paths: PodPaths | None = None,
) -> ContainerRecord | None:
    """The record of an inspected container; None if it is not a pod container of ours.

    ``image_ids`` gives the status ``imageID`` of an image the agent knows.
    """
    config = data.get("Config") or {}
    state = data.get("State") or {}
    labels = config.get("Labels") or {}
    created = parse_docker_time(data.get("Created")) or 0.0
    record = record_from_labels(
        data["Id"],
        labels,
        state=state_of(state.get("Status", "")),
        created_at=created,
        image=config.get("Image", ""),
        image_id=f"docker://{data.get('Image', '')}",
    )
    if record is None:
        return None
    if image_ids is not None:
        record = dataclasses.replace(record, image_id=image_ids(record.image) or record.image_id)
    exited = record.state is ContainerState.EXITED
    network_mode = (data.get("HostConfig") or {}).get("NetworkMode") or ""
    networks = (data.get("NetworkSettings") or {}).get("Networks") or {}
    network_lost = (
        record.is_sandbox
        and record.state is ContainerState.RUNNING
        and network_mode not in ("", "host", "none", "default", "bridge")
        and not network_mode.startswith("container:")
        and network_mode not in networks
    )
    return dataclasses.replace(
        record,
        network_lost=network_lost,
        started_at=parse_docker_time(state.get("StartedAt")),
        finished_at=parse_docker_time(state.get("FinishedAt")) if exited else None,
        exit_code=int(state.get("ExitCode", 0)) if exited else None,
        oom_killed=bool(state.get("OOMKilled")),
        error=state.get("Error") or "",
        message=termination_message(paths, labels) if exited else "",
    )


def exit_details(data: dict[str, Any], record: ContainerRecord) -> dict[str, Any]:
    """The exact exit fields of an inspected container, over what its die event said."""
    state = data.get("State") or {}
    return {
        "started_at": parse_docker_time(state.get("StartedAt")) or record.started_at,
        "finished_at": parse_docker_time(state.get("FinishedAt")) or record.finished_at,
        "oom_killed": bool(state.get("OOMKilled")) or record.oom_killed,
        "error": state.get("Error") or "",
    }
