"""kubectl's pod row (printPod): READY, STATUS and RESTARTS from v1 Pod objects."""

from __future__ import annotations

from typing import Any

import pytest

from minikubelet.server.podprint import age, parse_time, pod_cells, readiness_gates, summarize

NOW = parse_time("2026-01-01T12:00:00Z") or 0.0


def running(ready: bool = True) -> dict[str, Any]:
    return {"state": {"running": {"startedAt": "2026-01-01T11:00:00Z"}}, "ready": ready}


def waiting(reason: str) -> dict[str, Any]:
    return {"state": {"waiting": {"reason": reason}}, "ready": False}


def terminated(code: int, reason: str = "", signal: int = 0) -> dict[str, Any]:
    body: dict[str, Any] = {"exitCode": code, "finishedAt": "2026-01-01T11:50:00Z"}
    if reason:
        body["reason"] = reason
    if signal:
        body["signal"] = signal
    return {"state": {"terminated": body}, "ready": False}


def pod(
    containers: list[dict[str, Any]],
    *,
    init: list[dict[str, Any]] | None = None,
    sidecars: tuple[str, ...] = (),
    phase: str = "Running",
    conditions: dict[str, bool] | None = None,
    **extra: Any,
) -> dict[str, Any]:
    """A pod whose app containers are c0, c1, ... and init containers i0, i1, ...
    (those named in ``sidecars`` are restartable)."""
    init = init or []
    for i, c in enumerate(containers):
        c.setdefault("name", f"c{i}")
        c.setdefault("restartCount", 0)
    for i, c in enumerate(init):
        c.setdefault("name", f"i{i}")
        c.setdefault("restartCount", 0)
    status: dict[str, Any] = {
        "phase": phase,
        "containerStatuses": containers,
        "conditions": [
            {"type": t, "status": "True" if v else "False"} for t, v in (conditions or {}).items()
        ],
    }
    if init:
        status["initContainerStatuses"] = init
    status.update(extra.pop("status", {}))
    return {
        "metadata": {
            "name": "p",
            "creationTimestamp": "2026-01-01T11:00:00Z",
            **extra.pop("metadata", {}),
        },
        "spec": {
            "nodeName": "n1",
            "containers": [{"name": c["name"]} for c in containers],
            "initContainers": [
                {
                    "name": c["name"],
                    **({"restartPolicy": "Always"} if c["name"] in sidecars else {}),
                }
                for c in init
            ],
            **extra.pop("spec", {}),
        },
        "status": status,
    }


@pytest.mark.parametrize(
    ("obj", "ready", "reason"),
    [
        (pod([running()]), "1/1", "Running"),
        (pod([running(ready=False)]), "0/1", "Running"),
        (pod([], phase="Pending"), "0/0", "Pending"),
        (pod([waiting("ContainerCreating")], phase="Pending"), "0/1", "ContainerCreating"),
        (pod([terminated(0, "Completed")], phase="Succeeded"), "0/1", "Completed"),
        (pod([terminated(1, "Error")], phase="Failed"), "0/1", "Error"),
        (pod([terminated(137, "OOMKilled")], phase="Failed"), "0/1", "OOMKilled"),
        (pod([terminated(2)], phase="Failed"), "0/1", "ExitCode:2"),
        (pod([terminated(137, signal=9)], phase="Failed"), "0/1", "Signal:9"),
        # An init container that exited 0 is done, whatever else it reports.
        (pod([running()], init=[terminated(0, signal=15)]), "1/1", "Running"),
        (pod([waiting("CrashLoopBackOff")]), "0/1", "CrashLoopBackOff"),
        (pod([waiting("ErrImagePull")], phase="Pending"), "0/1", "ErrImagePull"),
        (pod([waiting("ErrImageNeverPull")], phase="Pending"), "0/1", "ErrImageNeverPull"),
        # The loop runs backwards: the first container in the list with a reason wins.
        (pod([waiting("ErrImagePull"), waiting("CrashLoopBackOff")]), "0/2", "ErrImagePull"),
        (pod([running(), waiting("CrashLoopBackOff")]), "1/2", "CrashLoopBackOff"),
        # Completed while another runs: Running when the pod is Ready, NotReady otherwise.
        (
            pod([terminated(0, "Completed"), running()], conditions={"Ready": True}),
            "1/2",
            "Running",
        ),
        (
            pod([terminated(0, "Completed"), running()], conditions={"Ready": False}),
            "1/2",
            "NotReady",
        ),
        (pod([running()], status={"reason": "Evicted"}, phase="Failed"), "1/1", "Evicted"),
        (
            pod(
                [waiting("PodInitializing")],
                init=[waiting("PodInitializing"), waiting("PodInitializing")],
                phase="Pending",
            ),
            "0/1",
            "Init:0/2",
        ),
        (
            pod(
                [waiting("PodInitializing")],
                init=[terminated(0, "Completed"), running()],
                phase="Pending",
            ),
            "0/1",
            "Init:1/2",
        ),
        (
            pod(
                [waiting("PodInitializing")],
                init=[terminated(1, "Error")],
                phase="Failed",
            ),
            "0/1",
            "Init:Error",
        ),
        (pod([waiting("PodInitializing")], init=[terminated(3)]), "0/1", "Init:ExitCode:3"),
        (
            pod([waiting("PodInitializing")], init=[terminated(143, signal=15)]),
            "0/1",
            "Init:Signal:15",
        ),
        (
            pod([waiting("PodInitializing")], init=[waiting("CrashLoopBackOff")]),
            "0/1",
            "Init:CrashLoopBackOff",
        ),
        (
            pod([waiting("PodInitializing")], init=[waiting("ErrImageNeverPull")]),
            "0/1",
            "Init:ErrImageNeverPull",
        ),
        # Init done, app containers not started yet: their waiting reason shows.
        (
            pod(
                [waiting("PodInitializing")],
                init=[terminated(0, "Completed")],
                phase="Pending",
                conditions={"Initialized": True},
            ),
            "0/1",
            "PodInitializing",
        ),
        # A started sidecar counts in READY and does not hold initialization.
        (
            pod(
                [running()],
                init=[{**running(), "started": True}],
                sidecars=("i0",),
                conditions={"Initialized": True},
            ),
            "2/2",
            "Running",
        ),
        (
            pod(
                [running()],
                init=[{**running(ready=False), "started": True}],
                sidecars=("i0",),
            ),
            "1/2",
            "Running",
        ),
        # A sidecar not started yet holds initialization like a regular init container.
        (
            pod(
                [waiting("PodInitializing")],
                init=[{**running(ready=False), "started": False}],
                sidecars=("i0",),
                phase="Pending",
            ),
            "0/2",
            "Init:0/1",
        ),
        (
            pod([running()], metadata={"deletionTimestamp": "2026-01-01T12:00:30Z"}),
            "1/1",
            "Terminating",
        ),
        # A terminal pod being deleted keeps its word.
        (
            pod(
                [terminated(0, "Completed")],
                phase="Succeeded",
                metadata={"deletionTimestamp": "2026-01-01T12:00:30Z"},
            ),
            "0/1",
            "Completed",
        ),
        (
            pod(
                [running()],
                status={"reason": "NodeLost"},
                metadata={"deletionTimestamp": "2026-01-01T12:00:30Z"},
            ),
            "1/1",
            "Unknown",
        ),
        (
            pod(
                [],
                phase="Pending",
                conditions={},
                status={
                    "conditions": [
                        {"type": "PodScheduled", "status": "False", "reason": "SchedulingGated"}
                    ]
                },
            ),
            "0/0",
            "SchedulingGated",
        ),
    ],
    ids=lambda v: v if isinstance(v, str) else "",
)
def test_status_and_ready_follow_print_pod(obj: dict[str, Any], ready: str, reason: str) -> None:
    summary = summarize(obj)
    assert (summary.ready_text, summary.reason) == (ready, reason)


