"""One pass of a pod's reconcile loop: the kubelet's SyncPod.

    observed = cache snapshot → actions = compute_pod_actions(...) →
    apply through the runtime → status = generate_pod_status(...) → publish →
    garbage collection

The decisions are pure (runtime/actions.py, status/generate.py); this module
carries them out and keeps what a pod's next pass must remember: crash
back-off entries, starts held after an error (ImagePullBackOff and the like)
and the waiting reasons to report. It asks for its next pass through a
``Wakeup``; *when* that pass runs is the worker's business (workers.py).
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Protocol

from minikubelet.container.refs import container_field_path
from minikubelet.container.state import ContainerRecord, PodRuntimeState, Waiting
from minikubelet.errors import (
    ImagePullError,
    MinikubeletError,
    MountError,
    RuntimeUnavailableError,
    SandboxError,
)
from minikubelet.events import EventType
from minikubelet.lifecycle import POST_START_TIMEOUT, HookError, HookRunner, HookTarget
from minikubelet.model import naming
from minikubelet.model.spec import Container, Pod, PodUID
from minikubelet.podworkers.runtime import PodRuntime
from minikubelet.podworkers.settings import WorkerSettings
from minikubelet.podworkers.terminate import Terminator
from minikubelet.prober.manager import ProbeManager
from minikubelet.runtime import labels
from minikubelet.runtime.actions import (
    KillContainer,
    PodActions,
    StartContainer,
    compute_pod_actions,
)
from minikubelet.runtime.labels import backoff_from_labels
from minikubelet.runtime.pods import PodContext, PodEventSink
from minikubelet.status.generate import generate_pod_status
from minikubelet.status.manager import StatusManager
from minikubelet.util.backoff import BackOffEntry

log = logging.getLogger(__name__)


class Wakeup(Protocol):
    """How a sync asks for the next pass of its pod."""

    def wake(self) -> None:
        """As soon as possible (a probe result changed)."""

    def wake_at(self, due: float) -> None:
        """At clock time ``due`` (a back-off or a retry ends); the earliest request wins."""


@dataclass(frozen=True, slots=True)
class SyncDeps:
    """What every pod's sync uses, shared by all of them."""

    runtime: PodRuntime
    status: StatusManager
    prober: ProbeManager
    hooks: HookRunner
    terminator: Terminator
    settings: WorkerSettings
    clock: Callable[[], float]
    event: PodEventSink


@dataclass(frozen=True, slots=True)
class _Held:
    not_before: float
    waiting: Waiting
    image: str
    backoff: BackOffEntry | None


