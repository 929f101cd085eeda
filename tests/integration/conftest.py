"""Fixtures for tests on the real Docker engine with the real agent process.

Every agent runs as its own process (``python -m minikubelet run``) with a
tmp manifest directory, a tmp state directory, a free loopback port and a
node name of its own; all its containers carry that node name, so teardown
removes exactly them, even when a test fails.

Tests observe an agent as its clients do: /pods, its recorded events
(/api/v1/events), /healthz and the engine's own state. The log is shown in
failure messages; its wording is asserted on only where the log itself is
under test (test_endpoint_abuse.py) or is all that a process refusing to
start leaves (test_hostile_input.py).
"""

from __future__ import annotations

import contextlib
import importlib.util
import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.parse
import urllib.request
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, TypeVar

import docker
import pytest
import yaml

from minikubelet.model import naming
from minikubelet.runtime import volumes
from tests.integration.tls import TOKEN, Pki, https_status, make_pki

ROOT = Path(__file__).resolve().parents[2]
# The agent refuses manifests that others than root can write (config/strict.py):
# whatever umask the test runner came with, what the tests write is 0644/0755.
os.umask(0o022)
NETWORK = "minikubelet-test"
POD_CIDR = "10.218.0.0/16"
T = TypeVar("T")


def _load_script(name: str) -> Any:
    spec = importlib.util.spec_from_file_location(name, ROOT / "scripts" / f"{name}.py")
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def wait_until(
    predicate: Callable[[], T | None], *, timeout: float, what: str, interval: float = 0.05
) -> T:
    """Poll ``predicate`` until it returns something truthy; fail saying what was awaited."""
    deadline = time.monotonic() + timeout
    last: Any = None
    while True:
        try:
            last = predicate()
        except (OSError, KeyError, IndexError, ValueError, docker.errors.APIError) as e:
            last = e
        if last and not isinstance(last, Exception):
            result: T = last
            return result
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what}; last: {last!r}")
        time.sleep(interval)


def _inherited_env() -> dict[str, str]:
    """The test runner's environment, less systemd's notify and watchdog variables: an
    agent must not report to a service manager that runs the tests."""
    own = ("NOTIFY_SOCKET", "WATCHDOG_USEC", "WATCHDOG_PID")
    return {k: v for k, v in os.environ.items() if k not in own}


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture(scope="session")
def docker_api() -> Iterator[docker.APIClient]:
    client = docker.APIClient(version="auto", **docker.utils.kwargs_from_env())
    client.ping()
    yield client
    # Closed, not left to the garbage collector: an unclosed socket found at exit is a
    # ResourceWarning, which filterwarnings=error turns into a failed session.
    client.close()


@pytest.fixture(scope="session")
def busybox_image(docker_api: docker.APIClient) -> str:
    module = _load_script("busybox_image")
    module.ensure_image(docker_api, module.DEFAULT_IMAGE)
    return str(module.DEFAULT_IMAGE)


@pytest.fixture(scope="session")
def pause_image(docker_api: docker.APIClient) -> str:
    """The locally built sandbox image, made through the agent's own offline path."""
    import asyncio

    from minikubelet.runtime.executor import DockerExecutor
    from minikubelet.runtime.images import ImageStore

    async def build() -> str:
        executor = DockerExecutor()
        try:
            return await ImageStore(executor).ensure_pause_image(
                "registry.invalid/pause:3.10", pull_timeout=30
            )
        finally:
            executor.shutdown()

    return asyncio.run(build())


def _find_kubectl() -> str | None:
    """The machine's kubectl; on a bare Debian CI machine, as root, Debian's
    ``kubernetes-client`` is installed first, as the issue asks."""
    import shutil

    found = shutil.which("kubectl")
    if found is None and os.geteuid() == 0 and Path("/etc/debian_version").exists():
        env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
        for cmd in (
            ["apt-get", "update", "-qq"],
            ["apt-get", "install", "-y", "-qq", "kubernetes-client"],
        ):
            subprocess.run(cmd, env=env, check=False, capture_output=True, timeout=600)
        found = shutil.which("kubectl")
    return found


@pytest.fixture(scope="session")
def kubectl_bin() -> str:
    found = _find_kubectl()
    if found is None:
        pytest.fail("kubectl is not installed and could not be installed (apt kubernetes-client)")
    return found


