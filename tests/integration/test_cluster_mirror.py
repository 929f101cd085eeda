"""Mirror pods on an API server, end to end: the real agent process with real
containers, reporting through ``--kubeconfig`` (TLS, bearer token) to the test
API server (tests/apiserver/), which validates every object it stores.

With ``MINIKUBELET_TEST_KUBECONFIG`` set, the same tests run against that real
cluster; those that need the test server's request log or faults skip.

One agent and one server serve the whole module, in order: the tests use pod
names of their own, and the disruptive ones (the server down for 30 s, the
agent killed) come last. The server's request log is what "only when changed"
and "Retry-After honoured" are checked against; a watch of the test's own shows
what a client of the cluster saw (never a Terminating mirror on a replace).
"""

from __future__ import annotations

import contextlib
import http.client
import json
import signal
import socket
import subprocess
import threading
import time
import urllib.parse
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import docker
import pytest

from minikubelet import __version__
from minikubelet.model import naming
from tests.apiserver import FakeApiServer, RealCluster, RequestRecord
from tests.integration.conftest import (
    API_TOKEN,
    Agent,
    pod_manifest,
    running_agent,
    sh,
    wait_until,
)
from tests.integration.tls import Pki

pytestmark = pytest.mark.docker

NS = "default"
Server = FakeApiServer | RealCluster


@pytest.fixture(scope="module")
def server(module_apiserver: Server) -> Server:
    return module_apiserver


@pytest.fixture(scope="module")
def kubeconfig(server: Server, tmp_path_factory: pytest.TempPathFactory) -> Path:
    return server.write_kubeconfig(tmp_path_factory.mktemp("kube") / "config", auth="token")


@pytest.fixture(scope="module")
def agent(
    tmp_path_factory: pytest.TempPathFactory,
    docker_api: docker.APIClient,
    busybox_image: str,
    pause_image: str,
    kubeconfig: Path,
) -> Iterator[Agent]:
    yield from running_agent(
        tmp_path_factory.mktemp("mirror-agent"),
        docker_api,
        pause_image,
        "--kubeconfig",
        str(kubeconfig),
        stop_signal=signal.SIGKILL,
    )


# --- helpers ---


def full(agent: Agent, name: str) -> str:
    return naming.static_pod_name(name, agent.node)


def mirror(server: Server, agent: Agent, name: str) -> dict[str, Any] | None:
    return server.get("pods", full(agent, name), NS)


def wait_mirror(
    server: Server,
    agent: Agent,
    name: str,
    predicate: Callable[[dict[str, Any]], bool],
    what: str,
    *,
    timeout: float = 30,
) -> dict[str, Any]:
    def check() -> dict[str, Any] | None:
        obj = mirror(server, agent, name)
        return obj if obj is not None and predicate(obj) else None

    try:
        return wait_until(check, timeout=timeout, what=what)
    except AssertionError as e:
        obj = mirror(server, agent, name)
        raise AssertionError(
            f"{e}\nserver holds: {json.dumps(obj, indent=1) if obj else 'nothing'}\n"
            f"agent log:\n{agent.log_tail()}"
        ) from None


def condition(obj: dict[str, Any], type_: str) -> str | None:
    for c in obj.get("status", {}).get("conditions") or []:
        if c["type"] == type_:
            return str(c["status"])
    return None


def status_path(agent: Agent, name: str) -> str:
    return f"/api/v1/namespaces/{NS}/pods/{full(agent, name)}/status"


def patches(server: Server, agent: Agent, name: str) -> list[RequestRecord]:
    path = status_path(agent, name)
    return [r for r in server.request_log() if r.method == "PATCH" and r.path == path]


def pod_writes(server: Server, since: int) -> list[RequestRecord]:
    """Requests that changed pods, after the ``since``-th request."""
    return [
        r
        for r in server.request_log()[since:]
        if r.method in ("POST", "PUT", "PATCH", "DELETE") and "/pods" in r.path
    ]