class PodSync:
    """The sync step of one pod, and what it remembers from one pass to the next."""

    def __init__(self, deps: SyncDeps, uid: PodUID, wakeup: Wakeup) -> None:
        self.deps = deps
        self.uid = uid
        self.wakeup = wakeup
        # Adopted containers keep the crash back-off they were started under.
        self.backoff: dict[str, BackOffEntry] = backoff_from_labels(
            deps.runtime.cache.pod_state(uid)
        )
        # Starts that failed, held until their retry time (ImagePullBackOff and the like).
        self.held: dict[str, _Held] = {}
        # Sandbox or volume failure: the pod is not retried before this time.
        self.pod_not_before = 0.0
        self.waiting: dict[str, Waiting] = {}

    async def sync(self, pod: Pod) -> None:
        deps = self.deps
        state = deps.runtime.cache.pod_state(self.uid)
        now = deps.clock()
        actions = compute_pod_actions(
            pod,
            state,
            now=now,
            backoff=self.backoff,
            policy=deps.settings.crash_backoff,
            unhealthy=deps.prober.unhealthy(pod),
            started=deps.prober.view(pod, state).started,
            restart_floor=self._restart_floor(pod, state),
        )
        self.waiting = dict(actions.waiting)
        for name, waiting in actions.waiting.items():
            if waiting.reason == "CrashLoopBackOff":
                # format.Pod: name_namespace(uid).
                deps.event(
                    pod,
                    EventType.WARNING,
                    "BackOff",
                    f"Back-off restarting failed container {name} in pod "
                    f"{pod.name}_{pod.namespace}({pod.uid})",
                    field_path=container_field_path(pod, name),
                )
        if actions.wake_at is not None:
            self.wakeup.wake_at(actions.wake_at)
        starts = self._filter_held(pod, actions.start, now)
        if (actions.create_sandbox or starts) and now < self.pod_not_before:
            self.wakeup.wake_at(self.pod_not_before)
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
        deps.prober.sync_pod(pod, deps.runtime.cache.pod_state(self.uid), self.wakeup.wake)
        self._publish_status(pod)
        await self._collect_garbage(pod)

    # --- starts that failed ---

    def _filter_held(
        self, pod: Pod, starts: tuple[StartContainer, ...], now: float
    ) -> list[StartContainer]:
        """Drop starts that failed recently and wait out their retry time."""
        allowed = []
        for start in starts:
            held = self.held.get(start.container.name)
            if held is not None and held.image == start.container.image and now < held.not_before:
                self.waiting[start.container.name] = held.waiting
                self.wakeup.wake_at(held.not_before)
                if held.waiting.reason == "ImagePullBackOff":
                    self._pull_backoff_events(pod, start.container.name, held.image)
                continue
            allowed.append(start)
        return allowed

    def _pull_backoff_events(self, pod: Pod, name: str, image: str) -> None:
        """The kubelet's pair for a pull in back-off, at each sync that meets it."""
        field_path = container_field_path(pod, name)
        self.deps.event(
            pod,
            EventType.NORMAL,
            "BackOff",
            f'Back-off pulling image "{image}"',
            field_path=field_path,
        )
        self.deps.event(
            pod, EventType.WARNING, "Failed", "Error: ImagePullBackOff", field_path=field_path
        )

    def _record_errors(
        self, pod: Pod, starts: list[StartContainer], errors: Mapping[str, MinikubeletError]
    ) -> None:
        now = self.deps.clock()
        settings = self.deps.settings
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
            if isinstance(error, MountError):
                # A refused subPath or volume: the kubelet reports it as an event too.
                self.deps.event(
                    pod,
                    EventType.WARNING,
                    "FailedMount",
                    str(error),
                    field_path=container_field_path(pod, name),
                )
            if isinstance(error, ImagePullError):
                old = self.held.get(name)
                entry = settings.image_backoff.next(old.backoff if old else None, now)
                waiting = Waiting("ImagePullBackOff", f'Back-off pulling image "{image}"')
                self.held[name] = _Held(now + entry.delay, waiting, image, entry)
                # This worker next wakes when the back-off ends, not at the kubelet's
                # periodic syncs that would meet it first: say so now.
                self._pull_backoff_events(pod, name, image)
            else:
                delay = settings.requeue_delay()
                self.held[name] = _Held(now + delay, self.waiting[name], image, None)
            self.wakeup.wake_at(self.held[name].not_before)
        if unavailable is not None:
            raise RuntimeUnavailableError(str(unavailable)) from unavailable

    def _hold_pod(self, pod: Pod, reason: str, error: MinikubeletError) -> None:
        """A sandbox or volume failure: report it, retry the pod after the requeue delay."""
        if _engine_away(error):
            # Not the pod's fault: no event, no delay; the engine's return wakes us.
            raise RuntimeUnavailableError(str(error)) from error
        self.deps.event(pod, EventType.WARNING, reason, str(error))
        self.pod_not_before = self.deps.clock() + self.deps.settings.requeue_delay()
        self.wakeup.wake_at(self.pod_not_before)

    # --- carrying out the actions ---

    async def _apply(
        self, pod: Pod, state: PodRuntimeState, actions: PodActions, starts: list[StartContainer]
    ) -> None:
        deps = self.deps
        runtime = deps.runtime
        if actions.kill_pod:
            if actions.create_sandbox and actions.sandbox_reason:
                deps.event(pod, EventType.NORMAL, "SandboxChanged", actions.sandbox_reason)
            grace = pod.spec.termination_grace_period_seconds
            await deps.terminator.kill_running(pod, state, grace=grace)
        for kill in actions.kill:
            await self._kill(pod, kill)
        if actions.create_sandbox:
            try:
                errors = await runtime.start_pod(
                    pod,
                    attempt=actions.sandbox_attempt,
                    starts=starts,
                    start_time=self._start_time(deps.clock()),
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
        deps = self.deps
        target = HookTarget.of(ctx.pod, container, cid, ctx.pod_ip)
        try:
            await deps.hooks.run("PostStart", handler, target, timeout=POST_START_TIMEOUT)
        except HookError as e:
            field_path = container_field_path(ctx.pod, container.name)
            # Not the hook's output: it may hold secrets (the kubelet's words and reason).
            # The waiting message and the log keep the detail.
            log.warning("pod %s: postStart hook of %s failed: %s", ctx.pod.key, container.name, e)
            deps.event(
                ctx.pod,
                EventType.WARNING,
                "FailedPostStartHook",
                "PostStartHook failed",
                field_path=field_path,
            )
            self.waiting[container.name] = Waiting("PostStartHookError", str(e))
            record = deps.runtime.cache.get(cid)
            if record is not None:
                deps.event(
                    ctx.pod,
                    EventType.NORMAL,
                    "Killing",
                    "FailedPostStartHook",
                    field_path=field_path,
                )
                await deps.terminator.stop_container(
                    ctx.pod, record, ctx.pod.spec.termination_grace_period_seconds
                )

    async def _kill(self, pod: Pod, kill: KillContainer) -> None:
        self.deps.event(
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
        await self.deps.terminator.stop_container(pod, kill.record, grace)

    def _start_time(self, now: float) -> float:
        previous = self.deps.status.get(self.uid)
        if previous is not None and previous.start_time is not None:
            return previous.start_time
        return now

    def _restart_floor(self, pod: Pod, state: PodRuntimeState) -> dict[str, int]:
        """For containers with no instance left, the next restart count from their old files."""
        floor: dict[str, int] = {}
        try:
            pod_dir = self.deps.runtime.pod_directory(pod.uid)
        except MountError:
            # An unusable uid: the start itself fails with FailedMount and says so.
            return floor
        for container in (*pod.spec.init_containers, *pod.spec.containers):
            if state.latest(container.name) is not None:
                continue
            try:
                directory = pod_dir.path("containers", container.name)
                counts = [int(p.name) for p in directory.iterdir() if p.name.isdigit()]
            except (OSError, MountError):
                continue
            if counts:
                floor[container.name] = max(counts) + 1
        return floor

    # --- reporting and cleaning up ---

    def _publish_status(self, pod: Pod) -> None:
        deps = self.deps
        state = deps.runtime.cache.pod_state(self.uid)
        status = generate_pod_status(
            pod,
            state,
            now=deps.clock(),
            host_ip=deps.settings.host_ip,
            pod_ip=state.pod_ip,
            waiting=self.waiting,
            probes=deps.prober.view(pod, state),
            previous=deps.status.get(self.uid),
            start_time=labels.pod_start_time(state.sandbox),
        )
        deps.status.set(self.uid, status)

    async def _collect_garbage(self, pod: Pod) -> None:
        """Keep one dead instance per container (for lastState) and only the newest sandbox."""
        state = self.deps.runtime.cache.pod_state(self.uid)
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
                await self.deps.runtime.remove_container(record.id)
            except MinikubeletError as e:
                log.debug("garbage collection of %s failed: %s", record.id, e)


def _engine_away(error: BaseException) -> bool:
    return isinstance(error, RuntimeUnavailableError) or isinstance(
        error.__cause__, RuntimeUnavailableError
    )
