"""The real agent's Node and Lease on the test API server (tests/apiserver), over TLS.

One agent is shared by the tests that only watch it (registration, the
Lease's cadence, status writes, a restart, a deleted Node, an outage), in
that order; the credential tests each start an agent of their own. Times
come from the server's request log (monotonic, as it received them).
"""

from __future__ import annotations

import re
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import docker
import pytest

from tests.apiserver import FakeApiServer
from tests.integration.conftest import (
    API_TOKEN,
    Agent,
    refused_start,
    running_agent,
    wait_until,
)

pytestmark = pytest.mark.docker

MICRO_TIME = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{6}Z$")
LEASES = "/apis/coordination.k8s.io/v1/namespaces/kube-node-lease/leases"


def requests(server: FakeApiServer, method: str, path: str) -> list[Any]:
    return [r for r in server.request_log() if r.method == method and r.path == path]


def lease_path(node: str) -> str:
    return f"{LEASES}/{node}"


def status_path(node: str) -> str:
    return f"/api/v1/nodes/{node}/status"


def condition(node: dict[str, Any], type_: str) -> dict[str, Any]:
    return next(c for c in node["status"]["conditions"] if c["type"] == type_)


def apiserver_check(agent: Agent) -> str:
    return next(
        (line for line in agent.healthz().splitlines() if "apiserver" in line),
        "no apiserver check",
    )


@pytest.fixture(scope="module")
def server(module_apiserver: FakeApiServer) -> FakeApiServer:
    if not isinstance(module_apiserver, FakeApiServer):
        pytest.skip("these tests read the test API server's request log")
    return module_apiserver


@pytest.fixture(scope="module")
def node_agent(
    tmp_path_factory: pytest.TempPathFactory,
    docker_api: docker.APIClient,
    pause_image: str,
    server: FakeApiServer,
) -> Iterator[Agent]:
    base = tmp_path_factory.mktemp("node-agent")
    kubeconfig = server.write_kubeconfig(base / "kubeconfig", auth="token")
    yield from running_agent(base, docker_api, pause_image, "--kubeconfig", str(kubeconfig))


def registered(server: FakeApiServer, agent: Agent, timeout: float = 15.0) -> dict[str, Any]:
    return wait_until(
        lambda: server.get("nodes", agent.node),
        timeout=timeout,
        what=f"node {agent.node} on the API server",
    )


def test_the_node_is_registered_with_its_labels_status_and_port(
    server: FakeApiServer, node_agent: Agent
) -> None:
    registered(server, node_agent)

    def caught_up() -> dict[str, Any] | None:
        # Registered with the status of the moment (maybe before the engine answered),
        # then patched as it changes: the server ends with the node's own, Ready.
        node = server.get("nodes", node_agent.node)
        local = node_agent.get(f"/api/v1/nodes/{node_agent.node}")
        if node is None or node["status"]["nodeInfo"] != local["status"]["nodeInfo"]:
            return None
        return node if condition(node, "Ready")["status"] == "True" else None

    node = wait_until(caught_up, timeout=15, what="the node's status on the server, Ready")
    local = node_agent.get(f"/api/v1/nodes/{node_agent.node}")
    labels = node["metadata"]["labels"]
    assert labels == local["metadata"]["labels"]
    assert labels["kubernetes.io/hostname"] == node_agent.node
    assert labels["kubernetes.io/os"] == labels["beta.kubernetes.io/os"] == "linux"
    assert labels["kubernetes.io/arch"] == labels["beta.kubernetes.io/arch"]
    assert node["status"]["daemonEndpoints"] == {"kubeletEndpoint": {"Port": node_agent.port}}
    assert node["status"]["nodeInfo"]["containerRuntimeVersion"].startswith("docker://")
    assert node["status"]["addresses"] == local["status"]["addresses"]
    assert node["status"]["capacity"]["pods"] == "110"
    assert condition(node, "Ready")["reason"] == "KubeletReady"
    # The server's uid is its own, not the agent's local one.
    assert node["metadata"]["uid"] != local["metadata"]["uid"]
    node_agent.wait_event(reason="RegisteredNode", kind="Node")
    assert server.rejected == []


