"""The status endpoint's handlers over real HTTP on loopback (no Docker)."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from typing import Any

import pytest
from aiohttp import ClientResponse, web
from aiohttp.test_utils import TestClient, TestServer

from minikubelet.config.merge import SourceError
from minikubelet.metrics import Metrics
from minikubelet.server.app import ServerDeps, make_app
from minikubelet.status.manager import StatusManager
from minikubelet.status.types import PodPhase, PodStatus
from tests.unit.helpers import make_pod


class Engine:
    def __init__(self) -> None:
        self.up = True

    async def ping(self, timeout: float = 2.0) -> bool:
        return self.up

    def is_stale(self) -> bool:
        return not self.up


async def _client(deps: ServerDeps) -> AsyncIterator[TestClient[web.Request, web.Application]]:
    client: TestClient[web.Request, web.Application] = TestClient(
        TestServer(make_app(deps), host="127.0.0.1")
    )
    await client.start_server()
    try:
        yield client
    finally:
        await client.close()


@pytest.fixture
def engine() -> Engine:
    return Engine()


@pytest.fixture
def status() -> StatusManager:
    return StatusManager()


@pytest.fixture
async def client(
    engine: Engine, status: StatusManager
) -> AsyncIterator[TestClient[web.Request, web.Application]]:
    errors = [SourceError("file", "/m/bad.yaml", "spec.containers[0].image", "required value")]
    async for c in _client(ServerDeps(status=status, engine=engine, source_errors=lambda: errors)):
        yield c


async def test_healthz_follows_the_engine(
    client: TestClient[web.Request, web.Application], engine: Engine
) -> None:
    resp = await client.get("/healthz")
    assert resp.status == 200
    assert await resp.text() == "ok"
    engine.up = False
    resp = await client.get("/healthz")
    assert resp.status == 503


async def test_pods_are_marked_stale_while_the_engine_is_away(
    client: TestClient[web.Request, web.Application], engine: Engine, status: StatusManager
) -> None:
    status.track(make_pod(("a",)))
    fresh = await client.get("/pods")
    assert "Warning" not in fresh.headers
    assert "stale" not in await fresh.json()
    engine.up = False
    resp = await client.get("/pods")
    assert resp.status == 200
    body = await resp.json()
    assert body["stale"] is True
    assert len(body["items"]) == 1  # the last known statuses are still served
    assert resp.headers["Warning"].startswith("299 - ")


async def test_empty_pod_list_is_kubelet_shaped(
    client: TestClient[web.Request, web.Application],
) -> None:
    resp = await client.get("/pods")
    assert resp.status == 200
    assert resp.content_type == "application/json"
    body = await resp.json()
    assert body["kind"] == "PodList"
    assert body["apiVersion"] == "v1"
    assert body["items"] is None
    assert body["errors"] == [
        {
            "source": "file",
            "file": "/m/bad.yaml",
            "field": "spec.containers[0].image",
            "message": "required value",
        }
    ]


async def test_pods_lists_tracked_pods_with_status(
    client: TestClient[web.Request, web.Application], status: StatusManager
) -> None:
    pod = make_pod(("a",))
    status.track(pod)
    status.set(pod.uid, PodStatus(phase=PodPhase.RUNNING, pod_ip="10.0.0.9"))
    body = await (await client.get("/pods")).json()
    (item,) = body["items"]
    assert item["metadata"]["name"] == pod.name
    assert item["metadata"]["uid"] == pod.uid
    assert item["spec"]["containers"][0]["name"] == "a"
    assert item["status"]["phase"] == "Running"
    assert item["status"]["podIP"] == "10.0.0.9"
    status.untrack(pod.uid)
    assert (await (await client.get("/pods")).json())["items"] is None


async def test_debug_endpoints_are_refused(
    client: TestClient[web.Request, web.Application],
) -> None:
    resp = await client.get("/containerLogs/default/p/c")
    assert resp.status == 405
    assert await resp.text() == "Debug endpoints are disabled."
    resp = await client.post("/exec/default/p/c")
    assert resp.status == 405


async def test_token_required_when_configured(engine: Engine, status: StatusManager) -> None:
    deps = ServerDeps(status=status, engine=engine, source_errors=list, auth_token="s3cret")
    async for client in _client(deps):
        assert (await client.get("/pods")).status == 401
        assert (await client.get("/pods", headers={"Authorization": "Bearer wrong"})).status == 401
        assert (await client.get("/pods", headers={"Authorization": "Bearer s3cret"})).status == 200


def test_status_manager_versions_and_cache() -> None:
    manager = StatusManager()
    pod = make_pod(("a",))
    queue = manager.subscribe()
    manager.track(pod)
    v1 = manager.resource_version
    first = manager.pod_json(pod.uid)
    assert manager.pod_json(pod.uid) is first  # serialised once per version
    assert not manager.set(pod.uid, manager.get(pod.uid))  # type: ignore[arg-type]
    assert manager.set(pod.uid, PodStatus(phase=PodPhase.RUNNING))
    assert manager.resource_version > v1
    assert manager.pod_json(pod.uid) != first
    manager.untrack(pod.uid)
    assert [c.type.value for c in queue.pending()] == ["ADDED", "MODIFIED", "DELETED"]


async def _next_event(resp: ClientResponse) -> dict[str, Any]:
    line = await asyncio.wait_for(resp.content.readline(), 5)
    event: dict[str, Any] = json.loads(line)
    return event


async def test_watch_lists_then_streams_changes(
    client: TestClient[web.Request, web.Application], status: StatusManager
) -> None:
    first, second = make_pod(("a",), name="first"), make_pod(("a",), name="second")
    status.track(first)
    resp = await client.get("/pods", params={"watch": "true"})
    assert resp.status == 200
    added = await _next_event(resp)
    assert added["type"] == "ADDED"
    assert added["object"]["metadata"]["uid"] == first.uid
    assert added["object"]["status"]["phase"] == "Pending"

    status.track(second)
    status.set(first.uid, PodStatus(phase=PodPhase.RUNNING))
    status.untrack(second.uid)
    events = [await _next_event(resp) for _ in range(3)]
    assert [(e["type"], e["object"]["metadata"]["uid"]) for e in events] == [
        ("ADDED", second.uid),
        ("MODIFIED", first.uid),
        ("DELETED", second.uid),
    ]
    assert events[1]["object"]["status"]["phase"] == "Running"
    versions = [int(e["object"]["metadata"]["resourceVersion"]) for e in [added, *events]]
    assert versions == sorted(versions)
    resp.close()


async def test_watch_ends_after_timeout_seconds(
    client: TestClient[web.Request, web.Application],
) -> None:
    resp = await client.get("/pods", params={"watch": "1", "timeoutSeconds": "0.2"})
    assert resp.status == 200
    assert await asyncio.wait_for(resp.read(), 5) == b""
    bad = await client.get("/pods", params={"watch": "1", "timeoutSeconds": "soon"})
    assert bad.status == 400


async def test_watch_ends_when_subscriptions_close(
    client: TestClient[web.Request, web.Application], status: StatusManager
) -> None:
    resp = await client.get("/pods", params={"watch": "true"})
    assert resp.status == 200
    status.close_subscriptions()  # what the server's shutdown does
    assert await asyncio.wait_for(resp.read(), 5) == b""


def test_an_overrun_subscriber_is_cut_off(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("minikubelet.status.manager.SUBSCRIBER_QUEUE", 3)
    manager = StatusManager()
    subscription = manager.subscribe()
    pods = [make_pod(("a",), name=f"p{i}") for i in range(5)]
    for pod in pods:
        manager.track(pod)
    assert subscription.closed
    assert [c.uid for c in subscription.pending()] == [p.uid for p in pods[:3]]


async def test_metrics_in_prometheus_text_format(engine: Engine, status: StatusManager) -> None:
    metrics = Metrics()
    metrics.probe_ran("readiness", "successful", 0.002, 0.0004)
    deps = ServerDeps(status=status, engine=engine, source_errors=list, metrics=metrics.registry)
    async for client in _client(deps):
        resp = await client.get("/metrics")
        assert resp.status == 200
        assert resp.headers["Content-Type"].startswith("text/plain")
        text = await resp.text()
        assert 'prober_probe_total{probe_type="readiness",result="successful"} 1.0' in text
        assert 'minikubelet_probe_lag_seconds_bucket{le="0.001",probe_type="readiness"} 1.0' in text
