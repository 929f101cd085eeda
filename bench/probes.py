"""Probing 110 pods, and one probe of each kind against its bare equivalent.

- load: 110 pods, each a busybox httpd with an HTTP readiness probe every 1 s and
  an exec liveness probe every 10 s (kubelet's default period), for 60 s. The
  agent's CPU time and RSS, probes run per second (``/metrics``) against the
  expected 121/s, and the lag between each probe's due time and its start
  (p50, p99 from the agent's lag histogram).
- single probes, 50 samples each, alternating with the baseline in the same
  run: the agent's own probe code (``ProbeRunner`` over the runtime's exec path)
  against docker-py ``exec_run`` of the same command, an aiohttp GET and a
  plain socket connect. 10 ms pauses between network samples keep busybox
  httpd's small accept backlog from dropping SYNs (a 1 s stall that would be
  nobody's fault).
"""

from __future__ import annotations

import asyncio
import re
import socket
import tempfile
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import aiohttp
import docker

from bench.common import (
    AgentProcess,
    PodWatcher,
    api_client,
    busybox_image,
    machine_summary,
    median,
    node_label,
    pod_yaml,
    remove_labelled,
    sandbox_image,
    spread,
    write_results,
)
from minikubelet.container.cache import RuntimeCache
from minikubelet.model.spec import ExecAction, HTTPGetAction, TCPSocketAction
from minikubelet.prober.handlers import ProbeRunner, ProbeTarget
from minikubelet.runtime.docker import DockerRuntime, RuntimeConfig
from minikubelet.runtime.dockerspec import NodeResources
from minikubelet.runtime.executor import DockerExecutor

NETWORK, CIDR = "minikubelet-bench", "10.219.0.0/16"
SAMPLES = 50


@dataclass
class Report:
    machine: str
    pods: int = 0
    seconds: float = 0.0
    agent_cpu_seconds: float = 0.0
    agent_rss_bytes: int = 0
    probes_per_second: dict[str, float] = field(default_factory=dict)
    expected_per_second: dict[str, float] = field(default_factory=dict)
    lag_p50: float = 0.0
    lag_p99: float = 0.0
    # Second phase: the same pods with only their HTTP readiness probes.
    http_only_cpu_seconds: float = 0.0
    http_only_seconds: float = 0.0
    http_only_per_second: float = 0.0
    single: dict[str, list[float]] = field(default_factory=dict)


def manifest(name: str, image: str, *, exec_liveness: bool = True) -> str:
    script = "mkdir -p /srv && echo ok > /srv/index.html && exec httpd -f -p 8080 -h /srv"
    container: dict[str, Any] = {
        "name": "web",
        "image": image,
        "command": ["sh", "-c", script],
        "readinessProbe": {"httpGet": {"path": "/", "port": 8080}, "periodSeconds": 1},
    }
    if exec_liveness:
        container["livenessProbe"] = {"exec": {"command": ["true"]}, "periodSeconds": 10}
    return pod_yaml(name, [container])


_SAMPLE = re.compile(r"^(\w+)(?:\{([^}]*)\})? ([0-9.e+-]+)$")


def scrape(agent: AgentProcess) -> dict[tuple[str, frozenset[tuple[str, str]]], float]:
    out: dict[tuple[str, frozenset[tuple[str, str]]], float] = {}
    for line in agent.get("/metrics").decode().splitlines():
        m = _SAMPLE.match(line)
        if m is None:
            continue
        labels = frozenset(
            tuple(kv.split("=", 1)) for kv in (m.group(2) or "").split(",") if "=" in kv
        )
        out[(m.group(1), frozenset((k, v.strip('"')) for k, v in labels))] = float(m.group(3))
    return out


def _delta(
    before: dict[tuple[str, frozenset[tuple[str, str]]], float],
    after: dict[tuple[str, frozenset[tuple[str, str]]], float],
    name: str,
    **labels: str,
) -> float:
    want = set(labels.items())
    return sum(
        v - before.get(k, 0.0) for k, v in after.items() if k[0] == name and want <= set(k[1])
    )


