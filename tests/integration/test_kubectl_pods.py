"""The machine's kubectl against a live agent: discovery, pods in every state, watch, describe.

One agent serves the whole module (its pods reach their states once, in
parallel); each test reads what it needs and the tests that add or remove
pods use pods of their own. Outputs are read in forms kubectl 1.20 and 1.32
print alike: JSON, names, and the first columns of the table.
"""

from __future__ import annotations

import json
import queue
import re
import signal
import subprocess
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import docker
import pytest
import yaml

from tests.integration.conftest import IMAGE, Agent, Kubectl, pod_manifest, sh, wait_until

pytestmark = pytest.mark.docker

# Manifest name → the STATUS kubectl prints once the pod settles there.
STATES: dict[str, str] = {
    "running": "Running",
    "completed": "Completed",
    "failed": "Error",
    "crashing": "CrashLoopBackOff",
    "initwait": "Init:0/2",
    "initfail": "Init:Error",
    "neverpull": "ErrImageNeverPull",
}


def manifests() -> dict[str, dict[str, Any]]:
    never = {"restartPolicy": "Never"}
    return {
        "running": {
            **pod_manifest("running", [sh("c", "sleep 3600 & wait")]),
            "metadata": {"name": "running", "labels": {"app": "x"}},
        },
        "completed": pod_manifest("completed", [sh("c", "exit 0")], **never),
        "failed": pod_manifest("failed", [sh("c", "exit 1")], **never),
        "crashing": pod_manifest("crashing", [sh("c", "exit 1")]),
        "initwait": pod_manifest(
            "initwait",
            [sh("c", "sleep 3600 & wait")],
            initContainers=[sh("i1", "sleep 3600 & wait"), sh("i2", "exit 0")],
        ),
        "initfail": pod_manifest(
            "initfail", [sh("c", "sleep 3600 & wait")], initContainers=[sh("i1", "exit 1")], **never
        ),
        "neverpull": pod_manifest(
            "neverpull",
            [{"name": "c", "image": "localhost/minikubelet/absent:1", "imagePullPolicy": "Never"}],
        ),
    }


@pytest.fixture(scope="module")
def shared_agent(
    tmp_path_factory: pytest.TempPathFactory,
    docker_api: docker.APIClient,
    busybox_image: str,
    pause_image: str,
) -> Iterator[Agent]:
    agent = Agent(tmp_path_factory.mktemp("kubectl-pods"), docker_api, infra_image=pause_image)
    for name, manifest in manifests().items():
        agent.write(f"{name}.yaml", manifest)
    try:
        agent.start()
        yield agent
    finally:
        try:
            agent.stop(signal.SIGKILL)
        finally:
            agent.cleanup()


@pytest.fixture(scope="module")
def kc(kubectl_bin: str, shared_agent: Agent, tmp_path_factory: pytest.TempPathFactory) -> Kubectl:
    return Kubectl(kubectl_bin, shared_agent, tmp_path_factory.mktemp("kubectl-home"))


def table(kc: Kubectl, *args: str) -> dict[str, list[str]]:
    """``kubectl get pods`` rows by NAME: the whitespace-split cells (READY, STATUS, ...)."""
    lines = kc.run("get", "pods", *args).splitlines()
    if not lines:
        return {}
    assert lines[0].split()[:3] == ["NAME", "READY", "STATUS"], lines[0]
    return {line.split()[0]: line.split()[1:] for line in lines[1:]}


@pytest.fixture(scope="module")
def settled(kc: Kubectl) -> dict[str, list[str]]:
    """Every pod of ``STATES`` printed with its expected STATUS (the rows of that moment)."""
    node = kc.agent.node
    expected = {f"{name}-{node}": word for name, word in STATES.items()}
    last: dict[str, list[str]] = {}

    def all_there() -> bool:
        nonlocal last
        last = table(kc, "-n", "default")
        return all(last.get(full, ["", ""])[1] == word for full, word in expected.items())

    try:
        wait_until(all_there, timeout=90, what="every pod in its expected state")
    except AssertionError as e:
        shown = {name: cells[1] if len(cells) > 1 else cells for name, cells in last.items()}
        raise AssertionError(f"{e}\nexpected: {expected}\nprinted: {shown}") from None
    return last


def test_get_pods_all_namespaces_json_lists_exactly_the_agents_pods(
    kc: Kubectl, settled: dict[str, list[str]]
) -> None:
    listed = kc.json("get", "pods", "-A")
    names = sorted(item["metadata"]["name"] for item in listed["items"])
    assert names == sorted(f"{name}-{kc.agent.node}" for name in STATES)
    uids = {item["metadata"]["uid"] for item in listed["items"]}
    assert uids == {item["metadata"]["uid"] for item in kc.agent.pod_list()["items"]}
    assert all(item["spec"]["nodeName"] == kc.agent.node for item in listed["items"])


