"""Hostile and unlucky input through the running agent: it keeps going, pods untouched.

Each manifest here once broke the agent (a traceback that killed the file
source silently, or a pod that could never be stopped). Through the real
agent process: every bad file is reported by name, every good pod runs, and
later changes are still seen. Then the bad moments: a pod's file made
unreadable while the agent was down, and a second agent with the same node
name, neither of which may cost a running pod.
"""

from __future__ import annotations

import os
import stat
from collections.abc import Callable
from typing import Any

import pytest

from tests.corpus import good_manifest, hostile_manifests
from tests.integration.conftest import Agent, pod_manifest, sh, wait_until

pytestmark = pytest.mark.docker

IMAGE = "localhost/minikubelet/busybox:1"
HOSTILE = hostile_manifests(IMAGE)


def good(name: str) -> str:
    return good_manifest(name, IMAGE)


def _errors_by_file(agent: Agent) -> dict[str, list[dict[str, Any]]]:
    out: dict[str, list[dict[str, Any]]] = {}
    for error in agent.pod_list()["errors"]:
        out.setdefault(os.path.basename(error["file"]), []).append(error)
    return out


def test_hostile_files_are_reported_and_good_pods_run(agent: Agent) -> None:
    for i, (name, text) in enumerate(HOSTILE.items()):
        (agent.manifests / name).write_bytes(text.encode("utf-8", "surrogateescape"))
        # After each bad file, the source still sees a new good one.
        agent.write(f"good{i}.yaml", good(f"good{i}"))
        agent.wait_pod(f"good{i}", lambda p: True, timeout=15, what=f"good{i} listed")
    for i in range(len(HOSTILE)):
        agent.wait_running(f"good{i}")
    errors = _errors_by_file(agent)
    pods = {os.path.basename(p["metadata"]["name"]): p for p in agent.pod_list()["items"] or []}
    for name in HOSTILE:
        base = name.split(".")[0]
        ran = any(k.startswith(f"{base}-") for k in pods)
        assert ran or name in errors, f"{name}: neither a pod nor an error"
        for error in errors.get(name, []):
            assert error["message"], error
    # The mixed file names every one of its problems, not the first type error only.
    mixed = {e["field"] for e in errors["mixed.yaml"]}
    assert "metadata.name" in mixed
    assert "metadata.uid" in mixed
    assert any(f.startswith("spec.containers[1].name") for f in mixed)
    assert any("capabilities.add[0]" in f for f in mixed)
    assert "newline.json" in errors
    assert agent.get("/healthz", raw=True) == b"ok"
    # Policies left empty are unset, so they have their defaults.
    for name in ("resources", "policies"):
        if f"{name}-{agent.node}" in pods:
            spec = pods[f"{name}-{agent.node}"]["spec"]
            assert spec["restartPolicy"] == "Always"
            assert spec["dnsPolicy"] == "ClusterFirst"


def test_grace_left_empty_gets_the_default_and_the_pod_stops(agent: Agent) -> None:
    agent.write("grace.yaml", HOSTILE["grace.yaml"])
    pod = agent.wait_running("grace")
    assert pod["spec"]["terminationGracePeriodSeconds"] == 30
    agent.remove("grace.yaml")
    wait_until(
        lambda: not agent.containers(**{"io.kubernetes.pod.name": f"grace-{agent.node}"}),
        timeout=45,
        what="the pod with the defaulted grace period to be gone",
    )


def _container_ids(agent: Agent, pod: str) -> set[str]:
    return {
        c["Id"]
        for c in agent.containers(**{"io.kubernetes.pod.name": f"{pod}-{agent.node}"})
        if c["State"] == "running"
    }


def test_pod_whose_file_turned_bad_while_down_keeps_running(
    make_agent: Callable[..., Agent],
) -> None:
    agent = make_agent()
    agent.write("keep.yaml", pod_manifest("keep", [sh("c", "sleep 3600")]))
    agent.write("other.yaml", pod_manifest("other", [sh("c", "sleep 3600")]))
    agent.wait_running("keep")
    agent.wait_running("other")
    before = _container_ids(agent, "keep")
    assert agent.stop() == 0
    # An upgrade with stricter rules, a typo: the file is there but unusable now.
    agent.write("keep.yaml", "apiVersion: v1\nkind: Pod\nmetadata: {name: keep}\nspec: {}\n")
    agent.remove("other.yaml")  # really gone: this one goes
    agent.start()
    wait_until(lambda: not _container_ids(agent, "other"), timeout=30, what="the removed pod to go")
    assert "keep.yaml" in _errors_by_file(agent)
    assert _container_ids(agent, "keep") == before
    # Fixed (with a different spec): the held pod is replaced by the new one.
    agent.write("keep.yaml", pod_manifest("keep", [sh("c", "sleep 3601")]))
    new = agent.wait_running("keep")
    assert "3601" in " ".join(new["spec"]["containers"][0]["command"])
    wait_until(
        lambda: before.isdisjoint({c["Id"] for c in agent.containers()}),
        timeout=30,
        what="the held pod's old containers to be replaced",
    )


def test_second_agent_with_the_same_node_name_refuses(
    make_agent: Callable[..., Agent],
) -> None:
    first = make_agent()
    first.write("p.yaml", pod_manifest("p", [sh("c", "sleep 3600")]))
    first.wait_running("p")
    running = _container_ids(first, "p")
    second = make_agent(start=False)
    second.node = first.node
    second.write("q.yaml", pod_manifest("q", [sh("c", "sleep 3600")]))
    second.start(wait=False)
    assert second.proc is not None
    assert second.proc.wait(30) == 2, "a refusal to start, not a crash"
    # Its one line of output on the way out names the owner, for the operator.
    assert str(first.state) in second.log()
    # The name stays the first's on the engine, and the second touched nothing there.
    claim = first.api.inspect_volume(f"minikubelet-node-{first.node}")
    assert claim["Labels"]["io.minikubelet.owner.state-dir"] == os.path.realpath(first.state)
    assert not first.containers(**{"io.kubernetes.pod.name": f"q-{first.node}"})
    assert _container_ids(first, "p") == running
    assert first.get("/healthz", raw=True) == b"ok"
    # Once the first is stopped, its claim is stale and the name can be taken over.
    assert first.stop() == 0
    second.start()
    second.wait_running("q")


def test_state_directory_is_private(agent: Agent) -> None:
    agent.write("p.yaml", pod_manifest("p", [sh("c", "sleep 3600")]))
    agent.wait_running("p")
    mode = stat.S_IMODE(os.stat(agent.state).st_mode)
    assert mode & 0o007 == 0, oct(mode)
