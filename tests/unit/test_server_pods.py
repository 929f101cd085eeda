"""The pods API and discovery over real HTTP on loopback (no Docker): lists, gets,
selectors, Tables, watches resumed from a version, and what the status manager keeps."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from typing import Any

import pytest
from aiohttp import ClientResponse, web
from aiohttp.test_utils import TestClient, TestServer

from minikubelet.model.manifest import pod_from_document
from minikubelet.model.spec import Pod
from minikubelet.server.app import ServerDeps, ServerLimits, make_app
from minikubelet.server.podquery import PodFilter, PodQuery
from minikubelet.server.pods import ListCache, list_body
from minikubelet.status.manager import StatusManager
from minikubelet.status.types import PodPhase, PodStatus

TABLE = "application/json;as=Table;v=v1;g=meta.k8s.io,application/json"
Client = TestClient[web.Request, web.Application]


class Engine:
    async def ping(self, timeout: float = 2.0) -> bool:
        return True

    def is_stale(self) -> bool:
        return False


def pod(name: str, *, namespace: str = "default", labels: dict[str, str] | None = None) -> Pod:
    doc: dict[str, Any] = {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": name, "namespace": namespace, "labels": labels or {}},
        "spec": {"containers": [{"name": "c", "image": "busybox:1"}]},
    }
    return pod_from_document(
        doc,
        origin=f"/m/{name}.yaml",
        node_name="node",
        seen=lambda uid: "2026-01-01T12:00:00.123456789+00:00",
    )


def running() -> PodStatus:
    return PodStatus(phase=PodPhase.RUNNING, pod_ip="10.0.0.9")


@pytest.fixture
def status() -> StatusManager:
    return StatusManager(first_version=1)


async def _client(
    status: StatusManager, limits: ServerLimits | None = None
) -> AsyncIterator[Client]:
    deps = ServerDeps(status=status, engine=Engine(), source_errors=list)
    client: Client = TestClient(TestServer(make_app(deps, limits=limits), host="127.0.0.1"))
    await client.start_server()
    try:
        yield client
    finally:
        await client.close()


@pytest.fixture
async def client(status: StatusManager) -> AsyncIterator[Client]:
    async for c in _client(status):
        yield c


@pytest.fixture
def pods(status: StatusManager) -> dict[str, Pod]:
    made = {
        "web": pod("web", labels={"app": "web"}),
        "db": pod("db", labels={"app": "db"}),
        "sys": pod("sys", namespace="kube-system", labels={"app": "web"}),
    }
    for p in made.values():
        status.track(p)
    status.set(made["web"].uid, running())
    return made


async def get_json(client: Client, path: str, **kwargs: Any) -> Any:
    resp = await client.get(path, **kwargs)
    assert resp.status == 200, await resp.text()
    return await resp.json()


def names(body: dict[str, Any]) -> list[str]:
    return [item["metadata"]["name"] for item in body["items"]]


async def test_discovery_lists_what_is_served(client: Client) -> None:
    assert (await get_json(client, "/api"))["versions"] == ["v1"]
    assert (await get_json(client, "/apis"))["groups"] == []
    resources = {r["name"]: r for r in (await get_json(client, "/api/v1"))["resources"]}
    assert resources["pods"] == {
        "name": "pods",
        "singularName": "pod",
        "namespaced": True,
        "kind": "Pod",
        "verbs": ["get", "list", "watch"],
        "shortNames": ["po"],
        "categories": ["all"],
    }
    assert resources["pods/status"]["verbs"] == ["get"]
    assert resources["events"]["shortNames"] == ["ev"]
    # Nothing is promised that the agent does not answer.
    assert "namespaces" not in resources
    assert all(verb in ("get", "list", "watch") for r in resources.values() for verb in r["verbs"])
    version = await get_json(client, "/version")
    assert version["gitVersion"].startswith("v")
    assert version["platform"].count("/") == 1


async def test_aggregated_discovery_is_answered_as_plain_json(client: Client) -> None:
    accept = (
        "application/json;g=apidiscovery.k8s.io;v=v2;as=APIGroupDiscoveryList,"
        "application/json;g=apidiscovery.k8s.io;v=v2beta1;as=APIGroupDiscoveryList,"
        "application/json"
    )
    for path in ("/api", "/apis"):
        resp = await client.get(path, headers={"Accept": accept})
        # Plain JSON tells kubectl to fall back to the legacy documents.
        assert resp.headers["Content-Type"] == "application/json"


async def test_openapi_is_not_found(client: Client) -> None:
    for path in ("/openapi/v2", "/openapi/v3"):
        resp = await client.get(path)
        assert resp.status == 404
        assert (await resp.json())["reason"] == "NotFound"


async def test_lists_across_and_within_namespaces(client: Client, pods: dict[str, Pod]) -> None:
    body = await get_json(client, "/api/v1/pods")
    assert body["kind"] == "PodList"
    assert names(body) == ["db-node", "web-node", "sys-node"]
    assert int(body["metadata"]["resourceVersion"]) >= 4
    ns = await get_json(client, "/api/v1/namespaces/kube-system/pods")
    assert names(ns) == ["sys-node"]
    assert (await get_json(client, "/api/v1/namespaces/none/pods"))["items"] == []
    # /pods keeps the kubelet's shape.
    legacy = await get_json(client, "/pods")
    assert legacy["metadata"] == {}
    assert "errors" in legacy


async def test_creation_timestamp_is_when_the_pod_was_seen(
    client: Client, pods: dict[str, Pod]
) -> None:
    got = await get_json(client, "/api/v1/namespaces/default/pods/web-node")
    assert got["metadata"]["creationTimestamp"] == "2026-01-01T12:00:00Z"


@pytest.mark.parametrize(
    ("params", "expected"),
    [
        ({"labelSelector": "app=web"}, ["web-node", "sys-node"]),
        ({"labelSelector": "app in (db)"}, ["db-node"]),
        ({"labelSelector": "!app"}, []),
        ({"fieldSelector": "status.phase=Running"}, ["web-node"]),
        ({"fieldSelector": "status.phase!=Running"}, ["db-node", "sys-node"]),
        ({"fieldSelector": "metadata.name=db-node,metadata.namespace=default"}, ["db-node"]),
        ({"fieldSelector": "spec.nodeName=node"}, ["db-node", "web-node", "sys-node"]),
        ({"fieldSelector": "spec.hostNetwork=false"}, ["db-node", "web-node", "sys-node"]),
        ({"fieldSelector": "status.podIP=10.0.0.9"}, ["web-node"]),
        ({"fieldSelector": "spec.restartPolicy=Always", "labelSelector": "app=db"}, ["db-node"]),
        ({"limit": "1"}, ["db-node", "web-node", "sys-node"]),
    ],
    ids=lambda v: ",".join(f"{k}={x}" for k, x in v.items()) if isinstance(v, dict) else "",
)
async def test_selectors_pick_pods(
    client: Client, pods: dict[str, Pod], params: dict[str, str], expected: list[str]
) -> None:
    assert names(await get_json(client, "/api/v1/pods", params=params)) == expected


@pytest.mark.parametrize(
    ("params", "words"),
    [
        ({"fieldSelector": "spec.image=x"}, "field label not supported: 'spec.image'"),
        ({"labelSelector": "a in b"}, "unable to parse requirement"),
        ({"resourceVersion": "abc"}, "resourceVersion: invalid value 'abc'"),
        ({"limit": "-1"}, "limit: invalid value '-1'"),
        ({"continue": "token"}, "continue:"),
        ({"timeoutSeconds": "nan"}, "timeoutSeconds: invalid value"),
    ],
    ids=lambda v: next(iter(v)) if isinstance(v, dict) else "",
)
async def test_bad_parameters_are_400_naming_them(
    client: Client, params: dict[str, str], words: str
) -> None:
    resp = await client.get("/api/v1/pods", params=params)
    assert resp.status == 400
    body = await resp.json()
    assert (body["kind"], body["reason"]) == ("Status", "BadRequest")
    assert words in body["message"]


async def test_get_by_name_and_not_found_in_the_api_servers_words(
    client: Client, pods: dict[str, Pod]
) -> None:
    got = await get_json(client, "/api/v1/namespaces/default/pods/web-node")
    assert (got["kind"], got["status"]["phase"]) == ("Pod", "Running")
    assert (await get_json(client, "/api/v1/namespaces/default/pods/web-node/status"))["metadata"][
        "uid"
    ] == pods["web"].uid
    resp = await client.get("/api/v1/namespaces/kube-system/pods/web-node")
    assert resp.status == 404
    body = await resp.json()
    assert (body["reason"], body["message"], body["code"]) == (
        "NotFound",
        'pods "web-node" not found',
        404,
    )


@pytest.mark.parametrize("method", ["DELETE", "POST", "PUT", "PATCH"])
async def test_writes_are_405_method_not_allowed(
    client: Client, pods: dict[str, Pod], method: str
) -> None:
    for path in ("/api/v1/namespaces/default/pods", "/api/v1/namespaces/default/pods/web-node"):
        resp = await client.request(method, path, data=b"{}")
        assert resp.status == 405
        body = await resp.json()
        assert (body["kind"], body["reason"], body["code"]) == ("Status", "MethodNotAllowed", 405)
    # Reads still answer.
    assert (await client.head("/api/v1/pods")).status == 200


async def test_table_has_kubectls_columns(client: Client, pods: dict[str, Pod]) -> None:
    body = await get_json(client, "/api/v1/pods", headers={"Accept": TABLE})
    assert body["kind"] == "Table"
    assert [c["name"] for c in body["columnDefinitions"]] == [
        "Name",
        "Ready",
        "Status",
        "Restarts",
        "Age",
        "IP",
        "Node",
        "Nominated Node",
        "Readiness Gates",
    ]
    assert [c["priority"] for c in body["columnDefinitions"]] == [0] * 5 + [1] * 4
    web = body["rows"][1]
    assert web["cells"][:3] == ["web-node", "0/1", "Running"]
    assert web["cells"][5:7] == ["10.0.0.9", "node"]
    assert web["object"]["kind"] == "PartialObjectMetadata"
    assert body["metadata"]["resourceVersion"]
    one = await get_json(
        client,
        "/api/v1/namespaces/default/pods/db-node",
        headers={"Accept": TABLE},
        params={"includeObject": "Object"},
    )
    assert [r["cells"][0] for r in one["rows"]] == ["db-node"]
    assert one["rows"][0]["object"]["kind"] == "Pod"
    # Plain JSON first in Accept wins.
    plain = await get_json(client, "/api/v1/pods", headers={"Accept": "application/json," + TABLE})
    assert plain["kind"] == "PodList"


async def test_a_pod_being_deleted_shows_its_deletion_until_untracked(
    client: Client, status: StatusManager, pods: dict[str, Pod]
) -> None:
    uid = pods["web"].uid
    status.begin_deletion(uid, now=1_800_000_000.0, grace_seconds=30)
    got = await get_json(client, "/api/v1/namespaces/default/pods/web-node")
    assert got["metadata"]["deletionTimestamp"] == "2027-01-15T08:00:30Z"
    assert got["metadata"]["deletionGracePeriodSeconds"] == 30
    table = await get_json(client, "/api/v1/pods", headers={"Accept": TABLE})
    assert table["rows"][1]["cells"][2] == "Terminating"
    # The kubelet's /pods drops it at once, as before.
    assert "web-node" not in names(await get_json(client, "/pods"))
    status.untrack(uid)
    assert "web-node" not in names(await get_json(client, "/api/v1/pods"))


async def _events(resp: ClientResponse, count: int) -> list[dict[str, Any]]:
    out = []
    for _ in range(count):
        line = await asyncio.wait_for(resp.content.readline(), 5)
        out.append(json.loads(line))
    return out


def brief(events: list[dict[str, Any]]) -> list[tuple[str, str]]:
    return [(e["type"], e["object"]["metadata"].get("name", "")) for e in events]


async def test_watch_from_now_lists_first_then_streams(
    client: Client, status: StatusManager, pods: dict[str, Pod]
) -> None:
    async with client.get(
        "/api/v1/namespaces/default/pods", params={"watch": "1", "resourceVersion": "0"}
    ) as resp:
        assert brief(await _events(resp, 2)) == [("ADDED", "db-node"), ("ADDED", "web-node")]
        status.set(pods["sys"].uid, running())  # another namespace: not seen
        status.set(pods["db"].uid, running())
        [event] = await _events(resp, 1)
        assert brief([event]) == [("MODIFIED", "db-node")]
        assert event["object"]["metadata"]["resourceVersion"] == str(status.resource_version)


async def test_deprecated_watch_paths_watch(
    client: Client, status: StatusManager, pods: dict[str, Pod]
) -> None:
    async with client.get("/api/v1/watch/namespaces/kube-system/pods") as resp:
        assert brief(await _events(resp, 1)) == [("ADDED", "sys-node")]
    async with client.get("/api/v1/watch/pods", params={"labelSelector": "app=db"}) as resp:
        assert brief(await _events(resp, 1)) == [("ADDED", "db-node")]


async def test_watch_resumes_after_a_version(
    client: Client, status: StatusManager, pods: dict[str, Pod]
) -> None:
    seen = status.resource_version
    status.set(pods["db"].uid, running())
    status.untrack(pods["web"].uid)
    async with client.get(
        "/api/v1/pods", params={"watch": "true", "resourceVersion": str(seen)}
    ) as resp:
        events = await _events(resp, 2)
    assert brief(events) == [("MODIFIED", "db-node"), ("DELETED", "web-node")]
    versions = [int(e["object"]["metadata"]["resourceVersion"]) for e in events]
    assert versions == sorted(versions)
    assert versions[-1] == status.resource_version


@pytest.mark.parametrize("version", ["1", "999999"], ids=["compacted", "never-given"])
async def test_watch_from_an_unknown_version_is_410_expired(version: str) -> None:
    status = StatusManager(history=2, first_version=100)
    p = pod("web")
    status.track(p)
    for phase in (PodPhase.RUNNING, PodPhase.SUCCEEDED, PodPhase.FAILED):
        status.set(p.uid, PodStatus(phase=phase))
    async for client in _client(status):
        async with client.get(
            "/api/v1/pods", params={"watch": "1", "resourceVersion": version}
        ) as resp:
            assert resp.status == 200
            [event] = await _events(resp, 1)
            assert await resp.content.read() == b""  # and the stream ends
        assert event["type"] == "ERROR"
        assert (event["object"]["code"], event["object"]["reason"]) == (410, "Expired")
        assert event["object"]["message"].startswith(f"too old resource version: {version}")
        # The versions still held resume.
        oldest = status.oldest_resumable
        async with client.get(
            "/api/v1/pods", params={"watch": "1", "resourceVersion": str(oldest)}
        ) as resp:
            assert [e["type"] for e in await _events(resp, 2)] == ["MODIFIED", "MODIFIED"]


async def test_selector_watch_sees_pods_enter_and_leave(
    client: Client, status: StatusManager, pods: dict[str, Pod]
) -> None:
    async with client.get(
        "/api/v1/pods", params={"watch": "1", "fieldSelector": "status.phase=Running"}
    ) as resp:
        assert brief(await _events(resp, 1)) == [("ADDED", "web-node")]
        status.set(pods["db"].uid, running())
        status.set(pods["web"].uid, PodStatus(phase=PodPhase.SUCCEEDED))
        events = await _events(resp, 2)
        assert brief(events) == [("ADDED", "db-node"), ("DELETED", "web-node")]
        # Leaving: the last content it matched with, at the version of its leaving.
        left = events[1]["object"]
        assert left["status"]["phase"] == "Running"
        assert left["metadata"]["resourceVersion"] == str(status.resource_version)


async def test_name_watch_as_kubectl_get_pod_w(
    client: Client, status: StatusManager, pods: dict[str, Pod]
) -> None:
    async with client.get(
        "/api/v1/namespaces/default/pods",
        params={"watch": "1", "fieldSelector": "metadata.name=db-node"},
        headers={"Accept": TABLE},
    ) as resp:
        [added] = await _events(resp, 1)
        status.set(pods["web"].uid, PodStatus(phase=PodPhase.FAILED))
        status.set(pods["db"].uid, running())
        status.begin_deletion(pods["db"].uid, now=0.0, grace_seconds=0)
        status.untrack(pods["db"].uid)
        events = await _events(resp, 3)
    assert [e["type"] for e in [added, *events]] == ["ADDED", "MODIFIED", "MODIFIED", "DELETED"]
    for event in (added, *events):
        assert event["object"]["kind"] == "Table"
        assert len(event["object"]["columnDefinitions"]) == 9
        [row] = event["object"]["rows"]
        assert row["cells"][0] == "db-node"
    assert [e["object"]["rows"][0]["cells"][2] for e in events] == [
        "Running",
        "Terminating",
        "Terminating",
    ]


async def test_bookmarks_carry_the_version_seen(
    status: StatusManager, pods: dict[str, Pod]
) -> None:
    async for client in _client(status, ServerLimits(bookmark_interval=0.05)):
        async with client.get(
            "/api/v1/pods",
            params={"watch": "1", "allowWatchBookmarks": "true", "labelSelector": "app=db"},
        ) as resp:
            assert brief(await _events(resp, 1)) == [("ADDED", "db-node")]
            status.set(pods["web"].uid, PodStatus(phase=PodPhase.FAILED))  # filtered out
            [mark] = await _events(resp, 1)
        assert mark == {
            "type": "BOOKMARK",
            "object": {
                "kind": "Pod",
                "apiVersion": "v1",
                "metadata": {"resourceVersion": str(status.resource_version)},
            },
        }
        # Not asked for, none is sent: the stream ends at its timeout with nothing.
        async with client.get(
            "/api/v1/pods",
            params={"watch": "1", "timeoutSeconds": "1", "labelSelector": "app=none"},
        ) as resp:
            assert await asyncio.wait_for(resp.content.read(), 5) == b""


async def test_watch_list_ends_its_initial_events_with_a_bookmark(
    client: Client, status: StatusManager, pods: dict[str, Pod]
) -> None:
    params = {
        "watch": "1",
        "sendInitialEvents": "true",
        "allowWatchBookmarks": "true",
        "resourceVersionMatch": "NotOlderThan",
        "resourceVersion": "1",
        "labelSelector": "app=web",
    }
    async with client.get("/api/v1/pods", params=params) as resp:
        events = await _events(resp, 3)
    assert brief(events) == [("ADDED", "web-node"), ("ADDED", "sys-node"), ("BOOKMARK", "")]
    assert events[2]["object"]["metadata"] == {
        "resourceVersion": str(status.resource_version),
        "annotations": {"k8s.io/initial-events-end": "true"},
    }
    resp = await client.get("/api/v1/pods", params={"watch": "1", "sendInitialEvents": "true"})
    assert resp.status == 400
    assert "allowWatchBookmarks" in (await resp.json())["message"]


async def test_legacy_pods_watch_drops_a_pod_when_deletion_begins(
    client: Client, status: StatusManager, pods: dict[str, Pod]
) -> None:
    async with client.get("/pods", params={"watch": "1"}) as resp:
        assert len(await _events(resp, 3)) == 3
        status.begin_deletion(pods["db"].uid, now=0.0, grace_seconds=1)
        status.untrack(pods["db"].uid)  # already gone from this view: nothing more
        status.set(pods["web"].uid, PodStatus(phase=PodPhase.FAILED))
        events = await _events(resp, 2)
    assert brief(events) == [("DELETED", "db-node"), ("MODIFIED", "web-node")]
    assert "deletionTimestamp" not in events[0]["object"]["metadata"]


def test_history_is_bounded_and_resumable_within_it() -> None:
    status = StatusManager(history=3, first_version=10)
    p = pod("web")
    status.track(p)  # 10
    for phase in (PodPhase.RUNNING, PodPhase.SUCCEEDED, PodPhase.FAILED):  # 11, 12, 13
        status.set(p.uid, PodStatus(phase=phase))
    assert status.oldest_resumable == 10
    assert status.changes_since(9) is None
    since = status.changes_since(10)
    assert since is not None
    assert [c.resource_version for c in since] == [11, 12, 13]
    assert status.changes_since(13) == []
    assert status.changes_since(14) is None
    assert since[0].previous is not None
    assert since[0].previous.status.phase is PodPhase.PENDING


def test_restored_pod_is_no_longer_deleted() -> None:
    status = StatusManager(first_version=1)
    p = pod("web")
    status.track(p)
    status.begin_deletion(p.uid, now=5.0, grace_seconds=3)
    deletion = status.deletion(p.uid)
    assert deletion is not None
    assert deletion.timestamp == 8.0
    status.begin_deletion(p.uid, now=50.0, grace_seconds=3)  # already: unchanged
    assert status.deletion(p.uid) == deletion
    status.track(p)
    assert status.deletion(p.uid) is None
    obj = status.pod_api_object(p.uid)
    assert obj is not None
    assert "deletionTimestamp" not in obj["metadata"]


def test_a_whole_list_is_built_once_per_version(
    pods: dict[str, Pod], status: StatusManager
) -> None:
    query = PodQuery(filter=PodFilter())
    cache = ListCache()
    first = list_body(status, query, cache)
    assert list_body(status, query, cache) is first
    status.set(pods["db"].uid, running())
    second = list_body(status, query, cache)
    assert second is not first
    assert json.loads(second)["metadata"]["resourceVersion"] == str(status.resource_version)
    # Filtered lists are never taken for the whole one.
    only = PodQuery(filter=PodFilter(namespace="kube-system"))
    assert names(json.loads(list_body(status, only, cache))) == ["sys-node"]
    assert list_body(status, query, cache) is second
