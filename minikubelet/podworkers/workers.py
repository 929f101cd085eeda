"""When each pod's work runs: one worker task per pod, as the kubelet's pod_workers.go.

``PodWorkers`` receives the desired set from the merge layer and keeps one
``PodWorker`` per pod uid. A worker wakes up on a new spec (the latest one
wins), on a change of its containers in the runtime cache (Docker events), on
a back-off timer, on a probe result, and on a periodic resync; each wake-up
runs one sync pass (sync.py). A pod goes syncing → terminating → terminated,
never back (terminate.py stops it); a pod on Docker that no source has (an
orphan, found after a restart) gets a worker that only terminates it.

One pod per full name: a new pod waits while another of its name is still
terminating, as in kubelet, whether that one came from a source or is an
orphan known by its containers' labels, and also while a failed termination
waits for its retry. Workers are guarded: an unexpected error is logged with
the pod's name and retried after a back-off, so one bad pod never stops the
agent or its neighbours.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Mapping
from enum import Enum
from typing import Protocol

from minikubelet.container.state import PodRuntimeState
from minikubelet.errors import RuntimeUnavailableError
from minikubelet.events import EventRecorder, EventType, ObjectRef
from minikubelet.lifecycle import HookRunner
from minikubelet.metrics import Metrics
from minikubelet.model import naming
from minikubelet.model.spec import Pod, PodUID
from minikubelet.podworkers.runtime import PodRuntime
from minikubelet.podworkers.settings import WorkerSettings
from minikubelet.podworkers.sync import PodSync, SyncDeps
from minikubelet.podworkers.terminate import Terminator
from minikubelet.prober.manager import ProbeManager
from minikubelet.status.manager import StatusManager

log = logging.getLogger(__name__)


class Timer(Protocol):
    def cancel(self) -> None: ...


# Calls back once the workers' clock reads the given time: by default an
# event-loop timer; tests pass one that their hand-driven clock fires.
CallAt = Callable[[float, Callable[[], None]], Timer]


def loop_call_at(clock: Callable[[], float]) -> CallAt:
    def call_at(when: float, callback: Callable[[], None]) -> Timer:
        return asyncio.get_running_loop().call_later(max(0.0, when - clock()), callback)

    return call_at


class WorkerPhase(Enum):
    SYNCING = "syncing"
    TERMINATING = "terminating"
    TERMINATED = "terminated"


def pod_ref(pod: Pod, field_path: str = "") -> ObjectRef:
    return ObjectRef(
        kind="Pod", name=pod.name, namespace=pod.namespace, uid=pod.uid, field_path=field_path
    )


class PodWorker:
    """One pod's task: its phase, its wake-ups and its sync."""

    def __init__(self, owner: PodWorkers, uid: PodUID, pod: Pod | None) -> None:
        self.owner = owner
        self.uid = uid
        self.pod = pod
        self.phase = WorkerPhase.SYNCING if pod is not None else WorkerPhase.TERMINATING
        self._wake = asyncio.Event()
        self._wake.set()
        self.pod_sync = PodSync(owner.sync_deps, uid, self)
        # A pod no source has still holds its name, known from its containers' labels.
        self._labelled_name = (
            None if pod is not None else _name_from_labels(owner.runtime.cache.pod_state(uid))
        )
        self.sync_failures = 0
        # Waiting to run again after its loop failed (a termination that raised).
        self.retrying = False
        self._timer: Timer | None = None
        self._timer_due: float | None = None
        self.task: asyncio.Task[None] | None = None

    @property
    def key(self) -> str:
        return self.full_name or self.uid

    @property
    def full_name(self) -> str | None:
        """``namespace/name``: one pod of a full name runs at a time."""
        return self.pod.key if self.pod is not None else self._labelled_name

    def update(self, pod: Pod | None) -> None:
        if self.phase is not WorkerPhase.SYNCING:
            return
        if pod is None:
            self.phase = WorkerPhase.TERMINATING
        else:
            self.pod = pod
        self._wake.set()

    def wake(self) -> None:
        self._wake.set()

    def wake_at(self, due: float) -> None:
        """Wake at clock time ``due`` (the earlier of any pending wake-ups)."""
        if self._timer is not None and self._timer_due is not None and self._timer_due <= due:
            return
        if self._timer is not None:
            self._timer.cancel()
        self._timer_due = due
        self._timer = self.owner.call_at(due, self._fire)

    def _fire(self) -> None:
        self._timer = None
        self._timer_due = None
        self._wake.set()

    async def run(self) -> None:
        try:
            await self._wait_for_name()
            while self.phase is WorkerPhase.SYNCING:
                await self._wake.wait()
                self._wake.clear()
                if self.phase is not WorkerPhase.SYNCING:
                    break
                if self.owner.runtime.cache.stale:
                    # The engine is away: acting on old records would recreate
                    # healthy pods. The relist on its return wakes every worker.
                    continue
                await self._guarded_sync()
            await self._terminate()
        finally:
            if self._timer is not None:
                self._timer.cancel()

    async def _wait_for_name(self) -> None:
        """A new pod waits while another pod of its full name is still terminating.

        As on the kubelet, so two generations of a static pod never run side
        by side. The worker of that pod wakes this one when it ends.
        """
        logged = False
        while self.phase is WorkerPhase.SYNCING:
            holder = self.owner.name_holder(self)
            if holder is None:
                return
            if not logged:
                log.info("pod %s waits for pod %s to terminate", self.key, holder.uid)
                logged = True
            self._wake.clear()
            await self._wake.wait()

    async def _guarded_sync(self) -> None:
        pod = self.pod
        assert pod is not None
        settings = self.owner.settings
        try:
            await self.pod_sync.sync(pod)
            self.sync_failures = 0
            self.wake_at(self.owner.clock() + settings.resync_delay())
        except asyncio.CancelledError:
            raise
        except RuntimeUnavailableError as e:
            # Expected while the engine restarts; its return wakes the worker.
            self.sync_failures += 1
            log.warning("sync of pod %s: %s", pod.key, e)
            self.wake_at(self.owner.clock() + settings.requeue_delay())
        except Exception:
            self.sync_failures += 1
            log.exception("sync of pod %s failed; retrying", pod.key)
            self.wake_at(self.owner.clock() + settings.requeue_delay())

    async def _terminate(self) -> None:
        self.phase = WorkerPhase.TERMINATING
        self.owner.prober.remove_pod(self.uid)
        # A failure propagates to the guard, which runs this again after a
        # delay: until then the pod is still TERMINATING and holds its name.
        await self.owner.terminator.terminate_pod(self.uid, self.pod)
        self.phase = WorkerPhase.TERMINATED


