"""Restart after ``docker kill``, and the agent's idle cost with 110 pods.

- restart: ``docker kill`` of a pod's container until the agent's pod watch shows
  its replacement running; each sample uses its own pod, so every kill is a first
  failure (restarted at once, as on the kubelet; later ones wait out back-off).
  Baseline, in the same run, alternating: Docker starting a stopped copy of that
  same container (same config, joined to the same sandbox). The agent does a
  create and a start per restart, the baseline only a start.
- idle: 110 pods (kubelet's default maximum) running, nothing changing, for
  60 s: the agent's CPU time over that window and its RSS at the end.
"""

from __future__ import annotations

import tempfile
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import docker

from bench.common import (
    AgentProcess,
    PodWatcher,
    api_client,
    busybox_image,
    machine_summary,
    median,
    node_label,
    remove_labelled,
    sandbox_image,
    sleep_pod,
    spread,
    write_results,
)

NETWORK, CIDR = "minikubelet-bench", "10.219.0.0/16"
COPY_LABEL = "io.minikubelet.bench=copy"
TIMEOUT = 120.0


@dataclass
class Report:
    machine: str
    restart_agent: list[float] = field(default_factory=list)
    restart_docker_start: list[float] = field(default_factory=list)
    idle_pods: int = 0
    idle_seconds: float = 0.0
    idle_cpu_seconds: float = 0.0
    idle_rss_bytes: int = 0


def _container(pods: list[dict[str, Any]], name: str) -> dict[str, Any] | None:
    for pod in pods:
        if pod["metadata"]["name"].startswith(name + "-"):
            statuses = pod["status"].get("containerStatuses") or []
            return statuses[0] if statuses else None
    return None


def _running_id(pods: list[dict[str, Any]], name: str) -> str | None:
    status = _container(pods, name)
    if status is None or "running" not in status["state"]:
        return None
    return str(status["containerID"]).removeprefix("docker://")


def _replaced(name: str, old: str) -> Callable[[list[dict[str, Any]]], bool]:
    return lambda pods: _running_id(pods, name) not in (None, old)


def _start_copy(client: docker.APIClient, cid: str, name: str) -> float:
    """Seconds Docker takes to start a stopped copy of container ``cid``."""
    info = client.inspect_container(cid)
    config = dict(info["Config"])
    config["Labels"] = {"io.minikubelet.bench": "copy"}
    # Joined to the sandbox's namespaces, the copy may not set its own hostname.
    config.pop("Hostname", None)
    config.pop("Domainname", None)
    config["HostConfig"] = info["HostConfig"]
    copy = client.create_container_from_config(config, name)["Id"]  # type: ignore[no-untyped-call]
    try:
        client.start(copy)
        client.kill(copy)
        client.wait(copy, timeout=30)
        t0 = time.perf_counter()
        client.start(copy)
        return time.perf_counter() - t0
    finally:
        client.remove_container(copy, force=True)


def _write_pods(agent: AgentProcess, names: list[str], image: str) -> None:
    for name in names:
        agent.put_manifest(name, sleep_pod(name, image, ("c",)))


def run(samples: int, idle_pods: int, idle_seconds: float) -> Report:
    client = api_client()
    image = busybox_image(client)
    sandbox = sandbox_image()
    remove_labelled(client, COPY_LABEL)
    report = Report(machine=machine_summary())
    with tempfile.TemporaryDirectory(prefix="mk-bench-") as tmp:
        agent = AgentProcess(
            Path(tmp), infra_image=sandbox, network=NETWORK, pod_cidr=CIDR, extra=[]
        )
        watch: PodWatcher | None = None
        try:
            watch = PodWatcher(agent.port)
            names = [f"k{i}" for i in range(max(samples, idle_pods))]
            _write_pods(agent, names, image)

            def everything_running(pods: list[dict[str, Any]]) -> bool:
                return sum(_running_id(pods, n) is not None for n in names) == len(names)

            watch.wait(everything_running, timeout=600)
            print(f"{len(names)} pods running", flush=True)

            # Idle first, before kills leave exited containers around.
            time.sleep(5)
            cpu0, t0 = agent.cpu_seconds(), time.monotonic()
            time.sleep(idle_seconds)
            report.idle_cpu_seconds = agent.cpu_seconds() - cpu0
            report.idle_seconds = time.monotonic() - t0
            report.idle_rss_bytes = agent.rss_bytes()
            report.idle_pods = len(names)
            print(
                f"idle: {report.idle_cpu_seconds / report.idle_seconds * 100:.2f}% CPU, "
                f"RSS {report.idle_rss_bytes / 2**20:.0f} MiB",
                flush=True,
            )

            for i in range(samples):
                name = names[i]
                old = _running_id(watch.snapshot(), name)
                assert old is not None
                docker_first = i % 2 == 1
                if docker_first:
                    report.restart_docker_start.append(_start_copy(client, old, f"mkcopy-{i}"))
                t0 = time.perf_counter()
                client.kill(old)
                watch.wait(_replaced(name, old), timeout=TIMEOUT)
                report.restart_agent.append(time.perf_counter() - t0)
                if not docker_first:
                    new = _running_id(watch.snapshot(), name)
                    assert new is not None
                    report.restart_docker_start.append(_start_copy(client, new, f"mkcopy-{i}"))
                time.sleep(0.2)
        finally:
            agent.stop()
            if watch is not None:
                watch.close()
            remove_labelled(client, node_label(agent.node))
            remove_labelled(client, COPY_LABEL)
    return report


def summarize(report: Report) -> str:
    ratios = [
        a / d for a, d in zip(report.restart_agent, report.restart_docker_start, strict=False)
    ]
    agent_ms = [x * 1000 for x in report.restart_agent]
    docker_ms = [x * 1000 for x in report.restart_docker_start]
    cpu = report.idle_cpu_seconds / report.idle_seconds * 100 if report.idle_seconds else 0.0
    return "\n".join(
        [
            f"lifecycle bench: {report.machine}",
            "",
            "| measurement | median | range | samples |",
            "|---|---|---|---|",
            f"| docker kill → replacement running (agent) | {median(agent_ms):.0f} ms "
            f"| {spread(agent_ms)} ms | {len(agent_ms)} |",
            f"| docker start of a stopped copy | {median(docker_ms):.0f} ms "
            f"| {spread(docker_ms)} ms | {len(docker_ms)} |",
            f"| ratio, paired per sample | {median(ratios):.2f}× | {spread(ratios)} "
            f"| {len(ratios)} |",
            "",
            f"idle with {report.idle_pods} pods over {report.idle_seconds:.0f} s: "
            f"{cpu:.2f}% of one core, RSS {report.idle_rss_bytes / 2**20:.0f} MiB",
        ]
    )


def main(samples: int = 50, idle_pods: int = 110, idle_seconds: float = 60.0) -> None:
    report = run(samples, idle_pods, idle_seconds)
    table = summarize(report)
    print()
    print(table)
    path = write_results("lifecycle", {**asdict(report), "table": table})
    print(f"\nwritten to {path}")
