"""compute_pod_actions against the kubelet's rules, table by table (no Docker)."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field

import pytest

from minikubelet.container.state import ContainerRecord, Unhealthy
from minikubelet.model import naming
from minikubelet.model.spec import Pod
from minikubelet.runtime.actions import PodActions, compute_pod_actions
from minikubelet.runtime.labels import backoff_from_labels
from minikubelet.util.backoff import BackOffEntry, BackOffPolicy
from tests.unit.helpers import make_pod, rec, sandbox, state_of

NOW = 1000.0


@dataclass
class Case:
    id: str
    pod: Pod
    records: list[ContainerRecord]
    # Expected: (name, restart count) started, names killed, flags.
    start: list[tuple[str, int]] = field(default_factory=list)
    kill: list[str] = field(default_factory=list)
    create_sandbox: bool = False
    attempt: int = 0
    kill_pod: bool = False
    waiting: dict[str, str] = field(default_factory=dict)
    failed_init: bool = False
    backoff: dict[str, BackOffEntry] = field(default_factory=dict)
    unhealthy: dict[str, Unhealthy] = field(default_factory=dict)
    started: dict[str, bool] = field(default_factory=dict)


def plan(case: Case) -> PodActions:
    return compute_pod_actions(
        case.pod,
        state_of(case.pod, *case.records),
        now=NOW,
        backoff=case.backoff,
        policy=BackOffPolicy(),
        unhealthy=case.unhealthy,
        started=case.started,
    )


P = make_pod(("a", "b"))
ON_FAILURE = make_pod(("a", "b"), policy="OnFailure")
NEVER = make_pod(("a", "b"), policy="Never")
INIT = make_pod(("a",), init=("i1", "i2"))
INIT_NEVER = make_pod(("a",), init=("i1",), policy="Never")
SIDECAR = make_pod(("a",), sidecars=("s",), init=("i1",))
SIDECAR_NEVER = make_pod(("a",), sidecars=("s",), policy="Never")

CASES = [
    Case("fresh-pod", P, [], start=[("a", 0), ("b", 0)], create_sandbox=True),
    Case("fresh-pod-with-init", INIT, [], start=[("i1", 0)], create_sandbox=True),
    Case("all-running", P, [sandbox(P), rec(P, "a"), rec(P, "b")]),
    Case(
        "always-first-crash-restarts-at-once",
        P,
        [sandbox(P), rec(P, "a", state="exited", exit_code=1, finished=NOW - 1), rec(P, "b")],
        start=[("a", 1)],
    ),
    Case(
        "always-exit-0-restarts-too",
        P,
        [sandbox(P), rec(P, "a", state="exited", exit_code=0), rec(P, "b")],
        start=[("a", 1)],
    ),
    Case(
        "crash-inside-backoff-waits",
        P,
        [
            sandbox(P),
            rec(P, "a", attempt=1, state="exited", exit_code=1, finished=NOW - 3),
            rec(P, "b"),
        ],
        backoff={"a": BackOffEntry(delay=10, last_update=NOW - 20)},
        waiting={"a": "CrashLoopBackOff"},
    ),
    Case(
        "crash-after-backoff-restarts",
        P,
        [
            sandbox(P),
            rec(P, "a", attempt=1, state="exited", exit_code=1, finished=NOW - 11),
            rec(P, "b"),
        ],
        backoff={"a": BackOffEntry(delay=10, last_update=NOW - 20)},
        start=[("a", 2)],
    ),
    Case(
        "backoff-expired-after-10-minutes",
        P,
        [
            sandbox(P),
            rec(P, "a", attempt=5, state="exited", exit_code=1, finished=NOW - 1),
            rec(P, "b"),
        ],
        backoff={"a": BackOffEntry(delay=300, last_update=NOW - 601)},
        start=[("a", 6)],
    ),
    Case(
        "on-failure-exit-0-stays-done",
        ON_FAILURE,
        [
            sandbox(ON_FAILURE),
            rec(ON_FAILURE, "a", state="exited", exit_code=0),
            rec(ON_FAILURE, "b"),
        ],
    ),
    Case(
        "on-failure-exit-1-restarts",
        ON_FAILURE,
        [
            sandbox(ON_FAILURE),
            rec(ON_FAILURE, "a", state="exited", exit_code=1),
            rec(ON_FAILURE, "b"),
        ],
        start=[("a", 1)],
    ),
    Case(
        "on-failure-all-succeeded-is-done",
        ON_FAILURE,
        [
            sandbox(ON_FAILURE),
            rec(ON_FAILURE, "a", state="exited"),
            rec(ON_FAILURE, "b", state="exited"),
        ],
        kill_pod=True,
    ),
    Case(
        "never-exit-1-not-restarted",
        NEVER,
        [sandbox(NEVER), rec(NEVER, "a", state="exited", exit_code=1), rec(NEVER, "b")],
    ),
    Case(
        "never-all-exited-stops-sandbox",
        NEVER,
        [
            sandbox(NEVER),
            rec(NEVER, "a", state="exited", exit_code=1),
            rec(NEVER, "b", state="exited"),
        ],
        kill_pod=True,
    ),
    Case(
        "never-finished-and-stopped-is-left-alone",
        NEVER,
        [
            sandbox(NEVER, state="exited"),
            rec(NEVER, "a", state="exited"),
            rec(NEVER, "b", state="exited"),
        ],
    ),
    Case(
        "sandbox-died-recreated-with-all-containers",
        P,
        [
            sandbox(P, attempt=0, state="exited"),
            rec(P, "a", attempt=2),
            rec(P, "b", state="exited", exit_code=137),
        ],
        create_sandbox=True,
        attempt=1,
        kill_pod=True,
        start=[("a", 3), ("b", 1)],
    ),
    Case(
        "sandbox-gone-recreated",
        P,
        [rec(P, "a"), rec(P, "b")],
        create_sandbox=True,
        attempt=0,
        kill_pod=True,
        start=[("a", 1), ("b", 1)],
    ),
    Case(
        "two-running-sandboxes-recreated",
        P,
        [sandbox(P, attempt=0, cid="old"), sandbox(P, attempt=1), rec(P, "a"), rec(P, "b")],
        create_sandbox=True,
        attempt=2,
        kill_pod=True,
        start=[("a", 1), ("b", 1)],
    ),
    Case(
        "sandbox-died-never-pod-that-ran-stays-down",
        NEVER,
        [
            sandbox(NEVER, state="exited"),
            rec(NEVER, "a", state="exited", exit_code=137),
            rec(NEVER, "b"),
        ],
        kill_pod=True,
    ),
    Case(
        "sandbox-died-on-failure-all-succeeded",
        ON_FAILURE,
        [
            sandbox(ON_FAILURE, state="exited"),
            rec(ON_FAILURE, "a", state="exited"),
            rec(ON_FAILURE, "b", state="exited"),
        ],
    ),
    Case(
        "sandbox-died-with-init-restarts-from-first-init",
        INIT,
        [
            sandbox(INIT, state="exited"),
            rec(INIT, "i1", state="exited"),
            rec(INIT, "i2", state="exited"),
            rec(INIT, "a"),
        ],
        create_sandbox=True,
        attempt=1,
        kill_pod=True,
        start=[("i1", 1)],
    ),
    Case("init-running-waits", INIT, [sandbox(INIT), rec(INIT, "i1")]),
    Case(
        "next-init-after-success",
        INIT,
        [sandbox(INIT), rec(INIT, "i1", state="exited", exit_code=0)],
        start=[("i2", 0)],
    ),
    Case(
        "apps-after-all-init",
        INIT,
        [sandbox(INIT), rec(INIT, "i1", state="exited"), rec(INIT, "i2", state="exited")],
        start=[("a", 0)],
    ),
    Case(
        "failed-init-retried",
        INIT,
        [sandbox(INIT), rec(INIT, "i1", state="exited", exit_code=1)],
        start=[("i1", 1)],
    ),
    Case(
        "failed-init-under-never-fails-pod",
        INIT_NEVER,
        [sandbox(INIT_NEVER), rec(INIT_NEVER, "i1", state="exited", exit_code=1)],
        kill_pod=True,
        failed_init=True,
    ),
    Case(
        "init-not-rerun-once-apps-ran",
        INIT,
        [sandbox(INIT), rec(INIT, "a"), rec(INIT, "i2", state="exited", exit_code=1)],
    ),
    Case(
        "init-of-old-sandbox-do-not-count",
        INIT,
        [
            sandbox(INIT, attempt=1),
            rec(INIT, "i1", attempt=1, state="exited"),
            rec(INIT, "i2", state="exited", sandbox="old"),
        ],
        start=[("i2", 1)],
    ),
    Case("sidecar-started-first", SIDECAR, [sandbox(SIDECAR)], start=[("s", 0)]),
    Case(
        "init-after-running-sidecar",
        SIDECAR,
        [sandbox(SIDECAR), rec(SIDECAR, "s")],
        start=[("i1", 0)],
    ),
    Case(
        "init-waits-for-sidecar-startup-probe",
        SIDECAR,
        [sandbox(SIDECAR), rec(SIDECAR, "s")],
        started={"s": False},
    ),
    Case(
        "sidecar-restarted-alongside-apps",
        SIDECAR,
        [
            sandbox(SIDECAR),
            rec(SIDECAR, "s", state="exited", exit_code=2),
            rec(SIDECAR, "i1", state="exited"),
            rec(SIDECAR, "a"),
        ],
        start=[("s", 1)],
    ),
    Case(
        "sidecar-does-not-keep-finished-pod",
        SIDECAR_NEVER,
        [sandbox(SIDECAR_NEVER), rec(SIDECAR_NEVER, "s"), rec(SIDECAR_NEVER, "a", state="exited")],
        kill_pod=True,
    ),
    Case(
        "spec-hash-changed-restarts",
        P,
        [sandbox(P), rec(P, "a", spec_hash="old"), rec(P, "b")],
        kill=["a"],
        start=[("a", 1)],
    ),
    Case(
        "liveness-failure-restarts",
        P,
        [sandbox(P), rec(P, "a", cid="a-live"), rec(P, "b")],
        unhealthy={"a": Unhealthy(container_id="a-live", probe="liveness")},
        kill=["a"],
        start=[("a", 1)],
    ),
    Case(
        "liveness-failure-under-never-only-kills",
        NEVER,
        [sandbox(NEVER), rec(NEVER, "a", cid="a-live"), rec(NEVER, "b")],
        unhealthy={"a": Unhealthy(container_id="a-live", probe="liveness")},
        kill=["a"],
    ),
    Case(
        "stale-verdict-for-old-instance-ignored",
        P,
        [sandbox(P), rec(P, "a", cid="a-new"), rec(P, "b")],
        unhealthy={"a": Unhealthy(container_id="a-old", probe="liveness")},
    ),
    Case(
        "created-not-started-is-resumed",
        P,
        [sandbox(P), rec(P, "a", state="created"), rec(P, "b")],
        start=[("a", 0)],
    ),
]


@pytest.mark.parametrize("case", CASES, ids=[c.id for c in CASES])
def test_compute_pod_actions(case: Case) -> None:
    actions = plan(case)
    assert [(s.container.name, s.restart_count) for s in actions.start] == case.start
    assert sorted(k.record.name for k in actions.kill) == sorted(case.kill)
    assert actions.create_sandbox is case.create_sandbox
    if case.create_sandbox:
        assert actions.sandbox_attempt == case.attempt
    assert actions.kill_pod is case.kill_pod
    assert {k: w.reason for k, w in actions.waiting.items()} == case.waiting
    assert actions.failed_init is case.failed_init


def test_resumed_start_points_at_existing_container() -> None:
    created = rec(P, "a", state="created")
    actions = compute_pod_actions(P, state_of(P, sandbox(P), created, rec(P, "b")), now=NOW)
    assert actions.start[0].existing == created


def test_created_in_old_sandbox_is_not_resumed() -> None:
    stale = rec(P, "a", state="created", sandbox="old")
    actions = compute_pod_actions(P, state_of(P, sandbox(P), stale, rec(P, "b")), now=NOW)
    assert actions.start[0].existing is None
    assert actions.start[0].restart_count == 1


def test_crash_loop_message_and_wake_time() -> None:
    exited = rec(P, "a", attempt=3, state="exited", exit_code=1, finished=NOW - 5)
    actions = compute_pod_actions(
        P,
        state_of(P, sandbox(P), exited, rec(P, "b")),
        now=NOW,
        backoff={"a": BackOffEntry(delay=40, last_update=NOW - 60)},
    )
    waiting = actions.waiting["a"]
    assert (
        waiting.message
        == f"back-off 40s restarting failed container=a pod={P.name}_default({P.uid})"
    )
    assert actions.wake_at == NOW - 5 + 40


@pytest.mark.parametrize(
    ("entry", "expected_delay"),
    [
        (None, 10.0),
        (BackOffEntry(10, NOW - 30), 20.0),
        (BackOffEntry(160, NOW - 200), 300.0),
        (BackOffEntry(300, NOW - 400), 300.0),
    ],
    ids=["first", "doubles", "capped", "stays-capped"],
)
def test_restart_advances_backoff(entry: BackOffEntry | None, expected_delay: float) -> None:
    exited = rec(P, "a", attempt=1, state="exited", exit_code=1, finished=NOW - 1000)
    backoff = {"a": entry} if entry else {}
    actions = compute_pod_actions(
        P, state_of(P, sandbox(P), exited, rec(P, "b")), now=NOW, backoff=backoff
    )
    assert actions.backoff["a"] == BackOffEntry(expected_delay, NOW)


def test_restart_floor_when_no_instance_is_left() -> None:
    actions = compute_pod_actions(
        P, state_of(P, sandbox(P), rec(P, "b")), now=NOW, restart_floor={"a": 4}
    )
    assert [(s.container.name, s.restart_count) for s in actions.start] == [("a", 4)]


def test_liveness_grace_override_reaches_the_kill() -> None:
    live = rec(P, "a", cid="x")
    actions = compute_pod_actions(
        P,
        state_of(P, sandbox(P), live, rec(P, "b")),
        now=NOW,
        unhealthy={"a": Unhealthy(container_id="x", probe="liveness", grace_override=3)},
    )
    assert actions.kill[0].grace_override == 3
    assert actions.kill[0].message == "Container a failed liveness probe, will be restarted"


def test_start_carries_the_new_backoff_for_its_label() -> None:
    exited = rec(P, "a", attempt=1, state="exited", exit_code=1, finished=NOW - 1000)
    actions = compute_pod_actions(
        P, state_of(P, sandbox(P), exited, rec(P, "b")), now=NOW, backoff={}
    )
    [start] = actions.start
    assert start.backoff == BackOffEntry(10.0, NOW)


def _labelled(record: ContainerRecord, **labels: str) -> ContainerRecord:
    return dataclasses.replace(record, labels={**record.labels, **labels})


def test_backoff_is_rebuilt_from_the_latest_instance_labels() -> None:
    latest = _labelled(
        rec(P, "a", attempt=3, state="exited", exit_code=1, started=NOW - 10, finished=NOW - 5),
        **{naming.BACKOFF_DELAY: "40"},
    )
    older = _labelled(
        rec(P, "a", attempt=2, state="exited", exit_code=1, started=NOW - 90, finished=NOW - 85),
        **{naming.BACKOFF_DELAY: "20"},
    )
    garbled = _labelled(rec(P, "b"), **{naming.BACKOFF_DELAY: "soon"})
    entries = backoff_from_labels(state_of(P, sandbox(P), latest, older, garbled))
    assert entries == {"a": BackOffEntry(40.0, NOW - 10)}
    # The next restart waits the remembered delay instead of happening at once.
    actions = compute_pod_actions(
        P, state_of(P, sandbox(P), latest, rec(P, "b")), now=NOW, backoff=entries
    )
    assert actions.start == ()
    assert actions.waiting["a"].reason == "CrashLoopBackOff"


def test_running_container_of_an_old_sandbox_is_killed() -> None:
    # An agent killed mid-start: the engine finished starting a container in the
    # sandbox that the next agent had already replaced.
    old = rec(P, "a", attempt=1, sandbox="old-sandbox", cid="stray", created=NOW - 20)
    current = rec(P, "a", attempt=2, cid="current", created=NOW - 10)
    actions = compute_pod_actions(P, state_of(P, sandbox(P), old, current, rec(P, "b")), now=NOW)
    assert [k.record.id for k in actions.kill] == ["stray"]
    assert "left over" in actions.kill[0].message
    assert actions.start == ()


def test_superseded_running_instance_is_killed() -> None:
    older = rec(P, "b", attempt=0, cid="older", created=NOW - 20)
    newer = rec(P, "b", attempt=1, cid="newer", created=NOW - 10)
    actions = compute_pod_actions(P, state_of(P, sandbox(P), rec(P, "a"), older, newer), now=NOW)
    assert [k.record.id for k in actions.kill] == ["older"]


def test_sandbox_that_lost_its_network_is_recreated() -> None:
    lost = dataclasses.replace(sandbox(P), network_lost=True)
    actions = compute_pod_actions(P, state_of(P, lost, rec(P, "a"), rec(P, "b")), now=NOW)
    assert actions.create_sandbox
    assert actions.kill_pod
    assert actions.sandbox_attempt == lost.attempt + 1
    assert "lost its network" in actions.sandbox_reason


# (id, entry, exit time, restarted now, wake time if held, delay after the restart)
BACKOFF_TIMING: list[tuple[str, BackOffEntry | None, float, bool, float | None, float | None]] = [
    ("first-crash-restarts-at-once", None, NOW - 1, True, None, 10.0),
    ("window-counts-from-the-exit", BackOffEntry(40, NOW - 100), NOW - 30, False, NOW + 10, None),
    (
        # Seen 50 s after the exit (an agent busy or restarted): the 40 s window
        # is already over, so the restart is not delayed by another 40 s.
        "seen-late-after-the-window-restarts-at-once",
        BackOffEntry(40, NOW - 100),
        NOW - 50,
        True,
        None,
        80.0,
    ),
    ("window-ends-delay-after-the-exit", BackOffEntry(40, NOW - 100), NOW - 40, True, None, 80.0),
    ("delay-capped", BackOffEntry(300, NOW - 400), NOW - 310, True, None, 300.0),
    (
        # An exit late in the window waits only until the entry is forgotten,
        # ten minutes after the last restart (the kubelet's housekeeping GC).
        "exit-late-waits-until-forgotten",
        BackOffEntry(300, NOW - 590),
        NOW - 5,
        False,
        NOW + 10,
        None,
    ),
    (
        "forgotten-ten-minutes-after-last-restart",
        BackOffEntry(300, NOW - 600),
        NOW - 1,
        True,
        None,
        10.0,
    ),
]


@pytest.mark.parametrize(
    ("entry", "finished", "restarted", "wake_at", "delay"),
    [c[1:] for c in BACKOFF_TIMING],
    ids=[c[0] for c in BACKOFF_TIMING],
)
def test_crash_backoff_timing(
    entry: BackOffEntry | None,
    finished: float,
    restarted: bool,
    wake_at: float | None,
    delay: float | None,
) -> None:
    exited = rec(P, "a", attempt=2, state="exited", exit_code=1, started=100, finished=finished)
    actions = compute_pod_actions(
        P,
        state_of(P, sandbox(P), exited, rec(P, "b")),
        now=NOW,
        backoff={"a": entry} if entry is not None else {},
    )
    assert actions.wake_at == wake_at
    if restarted:
        assert delay is not None
        assert [(s.container.name, s.restart_count) for s in actions.start] == [("a", 3)]
        assert actions.start[0].backoff == BackOffEntry(delay, NOW)
        assert actions.backoff == {"a": BackOffEntry(delay, NOW)}
        assert actions.waiting == {}
    else:
        assert actions.start == ()
        assert actions.backoff == {}
        assert actions.waiting["a"].reason == "CrashLoopBackOff"