def agent_hash(agent: Agent, name: str) -> str:
    pod = agent.pod(name)
    assert pod is not None
    return str(pod["metadata"]["annotations"][naming.CONFIG_HASH])


def sleeper(name: str, **spec: Any) -> dict[str, Any]:
    return pod_manifest(name, [sh("c", "sleep 3600")], **spec)


class PodWatch:
    """A client of the cluster watching this node's pods, from now on, in a thread."""

    def __init__(self, server: FakeApiServer, pki: Pki, node: str) -> None:
        url = urllib.parse.urlsplit(server.url)
        self._conn = http.client.HTTPSConnection(
            url.hostname or "127.0.0.1", url.port, context=pki.context(), timeout=60
        )
        query = urllib.parse.urlencode(
            {"watch": "1", "fieldSelector": f"spec.nodeName={node}", "timeoutSeconds": "60"}
        )
        self._conn.request(
            "GET", f"/api/v1/pods?{query}", headers={"Authorization": f"Bearer {API_TOKEN}"}
        )
        self._response = self._conn.getresponse()
        assert self._response.status == 200, self._response.status
        self.events: list[dict[str, Any]] = []
        self._thread = threading.Thread(target=self._read, daemon=True)
        self._thread.start()

    def _read(self) -> None:
        with contextlib.suppress(OSError, ValueError, http.client.HTTPException):
            for line in self._response:
                if line.strip():
                    self.events.append(json.loads(line))

    def of(self, name: str) -> list[dict[str, Any]]:
        return [e for e in list(self.events) if e["object"]["metadata"]["name"] == name]

    def close(self) -> None:
        # The reader sees the end of its stream; the connection is closed once it is
        # done with it (closing under a reading thread breaks http.client).
        with contextlib.suppress(OSError):
            if self._conn.sock is not None:
                self._conn.sock.shutdown(socket.SHUT_RDWR)
        self._thread.join(5)
        assert not self._thread.is_alive()
        self._conn.close()


@pytest.fixture
def pod_watch(server: Server, pki: Pki, agent: Agent) -> Iterator[PodWatch]:
    if not isinstance(server, FakeApiServer):
        pytest.skip("the test's own watch is made with the test API server's credentials")
    watch = PodWatch(server, pki, agent.node)
    try:
        yield watch
    finally:
        watch.close()


# --- the tests, in order ---


def test_a_static_pod_gets_a_mirror_owned_by_the_node(server: Server, agent: Agent) -> None:
    agent.write("web.yaml", sleeper("web"))
    local = agent.wait_running("web")
    obj = wait_mirror(
        server, agent, "web", lambda o: o["status"].get("phase") == "Running", "web running"
    )
    node = server.get("nodes", agent.node)
    assert node is not None
    meta = obj["metadata"]
    annotations = meta["annotations"]
    assert annotations[naming.CONFIG_MIRROR] == local["metadata"]["annotations"][naming.CONFIG_HASH]
    assert annotations[naming.CONFIG_SOURCE] == "file"
    assert naming.CONFIG_SEEN in annotations
    assert meta["ownerReferences"] == [
        {
            "apiVersion": "v1",
            "kind": "Node",
            "name": agent.node,
            "uid": node["metadata"]["uid"],
            "controller": True,
        }
    ]
    # A mirror is its own object on the server, not the static pod.
    assert meta["uid"] != local["metadata"]["uid"]
    assert obj["spec"]["nodeName"] == agent.node
    assert obj["spec"]["containers"][0]["command"] == local["spec"]["containers"][0]["command"]
    wait_mirror(
        server,
        agent,
        "web",
        lambda o: o["status"].get("containerStatuses") == local["status"]["containerStatuses"],
        "the agent's container statuses on the server",
    )
    assert server.rejected == []