class Kubectl:
    """The machine's kubectl pointed at one agent, with no kubeconfig of the user's."""

    def __init__(self, binary: str, agent: Agent, home: Path) -> None:
        self.binary = binary
        self.agent = agent
        home.mkdir(parents=True, exist_ok=True)
        # An empty kubeconfig and cache dir of its own: nothing of the user's is read or written.
        self.env = {
            "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
            "HOME": str(home),
            "KUBECONFIG": str(home / "kubeconfig"),
            "KUBECACHEDIR": str(home / "cache"),
        }

    def args(self, *args: str) -> list[str]:
        return [self.binary, "--server", f"http://127.0.0.1:{self.agent.port}", *args]

    def run(self, *args: str, check: bool = True, timeout: float = 30.0) -> str:
        done = subprocess.run(
            self.args(*args),
            check=False,
            env=self.env,
            capture_output=True,
            text=True,
            timeout=timeout,
        )
        if check and done.returncode != 0:
            raise AssertionError(
                f"kubectl {' '.join(args)} exited {done.returncode}:\n{done.stderr}\n"
                f"--- agent log ---\n{self.agent.log_tail()}"
            )
        return done.stdout

    def json(self, *args: str) -> Any:
        return json.loads(self.run(*args, "-o", "json"))

    def popen(self, *args: str) -> subprocess.Popen[str]:
        return subprocess.Popen(
            self.args(*args),
            env=self.env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )


