"""Cluster mode under a storm of status changes: 110 pods whose readiness flips every second.

Each pod is a busybox httpd whose ``/ready`` file a shell loop creates and
removes every second, with an HTTP readiness probe every second: about 110
real status changes a second on the node. The agent reports to the test API
server (``tests/apiserver``, in a process of its own so that its work does not
share this process' interpreter lock with the measurements).

Measured over a window of ``seconds``:

- changes: readiness transitions the agent published (its own pods watch);
- requests: PATCHes of ``pods/status`` the server received in that window; the
  ratio requests/changes is at most 1 when every change is sent once, and less
  when bursts coalesce;
- delay: for every readiness value the server came to hold, the time from the
  agent publishing that value to the server's watch delivering it (p50, p99);
  changes superseded before delivery (coalesced) are counted, not timed;
- CPU: the agent's CPU in windows of 30 s, alternately without and with
  ``--kubeconfig`` (the same agent restarted: it adopts its pods), watched the
  same way in both; the median difference of the pairs is the reporting's own
  cost, in % of one core. One pair alone varies by a few % on a small machine.
"""

from __future__ import annotations

import bisect
import json
import multiprocessing
import multiprocessing.connection
import tempfile
import threading
import time
import urllib.request
from collections import defaultdict
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from bench.common import (
    AgentProcess,
    api_client,
    busybox_image,
    machine_summary,
    median,
    node_label,
    pod_yaml,
    remove_labelled,
    sandbox_image,
    wait_until,
    write_results,
)

NETWORK, CIDR = "minikubelet-bench", "10.219.0.0/16"
TOKEN = "bench-token"


@dataclass
class Report:
    machine: str
    pods: int = 0
    seconds: float = 0.0
    changes: int = 0
    status_requests: int = 0
    other_requests: int = 0
    delivered: int = 0
    superseded: int = 0
    delay_p50: float = 0.0
    delay_p99: float = 0.0
    delay_max: float = 0.0
    # % of one core per window; the first cluster window is the one measured above.
    cluster_cpu: list[float] = field(default_factory=list)
    baseline_cpu: list[float] = field(default_factory=list)
    agent_rss_bytes: int = 0
    baseline_rss_bytes: int = 0


def manifest(name: str, image: str) -> str:
    script = (
        "mkdir -p /srv && httpd -p 8080 -h /srv && "
        "while true; do echo ok > /srv/ready; sleep 1; rm -f /srv/ready; sleep 1; done"
    )
    container: dict[str, Any] = {
        "name": "flip",
        "image": image,
        "command": ["sh", "-c", script],
        "readinessProbe": {
            "httpGet": {"path": "/ready", "port": 8080},
            "periodSeconds": 1,
            "failureThreshold": 1,
        },
    }
    return pod_yaml(name, [container])


# --- the API server, in a process of its own ---


def _serve(conn: multiprocessing.connection.Connection, kubeconfig: str) -> None:
    from tests.apiserver import FakeApiServer

    server = FakeApiServer(tokens={TOKEN}, require_auth=True)
    server.start()
    server.write_kubeconfig(Path(kubeconfig), auth="token")
    conn.send(server.url)
    while True:
        message = conn.recv()
        if message == "stop":
            break
        start, end = message
        status = other = 0
        for record in server.request_log():
            if not start <= record.time <= end:
                continue
            if (
                record.method == "PATCH"
                and record.path.endswith("/status")
                and ("/pods/" in record.path)
            ):
                status += 1
            else:
                other += 1
        conn.send((status, other))
    server.stop()


class ServerProcess:
    def __init__(self, kubeconfig: Path) -> None:
        context = multiprocessing.get_context("spawn")
        self._conn, child = context.Pipe()
        self._proc = context.Process(target=_serve, args=(child, str(kubeconfig)), daemon=True)
        self._proc.start()
        if not self._conn.poll(60):
            raise RuntimeError("the test API server did not start in 60 s")
        self.url: str = self._conn.recv()

    def requests_between(self, start: float, end: float) -> tuple[int, int]:
        """PATCHes of pods/status and every other request, received in [start, end]
        (monotonic time, which the kernel shares between processes)."""
        self._conn.send((start, end))
        if not self._conn.poll(60):
            raise RuntimeError("the test API server did not answer")
        status, other = self._conn.recv()
        return int(status), int(other)

    def stop(self) -> None:
        self._conn.send("stop")
        self._proc.join(10)
        if self._proc.is_alive():
            self._proc.kill()


# --- readiness as the agent publishes it, and as the server holds it ---


