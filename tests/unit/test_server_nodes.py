"""``/api/v1/nodes`` over real HTTP: the list and the one node, 404 for other names,
selectors, kubectl's node Table, the watch and the node Lease."""

from __future__ import annotations

import asyncio
import copy
import json
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer

from minikubelet.events import EventRecorder, ObjectRef
from minikubelet.nodestatus.manager import NodeStatus
from minikubelet.server.app import ServerDeps, make_app
from minikubelet.server.nodes import node_cells, node_roles
from minikubelet.status.manager import StatusManager
from tests.unit.test_nodestatus import FACTS, HEALTHY, IDENTITY, T0, readings

Client = TestClient[web.Request, web.Application]
TABLE = "application/json;as=Table;v=v1;g=meta.k8s.io,application/json"


class Engine:
    async def ping(self, timeout: float = 2.0) -> bool:
        return True

    def is_stale(self) -> bool:
        return False


def node_status(errors: list[str] | None = None) -> NodeStatus:
    status = NodeStatus(
        IDENTITY,
        FACTS,
        recorder=EventRecorder(host="n1", clock=lambda: T0),
        node_ref=ObjectRef("Node", "n1", uid="n1"),
        clock=lambda: T0,
        ready_errors=lambda: list(errors or []),
        nodefs=Path("/"),
    )
    status.update(HEALTHY)
    return status


async def serve(status: NodeStatus | None) -> AsyncIterator[Client]:
    deps = ServerDeps(status=StatusManager(), engine=Engine(), source_errors=list, node=status)
    client: Client = TestClient(TestServer(make_app(deps), host="127.0.0.1"))
    await client.start_server()
    try:
        yield client
    finally:
        await client.close()


@pytest.fixture
async def client() -> AsyncIterator[Client]:
    async for c in serve(node_status()):
        yield c


async def test_the_list_holds_this_node(client: Client) -> None:
    resp = await client.get("/api/v1/nodes")
    assert resp.status == 200
    body = await resp.json()
    assert body["kind"] == "NodeList"
    assert body["metadata"] == {"resourceVersion": "1"}
    (node,) = body["items"]
    assert node["metadata"]["name"] == "n1"
    assert node["status"]["capacity"]["pods"] == "110"


async def test_one_node_by_name_and_any_other_is_not_found(client: Client) -> None:
    resp = await client.get("/api/v1/nodes/n1")
    assert resp.status == 200
    assert (await resp.json())["kind"] == "Node"
    other = await client.get("/api/v1/nodes/elsewhere")
    assert other.status == 404
    assert await other.json() == {
        "kind": "Status",
        "apiVersion": "v1",
        "metadata": {},
        "status": "Failure",
        "message": 'nodes "elsewhere" not found',
        "reason": "NotFound",
        "code": 404,
    }


@pytest.mark.parametrize(
    ("query", "count"),
    [
        ({"fieldSelector": "metadata.name=n1"}, 1),
        ({"fieldSelector": "metadata.name!=n1"}, 0),
        ({"fieldSelector": "spec.unschedulable=false"}, 1),
        ({"fieldSelector": "spec.unschedulable=true"}, 0),
        ({"labelSelector": "kubernetes.io/os=linux"}, 1),
        ({"labelSelector": "kubernetes.io/hostname in (a,n1)"}, 1),
        ({"labelSelector": "node-role.kubernetes.io/control-plane"}, 0),
        ({"labelSelector": "kubernetes.io/os=linux", "fieldSelector": "metadata.name=x"}, 0),
    ],
    ids=[
        "name",
        "not-name",
        "schedulable",
        "unschedulable",
        "label",
        "label-in",
        "no-such-role",
        "both-must-hold",
    ],
)
async def test_selectors(client: Client, query: dict[str, str], count: int) -> None:
    resp = await client.get("/api/v1/nodes", params=query)
    assert resp.status == 200
    assert len((await resp.json())["items"]) == count


@pytest.mark.parametrize(
    "query",
    [{"fieldSelector": "status.phase=Ready"}, {"labelSelector": "a in b"}],
    ids=["unknown-field", "bad-label-selector"],
)
async def test_a_bad_selector_is_a_400(client: Client, query: dict[str, str]) -> None:
    resp = await client.get("/api/v1/nodes", params=query)
    assert resp.status == 400
    assert (await resp.json())["reason"] == "BadRequest"


async def test_without_a_node_status_nodes_are_unavailable() -> None:
    async for client in serve(None):
        resp = await client.get("/api/v1/nodes")
        assert resp.status == 503


# --- the Table -------------------------------------------------------------------------


def test_node_cells_are_printnodes() -> None:
    node = node_status().node()
    assert node is not None
    assert node_cells(node, T0 + 3 * 3600) == [
        "n1",
        "Ready",
        "<none>",
        "3h",
        "v0.1.0",
        "192.0.2.7",
        "<none>",
        "Debian GNU/Linux 12 (bookworm)",
        "6.1.0-18-amd64",
        "docker://20.10.24",
    ]


def test_status_words_and_unknowns() -> None:
    node = node_status(["container runtime is down"]).node()
    assert node is not None
    cordoned = copy.deepcopy(node)
    cordoned["spec"]["unschedulable"] = True
    assert node_cells(cordoned, T0)[1] == "NotReady,SchedulingDisabled"
    bare: dict[str, Any] = {"metadata": {"name": "x"}, "status": {}}
    assert node_cells(bare, T0) == [
        "x",
        "Unknown",
        "<none>",
        "<unknown>",
        "",
        "<none>",
        "<none>",
        "<unknown>",
        "<unknown>",
        "<unknown>",
    ]