def test_the_lease_is_renewed_every_ten_seconds_by_put_and_the_status_left_alone(
    server: FakeApiServer, node_agent: Agent
) -> None:
    node = registered(server, node_agent)
    lease = wait_until(
        lambda: server.get("leases", node_agent.node, "kube-node-lease"),
        timeout=15,
        what="the node's lease",
    )
    assert lease["spec"]["holderIdentity"] == node_agent.node
    assert lease["spec"]["leaseDurationSeconds"] == 40
    assert MICRO_TIME.match(lease["spec"]["renewTime"]), lease["spec"]["renewTime"]
    assert lease["metadata"]["ownerReferences"] == [
        {
            "apiVersion": "v1",
            "kind": "Node",
            "name": node_agent.node,
            "uid": node["metadata"]["uid"],
        }
    ]
    path = lease_path(node_agent.node)

    def two_renewals() -> list[Any] | None:
        puts = [r for r in requests(server, "PUT", path) if r.status == 200]
        return puts[-2:] if len(puts) >= 2 else None

    first, second = wait_until(two_renewals, timeout=25, what="two renewals of the lease")
    assert 8.0 <= second.time - first.time <= 13.0, (first, second)
    # Renewed from the object the last PUT returned: the Lease was read once, at its creation.
    assert len(requests(server, "GET", path)) == 1
    renewed = server.get("leases", node_agent.node, "kube-node-lease")
    assert renewed is not None
    assert renewed["spec"]["renewTime"] > lease["spec"]["renewTime"]
    # Ten seconds of an idle node (its status computed every 10 s) moved nothing but
    # heartbeats: no status PATCH between the two renewals.
    patches = requests(server, "PATCH", status_path(node_agent.node))
    assert [p for p in patches if first.time < p.time < second.time] == []
    # The status was written only as often as it changed on the node (its local
    # resourceVersion counts the changes), with the strategic merge patch.
    local = node_agent.get(f"/api/v1/nodes/{node_agent.node}")
    assert len(patches) < int(local["metadata"]["resourceVersion"])
    assert {p.content_type for p in patches} <= {"application/strategic-merge-patch+json"}
    assert server.rejected == []


def test_a_restarted_agent_adopts_its_node_fixes_its_labels_and_patches_its_status(
    server: FakeApiServer, node_agent: Agent
) -> None:
    node = registered(server, node_agent)
    server.patch(
        "nodes",
        node_agent.node,
        {"metadata": {"labels": {"kubernetes.io/arch": "s390x", "team": "edge"}}},
    )
    status = status_path(node_agent.node)
    patches = len(requests(server, "PATCH", status))
    node_agent.stop()
    node_agent.start()
    # The stored status is an older agent's: patched at once, not at the next change.
    wait_until(
        lambda: len(requests(server, "PATCH", status)) > patches,
        timeout=15,
        what="the status patched after the restart",
    )
    adopted = server.get("nodes", node_agent.node)
    assert adopted is not None
    assert adopted["metadata"]["uid"] == node["metadata"]["uid"]
    labels = adopted["metadata"]["labels"]
    assert labels["kubernetes.io/arch"] == node["metadata"]["labels"]["kubernetes.io/arch"]
    assert labels["team"] == "edge"
    assert [r.status for r in requests(server, "POST", "/api/v1/nodes")][-1] == 409
    assert server.rejected == []


def test_an_outage_fails_the_health_check_and_the_lease_is_renewed_when_it_ends(
    server: FakeApiServer, node_agent: Agent
) -> None:
    registered(server, node_agent)
    path = lease_path(node_agent.node)
    wait_until(lambda: requests(server, "PUT", path), timeout=15, what="a lease renewal")
    server.go_down()
    try:
        wait_until(
            lambda: "[-]apiserver" in node_agent.healthz(),
            timeout=15,
            what="the apiserver check failing",
        )
        node_agent.wait_event(reason="APIServerUnreachable", kind="Node")
    finally:
        server.come_up()
    up = time.monotonic()
    wait_until(
        lambda: [r for r in requests(server, "PUT", path) if r.time > up and r.status == 200],
        timeout=15,
        what="the lease renewed after the outage",
    )
    node_agent.wait_event(reason="APIServerReachable", kind="Node")
    wait_until(lambda: "[+]apiserver ok" in node_agent.healthz(), timeout=5, what="healthz ok")