def test_table_shows_each_state_as_kubectl_words_it(settled: dict[str, list[str]]) -> None:
    # ``settled`` waited for these; here the words are checked once more, with READY.
    node = next(iter(settled)).rsplit("-", 1)[1]
    ready = {name.removesuffix(f"-{node}"): cells[0] for name, cells in settled.items()}
    assert ready["running"] == "1/1"
    assert ready["completed"] == "0/1"
    assert ready["initwait"] == "0/1"
    words = {name.removesuffix(f"-{node}"): cells[1] for name, cells in settled.items()}
    assert words == STATES


def test_output_forms(kc: Kubectl, settled: dict[str, list[str]]) -> None:
    node = kc.agent.node
    running = kc.agent.wait_running("running")
    wide = kc.run("get", "pods", "-o", "wide")
    header = wide.splitlines()[0].split()
    assert header[:3] == ["NAME", "READY", "STATUS"]
    assert "IP" in header
    assert "NODE" in header
    row = next(line.split() for line in wide.splitlines() if line.startswith("running-"))
    assert running["status"]["podIP"] in row
    assert node in row

    listed = yaml.safe_load(kc.run("get", "pods", "-o", "yaml"))
    assert listed["kind"] == "List"
    assert {item["kind"] for item in listed["items"]} == {"Pod"}

    assert sorted(kc.run("get", "pods", "-o", "name").split()) == sorted(
        f"pod/{name}-{node}" for name in STATES
    )
    path = kc.run("get", "pods", "-o", "jsonpath={.items[*].status.phase}").split()
    assert sorted(path) == sorted(
        [
            "Running",
            "Succeeded",
            "Failed",
            "Running",
            "Pending",
            "Failed",
            "Pending",
        ]
    )


def test_get_one_pod_by_name_and_namespace(kc: Kubectl, settled: dict[str, list[str]]) -> None:
    name = f"running-{kc.agent.node}"
    got = kc.json("get", "pod", name, "-n", "default")
    assert (got["kind"], got["metadata"]["name"]) == ("Pod", name)
    assert table(kc, name, "-n", "default")[name][1] == "Running"
    missing = subprocess.run(
        kc.args("get", "pod", "nope", "-n", "default"),
        env=kc.env,
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )
    assert missing.returncode != 0
    assert 'pods "nope" not found' in missing.stderr


def test_label_and_field_selectors(kc: Kubectl, settled: dict[str, list[str]]) -> None:
    node = kc.agent.node
    assert list(table(kc, "-l", "app=x")) == [f"running-{node}"]
    assert table(kc, "-l", "app=none") == {}
    running = sorted(table(kc, "--field-selector", "status.phase=Running"))
    assert running == sorted(f"{n}-{node}" for n in ("running", "crashing"))
    selector = f"status.phase=Running,metadata.name=running-{node},spec.nodeName={node}"
    assert list(table(kc, "--field-selector", selector)) == [f"running-{node}"]
    assert table(kc, "--field-selector", "spec.nodeName=elsewhere") == {}


# A request kubectl logs at -v=6, 1.20 and 1.32 alike: "... round_trippers.go:N] GET <url> 200 OK".
REQUEST = re.compile(r"round_trippers\.go:\d+\] (GET|HEAD|POST|PUT|PATCH|DELETE) (\S+) (\d{3})")


