"""Pod start and teardown: the agent against docker-py floors, alternating, in one run.

A pod is a sandbox plus two busybox ``sleep`` containers joined to its network
and IPC namespaces, with ``terminationGracePeriodSeconds: 0``.

- agent: from writing N manifests until ``/pods`` shows all N pods Running with
  every container running; from removing them until no container of the agent's
  node is left (a label-filtered list).
- floor ``pool8``: the same containers made with docker-py's low-level
  ``APIClient``, a thread pool of 8, one task per pod (create+start sandbox, then
  each app in turn); teardown removes a pod's apps then its sandbox with
  ``force=True``, one task per pod.
- floor ``pipelined`` (N = 1): the apps are created while the sandbox starts, then
  started together — the fastest order Docker allows.

Each round runs every variant for every N, rotating their order, so slow phases
of the machine hit all of them; ratios are taken per round and their median
reported, as ``../shared/reference/peer-bench.md`` does.
"""

from __future__ import annotations

import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import docker

from bench.common import (
    AgentProcess,
    PodWatcher,
    api_client,
    busybox_image,
    ensure_network,
    host_cpu_busy,
    machine_summary,
    median,
    node_label,
    remove_labelled,
    sandbox_image,
    sleep_pod,
    spread,
    wait_destroyed,
    write_results,
)

AGENT_NETWORK, AGENT_CIDR = "minikubelet-bench", "10.219.0.0/16"
FLOOR_NETWORK, FLOOR_CIDR = "minikubelet-bench-floor", "10.220.0.0/16"
FLOOR_LABEL = "io.minikubelet.bench=floor"
SETTLE = 1.0
TIMEOUT = 300.0


@dataclass
class Sample:
    variant: str
    n: int
    round: int
    start: float
    teardown: float
    agent_cpu: float | None = None
    host_busy: float = 0.0


@dataclass
class Report:
    machine: str
    rounds: int
    sizes: list[int]
    samples: list[Sample] = field(default_factory=list)


class Floor:
    """Direct docker-py calls: what the engine itself costs for these pods."""

    def __init__(self, client: docker.APIClient, sandbox: str, app: str) -> None:
        self.client = client
        self.sandbox = sandbox
        self.app = app
        self.pool = ThreadPoolExecutor(max_workers=8, thread_name_prefix="floor")
        self._seq = 0

    def _create_sandbox(self, name: str) -> str:
        hc = self.client.create_host_config(network_mode=FLOOR_NETWORK, ipc_mode="shareable")
        body = self.client.create_container(
            self.sandbox, name=name, labels={"io.minikubelet.bench": "floor"}, host_config=hc
        )
        return str(body["Id"])

    def _create_app(self, name: str, sandbox_id: str) -> str:
        hc = self.client.create_host_config(
            network_mode=f"container:{sandbox_id}", ipc_mode=f"container:{sandbox_id}"
        )
        body = self.client.create_container(
            self.app,
            command=["sleep", "1000000"],
            name=name,
            labels={"io.minikubelet.bench": "floor"},
            host_config=hc,
        )
        return str(body["Id"])

    def _pod_sequential(self, name: str) -> list[str]:
        sid = self._create_sandbox(f"{name}-sandbox")
        self.client.start(sid)
        ids = [sid]
        for app in ("a", "b"):
            cid = self._create_app(f"{name}-{app}", sid)
            self.client.start(cid)
            ids.append(cid)
        return ids

    def _pod_pipelined(self, name: str) -> list[str]:
        sid = self._create_sandbox(f"{name}-sandbox")
        started = self.pool.submit(self.client.start, sid)
        apps = [self.pool.submit(self._create_app, f"{name}-{a}", sid) for a in ("a", "b")]
        app_ids = [f.result() for f in apps]
        started.result()
        for f in [self.pool.submit(self.client.start, cid) for cid in app_ids]:
            f.result()
        return [sid, *app_ids]

    def _remove_pod(self, ids: list[str]) -> None:
        for cid in reversed(ids):  # apps first, then the sandbox
            self.client.remove_container(cid, force=True)

    def start(self, n: int, *, pipelined: bool) -> list[list[str]]:
        self._seq += 1
        names = [f"mkbench-floor-{self._seq}-{i}" for i in range(n)]
        if pipelined:
            assert n == 1, "the pipelined floor is defined for one pod"
            return [self._pod_pipelined(names[0])]
        return list(self.pool.map(self._pod_sequential, names))

    def teardown(self, pods: list[list[str]]) -> None:
        list(self.pool.map(self._remove_pod, pods))


def all_running(pods: list[dict[str, Any]], n: int) -> bool:
    running = 0
    for pod in pods:
        statuses = pod["status"].get("containerStatuses") or []
        if (
            pod["status"].get("phase") == "Running"
            and len(statuses) == 2
            and all("running" in s["state"] for s in statuses)
        ):
            running += 1
    return running == n