# --- credentials: an agent each ----------------------------------------------------------


@pytest.mark.parametrize("auth", ["cert", "cert-data"])
def test_a_client_certificate_authenticates_the_agent(
    server: FakeApiServer, make_agent: Callable[..., Agent], tmp_path: Path, auth: str
) -> None:
    kubeconfig = server.write_kubeconfig(tmp_path / "kubeconfig", auth=auth)
    agent = make_agent("--kubeconfig", str(kubeconfig))
    registered(server, agent)
    wait_until(
        lambda: server.get("leases", agent.node, "kube-node-lease"),
        timeout=15,
        what="the node's lease",
    )
    # Every request of this agent (its Lease's path is its own) came in as the certificate.
    users = {r.user for r in server.request_log() if r.path.startswith(lease_path(agent.node))}
    assert users == {"cert:client-user"}


def test_a_rotated_token_file_is_read_again_after_a_401(
    apiserver: FakeApiServer, make_agent: Callable[..., Agent], tmp_path: Path
) -> None:
    # A server of its own: while the old token is refused, no other agent may use it.
    server = apiserver
    kubeconfig = server.write_kubeconfig(tmp_path / "kubeconfig", auth="tokenFile")
    token_file = kubeconfig.with_name(kubeconfig.name + ".token")
    agent = make_agent("--kubeconfig", str(kubeconfig))
    registered(server, agent)
    path = lease_path(agent.node)
    wait_until(lambda: requests(server, "POST", LEASES), timeout=15, what="the lease created")
    # As a token issuer rotates: the file gets the new token, then the old one stops working.
    token_file.write_text("r0tated-t0ken\n")
    server.tokens = frozenset({"r0tated-t0ken"})
    rotated = time.monotonic()
    wait_until(
        lambda: [r for r in requests(server, "PUT", path) if r.time > rotated and r.status == 200],
        timeout=15,
        what="the lease renewed with the rotated token",
    )
    # The first request after the rotation (whichever part of the agent sent it) is
    # refused and has the kubeconfig read again: what follows carries the new token.
    after = [r for r in server.request_log() if r.time > rotated]
    refused = [r for r in after if r.status == 401]
    accepted = [r for r in after if r.status < 400]
    assert refused, after
    assert accepted, after
    assert len(refused) <= 3, refused  # those already in flight at the rotation, at most
    assert accepted[0].time - refused[0].time < 1.0, after
    wait_until(lambda: "[+]apiserver ok" in agent.healthz(), timeout=5, what="healthz ok")


def test_a_wrong_token_fails_the_health_check_with_a_warning_event(
    server: FakeApiServer, make_agent: Callable[..., Agent], tmp_path: Path
) -> None:
    kubeconfig = server.write_kubeconfig(tmp_path / "kubeconfig", auth="token")
    text = kubeconfig.read_text()
    assert API_TOKEN in text
    kubeconfig.write_text(text.replace(API_TOKEN, "wr0ng-t0ken"))
    agent = make_agent("--kubeconfig", str(kubeconfig), start=False)
    agent.start(wait=False)

    def failing() -> str | None:
        line = apiserver_check(agent)
        return line if line.startswith("[-]") else None

    check = wait_until(failing, timeout=20, what="the apiserver check failing")
    assert "401" in check, check
    event = agent.wait_event(reason="APIServerError", kind="Node", message="401")
    assert event["type"] == "Warning"
    assert server.get("nodes", agent.node) is None


@pytest.mark.parametrize(
    ("text", "why"),
    [
        (None, "does not exist"),
        ("clusters: [", "not YAML"),
        ("apiVersion: v1\nkind: Config\ncurrent-context: nowhere\n", "no such context"),
    ],
)
def test_a_kubeconfig_that_cannot_be_used_stops_the_start(
    tmp_path: Path, text: str | None, why: str
) -> None:
    kubeconfig = tmp_path / "kubeconfig"
    if text is not None:
        kubeconfig.write_text(text)
    done = refused_start(tmp_path, "--kubeconfig", str(kubeconfig))
    assert f"kubeconfig: {kubeconfig}" in done.stderr, f"{why}: {done.stderr}"
