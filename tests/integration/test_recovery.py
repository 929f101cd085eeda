"""The agent can be stopped, killed at any moment and restarted without harming a pod."""

from __future__ import annotations

import os
import random
import shlex
import signal
import socket
import subprocess
import time
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import Any

import docker
import psutil
import pytest

from tests.integration.conftest import Agent, all_running, pod_manifest, sh, wait_until

pytestmark = pytest.mark.docker


def running_ids(agent: Agent) -> dict[str, str]:
    """Running container name → ID, for every container of the agent's node."""
    return {
        c["Names"][0].lstrip("/"): c["Id"] for c in agent.containers() if c["State"] == "running"
    }


def test_sigterm_is_quick_and_leaves_pods_running(make_agent: Callable[..., Agent]) -> None:
    agent = make_agent()
    agent.write("a.yaml", pod_manifest("a", [sh("c", "sleep 3600 & wait")]))
    pod = agent.wait_running("a")
    before = running_ids(agent)
    t0 = time.monotonic()
    assert agent.stop(signal.SIGTERM) == 0
    assert time.monotonic() - t0 < 2.0
    assert running_ids(agent) == before

    # Started again, it adopts the pod untouched: same containers, same status.
    agent.start()
    again = agent.wait_running("a")
    assert running_ids(agent) == before
    assert again["metadata"]["uid"] == pod["metadata"]["uid"]
    assert again["status"]["startTime"] == pod["status"]["startTime"]
    assert again["metadata"]["annotations"] == pod["metadata"]["annotations"]


def test_stop_pods_on_exit_terminates_them_gracefully(make_agent: Callable[..., Agent]) -> None:
    agent = make_agent("--stop-pods-on-exit")
    agent.write("a.yaml", pod_manifest("a", [sh("c", "sleep 3600 & wait")]))
    agent.wait_running("a")
    assert agent.stop(signal.SIGTERM, timeout=20) == 0
    assert agent.containers() == []


def test_manifest_changed_while_down_is_replaced(make_agent: Callable[..., Agent]) -> None:
    agent = make_agent()
    agent.write("a.yaml", pod_manifest("a", [sh("c", "sleep 3600 & wait")]))
    agent.write("b.yaml", pod_manifest("b", [sh("c", "sleep 3600 & wait")]))
    old_a = agent.wait_running("a")["metadata"]["uid"]
    b = agent.wait_running("b")
    agent.stop(signal.SIGTERM)
    agent.write("a.yaml", pod_manifest("a", [sh("c", "sleep 3601 & wait")]))
    agent.remove("b.yaml")
    agent.start()
    new_a = agent.wait_running("a")
    assert new_a["metadata"]["uid"] != old_a
    wait_until(
        lambda: (
            {c["Labels"]["io.kubernetes.pod.uid"] for c in agent.containers()}
            == {new_a["metadata"]["uid"]}
        ),
        timeout=15,
        what="only the new pod's containers left",
    )
    assert agent.pod("b") is None
    assert b["metadata"]["uid"] not in {
        c["Labels"]["io.kubernetes.pod.uid"] for c in agent.containers()
    }


def _check_consistent(agent: Agent, desired: set[str]) -> None:
    """Each pod: one running sandbox, one running container per name inside it; nothing else."""
    containers = agent.containers()
    uids = {c["Labels"]["io.kubernetes.pod.uid"] for c in containers}
    assert uids == desired, "orphans or missing pods"
    running = [c for c in containers if c["State"] == "running"]
    per_pod = Counter(
        (c["Labels"]["io.kubernetes.pod.uid"], c["Labels"]["io.kubernetes.container.name"])
        for c in running
    )
    duplicates = {k: n for k, n in per_pod.items() if n != 1}
    details = [
        (c["Names"][0], c["Status"], c["Labels"].get("io.kubernetes.sandbox.id", "")[:12])
        for c in containers
        if (c["Labels"]["io.kubernetes.pod.uid"], c["Labels"]["io.kubernetes.container.name"])
        in duplicates
        or (
            c["Labels"]["io.kubernetes.docker.type"] == "podsandbox"
            and c["Labels"]["io.kubernetes.pod.uid"] in {u for u, _ in duplicates}
        )
    ]
    assert not duplicates, f"duplicated containers: {duplicates}: {details}"
    sandboxes = {
        c["Labels"]["io.kubernetes.pod.uid"]: c["Id"]
        for c in running
        if c["Labels"]["io.kubernetes.docker.type"] == "podsandbox"
    }
    for c in running:
        labels = c["Labels"]
        if labels["io.kubernetes.docker.type"] == "container":
            assert labels["io.kubernetes.sandbox.id"] == sandboxes[labels["io.kubernetes.pod.uid"]]


def _settles_consistent(agent: Agent, desired: set[str], timeout: float = 20.0) -> None:
    """Consistent within ``timeout``: engine calls a killed agent left in flight may
    still land after the next agent started, and it must then clean them up."""

    def consistent() -> bool:
        try:
            _check_consistent(agent, desired)
        except AssertionError:
            return False
        return True

    try:
        wait_until(consistent, timeout=timeout, what="consistent pods", interval=0.2)
    except AssertionError:
        _check_consistent(agent, desired)  # fails saying what is wrong
        raise


