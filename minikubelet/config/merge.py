"""Merges every source's snapshot into one desired set of pods, keyed by uid.

This is where name clashes are settled: two pods with the same full name
(from two files, or later from a file and a controller) cannot both run; the
one that was there first wins and the other is reported. "First" prefers a
pod already running, so an agent restart never swaps which one runs.

It also owns the list of current source errors (bad manifests, clashes):
each new one is logged and recorded as an event once, not at every rescan.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from minikubelet.config.source import SourceSnapshot
from minikubelet.events import EventRecorder, EventType, ObjectRef
from minikubelet.model.spec import Pod, PodUID

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class SourceError:
    source: str
    origin: str
    field: str
    message: str

    def __str__(self) -> str:
        where = f"{self.origin}: {self.field}" if self.field else self.origin
        return f"{where}: {self.message}"

    def to_api(self) -> dict[str, Any]:
        return {
            "source": self.source,
            "file": self.origin,
            "field": self.field,
            "message": self.message,
        }


# (desired pods by uid, every source has been complete once, held origins)
DesiredSink = Callable[[Mapping[PodUID, Pod], bool, frozenset[str]], None]


class PodConfig:
    def __init__(
        self,
        sources: Iterable[str],
        *,
        sink: DesiredSink,
        recorder: EventRecorder,
        node_ref: ObjectRef,
        running: Iterable[PodUID] = (),
    ) -> None:
        self._order = list(sources)
        self._sink = sink
        self._recorder = recorder
        self._node_ref = node_ref
        self._running = set(running)
        self._snapshots: dict[str, SourceSnapshot] = {}
        self._desired: dict[PodUID, Pod] = {}
        self._errors: list[SourceError] = []
        self._reported: set[SourceError] = set()
        self._ready = False
        self._held: frozenset[str] = frozenset()

    @property
    def ready(self) -> bool:
        """Every source has delivered its first set: pods absent now are really gone."""
        return self._ready

    @property
    def desired(self) -> Mapping[PodUID, Pod]:
        return self._desired

    @property
    def errors(self) -> list[SourceError]:
        return list(self._errors)

    def update(self, snapshot: SourceSnapshot) -> None:
        if snapshot.source not in self._order:
            raise ValueError(f"unknown source {snapshot.source!r}")
        self._snapshots[snapshot.source] = snapshot
        self._recompute()

    def _recompute(self) -> None:
        candidates: list[tuple[int, int, int, Pod]] = []
        errors: list[SourceError] = []
        for s_index, name in enumerate(self._order):
            snapshot = self._snapshots.get(name)
            if snapshot is None:
                continue
            for manifest_error in snapshot.errors:
                for fe in manifest_error.errors:
                    errors.append(SourceError(name, manifest_error.origin, fe.field, fe.message))
            for p_index, pod in enumerate(snapshot.pods):
                candidates.append((0 if pod.uid in self._running else 1, s_index, p_index, pod))
        candidates.sort(key=lambda c: c[:3])
        desired: dict[PodUID, Pod] = {}
        owners: dict[str, Pod] = {}
        for *_, pod in candidates:
            owner = owners.get(pod.key)
            if owner is not None:
                errors.append(
                    SourceError(
                        pod.source,
                        pod.origin,
                        "metadata.name",
                        f"pod {pod.key} is already defined by {owner.origin}; this one is ignored",
                    )
                )
                continue
            if pod.uid in desired:
                errors.append(
                    SourceError(
                        pod.source,
                        pod.origin,
                        "metadata.uid",
                        f"uid {pod.uid} is already used by {desired[pod.uid].origin}",
                    )
                )
                continue
            owners[pod.key] = pod
            desired[pod.uid] = pod
        self._report(errors)
        self._errors = errors
        # Ready once every source has shown everything it holds; a source that
        # later cannot (its directory gone) keeps its pods, so ready stays.
        ready = self._ready or all(
            name in self._snapshots and self._snapshots[name].complete for name in self._order
        )
        held = frozenset().union(*(s.held for s in self._snapshots.values()))
        if desired != self._desired or ready != self._ready or held != self._held:
            self._desired = desired
            self._ready = ready
            self._held = held
            # Preference for running pods matters only for the first decision.
            self._running &= set(desired)
            self._sink(desired, ready, held)

    def _report(self, errors: list[SourceError]) -> None:
        current = set(errors)
        for error in errors:
            if error not in self._reported:
                self._recorder.record(
                    self._node_ref, EventType.WARNING, "FailedValidation", str(error)
                )
        self._reported = current
