"""The status endpoint's handlers over real HTTP on loopback (no Docker)."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Callable
from typing import Any

import pytest
from aiohttp import ClientResponse, web
from aiohttp.test_utils import TestClient, TestServer

from minikubelet.config.merge import SourceError
from minikubelet.health import Health
from minikubelet.metrics import Metrics, ProbeLabels
from minikubelet.server.app import ServerDeps, ServerLimits, make_app
from minikubelet.server.healthz import HealthChecks
from minikubelet.status.manager import StatusManager
from minikubelet.status.types import PodPhase, PodStatus
from tests.unit.helpers import make_pod


async def wait_for(predicate: Callable[[], bool], *, what: str, timeout: float = 5.0) -> None:
    """Until ``predicate()`` holds, checking on every turn of the loop; fail after ``timeout``."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while not predicate():
        if loop.time() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what}")
        await asyncio.sleep(0.005)


class Engine:
    def __init__(self) -> None:
        self.up = True

    async def ping(self, timeout: float = 2.0) -> bool:
        return self.up

    def is_stale(self) -> bool:
        return not self.up


async def _client(
    deps: ServerDeps, limits: ServerLimits | None = None
) -> AsyncIterator[TestClient[web.Request, web.Application]]:
    client: TestClient[web.Request, web.Application] = TestClient(
        TestServer(make_app(deps, limits=limits), host="127.0.0.1")
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
    # As the kubelet, always verbose on failure.
    assert (await resp.text()).splitlines()[-2:] == [
        "[-]docker failed: the engine does not answer",
        "healthz check failed",
    ]


def _health(**checks: str | None) -> Health:
    health = Health()
    for name, error in checks.items():

        async def check(error: str | None = error) -> str | None:
            return error

        health.add(name, check)
    return health


async def test_healthz_verbose_in_the_kubelets_words(engine: Engine, status: StatusManager) -> None:
    health = _health(source=None, events="stream closed\nby the engine")
    deps = ServerDeps(status=status, engine=engine, source_errors=list, health=health)
    async for client in _client(deps):
        resp = await client.get("/healthz?verbose")
        assert resp.status == 503
        assert resp.headers["Content-Type"].startswith("text/plain")
        assert (await resp.text()).splitlines() == [
            "[+]ping ok",
            "[+]docker ok",
            "[+]source ok",
            "[-]events failed: stream closed by the engine",
            "healthz check failed",
        ]
        resp = await client.get("/healthz", params={"verbose": "", "exclude": "events"})
        assert resp.status == 200
        assert (await resp.text()).splitlines() == [
            "[+]events excluded: ok",
            "[+]ping ok",
            "[+]docker ok",
            "[+]source ok",
            "healthz check passed",
        ]
        resp = await client.get("/healthz", params=[("exclude", "events"), ("exclude", "nope")])
        assert resp.status == 200
        assert await resp.text() == "ok"


async def test_healthz_runs_one_check_by_name(engine: Engine, status: StatusManager) -> None:
    deps = ServerDeps(
        status=status, engine=engine, source_errors=list, health=_health(events="closed")
    )
    async for client in _client(deps):
        resp = await client.get("/healthz/docker")
        assert (resp.status, await resp.text()) == (200, "ok")
        assert (await client.get("/healthz/ping")).status == 200
        resp = await client.get("/healthz/events")
        assert (resp.status, await resp.text()) == (503, "[-]events failed: closed\n")
        engine.up = False
        assert (await client.get("/healthz/docker")).status == 503
        resp = await client.get("/healthz/nope")
        assert resp.status == 404
        body = await resp.json()
        assert (body["kind"], body["reason"], body["code"]) == ("Status", "NotFound", 404)


async def test_a_registered_docker_check_replaces_the_engine_ping(
    engine: Engine, status: StatusManager
) -> None:
    engine.up = False
    deps = ServerDeps(status=status, engine=engine, source_errors=list, health=_health(docker=None))
    async for client in _client(deps):
        resp = await client.get("/healthz?verbose")
        assert resp.status == 200
        assert (await resp.text()).splitlines() == [
            "[+]ping ok",
            "[+]docker ok",
            "healthz check passed",
        ]


async def test_a_hanging_check_fails_in_time(engine: Engine, status: StatusManager) -> None:
    health = Health()
    never = asyncio.Event()

    async def hangs() -> str | None:
        await never.wait()
        return None

    health.add("stuck", hangs)
    deps = ServerDeps(status=status, engine=engine, source_errors=list, health=health)
    async for client in _client(deps, ServerLimits(health_timeout=0.1)):
        resp = await asyncio.wait_for(client.get("/healthz?verbose"), 5)
        assert resp.status == 503
        assert "[-]stuck failed: no answer within 0.1s" in await resp.text()


async def test_concurrent_health_runs_share_one_engine_ping() -> None:
    class SlowEngine(Engine):
        def __init__(self) -> None:
            super().__init__()
            self.pings = 0
            self.release = asyncio.Event()

        async def ping(self, timeout: float = 2.0) -> bool:
            self.pings += 1
            await self.release.wait()
            return True

    engine = SlowEngine()
    checks = HealthChecks(engine, None, timeout=5)
    # All 20 runs start before the ping can finish: they must join the one in flight, or a
    # flood of /healthz would queue pings on the Docker thread pool pod workers need.
    runs = asyncio.gather(*(checks.run(["docker"]) for _ in range(20)))
    await wait_for(lambda: engine.pings > 0, what="the engine ping")
    engine.release.set()
    results = await asyncio.wait_for(runs, 5)
    assert results == [[("docker", None)]] * 20
    assert engine.pings == 1
    await asyncio.wait_for(checks.run(["docker"]), 5)
    assert engine.pings == 2  # the next request asks again


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
    resp = await client.get("/runningpods/")
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
    client: TestClient[web.Request, web.Application], status: StatusManager
) -> None:
    resp = await client.get("/pods", params={"watch": "1", "timeoutSeconds": "1"})
    assert resp.status == 200
    assert await asyncio.wait_for(resp.read(), 5) == b""
    assert status.subscriber_count == 0


