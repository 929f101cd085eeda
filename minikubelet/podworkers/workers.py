"""One worker task per pod: the reconcile loop.

``PodWorkers`` receives the desired set from the merge layer and keeps one
``PodWorker`` per pod uid. A worker wakes up on a new spec, on a change of
its containers in the runtime cache (Docker events), on a back-off timer,
on a probe result, and on a periodic resync; each pass does the same thing:

    observed = cache snapshot → actions = compute_pod_actions(...) →
    apply through the runtime → status = generate_pod_status(...) → publish.

A pod goes syncing → terminating → terminated, never back. A new pod with
the same full name as one still terminating waits for it, as in kubelet.
Workers are guarded: an unexpected error is logged with the pod's name and
retried after a back-off, so one bad pod never stops the agent or its
neighbours.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from enum import Enum

from minikubelet.errors import (
    ImagePullError,
    MinikubeletError,
    MountError,
    RuntimeUnavailableError,
    SandboxError,
)
from minikubelet.events import EventRecorder, EventType, ObjectRef
from minikubelet.lifecycle import POST_START_TIMEOUT, HookError, HookRunner, HookTarget
from minikubelet.metrics import Metrics
from minikubelet.model import naming
from minikubelet.model.spec import Container, Pod, PodUID
from minikubelet.podworkers.runtime import PodRuntime
from minikubelet.podworkers.terminate import Terminator
from minikubelet.prober.manager import ProbeManager
from minikubelet.runtime.actions import (
    KillContainer,
    PodActions,
    StartContainer,
    Waiting,
    backoff_from_labels,
    compute_pod_actions,
)
from minikubelet.runtime.docker import PodContext
from minikubelet.runtime.state import ContainerRecord, PodRuntimeState
from minikubelet.status.generate import generate_pod_status
from minikubelet.status.manager import StatusManager
from minikubelet.status.refs import container_field_path
from minikubelet.util.backoff import BackOffEntry, BackOffPolicy

log = logging.getLogger(__name__)


class WorkerPhase(Enum):
    SYNCING = "syncing"
    TERMINATING = "terminating"
    TERMINATED = "terminated"


@dataclass(frozen=True, slots=True)
class WorkerSettings:
    crash_backoff: BackOffPolicy = field(default_factory=BackOffPolicy)
    image_backoff: BackOffPolicy = field(default_factory=BackOffPolicy)
    # After a failed sync (kubelet: 10 s plus up to 50 % jitter).
    error_requeue: float = 10.0
    # Periodic look at every pod even without events (kubelet: 1 min plus jitter).
    resync_interval: float = 60.0
    host_ip: str = ""


@dataclass(frozen=True, slots=True)
class _Held:
    not_before: float
    waiting: Waiting
    image: str
    backoff: BackOffEntry | None


def pod_ref(pod: Pod, field_path: str = "") -> ObjectRef:
    return ObjectRef(
        kind="Pod", name=pod.name, namespace=pod.namespace, uid=pod.uid, field_path=field_path
    )


def _jitter(seconds: float) -> float:
    return seconds * (1 + random.random() * 0.5)


class PodWorker:
    def __init__(self, owner: PodWorkers, uid: PodUID, pod: Pod | None) -> None:
        self.owner = owner
        self.uid = uid
        self.pod = pod
        self.phase = WorkerPhase.SYNCING if pod is not None else WorkerPhase.TERMINATING
        self.wake = asyncio.Event()
        self.wake.set()
        self.backoff: dict[str, BackOffEntry] = backoff_from_labels(
            owner.runtime.cache.pod_state(uid)
        )
        # Starts that failed, held until their retry time (ImagePullBackOff and the like).
        self.held: dict[str, _Held] = {}
        # Sandbox or volume failure: the pod is not retried before this time.
        self.pod_not_before = 0.0
        self.waiting: dict[str, Waiting] = {}
        self.sync_failures = 0
        self._timer: asyncio.TimerHandle | None = None
        self._timer_due: float | None = None
        self.task: asyncio.Task[None] | None = None

    @property
    def key(self) -> str:
        return self.pod.key if self.pod is not None else self.uid

    def update(self, pod: Pod | None) -> None:
        if self.phase is not WorkerPhase.SYNCING:
            return
        if pod is None:
            self.phase = WorkerPhase.TERMINATING
        else:
            self.pod = pod
        self.wake.set()

    def wake_at(self, due: float) -> None:
        """Wake at wall-clock time ``due`` (the earlier of any pending wake-ups)."""
        now = self.owner.clock()
        if self._timer is not None and self._timer_due is not None and self._timer_due <= due:
            return
        if self._timer is not None:
            self._timer.cancel()
        self._timer_due = due
        self._timer = asyncio.get_running_loop().call_later(max(0.0, due - now), self._fire)

    def _fire(self) -> None:
        self._timer = None
        self._timer_due = None
        self.wake.set()

    async def run(self) -> None:
        try:
            await self.owner.wait_name_free(self)
            while self.phase is WorkerPhase.SYNCING:
                await self.wake.wait()
                self.wake.clear()
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

    async def _guarded_sync(self) -> None:
        pod = self.pod
        assert pod is not None
        try:
            await self.sync(pod)
            self.sync_failures = 0
            self.wake_at(self.owner.clock() + _jitter(self.owner.settings.resync_interval))
        except asyncio.CancelledError:
            raise
        except RuntimeUnavailableError as e:
            # Expected while the engine restarts; its return wakes the worker.
            self.sync_failures += 1
            log.warning("sync of pod %s: %s", pod.key, e)
            self.wake_at(self.owner.clock() + _jitter(self.owner.settings.error_requeue))
        except Exception:
            self.sync_failures += 1
            log.exception("sync of pod %s failed; retrying", pod.key)
            self.wake_at(self.owner.clock() + _jitter(self.owner.settings.error_requeue))

    # --- syncing ---

    def _filter_held(self, starts: tuple[StartContainer, ...], now: float) -> list[StartContainer]:
        """Drop starts that failed recently and wait out their retry time."""
        allowed = []
        for start in starts:
            held = self.held.get(start.container.name)
            if held is not None and held.image == start.container.image and now < held.not_before:
                self.waiting[start.container.name] = held.waiting
                self.wake_at(held.not_before)
                continue
            allowed.append(start)
        return allowed

    def _record_errors(
        self, pod: Pod, starts: list[StartContainer], errors: Mapping[str, MinikubeletError]
    ) -> None:
        now = self.owner.clock()
        settings = self.owner.settings
        unavailable: MinikubeletError | None = None
        for start in starts:
            name = start.container.name
            error = errors.get(name)
            if error is None:
                self.held.pop(name, None)
                continue
            if _engine_away(error):
                unavailable = error
                continue  # the engine's return wakes the worker; no retry delay
            image = start.container.image
            self.waiting[name] = Waiting(error.reason, str(error))
            if isinstance(error, ImagePullError):
                old = self.held.get(name)
                entry = settings.image_backoff.next(old.backoff if old else None, now)
                waiting = Waiting("ImagePullBackOff", f'Back-off pulling image "{image}"')
                self.held[name] = _Held(now + entry.delay, waiting, image, entry)
            else:
                delay = _jitter(settings.error_requeue)
                self.held[name] = _Held(now + delay, self.waiting[name], image, None)
            self.wake_at(self.held[name].not_before)
        if unavailable is not None:
            raise RuntimeUnavailableError(str(unavailable)) from unavailable

    def _hold_pod(self, pod: Pod, reason: str, error: MinikubeletError) -> None:
        """A sandbox or volume failure: report it, retry the pod after the requeue delay."""
        if _engine_away(error):
            # Not the pod's fault: no event, no delay; the engine's return wakes us.
            raise RuntimeUnavailableError(str(error)) from error
        self.owner.event(pod, EventType.WARNING, reason, str(error))
        self.pod_not_before = self.owner.clock() + _jitter(self.owner.settings.error_requeue)
        self.wake_at(self.pod_not_before)

    async def sync(self, pod: Pod) -> None:
        runtime = self.owner.runtime
        state = runtime.cache.pod_state(self.uid)
        now = self.owner.clock()
        prober = self.owner.prober
        actions = compute_pod_actions(
            pod,
            state,
            now=now,
            backoff=self.backoff,
            policy=self.owner.settings.crash_backoff,
            unhealthy=prober.unhealthy(pod),
            started=prober.view(pod, state).started,
            restart_floor=self._restart_floor(pod, state),
        )
        self.waiting = dict(actions.waiting)
        for name, waiting in actions.waiting.items():
            if waiting.reason == "CrashLoopBackOff":
                message = "Back-off restarting failed container " + name
                self.owner.event(
                    pod,
                    EventType.WARNING,
                    "BackOff",
                    message,
                    field_path=container_field_path(pod, name),
                )
        if actions.wake_at is not None:
            self.wake_at(actions.wake_at)
        starts = self._filter_held(actions.start, now)
        if (actions.create_sandbox or starts) and now < self.pod_not_before:
            self.wake_at(self.pod_not_before)
        elif not actions.idle:
            # Back-off advances only for starts that are really attempted, not
            # for those held back by a retry delay or an unreachable engine.
            attempted = {s.container.name for s in starts}
            before = dict(self.backoff)
            self.backoff.update({n: e for n, e in actions.backoff.items() if n in attempted})
            try:
                await self._apply(pod, state, actions, starts)
            except RuntimeUnavailableError:
                self.backoff = before  # nothing was started: no restart to count
                raise
        prober.sync_pod(pod, runtime.cache.pod_state(self.uid), self.wake.set)
        self.publish_status(pod)
        await self._collect_garbage(pod)

    async def _apply(
        self, pod: Pod, state: PodRuntimeState, actions: PodActions, starts: list[StartContainer]
    ) -> None:
        runtime = self.owner.runtime
        if actions.kill_pod:
            if actions.create_sandbox and actions.sandbox_reason:
                self.owner.event(pod, EventType.NORMAL, "SandboxChanged", actions.sandbox_reason)
            grace = pod.spec.termination_grace_period_seconds
            await self.owner.terminator.kill_running(pod, state, grace=grace)
        for kill in actions.kill:
            await self._kill(pod, kill)
        if actions.create_sandbox:
            start_time = self._start_time(state, self.owner.clock())
            try:
                errors = await runtime.start_pod(
                    pod,
                    attempt=actions.sandbox_attempt,
                    starts=starts,
                    start_time=start_time,
                    post_start=self._post_start,
                )
            except MountError as e:
                self._hold_pod(pod, "FailedMount", e)
                return
            except SandboxError as e:
                self._hold_pod(pod, "FailedCreatePodSandBox", e)
                return
            self._record_errors(pod, starts, errors)
            return
        if not starts:
            return
        sandbox = state.sandbox
        assert sandbox is not None
        try:
            ctx = runtime.context_for(pod, sandbox)
        except MountError as e:
            self._hold_pod(pod, "FailedMount", e)
            return
        self._record_errors(
            pod, starts, await runtime.start_containers(ctx, starts, self._post_start)
        )

    async def _post_start(self, ctx: PodContext, container: Container, cid: str) -> None:
        """Run a postStart hook; on failure kill the container, as the kubelet does.

        The failure is not a start error to retry later: the container did
        start, so its restart is decided by the restart policy and back-off.
        """
        handler = container.lifecycle.post_start
        if handler is None:
            return
        target = HookTarget.of(ctx.pod, container, cid, ctx.pod_ip)
        try:
            await self.owner.hooks.run("PostStart", handler, target, timeout=POST_START_TIMEOUT)
        except HookError as e:
            field_path = container_field_path(ctx.pod, container.name)
            self.owner.event(
                ctx.pod, EventType.WARNING, "FailedPostStartHook", str(e), field_path=field_path
            )
            self.waiting[container.name] = Waiting("PostStartHookError", str(e))
            record = self.owner.runtime.cache.get(cid)
            if record is not None:
                await self.owner.terminator.stop_container(
                    ctx.pod, record, ctx.pod.spec.termination_grace_period_seconds
                )

    async def _kill(self, pod: Pod, kill: KillContainer) -> None:
        self.owner.event(
            pod,
            EventType.NORMAL,
            "Killing",
            kill.message,
            field_path=container_field_path(pod, kill.record.name),
        )
        grace = (
            kill.grace_override
            if kill.grace_override is not None
            else pod.spec.termination_grace_period_seconds
        )
        await self.owner.terminator.stop_container(pod, kill.record, grace)

    def _start_time(self, state: PodRuntimeState, now: float) -> float:
        previous = self.owner.status.get(self.uid)
        if previous is not None and previous.start_time is not None:
            return previous.start_time
        return now

    def _restart_floor(self, pod: Pod, state: PodRuntimeState) -> dict[str, int]:
        """For containers with no instance left, the next restart count from their old files."""
        floor: dict[str, int] = {}
        pod_dir = self.owner.runtime.pod_directory(pod.uid)
        for container in (*pod.spec.init_containers, *pod.spec.containers):
            if state.latest(container.name) is not None:
                continue
            directory = pod_dir.root / "containers" / container.name
            try:
                counts = [int(p.name) for p in directory.iterdir() if p.name.isdigit()]
            except OSError:
                continue
            if counts:
                floor[container.name] = max(counts) + 1
        return floor

    def publish_status(self, pod: Pod) -> None:
        runtime = self.owner.runtime
        state = runtime.cache.pod_state(self.uid)
        status = generate_pod_status(
            pod,
            state,
            now=self.owner.clock(),
            host_ip=self.owner.settings.host_ip,
            pod_ip=state.pod_ip,
            waiting=self.waiting,
            probes=self.owner.prober.view(pod, state),
            previous=self.owner.status.get(self.uid),
            start_time=_label_time(state.sandbox),
        )
        self.owner.status.set(self.uid, status)

    async def _collect_garbage(self, pod: Pod) -> None:
        """Keep one dead instance per container (for lastState) and only the newest sandbox."""
        state = self.owner.runtime.cache.pod_state(self.uid)
        doomed: list[ContainerRecord] = []
        seen_dead: set[str] = set()
        current = state.sandbox
        for record in state.containers:
            if record.running:
                continue
            if record.name in seen_dead or pod.spec.container(record.name) is None:
                doomed.append(record)
            elif (
                current is not None
                and record.label(naming.SANDBOX_ID) not in (current.id, "")
                and not record.exited
            ):
                doomed.append(record)  # created in an old sandbox, never started
            else:
                seen_dead.add(record.name)
        doomed_ids = {r.id for r in doomed}
        remaining_sandboxes = {
            r.label(naming.SANDBOX_ID) for r in state.containers if r.id not in doomed_ids
        }
        for sandbox in state.sandboxes[1:]:
            if not sandbox.running and sandbox.id not in remaining_sandboxes:
                doomed.append(sandbox)
        for record in doomed:
            try:
                await self.owner.runtime.remove_container(record.id)
            except MinikubeletError as e:
                log.debug("garbage collection of %s failed: %s", record.id, e)

    # --- terminating ---

    async def _terminate(self) -> None:
        pod = self.pod
        self.phase = WorkerPhase.TERMINATING
        self.owner.prober.remove_pod(self.uid)
        try:
            await self.owner.terminator.terminate_pod(self.uid, pod)
        except RuntimeUnavailableError:
            raise  # retried by the worker guard once the engine answers again
        except Exception:
            log.exception("terminating pod %s failed; will retry", self.key)
            raise
        finally:
            self.phase = WorkerPhase.TERMINATED


def _label_time(sandbox: ContainerRecord | None) -> float | None:
    if sandbox is None:
        return None
    from minikubelet.util.timefmt import parse_docker_time

    return parse_docker_time(sandbox.label(naming.POD_START_TIME))


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
    ) -> None:
        """``hooks`` and ``prober`` default to ones over ``runtime``; shutdown closes them."""
        self.runtime = runtime
        self.status = status
        self.recorder = recorder
        self.settings = settings
        self.clock = clock
        self._workers: dict[PodUID, PodWorker] = {}
        self._desired: dict[PodUID, Pod] = {}
        self._sources_ready = False
        self._held: frozenset[str] = frozenset()
        self._reported_held: set[PodUID] = set()
        # Called when pod supervision itself breaks; the agent exits on it.
        self.on_fatal: Callable[[str, BaseException | None], None] | None = None
        self._closing = False
        self._name_free: dict[str, asyncio.Event] = {}
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
            )
        )
        self.terminator = Terminator(runtime, self.hooks, clock=clock, event=self.event)
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
                self.status.untrack(uid)
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
            worker.wake.set()
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
        delay = 1.0
        while True:
            try:
                await worker.run()
                break
            except asyncio.CancelledError:
                raise
            except RuntimeUnavailableError as e:
                log.warning("worker of pod %s: %s; retrying in %.0fs", worker.key, e, delay)
                await asyncio.sleep(delay)
                delay = min(delay * 2, 60.0)
            except Exception:
                log.exception("worker of pod %s failed; retrying in %.0fs", worker.key, delay)
                await asyncio.sleep(delay)
                delay = min(delay * 2, 60.0)
        if self._workers.get(worker.uid) is worker:
            del self._workers[worker.uid]
        if worker.pod is not None:
            event = self._name_free.pop(worker.pod.key, None)
            if event is not None:
                event.set()
        # A pod wanted again (file restored) after its termination began gets a fresh worker.
        pod = self._desired.get(worker.uid)
        if pod is not None and not self._closing:
            self._spawn(worker.uid, pod)

    async def wait_name_free(self, worker: PodWorker) -> None:
        """Hold a new pod while another pod with its full name is still terminating."""
        if worker.pod is None:
            return
        while True:
            holder = next(
                (
                    w
                    for w in self._workers.values()
                    if w is not worker
                    and w.pod is not None
                    and w.pod.key == worker.pod.key
                    and w.phase is WorkerPhase.TERMINATING
                ),
                None,
            )
            if holder is None:
                return
            event = self._name_free.setdefault(worker.pod.key, asyncio.Event())
            await event.wait()

    async def shutdown(self, *, stop_pods: bool) -> None:
        """Stop all workers; pods stay running unless ``stop_pods``."""
        self._closing = True
        workers = list(self._workers.values())
        for worker in workers:
            if worker.task is not None and (
                not stop_pods or worker.phase is not WorkerPhase.TERMINATING
            ):
                worker.task.cancel()
        for worker in workers:
            if worker.task is not None:
                with contextlib.suppress(asyncio.CancelledError, Exception):
                    await worker.task
        if stop_pods:
            await asyncio.gather(
                *(self.terminator.terminate_pod(w.uid, w.pod) for w in workers),
                return_exceptions=True,
            )
        await self.hooks.close()
        await self.prober.close()


def _engine_away(error: BaseException) -> bool:
    return isinstance(error, RuntimeUnavailableError) or isinstance(
        error.__cause__, RuntimeUnavailableError
    )
