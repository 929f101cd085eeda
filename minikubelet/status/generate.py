"""A pod's API status from its spec and what Docker has: pure, as kubelet computes it.

Follows pkg/kubelet/kubelet_pods.go (getPhase, convertToAPIContainerStatuses)
and pkg/kubelet/status/generate.go. No clock, no I/O: ``now`` and the
previous status come in, a ``PodStatus`` goes out.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field, replace

from minikubelet.container.state import ContainerRecord, PodRuntimeState, Waiting
from minikubelet.model.spec import Container, Pod, RestartPolicy
from minikubelet.status.types import (
    ContainerStatus,
    PodCondition,
    PodPhase,
    PodStatus,
    StateRunning,
    StateTerminated,
    StateWaiting,
)

CONDITION_ORDER = (
    "PodReadyToStartContainers",
    "Initialized",
    "Ready",
    "ContainersReady",
    "PodScheduled",
)


@dataclass(frozen=True, slots=True)
class ProbeView:
    """Probe verdicts for the current instance of each container.

    ``ready`` holds only containers with a readiness probe; ``started`` only
    those with a startup probe. Absent means "no probe": ready once running
    and started.
    """

    ready: Mapping[str, bool] = field(default_factory=dict)
    started: Mapping[str, bool] = field(default_factory=dict)


def qos_class(pod: Pod) -> str:
    """The kubelet's GetPodQOS (pkg/apis/core/v1/helper/qos) for cpu and memory.

    Zero quantities count as unset, so ``limits: {cpu: 0, memory: 0}`` is
    BestEffort. Requests and limits are summed over all containers before
    they are compared, as there; per-container ``requests <= limits`` (checked
    by validation) makes that the same as every container matching.
    """
    requests: dict[str, int] = {}
    limits: dict[str, int] = {}
    guaranteed = True
    for c in (*pod.spec.containers, *pod.spec.init_containers):
        r = c.resources
        for name, value in (("cpu", r.cpu_request_milli), ("memory", r.memory_request)):
            if value is not None and value > 0:
                requests[name] = requests.get(name, 0) + value
        found = set()
        for name, value in (("cpu", r.cpu_limit_milli), ("memory", r.memory_limit)):
            if value is not None and value > 0:
                limits[name] = limits.get(name, 0) + value
                found.add(name)
        if found != {"cpu", "memory"}:
            guaranteed = False
    if not requests and not limits:
        return "BestEffort"
    if (
        guaranteed
        and requests.keys() == limits.keys()
        and all(limits[name] == value for name, value in requests.items())
    ):
        return "Guaranteed"
    return "Burstable"


def terminated_state(record: ContainerRecord) -> StateTerminated:
    exit_code = record.exit_code if record.exit_code is not None else 137
    if record.oom_killed:
        reason = "OOMKilled"
    elif record.error and record.started_at is None:
        reason = "ContainerCannotRun"
    elif exit_code == 0:
        reason = "Completed"
    else:
        reason = "Error"
    message = record.message or (record.error if reason == "ContainerCannotRun" else "")
    return StateTerminated(
        exit_code=exit_code,
        reason=reason,
        started_at=record.started_at,
        finished_at=record.finished_at,
        container_id=record.docker_id,
        message=message,
    )


# What the kubelet reports for a container that was running and whose instance
# is gone without a trace (removed behind its back): it must have stopped.
_VANISHED = StateTerminated(
    exit_code=137,
    reason="ContainerStatusUnknown",
    started_at=None,
    finished_at=None,
    container_id="",
    # Sic, two spaces: the kubelet's text.
    message=(
        "The container could not be located when the pod was deleted.  "
        "The container used to be Running"
    ),
)


def _without_instance(
    container: Container, waiting: Waiting | None, default_waiting: str, old: ContainerStatus | None
) -> ContainerStatus:
    """A container with no instance left on Docker: convertToAPIContainerStatuses' defaults.

    The last reported status carries over: its restart count and lastState,
    or all of it if it had terminated; one that was running is taken to have
    died (ContainerStatusUnknown), so its pod does not fall back to Pending.
    """
    fresh = ContainerStatus(
        name=container.name,
        state=StateWaiting(default_waiting),
        last_state=None,
        ready=False,
        restart_count=0,
        image=container.image,
        started=False,
    )
    if old is None:
        status = fresh
    elif isinstance(old.state, StateTerminated):
        status = old
    elif isinstance(old.state, StateRunning) and old.last_state is None:
        status = replace(fresh, last_state=_VANISHED, restart_count=old.restart_count + 1)
    else:
        status = replace(fresh, last_state=old.last_state, restart_count=old.restart_count)
    if waiting is None:
        return status
    last = status.state if isinstance(status.state, StateTerminated) else status.last_state
    return replace(
        status,
        state=StateWaiting(waiting.reason, waiting.message),
        last_state=last,
        ready=False,
        started=False,
    )


def _container_status(
    container: Container,
    state: PodRuntimeState,
    *,
    waiting: Waiting | None,
    default_waiting: str,
    probes: ProbeView,
    old: ContainerStatus | None,
    init_container: bool,
) -> ContainerStatus:
    """One container's status; ``old`` is what the last status said about it.

    ``lastState`` is the run before the current instance, whatever the
    current state: the kubelet reads it from the previous instance on the
    runtime. The agent removes that instance once a newer one has exited too
    (one dead instance per container is kept), so when it is gone the value
    last reported for this same instance stands; an OnFailure container that
    failed, restarted and succeeded thus keeps the failure in ``lastState``.
    """
    latest = state.latest(container.name)
    if latest is None:
        return _without_instance(container, waiting, default_waiting, old)
    if init_container and latest.exited and latest.exit_code == 0:
        # The kubelet never puts an init container whose latest run exited 0
        # in a waiting state, sidecars included: it shows that run instead.
        waiting = None
    previous = state.previous(container.name)
    if previous is not None:
        last_previous = terminated_state(previous) if previous.exited else None
    elif (
        old is not None
        and old.container_id == latest.docker_id
        and old.last_state is not None
        # A crash-looping instance reports its own exit as lastState; that is
        # this run, not the one before it.
        and old.last_state.container_id != latest.docker_id
    ):
        last_previous = old.last_state
    else:
        last_previous = None
    common = {
        "image": latest.image or container.image,
        "image_id": latest.image_id,
        "container_id": latest.docker_id,
    }
    regular_init = init_container and not container.is_sidecar
    if latest.running:
        started = probes.started.get(container.name, True)
        # A regular init container is ready only once it has exited 0.
        ready = (
            not regular_init
            and started
            and probes.ready.get(container.name, container.readiness_probe is None)
        )
        return ContainerStatus(
            name=container.name,
            state=StateRunning(latest.started_at or latest.created_at),
            last_state=last_previous,
            ready=ready,
            restart_count=latest.attempt,
            started=started,
            **common,
        )
    if latest.exited and waiting is None:
        terminated = terminated_state(latest)
        return ContainerStatus(
            name=container.name,
            state=terminated,
            last_state=last_previous,
            # The kubelet's prober manager marks a regular init container
            # ready once it exited 0; sidecars and app containers are never
            # ready when terminated.
            ready=regular_init and terminated.exit_code == 0,
            restart_count=latest.attempt,
            started=False,
            **common,
        )
    # Waiting: created but not started, or a sync reason (CrashLoopBackOff, ErrImagePull...).
    w = waiting or Waiting(default_waiting, "")
    last = terminated_state(latest) if latest.exited else last_previous
    return ContainerStatus(
        name=container.name,
        state=StateWaiting(w.reason, w.message),
        last_state=last,
        ready=False,
        restart_count=latest.attempt,
        started=False,
        **common,
    )


def _phase(pod: Pod, init: list[ContainerStatus], apps: list[ContainerStatus]) -> PodPhase:
    spec = pod.spec
    pending_init = 0
    failed_init = 0
    running = waiting = stopped = succeeded = 0
    by_name = {s.name: s for s in init}
    for container in spec.init_containers:
        s = by_name[container.name]
        if container.is_sidecar:
            if isinstance(s.state, StateRunning):
                if not s.started:
                    pending_init += 1
                running += 1
            elif isinstance(s.state, StateWaiting) and s.last_state is None:
                pending_init += 1
            continue
        if isinstance(s.state, StateRunning):
            pending_init += 1
        elif isinstance(s.state, StateTerminated):
            if s.state.exit_code != 0:
                failed_init += 1
        elif s.last_state is not None:
            if s.last_state.exit_code != 0:
                failed_init += 1
        else:
            pending_init += 1
    apps_ran = False
    for s in apps:
        if isinstance(s.state, StateRunning):
            running += 1
            apps_ran = True
        elif isinstance(s.state, StateTerminated):
            stopped += 1
            apps_ran = True
            if s.state.exit_code == 0:
                succeeded += 1
        elif s.last_state is not None:
            stopped += 1
            apps_ran = True
        else:
            waiting += 1
    if failed_init > 0 and spec.restart_policy is RestartPolicy.NEVER:
        return PodPhase.FAILED
    if pending_init > 0 and not apps_ran:
        return PodPhase.PENDING
    if waiting > 0:
        return PodPhase.PENDING
    if running > 0:
        return PodPhase.RUNNING
    if stopped > 0:
        if spec.restart_policy is RestartPolicy.ALWAYS:
            return PodPhase.RUNNING
        if stopped == succeeded:
            return PodPhase.SUCCEEDED
        if spec.restart_policy is RestartPolicy.NEVER:
            return PodPhase.FAILED
        return PodPhase.RUNNING
    return PodPhase.PENDING


def _condition(
    type_: str,
    status: bool,
    now: float,
    previous: PodStatus | None,
    *,
    reason: str = "",
    message: str = "",
) -> PodCondition:
    old = previous.condition(type_) if previous is not None else None
    # The transition time moves only when the status flips.
    since = old.last_transition_time if old is not None and old.status == status else now
    return PodCondition(type_, status, since, reason, message)


def _has_started(s: ContainerStatus) -> bool:
    return not isinstance(s.state, StateWaiting) or s.last_state is not None


def generate_pod_status(
    pod: Pod,
    state: PodRuntimeState,
    *,
    now: float,
    host_ip: str,
    pod_ip: str,
    waiting: Mapping[str, Waiting] | None = None,
    probes: ProbeView | None = None,
    previous: PodStatus | None = None,
    start_time: float | None = None,
) -> PodStatus:
    waiting = waiting or {}
    probes = probes or ProbeView()
    spec = pod.spec
    has_init = bool(spec.init_containers)
    default_waiting = "PodInitializing" if has_init else "ContainerCreating"
    init_statuses = [
        _container_status(
            c,
            state,
            waiting=waiting.get(c.name),
            default_waiting=default_waiting,
            probes=probes,
            old=previous.container(c.name) if previous is not None else None,
            init_container=True,
        )
        for c in spec.init_containers
    ]
    app_statuses = [
        _container_status(
            c,
            state,
            waiting=waiting.get(c.name),
            default_waiting=default_waiting,
            probes=probes,
            old=previous.container(c.name) if previous is not None else None,
            init_container=False,
        )
        for c in spec.containers
    ]
    phase = _phase(pod, init_statuses, app_statuses)
    if previous is not None and previous.phase.terminal:
        phase = previous.phase

    sandbox = state.sandbox
    sandbox_ready = sandbox is not None and sandbox.running and (spec.host_network or bool(pod_ip))

    init_by_name = {s.name: s for s in init_statuses}
    incomplete = []
    for c in spec.init_containers:
        s = init_by_name[c.name]
        if c.is_sidecar:
            if not (isinstance(s.state, StateRunning) and s.started):
                incomplete.append(c.name)
        elif not (isinstance(s.state, StateTerminated) and s.state.exit_code == 0):
            incomplete.append(c.name)
    initialized = not incomplete or any(_has_started(s) for s in app_statuses)

    sidecars = [init_by_name[c.name] for c in spec.init_containers if c.is_sidecar]
    unready = [s.name for s in (*sidecars, *app_statuses) if not s.ready]
    containers_ready = not unready
    if containers_ready:
        cr_reason, cr_message = "", ""
    elif phase is PodPhase.SUCCEEDED:
        cr_reason, cr_message = "PodCompleted", ""
    elif phase is PodPhase.FAILED:
        cr_reason, cr_message = "PodFailed", ""
    else:
        cr_reason, cr_message = (
            "ContainersNotReady",
            f"containers with unready status: [{' '.join(unready)}]",
        )

    ready = containers_ready and not spec.readiness_gates
    if ready or not containers_ready:
        ready_reason, ready_message = cr_reason, cr_message
    else:
        missing = spec.readiness_gates[0]
        ready_reason = "ReadinessGatesNotReady"
        ready_message = f'corresponding condition of pod readiness gate "{missing}" does not exist.'

    if initialized:
        init_reason = "PodCompleted" if phase is PodPhase.SUCCEEDED and has_init else ""
        init_message = ""
    else:
        init_reason = "ContainersNotInitialized"
        init_message = f"containers with incomplete status: [{' '.join(incomplete)}]"

    start = (
        previous.start_time
        if previous is not None and previous.start_time is not None
        else start_time
    )
    if start is None:
        start = now
    conditions = (
        _condition("PodReadyToStartContainers", sandbox_ready, now, previous),
        _condition(
            "Initialized", initialized, now, previous, reason=init_reason, message=init_message
        ),
        _condition("Ready", ready, now, previous, reason=ready_reason, message=ready_message),
        _condition(
            "ContainersReady", containers_ready, now, previous, reason=cr_reason, message=cr_message
        ),
        _condition("PodScheduled", True, start, previous),
    )
    return PodStatus(
        phase=phase,
        conditions=conditions,
        host_ip=host_ip,
        pod_ip=host_ip if spec.host_network else pod_ip,
        start_time=start,
        qos_class=qos_class(pod),
        init_container_statuses=tuple(init_statuses),
        container_statuses=tuple(sorted(app_statuses, key=lambda s: s.name)),
    )
