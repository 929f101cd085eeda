"""Keeping pods alive: restart policy, back-off, init and sidecar containers, hooks, termination."""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from tests.integration.conftest import NETWORK, Agent, pod_manifest, sh, status_of, wait_until

pytestmark = pytest.mark.docker


def restart_count(pod: dict[str, Any], name: str) -> int:
    return int(status_of(pod, name)["restartCount"])


def _phase_is(phase: str) -> Callable[[dict[str, Any]], bool]:
    return lambda pod: bool(pod["status"]["phase"] == phase)


# (policy, exit code) → (phase, whether the container is restarted)
POLICIES = [
    ("Always", 0, "Running", True),
    ("Always", 1, "Running", True),
    ("OnFailure", 0, "Succeeded", False),
    ("OnFailure", 1, "Running", True),
    ("Never", 0, "Succeeded", False),
    ("Never", 1, "Failed", False),
]


def test_restart_policies_and_exit_codes(agent: Agent) -> None:
    for policy, code, _, _ in POLICIES:
        name = f"{policy.lower()}-{code}"
        agent.write(
            f"{name}.yaml",
            pod_manifest(name, [sh("c", f"sleep 0.5; exit {code}")], restartPolicy=policy),
        )
    for policy, code, phase, restarts in POLICIES:
        name = f"{policy.lower()}-{code}"
        if restarts:
            pod = agent.wait_pod(
                name, lambda p: restart_count(p, "c") >= 1, what=f"{name} restarted"
            )
            assert pod["status"]["phase"] == phase, name
            last = status_of(pod, "c")["lastState"]["terminated"]
            assert last["exitCode"] == code, name
            assert last["reason"] == ("Completed" if code == 0 else "Error"), name
        else:
            pod = agent.wait_pod(name, _phase_is(phase))
            terminated = status_of(pod, "c")["state"]["terminated"]
            assert terminated["exitCode"] == code, name
            assert restart_count(pod, "c") == 0, name
    # Terminal pods stay as they are: not restarted later either. Deliberately lets time
    # pass (three times the containers' run) to show that no restart happens.
    time.sleep(1.5)
    for policy, code, phase, restarts in POLICIES:
        if not restarts:
            later = agent.pod(f"{policy.lower()}-{code}")
            assert later is not None
            assert later["status"]["phase"] == phase
            assert restart_count(later, "c") == 0


def test_crash_loop_back_off_grows(agent: Agent) -> None:
    agent.write("crash.yaml", pod_manifest("crash", [sh("c", "exit 1")]))
    seen: dict[int, float] = {}
    messages: set[str] = set()

    def three_restarts() -> bool:
        # Samples every restart count as it appears, with when it was first seen.
        pod = agent.pod("crash")
        if pod is not None and pod["status"].get("containerStatuses"):
            status = status_of(pod, "c")
            seen.setdefault(int(status["restartCount"]), time.monotonic())
            waiting = status["state"].get("waiting") or {}
            if waiting.get("reason") == "CrashLoopBackOff":
                messages.add(waiting["message"].split(" restarting")[0])
        return len(seen) >= 4

    wait_until(three_restarts, timeout=60, what="three restarts of the crashing container")
    assert sorted(seen)[:4] == [0, 1, 2, 3], f"restart counts seen: {sorted(seen)}"
    first, second, third = seen[1] - seen[0], seen[2] - seen[1], seen[3] - seen[2]
    # The first restart is immediate; then 10 s, then 20 s (plus the run time).
    assert first < 5
    assert 9 <= second < 16
    assert 19 <= third < 28
    assert {"back-off 10s", "back-off 20s"} <= messages
    assert status_of(agent.pod("crash") or {}, "c")["lastState"]["terminated"]["exitCode"] == 1