def _ready(pod: dict[str, Any]) -> bool | None:
    for condition in (pod.get("status") or {}).get("conditions") or []:
        if condition.get("type") == "Ready":
            return bool(condition.get("status") == "True")
    return None


class ReadinessLog:
    """Follows a pods watch and keeps, per pod name, each readiness transition with
    the monotonic time it arrived."""

    def __init__(self, url: str, headers: dict[str, str] | None = None) -> None:
        self.transitions: dict[str, list[tuple[float, bool]]] = defaultdict(list)
        self.names: set[str] = set()
        self._lock = threading.Lock()
        self._error: BaseException | None = None
        request = urllib.request.Request(url, headers=headers or {})
        self._resp = urllib.request.urlopen(request, timeout=None)
        self._thread = threading.Thread(target=self._run, daemon=True, name="readiness")
        self._thread.start()

    def _run(self) -> None:
        try:
            for line in self._resp:
                now = time.monotonic()
                event = json.loads(line)
                obj = event.get("object") or {}
                name = (obj.get("metadata") or {}).get("name")
                if not name or event.get("type") not in ("ADDED", "MODIFIED"):
                    continue
                ready = _ready(obj)
                with self._lock:
                    self.names.add(name)
                    if ready is None:
                        continue
                    history = self.transitions[name]
                    if not history or history[-1][1] != ready:
                        history.append((now, ready))
        except BaseException as e:
            self._error = e

    def snapshot(self) -> dict[str, list[tuple[float, bool]]]:
        with self._lock:
            return {name: list(history) for name, history in self.transitions.items()}

    def join(self) -> None:
        """After its server is gone, the stream ends and so does the reader. Closing
        the response from here instead would block on the reader thread's lock."""
        self._thread.join(10)


def match_delays(
    node: dict[str, list[tuple[float, bool]]],
    server: dict[str, list[tuple[float, bool]]],
    start: float,
    end: float,
) -> tuple[list[float], int, int]:
    """(delays, changes, superseded) for node transitions in [start, end].

    Each server transition to a value is matched to the node's latest transition
    to that value at or before it (the state the server came to hold); node
    transitions never matched were superseded before they were delivered.
    """
    delays: list[float] = []
    changes = superseded = 0
    for name, local in node.items():
        times = [t for t, _ in local]
        matched: set[int] = set()
        floor = -1
        for t_server, value in server.get(name, []):
            i = bisect.bisect_right(times, t_server) - 1
            while i > floor and local[i][1] != value:
                i -= 1
            if i <= floor:
                continue
            floor = i
            matched.add(i)
            if start <= local[i][0] <= end:
                delays.append(t_server - local[i][0])
        for i, (t, _) in enumerate(local):
            if start <= t <= end:
                changes += 1
                superseded += i not in matched
    return delays, changes, superseded


def quantile(values: list[float], q: float) -> float:
    if not values:
        return 0.0
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


# --- the run ---