class AgentRunner:
    def __init__(self, agent: AgentProcess, client: docker.APIClient, image: str) -> None:
        self.agent = agent
        self.client = client
        self.image = image
        self.watch = PodWatcher(agent.port)
        self._seq = 0

    def start(self, n: int) -> list[Path]:
        self._seq += 1
        paths: list[Path] = []
        for i in range(n):
            name = f"p{self._seq}-{i}"
            paths.append(self.agent.put_manifest(name, sleep_pod(name, self.image, ("a", "b"))))
        self.watch.wait(lambda pods: all_running(pods, n), timeout=TIMEOUT)
        return paths

    def teardown(self, paths: list[Path]) -> None:
        label = node_label(self.agent.node)
        ids = {c["Id"] for c in self.client.containers(all=True, filters={"label": label})}
        since = time.time() - 1
        for path in paths:
            path.unlink()
        wait_destroyed(self.client, ids, since, timeout=TIMEOUT)
        self.watch.wait(lambda pods: not pods, timeout=TIMEOUT)


def run(rounds: int, sizes: list[int]) -> Report:
    client = api_client()
    image = busybox_image(client)
    sandbox = sandbox_image()
    ensure_network(client, FLOOR_NETWORK, FLOOR_CIDR)
    remove_labelled(client, FLOOR_LABEL)
    report = Report(machine=machine_summary(), rounds=rounds, sizes=sizes)
    with tempfile.TemporaryDirectory(prefix="mk-bench-") as tmp:
        agent = AgentProcess(
            Path(tmp), infra_image=sandbox, network=AGENT_NETWORK, pod_cidr=AGENT_CIDR, extra=[]
        )
        runner: AgentRunner | None = None
        try:
            runner = AgentRunner(agent, client, image)
            floor = Floor(client, sandbox, image)
            # One unmeasured pod each, so first-use costs (image cache, network) are paid.
            runner.teardown(runner.start(1))
            floor.teardown(floor.start(1, pipelined=False))
            for r in range(rounds):
                for n in sizes:
                    variants = ["agent", "pool8"] + (["pipelined"] if n == 1 else [])
                    shift = r % len(variants)
                    for variant in variants[shift:] + variants[:shift]:
                        sample = _measure(variant, n, r, runner, floor)
                        report.samples.append(sample)
                        print(
                            f"round {r + 1}/{rounds} N={n:<3} {variant:<9} "
                            f"start {sample.start:6.3f}s  teardown {sample.teardown:6.3f}s",
                            flush=True,
                        )
        finally:
            agent.stop()
            if runner is not None:
                runner.watch.close()
            remove_labelled(client, node_label(agent.node))
            remove_labelled(client, FLOOR_LABEL)
    return report


def _measure(variant: str, n: int, r: int, runner: AgentRunner, floor: Floor) -> Sample:
    time.sleep(SETTLE)
    busy0, total0 = host_cpu_busy()
    cpu0 = runner.agent.cpu_seconds()
    t0 = time.perf_counter()
    if variant == "agent":
        paths = runner.start(n)
        t1 = time.perf_counter()
        runner.teardown(paths)
    else:
        pods = floor.start(n, pipelined=variant == "pipelined")
        t1 = time.perf_counter()
        floor.teardown(pods)
    t2 = time.perf_counter()
    busy1, total1 = host_cpu_busy()
    return Sample(
        variant=variant,
        n=n,
        round=r,
        start=t1 - t0,
        teardown=t2 - t1,
        agent_cpu=runner.agent.cpu_seconds() - cpu0 if variant == "agent" else None,
        host_busy=(busy1 - busy0) / max(total1 - total0, 1.0),
    )


def _paired(report: Report, n: int, variant: str, attr: str) -> list[float]:
    by_round: dict[int, dict[str, float]] = {}
    for s in report.samples:
        if s.n == n:
            by_round.setdefault(s.round, {})[s.variant] = getattr(s, attr)
    return [v["agent"] / v[variant] for v in by_round.values() if "agent" in v and variant in v]


def summarize(report: Report) -> str:
    lines = [
        f"pods bench: {report.rounds} rounds, {report.machine}",
        "",
        "| N | variant | start (median) | ×pool8 | ×pipelined | teardown | ×pool8 | agent CPU |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for n in report.sizes:
        for variant in ("pool8", "pipelined", "agent"):
            samples = [s for s in report.samples if s.n == n and s.variant == variant]
            if not samples:
                continue
            start = median([s.start for s in samples])
            teardown = median([s.teardown for s in samples])
            if variant == "agent":
                sp, tp = (
                    _paired(report, n, "pool8", "start"),
                    _paired(report, n, "pool8", "teardown"),
                )
                pp = _paired(report, n, "pipelined", "start")
                cpu = median([s.agent_cpu or 0.0 for s in samples])
                cols = [
                    f"{median(sp):.2f}× [{spread(sp)}]",
                    f"{median(pp):.2f}× [{spread(pp)}]" if pp else "",
                    f"{teardown:.3f}s",
                    f"{median(tp):.2f}× [{spread(tp)}]",
                    f"{cpu * 1000 / n:.0f} ms/pod",
                ]
            else:
                cols = ["1.00×" if variant == "pool8" else "", "", f"{teardown:.3f}s", "", ""]
            lines.append(f"| {n} | {variant} | {start:.3f}s | " + " | ".join(cols) + " |")
    return "\n".join(lines)


def main(rounds: int, sizes: list[int]) -> None:
    report = run(rounds, sizes)
    table = summarize(report)
    print()
    print(table)
    path = write_results("pods", {**asdict(report), "table": table})
    print(f"\nwritten to {path}")