def test_init_containers_run_in_order_before_apps(agent: Agent) -> None:
    work = [{"name": "work", "mountPath": "/work"}]
    agent.write(
        "init.yaml",
        pod_manifest(
            "init",
            [sh("app", "cp /work/log /work/seen; sleep 3600 & wait", volumeMounts=work)],
            initContainers=[
                sh("first", "sleep 0.5; echo first >> /work/log", volumeMounts=work),
                sh("second", "echo second >> /work/log", volumeMounts=work),
            ],
            volumes=[{"name": "work", "emptyDir": {}}],
        ),
    )
    pod = agent.wait_running("init")
    assert agent.exec(pod, "app", "cat", "/work/seen") == "first\nsecond\n"
    for name in ("first", "second"):
        terminated = status_of(pod, name)["state"]["terminated"]
        assert (terminated["exitCode"], terminated["reason"]) == (0, "Completed")
    conditions = {c["type"]: c["status"] for c in pod["status"]["conditions"]}
    assert conditions["Initialized"] == "True"


@pytest.mark.parametrize(("policy", "phase"), [("Always", "Pending"), ("Never", "Failed")])
def test_failing_init_container_blocks_the_pod(agent: Agent, policy: str, phase: str) -> None:
    agent.write(
        "blocked.yaml",
        pod_manifest(
            "blocked",
            [sh("app", "sleep 3600 & wait")],
            initContainers=[sh("setup", "exit 2")],
            restartPolicy=policy,
        ),
    )
    if policy == "Never":
        pod = agent.wait_pod("blocked", lambda p: p["status"]["phase"] == "Failed")
    else:
        pod = agent.wait_pod("blocked", lambda p: restart_count(p, "setup") >= 1)
        # Deliberately lets the agent's next passes run, to show that they do not
        # create the app container either.
        time.sleep(0.5)
        pod = agent.pod("blocked") or {}
    assert pod["status"]["phase"] == phase
    app = status_of(pod, "app")
    assert "containerID" not in app, "the app container must never be created"
    assert app["state"]["waiting"]["reason"] == "PodInitializing"
    conditions = {c["type"]: c["status"] for c in pod["status"]["conditions"]}
    assert conditions["Initialized"] == "False"


def test_sidecar_outlives_a_crash_of_the_main_container(agent: Agent) -> None:
    agent.write(
        "side.yaml",
        pod_manifest(
            "side",
            [sh("main", "sleep 1; exit 1")],
            initContainers=[sh("proxy", "sleep 3600 & wait", restartPolicy="Always")],
        ),
    )
    first = agent.wait_pod("side", lambda p: "running" in status_of(p, "proxy")["state"])
    proxy_id = status_of(first, "proxy")["containerID"]
    pod = agent.wait_pod("side", lambda p: restart_count(p, "main") >= 1, timeout=20)
    proxy = status_of(pod, "proxy")
    assert proxy["containerID"] == proxy_id
    assert "running" in proxy["state"]
    assert proxy["restartCount"] == 0
    assert pod["status"]["phase"] == "Running"


def test_post_start_hook_runs_and_its_failure_kills_the_container(agent: Agent) -> None:
    agent.write(
        "hooks.yaml",
        pod_manifest(
            "hooks",
            [
                sh(
                    "good",
                    "sleep 3600 & wait",
                    lifecycle={
                        "postStart": {"exec": {"command": ["sh", "-c", "echo hi > /tmp/ps"]}}
                    },
                ),
                sh(
                    "bad",
                    "sleep 3600 & wait",
                    lifecycle={"postStart": {"exec": {"command": ["sh", "-c", "exit 3"]}}},
                ),
            ],
        ),
    )
    pod = agent.wait_pod("hooks", lambda p: restart_count(p, "bad") >= 1, timeout=20)
    assert agent.exec(pod, "good", "cat", "/tmp/ps") == "hi\n"
    assert restart_count(pod, "good") == 0
    failed = agent.wait_event(
        name="hooks", reason="FailedPostStartHook", field_path="spec.containers{bad}"
    )
    assert failed["type"] == "Warning"
    # The kubelet's words, not the hook's output, which may carry secrets.
    assert failed["message"] == "PostStartHook failed"
    killing = agent.wait_event(name="hooks", reason="Killing", field_path="spec.containers{bad}")
    assert killing["message"] == "FailedPostStartHook"
    assert (
        agent.events(name="hooks", reason="FailedPostStartHook", field_path="spec.containers{good}")
        == []
    )


