"""Watching events: the recorder's feed (resume, compaction, overrun), the watch stream over
real HTTP, the server-side Table with kubectl's event columns, and one event by name."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from typing import Any

import pytest
from aiohttp import ClientResponse, web
from aiohttp.test_utils import TestClient, TestServer

from minikubelet.events import EventRecorder, EventType, ObjectRef, ResourceExpired
from minikubelet.server.app import ServerDeps, ServerLimits, make_app
from minikubelet.server.events import event_cells
from minikubelet.status.manager import StatusManager

Client = TestClient[web.Request, web.Application]

T0 = 1_700_000_000.0
WEB = ObjectRef("Pod", "web-n1", "default", "u-web", "spec.containers{app}")
JOB = ObjectRef("Pod", "job-n1", "batch", "u-job")
NODE = ObjectRef("Node", "n1", uid="n1")
TABLE = "application/json;as=Table;v=v1;g=meta.k8s.io,application/json"


class Clock:
    def __init__(self) -> None:
        self.now = T0

    def __call__(self) -> float:
        return self.now


class Engine:
    async def ping(self, timeout: float = 2.0) -> bool:
        return True

    def is_stale(self) -> bool:
        return False


def recorder(max_events: int = 1000) -> tuple[EventRecorder, Clock]:
    clock = Clock()
    return EventRecorder(host="n1", clock=clock, max_events=max_events), clock


def started(rec: EventRecorder, ref: ObjectRef = WEB, what: str = "app") -> None:
    rec.record(ref, EventType.NORMAL, "Started", f"Started container {what}")


# --- the recorder's feed ---------------------------------------------------------------


async def test_a_feed_sees_new_events_as_added_and_repeats_as_modified() -> None:
    rec, clock = recorder()
    replay, feed = rec.watch(None)
    assert replay == []
    started(rec)
    clock.now += 3
    started(rec)
    first, second = feed.pending()
    assert (first.type, first.resource_version, first.object["count"]) == ("ADDED", 1, 1)
    assert (second.type, second.resource_version, second.object["count"]) == ("MODIFIED", 2, 2)
    # Each change keeps the event as it was then, though the event itself moved on.
    assert first.object["lastTimestamp"] == "2023-11-14T22:13:20Z"
    assert second.object["lastTimestamp"] == "2023-11-14T22:13:23Z"
    assert json.loads(second.json()) == second.object


async def test_a_watch_from_no_version_replays_every_stored_event_as_added() -> None:
    rec, _ = recorder()
    started(rec)
    started(rec, JOB)
    started(rec)
    replay, _feed = rec.watch(None)
    assert [(c.type, c.object["involvedObject"]["name"]) for c in replay] == [
        ("ADDED", "job-n1"),
        ("ADDED", "web-n1"),
    ]


async def test_a_resumed_watch_replays_what_followed_its_version_and_no_more() -> None:
    rec, _ = recorder()
    started(rec)  # 1: web added
    started(rec, JOB)  # 2: job added
    started(rec, NODE)  # 3: node added
    started(rec)  # 4: web again
    replay, feed = rec.watch(2)
    # The web event was created before 2 and changed after it: MODIFIED, at its new version.
    assert [(c.type, c.resource_version, c.object["involvedObject"]["name"]) for c in replay] == [
        ("ADDED", 3, "n1"),
        ("MODIFIED", 4, "web-n1"),
    ]
    assert rec.watch(4)[0] == []
    started(rec, JOB)
    assert [(c.type, c.resource_version) for c in feed.pending()] == [("MODIFIED", 5)]


async def test_resuming_from_before_an_eviction_is_expired() -> None:
    rec, _ = recorder(max_events=2)
    for ref in (WEB, JOB):
        started(rec, ref)
    rec.watch(1)  # nothing dropped yet: any version the client saw is good
    started(rec, NODE)  # 3 evicts the web event
    assert [e.involved.name for e in rec.list()] == ["job-n1", "n1"]
    with pytest.raises(ResourceExpired, match=r"too old resource version: 2 \(3\)"):
        rec.watch(2)
    assert rec.watch(3)[0] == []


async def test_a_version_newer_than_the_recorders_is_expired() -> None:
    # What a client holds across an agent restart: versions start again from 1.
    rec, _ = recorder()
    started(rec)
    with pytest.raises(ResourceExpired, match="too large resource version: 7, current: 1"):
        rec.watch(7)


async def test_a_reader_that_falls_behind_is_cut_off_not_buffered() -> None:
    rec, _ = recorder()
    _, slow = rec.watch(None, max_lag=3)
    _, quick = rec.watch(None, max_lag=3)
    for i in range(3):
        started(rec, what=str(i))
        assert len(quick.pending()) == 1
    started(rec, what="3")
    assert slow.overrun
    assert slow.closed
    assert slow.pending() == []
    assert await slow.next() is None
    assert not quick.closed
    assert rec.feed_count == 1
    quick.close()
    assert rec.feed_count == 0


# --- the watch over HTTP ---------------------------------------------------------------


async def serve(rec: EventRecorder, limits: ServerLimits | None = None) -> AsyncIterator[Client]:
    deps = ServerDeps(status=StatusManager(), engine=Engine(), source_errors=list, recorder=rec)
    client: Client = TestClient(TestServer(make_app(deps, limits=limits), host="127.0.0.1"))
    await client.start_server()
    try:
        yield client
    finally:
        await client.close()


async def read_line(resp: ClientResponse) -> dict[str, Any]:
    async with asyncio.timeout(5):
        line = await resp.content.readline()
    assert line.endswith(b"\n"), line
    decoded: dict[str, Any] = json.loads(line)
    return decoded


async def test_a_watch_streams_current_events_then_new_ones_and_repeats() -> None:
    rec, clock = recorder()
    started(rec)
    async for client in serve(rec):
        resp = await client.get("/api/v1/events", params={"watch": "true"})
        assert resp.status == 200
        first = await read_line(resp)
        assert first["type"] == "ADDED"
        assert first["object"]["involvedObject"]["name"] == "web-n1"
        clock.now += 1
        started(rec, JOB)
        started(rec)
        added, modified = await read_line(resp), await read_line(resp)
        assert (added["type"], added["object"]["metadata"]["resourceVersion"]) == ("ADDED", "2")
        assert (modified["type"], modified["object"]["count"]) == ("MODIFIED", 2)
        resp.close()


async def test_a_watch_applies_namespace_and_selectors_to_every_change() -> None:
    rec, _ = recorder()
    async for client in serve(rec):
        resp = await client.get(
            "/api/v1/namespaces/default/events",
            params={"watch": "1", "fieldSelector": "involvedObject.kind=Pod,reason=Started"},
        )
        started(rec, JOB)  # another namespace
        started(rec, NODE)  # in default, but a Node
        rec.record(WEB, EventType.WARNING, "BackOff", "Back-off")  # another reason
        started(rec)
        only = await read_line(resp)
        assert only["object"]["involvedObject"]["name"] == "web-n1"
        assert only["object"]["metadata"]["resourceVersion"] == "4"
        resp.close()


async def test_the_old_watch_path_is_a_watch() -> None:
    rec, _ = recorder()
    started(rec)
    async for client in serve(rec):
        resp = await client.get("/api/v1/watch/namespaces/default/events")
        assert (await read_line(resp))["type"] == "ADDED"
        resp.close()


async def test_a_watch_resumes_from_the_lists_version() -> None:
    rec, _ = recorder()
    started(rec)
    async for client in serve(rec):
        listed = await (await client.get("/api/v1/events")).json()
        version = listed["metadata"]["resourceVersion"]
        started(rec, JOB)
        resp = await client.get("/api/v1/events", params={"watch": "1", "resourceVersion": version})
        # What the list showed is not sent again; what came after it is.
        line = await read_line(resp)
        assert line["object"]["involvedObject"]["name"] == "job-n1"
        resp.close()


async def test_resuming_from_a_compacted_version_is_a_410_event() -> None:
    rec, _ = recorder(max_events=1)
    started(rec)
    started(rec, JOB)
    async for client in serve(rec):
        resp = await client.get("/api/v1/events", params={"watch": "1", "resourceVersion": "1"})
        assert resp.status == 200
        line = await read_line(resp)
        assert line["type"] == "ERROR"
        assert line["object"]["code"] == 410
        assert line["object"]["reason"] == "Expired"
        assert "too old resource version: 1 (2)" in line["object"]["message"]
        async with asyncio.timeout(5):
            assert await resp.content.read() == b""  # and the stream ends


async def test_a_watcher_too_far_behind_gets_a_410_event() -> None:
    rec, _ = recorder()
    async for client in serve(rec, ServerLimits(watch_max_lag=2)):
        resp = await client.get("/api/v1/events", params={"watch": "1"})
        # The handler subscribed before it answered; three changes in one go overrun a
        # lag of two before it reads any.
        assert resp.status == 200
        assert rec.feed_count == 1
        for i in range(3):
            started(rec, what=str(i))
        line = await read_line(resp)
        assert line["type"] == "ERROR"
        assert line["object"]["code"] == 410


async def test_a_watch_ends_at_its_timeout_and_frees_its_feed() -> None:
    rec, _ = recorder()
    async for client in serve(rec):
        resp = await client.get("/api/v1/events", params={"watch": "1", "timeoutSeconds": "1"})
        async with asyncio.timeout(5):
            assert await resp.content.read() == b""
        # The handler closes its feed just after the end of the stream reached us.
        for _ in range(500):
            if not rec.feed_count:
                break
            await asyncio.sleep(0.01)
        assert rec.feed_count == 0


@pytest.mark.parametrize(
    "value", ["-1", "abc", "1.5", "9" * 30], ids=["negative", "word", "fraction", "huge"]
)
async def test_a_bad_resource_version_is_a_400(value: str) -> None:
    rec, _ = recorder()
    async for client in serve(rec):
        resp = await client.get("/api/v1/events", params={"watch": "1", "resourceVersion": value})
        assert resp.status == 400
        assert "resourceVersion" in (await resp.json())["message"]


# --- label selectors -------------------------------------------------------------------


@pytest.mark.parametrize(
    ("selector", "count"),
    [("app=web", 0), ("app", 0), ("!app", 2), ("app!=web", 2), ("app in (a)", 0)],
    ids=["equals", "exists", "not-exists", "not-equals", "in"],
)
async def test_events_have_no_labels_for_a_selector_to_match(selector: str, count: int) -> None:
    rec, _ = recorder()
    started(rec)
    started(rec, JOB)
    async for client in serve(rec):
        resp = await client.get("/api/v1/events", params={"labelSelector": selector})
        assert resp.status == 200
        assert len((await resp.json())["items"]) == count


async def test_a_bad_label_selector_is_a_400() -> None:
    rec, _ = recorder()
    async for client in serve(rec):
        resp = await client.get("/api/v1/events", params={"labelSelector": "a in b"})
        assert resp.status == 400
        assert (await resp.json())["reason"] == "BadRequest"


# --- one event -------------------------------------------------------------------------


async def test_one_event_by_name_and_not_found_worded_as_the_api_server() -> None:
    rec, _ = recorder()
    started(rec, JOB)
    async for client in serve(rec):
        resp = await client.get("/api/v1/namespaces/batch/events/job-n1.0000000000000001")
        assert resp.status == 200
        assert (await resp.json())["reason"] == "Started"
        # The same name in another namespace is another event.
        missing = await client.get("/api/v1/namespaces/default/events/job-n1.0000000000000001")
        assert missing.status == 404
        assert (await missing.json())["message"] == ('events "job-n1.0000000000000001" not found')


# --- the Table -------------------------------------------------------------------------


def api_event(**overrides: Any) -> dict[str, Any]:
    rec, clock = recorder()
    started(rec)
    clock.now += 30
    started(rec)
    obj = rec.list()[0].to_api()
    obj.update(overrides)
    return obj


@pytest.mark.parametrize(
    ("overrides", "now", "expected"),
    [
        (
            {},
            T0 + 90,
            [
                "60s",
                "Normal",
                "Started",
                "pod/web-n1",
                "spec.containers{app}",
                "kubelet, n1",
                "Started container app",
                "90s",
                2,
                "web-n1.0000000000000001",
            ],
        ),
        (
            {"lastTimestamp": None, "count": 0, "message": "  padded \n"},
            T0 + 600,
            ["10m", "Normal", "Started", "pod/web-n1", "spec.containers{app}", "kubelet, n1",
             "padded", "10m", 1, "web-n1.0000000000000001"],
        ),
        (
            {
                "involvedObject": {"kind": "Node", "name": ""},
                "source": {"component": "kubelet"},
                "reportingInstance": "",
                "firstTimestamp": None,
            },
            T0 + 90,
            ["60s", "Normal", "Started", "node", "", "kubelet", "Started container app",
             "<unknown>", 2, "web-n1.0000000000000001"],
        ),
    ],
    ids=["a-repeated-container-event", "no-last-time-or-count", "no-object-name-or-host"],
)  # fmt: skip
def test_event_cells_are_printevents(
    overrides: dict[str, Any], now: float, expected: list[Any]
) -> None:
    assert event_cells(api_event(**overrides), now) == expected


async def test_the_list_is_a_table_when_kubectl_asks_for_one() -> None:
    rec, _ = recorder()
    started(rec)
    started(rec, JOB)
    async for client in serve(rec):
        resp = await client.get("/api/v1/namespaces/batch/events", headers={"Accept": TABLE})
        body = await resp.json()
    assert body["kind"] == "Table"
    assert body["metadata"] == {"resourceVersion": "2"}
    columns = [(c["name"], c["priority"]) for c in body["columnDefinitions"]]
    assert columns == [
        ("Last Seen", 0),
        ("Type", 0),
        ("Reason", 0),
        ("Object", 0),
        ("Subobject", 1),
        ("Source", 1),
        ("Message", 0),
        ("First Seen", 1),
        ("Count", 1),
        ("Name", 1),
    ]
    (row,) = body["rows"]
    assert row["cells"][3] == "pod/job-n1"
    # kubectl -A prints the namespace from the row's object metadata.
    assert row["object"]["metadata"]["namespace"] == "batch"


async def test_a_watch_sends_each_change_as_a_one_row_table() -> None:
    rec, _ = recorder()
    started(rec)
    async for client in serve(rec):
        resp = await client.get("/api/v1/events?watch=1", headers={"Accept": TABLE})
        line = await read_line(resp)
        assert line["type"] == "ADDED"
        assert line["object"]["kind"] == "Table"
        assert len(line["object"]["columnDefinitions"]) == 10
        assert [r["cells"][2] for r in line["object"]["rows"]] == ["Started"]
        resp.close()


async def test_one_event_as_a_table() -> None:
    rec, _ = recorder()
    started(rec)
    async for client in serve(rec):
        resp = await client.get(
            "/api/v1/namespaces/default/events/web-n1.0000000000000001",
            headers={"Accept": TABLE},
        )
        body = await resp.json()
    assert body["kind"] == "Table"
    assert body["rows"][0]["cells"][9] == "web-n1.0000000000000001"


# --- bookmarks, watch-list, paging parameters ------------------------------------------


async def test_bookmarks_say_how_far_the_watch_has_seen() -> None:
    rec, _ = recorder()
    started(rec)
    async for client in serve(rec, ServerLimits(bookmark_interval=0.2)):
        resp = await client.get(
            "/api/v1/events",
            params={"watch": "1", "allowWatchBookmarks": "true", "fieldSelector": "reason=x"},
        )
        # Nothing matches the selector, yet the bookmark carries the version seen up to.
        started(rec, JOB)
        line = await read_line(resp)
        assert line == {
            "type": "BOOKMARK",
            "object": {"kind": "Event", "apiVersion": "v1", "metadata": {"resourceVersion": "2"}},
        }
        resp.close()


async def test_a_watch_list_ends_its_initial_events_with_an_annotated_bookmark() -> None:
    rec, _ = recorder()
    started(rec)
    started(rec, JOB)
    async for client in serve(rec):
        resp = await client.get(
            "/api/v1/events",
            params={
                "watch": "1",
                "allowWatchBookmarks": "1",
                "sendInitialEvents": "true",
                "resourceVersionMatch": "NotOlderThan",
                "resourceVersion": "1",
            },
        )
        # The current events, whatever the version said (a lower bound), then the bookmark.
        first, second, bookmark = [await read_line(resp) for _ in range(3)]
        assert [first["type"], second["type"]] == ["ADDED", "ADDED"]
        assert bookmark["type"] == "BOOKMARK"
        assert bookmark["object"]["metadata"] == {
            "resourceVersion": "2",
            "annotations": {"k8s.io/initial-events-end": "true"},
        }
        started(rec, NODE)
        assert (await read_line(resp))["object"]["involvedObject"]["name"] == "n1"
        resp.close()


@pytest.mark.parametrize(
    ("query", "message"),
    [
        ({"watch": "1", "sendInitialEvents": "true"}, "sendInitialEvents: Forbidden"),
        ({"sendInitialEvents": "true", "allowWatchBookmarks": "true"}, "sendInitialEvents"),
        ({"limit": "ten"}, "limit: invalid value 'ten'"),
        ({"continue": "abc"}, "continue: this agent gives no continue tokens"),
    ],
    ids=["watch-list-without-bookmarks", "watch-list-without-watch", "bad-limit", "continue"],
)
async def test_paging_and_watch_list_parameters_are_checked(
    query: dict[str, str], message: str
) -> None:
    rec, _ = recorder()
    async for client in serve(rec):
        resp = await client.get("/api/v1/events", params=query)
        assert resp.status == 400
        assert (await resp.json())["message"].startswith(message)


async def test_a_limit_is_taken_and_the_list_is_whole() -> None:
    rec, _ = recorder()
    for ref in (WEB, JOB, NODE):
        started(rec, ref)
    async for client in serve(rec):
        resp = await client.get("/api/v1/events", params={"limit": "1"})
        body = await resp.json()
    assert len(body["items"]) == 3
    assert "continue" not in body["metadata"]


@pytest.mark.parametrize("method", ["POST", "PUT", "PATCH", "DELETE"])
@pytest.mark.parametrize(
    "path",
    [
        "/api/v1/events",
        "/api/v1/namespaces/default/events",
        "/api/v1/namespaces/default/events/web-n1.0000000000000001",
    ],
)
async def test_nothing_writes_events(method: str, path: str) -> None:
    rec, _ = recorder()
    started(rec)
    async for client in serve(rec):
        resp = await client.request(method, path, json={})
        assert resp.status == 405
        body = await resp.json()
        assert (body["kind"], body["reason"], body["code"]) == ("Status", "MethodNotAllowed", 405)
    assert len(rec.list()) == 1