def test_status_is_patched_when_it_changes_and_only_then(server: Server, agent: Agent) -> None:
    probe = {"exec": {"command": ["cat", "/tmp/ready"]}, "periodSeconds": 1}
    agent.write(
        "probed.yaml", pod_manifest("probed", [sh("c", "sleep 3600", readinessProbe=probe)])
    )
    local = agent.wait_running("probed")
    wait_mirror(
        server,
        agent,
        "probed",
        lambda o: o["status"].get("phase") == "Running" and condition(o, "Ready") == "False",
        "probed running, not ready",
    )
    before = len(patches(server, agent, "probed"))
    agent.exec(local, "c", "touch", "/tmp/ready")
    wait_mirror(server, agent, "probed", lambda o: condition(o, "Ready") == "True", "ready")
    flipped = len(patches(server, agent, "probed"))
    # One change on the node (Ready, ContainersReady and the container's ready flag
    # together) is one request.
    assert flipped - before == 1, patches(server, agent, "probed")[before:]
    # The probe keeps succeeding every second: no change, no request. Not a wait for
    # anything: a window as long as three probe periods, for requests that must not come.
    window = time.monotonic()
    time.sleep(3.5)
    assert len(patches(server, agent, "probed")) == flipped
    # Nor does the agent list the node's pods again: its watch is what keeps it current.
    lists = [
        r
        for r in server.request_log()
        if r.time > window
        and r.method == "GET"
        and r.path == "/api/v1/pods"
        and "watch" not in r.query
    ]
    assert lists == []
    assert server.rejected == []


def test_a_changed_manifest_replaces_the_mirror_without_terminating(
    server: Server, agent: Agent, pod_watch: PodWatch
) -> None:
    agent.write("swap.yaml", sleeper("swap"))
    agent.wait_running("swap")
    old = wait_mirror(server, agent, "swap", lambda o: o["status"].get("phase") == "Running", "v1")
    agent.write("swap.yaml", pod_manifest("swap", [sh("c", "sleep 3601")]))
    new_hash = wait_until(
        lambda: (
            (h := agent_hash(agent, "swap")) != old["metadata"]["annotations"][naming.CONFIG_MIRROR]
            and h
        ),
        timeout=30,
        what="the agent's new pod",
    )
    new = wait_mirror(
        server,
        agent,
        "swap",
        lambda o: (
            o["metadata"]["annotations"][naming.CONFIG_MIRROR] == new_hash
            and o["status"].get("phase") == "Running"
        ),
        "the new mirror running",
    )
    assert new["metadata"]["uid"] != old["metadata"]["uid"]
    assert new["spec"]["containers"][0]["command"][-1].endswith("sleep 3601")
    seen = pod_watch.of(full(agent, "swap"))
    assert [e["type"] for e in seen if e["object"]["metadata"]["uid"] == old["metadata"]["uid"]][
        -1
    ] == "DELETED"
    terminating = [e for e in seen if e["object"]["metadata"].get("deletionTimestamp")]
    assert terminating == [], "a replaced mirror must never be seen Terminating"


def test_a_removed_manifest_deletes_the_mirror(server: Server, agent: Agent) -> None:
    agent.write("gone.yaml", sleeper("gone"))
    agent.wait_running("gone")
    wait_mirror(server, agent, "gone", lambda o: o["status"].get("phase") == "Running", "gone")
    agent.remove("gone.yaml")
    wait_until(lambda: agent.pod("gone") is None, timeout=30, what="the agent stopped it")
    wait_until(lambda: mirror(server, agent, "gone") is None, timeout=15, what="the mirror deleted")