def test_roles_come_from_role_labels() -> None:
    labels = {
        "node-role.kubernetes.io/control-plane": "",
        "node-role.kubernetes.io/": "",
        "kubernetes.io/role": "worker",
        "kubernetes.io/os": "linux",
    }
    assert node_roles(labels) == ["control-plane", "worker"]


async def test_kubectl_gets_a_table(client: Client) -> None:
    resp = await client.get("/api/v1/nodes", headers={"Accept": TABLE})
    body = await resp.json()
    assert body["kind"] == "Table"
    assert [(c["name"], c["priority"]) for c in body["columnDefinitions"]] == [
        ("Name", 0),
        ("Status", 0),
        ("Roles", 0),
        ("Age", 0),
        ("Version", 0),
        ("Internal-IP", 1),
        ("External-IP", 1),
        ("OS-Image", 1),
        ("Kernel-Version", 1),
        ("Container-Runtime", 1),
    ]
    (row,) = body["rows"]
    assert row["cells"][:2] == ["n1", "Ready"]
    one = await (await client.get("/api/v1/nodes/n1", headers={"Accept": TABLE})).json()
    assert one["rows"][0]["cells"][0] == "n1"


# --- watch and lease -------------------------------------------------------------------


async def test_a_watch_sends_the_node_then_each_update() -> None:
    status = node_status()
    async for client in serve(status):
        resp = await client.get("/api/v1/nodes", params={"watch": "1"})
        async with asyncio.timeout(5):
            first = json.loads(await resp.content.readline())
        assert first["type"] == "ADDED"
        assert first["object"]["metadata"]["resourceVersion"] == "1"
        status.update(HEALTHY)  # nothing but heartbeats: not sent
        status.update(readings(memory_available=0))
        async with asyncio.timeout(5):
            second = json.loads(await resp.content.readline())
        assert second["type"] == "MODIFIED"
        assert second["object"]["metadata"]["resourceVersion"] == "2"
        assert second["object"]["status"]["conditions"][0]["status"] == "True"
        # Closing the status (shutdown) ends every node watch.
        status.close()
        async with asyncio.timeout(5):
            assert await resp.content.read() == b""


async def test_a_node_watch_ends_at_its_timeout() -> None:
    async for client in serve(node_status()):
        resp = await client.get("/api/v1/nodes", params={"watch": "1", "timeoutSeconds": "1"})
        async with asyncio.timeout(5):
            lines = (await resp.content.read()).splitlines()
        assert [json.loads(line)["type"] for line in lines] == ["ADDED"]


async def test_the_node_lease(client: Client) -> None:
    path = "/apis/coordination.k8s.io/v1/namespaces/kube-node-lease/leases"
    resp = await client.get(f"{path}/n1")
    assert resp.status == 200
    lease = await resp.json()
    assert lease["kind"] == "Lease"
    assert lease["spec"] == {
        "holderIdentity": "n1",
        "leaseDurationSeconds": 40,
        "renewTime": "2023-11-14T22:13:20.000000Z",
    }
    assert lease["metadata"]["ownerReferences"][0]["kind"] == "Node"
    missing = await client.get(f"{path}/other")
    assert missing.status == 404
    assert (await missing.json())["message"] == 'leases.coordination.k8s.io "other" not found'


@pytest.mark.parametrize("method", ["POST", "PUT", "PATCH", "DELETE"])
@pytest.mark.parametrize(
    "path",
    [
        "/api/v1/nodes",
        "/api/v1/nodes/n1",
        "/apis/coordination.k8s.io/v1/namespaces/kube-node-lease/leases/n1",
    ],
)
async def test_nothing_writes_the_node(client: Client, method: str, path: str) -> None:
    resp = await client.request(method, path, json={"spec": {"unschedulable": True}})
    assert resp.status == 405
    body = await resp.json()
    assert (body["kind"], body["reason"], body["code"]) == ("Status", "MethodNotAllowed", 405)


async def test_a_node_watch_from_the_lists_version_waits_for_a_change() -> None:
    status = node_status()
    async for client in serve(status):
        resp = await client.get("/api/v1/nodes", params={"watch": "1", "resourceVersion": "1"})
        status.update(readings(memory_available=0))
        line = json.loads(await asyncio.wait_for(resp.content.readline(), 5))
        # Not the node the list already showed: the change after it.
        assert line["type"] == "MODIFIED"
        assert line["object"]["metadata"]["resourceVersion"] == "2"
        resp.close()


async def test_a_node_watch_from_an_older_version_gets_the_latest_node() -> None:
    status = node_status()
    status.update(readings(memory_available=0))
    async for client in serve(status):
        resp = await client.get("/api/v1/nodes", params={"watch": "1", "resourceVersion": "1"})
        line = json.loads(await asyncio.wait_for(resp.content.readline(), 5))
        assert line["type"] == "MODIFIED"
        assert line["object"]["metadata"]["resourceVersion"] == "2"
        resp.close()


async def test_a_node_watch_from_a_version_of_an_earlier_run_is_410() -> None:
    async for client in serve(node_status()):
        resp = await client.get("/api/v1/nodes", params={"watch": "1", "resourceVersion": "9"})
        line = json.loads(await asyncio.wait_for(resp.content.readline(), 5))
        assert line["type"] == "ERROR"
        assert line["object"]["code"] == 410
