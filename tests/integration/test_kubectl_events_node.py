"""kubectl itself against a live agent: events (by pod, across namespaces, watched) and the
node (get, -o json, -o wide, describe).

One agent serves the whole module: the tests only add pods and read, and each
looks at its own pod's events by name.
"""

from __future__ import annotations

import json
import queue
import re
import signal
import subprocess
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import docker
import pytest

from minikubelet import __version__
from tests.integration.conftest import Agent, Kubectl, pod_manifest, running_agent, sh, wait_until

pytestmark = pytest.mark.docker


@pytest.fixture(scope="module")
def shared_agent(
    tmp_path_factory: pytest.TempPathFactory,
    docker_api: docker.APIClient,
    busybox_image: str,
    pause_image: str,
) -> Iterator[Agent]:
    yield from running_agent(
        tmp_path_factory.mktemp("agent"), docker_api, pause_image, stop_signal=signal.SIGKILL
    )


@pytest.fixture(scope="module")
def kube(
    kubectl_bin: str, shared_agent: Agent, tmp_path_factory: pytest.TempPathFactory
) -> Kubectl:
    return Kubectl(kubectl_bin, shared_agent, tmp_path_factory.mktemp("kubectl-home"))


def start_pod(agent: Agent, name: str, **metadata: str) -> str:
    """A running one-container pod; its full name."""
    manifest = pod_manifest(name, [sh("app", "sleep 3600")])
    manifest["metadata"].update(metadata)
    agent.write(f"{name}.yaml", manifest)
    agent.wait_running(name)
    return f"{name}-{agent.node}"


def test_events_of_one_pod_by_field_selector(shared_agent: Agent, kube: Kubectl) -> None:
    pod = start_pod(shared_agent, "evsel")
    selector = f"involvedObject.name={pod}"
    listed = kube.json("get", "events", "--field-selector", selector)
    items = listed["items"]
    assert {e["involvedObject"]["name"] for e in items} == {pod}
    reasons = [e["reason"] for e in items]
    for reason in ("Pulled", "Created", "Started"):
        assert reason in reasons, reasons
    started = next(e for e in items if e["reason"] == "Started")
    assert started["involvedObject"]["fieldPath"] == "spec.containers{app}"
    assert started["message"] == "Started container app"
    # The table kubectl prints from the server's columns.
    table = kube.run("get", "events", "--field-selector", selector)
    header, *rows = table.splitlines()
    assert header.split() == ["LAST", "SEEN", "TYPE", "REASON", "OBJECT", "MESSAGE"]
    assert any(f"pod/{pod}" in row and "Started container app" in row for row in rows), table


def test_events_across_namespaces(shared_agent: Agent, kube: Kubectl) -> None:
    pod = start_pod(shared_agent, "evns", namespace="evns")
    table = kube.run("get", "events", "-A")
    header = table.splitlines()[0].split()
    assert header[0] == "NAMESPACE"
    rows = [line.split() for line in table.splitlines()[1:]]
    # The node's events live in "default"; the pod's in its own namespace.
    assert any(r[0] == "evns" and f"pod/{pod}" in r for r in rows), table
    assert any(r[0] == "default" and f"node/{shared_agent.node}" in r for r in rows), table
    only = kube.json("get", "events", "-n", "evns")["items"]
    assert only
    assert {e["metadata"]["namespace"] for e in only} == {"evns"}


def _lines(proc: subprocess.Popen[str]) -> tuple[queue.Queue[str], threading.Thread]:
    """kubectl's stdout, line by line, read on a thread so the test can wait with a deadline."""
    lines: queue.Queue[str] = queue.Queue()

    def pump() -> None:
        assert proc.stdout is not None
        for line in proc.stdout:
            lines.put(line)

    thread = threading.Thread(target=pump, daemon=True)
    thread.start()
    return lines, thread


def _wait_line(lines: queue.Queue[str], needle: str, timeout: float) -> list[str]:
    seen: list[str] = []
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            line = lines.get(timeout=max(0.0, deadline - time.monotonic()))
        except queue.Empty:
            break
        seen.append(line)
        if needle in line:
            return seen
    raise AssertionError(f"no line with {needle!r} within {timeout}s; kubectl printed: {seen}")


def test_a_watch_sees_new_events_arrive(shared_agent: Agent, kube: Kubectl) -> None:
    pod = f"evwatch-{shared_agent.node}"
    proc = kube.popen("get", "events", "-w", "--field-selector", f"involvedObject.name={pod}")
    lines, reader = _lines(proc)
    try:
        # Nothing is recorded for this pod yet: whatever arrives came through the watch.
        shared_agent.write("evwatch.yaml", pod_manifest("evwatch", [sh("app", "sleep 3600")]))
        seen = _wait_line(lines, "Started container app", timeout=30)
        assert any(f"pod/{pod}" in line for line in seen), seen
    finally:
        proc.kill()
        proc.wait(5)
        reader.join(5)  # it ends at the end of kubectl's output
        for stream in (proc.stdout, proc.stderr):
            if stream is not None:
                stream.close()