class Agent:
    """One agent process and the helpers a test needs around it."""

    def __init__(
        self,
        base: Path,
        api: docker.APIClient,
        *,
        infra_image: str,
        extra_args: tuple[str, ...] = (),
        env: dict[str, str] | None = None,
        log_level: str | None = "DEBUG",
    ) -> None:
        self.api = api
        # Added to the agent's environment (NOTIFY_SOCKET, WATCHDOG_USEC...).
        self.env = env or {}
        # None: no --log-level flag, so that a config file's logLevel counts.
        self.log_level = log_level
        self.node = f"t{uuid.uuid4().hex[:8]}"
        self.manifests = base / "manifests"
        self.state = base / "state"
        self.log_path = base / "agent.log"
        self.manifests.mkdir(parents=True, exist_ok=True)
        self.port = free_port()
        self.infra_image = infra_image
        self.extra_args = extra_args
        self.proc: subprocess.Popen[bytes] | None = None
        self.barriers = 0

    # --- process ---

    def start(self, *, wait: bool = True) -> None:
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
            "--network-name",
            NETWORK,
            "--pod-cidr",
            POD_CIDR,
            "--pod-infra-image",
            self.infra_image,
            *(("--log-level", self.log_level) if self.log_level else ()),
            *self.extra_args,
        ]
        log = self.log_path.open("ab")
        self.proc = subprocess.Popen(
            args,
            stdout=log,
            stderr=subprocess.STDOUT,
            cwd=ROOT,
            env={**_inherited_env(), **self.env},
        )
        log.close()
        if wait:
            self.wait_ready()

    def wait_ready(self, timeout: float = 30.0) -> None:
        """Until /healthz is "ok": every check passes (the engine answers, manifests
        are read, the sync loop runs, the event stream is not stale)."""

        def ready() -> bool:
            assert self.proc is not None
            if self.proc.poll() is not None:
                raise AssertionError(
                    f"agent exited with {self.proc.returncode}:\n{self.log_tail()}"
                )
            return bool(self.get("/healthz", raw=True) == b"ok")

        try:
            wait_until(ready, timeout=timeout, what="the agent to answer /healthz with ok")
        except AssertionError as e:
            if self.proc is not None and self.proc.poll() is not None:
                raise  # it exited: the message has its log already
            raise AssertionError(f"{e}\n{self.healthz()}\nagent log:\n{self.log_tail()}") from None

    def stop(self, sig: int = signal.SIGTERM, timeout: float = 10.0) -> int | None:
        if self.proc is None or self.proc.poll() is not None:
            return self.proc.returncode if self.proc else None
        self.proc.send_signal(sig)
        try:
            return self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(5)
            raise AssertionError(
                f"agent did not stop within {timeout}s after signal {sig}"
            ) from None

    def log(self) -> str:
        try:
            return self.log_path.read_text(errors="replace")
        except OSError:
            return ""

    def log_tail(self, lines: int = 40) -> str:
        return "\n".join(self.log().splitlines()[-lines:])

    # --- HTTP ---

    def get(self, path: str, *, raw: bool = False) -> Any:
        with urllib.request.urlopen(f"http://127.0.0.1:{self.port}{path}", timeout=5) as resp:
            body = resp.read()
        return body if raw else json.loads(body)

    def get_status(self, path: str) -> int:
        """The HTTP status of a GET (errors included, which urlopen raises)."""
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{self.port}{path}", timeout=5) as r:
                return int(r.status)
        except urllib.error.HTTPError as e:
            return int(e.code)

    def healthz(self) -> str:
        """``/healthz?verbose``: one ``[+]name ok`` or ``[-]name failed: reason`` line per check."""
        try:
            with urllib.request.urlopen(
                f"http://127.0.0.1:{self.port}/healthz?verbose", timeout=5
            ) as resp:
                return str(resp.read().decode())
        except urllib.error.HTTPError as e:
            return str(e.read().decode())
        except OSError as e:
            return f"/healthz?verbose: no answer: {e}"

    def pod_list(self) -> dict[str, Any]:
        result: dict[str, Any] = self.get("/pods")
        return result

    def pod(self, name: str) -> dict[str, Any] | None:
        full = f"{name}-{self.node}"
        for item in self.pod_list()["items"] or []:
            if item["metadata"]["name"] == full:
                return dict(item)
        return None

    def wait_pod(
        self,
        name: str,
        predicate: Callable[[dict[str, Any]], bool],
        *,
        timeout: float = 30.0,
        what: str = "",
    ) -> dict[str, Any]:
        def check() -> dict[str, Any] | None:
            pod = self.pod(name)
            return pod if pod is not None and predicate(pod) else None

        try:
            return wait_until(check, timeout=timeout, what=what or f"pod {name}")
        except AssertionError as e:
            pod = self.pod(name)
            status = json.dumps(pod["status"], indent=1) if pod else "absent"
            raise AssertionError(f"{e}\nstatus: {status}\nagent log:\n{self.log_tail()}") from None

    def wait_running(self, name: str, timeout: float = 30.0) -> dict[str, Any]:
        return self.wait_pod(
            name,
            lambda p: p["status"]["phase"] == "Running" and all_running(p),
            timeout=timeout,
            what=f"pod {name} running",
        )

    # --- recorded events ---

    def events(self, *, name: str | None = None, **fields: str) -> list[dict[str, Any]]:
        """The agent's recorded events (v1 Events, oldest first) that match every field given.

        ``name`` is a pod's manifest name, as for ``pod()``; the other keywords are those of
        ``EVENT_FIELDS``. The agent does the matching, through ``fieldSelector``.
        """
        if name is not None:
            fields["name"] = f"{name}-{self.node}"
        selector = ",".join(
            f"{EVENT_FIELDS[key]}={_escape(value)}" for key, value in fields.items()
        )
        query = "?" + urllib.parse.urlencode({"fieldSelector": selector}) if selector else ""
        items: list[dict[str, Any]] = self.get(f"/api/v1/events{query}")["items"]
        return items

    def wait_event(
        self, *, timeout: float = 10.0, message: str = "", count: int = 1, **fields: str
    ) -> dict[str, Any]:
        """The first event matching ``fields`` (as for ``events()``) whose message contains
        ``message`` and which happened at least ``count`` times; fails after ``timeout``."""

        def found() -> dict[str, Any] | None:
            for event in self.events(**fields):
                if message in event["message"] and event["count"] >= count:
                    return event
            return None

        what = f"an event {fields}" + (f" saying {message!r}" if message else "")
        try:
            return wait_until(found, timeout=timeout, what=what)
        except AssertionError as e:
            recorded = "\n".join(
                f"  {ev['type']} {ev['reason']} {ev['involvedObject']['name']} x{ev['count']}: "
                f"{ev['message']}"
                for ev in self.events()
            )
            raise AssertionError(
                f"{e}\nrecorded events:\n{recorded}\nagent log:\n{self.log_tail()}"
            ) from None

    def sync_manifests(self) -> None:
        """Until the agent has acted on every manifest change made before this call.

        The directory is watched in order: once a file written now is reported in
        /pods' ``errors``, every earlier change has reached the pods too. The probe
        file is then removed again, and its error with it.
        """
        self.barriers += 1
        probe = f"zz-barrier-{self.barriers}.yaml"
        self.write(probe, "not: [a pod\n")

        def reported() -> bool:
            return any(Path(e["file"]).name == probe for e in self.pod_list()["errors"])

        wait_until(reported, timeout=10, what=f"{probe} reported as unusable")
        self.remove(probe)
        wait_until(lambda: not reported(), timeout=10, what=f"{probe} forgotten")

    # --- manifests ---

    def write(self, filename: str, manifest: dict[str, Any] | str) -> Path:
        text = manifest if isinstance(manifest, str) else yaml.safe_dump(manifest)
        path = self.manifests / filename
        path.write_text(text)
        return path

    def remove(self, filename: str) -> None:
        (self.manifests / filename).unlink()

    # --- Docker ---

    def containers(self, **filters: str) -> list[dict[str, Any]]:
        labels = [f"{naming.NODE}={self.node}", *(f"{k}={v}" for k, v in filters.items())]
        result: list[dict[str, Any]] = self.api.containers(all=True, filters={"label": labels})
        return result

    def container_of(self, pod: dict[str, Any], name: str) -> dict[str, Any]:
        status = next(
            s
            for s in pod["status"]["containerStatuses"]
            + pod["status"].get("initContainerStatuses", [])
            if s["name"] == name
        )
        cid = status["containerID"].removeprefix("docker://")
        result: dict[str, Any] = self.api.inspect_container(cid)
        return result

    def exec(self, pod: dict[str, Any], container: str, *cmd: str) -> str:
        cid = self.container_of(pod, container)["Id"]
        exec_id = self.api.exec_create(cid, list(cmd))
        output: bytes = self.api.exec_start(exec_id["Id"])
        return output.decode()

    def cleanup(self) -> None:
        for c in self.containers():
            with contextlib.suppress(docker.errors.NotFound):
                self.api.remove_container(c["Id"], force=True)
        # The agent's claim on its node name in the engine (runtime/owner.py).
        with contextlib.suppress(docker.errors.NotFound, docker.errors.APIError):
            self.api.remove_volume(f"minikubelet-node-{self.node}")
        # Pods left running when the agent stopped keep their Memory emptyDirs
        # mounted; unmount them so pytest can delete its temporary directories.
        prefix = str(self.state) + "/"
        with open("/proc/self/mounts") as mounts:
            targets = [line.split()[1] for line in mounts if line.split()[1].startswith(prefix)]
        for target in targets:
            with contextlib.suppress(OSError):
                volumes.unmount(Path(target))


