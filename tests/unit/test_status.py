"""Pod status as kubelet computes it: phase, conditions, container statuses (no Docker)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import pytest

from minikubelet.container.refs import container_field_path
from minikubelet.container.state import ContainerRecord, Waiting
from minikubelet.model.spec import Pod
from minikubelet.status.generate import ProbeView, generate_pod_status, qos_class
from minikubelet.status.types import PodPhase, PodStatus
from tests.unit.helpers import make_pod, rec, sandbox, state_of

NOW = 1000.0


def status(
    pod: Pod,
    *records: ContainerRecord,
    waiting: dict[str, Waiting] | None = None,
    probes: ProbeView | None = None,
    previous: PodStatus | None = None,
) -> PodStatus:
    return generate_pod_status(
        pod,
        state_of(pod, *records),
        now=NOW,
        host_ip="192.0.2.2",
        pod_ip="10.0.0.5",
        waiting=waiting,
        probes=probes,
        previous=previous,
    )


ALWAYS = make_pod(("a", "b"))
ON_FAILURE = make_pod(("a", "b"), policy="OnFailure")
NEVER = make_pod(("a", "b"), policy="Never")
INIT_NEVER = make_pod(("a",), init=("i",), policy="Never")
INIT = make_pod(("a",), init=("i",))
SIDECAR = make_pod(("a",), sidecars=("s",))

PHASES = [
    ("nothing-yet", ALWAYS, [], {}, PodPhase.PENDING),
    ("one-waiting", ALWAYS, [sandbox(ALWAYS), rec(ALWAYS, "a")], {}, PodPhase.PENDING),
    (
        "all-running",
        ALWAYS,
        [sandbox(ALWAYS), rec(ALWAYS, "a"), rec(ALWAYS, "b")],
        {},
        PodPhase.RUNNING,
    ),
    (
        "always-all-exited-is-running",
        ALWAYS,
        [
            sandbox(ALWAYS),
            rec(ALWAYS, "a", state="exited"),
            rec(ALWAYS, "b", state="exited", exit_code=1),
        ],
        {},
        PodPhase.RUNNING,
    ),
    (
        "on-failure-all-zero-succeeds",
        ON_FAILURE,
        [
            sandbox(ON_FAILURE),
            rec(ON_FAILURE, "a", state="exited"),
            rec(ON_FAILURE, "b", state="exited"),
        ],
        {},
        PodPhase.SUCCEEDED,
    ),
    (
        "on-failure-one-failed-is-running",
        ON_FAILURE,
        [
            sandbox(ON_FAILURE),
            rec(ON_FAILURE, "a", state="exited"),
            rec(ON_FAILURE, "b", state="exited", exit_code=1),
        ],
        {},
        PodPhase.RUNNING,
    ),
    (
        "never-one-failed-fails",
        NEVER,
        [
            sandbox(NEVER),
            rec(NEVER, "a", state="exited"),
            rec(NEVER, "b", state="exited", exit_code=1),
        ],
        {},
        PodPhase.FAILED,
    ),
    (
        "never-all-zero-succeeds",
        NEVER,
        [sandbox(NEVER), rec(NEVER, "a", state="exited"), rec(NEVER, "b", state="exited")],
        {},
        PodPhase.SUCCEEDED,
    ),
    (
        "never-one-still-running",
        NEVER,
        [sandbox(NEVER), rec(NEVER, "a", state="exited", exit_code=1), rec(NEVER, "b")],
        {},
        PodPhase.RUNNING,
    ),
    (
        "crash-loop-is-running",
        ALWAYS,
        [sandbox(ALWAYS), rec(ALWAYS, "a", state="exited", exit_code=1), rec(ALWAYS, "b")],
        {"a": Waiting("CrashLoopBackOff", "back-off")},
        PodPhase.RUNNING,
    ),
    ("init-running-is-pending", INIT, [sandbox(INIT), rec(INIT, "i")], {}, PodPhase.PENDING),
    (
        "failed-init-under-never-fails",
        INIT_NEVER,
        [sandbox(INIT_NEVER), rec(INIT_NEVER, "i", state="exited", exit_code=1)],
        {},
        PodPhase.FAILED,
    ),
    (
        "failed-init-retrying-is-pending",
        INIT,
        [sandbox(INIT), rec(INIT, "i", state="exited", exit_code=1)],
        {"i": Waiting("CrashLoopBackOff", "")},
        PodPhase.PENDING,
    ),
    (
        "sidecar-and-app-running",
        SIDECAR,
        [sandbox(SIDECAR), rec(SIDECAR, "s"), rec(SIDECAR, "a")],
        {},
        PodPhase.RUNNING,
    ),
    (
        "image-error-is-pending",
        ALWAYS,
        [sandbox(ALWAYS), rec(ALWAYS, "b")],
        {"a": Waiting("ErrImageNeverPull", "x")},
        PodPhase.PENDING,
    ),
]


@pytest.mark.parametrize(
    ("pod", "records", "waiting", "phase"), [p[1:] for p in PHASES], ids=[p[0] for p in PHASES]
)
def test_phase(
    pod: Pod, records: list[ContainerRecord], waiting: dict[str, Waiting], phase: PodPhase
) -> None:
    assert status(pod, *records, waiting=waiting).phase is phase


def test_terminal_phase_is_sticky() -> None:
    done = status(
        NEVER, sandbox(NEVER), rec(NEVER, "a", state="exited"), rec(NEVER, "b", state="exited")
    )
    assert done.phase is PodPhase.SUCCEEDED
    again = status(NEVER, sandbox(NEVER), rec(NEVER, "a"), rec(NEVER, "b"), previous=done)
    assert again.phase is PodPhase.SUCCEEDED


def _api(s: PodStatus) -> dict[str, Any]:
    return s.to_api()


def test_running_pod_api_shape() -> None:
    s = status(ALWAYS, sandbox(ALWAYS), rec(ALWAYS, "b"), rec(ALWAYS, "a", attempt=2))
    api = _api(s)
    assert api["phase"] == "Running"
    assert [c["type"] for c in api["conditions"]] == [
        "PodReadyToStartContainers",
        "Initialized",
        "Ready",
        "ContainersReady",
        "PodScheduled",
    ]
    assert all(c["status"] == "True" for c in api["conditions"])
    assert api["podIP"] == "10.0.0.5"
    assert api["podIPs"] == [{"ip": "10.0.0.5"}]
    assert api["hostIP"] == "192.0.2.2"
    assert [c["name"] for c in api["containerStatuses"]] == ["a", "b"]  # sorted by name
    a = api["containerStatuses"][0]
    assert a["state"] == {"running": {"startedAt": "1970-01-01T00:01:40Z"}}
    assert a["lastState"] == {}
    assert a["restartCount"] == 2
    assert a["ready"] is True
    assert a["started"] is True
    assert a["containerID"].startswith("docker://")
    assert api["qosClass"] == "BestEffort"


def test_waiting_reasons_and_not_ready_conditions() -> None:
    api = _api(status(ALWAYS, sandbox(ALWAYS), rec(ALWAYS, "b")))
    a = next(c for c in api["containerStatuses"] if c["name"] == "a")
    assert a["state"] == {"waiting": {"reason": "ContainerCreating"}}
    assert a["ready"] is False
    ready = next(c for c in api["conditions"] if c["type"] == "ContainersReady")
    assert ready["status"] == "False"
    assert ready["reason"] == "ContainersNotReady"
    assert ready["message"] == "containers with unready status: [a]"


def test_init_containers_status() -> None:
    api = _api(status(INIT, sandbox(INIT), rec(INIT, "i")))
    assert api["initContainerStatuses"][0]["state"]["running"]
    a = api["containerStatuses"][0]
    assert a["state"] == {"waiting": {"reason": "PodInitializing"}}
    init = next(c for c in api["conditions"] if c["type"] == "Initialized")
    assert init["status"] == "False"
    assert init["reason"] == "ContainersNotInitialized"
    assert init["message"] == "containers with incomplete status: [i]"


def test_crash_loop_shows_last_state() -> None:
    dead = rec(ALWAYS, "a", attempt=3, state="exited", exit_code=2, started=150.0, finished=200.0)
    api = _api(
        status(
            ALWAYS,
            sandbox(ALWAYS),
            dead,
            rec(ALWAYS, "b"),
            waiting={"a": Waiting("CrashLoopBackOff", "back-off 40s")},
        )
    )
    a = api["containerStatuses"][0]
    assert a["state"] == {"waiting": {"reason": "CrashLoopBackOff", "message": "back-off 40s"}}
    assert a["lastState"]["terminated"]["exitCode"] == 2
    assert a["lastState"]["terminated"]["reason"] == "Error"
    assert a["lastState"]["terminated"]["startedAt"] == "1970-01-01T00:02:30Z"
    assert a["restartCount"] == 3


def test_restarted_container_has_previous_termination() -> None:
    old = rec(ALWAYS, "a", attempt=0, state="exited", exit_code=1, created=1)
    new = rec(ALWAYS, "a", attempt=1, created=2)
    api = _api(status(ALWAYS, sandbox(ALWAYS), old, new, rec(ALWAYS, "b")))
    a = api["containerStatuses"][0]
    assert "running" in a["state"]
    assert a["lastState"]["terminated"]["exitCode"] == 1
    assert a["restartCount"] == 1


@pytest.mark.parametrize(
    ("record_kwargs", "reason"),
    [
        ({"exit_code": 0}, "Completed"),
        ({"exit_code": 1}, "Error"),
        ({"exit_code": 137, "oom": True}, "OOMKilled"),
    ],
    ids=["completed", "error", "oom"],
)
def test_terminated_reasons(record_kwargs: dict[str, Any], reason: str) -> None:
    api = _api(
        status(
            NEVER, sandbox(NEVER), rec(NEVER, "a", state="exited", **record_kwargs), rec(NEVER, "b")
        )
    )
    a = api["containerStatuses"][0]
    assert a["state"]["terminated"]["reason"] == reason


def test_readiness_probe_drives_ready() -> None:
    pod = make_pod(
        ("a",), container_extra={"a": {"readinessProbe": {"exec": {"command": ["true"]}}}}
    )
    not_yet = status(pod, sandbox(pod), rec(pod, "a"))
    assert not_yet.container_statuses[0].ready is False
    ready = status(pod, sandbox(pod), rec(pod, "a"), probes=ProbeView(ready={"a": True}))
    assert ready.container_statuses[0].ready is True
    condition = ready.condition("Ready")
    assert condition is not None
    assert condition.status


def test_startup_probe_gates_started_and_ready() -> None:
    s = status(
        ALWAYS,
        sandbox(ALWAYS),
        rec(ALWAYS, "a"),
        rec(ALWAYS, "b"),
        probes=ProbeView(started={"a": False}),
    )
    a = s.container_statuses[0]
    assert a.started is False
    assert a.ready is False


def test_transition_time_moves_only_on_flip() -> None:
    first = generate_pod_status(
        ALWAYS,
        state_of(ALWAYS, sandbox(ALWAYS), rec(ALWAYS, "a")),
        now=100,
        host_ip="h",
        pod_ip="p",
    )
    second = generate_pod_status(
        ALWAYS,
        state_of(ALWAYS, sandbox(ALWAYS), rec(ALWAYS, "a")),
        now=200,
        host_ip="h",
        pod_ip="p",
        previous=first,
    )
    third = generate_pod_status(
        ALWAYS,
        state_of(ALWAYS, sandbox(ALWAYS), rec(ALWAYS, "a"), rec(ALWAYS, "b")),
        now=300,
        host_ip="h",
        pod_ip="p",
        previous=second,
    )
    cr = [s.condition("ContainersReady") for s in (first, second, third)]
    assert [c.last_transition_time for c in cr if c] == [100, 100, 300]
    assert third.start_time == 100


def test_readiness_gates_hold_ready() -> None:
    pod = make_pod(("a",), extra={"readinessGates": [{"conditionType": "example.com/gate"}]})
    s = status(pod, sandbox(pod), rec(pod, "a"))
    ready = s.condition("Ready")
    assert ready is not None
    assert not ready.status
    assert ready.reason == "ReadinessGatesNotReady"


GUARANTEED = {"limits": {"cpu": "1", "memory": "64Mi"}}

# (id, app containers, init containers, resources by container name, qosClass)
QOS: list[tuple[str, tuple[str, ...], tuple[str, ...], dict[str, Any], str]] = [
    ("best-effort", ("a",), (), {}, "BestEffort"),
    (
        "zero-limits-are-best-effort",
        ("a",),
        (),
        {"a": {"limits": {"cpu": 0, "memory": 0}}},
        "BestEffort",
    ),
    (
        "zero-requests-are-best-effort",
        ("a",),
        (),
        {"a": {"requests": {"cpu": "0", "memory": "0Mi"}}},
        "BestEffort",
    ),
    ("limits-only-guaranteed", ("a",), (), {"a": GUARANTEED}, "Guaranteed"),
    (
        "equal-requests-guaranteed",
        ("a",),
        (),
        {"a": {"requests": {"cpu": "1000m", "memory": "64Mi"}, **GUARANTEED}},
        "Guaranteed",
    ),
    (
        "zero-cpu-limit-is-burstable",
        ("a",),
        (),
        {"a": {"limits": {"cpu": 0, "memory": "64Mi"}}},
        "Burstable",
    ),
    (
        "zero-cpu-request-is-burstable",
        ("a",),
        (),
        {"a": {"requests": {"cpu": 0}, **GUARANTEED}},
        "Burstable",
    ),
    ("requests-only-burstable", ("a",), (), {"a": {"requests": {"cpu": "100m"}}}, "Burstable"),
    ("cpu-limit-only-burstable", ("a",), (), {"a": {"limits": {"cpu": "1"}}}, "Burstable"),
    (
        "lower-request-burstable",
        ("a",),
        (),
        {"a": {"requests": {"cpu": "500m"}, **GUARANTEED}},
        "Burstable",
    ),
    (
        "every-container-guaranteed",
        ("a", "b"),
        ("i",),
        {"a": GUARANTEED, "b": GUARANTEED, "i": GUARANTEED},
        "Guaranteed",
    ),
    (
        "app-without-limits-burstable",
        ("a", "b"),
        ("i",),
        {"a": GUARANTEED, "i": GUARANTEED},
        "Burstable",
    ),
    (
        "init-without-limits-burstable",
        ("a", "b"),
        ("i",),
        {"a": GUARANTEED, "b": GUARANTEED},
        "Burstable",
    ),
    (
        "init-only-resources-burstable",
        ("a",),
        ("i",),
        {"i": {"requests": {"memory": "1Mi"}}},
        "Burstable",
    ),
]


@pytest.mark.parametrize(
    ("apps", "inits", "resources", "expected"), [q[1:] for q in QOS], ids=[q[0] for q in QOS]
)
def test_qos_class(
    apps: tuple[str, ...], inits: tuple[str, ...], resources: dict[str, Any], expected: str
) -> None:
    pod = make_pod(
        apps,
        init=inits,
        container_extra={name: {"resources": r} for name, r in resources.items()},
    )
    assert qos_class(pod) == expected
    assert status(pod).to_api()["qosClass"] == expected


def test_host_network_pod_ip_is_host_ip() -> None:
    pod = make_pod(("a",), extra={"hostNetwork": True})
    s = status(pod, sandbox(pod, ip=""), rec(pod, "a"))
    assert s.pod_ip == "192.0.2.2"


REFS = make_pod(("web", "log"), init=("setup",), sidecars=("proxy",))


@pytest.mark.parametrize(
    ("name", "field_path"),
    [
        ("web", "spec.containers{web}"),
        ("log", "spec.containers{log}"),
        ("setup", "spec.initContainers{setup}"),
        ("proxy", "spec.initContainers{proxy}"),
        ("gone", ""),
    ],
    ids=["app", "second-app", "init", "sidecar", "not-in-spec"],
)
def test_container_field_path(name: str, field_path: str) -> None:
    assert container_field_path(REFS, name) == field_path


# --- lastState: the run before the current one, whatever the current state ---

ONCE = make_pod(("a",), policy="OnFailure")
FAILED_0 = rec(ONCE, "a", attempt=0, state="exited", exit_code=1, started=100, finished=110)
OK_0 = rec(ONCE, "a", attempt=0, state="exited", exit_code=0, started=100, finished=110)
RUN_0 = rec(ONCE, "a", attempt=0, started=100)
OK_1 = rec(ONCE, "a", attempt=1, state="exited", exit_code=0, started=120, finished=130)
FAILED_1 = rec(ONCE, "a", attempt=1, state="exited", exit_code=1, started=120, finished=130)
RUN_1 = rec(ONCE, "a", attempt=1, started=120)
CREATED_1 = rec(ONCE, "a", attempt=1, state="created")


def _terminated(exit_code: int, attempt: int, started: str, finished: str) -> dict[str, Any]:
    return {
        "terminated": {
            "exitCode": exit_code,
            "reason": "Completed" if exit_code == 0 else "Error",
            "startedAt": f"1970-01-01T00:{started}Z",
            "finishedAt": f"1970-01-01T00:{finished}Z",
            "containerID": f"docker://a-{attempt}-sb-current",
        }
    }


EXIT_1_RUN_0 = _terminated(1, 0, "01:40", "01:50")
EXIT_0_RUN_0 = _terminated(0, 0, "01:40", "01:50")
EXIT_0_RUN_1 = _terminated(0, 1, "02:00", "02:10")
EXIT_1_RUN_1 = _terminated(1, 1, "02:00", "02:10")
VANISHED = {
    "terminated": {
        "exitCode": 137,
        "reason": "ContainerStatusUnknown",
        "message": "The container could not be located when the pod was deleted.  "
        "The container used to be Running",
        "startedAt": None,
        "finishedAt": None,
    }
}
CREATING = {"waiting": {"reason": "ContainerCreating"}}
BACK_OFF = Waiting("CrashLoopBackOff", "back-off 10s")


@dataclass
class LastCase:
    id: str
    records: list[ContainerRecord]
    # Expected: state, lastState, restartCount of container "a".
    state: dict[str, Any]
    last_state: dict[str, Any]
    restart_count: int
    waiting: dict[str, Waiting] = field(default_factory=dict)
    # The status published before this one, from these records and waiting reasons.
    before: list[ContainerRecord] | None = None
    before_waiting: dict[str, Waiting] = field(default_factory=dict)


LAST_STATE = [
    LastCase(
        "first-run-running", [RUN_0], {"running": {"startedAt": "1970-01-01T00:01:40Z"}}, {}, 0
    ),
    LastCase(
        "running-after-a-failure",
        [FAILED_0, RUN_1],
        {"running": {"startedAt": "1970-01-01T00:02:00Z"}},
        EXIT_1_RUN_0,
        1,
    ),
    LastCase("first-run-terminated", [OK_0], EXIT_0_RUN_0, {}, 0),
    LastCase(
        # The black-box case: OnFailure, failed once, restarted, succeeded.
        "terminated-after-a-failure",
        [FAILED_0, OK_1],
        EXIT_0_RUN_1,
        EXIT_1_RUN_0,
        1,
    ),
    LastCase(
        # The agent keeps one dead instance per container: the failed run is
        # removed, and what was reported for this instance stands.
        "terminated-after-a-failure-once-removed",
        [OK_1],
        EXIT_0_RUN_1,
        EXIT_1_RUN_0,
        1,
        before=[FAILED_0, OK_1],
    ),
    LastCase(
        "terminated-after-a-failure-removed-while-running",
        [OK_1],
        EXIT_0_RUN_1,
        EXIT_1_RUN_0,
        1,
        before=[FAILED_0, RUN_1],
    ),
    LastCase("terminated-with-nothing-known-before", [OK_1], EXIT_0_RUN_1, {}, 1),
    LastCase(
        "terminated-never-repeats-its-own-exit",
        [FAILED_1],
        EXIT_1_RUN_1,
        {},
        1,
        before=[FAILED_1],
        before_waiting={"a": BACK_OFF},
    ),
    LastCase(
        "crash-loop-shows-the-exit-it-waits-after",
        [FAILED_0, FAILED_1],
        {"waiting": {"reason": "CrashLoopBackOff", "message": "back-off 10s"}},
        EXIT_1_RUN_1,
        1,
        waiting={"a": BACK_OFF},
    ),
    LastCase("created-after-a-failure", [FAILED_0, CREATED_1], CREATING, EXIT_1_RUN_0, 1),
    LastCase("never-started", [], CREATING, {}, 0),
    LastCase(
        # Removed behind the agent's back while running: the kubelet infers it died.
        "vanished-while-running",
        [],
        CREATING,
        VANISHED,
        1,
        before=[RUN_0],
    ),
    LastCase(
        "vanished-while-running-keeps-the-earlier-exit",
        [],
        CREATING,
        EXIT_1_RUN_0,
        1,
        before=[FAILED_0, RUN_1],
    ),
    LastCase(
        "vanished-after-terminating-keeps-its-status",
        [],
        EXIT_0_RUN_1,
        EXIT_1_RUN_0,
        1,
        before=[FAILED_0, OK_1],
    ),
    LastCase(
        "vanished-then-a-start-error",
        [],
        {"waiting": {"reason": "ErrImagePull", "message": "pull failed"}},
        EXIT_0_RUN_1,
        1,
        waiting={"a": Waiting("ErrImagePull", "pull failed")},
        before=[FAILED_0, OK_1],
    ),
]


@pytest.mark.parametrize("case", LAST_STATE, ids=[c.id for c in LAST_STATE])
def test_last_state(case: LastCase) -> None:
    previous = None
    if case.before is not None:
        previous = status(ONCE, sandbox(ONCE), *case.before, waiting=case.before_waiting)
    api = _api(status(ONCE, sandbox(ONCE), *case.records, waiting=case.waiting, previous=previous))
    [a] = api["containerStatuses"]
    assert a["state"] == case.state
    assert a["lastState"] == case.last_state
    assert a["restartCount"] == case.restart_count
    assert a["ready"] is ("running" in case.state)


# --- ready of init containers: a regular one once it exited 0 (the prober manager) ---

INITS = make_pod(
    ("a",),
    sidecars=("s",),
    init=("i",),
    container_extra={"s": {"readinessProbe": {"exec": {"command": ["true"]}}}},
)


def _init_status(
    *records: ContainerRecord,
    waiting: dict[str, Waiting] | None = None,
    probes: ProbeView | None = None,
) -> dict[str, dict[str, Any]]:
    api = _api(status(INITS, sandbox(INITS), *records, waiting=waiting, probes=probes))
    return {s["name"]: s for s in api["initContainerStatuses"]}


INIT_READY = [
    ("regular-exit-0-is-ready", [rec(INITS, "i", state="exited")], {}, None, "i", True),
    (
        "regular-exit-1-is-not",
        [rec(INITS, "i", state="exited", exit_code=1)],
        {},
        None,
        "i",
        False,
    ),
    ("regular-running-is-not", [rec(INITS, "i")], {}, None, "i", False),
    (
        "regular-in-back-off-is-not",
        [rec(INITS, "i", state="exited", exit_code=1)],
        {"i": BACK_OFF},
        None,
        "i",
        False,
    ),
    ("regular-not-started-is-not", [], {}, None, "i", False),
    ("sidecar-before-its-probe-is-not", [rec(INITS, "s")], {}, None, "s", False),
    (
        "sidecar-ready-by-its-probe",
        [rec(INITS, "s")],
        {},
        ProbeView(ready={"s": True}),
        "s",
        True,
    ),
    (
        "sidecar-exit-0-is-not",
        [rec(INITS, "s", state="exited")],
        {},
        ProbeView(ready={"s": True}),
        "s",
        False,
    ),
]


@pytest.mark.parametrize(
    ("records", "waiting", "probes", "name", "ready"),
    [c[1:] for c in INIT_READY],
    ids=[c[0] for c in INIT_READY],
)
def test_init_container_ready(
    records: list[ContainerRecord],
    waiting: dict[str, Waiting],
    probes: ProbeView | None,
    name: str,
    ready: bool,
) -> None:
    statuses = _init_status(*records, waiting=waiting, probes=probes)
    assert statuses[name]["ready"] is ready
    # Readiness never makes an init container "started": only running ones are.
    assert statuses[name]["started"] is ("running" in statuses[name]["state"])


def test_completed_init_container_api_fields() -> None:
    done = rec(INITS, "i", state="exited", started=100, finished=110)
    assert _init_status(rec(INITS, "s"), done)["i"] == {
        "name": "i",
        "state": {
            "terminated": {
                "exitCode": 0,
                "reason": "Completed",
                "startedAt": "1970-01-01T00:01:40Z",
                "finishedAt": "1970-01-01T00:01:50Z",
                "containerID": "docker://i-0-sb-current",
            }
        },
        "lastState": {},
        "ready": True,
        "restartCount": 0,
        "image": "busybox:1",
        "imageID": "",
        "containerID": "docker://i-0-sb-current",
        "started": False,
    }


@pytest.mark.parametrize("name", ["i", "s"], ids=["regular-init", "sidecar"])
def test_init_container_that_exited_0_is_never_shown_waiting(name: str) -> None:
    # The kubelet skips init containers whose latest run exited 0 when it sets
    # waiting reasons; a sidecar in back-off after exit 0 reads "Completed".
    statuses = _init_status(rec(INITS, name, state="exited"), waiting={name: BACK_OFF})
    assert statuses[name]["state"]["terminated"]["reason"] == "Completed"
    assert statuses[name]["lastState"] == {}