class PodWorkers:
    def __init__(
        self,
        runtime: PodRuntime,
        status: StatusManager,
        recorder: EventRecorder,
        *,
        settings: WorkerSettings,
        clock: Callable[[], float],
        metrics: Metrics | None = None,
        hooks: HookRunner | None = None,
        prober: ProbeManager | None = None,
        call_at: CallAt | None = None,
    ) -> None:
        """``hooks`` and ``prober`` default to ones over ``runtime``; shutdown closes them.

        Every wait of the workers (back-off, retries, resync) is measured on
        ``clock`` and ends through ``call_at``.
        """
        self.runtime = runtime
        self.status = status
        self.recorder = recorder
        self.settings = settings
        self.clock = clock
        self.call_at = call_at if call_at is not None else loop_call_at(clock)
        self._workers: dict[PodUID, PodWorker] = {}
        self._desired: dict[PodUID, Pod] = {}
        self._sources_ready = False
        self._held: frozenset[str] = frozenset()
        self._reported_held: set[PodUID] = set()
        # Called when pod supervision itself breaks; the agent exits on it.
        self.on_fatal: Callable[[str, BaseException | None], None] | None = None
        self._closing = False
        self.hooks = hooks if hooks is not None else HookRunner(runtime)
        self.prober = (
            prober
            if prober is not None
            else ProbeManager(
                runtime,
                runtime.cache,
                event=lambda pod, type_, reason, message, path: self.event(
                    pod, type_, reason, message, field_path=path
                ),
                clock=clock,
                metrics=metrics,
                host_ip=settings.host_ip,
            )
        )
        self.terminator = Terminator(
            runtime, self.hooks, clock=clock, event=self.event, call_at=self.call_at
        )
        self.sync_deps = SyncDeps(
            runtime=runtime,
            status=status,
            prober=self.prober,
            hooks=self.hooks,
            terminator=self.terminator,
            settings=settings,
            clock=clock,
            event=self.event,
        )
        runtime.cache.add_listener(self.notify)

    @property
    def workers(self) -> Mapping[PodUID, PodWorker]:
        return self._workers

    def event(
        self, pod: Pod, type_: EventType, reason: str, message: str, *, field_path: str = ""
    ) -> None:
        self.recorder.record(pod_ref(pod, field_path), type_, reason, message)

    def sync_desired(
        self,
        desired: Mapping[PodUID, Pod],
        sources_ready: bool,
        held: frozenset[str] = frozenset(),
    ) -> None:
        """The merge layer's full desired set: start, update or stop workers to match.

        ``held`` names manifests that exist but give no pod right now: pods
        running from them are kept (see config/file.py), never orphaned.
        """
        if self._closing:
            return
        self._desired = dict(desired)
        self._held = held
        for uid, pod in desired.items():
            self.status.track(pod)
            worker = self._workers.get(uid)
            if worker is None:
                self._spawn(uid, pod)
            else:
                worker.update(pod)
        for uid, worker in list(self._workers.items()):
            if uid not in desired and worker.phase is WorkerPhase.SYNCING:
                log.info("pod %s removed from its source; terminating", worker.key)
                # Shown with a deletionTimestamp (kubectl: Terminating) until its worker ends.
                grace = worker.pod.spec.termination_grace_period_seconds if worker.pod else 0
                self.status.begin_deletion(uid, now=self.clock(), grace_seconds=grace)
                worker.update(None)
        self._sources_ready = self._sources_ready or sources_ready
        if self._sources_ready:
            # At every change, not only the first: a held pod whose file is
            # fixed or removed becomes an orphan then.
            self._collect_orphans()

    def _is_held(self, uid: PodUID) -> bool:
        if not self._held:
            return False
        state = self.runtime.cache.pod_state(uid)
        origins = {r.label(naming.CONFIG_ORIGIN) for r in state.sandboxes}
        return not self._held.isdisjoint(origins)

    def _collect_orphans(self) -> None:
        """Pods on Docker that no source wants (removed or edited while the agent was down)."""
        for uid in self.runtime.cache.pod_uids():
            if uid in self._desired or uid in self._workers:
                continue
            if self._is_held(uid):
                if uid not in self._reported_held:
                    self._reported_held.add(uid)
                    log.warning("pod %s is kept: its manifest exists but cannot be used now", uid)
                continue
            log.info("pod %s is in no source; terminating", uid)
            self._spawn(uid, None)
        self._reported_held &= self.runtime.cache.pod_uids()

    def notify(self, uid: PodUID) -> None:
        worker = self._workers.get(uid)
        if worker is not None:
            worker.wake()
        elif self._sources_ready and not self._closing and uid not in self._desired:
            state = self.runtime.cache.pod_state(uid)
            if not state.empty and not self._is_held(uid):
                self._spawn(uid, None)

    def _spawn(self, uid: PodUID, pod: Pod | None) -> None:
        worker = PodWorker(self, uid, pod)
        self._workers[uid] = worker
        worker.task = asyncio.get_running_loop().create_task(
            self._run_worker(worker), name=f"pod-{uid[:8]}"
        )
        worker.task.add_done_callback(self._worker_ended)

    def _worker_ended(self, task: asyncio.Task[None]) -> None:
        # _run_worker retries every Exception itself; one escaping it (or a
        # BaseException) means the supervision of pods is broken: fatal.
        if task.cancelled() or self.on_fatal is None:
            return
        error = task.exception()
        if error is not None:
            self.on_fatal(f"pod worker {task.get_name()} died", error)

    async def _run_worker(self, worker: PodWorker) -> None:
        failures = 0
        while True:
            try:
                await worker.run()
                break
            except asyncio.CancelledError:
                raise
            except RuntimeUnavailableError as e:
                delay = self.settings.worker_retry.delay(failures)
                log.warning("worker of pod %s: %s; retrying in %.0fs", worker.key, e, delay)
            except Exception:
                delay = self.settings.worker_retry.delay(failures)
                log.exception("worker of pod %s failed; retrying in %.0fs", worker.key, delay)
            failures += 1
            if self._closing:
                break  # shutdown terminates the pods itself when asked to
            worker.retrying = True
            await self._sleep(delay)
            worker.retrying = False
        if self._workers.get(worker.uid) is worker:
            del self._workers[worker.uid]
        if worker.uid not in self._desired and not self._closing:
            self.status.untrack(worker.uid)
        for other in self._workers.values():
            if worker.full_name is not None and other.full_name == worker.full_name:
                other.wake()  # it may have been waiting for this name
        # A pod wanted again (file restored) after its termination began gets a fresh worker.
        pod = self._desired.get(worker.uid)
        if pod is not None and not self._closing:
            self._spawn(worker.uid, pod)

    async def _sleep(self, seconds: float) -> None:
        """``asyncio.sleep`` on the workers' clock."""
        done = asyncio.get_running_loop().create_future()

        def fire() -> None:
            if not done.done():
                done.set_result(None)

        timer = self.call_at(self.clock() + seconds, fire)
        try:
            await done
        finally:
            timer.cancel()

    def name_holder(self, worker: PodWorker) -> PodWorker | None:
        """Another pod of the worker's full name that is still terminating, if any."""
        name = worker.full_name
        if name is None:
            return None
        for other in self._workers.values():
            if (
                other is not worker
                and other.phase is WorkerPhase.TERMINATING
                and other.full_name == name
            ):
                return other
        return None

    async def shutdown(self, *, stop_pods: bool) -> None:
        """Stop all workers; pods stay running unless ``stop_pods``.

        Cancelling the shutdown (the agent bounds it) cancels what it waits for.
        """
        self._closing = True
        workers = list(self._workers.values())
        try:
            for worker in workers:
                # A termination under way finishes; one waiting for a retry is
                # done over below with the rest.
                if worker.task is not None and (
                    not stop_pods or worker.phase is not WorkerPhase.TERMINATING or worker.retrying
                ):
                    worker.task.cancel()
            await asyncio.gather(
                *(w.task for w in workers if w.task is not None), return_exceptions=True
            )
            if stop_pods:
                await asyncio.gather(
                    *(self.terminator.terminate_pod(w.uid, w.pod) for w in workers),
                    return_exceptions=True,
                )
        finally:
            await self.hooks.close()
            await self.prober.close()


def _name_from_labels(state: PodRuntimeState) -> str | None:
    """``namespace/name`` from the pod labels every container of ours carries."""
    for record in (*state.sandboxes, *state.containers):
        if record.pod_name and record.pod_namespace:
            return f"{record.pod_namespace}/{record.pod_name}"
    return None