IMAGE = "localhost/minikubelet/busybox:1"

# Keywords of Agent.events() and wait_event(), and the event fields they select on.
EVENT_FIELDS = {
    "name": "involvedObject.name",
    "namespace": "involvedObject.namespace",
    "uid": "involvedObject.uid",
    "kind": "involvedObject.kind",
    "field_path": "involvedObject.fieldPath",
    "reason": "reason",
    "type": "type",
}


def refused_start(tmp_path: Path, *args: str) -> subprocess.CompletedProcess[str]:
    """An agent started with ``args`` that must refuse to start: exit 2, no traceback."""
    state = tmp_path / "state"
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "minikubelet",
            "run",
            "--config",
            "",
            "--manifest-dir",
            str(tmp_path / "manifests"),
            "--state-dir",
            str(state),
            "--node-name",
            "refused",
            *args,
        ],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 2, f"exit {done.returncode}\n{done.stderr}"
    assert "Traceback" not in done.stderr, done.stderr
    return done


def _escape(value: str) -> str:
    """A fieldSelector value: backslash, comma and equals sign are escaped."""
    return value.replace("\\", "\\\\").replace(",", "\\,").replace("=", "\\=")


def sh(name: str, script: str, **more: Any) -> dict[str, Any]:
    """A busybox container running ``script``; TERM ends it at once."""
    return {
        "name": name,
        "image": IMAGE,
        "command": ["sh", "-c", f"trap 'exit 0' TERM; {script}"],
        **more,
    }


def status_of(pod: dict[str, Any], name: str) -> dict[str, Any]:
    """The container status named ``name`` among init and app containers."""
    statuses = (pod["status"].get("containerStatuses") or []) + (
        pod["status"].get("initContainerStatuses") or []
    )
    for status in statuses:
        if status["name"] == name:
            found: dict[str, Any] = status
            return found
    raise KeyError(f"no status for container {name} yet")


def all_running(pod: dict[str, Any]) -> bool:
    statuses = pod["status"].get("containerStatuses") or []
    return bool(statuses) and all("running" in s["state"] for s in statuses)


def pod_manifest(name: str, containers: list[dict[str, Any]], **spec: Any) -> dict[str, Any]:
    spec.setdefault("terminationGracePeriodSeconds", 0)
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": name},
        "spec": {"containers": containers, **spec},
    }