def test_a_mirror_someone_deletes_is_made_again(
    server: Server, agent: Agent, pod_watch: PodWatch
) -> None:
    first = wait_mirror(server, agent, "web", lambda o: True, "web's mirror")
    first_uid = first["metadata"]["uid"]
    # A user's graceful delete: Terminating on the server, which the agent replaces.
    server.delete("pods", full(agent, "web"), NS, grace=30)
    second = wait_mirror(
        server,
        agent,
        "web",
        lambda o: (
            o["metadata"]["uid"] != first_uid
            and "deletionTimestamp" not in o["metadata"]
            and o["status"].get("phase") == "Running"
        ),
        "a new mirror of web",
    )
    seen = pod_watch.of(full(agent, "web"))
    assert any(
        e["object"]["metadata"]["uid"] == first_uid
        and e["object"]["metadata"].get("deletionTimestamp")
        for e in seen
    )
    # And deleted at once.
    server.delete("pods", full(agent, "web"), NS, grace=0)
    wait_mirror(
        server,
        agent,
        "web",
        lambda o: (
            o["metadata"]["uid"] not in (first_uid, second["metadata"]["uid"])
            and o["status"].get("phase") == "Running"
        ),
        "web's mirror made again",
    )
    # The pod itself never noticed.
    local = agent.pod("web")
    assert local is not None
    assert local["status"]["containerStatuses"][0]["restartCount"] == 0


def test_conflicts_and_throttling_are_retried_honouring_retry_after(
    server: Server, agent: Agent
) -> None:
    local = agent.pod("probed")
    assert local is not None
    path = status_path(agent, "probed")
    server.fail_next(409, count=1, match=lambda m, p: m == "PATCH" and p == path)
    server.fail_next(429, count=1, retry_after=2, match=lambda m, p: m == "PATCH" and p == path)
    agent.exec(local, "c", "rm", "/tmp/ready")
    wait_mirror(server, agent, "probed", lambda o: condition(o, "Ready") == "False", "not ready")
    sent = patches(server, agent, "probed")
    codes = [r.status for r in sent]
    i = codes.index(429)
    assert 409 in codes[:i]
    retried = sent[i + 1]
    assert retried.status == 200
    assert retried.time - sent[i].time >= 2.0, "Retry-After: 2 was not honoured"
    assert retried.time - sent[i].time < 2.0 * 1.2 + 1.0