def lag_quantile(
    before: dict[tuple[str, frozenset[tuple[str, str]]], float],
    after: dict[tuple[str, frozenset[tuple[str, str]]], float],
    q: float,
) -> float:
    """A quantile of the lag histogram's window, interpolated within its bucket."""
    buckets: dict[float, float] = {}
    for key, value in after.items():
        if key[0] != "minikubelet_probe_lag_seconds_bucket":
            continue
        le = dict(key[1])["le"]
        bound = float("inf") if le == "+Inf" else float(le)
        buckets[bound] = buckets.get(bound, 0.0) + value - before.get(key, 0.0)
    bounds = sorted(buckets)
    total = buckets[bounds[-1]] if bounds else 0.0
    if total <= 0:
        return float("nan")
    rank, previous_bound, previous_count = q * total, 0.0, 0.0
    for bound in bounds:
        count = buckets[bound]
        if count >= rank:
            if bound == float("inf"):
                return previous_bound
            share = (rank - previous_count) / max(count - previous_count, 1e-9)
            return previous_bound + (bound - previous_bound) * share
        previous_bound, previous_count = bound, count
    return previous_bound


async def _single_probes(client: docker.APIClient, cid: str, ip: str) -> dict[str, list[float]]:
    executor = DockerExecutor()
    runtime = DockerRuntime(
        RuntimeConfig("bench", Path("/nonexistent"), NETWORK, CIDR, "unused", ip),
        executor,
        cache=RuntimeCache(),
        events=_NoEvents(),
        node=NodeResources(cpu_milli=1000, memory=1 << 30),
    )
    runner = ProbeRunner(runtime)
    target = ProbeTarget(cid, ip, {})
    out: dict[str, list[float]] = {
        k: [] for k in ("exec", "exec_run", "http", "aiohttp", "tcp", "socket")
    }
    session = aiohttp.ClientSession(connector=aiohttp.TCPConnector(force_close=True))
    try:
        for i in range(SAMPLES):
            pairs = [
                ("exec", lambda: runner.run(ExecAction(("true",)), target, 5)),
                ("exec_run", lambda: asyncio.to_thread(_exec_run, client, cid)),
            ]
            for name, fn in pairs if i % 2 == 0 else reversed(pairs):
                t0 = time.perf_counter()
                await fn()
                out[name].append(time.perf_counter() - t0)
            for name, fn in _network_pairs(runner, target, session, ip, i):
                t0 = time.perf_counter()
                await fn()
                out[name].append(time.perf_counter() - t0)
                await asyncio.sleep(0.01)
    finally:
        await session.close()
        await runner.close()
        await runtime.close()
        executor.shutdown()
    return out


def _network_pairs(
    runner: ProbeRunner, target: ProbeTarget, session: aiohttp.ClientSession, ip: str, i: int
) -> list[tuple[str, Any]]:
    async def bare_get() -> None:
        async with session.get(f"http://{ip}:8080/") as r:
            await r.read()

    async def bare_connect() -> None:
        _connect(ip)  # blocking, on purpose: the cheapest connect there is

    pairs: list[tuple[str, Any]] = [
        ("http", lambda: runner.run(HTTPGetAction(port=8080), target, 2)),
        ("aiohttp", bare_get),
        ("tcp", lambda: runner.run(TCPSocketAction(port=8080), target, 2)),
        ("socket", bare_connect),
    ]
    return pairs if i % 2 == 0 else pairs[::-1]


def _connect(ip: str) -> None:
    with socket.create_connection((ip, 8080), timeout=2):
        pass


def _exec_run(client: docker.APIClient, cid: str) -> None:
    exec_id = client.exec_create(cid, ["true"])["Id"]
    client.exec_start(exec_id)
    client.exec_inspect(exec_id)


class _NoEvents:
    def __call__(self, *args: Any, **kwargs: Any) -> None:
        return None