def test_restarts_show_when_the_last_one_was() -> None:
    crashed = {
        **waiting("CrashLoopBackOff"),
        "restartCount": 2,
        "lastState": {"terminated": {"exitCode": 1, "finishedAt": "2026-01-01T11:55:00Z"}},
    }
    older = {
        **running(),
        "restartCount": 1,
        "lastState": {"terminated": {"exitCode": 1, "finishedAt": "2026-01-01T10:00:00Z"}},
    }
    summary = summarize(pod([crashed, older]))
    assert summary.restarts == 3
    assert summary.restarts_text(NOW) == "3 (5m ago)"
    assert summarize(pod([running()])).restarts_text(NOW) == "0"
    # A count with no recorded termination is printed bare.
    assert summarize(pod([{**running(), "restartCount": 4}])).restarts_text(NOW) == "4"


def test_restarts_while_initializing_count_init_containers_only() -> None:
    init = {
        **waiting("CrashLoopBackOff"),
        "restartCount": 3,
        "lastState": {"terminated": {"exitCode": 1, "finishedAt": "2026-01-01T11:59:00Z"}},
    }
    summary = summarize(pod([{**waiting("PodInitializing"), "restartCount": 0}], init=[init]))
    assert summary.reason == "Init:CrashLoopBackOff"
    assert summary.restarts_text(NOW) == "3 (60s ago)"


def test_restarts_once_initialized_count_sidecars_and_app_containers() -> None:
    sidecar = {
        **running(),
        "started": True,
        "restartCount": 2,
        "lastState": {"terminated": {"exitCode": 1, "finishedAt": "2026-01-01T11:58:00Z"}},
    }
    regular = {**terminated(0, "Completed"), "restartCount": 5}
    summary = summarize(
        pod(
            [{**running(), "restartCount": 1}],
            init=[regular, sidecar],
            sidecars=("i1",),
            conditions={"Initialized": True},
        )
    )
    assert summary.restarts == 3  # the regular init container's restarts no longer count
    assert summary.restarts_text(NOW) == "3 (2m ago)"


def test_cells_wide_columns_and_placeholders() -> None:
    obj = pod([running()], status={"podIPs": [{"ip": "10.0.0.5"}], "podIP": "10.0.0.5"})
    cells = ["p", "1/1", "Running", "0", "60m", "10.0.0.5", "n1", "<none>", "<none>"]
    assert pod_cells(obj, NOW) == cells
    bare = pod([], phase="Pending", spec={"nodeName": ""}, metadata={"creationTimestamp": None})
    assert pod_cells(bare, NOW)[3:] == ["0", "<unknown>", "<none>", "<none>", "<none>", "<none>"]


def test_readiness_gates_count_true_conditions() -> None:
    obj = pod(
        [running()],
        spec={"readinessGates": [{"conditionType": "a"}, {"conditionType": "b"}]},
        conditions={"a": True, "b": False},
    )
    assert readiness_gates(obj) == "1/2"


@pytest.mark.parametrize(
    "obj",
    [{}, {"status": None}, {"status": {"containerStatuses": [None, 3, {"state": []}]}}],
    ids=["empty", "null-status", "junk-statuses"],
)
def test_malformed_objects_print_without_raising(obj: dict[str, Any]) -> None:
    assert len(pod_cells(obj, NOW)) == 9


def test_age_and_time_parsing() -> None:
    assert age("2026-01-01T11:59:30Z", NOW) == "30s"
    assert age("not a time", NOW) == "<unknown>"
    assert parse_time("2026-01-01T12:00:00+00:00") == NOW
