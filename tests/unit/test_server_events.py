"""``/api/v1/events`` over real HTTP on loopback: the EventList shape, the namespaced path,
``fieldSelector`` as the API server parses it, and the same guards as ``/pods``."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer

from minikubelet.events import EventRecorder, EventType, ObjectRef
from minikubelet.server.app import ServerDeps, make_app
from minikubelet.status.manager import StatusManager

Client = TestClient[web.Request, web.Application]

T0 = 1_700_000_000.0  # 2023-11-14T22:13:20Z
WEB = ObjectRef(
    kind="Pod",
    name="web-n1",
    namespace="default",
    uid="u-web",
    field_path="spec.containers{app}",
)
JOB = ObjectRef(kind="Pod", name="job-n1", namespace="batch", uid="u-job")
NODE = ObjectRef(kind="Node", name="n1", uid="n1")


class Engine:
    async def ping(self, timeout: float = 2.0) -> bool:
        return True

    def is_stale(self) -> bool:
        return False


class Clock:
    def __init__(self) -> None:
        self.now = T0

    def __call__(self) -> float:
        return self.now


def make_recorder() -> tuple[EventRecorder, Clock]:
    clock = Clock()
    return EventRecorder(host="n1", clock=clock), clock


def deps(recorder: EventRecorder | None, *, token: str = "") -> ServerDeps:
    return ServerDeps(
        status=StatusManager(),
        engine=Engine(),
        source_errors=list,
        auth_token=token,
        recorder=recorder,
    )


async def serve(server_deps: ServerDeps) -> AsyncIterator[Client]:
    client: Client = TestClient(TestServer(make_app(server_deps), host="127.0.0.1"))
    await client.start_server()
    try:
        yield client
    finally:
        await client.close()


@pytest.fixture
def recorder() -> EventRecorder:
    recorder, clock = make_recorder()
    recorder.record(WEB, EventType.NORMAL, "Started", "Started container app")
    clock.now += 5
    recorder.record(WEB, EventType.WARNING, "BackOff", "Back-off restarting failed container")
    recorder.record(JOB, EventType.NORMAL, "Pulled", "Container image already present")
    recorder.record(NODE, EventType.NORMAL, "Starting", "Starting kubelet.")
    return recorder


@pytest.fixture
async def client(recorder: EventRecorder) -> AsyncIterator[Client]:
    async for c in serve(deps(recorder)):
        yield c


async def get_list(client: Client, path: str, **query: str) -> dict[str, Any]:
    resp = await client.get(path, params=query)
    assert resp.status == 200, await resp.text()
    assert resp.content_type == "application/json"
    body: dict[str, Any] = await resp.json()
    return body


def reasons(event_list: dict[str, Any]) -> list[str]:
    return [item["reason"] for item in event_list["items"]]


async def test_an_empty_recorder_lists_no_items() -> None:
    recorder, _ = make_recorder()
    async for client in serve(deps(recorder)):
        assert await get_list(client, "/api/v1/events") == {
            "kind": "EventList",
            "apiVersion": "v1",
            "metadata": {"resourceVersion": "0"},
            "items": [],
        }


async def test_each_event_is_a_v1_event_in_the_kubelets_shape(client: Client) -> None:
    event_list = await get_list(client, "/api/v1/events")
    assert event_list["kind"] == "EventList"
    assert event_list["apiVersion"] == "v1"
    assert event_list["metadata"] == {"resourceVersion": "4"}
    assert reasons(event_list) == ["Started", "BackOff", "Pulled", "Starting"]
    started = event_list["items"][0]
    assert started == {
        "kind": "Event",
        "apiVersion": "v1",
        "metadata": {
            "name": "web-n1.0000000000000001",
            "namespace": "default",
            "resourceVersion": "1",
            "creationTimestamp": "2023-11-14T22:13:20Z",
        },
        "involvedObject": {
            "kind": "Pod",
            "name": "web-n1",
            "namespace": "default",
            "uid": "u-web",
            "fieldPath": "spec.containers{app}",
            "apiVersion": "v1",
        },
        "reason": "Started",
        "message": "Started container app",
        "source": {"component": "kubelet", "host": "n1"},
        "firstTimestamp": "2023-11-14T22:13:20Z",
        "lastTimestamp": "2023-11-14T22:13:20Z",
        "count": 1,
        "type": "Normal",
        "reportingComponent": "kubelet",
        "reportingInstance": "n1",
    }
    # A node is not namespaced; its events live in "default", as the kubelet's do.
    node = event_list["items"][3]
    assert "namespace" not in node["involvedObject"]
    assert node["metadata"]["namespace"] == "default"


async def test_a_repeated_event_is_one_item_with_its_count() -> None:
    recorder, clock = make_recorder()
    for _ in range(3):
        recorder.record(WEB, EventType.WARNING, "BackOff", "Back-off restarting failed container")
        clock.now += 10
    async for client in serve(deps(recorder)):
        (item,) = (await get_list(client, "/api/v1/events"))["items"]
    assert item["count"] == 3
    assert item["firstTimestamp"] == "2023-11-14T22:13:20Z"
    assert item["lastTimestamp"] == "2023-11-14T22:13:40Z"
    assert item["metadata"]["resourceVersion"] == "3"


@pytest.mark.parametrize(
    ("namespace", "expected"),
    [
        ("default", ["Started", "BackOff", "Starting"]),
        ("batch", ["Pulled"]),
        ("kube-system", []),
    ],
    ids=["default-holds-pods-and-the-node", "another-namespace", "an-empty-namespace"],
)
async def test_the_namespaced_path_lists_that_namespace(
    client: Client, namespace: str, expected: list[str]
) -> None:
    assert reasons(await get_list(client, f"/api/v1/namespaces/{namespace}/events")) == expected


@pytest.mark.parametrize(
    ("selector", "expected"),
    [
        ("involvedObject.name=web-n1", ["Started", "BackOff"]),
        ("involvedObject.name==web-n1", ["Started", "BackOff"]),
        ("involvedObject.name!=web-n1", ["Pulled", "Starting"]),
        ("involvedObject.namespace=batch", ["Pulled"]),
        ("involvedObject.namespace=", ["Starting"]),
        ("involvedObject.uid=u-job", ["Pulled"]),
        ("involvedObject.kind=Node", ["Starting"]),
        ("involvedObject.fieldPath=spec.containers{app}", ["Started", "BackOff"]),
        ("reason=BackOff", ["BackOff"]),
        ("type=Warning", ["BackOff"]),
        ("type=Normal,involvedObject.name=web-n1", ["Started"]),
        ("involvedObject.kind=Pod,reason!=Started,type!=Warning", ["Pulled"]),
        ("metadata.name=job-n1.0000000000000003", ["Pulled"]),
        ("source=kubelet,reportingComponent=kubelet", ["Started", "BackOff", "Pulled", "Starting"]),
        (
            "involvedObject.apiVersion=v1,involvedObject.resourceVersion=",
            ["Started", "BackOff", "Pulled", "Starting"],
        ),
        ("reason=Started,", ["Started"]),
        ("", ["Started", "BackOff", "Pulled", "Starting"]),
        ("reason=Back\\,Off", []),
    ],
    ids=[
        "equals",
        "double-equals",
        "not-equals",
        "namespace",
        "empty-value-matches-an-unset-field",
        "uid",
        "kind",
        "field-path",
        "reason",
        "type",
        "two-terms-all-must-hold",
        "three-terms",
        "event-name",
        "reporting-fields",
        "fields-always-the-same",
        "trailing-comma",
        "empty-selector",
        "escaped-comma-is-part-of-the-value",
    ],
)
async def test_field_selector_filters_as_the_api_server_does(
    client: Client, selector: str, expected: list[str]
) -> None:
    event_list = await get_list(client, "/api/v1/events", fieldSelector=selector)
    assert reasons(event_list) == expected


async def test_field_selector_and_namespace_combine(client: Client) -> None:
    event_list = await get_list(
        client, "/api/v1/namespaces/default/events", fieldSelector="involvedObject.kind=Pod"
    )
    assert reasons(event_list) == ["Started", "BackOff"]


async def test_escapes_in_a_value_stand_for_the_character() -> None:
    recorder, _ = make_recorder()
    odd = ObjectRef(kind="Pod", name="p", namespace="default", uid="a,b=c\\d")
    recorder.record(odd, EventType.NORMAL, "Scheduled", "m")
    recorder.record(WEB, EventType.NORMAL, "Started", "m")
    async for client in serve(deps(recorder)):
        selector = "involvedObject.uid=a\\,b\\=c\\\\d"
        event_list = await get_list(client, "/api/v1/events", fieldSelector=selector)
    assert reasons(event_list) == ["Scheduled"]


@pytest.mark.parametrize(
    ("selector", "message"),
    [
        ("spec.nodeName=n1", "field label not supported: 'spec.nodeName'"),
        ("reason=a,bogus!=b", "field label not supported: 'bogus'"),
        ("reason", "invalid selector: 'reason'; can't understand 'reason'"),
        ("reason=a,type", "invalid selector: 'reason=a,type'; can't understand 'type'"),
        ("reason=a=b", "invalid field selector: unescaped character in value: '='"),
        ("reason=a\\b", "invalid field selector: invalid escape sequence: '\\\\b'"),
        ("reason=a\\", "invalid field selector: invalid escape sequence: '\\\\'"),
    ],
    ids=[
        "unknown-field",
        "unknown-field-in-a-later-term",
        "no-operator",
        "no-operator-in-a-later-term",
        "unescaped-equals",
        "unknown-escape",
        "trailing-backslash",
    ],
)
async def test_a_bad_field_selector_is_a_400_status(
    client: Client, selector: str, message: str
) -> None:
    resp = await client.get("/api/v1/events", params={"fieldSelector": selector})
    assert resp.status == 400
    assert await resp.json() == {
        "kind": "Status",
        "apiVersion": "v1",
        "metadata": {},
        "status": "Failure",
        "message": message,
        "reason": "BadRequest",
        "code": 400,
    }


async def test_only_the_first_field_selector_counts(client: Client) -> None:
    resp = await client.get("/api/v1/events?fieldSelector=reason%3DPulled&fieldSelector=bogus%3Dx")
    assert resp.status == 200
    assert reasons(await resp.json()) == ["Pulled"]


async def test_without_a_recorder_events_are_not_found() -> None:
    async for client in serve(deps(None)):
        resp = await client.get("/api/v1/events")
        assert resp.status == 404
        assert (await resp.json())["reason"] == "NotFound"


@pytest.mark.parametrize(
    "path", ["/api/v1/events", "/api/v1/namespaces/default/events"], ids=["all", "namespaced"]
)
async def test_events_take_the_same_token_as_pods(recorder: EventRecorder, path: str) -> None:
    async for client in serve(deps(recorder, token="s3cret")):
        assert (await client.get(path)).status == 401
        assert (await client.get(path, headers={"Authorization": "Bearer wrong"})).status == 401
        ok = await client.get(path, headers={"Authorization": "Bearer s3cret"})
        assert ok.status == 200
        assert (await ok.json())["kind"] == "EventList"


async def test_events_are_refused_to_a_foreign_host_on_loopback(recorder: EventRecorder) -> None:
    app = make_app(deps(recorder), loopback_only=True)
    client: Client = TestClient(TestServer(app, host="127.0.0.1"))
    await client.start_server()
    try:
        resp = await client.get("/api/v1/events", headers={"Host": "evil.example"})
        assert resp.status == 403
        assert (await client.get("/api/v1/events")).status == 200
    finally:
        await client.close()