def kubectl_get(
    kubectl_bin: str, kubeconfig: Path, home: Path, *args: str
) -> tuple[list[str], list[list[str]]]:
    """The header and the rows of ``kubectl get ARGS`` against the server."""
    home.mkdir(exist_ok=True)
    done = subprocess.run(
        [kubectl_bin, "--kubeconfig", str(kubeconfig), "get", *args],
        env={"PATH": "/usr/bin:/bin", "HOME": str(home), "KUBECACHEDIR": str(home / "cache")},
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    lines = done.stdout.splitlines()
    return lines[0].split(), [line.split() for line in lines[1:]]


def kubectl_pods(kubectl_bin: str, kubeconfig: Path, home: Path) -> dict[str, list[str]]:
    header, rows = kubectl_get(kubectl_bin, kubeconfig, home, "pods", "-A", "-o", "wide")
    assert header[:6] == ["NAMESPACE", "NAME", "READY", "STATUS", "RESTARTS", "AGE"]
    return {row[1]: row for row in rows}


def test_kubectl_lists_the_mirror_pods_with_their_status(
    server: Server,
    agent: Agent,
    kubectl_bin: str,
    kubeconfig: Path,
    tmp_path: Path,
) -> None:
    agent.write("done.yaml", pod_manifest("done", [sh("c", "exit 0")], restartPolicy="Never"))
    agent.write("fail.yaml", pod_manifest("fail", [sh("c", "exit 3")], restartPolicy="Never"))
    agent.write("crash.yaml", pod_manifest("crash", [sh("c", "exit 1")]))
    want = {
        "web": {"Running"},
        "done": {"Completed"},
        "fail": {"Error"},
        # Between two runs, or in one: both are what kubectl shows of a crash loop.
        "crash": {"CrashLoopBackOff", "Error"},
    }

    def listed() -> dict[str, list[str]] | None:
        rows = kubectl_pods(kubectl_bin, kubeconfig, tmp_path / "home")
        for name, statuses in want.items():
            row = rows.get(full(agent, name))
            if row is None or row[3] not in statuses:
                return None
        return rows

    rows = wait_until(listed, timeout=40, what="kubectl to list the mirrors", interval=0.5)
    web = rows[full(agent, "web")]
    assert web[0] == NS
    assert web[2] == "1/1"
    assert web[7] == agent.node  # NODE column of -o wide
    assert rows[full(agent, "done")][2] == "0/1"
    header, nodes = kubectl_get(kubectl_bin, kubeconfig, tmp_path / "home", "nodes")
    assert header == ["NAME", "STATUS", "ROLES", "AGE", "VERSION"]
    node = next(row for row in nodes if row[0] == agent.node)
    assert node[1] == "Ready"
    assert node[4] == f"v{__version__}"
    assert server.rejected == []


def server_state(server: Server, agent: Agent) -> dict[str, tuple[str, str]]:
    return {
        p["metadata"]["name"]: (
            p["metadata"]["annotations"].get(naming.CONFIG_MIRROR, ""),
            p["status"].get("phase", ""),
        )
        for p in server.list("pods", NS)
        if p["spec"].get("nodeName") == agent.node
    }


def agent_state(agent: Agent) -> dict[str, tuple[str, str]]:
    return {
        p["metadata"]["name"]: (
            p["metadata"]["annotations"][naming.CONFIG_HASH],
            p["status"]["phase"],
        )
        for p in agent.pod_list()["items"] or []
    }


def test_after_30s_down_the_server_ends_with_the_current_state(
    server: Server, agent: Agent
) -> None:
    agent.remove("done.yaml")
    agent.remove("fail.yaml")
    agent.remove("crash.yaml")
    wait_until(
        lambda: server_state(server, agent).keys() == agent_state(agent).keys(),
        timeout=30,
        what="the server to hold the node's pods before the outage",
    )
    started = time.monotonic()
    server.go_down()
    try:
        agent.write("added.yaml", sleeper("added"))
        agent.remove("swap.yaml")
        agent.write("web.yaml", pod_manifest("web", [sh("c", "sleep 3602")]))
        agent.wait_running("added")
        wait_until(lambda: agent.pod("swap") is None, timeout=30, what="swap stopped")
        agent.wait_pod(
            "web",
            lambda p: (
                p["spec"]["containers"][0]["command"][-1].endswith("3602")
                and p["status"]["phase"] == "Running"
            ),
            what="the new web running",
        )
        assert "apiserver" in agent.healthz()
        # The outage lasts 30 s whatever the agent did meanwhile.
        time.sleep(max(0.0, 30.0 - (time.monotonic() - started)))
    finally:
        server.come_up()
    wait_until(
        lambda: server_state(server, agent) == agent_state(agent),
        timeout=30,
        what="the server to hold the node's current pods",
        interval=0.2,
    )
    names = set(server_state(server, agent))
    assert names == {full(agent, n) for n in ("web", "probed", "added")}
    assert server.rejected == []


def test_a_killed_and_restarted_agent_adopts_its_mirrors(server: Server, agent: Agent) -> None:
    before = {p["metadata"]["name"]: p["metadata"]["uid"] for p in server.list("pods", NS)}
    steady = {full(agent, "web"), full(agent, "added")}
    agent.stop(signal.SIGKILL)
    mark = len(server.request_log())
    agent.start()
    agent.wait_running("web")
    agent.wait_running("added")
    # The restarted agent listed its node's pods and had its first look at each.
    wait_until(
        lambda: b"minikubelet_mirror_pod_lists_total 1.0" in agent.get("/metrics", raw=True),
        timeout=15,
        what="the mirror pods listed",
    )
    # Not a wait for anything: a window for writes that must not come.
    time.sleep(3)
    after = {p["metadata"]["name"]: p["metadata"]["uid"] for p in server.list("pods", NS)}
    assert after == before, "no mirror may be duplicated or replaced"
    # Creations and deletions of any mirror, and status writes of the pods whose status
    # has not changed (the probed pod is not ready again until its probe passes).
    writes = [
        r
        for r in pod_writes(server, mark)
        if r.method != "PATCH" or r.path.rsplit("/", 2)[-2] in steady
    ]
    assert writes == [], "a restarted agent must not rewrite mirrors the server has right"