def run(pods: int, seconds: float) -> Report:
    client = api_client()
    image = busybox_image(client)
    sandbox = sandbox_image()
    report = Report(machine=machine_summary())
    with tempfile.TemporaryDirectory(prefix="mk-bench-") as tmp:
        agent = AgentProcess(
            Path(tmp), infra_image=sandbox, network=NETWORK, pod_cidr=CIDR, extra=[]
        )
        watch: PodWatcher | None = None
        try:
            watch = PodWatcher(agent.port)
            for i in range(pods):
                agent.put_manifest(f"w{i}", manifest(f"w{i}", image))

            def all_ready(items: list[dict[str, Any]]) -> bool:
                ready = 0
                for pod in items:
                    statuses = pod["status"].get("containerStatuses") or []
                    ready += bool(statuses) and all(s["ready"] for s in statuses)
                return ready == pods

            watch.wait(all_ready, timeout=600)
            print(f"{pods} pods ready", flush=True)
            time.sleep(10)  # past the start-up spread of first probes
            before, cpu0, t0 = scrape(agent), agent.cpu_seconds(), time.monotonic()
            time.sleep(seconds)
            after, cpu1, t1 = scrape(agent), agent.cpu_seconds(), time.monotonic()
            report.pods, report.seconds = pods, t1 - t0
            report.agent_cpu_seconds = cpu1 - cpu0
            report.agent_rss_bytes = agent.rss_bytes()
            for kind, period in (("readiness", 1.0), ("liveness", 10.0)):
                report.probes_per_second[kind] = (
                    _delta(before, after, "prober_probe_total", probe_type=kind) / report.seconds
                )
                report.expected_per_second[kind] = pods / period
            report.lag_p50 = lag_quantile(before, after, 0.50)
            report.lag_p99 = lag_quantile(before, after, 0.99)
            print("load measured; single probes next", flush=True)

            target = next(p for p in watch.snapshot() if p["metadata"]["name"].startswith("w0-"))
            cid = target["status"]["containerStatuses"][0]["containerID"].removeprefix("docker://")
            report.single = asyncio.run(_single_probes(client, cid, target["status"]["podIP"]))

            # The HTTP probes' own cost: same pods, liveness exec probes removed.
            for i in range(pods):
                agent.put_manifest(f"w{i}", manifest(f"w{i}", image, exec_liveness=False))

            def http_only_ready(items: list[dict[str, Any]]) -> bool:
                return all_ready(items) and not any(
                    "livenessProbe" in pod["spec"]["containers"][0] for pod in items
                )

            watch.wait(http_only_ready, timeout=600)
            time.sleep(10)
            before, cpu0, t0 = scrape(agent), agent.cpu_seconds(), time.monotonic()
            time.sleep(seconds)
            after, cpu1, t1 = scrape(agent), agent.cpu_seconds(), time.monotonic()
            report.http_only_seconds = t1 - t0
            report.http_only_cpu_seconds = cpu1 - cpu0
            report.http_only_per_second = (
                _delta(before, after, "prober_probe_total", probe_type="readiness")
                / report.http_only_seconds
            )
        finally:
            agent.stop()
            if watch is not None:
                watch.close()
            remove_labelled(client, node_label(agent.node))
    return report


def summarize(report: Report) -> str:
    ms = {k: [x * 1000 for x in v] for k, v in report.single.items()}
    cpu = report.agent_cpu_seconds / report.seconds * 100 if report.seconds else 0.0

    def ratio(a: str, b: str) -> str:
        rs = [x / y for x, y in zip(report.single[a], report.single[b], strict=False)]
        return f"{median(rs):.2f}× [{spread(rs)}]"

    lines = [
        f"probe bench: {report.machine}",
        "",
        f"{report.pods} pods over {report.seconds:.0f} s: agent {cpu:.1f}% of one core, "
        f"RSS {report.agent_rss_bytes / 2**20:.0f} MiB",
        "",
        "| probes | run per second | expected |",
        "|---|---|---|",
    ]
    for kind in ("readiness", "liveness"):
        lines.append(
            f"| {kind} | {report.probes_per_second.get(kind, 0):.1f} "
            f"| {report.expected_per_second.get(kind, 0):.1f} |"
        )
    lines += [
        "",
        f"lag from due time to run: p50 {report.lag_p50 * 1000:.2f} ms, "
        f"p99 {report.lag_p99 * 1000:.2f} ms",
        "",
        f"HTTP readiness probes only ({report.http_only_per_second:.1f}/s over "
        f"{report.http_only_seconds:.0f} s): agent "
        f"{report.http_only_cpu_seconds / max(report.http_only_seconds, 1e-9) * 100:.1f}% "
        "of one core",
        "",
        "| one probe (50 samples, alternating) | median | range | vs baseline |",
        "|---|---|---|---|",
        f"| exec through the agent's path | {median(ms['exec']):.1f} ms | {spread(ms['exec'])} "
        f"| {ratio('exec', 'exec_run')} |",
        f"| docker-py exec_run | {median(ms['exec_run']):.1f} ms | {spread(ms['exec_run'])} | |",
        f"| HTTP probe | {median(ms['http']):.2f} ms | {spread(ms['http'])} "
        f"| {ratio('http', 'aiohttp')} |",
        f"| bare aiohttp GET | {median(ms['aiohttp']):.2f} ms | {spread(ms['aiohttp'])} | |",
        f"| TCP probe | {median(ms['tcp']):.2f} ms | {spread(ms['tcp'])} "
        f"| {ratio('tcp', 'socket')} |",
        f"| bare socket connect | {median(ms['socket']):.2f} ms | {spread(ms['socket'])} | |",
    ]
    return "\n".join(lines)


def main(pods: int = 110, seconds: float = 60.0) -> None:
    report = run(pods, seconds)
    table = summarize(report)
    print()
    print(table)
    path = write_results("probes", {**asdict(report), "table": table})
    print(f"\nwritten to {path}")
