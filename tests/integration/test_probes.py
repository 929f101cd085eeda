"""Probes on real containers, through the agent's process and /pods."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from tests.integration.conftest import (
    IMAGE,
    Agent,
    free_port,
    pod_manifest,
    sh,
    status_of,
    wait_until,
)

pytestmark = pytest.mark.docker


def ready(pod: dict[str, Any], name: str = "c") -> bool:
    return bool(status_of(pod, name)["ready"])


def restarts(pod: dict[str, Any], name: str = "c") -> int:
    return int(status_of(pod, name)["restartCount"])


def conditions(pod: dict[str, Any]) -> dict[str, str]:
    return {c["type"]: c["status"] for c in pod["status"]["conditions"]}


def probes_run(agent: Agent, probe_type: str, result: str) -> int:
    """``prober_probe_total`` for one probe type and result, from the agent's /metrics."""
    metrics = agent.get("/metrics", raw=True).decode()
    # Summed over the per-container series (labelled as the kubelet labels them).
    wanted = (f'probe_type="{probe_type}"', f'result="{result}"')
    total = 0.0
    for line in metrics.splitlines():
        if line.startswith("prober_probe_total{") and all(w in line for w in wanted):
            total += float(line.rsplit(" ", 1)[1])
    return int(total)


def exec_probe(*command: str, **timing: int) -> dict[str, Any]:
    return {"exec": {"command": list(command)}, "periodSeconds": 1, **timing}


def web(name: str = "c", **more: Any) -> dict[str, Any]:
    """busybox httpd on 8080 (named "http"), serving /srv with a directory /srv/dir/."""
    script = (
        "mkdir -p /srv/dir && echo ok > /srv/index.html && echo in > /srv/dir/index.html"
        " && exec httpd -f -p 8080 -h /srv"
    )
    return {
        "name": name,
        "image": IMAGE,
        "command": ["sh", "-c", script],
        "ports": [{"name": "http", "containerPort": 8080}],
        **more,
    }


def test_failing_exec_liveness_restarts_the_container(agent: Agent) -> None:
    agent.write(
        "live.yaml",
        pod_manifest(
            "live",
            [
                sh(
                    "c",
                    "sleep 3600 & wait",
                    livenessProbe=exec_probe("cat", "/tmp/healthy", failureThreshold=1),
                )
            ],
        ),
    )
    pod = agent.wait_pod("live", lambda p: restarts(p) >= 2, timeout=30)
    last = status_of(pod, "c")["lastState"]["terminated"]
    assert last["exitCode"] in (137, 0)
    path = "spec.containers{c}"
    unhealthy = agent.wait_event(name="live", reason="Unhealthy", field_path=path)
    assert unhealthy["type"] == "Warning"
    assert unhealthy["message"].startswith("Liveness probe failed:")
    # One Killing event, counted once per restart: its message does not change.
    agent.wait_event(
        name="live",
        reason="Killing",
        field_path=path,
        message="Container c failed liveness probe, will be restarted",
        count=2,
    )


@pytest.mark.parametrize(
    ("path", "restarted"), [("/missing", True), ("/dir", False)], ids=["404", "302"]
)
def test_http_liveness_404_restarts_302_does_not(agent: Agent, path: str, restarted: bool) -> None:
    probe = {"httpGet": {"path": path, "port": 8080}, "periodSeconds": 1, "failureThreshold": 2}
    agent.write("h.yaml", pod_manifest("h", [web(livenessProbe=probe)]))
    if restarted:
        agent.wait_pod("h", lambda p: restarts(p) >= 1, timeout=30)
    else:
        agent.wait_running("h")
        # Two failures in a row would restart it: four successes in a row show it will not be.
        wait_until(
            lambda: probes_run(agent, "liveness", "successful") >= 4,
            timeout=15,
            what="four successful liveness probes",
        )
        pod = agent.pod("h")
        assert pod is not None
        assert restarts(pod) == 0
        # (A probe that came before httpd listened may have failed, but never on a status.)
        answered = [
            e["message"]
            for e in agent.events(name="h", reason="Unhealthy")
            if "statuscode" in e["message"]
        ]
        assert answered == []


def test_readiness_waits_for_initial_delay_and_never_restarts(agent: Agent) -> None:
    agent.write(
        "r.yaml",
        pod_manifest(
            "r",
            [
                sh(
                    "c",
                    "sleep 3600 & wait",
                    readinessProbe=exec_probe("true", initialDelaySeconds=4),
                )
            ],
        ),
    )
    pod = agent.wait_running("r")
    started = time.monotonic()
    assert not ready(pod)
    assert conditions(pod)["Ready"] == "False"
    pod = agent.wait_pod("r", ready, timeout=15, what="ready after the initial delay")
    assert time.monotonic() - started >= 2.5
    assert conditions(pod)["Ready"] == "True"
    assert conditions(pod)["ContainersReady"] == "True"
    assert restarts(pod) == 0