def test_sigkill_at_random_points_leaves_no_duplicates_or_orphans(
    make_agent: Callable[..., Agent],
) -> None:
    rng = random.Random(20261125)
    agent = make_agent(start=False)
    pods = 10

    def manifest(i: int, generation: int) -> dict[str, Any]:
        return pod_manifest(
            f"p{i}",
            [sh("a", f"sleep {3600 + generation} & wait"), sh("b", "sleep 3600 & wait")],
        )

    generation = [0] * pods
    for i in range(pods):
        agent.write(f"p{i}.yaml", manifest(i, 0))
    for point in range(20):
        if point % 4 == 3:
            # Edit a few files while the agent is down: their pods must be replaced.
            for i in rng.sample(range(pods), 3):
                generation[i] += 1
                agent.write(f"p{i}.yaml", manifest(i, generation[i]))
        agent.start()
        # Not a wait for anything: lets a random share of the agent's work happen, so the
        # kill lands at a random point of it.
        time.sleep(rng.uniform(0.0, 1.2))
        agent.stop(signal.SIGKILL)

    agent.start()
    desired: set[str] = set()
    for i in range(pods):
        desired.add(agent.wait_running(f"p{i}", timeout=60)["metadata"]["uid"])
    wait_until(
        lambda: {c["Labels"]["io.kubernetes.pod.uid"] for c in agent.containers()} == desired,
        timeout=30,
        what="old pods' containers cleaned up",
    )
    _settles_consistent(agent, desired)
    for i in range(pods):
        pod = agent.pod(f"p{i}")
        assert pod is not None
        assert all_running(pod)

    # A clean restart now touches nothing.
    before = running_ids(agent)
    agent.stop(signal.SIGTERM)
    agent.start()
    for i in range(pods):
        agent.wait_running(f"p{i}")
    # Deliberately lets time pass after the adoption, to show that nothing is replaced.
    time.sleep(1.0)
    assert running_ids(agent) == before
    _check_consistent(agent, desired)


def _socket_accepts() -> bool:
    """Whether the engine's unix socket accepts a connection.

    docker-py leaks the socket of a connection that fails to connect, which
    this suite treats as an error; probing first keeps the client away until
    dockerd listens.
    """
    host = os.environ.get("DOCKER_HOST", "unix:///var/run/docker.sock")
    if not host.startswith("unix://"):
        return True
    with socket.socket(socket.AF_UNIX) as probe:
        try:
            probe.connect(host.removeprefix("unix://"))
        except OSError:
            return False
    return True


def _stop_dockerd() -> Callable[[], None]:
    """Stop the engine; returns what starts it again the same way it was running."""
    if os.geteuid() != 0:
        pytest.skip("stopping and starting dockerd needs root")
    if (
        Path("/run/systemd/system").is_dir()
        and subprocess.run(["systemctl", "is-active", "--quiet", "docker"], check=False).returncode
        == 0
    ):
        subprocess.run(["systemctl", "stop", "docker", "docker.socket"], check=True, timeout=120)

        def start_unit() -> None:
            subprocess.run(["systemctl", "start", "docker"], check=True, timeout=120)

        return start_unit
    # psutil rather than pgrep: a fresh machine need not have procps.
    daemons = sorted(
        (p for p in psutil.process_iter(["name", "create_time"]) if p.info["name"] == "dockerd"),
        key=lambda p: p.info["create_time"],
    )
    if not daemons:
        pytest.skip("no dockerd process here to restart")
    pid = daemons[0].pid
    cmdline = daemons[0].cmdline()
    os.kill(pid, signal.SIGTERM)
    wait_until(
        lambda: not Path(f"/proc/{pid}").exists(), timeout=60, what="dockerd to exit", interval=0.2
    )

    def start() -> None:
        # Through a shell that exits at once: dockerd outlives the test run, and
        # no Popen object is left to complain about a child still running.
        log = "/tmp/minikubelet-test-dockerd.log"
        subprocess.run(
            ["sh", "-c", f"setsid {shlex.join(cmdline)} >>{log} 2>&1 </dev/null &"],
            check=True,
            timeout=30,
        )

    return start


def test_engine_restart_is_survived_and_pods_reconciled(
    make_agent: Callable[..., Agent], docker_api: docker.APIClient
) -> None:
    agent = make_agent()
    for name in ("a", "b"):
        agent.write(f"{name}.yaml", pod_manifest(name, [sh("c", "sleep 3600 & wait")]))
    before = {name: agent.wait_running(name) for name in ("a", "b")}

    start = _stop_dockerd()
    try:
        health = wait_until(
            lambda: agent.get_status("/healthz") == 503 or None,
            timeout=15,
            what="/healthz to report the engine down",
        )
        assert health

        def stale_list() -> dict[str, Any] | None:
            body = agent.pod_list()
            return body if body.get("stale") else None

        pods = wait_until(stale_list, timeout=15, what="/pods marked stale")
        assert {p["metadata"]["uid"] for p in pods["items"]} == {
            p["metadata"]["uid"] for p in before.values()
        }
    finally:
        # Pooled connections died with the engine: close them rather than leak them.
        docker_api.close()
        start()
    wait_until(
        lambda: _socket_accepts() and docker_api.ping(),
        timeout=60,
        what="dockerd back",
        interval=0.5,
    )

    for name, old in before.items():
        pod = agent.wait_pod(
            name,
            lambda p: all_running(p) and p["status"]["containerStatuses"][0]["restartCount"] >= 1,
            timeout=60,
            what=f"pod {name} reconciled after the engine restart",
        )
        assert pod["metadata"]["uid"] == old["metadata"]["uid"]
    assert agent.get_status("/healthz") == 200
    assert "stale" not in agent.pod_list()
    _check_consistent(agent, {p["metadata"]["uid"] for p in before.values()})