def test_pre_stop_runs_before_the_stop_signal(agent: Agent, tmp_path: Path) -> None:
    out = tmp_path / "out"
    out.mkdir()
    out.chmod(0o777)
    mounts = [{"name": "out", "mountPath": "/out"}]
    agent.write(
        "stop.yaml",
        pod_manifest(
            "stop",
            [
                {
                    "name": "c",
                    "image": "localhost/minikubelet/busybox:1",
                    "command": [
                        "sh",
                        "-c",
                        "trap 'echo term >> /out/order; exit 0' TERM; sleep 3600 & wait",
                    ],
                    "volumeMounts": mounts,
                    "lifecycle": {
                        "preStop": {"exec": {"command": ["sh", "-c", "echo prestop >> /out/order"]}}
                    },
                }
            ],
            terminationGracePeriodSeconds=10,
            volumes=[{"name": "out", "hostPath": {"path": str(out), "type": "Directory"}}],
        ),
    )
    pod = agent.wait_running("stop")
    uid = pod["metadata"]["uid"]
    agent.remove("stop.yaml")
    wait_until(
        lambda: not agent.containers(**{"io.kubernetes.pod.uid": uid}),
        timeout=15,
        what="the pod's containers gone",
    )
    assert (out / "order").read_text() == "prestop\nterm\n"


def test_container_ignoring_sigterm_is_killed_at_its_grace_not_before(agent: Agent) -> None:
    stubborn = {
        "name": "c",
        "image": "localhost/minikubelet/busybox:1",
        "command": ["sh", "-c", "trap '' TERM; while true; do sleep 0.1; done"],
    }
    agent.write("slow.yaml", pod_manifest("slow", [stubborn], terminationGracePeriodSeconds=3))
    pod = agent.wait_running("slow")
    cid = status_of(pod, "c")["containerID"].removeprefix("docker://")
    uid = pod["metadata"]["uid"]
    t0 = time.monotonic()
    agent.remove("slow.yaml")
    # Deliberately lets 2.5 s of the 3 s grace pass, to show the container is not killed early.
    time.sleep(2.5)
    assert agent.api.inspect_container(cid)["State"]["Running"], "killed before its grace"
    wait_until(
        lambda: not agent.containers(**{"io.kubernetes.pod.uid": uid}),
        timeout=15,
        what="the pod's containers gone",
    )
    elapsed = time.monotonic() - t0
    assert 3.0 <= elapsed < 8.0, f"pod deletion took {elapsed:.1f}s for a grace of 3s"


def test_killed_container_is_restarted_at_once(agent: Agent) -> None:
    agent.write("k.yaml", pod_manifest("k", [sh("c", "sleep 3600 & wait")]))
    pod = agent.wait_running("k")
    old = status_of(pod, "c")["containerID"]
    agent.api.kill(old.removeprefix("docker://"))
    # Event-driven: far sooner than any periodic resync would notice.
    pod = agent.wait_pod(
        "k",
        lambda p: (
            status_of(p, "c")["containerID"] != old and "running" in status_of(p, "c")["state"]
        ),
        timeout=3,
        what="the killed container replaced",
    )
    status = status_of(pod, "c")
    assert status["restartCount"] == 1
    assert status["lastState"]["terminated"]["exitCode"] == 137


def test_removed_sandbox_is_recreated_with_its_containers(agent: Agent) -> None:
    agent.write("sb.yaml", pod_manifest("sb", [sh("c", "sleep 3600 & wait")]))
    pod = agent.wait_running("sb")
    uid = pod["metadata"]["uid"]
    [sandbox] = agent.containers(
        **{"io.kubernetes.pod.uid": uid, "io.kubernetes.docker.type": "podsandbox"}
    )
    agent.api.remove_container(sandbox["Id"], force=True)
    pod = agent.wait_pod(
        "sb",
        lambda p: restart_count(p, "c") >= 1 and "running" in status_of(p, "c")["state"],
        timeout=15,
        what="the pod recreated",
    )
    sandboxes = agent.containers(
        **{"io.kubernetes.pod.uid": uid, "io.kubernetes.docker.type": "podsandbox"}
    )
    assert [s["Id"] for s in sandboxes] != [sandbox["Id"]]
    assert [s["Labels"]["io.minikubelet.sandbox.attempt"] for s in sandboxes] == ["1"]
    assert agent.exec(pod, "c", "hostname").strip() == pod["metadata"]["name"]


