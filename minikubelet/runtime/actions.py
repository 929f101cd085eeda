"""What to do next for one pod: the kubelet's computePodActions, as a pure function.

Given the spec, what Docker has (the runtime cache snapshot), back-off
entries, probe verdicts and the time, ``compute_pod_actions`` returns the
next steps: create a sandbox, start or restart containers, kill containers
or the whole pod. It does no I/O and reads no clock, so every Kubernetes
rule here is tested by tables.

The rules (kuberuntime_manager.go, kuberuntime_container.go):
- A new sandbox is needed if there is none or the latest is not running;
  all containers are then killed and started again, init containers first.
  Under ``restartPolicy: Never`` a pod that already ran gets no new sandbox.
- Init containers run one at a time, in order, each to exit 0; a failure is
  retried with back-off, or fails the pod under ``Never``. Sidecars (init
  containers with ``restartPolicy: Always``) are started in order, restarted
  whenever they exit, and stopped with the pod.
- App containers: never started → start; running → keep, unless its spec
  hash changed or liveness/startup failed (kill, restart unless ``Never``);
  exited → restart per policy, after back-off.
- If nothing is running and nothing will start, the pod is done: stop it.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

from minikubelet.container.state import (
    ContainerRecord,
    ContainerState,
    PodRuntimeState,
    Unhealthy,
    Waiting,
)
from minikubelet.model import naming
from minikubelet.model.spec import Container, Pod, RestartPolicy
from minikubelet.util.backoff import BackOffEntry, BackOffPolicy


@dataclass(frozen=True, slots=True)
class StartContainer:
    container: Container
    restart_count: int
    # A created but never started instance in the current sandbox (left by an
    # interrupted start): start it instead of creating another.
    existing: ContainerRecord | None = None
    # The back-off in force after this start; kept in a label so that an agent
    # restart does not reset a crash loop to an immediate restart.
    backoff: BackOffEntry | None = None


@dataclass(frozen=True, slots=True)
class KillContainer:
    record: ContainerRecord
    # Human message for the Killing event, e.g. "Container c failed liveness probe".
    message: str
    grace_override: int | None = None


@dataclass(frozen=True, slots=True)
class PodActions:
    kill_pod: bool = False
    create_sandbox: bool = False
    sandbox_attempt: int = 0
    sandbox_reason: str = ""
    start: tuple[StartContainer, ...] = ()
    kill: tuple[KillContainer, ...] = ()
    waiting: Mapping[str, Waiting] = field(default_factory=dict)
    backoff: Mapping[str, BackOffEntry] = field(default_factory=dict)
    wake_at: float | None = None
    failed_init: bool = False

    @property
    def idle(self) -> bool:
        return not (self.kill_pod or self.create_sandbox or self.start or self.kill)


def should_restart(policy: RestartPolicy, record: ContainerRecord) -> bool:
    """Whether an exited app container is to run again under the pod's policy."""
    if policy is RestartPolicy.ALWAYS:
        return True
    if policy is RestartPolicy.NEVER:
        return False
    return record.exit_code != 0


def _sandbox_changed(pod: Pod, state: PodRuntimeState) -> tuple[bool, int, str]:
    sandbox = state.sandbox
    if sandbox is None:
        return True, 0, ""
    running = [s for s in state.sandboxes if s.running]
    if len(running) > 1:
        return True, sandbox.attempt + 1, "more than one sandbox is running"
    if not sandbox.running:
        return True, sandbox.attempt + 1, "Pod sandbox changed, it will be killed and re-created."
    if sandbox.network_lost and not pod.spec.host_network:
        return True, sandbox.attempt + 1, "Pod sandbox lost its network, it will be re-created."
    return False, sandbox.attempt, ""


def _next_restart_count(state: PodRuntimeState, name: str, floor: Mapping[str, int]) -> int:
    latest = state.latest(name)
    return floor.get(name, 0) if latest is None else latest.attempt + 1


def _never_started(record: ContainerRecord | None) -> bool:
    return record is None or record.state in (ContainerState.CREATED, ContainerState.UNKNOWN)


