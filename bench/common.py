"""What every benchmark needs: images, the agent as a process, bounded waits, statistics."""

from __future__ import annotations

import asyncio
import contextlib
import importlib.util
import json
import os
import signal
import socket
import statistics
import subprocess
import sys
import threading
import time
import urllib.request
import uuid
from collections.abc import Callable
from pathlib import Path
from types import ModuleType
from typing import Any, TypeVar

import docker
import psutil
import yaml

from minikubelet.model import naming

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "bench" / "results"
T = TypeVar("T")


def api_client() -> docker.APIClient:
    client = docker.APIClient(version="auto", **docker.utils.kwargs_from_env())
    client.ping()
    return client


def _load_script(name: str) -> ModuleType:
    spec = importlib.util.spec_from_file_location(name, ROOT / "scripts" / f"{name}.py")
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def busybox_image(client: docker.APIClient) -> str:
    module = _load_script("busybox_image")
    module.ensure_image(client, module.DEFAULT_IMAGE)
    return str(module.DEFAULT_IMAGE)


def sandbox_image() -> str:
    """The image the agent would use offline; the floor uses the same one, to be fair."""
    from minikubelet.runtime.executor import DockerExecutor
    from minikubelet.runtime.images import ImageStore

    async def build() -> str:
        executor = DockerExecutor()
        try:
            return await ImageStore(executor).ensure_pause_image(
                "registry.k8s.io/pause:3.10", pull_timeout=10
            )
        finally:
            executor.shutdown()

    return asyncio.run(build())


def wait_until(
    predicate: Callable[[], T | None], *, timeout: float, what: str, interval: float
) -> T:
    deadline = time.monotonic() + timeout
    while True:
        result = predicate()
        if result:
            return result
        if time.monotonic() > deadline:
            raise RuntimeError(f"timed out after {timeout}s waiting for {what}")
        time.sleep(interval)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class AgentProcess:
    """The agent as a user runs it: its own process, its own manifest and state directories."""

    def __init__(
        self, base: Path, *, infra_image: str, network: str, pod_cidr: str, extra: list[str]
    ) -> None:
        self.node = f"bench{uuid.uuid4().hex[:6]}"
        self.manifests = base / "manifests"
        self.state = base / "state"
        self.manifests.mkdir(parents=True, exist_ok=True)
        self.port = free_port()
        self.log_path = base / "agent.log"
        self._fixed = [
            "--network-name",
            network,
            "--pod-cidr",
            pod_cidr,
            "--pod-infra-image",
            infra_image,
        ]
        self.start(extra)

    def start(self, extra: list[str]) -> None:
        """Start the agent process (again, after ``stop``: the same node, directories
        and port, so that it adopts its pods) with ``extra`` flags."""
        args = [
            sys.executable,
            "-m",
            "minikubelet",
            "run",
            "--config",
            "",
            "--manifest-dir",
            str(self.manifests),
            "--state-dir",
            str(self.state),
            "--listen",
            f"127.0.0.1:{self.port}",
            "--node-name",
            self.node,
            *self._fixed,
            "--log-level",
            "WARNING",
            *extra,
        ]
        with self.log_path.open("ab") as log:
            self.proc = subprocess.Popen(args, stdout=log, stderr=subprocess.STDOUT, cwd=ROOT)
        self.ps = psutil.Process(self.proc.pid)
        wait_until(self._healthy, timeout=60, what="the agent's /healthz", interval=0.1)

    def put_manifest(self, name: str, text: str) -> Path:
        """Write ``<name>.yaml`` so that it appears whole (a dot-file renamed into place)."""
        tmp = self.manifests / f".{name}.tmp"
        tmp.write_text(text)
        path = self.manifests / f"{name}.yaml"
        tmp.rename(path)
        return path

    def _healthy(self) -> bool:
        if self.proc.poll() is not None:
            raise RuntimeError(f"agent exited: {self.log_path.read_text()[-2000:]}")
        try:
            return self.get("/healthz") == b"ok"
        except OSError:
            return False

    def get(self, path: str) -> bytes:
        with urllib.request.urlopen(f"http://127.0.0.1:{self.port}{path}", timeout=10) as r:
            body: bytes = r.read()
            return body

    def pods(self) -> list[dict[str, Any]]:
        items: list[dict[str, Any]] = json.loads(self.get("/pods"))["items"] or []
        return items

    def cpu_seconds(self) -> float:
        times = self.ps.cpu_times()
        return float(times.user + times.system)

    def rss_bytes(self) -> int:
        return int(self.ps.memory_info().rss)

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)


