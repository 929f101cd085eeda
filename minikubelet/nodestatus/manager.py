"""The node's status over time: sampled every ``period`` seconds, off the event loop.

``NodeStatus`` owns the current Node object and its resource version; the
server reads it (``server/nodes.py``) and never waits for a sample. Each
refresh reads the host on a thread (statvfs and /proc can block), asks the
agent why the node would not be ready, runs the pure setters and records a
node event for each condition that flipped, as the kubelet's
nodeStatusUpdateFrequency loop does (10 s).
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
from collections.abc import Callable
from pathlib import Path
from typing import Any

from minikubelet.events import EventRecorder, EventType, ObjectRef
from minikubelet.nodestatus import setters
from minikubelet.nodestatus.readings import HostFacts, Readings, read_readings
from minikubelet.nodestatus.setters import Condition, NodeIdentity

log = logging.getLogger(__name__)

# The kubelet's nodeStatusUpdateFrequency.
UPDATE_PERIOD = 10.0
# nodeStatusReportFrequency: a status that changed nothing but its heartbeats is
# published at most this often (the Lease's renewTime moves at every update).
REPORT_PERIOD = 300.0
# How often a node that is not Ready is checked again.
NOT_READY_PERIOD = 1.0


class NodeStatus:
    def __init__(
        self,
        identity: NodeIdentity,
        facts: HostFacts,
        *,
        recorder: EventRecorder,
        node_ref: ObjectRef,
        clock: Callable[[], float],
        ready_errors: Callable[[], list[str]],
        nodefs: Path,
        sample: Callable[[Path, Path | None], Readings] = read_readings,
        period: float = UPDATE_PERIOD,
    ) -> None:
        self.identity = identity
        self.facts = facts
        self._recorder = recorder
        self._node_ref = node_ref
        self._clock = clock
        self._ready_errors = ready_errors
        self._nodefs = nodefs
        self._imagefs: Path | None = None
        self._sample = sample
        self.period = period
        self._conditions: dict[str, Condition] = {}
        self._pressure_seen: dict[str, float] = {}
        self._node: dict[str, Any] | None = None
        self.version = 0
        self._reported = 0.0
        # When the status was last computed: the Lease's renewTime.
        self.renewed = 0.0
        self.closed = False
        # Resolved at the next update; watchers wait on it together.
        self._tick: asyncio.Future[None] | None = None

    def set_runtime(self, version: str, image_dir: str) -> None:
        """What the engine said of itself once it answered: its version and where images live."""
        if version:
            self.identity = dataclasses.replace(
                self.identity, runtime_version=f"docker://{version}"
            )
        self._imagefs = Path(image_dir) if image_dir else None

    def node(self) -> dict[str, Any] | None:
        """The Node as last computed (None before the first refresh)."""
        return self._node

    async def refresh(self) -> None:
        readings = await asyncio.to_thread(self._sample, self._nodefs, self._imagefs)
        self.update(readings)

    def update(self, readings: Readings) -> None:
        now = self._clock()
        for type_ in setters.observed_pressures(readings):
            self._pressure_seen[type_] = now
        conditions, flips = setters.update_conditions(
            self._conditions,
            pressure=setters.pressures(self._pressure_seen, now),
            ready_errors=self._ready_errors(),
            now=now,
        )
        self._conditions = {c.type: c for c in conditions}
        self.renewed = now
        node = setters.node_object(
            self.identity, self.facts, readings, conditions, version=self.version + 1
        )
        # As the kubelet posts its status: when something changed, or after the report
        # period; a watcher of nodes is not woken every 10 s by heartbeats alone.
        if (
            self._node is None
            or now - self._reported >= REPORT_PERIOD
            or not setters.same_but_heartbeats(node, self._node)
        ):
            self.version += 1
            self._node = node
            self._reported = now
        for reason in flips:
            self._recorder.record(
                self._node_ref,
                EventType.NORMAL,
                reason,
                f"Node {self.identity.name} status is now: {reason}",
            )

        self._wake()

    async def changed(self) -> None:
        """Until the next update (or ``close``)."""
        if self.closed:
            return
        if self._tick is None:
            self._tick = asyncio.get_running_loop().create_future()
        # Shielded: one watcher's timeout must not cancel the others' wait.
        await asyncio.shield(self._tick)

    def close(self) -> None:
        """Ends the watches (at shutdown)."""
        self.closed = True
        self._wake()

    def _wake(self) -> None:
        tick, self._tick = self._tick, None
        if tick is not None and not tick.done():
            tick.set_result(None)

    @property
    def ready(self) -> bool:
        ready = self._conditions.get("Ready")
        return ready is not None and ready.status == "True"

    async def run(self) -> None:
        """Refresh every ``period``; a failed sample keeps the last status and is retried.

        While the node is not Ready it is checked every second, so Ready shows
        as soon as the runtime answers rather than up to a period later.
        """
        while True:
            try:
                await self.refresh()
            except OSError as e:
                log.warning("node status: cannot read the host's usage: %s", e)
            await asyncio.sleep(self.period if self.ready else min(self.period, NOT_READY_PERIOD))