def test_readiness_follows_the_file_it_checks(agent: Agent) -> None:
    agent.write(
        "f.yaml",
        pod_manifest(
            "f",
            [
                sh(
                    "c",
                    "touch /tmp/ready; sleep 3600 & wait",
                    readinessProbe=exec_probe("cat", "/tmp/ready", failureThreshold=1),
                )
            ],
        ),
    )
    pod = agent.wait_pod("f", ready, timeout=15)
    agent.exec(pod, "c", "rm", "/tmp/ready")
    pod = agent.wait_pod("f", lambda p: not ready(p), timeout=10, what="not ready")
    assert conditions(pod)["Ready"] == "False"
    agent.exec(pod, "c", "touch", "/tmp/ready")
    pod = agent.wait_pod("f", ready, timeout=10, what="ready again")
    assert restarts(pod) == 0


def test_tcp_readiness_on_a_closed_port_is_never_ready(agent: Agent) -> None:
    tcp = {"tcpSocket": {"port": 9999}, "periodSeconds": 1}
    open_port = {"tcpSocket": {"port": "http"}, "periodSeconds": 1}
    agent.write(
        "t.yaml",
        pod_manifest(
            "t",
            [
                web("open", readinessProbe=open_port),
                # Same network namespace: nothing listens on 9999 there.
                sh("closed", "sleep 3600 & wait", readinessProbe=tcp),
            ],
        ),
    )
    pod = agent.wait_pod("t", lambda p: ready(p, "open"), timeout=15)
    # Three failures (the default threshold) of the closed port's probe, each for the
    # right reason, and still not ready.
    refused = agent.wait_event(
        name="t",
        reason="Unhealthy",
        field_path="spec.containers{closed}",
        message="connection refused",
        count=3,
    )
    assert refused["message"].startswith("Readiness probe failed:")
    pod = agent.pod("t") or {}
    assert not ready(pod, "closed")
    assert ready(pod, "open")
    assert conditions(pod)["ContainersReady"] == "False"


def test_startup_probe_holds_back_a_failing_liveness_probe(agent: Agent) -> None:
    # Liveness fails until the app has "started" (both files appear after 4 s);
    # without the startup probe's gate it would have been killed three times.
    agent.write(
        "s.yaml",
        pod_manifest(
            "s",
            [
                sh(
                    "c",
                    "sleep 4; touch /tmp/started /tmp/live; sleep 3600 & wait",
                    startupProbe=exec_probe("cat", "/tmp/started", failureThreshold=30),
                    livenessProbe=exec_probe("cat", "/tmp/live", failureThreshold=1),
                )
            ],
        ),
    )
    pod = agent.wait_running("s")
    assert status_of(pod, "c")["started"] is False
    pod = agent.wait_pod("s", lambda p: status_of(p, "c")["started"] is True, timeout=20)
    # Liveness runs from the start on, and passes: no probe failed before it either.
    wait_until(
        lambda: probes_run(agent, "liveness", "successful") >= 2,
        timeout=10,
        what="two successful liveness probes after the start",
    )
    pod = agent.pod("s") or {}
    assert restarts(pod) == 0
    assert ready(pod)
    assert probes_run(agent, "liveness", "failed") == 0
    unhealthy = [e["message"] for e in agent.events(name="s", reason="Unhealthy")]
    assert unhealthy, "the startup probe failed for 4 s and said so"
    assert all(m.startswith("Startup probe ") for m in unhealthy), unhealthy


def test_named_port_http_readiness(agent: Agent) -> None:
    probe = {"httpGet": {"path": "/", "port": "http"}, "periodSeconds": 1}
    agent.write("n.yaml", pod_manifest("n", [web(readinessProbe=probe)]))
    pod = agent.wait_pod("n", ready, timeout=15)
    assert conditions(pod)["Ready"] == "True"
    metrics = agent.get("/metrics", raw=True).decode()
    # Labelled per container, as the kubelet's prober_probe_total is.
    assert (
        f'prober_probe_total{{container="c",namespace="default",pod="n-{agent.node}",'
        f'pod_uid="{pod["metadata"]["uid"]}",probe_type="readiness",result="successful"}}'
    ) in metrics
    assert "kubelet_running_pods 1.0" in metrics


