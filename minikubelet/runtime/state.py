"""Where the observed-state types used to live; they are in ``minikubelet.container`` now.

Kept while the pod workers, metrics and tests move their imports: new code
imports ``minikubelet.container`` (and ``runtime.labels`` for decoding).
"""

from __future__ import annotations

from minikubelet.container.cache import RuntimeCache
from minikubelet.container.state import (
    ContainerID,
    ContainerRecord,
    ContainerState,
    PodRuntimeState,
)
from minikubelet.runtime.labels import record_from_labels

__all__ = [
    "ContainerID",
    "ContainerRecord",
    "ContainerState",
    "PodRuntimeState",
    "RuntimeCache",
    "record_from_labels",
]