class _Planner:
    def __init__(
        self,
        pod: Pod,
        state: PodRuntimeState,
        *,
        now: float,
        backoff: Mapping[str, BackOffEntry],
        policy: BackOffPolicy,
        unhealthy: Mapping[str, Unhealthy],
        started: Mapping[str, bool],
        restart_floor: Mapping[str, int],
    ) -> None:
        self.pod = pod
        self.state = state
        self.now = now
        self.backoff_in = backoff
        self.policy = policy
        self.unhealthy = unhealthy
        self.started = started
        self.restart_floor = restart_floor
        self.start: list[StartContainer] = []
        self.kill: list[KillContainer] = []
        self.waiting: dict[str, Waiting] = {}
        self.backoff: dict[str, BackOffEntry] = {}
        self.wake_at: float | None = None
        self.pending_backoff = 0

    def in_current_sandbox(self, name: str) -> ContainerRecord | None:
        sandbox = self.state.sandbox
        if sandbox is None:
            return None
        for c in self.state.instances(name):
            if c.label(naming.SANDBOX_ID) == sandbox.id:
                return c
        return None

    def schedule_start(
        self, container: Container, *, existing: ContainerRecord | None = None
    ) -> bool:
        """Start now, or record CrashLoopBackOff and when to look again. True if started."""
        if existing is not None and existing.state is not ContainerState.CREATED:
            existing = None
        latest = self.state.latest(container.name)
        if (
            existing is None
            and latest is not None
            and latest.exited
            and latest.finished_at is not None
        ):
            entry = self.backoff_in.get(container.name)
            if self.policy.in_backoff_since(entry, latest.finished_at, self.now):
                assert entry is not None
                delay = entry.delay
                pod = self.pod
                self.waiting[container.name] = Waiting(
                    "CrashLoopBackOff",
                    f"back-off {_duration(delay)} restarting failed container={container.name} "
                    f"pod={pod.name}_{pod.namespace}({pod.uid})",
                )
                # The window counts from the exit Docker recorded, however late
                # the agent saw it; a forgotten entry frees the start earlier.
                due = self.policy.retry_at(entry, latest.finished_at)
                self.wake_at = due if self.wake_at is None else min(self.wake_at, due)
                self.pending_backoff += 1
                return False
            self.backoff[container.name] = self.policy.next(entry, self.now)
        restart_count = (
            existing.attempt
            if existing is not None
            else _next_restart_count(self.state, container.name, self.restart_floor)
        )
        self.start.append(
            StartContainer(container, restart_count, existing, self.backoff.get(container.name))
        )
        return True

    def init_containers(self) -> tuple[bool, bool]:
        """Plan init containers and sidecars. Returns (initialized, failed_under_never)."""
        spec = self.pod.spec
        if not spec.init_containers:
            return True, False
        app_started = any(
            (r := self.in_current_sandbox(c.name)) is not None and not _never_started(r)
            for c in spec.containers
        )
        for container in spec.init_containers:
            current = self.in_current_sandbox(container.name)
            if container.is_sidecar:
                if _never_started(current):
                    self.schedule_start(container, existing=current)
                    if not app_started:
                        return False, False
                elif current is not None and current.running:
                    if container.name in self.unhealthy:
                        self.kill_unhealthy(container, current)
                        self.schedule_start(container)
                        if not app_started:
                            return False, False
                    elif not app_started and not self.started.get(container.name, True):
                        return False, False  # wait for its startup probe
                else:
                    self.schedule_start(container)
                    if not app_started:
                        return False, False
                continue
            if app_started:
                continue
            if _never_started(current):
                self.schedule_start(container, existing=current)
                return False, False
            assert current is not None
            if current.running:
                return False, False
            if current.exit_code == 0:
                continue
            if spec.restart_policy is RestartPolicy.NEVER:
                return False, True
            self.schedule_start(container)
            return False, False
        return True, False

    def kill_unhealthy(self, container: Container, record: ContainerRecord) -> None:
        verdict = self.unhealthy[container.name]
        self.kill.append(
            KillContainer(
                record,
                f"Container {container.name} failed {verdict.probe} probe, will be restarted",
                grace_override=verdict.grace_override,
            )
        )

    def app_containers(self) -> int:
        """Plan app containers; returns how many keep running."""
        policy = self.pod.spec.restart_policy
        keep = 0
        for container in self.pod.spec.containers:
            latest = self.state.latest(container.name)
            current = self.in_current_sandbox(container.name)
            if _never_started(latest):
                # Resume an interrupted start only within the current sandbox.
                resumable = latest is not None and latest is current
                self.schedule_start(container, existing=latest if resumable else None)
                continue
            assert latest is not None
            if latest.running:
                if latest.spec_hash and latest.spec_hash != container.spec_hash:
                    self.kill.append(
                        KillContainer(
                            latest,
                            f"Container {container.name} definition changed, will be restarted",
                        )
                    )
                    self.schedule_start(container)
                    continue
                verdict = self.unhealthy.get(container.name)
                if verdict is not None and verdict.container_id == latest.id:
                    self.kill_unhealthy(container, latest)
                    if policy is not RestartPolicy.NEVER:
                        self.schedule_start(container)
                    continue
                keep += 1
                continue
            if should_restart(policy, latest):
                self.schedule_start(container)
        return keep


