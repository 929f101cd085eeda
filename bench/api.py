"""The status endpoint under load: ``GET /api/v1/pods`` and ``GET /pods`` with 110 pods, and
100 watchers, beside a static baseline in the same run.

What is measured is the agent's HTTP server, so it runs alone in a process of
its own (``python -m bench.api serve``): the agent's ``serve()`` with its
middlewares, guards, handlers and ``StatusManager``, holding 110 pods read
from manifest files through the agent's own pipeline, with the statuses of
running pods. Docker is left out on purpose: containers would add nothing to
a list request but noise on a 2-core machine.

- Throughput and latency: ``wrk`` (Debian's, installed when absent and root)
  against each path of the agent, then against an aiohttp app serving the
  same bytes as a constant (``serve-static``), alternating, several rounds.
  The ratio is agent ÷ static per round; the target is ≥ 0.5.
- Watchers: 100 ``?watch=1`` streams held open; the server process's RSS
  before and after they connect (target < 20 MB for all 100); then the
  server publishes status changes (each stamped with its publication time in
  ``status.message``) and every watcher's delay from publication to receipt
  is recorded (target p99 < 50 ms).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import aiohttp
import psutil
from aiohttp import web

from bench.common import free_port, machine_summary, median, spread, wait_until, write_results

PODS = 110
WATCHERS = 100
# Status changes per second while watchers are measured, and for how long.
CHANGE_RATE = 20.0
CHANGE_SECONDS = 10.0
WRK_SECONDS = 8
WRK_CONNECTIONS = 50
WRK_THREADS = 2
PATHS = ("/api/v1/pods", "/pods")
NODE = "benchnode"


# --- the server processes ----------------------------------------------------------------


def _manifest(i: int) -> str:
    """A pod as people write them: labels, two containers, a probe, env, resources."""
    return json.dumps(
        {
            "apiVersion": "v1",
            "kind": "Pod",
            "metadata": {"name": f"web-{i}", "labels": {"app": "web", "shard": str(i % 7)}},
            "spec": {
                "containers": [
                    {
                        "name": "app",
                        "image": "localhost/minikubelet/busybox:1",
                        "command": ["httpd", "-f", "-p", "8080"],
                        "ports": [{"name": "http", "containerPort": 8080}],
                        "env": [{"name": "MODE", "value": "production"}],
                        "readinessProbe": {"httpGet": {"path": "/", "port": "http"}},
                        "resources": {"requests": {"cpu": "10m", "memory": "16Mi"}},
                    },
                    {
                        "name": "sidecar",
                        "image": "localhost/minikubelet/busybox:1",
                        "command": ["sleep", "1000000"],
                    },
                ]
            },
        }
    )


def _running_status(pod: Any, i: int, now: float, message: str = "") -> Any:
    from minikubelet.status.types import (
        ContainerStatus,
        PodCondition,
        PodPhase,
        PodStatus,
        StateRunning,
    )

    containers = tuple(
        ContainerStatus(
            name=c.name,
            state=StateRunning(started_at=now - 60),
            last_state=None,
            ready=True,
            restart_count=0,
            image=c.image,
            image_id=f"docker-pullable://{c.image}@sha256:{'ab' * 32}",
            container_id=f"docker://{i:08x}{c.name.encode().hex():0<56}"[:73],
            started=True,
        )
        for c in sorted(pod.spec.containers, key=lambda c: c.name)
    )
    conditions = (
        *(
            PodCondition(type=t, status=True, last_transition_time=now - 60)
            for t in ("PodReadyToStartContainers", "Initialized", "Ready", "ContainersReady")
        ),
        PodCondition(type="PodScheduled", status=True, last_transition_time=now - 61),
    )
    return PodStatus(
        phase=PodPhase.RUNNING,
        conditions=conditions,
        host_ip="192.0.2.10",
        pod_ip=f"10.217.{i // 250}.{i % 250 + 2}",
        start_time=now - 61,
        qos_class="Burstable",
        container_statuses=containers,
        message=message,
    )


async def _serve_agent(port: int, pods: int) -> None:
    """The agent's server over a StatusManager of ``pods`` running pods. SIGUSR1 starts
    publishing status changes at CHANGE_RATE; SIGUSR2 stops them."""
    from minikubelet.config.file import load_manifest_file
    from minikubelet.events import EventRecorder
    from minikubelet.server.deps import ServerDeps
    from minikubelet.server.serve import serve
    from minikubelet.status.manager import StatusManager

    status = StatusManager()
    now = time.time()
    loaded = []
    with tempfile.TemporaryDirectory(prefix="mk-bench-api-") as tmp:
        for i in range(pods):
            path = Path(tmp) / f"web-{i}.json"
            path.write_text(_manifest(i))
            _, pod = load_manifest_file(path, node_name=NODE, seen=lambda uid: "")
            status.track(pod)
            status.set(pod.uid, _running_status(pod, i, now))
            loaded.append(pod)

    class Engine:
        async def ping(self, timeout: float = 2.0) -> bool:
            return True

        def is_stale(self) -> bool:
            return False

    deps = ServerDeps(
        status=status,
        engine=Engine(),
        source_errors=list,
        recorder=EventRecorder(host=NODE, clock=time.time),
    )
    runner = await serve(deps, "127.0.0.1", port)
    changing = asyncio.Event()
    loop = asyncio.get_running_loop()
    loop.add_signal_handler(signal.SIGUSR1, changing.set)
    loop.add_signal_handler(signal.SIGUSR2, changing.clear)
    stop = asyncio.Event()
    loop.add_signal_handler(signal.SIGTERM, stop.set)

    async def publish() -> None:
        n = 0
        while True:
            await changing.wait()
            i = n % len(loaded)
            pod = loaded[i]
            status.set(pod.uid, _running_status(pod, i, now, message=repr(time.time())))
            n += 1
            await asyncio.sleep(1 / CHANGE_RATE)

    task = asyncio.create_task(publish())
    try:
        await stop.wait()
    finally:
        task.cancel()
        await runner.cleanup()


async def _serve_static(port: int, bodies: dict[str, bytes]) -> None:
    """The baseline: aiohttp with the same loop, answering each path with constant bytes."""

    def handler(body: bytes) -> Any:
        async def handle(request: web.Request) -> web.Response:
            return web.Response(body=body, content_type="application/json")

        return handle

    app = web.Application()
    for path, body in bodies.items():
        app.router.add_get(path, handler(body))
    runner = web.AppRunner(app, access_log=None, handle_signals=False)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", port).start()
    stop = asyncio.Event()
    asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, stop.set)
    try:
        await stop.wait()
    finally:
        await runner.cleanup()


def _run_loop(main: Any) -> None:
    from minikubelet.cli import _loop_factory

    with asyncio.Runner(loop_factory=_loop_factory()) as runner:
        runner.run(main)


# --- the bench -----------------------------------------------------------------------------


@dataclass
class PathResult:
    path: str
    body_bytes: int
    agent_rps: list[float] = field(default_factory=list)
    static_rps: list[float] = field(default_factory=list)
    agent_p99_ms: list[float] = field(default_factory=list)
    static_p99_ms: list[float] = field(default_factory=list)


@dataclass
class Report:
    machine: str
    pods: int
    paths: list[PathResult] = field(default_factory=list)
    watchers: int = 0
    watch_rss_before: int = 0
    watch_rss_after: int = 0
    watch_changes: int = 0
    watch_delays_ms: list[float] = field(default_factory=list)
    watch_missed: int = 0


class Server:
    def __init__(self, *args: str) -> None:
        self.port = free_port()
        cmd = [sys.executable, "-m", "bench.api", *args, "--port", str(self.port)]
        self.proc = subprocess.Popen(cmd, cwd=Path(__file__).resolve().parent.parent)
        self.ps = psutil.Process(self.proc.pid)
        wait_until(self._up, timeout=60, what=f"{args[0]} on {self.port}", interval=0.1)

    def _up(self) -> bool:
        if self.proc.poll() is not None:
            raise RuntimeError(f"server exited with {self.proc.returncode}")
        try:
            self.get("/pods")
            return True
        except OSError:
            return False

    def get(self, path: str) -> bytes:
        with urllib.request.urlopen(f"http://127.0.0.1:{self.port}{path}", timeout=10) as r:
            body: bytes = r.read()
            return body

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)


def _wrk_binary() -> str:
    found = shutil.which("wrk")
    if found is None and os.geteuid() == 0 and Path("/etc/debian_version").exists():
        env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
        for cmd in (["apt-get", "update", "-qq"], ["apt-get", "install", "-y", "-qq", "wrk"]):
            subprocess.run(cmd, env=env, check=False, capture_output=True, timeout=600)
        found = shutil.which("wrk")
    if found is None:
        raise RuntimeError("wrk is not installed (Debian: apt-get install wrk)")
    return found


_UNITS = {"us": 1e-3, "ms": 1.0, "s": 1e3, "m": 60e3}


def _wrk(binary: str, url: str) -> tuple[float, float]:
    """(requests per second, p99 latency in ms) of one wrk run."""
    done = subprocess.run(
        [
            binary,
            f"-t{WRK_THREADS}",
            f"-c{WRK_CONNECTIONS}",
            f"-d{WRK_SECONDS}s",
            "--latency",
            url,
        ],
        check=True,
        capture_output=True,
        text=True,
        timeout=WRK_SECONDS + 60,
    )
    out = done.stdout
    if "Non-2xx" in out or "Socket errors" in out:
        raise RuntimeError(f"wrk saw errors against {url}:\n{out}")
    rps = re.search(r"Requests/sec:\s+([0-9.]+)", out)
    p99 = re.search(r"\s99%\s+([0-9.]+)(us|ms|s|m)\b", out)
    if rps is None or p99 is None:
        raise RuntimeError(f"cannot read wrk's output:\n{out}")
    return float(rps.group(1)), float(p99.group(1)) * _UNITS[p99.group(2)]


async def _watch(
    port: int, path: str, n: int, ready: asyncio.Event, delays: list[float]
) -> list[int]:
    """``n`` watch streams; each records publication→receipt of every stamped change."""
    counts = [0] * n
    connected = 0
    timeout = aiohttp.ClientTimeout(total=None, sock_read=None)
    async with aiohttp.ClientSession(timeout=timeout) as session:

        async def one(k: int) -> None:
            nonlocal connected
            async with session.get(f"http://127.0.0.1:{port}{path}?watch=1") as resp:
                resp.raise_for_status()
                seen_initial = 0
                async for line in resp.content:
                    received = time.time()
                    event = json.loads(line)
                    if seen_initial < PODS:
                        seen_initial += 1
                        if seen_initial == PODS:
                            connected += 1
                            if connected == n:
                                ready.set()
                        continue
                    message = event["object"].get("status", {}).get("message", "")
                    if message:
                        delays.append((received - float(message)) * 1000)
                        counts[k] += 1

        tasks = [asyncio.create_task(one(k)) for k in range(n)]
        try:
            await asyncio.gather(*tasks)
        except asyncio.CancelledError:
            pass
        finally:
            for task in tasks:
                task.cancel()
    return counts


def _measure_watchers(report: Report, server: Server, path: str) -> None:
    async def run() -> None:
        ready = asyncio.Event()
        delays: list[float] = []
        report.watch_rss_before = server.ps.memory_info().rss
        watching = asyncio.create_task(_watch(server.port, path, WATCHERS, ready, delays))
        async with asyncio.timeout(60):
            await ready.wait()
        await asyncio.sleep(1)
        report.watch_rss_after = server.ps.memory_info().rss
        server.proc.send_signal(signal.SIGUSR1)
        await asyncio.sleep(CHANGE_SECONDS)
        server.proc.send_signal(signal.SIGUSR2)
        await asyncio.sleep(1)
        watching.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await watching
        report.watch_delays_ms = delays
        report.watch_changes = len(delays) // WATCHERS if delays else 0

    _run_loop(run())


def run(rounds: int) -> Report:
    wrk = _wrk_binary()
    report = Report(machine=machine_summary(), pods=PODS)
    agent = Server("serve", "--pods", str(PODS))
    static: Server | None = None
    try:
        paths = [p for p in PATHS if _answers(agent, p)]
        bodies = {p: agent.get(p) for p in paths}
        with tempfile.TemporaryDirectory(prefix="mk-bench-static-") as tmp:
            spec = Path(tmp) / "bodies.json"
            spec.write_text(json.dumps({p: b.decode() for p, b in bodies.items()}))
            static = Server("serve-static", "--bodies", str(spec))
        for path in paths:
            result = PathResult(path=path, body_bytes=len(bodies[path]))
            for r in range(rounds):
                for which in ("agent", "static") if r % 2 == 0 else ("static", "agent"):
                    server = agent if which == "agent" else static
                    rps, p99 = _wrk(wrk, f"http://127.0.0.1:{server.port}{path}")
                    getattr(result, f"{which}_rps").append(rps)
                    getattr(result, f"{which}_p99_ms").append(p99)
                print(
                    f"{path} round {r + 1}: agent {result.agent_rps[-1]:.0f} req/s, "
                    f"static {result.static_rps[-1]:.0f} req/s",
                    flush=True,
                )
            report.paths.append(result)
        static.stop()
        static = None
        report.watchers = WATCHERS
        _measure_watchers(report, agent, paths[0])
    finally:
        agent.stop()
        if static is not None:
            static.stop()
    return report


def _answers(server: Server, path: str) -> bool:
    try:
        server.get(path)
        return True
    except urllib.error.HTTPError:
        return False


def _percentile(values: list[float], q: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def summarize(report: Report) -> str:
    lines = [
        f"api bench: {report.machine}; {report.pods} pods; wrk -t{WRK_THREADS} "
        f"-c{WRK_CONNECTIONS} -d{WRK_SECONDS}s",
        "",
        "| path | body | agent req/s | static req/s | ratio | agent p99 | static p99 |",
        "|---|---|---|---|---|---|---|",
    ]
    for p in report.paths:
        ratios = [a / s for a, s in zip(p.agent_rps, p.static_rps, strict=True)]
        lines.append(
            f"| `{p.path}` | {p.body_bytes / 1024:.0f} KiB | {median(p.agent_rps):.0f} "
            f"| {median(p.static_rps):.0f} | {median(ratios):.2f} ({spread(ratios)}) "
            f"| {median(p.agent_p99_ms):.1f} ms | {median(p.static_p99_ms):.1f} ms |"
        )
    grown = (report.watch_rss_after - report.watch_rss_before) / 2**20
    delays = report.watch_delays_ms
    lines += [
        "",
        f"{report.watchers} watchers: server RSS {report.watch_rss_before / 2**20:.0f} → "
        f"{report.watch_rss_after / 2**20:.0f} MiB (+{grown:.1f} MiB); "
        f"{report.watch_changes} changes × {report.watchers} watchers, publication → receipt "
        f"p50 {_percentile(delays, 0.5):.1f} ms, p99 {_percentile(delays, 0.99):.1f} ms, "
        f"max {max(delays, default=float('nan')):.1f} ms",
    ]
    return "\n".join(lines)


def main(rounds: int = 3) -> None:
    report = run(rounds)
    table = summarize(report)
    print()
    print(table)
    path = write_results("api", {**asdict(report), "table": table})
    print(f"\nwritten to {path}")


def _server_main() -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.api")
    parser.add_argument("mode", choices=["serve", "serve-static"])
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--pods", type=int, default=PODS)
    parser.add_argument("--bodies", type=Path)
    args = parser.parse_args()
    if args.mode == "serve":
        _run_loop(_serve_agent(args.port, args.pods))
    else:
        assert args.bodies is not None
        raw = json.loads(args.bodies.read_text())
        _run_loop(_serve_static(args.port, {p: b.encode() for p, b in raw.items()}))


if __name__ == "__main__":
    _server_main()