@pytest.mark.parametrize(
    "args",
    [
        ("get", "pods", "-A"),
        ("get", "pods", "-o", "wide"),
        ("get", "pod", "{running}", "-n", "default", "-o", "yaml"),
        ("describe", "pod", "{running}", "-n", "default"),
    ],
    ids=" ".join,
)
def test_kubectl_makes_no_failing_request(
    kc: Kubectl, settled: dict[str, list[str]], args: tuple[str, ...], tmp_path: Path
) -> None:
    """Discovery and every read kubectl needs answer 200: nothing it falls back from."""
    running = f"running-{kc.agent.node}"
    done = subprocess.run(
        # A cache of its own, so discovery is asked for, not read from an earlier run.
        kc.args(
            *(a.format(running=running) for a in args),
            "-v=6",
            "--cache-dir",
            str(tmp_path / "cache"),
        ),
        env=kc.env,
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    requests = REQUEST.findall(done.stderr)
    assert any(url.split("?")[0].endswith("/api/v1") for _, url, _ in requests), done.stderr
    failed = [(method, url, code) for method, url, code in requests if code != "200"]
    assert failed == []


def test_get_raw_healthz_and_version(kc: Kubectl) -> None:
    assert kc.run("get", "--raw", "/healthz") == "ok"
    assert json.loads(kc.run("get", "--raw", "/version"))["gitVersion"].startswith("v")


def test_describe_shows_conditions_and_events(kc: Kubectl, settled: dict[str, list[str]]) -> None:
    out = kc.run("describe", "pod", f"running-{kc.agent.node}", "-n", "default")
    lines = out.splitlines()
    conditions = lines.index(next(line for line in lines if line.startswith("Conditions:")))
    condition_rows = {line.split()[0]: line.split()[1] for line in lines[conditions + 2 :][:5]}
    assert condition_rows.get("Ready") == "True"
    assert condition_rows.get("Initialized") == "True"
    events = lines.index(next(line for line in lines if line.startswith("Events:")))
    reasons = {line.split()[1] for line in lines[events + 3 :] if line.strip()}
    assert {"Created", "Started"} <= reasons


def test_watch_from_an_old_resource_version_is_410(kc: Kubectl) -> None:
    out = kc.run("get", "--raw", "/api/v1/pods?watch=1&resourceVersion=1")
    [line] = out.splitlines()
    event = json.loads(line)
    assert event["type"] == "ERROR"
    assert (event["object"]["code"], event["object"]["reason"]) == (410, "Expired")


class Lines:
    """A process's stdout lines, read on a thread so each wait has a deadline."""

    def __init__(self, proc: subprocess.Popen[str]) -> None:
        self.proc = proc
        self.seen: list[str] = []
        self._queue: queue.Queue[str | None] = queue.Queue()
        self._thread = threading.Thread(target=self._read, daemon=True)
        self._thread.start()

    def close(self) -> None:
        """Kill the process and release its pipes."""
        self.proc.kill()
        self.proc.wait(5)
        self._thread.join(5)
        for pipe in (self.proc.stdout, self.proc.stderr):
            if pipe is not None:
                pipe.close()

    def _read(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            self._queue.put(line.rstrip("\n"))
        self._queue.put(None)

    def until(self, predicate: Any, *, timeout: float, what: str) -> list[str]:
        deadline = time.monotonic() + timeout
        while True:
            left = deadline - time.monotonic()
            try:
                line = self._queue.get(timeout=max(left, 0.01))
            except queue.Empty:
                line = None
                if time.monotonic() < deadline:
                    continue
            if line is not None:
                self.seen.append(line)
                if predicate(line.split()):
                    return line.split()
                continue
            stderr = (
                self.proc.stderr.read() if self.proc.poll() is not None and self.proc.stderr else ""
            )
            raise AssertionError(f"no line for {what} in {timeout}s; saw {self.seen}\n{stderr}")


def test_get_pods_watch_sees_pending_running_deleted(kc: Kubectl) -> None:
    agent = kc.agent
    name = f"watched-{agent.node}"
    lines = Lines(kc.popen("get", "pods", "-w", "--output-watch-events"))
    try:
        # The initial list arrives first: then the watch is open.
        lines.until(lambda cells: cells[:1] == ["ADDED"], timeout=15, what="the initial list")
        agent.write("watched.yaml", pod_manifest("watched", [sh("c", "sleep 3600 & wait")]))
        first = lines.until(
            lambda cells: cells[1:2] == [name], timeout=15, what="the new pod's first event"
        )
        assert first[0] == "ADDED"
        assert first[3] in ("Pending", "ContainerCreating")
        lines.until(
            lambda cells: cells[1:2] == [name] and cells[3] == "Running",
            timeout=30,
            what="the pod running",
        )
        agent.remove("watched.yaml")
        lines.until(
            lambda cells: cells[:2] == ["DELETED", name], timeout=30, what="the pod deleted"
        )
    finally:
        lines.close()


def test_pod_stopping_is_terminating(kc: Kubectl, tmp_path: Path) -> None:
    agent = kc.agent
    name = f"slow-{agent.node}"
    # sh as PID 1 ignores TERM: the stop waits out the grace period.
    agent.write(
        "slow.yaml",
        pod_manifest(
            "slow",
            [{"name": "c", "image": IMAGE, "command": ["sh", "-c", "sleep 3600"]}],
            terminationGracePeriodSeconds=20,
        ),
    )
    wait_until(
        lambda: table(kc, name).get(name, ["", ""])[1] == "Running",
        timeout=30,
        what="the pod running",
    )
    agent.remove("slow.yaml")
    wait_until(
        lambda: table(kc, name).get(name, ["", ""])[1] == "Terminating",
        timeout=10,
        what="the pod terminating",
    )
    got = kc.json("get", "pod", name)
    assert got["metadata"]["deletionGracePeriodSeconds"] == 20
    assert "deletionTimestamp" in got["metadata"]
    # The kubelet's /pods no longer lists it.
    assert agent.pod("slow") is None
