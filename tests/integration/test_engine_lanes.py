"""Long engine calls do not hold up quick ones: stops in their grace period and pod starts."""

from __future__ import annotations

import threading
import time

import pytest

from tests.integration.conftest import IMAGE, Agent, pod_manifest, wait_until

pytestmark = pytest.mark.docker

GRACE = 20
# As many stops at once as the engine's quick lane has threads.
STUBBORN_PODS = 8


class HealthPoller:
    """Polls /healthz on a thread until stopped or its deadline; keeps every answer."""

    def __init__(self, agent: Agent, *, deadline: float) -> None:
        self.answers: list[tuple[float, int]] = []
        self._agent = agent
        self._deadline = deadline
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def __enter__(self) -> HealthPoller:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(10)

    def _run(self) -> None:
        while not self._stop.is_set() and time.monotonic() < self._deadline:
            self.answers.append((time.monotonic(), self._agent.get_status("/healthz")))
            self._stop.wait(0.1)


def test_stops_in_their_grace_period_leave_pod_starts_and_healthz_alone(agent: Agent) -> None:
    stubborn = {
        "name": "c",
        "image": IMAGE,
        "command": ["sh", "-c", "trap '' TERM; sleep 3600 & wait"],
    }
    for i in range(STUBBORN_PODS):
        agent.write(
            f"stubborn{i}.yaml",
            pod_manifest(f"stubborn{i}", [stubborn], terminationGracePeriodSeconds=GRACE),
        )
    uids = [agent.wait_running(f"stubborn{i}")["metadata"]["uid"] for i in range(STUBBORN_PODS)]

    def running_stubborn() -> int:
        return sum(
            1
            for uid in uids
            for c in agent.containers(**{"io.kubernetes.pod.uid": uid})
            if c["Labels"].get("io.kubernetes.docker.type") == "container"
            and c["State"] == "running"
        )

    assert running_stubborn() == STUBBORN_PODS
    with HealthPoller(agent, deadline=time.monotonic() + 3 * GRACE) as health:
        removed_at = time.monotonic()
        for i in range(STUBBORN_PODS):
            agent.remove(f"stubborn{i}.yaml")
        wait_until(
            lambda: (
                len(agent.events(reason="Killing", field_path="spec.containers{c}"))
                >= STUBBORN_PODS
            ),
            timeout=10,
            what="every stubborn pod's stop to begin",
        )
        agent.write("fresh.yaml", pod_manifest("fresh", [stubborn]))
        agent.wait_running("fresh", timeout=GRACE)
        started_after = time.monotonic() - removed_at
        # The stops were all still waiting out their grace when the new pod ran.
        still_stopping = running_stubborn()
        wait_until(
            lambda: running_stubborn() == 0,
            timeout=3 * GRACE,
            what="the stubborn containers killed at the end of their grace",
        )
        stopped_after = time.monotonic() - removed_at
    assert still_stopping == STUBBORN_PODS
    assert started_after < GRACE / 2, f"the new pod ran {started_after:.1f}s after the removals"
    assert stopped_after >= GRACE - 1, "the stubborn containers were killed before their grace"
    failures = [(round(at - removed_at, 1), code) for at, code in health.answers if code != 200]
    assert health.answers, "/healthz was never polled"
    assert failures == [], f"/healthz failed during the stops: {failures}"