def test_probe_hanging_past_its_timeout_is_a_failure(agent: Agent) -> None:
    agent.write(
        "slow.yaml",
        pod_manifest(
            "slow",
            [
                sh(
                    "c",
                    "sleep 3600 & wait",
                    readinessProbe=exec_probe("sleep", "5", timeoutSeconds=1, failureThreshold=1),
                )
            ],
        ),
    )
    agent.wait_running("slow")
    agent.wait_event(
        name="slow",
        reason="Unhealthy",
        message="Readiness probe failed: command timed out after 1s",
    )
    pod = agent.pod("slow") or {}
    assert not ready(pod)


@pytest.fixture
def health_server() -> Iterator[tuple[int, Any]]:
    grpc = pytest.importorskip("grpc")
    from concurrent import futures

    from grpc_health.v1 import health, health_pb2, health_pb2_grpc

    port = free_port()
    server = grpc.server(futures.ThreadPoolExecutor(max_workers=2))
    servicer = health.HealthServicer()
    health_pb2_grpc.add_HealthServicer_to_server(servicer, server)
    server.add_insecure_port(f"127.0.0.1:{port}")
    server.start()
    servicer.set("shop", health_pb2.HealthCheckResponse.SERVING)
    try:
        yield port, servicer
    finally:
        server.stop(0).wait(5)


def test_grpc_readiness_of_a_host_network_pod(
    make_agent: Callable[..., Agent], health_server: tuple[int, Any]
) -> None:
    from grpc_health.v1 import health_pb2

    # A hostNetwork pod is probed at the node's address, as on the kubelet; the
    # test's server listens on loopback only, so loopback is the node here.
    agent = make_agent("--node-ip", "127.0.0.1")

    port, servicer = health_server
    probe = {"grpc": {"port": port, "service": "shop"}, "periodSeconds": 1, "failureThreshold": 1}
    agent.write(
        "g.yaml",
        pod_manifest("g", [sh("c", "sleep 3600 & wait", readinessProbe=probe)], hostNetwork=True),
    )
    agent.wait_pod("g", ready, timeout=15, what="ready while SERVING")
    servicer.set("shop", health_pb2.HealthCheckResponse.NOT_SERVING)
    agent.wait_pod("g", lambda p: not ready(p), timeout=10, what="not ready when NOT_SERVING")
    unhealthy = agent.wait_event(name="g", reason="Unhealthy", message="NOT_SERVING")
    assert unhealthy["message"].startswith("Readiness probe failed:")


def test_sub_second_period_from_the_annotation_still_restarts(agent: Agent) -> None:
    # periodSeconds 10 with failureThreshold 2 would take 20 s to restart;
    # the annotation's 200 ms period takes well under one second of probing.
    manifest = pod_manifest(
        "fast",
        [
            sh(
                "c",
                "sleep 3600 & wait",
                livenessProbe=exec_probe("cat", "/tmp/missing", failureThreshold=2)
                | {"periodSeconds": 10},
            )
        ],
    )
    manifest["metadata"]["annotations"] = {"probes.minikubelet.io/period-ms": "c.liveness=200"}
    agent.write("fast.yaml", manifest)
    pod = agent.wait_pod(
        "fast", lambda p: restarts(p) >= 1, timeout=8, what="a restart within seconds"
    )
    assert status_of(pod, "c")["lastState"]["terminated"]["exitCode"] in (137, 0)
    agent.wait_event(
        name="fast",
        reason="Killing",
        message="Container c failed liveness probe, will be restarted",
    )


def test_hanging_exec_probes_do_not_starve_other_pods(agent: Agent) -> None:
    # Ten containers whose exec probes hang far past their timeout, every
    # second: were each run to take a thread, the exec pool would be full
    # within a second and the healthy pod's probe would time out in the queue.
    hanging = exec_probe("sleep", "30", timeoutSeconds=1, failureThreshold=1)
    agent.write(
        "stuck.yaml",
        pod_manifest(
            "stuck",
            [sh(f"h{i}", "sleep 3600 & wait", readinessProbe=hanging) for i in range(10)],
        ),
    )
    # The default failureThreshold (3) rides out one slow exec on a busy
    # machine; starvation would fail every probe and still show within seconds.
    healthy = exec_probe("true")
    agent.write(
        "fine.yaml", pod_manifest("fine", [sh("c", "sleep 3600 & wait", readinessProbe=healthy)])
    )
    agent.wait_running("stuck")
    agent.wait_pod("fine", ready, timeout=15)
    # Deliberately watches for 6 s, to show the healthy pod never turns unready meanwhile.
    deadline = time.monotonic() + 6
    while time.monotonic() < deadline:
        pod = agent.pod("fine") or {}
        assert ready(pod), "the healthy pod's exec probe was starved"
        time.sleep(0.5)
    stuck = agent.pod("stuck") or {}
    assert not any(s["ready"] for s in stuck["status"]["containerStatuses"])