def test_termination_messages_from_file_and_from_logs(agent: Agent) -> None:
    agent.write(
        "msg.yaml",
        pod_manifest(
            "msg",
            [
                sh("file", "echo 'disk full' > /dev/termination-log; exit 3"),
                sh(
                    "logs",
                    "echo 'last words'; exit 4",
                    terminationMessagePolicy="FallbackToLogsOnError",
                ),
                sh(
                    "custom",
                    "echo bye > /tmp/why; exit 0",
                    terminationMessagePath="/tmp/why",
                ),
            ],
            restartPolicy="Never",
        ),
    )
    pod = agent.wait_pod(
        "msg",
        lambda p: (
            len(p["status"].get("containerStatuses") or []) == 3
            and all("terminated" in s["state"] for s in p["status"]["containerStatuses"])
        ),
    )
    messages = {
        s["name"]: (s["state"]["terminated"]["exitCode"], s["state"]["terminated"].get("message"))
        for s in pod["status"]["containerStatuses"]
    }
    assert messages == {
        "file": (3, "disk full\n"),
        "logs": (4, "last words\n"),
        "custom": (0, "bye\n"),
    }
    assert pod["status"]["phase"] == "Failed"


def test_http_pre_stop_hook_is_called_before_the_container_stops(
    agent: Agent, tmp_path: Path
) -> None:
    out = tmp_path / "out"
    out.mkdir()
    out.chmod(0o777)
    # A CGI script records each call of the hook's path in a host directory.
    script = (
        "#!/bin/sh\\necho hook >> /out/calls\\necho Content-Type: text/plain\\necho\\necho ok\\n"
    )
    server = {
        "name": "web",
        "image": "localhost/minikubelet/busybox:1",
        "command": [
            "sh",
            "-c",
            f"mkdir -p /srv/cgi-bin && printf '{script}' > /srv/cgi-bin/stop "
            "&& chmod +x /srv/cgi-bin/stop && exec httpd -f -p 8080 -h /srv",
        ],
        "ports": [{"name": "http", "containerPort": 8080}],
        "volumeMounts": [{"name": "out", "mountPath": "/out"}],
        "lifecycle": {"preStop": {"httpGet": {"path": "/cgi-bin/stop", "port": "http"}}},
    }
    agent.write(
        "hook.yaml",
        pod_manifest(
            "hook",
            [server],
            terminationGracePeriodSeconds=5,
            volumes=[{"name": "out", "hostPath": {"path": str(out), "type": "Directory"}}],
        ),
    )
    pod = agent.wait_running("hook")
    uid = pod["metadata"]["uid"]
    agent.remove("hook.yaml")
    wait_until(
        lambda: not agent.containers(**{"io.kubernetes.pod.uid": uid}),
        timeout=15,
        what="the pod's containers gone",
    )
    assert (out / "calls").read_text() == "hook\n"
    assert agent.events(name="hook", reason="FailedPreStopHook") == []
    assert agent.events(name="hook", reason="Killing", field_path="spec.containers{web}")


def test_pod_whose_network_is_gone_is_recreated(agent: Agent) -> None:
    agent.write("net.yaml", pod_manifest("net", [sh("c", "sleep 3600 & wait")]))
    pod = agent.wait_running("net")
    uid = pod["metadata"]["uid"]
    [sandbox] = agent.containers(
        **{"io.kubernetes.pod.uid": uid, "io.kubernetes.docker.type": "podsandbox"}
    )
    agent.api.disconnect_container_from_network(sandbox["Id"], NETWORK)
    pod = agent.wait_pod(
        "net",
        lambda p: restart_count(p, "c") >= 1 and "running" in status_of(p, "c")["state"],
        timeout=15,
        what="the pod recreated on a new sandbox",
    )
    running = agent.containers(
        **{"io.kubernetes.pod.uid": uid, "io.kubernetes.docker.type": "podsandbox"}
    )
    assert [
        s["Labels"]["io.minikubelet.sandbox.attempt"] for s in running if s["State"] == "running"
    ] == ["1"]
    assert pod["status"]["podIP"]
    changed = agent.wait_event(name="net", reason="SandboxChanged")
    assert "lost its network" in changed["message"]
