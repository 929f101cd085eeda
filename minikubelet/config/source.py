"""What a source of pods hands to the merge layer.

A source (the manifest directory now; workload controllers later) always
sends its complete current set, like the kubelet's SET updates: simpler to
get right than deltas, and cheap at node scale (110 pods).
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol

from minikubelet.errors import ManifestError
from minikubelet.model.spec import Pod


@dataclass(frozen=True, slots=True)
class SourceSnapshot:
    source: str
    # In priority order: when two pods share a full name, the earlier wins.
    pods: tuple[Pod, ...]
    errors: tuple[ManifestError, ...] = ()
    # Origins (file paths) that exist but give no pod right now: pods already
    # running from them are kept, not collected as orphans.
    held: frozenset[str] = frozenset()
    # False while the source could not see everything it holds (its directory
    # missing or unlistable): until a complete snapshot, nothing is an orphan.
    complete: bool = True


SnapshotSink = Callable[[SourceSnapshot], None]


class PodSource(Protocol):
    name: str

    async def run(self) -> None:
        """Deliver snapshots until cancelled; the first one as soon as possible."""
        ...


class SeenTimes:
    """When each pod uid was first seen, so ``kubernetes.io/config.seen`` stays fixed.

    Seeded at start from the pods already running, so an agent restart does
    not change it either.
    """

    def __init__(self, clock: Callable[[], float], fmt: Callable[[float], str]) -> None:
        self._clock = clock
        self._fmt = fmt
        self._seen: dict[str, str] = {}
        # Manifests are read on a thread of their own while housekeeping
        # prunes from the event loop.
        self._lock = threading.Lock()

    def seed(self, uid: str, value: str) -> None:
        with self._lock:
            self._seen.setdefault(uid, value)

    def __call__(self, uid: str) -> str:
        with self._lock:
            value = self._seen.get(uid)
            if value is None:
                value = self._seen[uid] = self._fmt(self._clock())
            return value

    def forget_except(self, uids: set[str]) -> None:
        """Drop the times of pods no longer known, so the map does not grow forever."""
        with self._lock:
            for uid in [u for u in self._seen if u not in uids]:
                del self._seen[uid]

    def __len__(self) -> int:
        with self._lock:
            return len(self._seen)
