"""Probe workers: one asyncio task per (pod, container, probe kind), per container instance.

Each worker ticks on its own fixed schedule (a slow probe does not shift it;
missed ticks are dropped), asks its ``ProbeTracker`` whether to probe, runs the
handler and, when the stored result flips, wakes the pod's worker, which then
kills an unhealthy container or publishes the new readiness. Probes of one pod
never wait on another's: network probes run in the event loop, execs on the
runtime's own small exec pool.

Beyond the kubelet: the pod annotation ``probes.minikubelet.io/period-ms``
(``"<container>.<liveness|readiness|startup>=<ms>[,...]"``) sets a period below
one second for a probe, which the API's whole seconds cannot express.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
import random
import time
from collections.abc import Callable

from minikubelet.container.cache import RuntimeCache
from minikubelet.container.refs import container_field_path
from minikubelet.container.state import ContainerRecord, PodRuntimeState, Unhealthy
from minikubelet.events import EventType
from minikubelet.metrics import Metrics, ProbeLabels
from minikubelet.model.spec import Container, Pod, PodUID, Probe
from minikubelet.prober.handlers import Executor, ProbeRunner, ProbeTarget
from minikubelet.prober.state import Outcome, ProbeKind, ProbeTracker, Result, Skip
from minikubelet.status.generate import ProbeView

log = logging.getLogger(__name__)

PERIOD_ANNOTATION = "probes.minikubelet.io/period-ms"
MIN_PERIOD_MS = 50
# An error (the probe could not run at all) is retried this often within a tick.
MAX_ATTEMPTS = 3

EventSink = Callable[[Pod, EventType, str, str, str], None]


def period_overrides(pod: Pod) -> dict[tuple[str, ProbeKind], float]:
    """Sub-second periods from the annotation, in seconds; malformed entries are ignored."""
    raw = pod.annotations.get(PERIOD_ANNOTATION, "")
    out: dict[tuple[str, ProbeKind], float] = {}
    for item in raw.split(","):
        key, _, value = item.strip().partition("=")
        container, _, kind = key.partition(".")
        try:
            probe_kind = ProbeKind(kind.capitalize())
            ms = int(value)
        except ValueError:
            continue
        if container and ms >= MIN_PERIOD_MS:
            out[(container, probe_kind)] = ms / 1000
    return out


def probes_of(container: Container) -> list[tuple[ProbeKind, Probe]]:
    pairs = [
        (ProbeKind.STARTUP, container.startup_probe),
        (ProbeKind.LIVENESS, container.liveness_probe),
        (ProbeKind.READINESS, container.readiness_probe),
    ]
    return [(kind, probe) for kind, probe in pairs if probe is not None]


class ProbeWorker:
    def __init__(
        self,
        manager: ProbeManager,
        *,
        pod: Pod,
        container: Container,
        kind: ProbeKind,
        probe: Probe,
        record: ContainerRecord,
        target: ProbeTarget,
        period: float,
    ) -> None:
        self.manager = manager
        self.pod = pod
        self.container = container
        self.kind = kind
        self.probe = probe
        self.container_id = record.id
        self.container_started = record.started_at
        self.target = target
        self.period = period
        self.tracker = ProbeTracker(kind, probe)
        self.task: asyncio.Task[None] | None = None

    def start(self) -> None:
        self.task = asyncio.get_running_loop().create_task(
            self._run(), name=f"probe-{self.kind.value.lower()}-{self.container.name}"
        )

    def stop(self) -> None:
        if self.task is not None:
            self.task.cancel()

    def retire(self) -> None:
        """Stop for good (the pod or its probe is gone), and forget its metric series.

        A new instance of the container keeps the series, as the kubelet's
        per-container worker does; only a probe that is gone drops it, so pods
        that come and go do not grow /metrics forever.
        """
        self.stop()
        if self.manager.metrics is not None:
            self.manager.metrics.probe_removed(self.labels)

    @property
    def labels(self) -> ProbeLabels:
        return ProbeLabels(
            probe_type=self.kind.value.lower(),
            container=self.container.name,
            pod=self.pod.name,
            namespace=self.pod.namespace,
            pod_uid=self.pod.uid,
        )

    async def _run(self) -> None:
        loop = asyncio.get_running_loop()
        manager = self.manager
        # Containers found running when the agent started get their first probe
        # spread over one period, as the kubelet does, so a restart does not
        # fire every probe at once. New containers are probed at once.
        adopted = self.container_started is not None and self.container_started < manager.created
        early = manager.clock() - manager.created < self.period
        jitter = random.random() * self.period if adopted and early else 0.0
        due = loop.time() + jitter
        while True:
            await asyncio.sleep(max(0.0, due - loop.time()))
            try:
                if not await self._tick(loop.time() - due):
                    return
            except asyncio.CancelledError:
                raise
            except Exception:
                log.exception("probe of %s failed", self.container.name)
            due += self.period
            now = loop.time()
            if due <= now:  # missed ticks are dropped, the schedule does not drift
                due += math.ceil((now - due) / self.period) * self.period

    async def _tick(self, lag: float) -> bool:
        """One tick; False once this instance needs no more probing."""
        manager = self.manager
        record = manager.cache.get(self.container_id)
        running = record is not None and record.running
        decision = self.tracker.decide(
            now=manager.clock(),
            running=running,
            started_at=record.started_at if record is not None else None,
            started=manager.is_started(self.pod, self.container.name),
        )
        if decision is Skip.HELD:
            return False
        if decision is Skip.NOT_RUNNING:
            if self.tracker.not_running():
                manager.changed(self.pod.uid)
            return True
        if decision is not Skip.PROBE:
            return True
        outcome, output = Outcome.ERROR, ""
        began = time.perf_counter()
        for _ in range(MAX_ATTEMPTS):
            outcome, output = await manager.runner.run(
                self.probe.handler, self.target, float(self.probe.timeout_seconds)
            )
            if outcome is not Outcome.ERROR:
                break
        if manager.metrics is not None:
            result = {Outcome.SUCCESS: "successful", Outcome.FAILURE: "failed"}.get(
                outcome, "unknown"
            )
            manager.metrics.probe_ran(self.labels, result, time.perf_counter() - began, lag)
        if outcome is not Outcome.SUCCESS:
            message = (
                f"{self.kind.value} probe failed: {output}"
                if outcome is Outcome.FAILURE
                # An error is not counted: the kubelet says so, and what it left the result at.
                else f"{self.kind.value} probe errored and resulted in unknown state: {output}"
            )
            manager.event(
                self.pod,
                EventType.WARNING,
                "Unhealthy",
                message.strip(),
                # A sidecar is an init container: its path is spec.initContainers{name}.
                container_field_path(self.pod, self.container.name),
            )
        if self.tracker.record(outcome):
            manager.changed(self.pod.uid)
        return not self.tracker.held


class ProbeManager:
    def __init__(
        self,
        executor: Executor,
        cache: RuntimeCache,
        *,
        event: EventSink,
        clock: Callable[[], float],
        metrics: Metrics | None = None,
        host_ip: str = "",
    ) -> None:
        self.runner = ProbeRunner(executor)
        # Where hostNetwork pods are probed: their podIP is the node's address.
        self.host_ip = host_ip
        self.cache = cache
        self.event = event
        self.clock = clock
        self.metrics = metrics
        self.created = clock()
        self._workers: dict[tuple[PodUID, str, ProbeKind], ProbeWorker] = {}
        self._wakers: dict[PodUID, Callable[[], None]] = {}

    def changed(self, uid: PodUID) -> None:
        wake = self._wakers.get(uid)
        if wake is not None:
            wake()

    def sync_pod(self, pod: Pod, state: PodRuntimeState, wake: Callable[[], None]) -> None:
        """Probe workers for the running instances of the pod's containers, and no others."""
        self._wakers[pod.uid] = wake
        overrides = period_overrides(pod)
        wanted: set[tuple[PodUID, str, ProbeKind]] = set()
        containers = [c for c in pod.spec.init_containers if c.is_sidecar] + list(
            pod.spec.containers
        )
        for container in containers:
            record = state.latest(container.name)
            if record is None or not record.running:
                continue
            for kind, probe in probes_of(container):
                key = (pod.uid, container.name, kind)
                wanted.add(key)
                worker = self._workers.get(key)
                if worker is not None and worker.container_id == record.id:
                    continue
                if worker is not None:
                    worker.stop()
                pod_ip = state.pod_ip
                if pod.spec.host_network:
                    host = self.host_ip or "127.0.0.1"
                else:
                    host = pod_ip or "127.0.0.1"
                period = overrides.get((container.name, kind), float(probe.period_seconds))
                worker = ProbeWorker(
                    self,
                    pod=pod,
                    container=container,
                    kind=kind,
                    probe=probe,
                    record=record,
                    target=ProbeTarget(record.id, host, container.named_ports),
                    period=period,
                )
                self._workers[key] = worker
                worker.start()
        for key in [k for k in self._workers if k[0] == pod.uid and k not in wanted]:
            self._workers.pop(key).retire()

    def _worker(self, pod: Pod, name: str, kind: ProbeKind) -> ProbeWorker | None:
        return self._workers.get((pod.uid, name, kind))

    def _passed(self, pod: Pod, name: str, kind: ProbeKind, container_id: str | None) -> bool:
        """The probe of this kind succeeded (for ``container_id`` if given)."""
        worker = self._worker(pod, name, kind)
        return (
            worker is not None
            and (container_id is None or worker.container_id == container_id)
            and worker.tracker.result is Result.SUCCESS
        )

    def is_started(self, pod: Pod, name: str) -> bool:
        container = pod.spec.container(name)
        if container is None or container.startup_probe is None:
            return True
        return self._passed(pod, name, ProbeKind.STARTUP, None)

    def view(self, pod: Pod, state: PodRuntimeState) -> ProbeView:
        """Readiness and started verdicts for the current instance of each container."""
        ready: dict[str, bool] = {}
        started: dict[str, bool] = {}
        for container in (*pod.spec.init_containers, *pod.spec.containers):
            latest = state.latest(container.name)
            current = latest.id if latest is not None else ""
            if container.readiness_probe is not None:
                ready[container.name] = self._passed(
                    pod, container.name, ProbeKind.READINESS, current
                )
            if container.startup_probe is not None:
                started[container.name] = self._passed(
                    pod, container.name, ProbeKind.STARTUP, current
                )
        return ProbeView(ready=ready, started=started)

    def unhealthy(self, pod: Pod) -> dict[str, Unhealthy]:
        """Containers whose liveness or startup probe has failed, by name."""
        out: dict[str, Unhealthy] = {}
        for (uid, name, kind), worker in self._workers.items():
            if uid != pod.uid or kind is ProbeKind.READINESS:
                continue
            if worker.tracker.result is Result.FAILURE:
                out[name] = Unhealthy(
                    worker.container_id,
                    kind.value.lower(),
                    grace_override=worker.probe.termination_grace_period_seconds,
                )
        return out

    def remove_pod(self, uid: PodUID) -> None:
        self._wakers.pop(uid, None)
        for key in [k for k in self._workers if k[0] == uid]:
            self._workers.pop(key).retire()

    async def close(self) -> None:
        workers = list(self._workers.values())
        self._workers.clear()
        for worker in workers:
            worker.stop()
        for worker in workers:
            if worker.task is not None:
                with contextlib.suppress(asyncio.CancelledError, Exception):
                    await worker.task
        await self.runner.close()