def run(pods: int, seconds: float, *, rounds: int = 3, cpu_seconds: float = 30.0) -> Report:
    client = api_client()
    image = busybox_image(client)
    sandbox = sandbox_image()
    report = Report(machine=machine_summary(), pods=pods)
    with tempfile.TemporaryDirectory(prefix="mk-bench-cluster-") as tmp:
        base = Path(tmp)
        kubeconfig = base / "kubeconfig"
        server = ServerProcess(kubeconfig)
        agent: AgentProcess | None = None
        logs: list[ReadinessLog] = []
        try:
            agent = AgentProcess(
                base / "agent",
                infra_image=sandbox,
                network=NETWORK,
                pod_cidr=CIDR,
                extra=["--kubeconfig", str(kubeconfig)],
            )
            node = agent.node
            local = ReadinessLog(f"http://127.0.0.1:{agent.port}/api/v1/pods?watch=1")
            remote = ReadinessLog(
                f"{server.url}/api/v1/pods?watch=1&fieldSelector=spec.nodeName%3D{node}",
                {"Authorization": f"Bearer {TOKEN}"},
            )
            logs = [local, remote]
            for i in range(pods):
                agent.put_manifest(f"f{i}", manifest(f"f{i}", image))

            def flipping() -> bool:
                counts = [len(h) for h in local.snapshot().values()]
                mirrored = len(remote.names)
                return len(counts) == pods and min(counts) >= 2 and mirrored == pods

            wait_until(flipping, timeout=600, what="every pod flipping and mirrored", interval=1)
            print(f"{pods} pods flipping, mirrored on the server", flush=True)
            time.sleep(10)
            cpu0, t0 = agent.cpu_seconds(), time.monotonic()
            time.sleep(seconds)
            cpu1, t1 = agent.cpu_seconds(), time.monotonic()
            report.seconds = t1 - t0
            report.cluster_cpu.append((cpu1 - cpu0) / report.seconds * 100)
            # Deliveries of changes near the window's end arrive after it.
            time.sleep(5)
            delays, changes, superseded = match_delays(local.snapshot(), remote.snapshot(), t0, t1)
            report.status_requests, report.other_requests = server.requests_between(t0, t1)
            report.changes, report.superseded = changes, superseded
            report.delivered = len(delays)
            report.delay_p50 = quantile(delays, 0.50)
            report.delay_p99 = quantile(delays, 0.99)
            report.delay_max = max(delays, default=0.0)
            print("cluster window measured; CPU rounds next", flush=True)

            # CPU: the same agent and pods with and without cluster mode, in
            # alternating windows (the agent restarted each time: it adopts its pods),
            # since one pair of windows varies by a few % of a core on a small machine.
            # The agent's own pods watch, which this bench follows, is served in every
            # window: it is the measurement's cost, not the reporting's.
            def window(cluster: bool) -> float:
                assert agent is not None
                agent.stop()
                agent.start(["--kubeconfig", str(kubeconfig)] if cluster else [])
                logs.append(ReadinessLog(f"http://127.0.0.1:{agent.port}/api/v1/pods?watch=1"))
                time.sleep(10)
                cpu0, t0 = agent.cpu_seconds(), time.monotonic()
                time.sleep(cpu_seconds)
                share = (agent.cpu_seconds() - cpu0) / (time.monotonic() - t0) * 100
                if cluster:
                    report.agent_rss_bytes = agent.rss_bytes()
                else:
                    report.baseline_rss_bytes = agent.rss_bytes()
                return share

            for _ in range(rounds):
                report.baseline_cpu.append(window(cluster=False))
                report.cluster_cpu.append(window(cluster=True))
                print(
                    f"CPU round: {report.cluster_cpu[-1]:.1f}% with, "
                    f"{report.baseline_cpu[-1]:.1f}% without",
                    flush=True,
                )
        finally:
            if agent is not None:
                agent.stop()
                remove_labelled(client, node_label(agent.node))
            server.stop()
            for log in logs:
                log.join()
    return report


def reporting_cpu(report: Report) -> list[float]:
    """The reporting's own CPU, % of one core: each window without cluster mode
    against the cluster window just after it."""
    return [c - b for c, b in zip(report.cluster_cpu[1:], report.baseline_cpu, strict=False)]


def summarize(report: Report) -> str:
    per_change = report.status_requests / max(report.changes, 1)
    alone = reporting_cpu(report)

    def shares(values: list[float]) -> str:
        return " ".join(f"{v:.1f}" for v in values)

    return "\n".join(
        [
            f"cluster bench: {report.machine}",
            "",
            f"{report.pods} pods flipping readiness every second, {report.seconds:.0f} s window",
            "",
            "| | value |",
            "|---|---|",
            f"| readiness changes on the node | {report.changes} "
            f"({report.changes / max(report.seconds, 1e-9):.0f}/s) |",
            f"| PATCHes of pods/status | {report.status_requests} |",
            f"| status requests per change | {per_change:.2f} |",
            f"| other requests (lease, node, watch) | {report.other_requests} |",
            f"| changes delivered / superseded before delivery | {report.delivered} / "
            f"{report.superseded} |",
            f"| delay node → server, p50 / p99 / max | {report.delay_p50 * 1000:.0f} / "
            f"{report.delay_p99 * 1000:.0f} / {report.delay_max * 1000:.0f} ms |",
            f"| agent CPU with cluster mode, per window | {shares(report.cluster_cpu)} % |",
            f"| agent CPU without, per window | {shares(report.baseline_cpu)} % |",
            f"| **reporting alone** (median of {len(alone)} pairs) | "
            f"**{median(alone) if alone else 0.0:.1f}% of one core** "
            f"[{shares(alone)}] |",
            f"| agent RSS with / without cluster mode | {report.agent_rss_bytes / 2**20:.0f} / "
            f"{report.baseline_rss_bytes / 2**20:.0f} MiB |",
        ]
    )


def main(pods: int = 110, seconds: float = 60.0, rounds: int = 3) -> None:
    report = run(pods, seconds, rounds=rounds)
    table = summarize(report)
    print()
    print(table)
    path = write_results("cluster", {**asdict(report), "table": table})
    print(f"\nresults: {path}")