@pytest.fixture
def make_agent(
    tmp_path: Path, docker_api: docker.APIClient, busybox_image: str, pause_image: str
) -> Iterator[Callable[..., Agent]]:
    agents: list[Agent] = []

    def factory(
        *extra_args: str,
        start: bool = True,
        infra_image: str | None = None,
        base: Path | None = None,
        env: dict[str, str] | None = None,
        log_level: str | None = "DEBUG",
    ) -> Agent:
        agent = Agent(
            base or tmp_path / f"agent{len(agents)}",
            docker_api,
            infra_image=infra_image or pause_image,
            extra_args=extra_args,
            env=env,
            log_level=log_level,
        )
        agents.append(agent)
        if start:
            agent.start()
        return agent

    yield factory
    for agent in agents:
        try:
            agent.stop(signal.SIGKILL)
        finally:
            agent.cleanup()
            if os.environ.get("MINIKUBELET_TEST_LOGS"):
                print(f"--- agent {agent.node} log ---\n{agent.log()}")


def running_agent(
    base: Path,
    api: docker.APIClient,
    infra_image: str,
    *extra_args: str,
    stop_signal: int = signal.SIGTERM,
) -> Iterator[Agent]:
    """An agent started and, when the caller is done, stopped with ``stop_signal`` and
    cleaned up: the body of a module-scoped agent fixture (``yield from``)."""
    agent = Agent(base, api, infra_image=infra_image, extra_args=extra_args)
    try:
        # Inside: an agent that fails to start is still stopped and its containers removed.
        agent.start()
        yield agent
    finally:
        try:
            agent.stop(stop_signal)
        finally:
            agent.cleanup()


@pytest.fixture
def agent(make_agent: Callable[..., Agent]) -> Agent:
    return make_agent()


@pytest.fixture
def kubectl(kubectl_bin: str, agent: Agent, tmp_path: Path) -> Kubectl:
    """kubectl against the ``agent`` fixture's agent."""
    return Kubectl(kubectl_bin, agent, tmp_path / "kubectl-home")


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> Pki:
    return make_pki(tmp_path_factory.mktemp("pki"))


@pytest.fixture(scope="module")
def tls_agent(
    tmp_path_factory: pytest.TempPathFactory,
    docker_api: docker.APIClient,
    pause_image: str,
    pki: Pki,
) -> Iterator[Agent]:
    base = tmp_path_factory.mktemp("tls-agent")
    token = base / "token"
    token.write_text(TOKEN + "\n")
    agent = Agent(
        base,
        docker_api,
        infra_image=pause_image,
        extra_args=(
            "--tls-cert-file",
            str(pki.dir / "server.pem"),
            "--tls-private-key-file",
            str(pki.dir / "server-key.pem"),
            "--client-ca-file",
            str(pki.ca_file),
            "--auth-token-file",
            str(token),
        ),
    )
    agent.start(wait=False)
    try:

        def healthy() -> bool:
            assert agent.proc is not None
            if agent.proc.poll() is not None:
                raise AssertionError(f"agent exited {agent.proc.returncode}:\n{agent.log_tail()}")
            code, _, _ = https_status(agent.port, "/healthz", pki.context())
            return code == 200

        wait_until(healthy, timeout=30, what="the TLS agent to answer /healthz")
        yield agent
    finally:
        try:
            agent.stop()
        finally:
            agent.cleanup()


# --- the test Kubernetes API server (tests/apiserver), for cluster mode -----------------

API_TOKEN = "apiserver-t0ken"


def _serve_api(pki: Pki) -> Iterator[Any]:
    from tests.apiserver import FakeApiServer, RealCluster

    real = os.environ.get("MINIKUBELET_TEST_KUBECONFIG")
    if real:
        yield RealCluster(Path(real))
        return
    server = FakeApiServer(tls=pki, tokens={API_TOKEN})
    server.start()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
def apiserver(pki: Pki) -> Iterator[Any]:
    """A FakeApiServer over TLS with the module's ``pki``, taking the token ``API_TOKEN``
    and client certificates from that CA; stopped at teardown. When
    ``MINIKUBELET_TEST_KUBECONFIG`` names a kubeconfig, a ``RealCluster`` on it instead
    (tests that inject faults then skip)."""
    yield from _serve_api(pki)


@pytest.fixture(scope="module")
def module_apiserver(pki: Pki) -> Iterator[Any]:
    """The same, shared by a module's tests (and the agent they share)."""
    yield from _serve_api(pki)


@pytest.fixture
def plain_apiserver() -> Iterator[Any]:
    """A FakeApiServer on plain HTTP that asks for no credentials."""
    from tests.apiserver import FakeApiServer

    server = FakeApiServer(require_auth=False)
    server.start()
    yield server
    server.stop()