def test_get_nodes_shows_this_node_ready_with_the_agents_version(
    shared_agent: Agent, kube: Kubectl
) -> None:
    node = shared_agent.node

    def row() -> list[str] | None:
        for line in kube.run("get", "nodes").splitlines()[1:]:
            cells = line.split()
            if cells[0] == node and cells[1] == "Ready":
                return cells
        return None

    cells = wait_until(
        row, timeout=20, what=f"node {node} Ready in kubectl get nodes", interval=0.5
    )
    assert cells[2] == "<none>"  # ROLES
    assert cells[-1] == f"v{__version__}"  # VERSION
    wide = kube.run("get", "nodes", "-o", "wide")
    assert "INTERNAL-IP" in wide.splitlines()[0]
    assert "docker://" in wide


def test_the_node_as_json(shared_agent: Agent, kube: Kubectl) -> None:
    node: dict[str, Any] = kube.json("get", "node", shared_agent.node)
    assert node["kind"] == "Node"
    status = node["status"]
    assert set(status["capacity"]) >= {"cpu", "memory", "pods", "ephemeral-storage"}
    assert status["capacity"]["pods"] == "110"
    assert [c["type"] for c in status["conditions"]] == [
        "MemoryPressure",
        "DiskPressure",
        "PIDPressure",
        "Ready",
    ]
    info = status["nodeInfo"]
    assert info["kubeletVersion"] == f"v{__version__}"
    assert info["containerRuntimeVersion"].startswith("docker://")
    assert info["operatingSystem"] == "linux"
    assert info["bootID"] == Path("/proc/sys/kernel/random/boot_id").read_text().strip()
    assert status["daemonEndpoints"]["kubeletEndpoint"]["Port"] == shared_agent.port
    assert node["metadata"]["labels"]["kubernetes.io/hostname"] == shared_agent.node


def test_another_node_is_not_found(kube: Kubectl) -> None:
    done = subprocess.run(
        kube.args("get", "node", "elsewhere"),
        env=kube.env,
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )
    assert done.returncode == 1
    assert 'nodes "elsewhere" not found' in done.stderr


def test_describe_node(shared_agent: Agent, kube: Kubectl) -> None:
    start_pod(shared_agent, "evdesc")
    text = kube.run("describe", "node", shared_agent.node)
    for heading in ("Conditions:", "Capacity:", "Allocatable:", "System Info:", "Events:"):
        assert heading in text, text
    assert "KubeletReady" in text
    assert f"Kubelet Version:            v{__version__}" in text
    # The pods on the node, from /api/v1/pods, and the node's own events.
    assert f"evdesc-{shared_agent.node}" in text, text
    assert "NodeReady" in text, text
    lease = json.loads(
        kube.run(
            "get",
            "--raw",
            f"/apis/coordination.k8s.io/v1/namespaces/kube-node-lease/leases/{shared_agent.node}",
        )
    )
    assert lease["spec"]["holderIdentity"] == shared_agent.node


# A request kubectl logs at -v=6, 1.20 and 1.32 alike: "... round_trippers.go:N] GET <url> 200 OK".
REQUEST = re.compile(r"round_trippers\.go:\d+\] (GET|HEAD|POST|PUT|PATCH|DELETE) (\S+) (\d{3})")


@pytest.mark.parametrize(
    "args",
    [
        ("get", "events", "-A"),
        ("get", "events", "-o", "wide"),
        ("get", "nodes", "-o", "wide"),
        ("get", "node", "{node}", "-o", "yaml"),
        ("describe", "node", "{node}"),
    ],
    ids=" ".join,
)
def test_kubectl_makes_no_failing_request(
    shared_agent: Agent, kube: Kubectl, args: tuple[str, ...], tmp_path: Path
) -> None:
    """Every read kubectl makes for events and the node answers 200, describe node's Lease
    and pod list included: nothing it falls back from."""
    done = subprocess.run(
        # A cache of its own, so discovery is asked for, not read from an earlier run.
        kube.args(
            *(a.format(node=shared_agent.node) for a in args),
            "-v=6",
            "--cache-dir",
            str(tmp_path / "cache"),
        ),
        env=kube.env,
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    requests = REQUEST.findall(done.stderr)
    assert requests, done.stderr
    failed = [(method, url, code) for method, url, code in requests if code != "200"]
    assert failed == []


def test_an_image_that_may_not_be_pulled_is_the_kubelets_two_warnings(
    shared_agent: Agent, kube: Kubectl
) -> None:
    image = "localhost/minikubelet/absent:1"
    container = {"name": "app", "image": image, "imagePullPolicy": "Never"}
    shared_agent.write("evnever.yaml", pod_manifest("evnever", [container]))
    pod = f"evnever-{shared_agent.node}"
    shared_agent.wait_event(name="evnever", reason="ErrImageNeverPull")
    listed = kube.json("get", "events", "--field-selector", f"involvedObject.name={pod}")
    warnings = {(e["reason"], e["message"]) for e in listed["items"] if e["type"] == "Warning"}
    assert (
        "ErrImageNeverPull",
        f'Container image "{image}" is not present with pull policy of Never',
    ) in warnings
    assert ("Failed", "Error: ErrImageNeverPull") in warnings
    assert {e["involvedObject"].get("fieldPath") for e in listed["items"]} == {
        "spec.containers{app}"
    }