def compute_pod_actions(
    pod: Pod,
    state: PodRuntimeState,
    *,
    now: float,
    backoff: Mapping[str, BackOffEntry] | None = None,
    policy: BackOffPolicy | None = None,
    unhealthy: Mapping[str, Unhealthy] | None = None,
    started: Mapping[str, bool] | None = None,
    restart_floor: Mapping[str, int] | None = None,
) -> PodActions:
    """The next actions for a pod that should be running (not one being deleted).

    ``backoff`` holds each container's back-off entry; ``unhealthy`` the
    liveness/startup verdicts against running instances; ``started`` whether
    each container's startup probe has passed (absent = no probe = started);
    ``restart_floor`` the restart count to use for a container with no
    instance left (all removed), from its old termination-log files.
    """
    planner = _Planner(
        pod,
        state,
        now=now,
        backoff=backoff or {},
        policy=policy or BackOffPolicy(),
        unhealthy=unhealthy or {},
        started=started or {},
        restart_floor=restart_floor or {},
    )
    spec = pod.spec
    changed, attempt, reason = _sandbox_changed(pod, state)
    if changed:
        if (
            spec.restart_policy is RestartPolicy.NEVER
            and state.sandbox is not None
            and state.containers
        ):
            # It ran, and Never means it does not run again: leave it finished.
            return PodActions(kill_pod=state.any_running)
        to_start = [
            c
            for c in spec.containers
            if not (
                spec.restart_policy is RestartPolicy.ON_FAILURE
                and (latest := state.latest(c.name)) is not None
                and latest.exited
                and latest.exit_code == 0
            )
        ]
        if not to_start and state.containers:
            return PodActions(kill_pod=state.any_running)
        # A fresh sandbox means a fresh start: init containers from the first.
        first = spec.init_containers[:1] or to_start
        for container in first:
            planner.schedule_start(container)
        return PodActions(
            kill_pod=state.any_running,
            create_sandbox=True,
            sandbox_attempt=attempt,
            sandbox_reason=reason,
            start=tuple(planner.start),
            waiting=planner.waiting,
            backoff=planner.backoff,
            wake_at=planner.wake_at,
        )

    initialized, failed = planner.init_containers()
    if failed:
        return PodActions(kill_pod=True, failed_init=True)
    keep = 0
    if initialized:
        keep = planner.app_containers()
    done = (
        initialized
        and keep == 0
        and not any(not s.container.is_sidecar for s in planner.start)
        and planner.pending_backoff == 0
    )
    if done:
        # Nothing runs and nothing will: stop the sandbox and the sidecars.
        return PodActions(kill_pod=state.any_running)
    return PodActions(
        start=tuple(planner.start),
        kill=(*planner.kill, *_strays(pod, state, already=planner.kill)),
        waiting=planner.waiting,
        backoff=planner.backoff,
        wake_at=planner.wake_at,
    )


def _strays(
    pod: Pod, state: PodRuntimeState, *, already: Sequence[KillContainer]
) -> list[KillContainer]:
    """Running containers that should not be: not in the spec, superseded, or in an old sandbox.

    They appear when an agent is killed with engine calls in flight: the engine
    finishes a start nobody waits for any more, after the next agent has moved on.
    """
    sandbox = state.sandbox
    killing = {k.record.id for k in already}
    strays: list[KillContainer] = []
    for record in state.containers:
        if not record.running or record.id in killing:
            continue
        if pod.spec.container(record.name) is None:
            message = f"Container {record.name} is not in the pod's spec"
        elif state.latest(record.name) is not record or (
            sandbox is not None and record.label(naming.SANDBOX_ID) not in (sandbox.id, "")
        ):
            message = (
                f"Container {record.name} ({record.id[:12]}) is left over from an earlier start"
            )
        else:
            continue
        strays.append(KillContainer(record, message))
    return strays


def _duration(seconds: float) -> str:
    """Go's time.Duration format for whole values: 10s, 1m20s, 5m0s."""
    total = int(seconds)
    minutes, secs = divmod(total, 60)
    if minutes:
        return f"{minutes}m{secs}s"
    return f"{secs}s"
