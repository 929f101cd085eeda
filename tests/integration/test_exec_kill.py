"""Hook execs past their deadline are killed, through the running agent.

An exec hook used to be abandoned at its deadline but left running in the
container, holding one of the agent's exec threads for as long as it
pleased. Now its process is killed at the deadline (through a pidfd, once
confirmed to be the exec's), before the container itself is stopped.
"""

from __future__ import annotations

import time

import docker
import pytest

from tests.integration.conftest import IMAGE, Agent, pod_manifest, wait_until

pytestmark = pytest.mark.docker

HOOK = "sleep 3601"


def hook_running(agent: Agent, cid: str) -> bool:
    processes = agent.api.top(cid).get("Processes") or []
    return any(HOOK in " ".join(process) for process in processes)


def test_a_pre_stop_exec_past_its_deadline_is_killed_before_the_container(agent: Agent) -> None:
    container = {
        "name": "c",
        "image": IMAGE,
        # Ignores SIGTERM: after the hook the container lives on for the
        # minimum stop window (2 s), until SIGKILL.
        "command": ["sh", "-c", "trap '' TERM; while true; do sleep 1; done"],
        "lifecycle": {"preStop": {"exec": {"command": ["sh", "-c", f"exec {HOOK}"]}}},
    }
    agent.write("hook.yaml", pod_manifest("hook", [container], terminationGracePeriodSeconds=3))
    pod = agent.wait_running("hook")
    cid = agent.container_of(pod, "c")["Id"]
    agent.remove("hook.yaml")
    wait_until(lambda: hook_running(agent, cid), timeout=10, what="the preStop hook to run")
    began = time.monotonic()

    def hook_gone() -> str | None:
        try:
            if hook_running(agent, cid):
                return None
            running = agent.api.inspect_container(cid)["State"]["Running"]
        except docker.errors.NotFound:
            running = False
        return "killed, container still running" if running else "gone with its container"

    outcome = wait_until(hook_gone, timeout=15, what="the hook's process to end")
    assert outcome == "killed, container still running", agent.log_tail()
    # Killed at the deadline (3 s of grace), not earlier.
    assert time.monotonic() - began > 2.0