async def test_timeout_seconds_must_be_whole_seconds(
    client: TestClient[web.Request, web.Application],
) -> None:
    # The API server parses it with strconv.ParseInt: no fractions, no units.
    bad = await client.get("/pods", params={"watch": "1", "timeoutSeconds": "0.2"})
    assert bad.status == 400
    body = await bad.json()
    assert (body["kind"], body["reason"], body["code"]) == ("Status", "BadRequest", 400)
    assert body["message"].startswith("timeoutSeconds: invalid value '0.2'")


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
    assert subscription.overrun
    # Its backlog is dropped at once: the subscriber relists anyway.
    assert subscription.pending() == []
    assert manager.subscriber_count == 0


async def test_an_overrun_subscription_reports_its_end() -> None:
    manager = StatusManager()
    subscription = manager.subscribe(max_lag=2)
    for i in range(3):
        manager.track(make_pod(("a",), name=f"p{i}"))
    assert await asyncio.wait_for(subscription.next(), 1) is None
    assert await asyncio.wait_for(subscription.next(), 1) is None


def test_a_closed_subscription_keeps_what_was_queued() -> None:
    manager = StatusManager()
    subscription = manager.subscribe(max_lag=10)
    pods = [make_pod(("a",), name=f"p{i}") for i in range(3)]
    for pod in pods:
        manager.track(pod)
    subscription.close()
    assert not subscription.overrun
    assert [c.uid for c in subscription.pending(2)] == [p.uid for p in pods[:2]]
    assert [c.uid for c in subscription.pending()] == [pods[2].uid]


async def test_metrics_in_prometheus_text_format(engine: Engine, status: StatusManager) -> None:
    metrics = Metrics()
    labels = ProbeLabels("readiness", "c", "web-n1", "default", "u1")
    metrics.probe_ran(labels, "successful", 0.002, 0.0004)
    deps = ServerDeps(status=status, engine=engine, source_errors=list, metrics=metrics.registry)
    async for client in _client(deps):
        resp = await client.get("/metrics")
        assert resp.status == 200
        assert resp.headers["Content-Type"].startswith("text/plain")
        text = await resp.text()
        assert (
            'prober_probe_total{container="c",namespace="default",pod="web-n1",pod_uid="u1",'
            'probe_type="readiness",result="successful"} 1.0'
        ) in text
        assert 'minikubelet_probe_lag_seconds_bucket{le="0.001",probe_type="readiness"} 1.0' in text
        # A probe that is gone takes its series with it.
        metrics.probe_removed(labels)
        text = await (await client.get("/metrics")).text()
        assert 'pod_uid="u1"' not in text