class PodWatcher:
    """Follows the agent's ``/pods?watch=1`` stream: pod state as it is published, no polling.

    Polling /pods every few milliseconds would cost the agent (and this process)
    CPU that dockerd needs on a small machine, and quantise the measurement.
    """

    def __init__(self, port: int) -> None:
        self._pods: dict[str, dict[str, Any]] = {}
        self._cond = threading.Condition()
        self._error: BaseException | None = None
        self._resp = urllib.request.urlopen(f"http://127.0.0.1:{port}/pods?watch=1", timeout=None)
        self._thread = threading.Thread(target=self._run, name="pod-watch", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        try:
            for line in self._resp:
                event = json.loads(line)
                obj = event["object"]
                with self._cond:
                    if event["type"] == "DELETED":
                        self._pods.pop(obj["metadata"]["uid"], None)
                    else:
                        self._pods[obj["metadata"]["uid"]] = obj
                    self._cond.notify_all()
        except BaseException as e:
            with self._cond:
                self._error = e
                self._cond.notify_all()

    def snapshot(self) -> list[dict[str, Any]]:
        with self._cond:
            return list(self._pods.values())

    def wait(self, predicate: Callable[[list[dict[str, Any]]], bool], *, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        with self._cond:
            while not predicate(list(self._pods.values())):
                if self._error is not None:
                    raise RuntimeError(f"pod watch failed: {self._error}")
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    raise RuntimeError(f"timed out after {timeout}s waiting on the pod watch")
                self._cond.wait(remaining)

    def close(self) -> None:
        """After the agent stopped: its end of the stream closes, and so does the reader.

        Closing the response here instead would block on the reader thread's lock.
        """
        self._thread.join(10)


def wait_destroyed(
    client: docker.APIClient, ids: set[str], since: float, *, timeout: float
) -> None:
    """Until Docker reports every container of ``ids`` destroyed (its event stream, no polling)."""
    left = set(ids)
    stream = client.events(
        since=int(since),
        filters={"type": "container", "event": "destroy"},
        decode=True,
    )
    timer = threading.Timer(timeout, stream.close)
    timer.start()
    try:
        for event in stream:
            left.discard(event.get("id", ""))
            if not left:
                return
        raise RuntimeError(f"timed out after {timeout}s: {len(left)} containers not destroyed")
    finally:
        timer.cancel()
        stream.close()


def pod_yaml(name: str, containers: list[dict[str, Any]]) -> str:
    """A Pod manifest with grace 0: benchmarks time the engine, not a grace period."""
    doc = {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": name},
        "spec": {"terminationGracePeriodSeconds": 0, "containers": containers},
    }
    return yaml.safe_dump(doc)


def sleep_pod(name: str, image: str, containers: tuple[str, ...]) -> str:
    """A pod of busybox ``sleep`` containers (PID 1 sleep ignores SIGTERM, hence grace 0)."""
    return pod_yaml(
        name, [{"name": c, "image": image, "command": ["sleep", "1000000"]} for c in containers]
    )


def remove_labelled(client: docker.APIClient, label: str) -> None:
    for c in client.containers(all=True, filters={"label": label}):
        with contextlib.suppress(docker.errors.NotFound):
            client.remove_container(c["Id"], force=True)


def node_label(node: str) -> str:
    return f"{naming.NODE}={node}"


def ensure_network(client: docker.APIClient, name: str, subnet: str) -> None:
    if client.networks(names=[name]):
        return
    pool = docker.types.IPAMPool(subnet=subnet)
    client.create_network(name, driver="bridge", ipam=docker.types.IPAMConfig(pool_configs=[pool]))


def median(values: list[float]) -> float:
    return statistics.median(values) if values else float("nan")


def spread(values: list[float]) -> str:
    return f"{min(values):.2f}–{max(values):.2f}" if values else "-"


def host_cpu_busy() -> tuple[float, float]:
    """(busy, total) jiffies of the whole host, for a busy share over an interval."""
    with open("/proc/stat") as f:
        fields = [float(x) for x in f.readline().split()[1:]]
    idle = fields[3] + fields[4]
    total = sum(fields[:8])
    return total - idle, total


def write_results(name: str, data: dict[str, Any]) -> Path:
    RESULTS.mkdir(parents=True, exist_ok=True)
    path = RESULTS / f"{name}-{time.strftime('%Y%m%dT%H%M%S')}.json"
    path.write_text(json.dumps(data, indent=1))
    return path


def machine_summary() -> str:
    return (
        f"{os.cpu_count()} CPUs, load {os.getloadavg()[0]:.2f}, "
        f"python {sys.version.split()[0]}, docker-py {docker.__version__}"
    )


def pod_running_and_ready(pod: dict[str, Any]) -> bool:
    """Running with every container of its spec running and ready, as ``/pods`` shows it."""
    status = pod.get("status") or {}
    statuses = status.get("containerStatuses") or []
    return (
        status.get("phase") == "Running"
        and len(statuses) == len(pod["spec"]["containers"])
        and all("running" in s["state"] and s["ready"] for s in statuses)
    )


def manifest_uids(directory: Path, node: str) -> dict[str, str]:
    """File name -> pod uid, for every manifest in ``directory``, by the agent's own loader.

    The uid hashes the parsed pod, the node and the path, so a benchmark that
    computed it itself would test its copy of the rule, not the agent.
    """
    from minikubelet.config.file import is_manifest_name, load_manifest_file

    out: dict[str, str] = {}
    for path in sorted(directory.iterdir()):
        if is_manifest_name(path.name):
            _, pod = load_manifest_file(path, node_name=node, seen=lambda uid: "")
            out[path.name] = str(pod.uid)
    return out


def offline_sandbox_image() -> str:
    """The agent's locally built sandbox image, with no registry asked for the real pause.

    ``sandbox_image`` tries registry.k8s.io first; a run that must talk only
    to this machine asks for the local name itself, which is either present
    or (its ``localhost`` pull refused at once) built.
    """
    import platform

    from minikubelet.runtime import pause
    from minikubelet.runtime.executor import DockerExecutor
    from minikubelet.runtime.images import LOCAL_PAUSE_REPOSITORY, ImageStore

    machine = pause.normalize_machine(platform.machine())
    local = f"{LOCAL_PAUSE_REPOSITORY}:{pause.PAUSE_VERSION}-{machine}"

    async def build() -> str:
        executor = DockerExecutor()
        try:
            return await ImageStore(executor).ensure_pause_image(local, pull_timeout=10)
        finally:
            executor.shutdown()

    return asyncio.run(build())
