"""The client commands' formatters and their use of the API, with no agent.

Expected texts were checked against kubectl 1.32 printing the same objects
(served by a fake API server): ``fixtures/describe_web_pod.txt`` is kubectl's
``describe pod`` of ``cli_objects.web_pod()`` line for line, only ages differ
(they are taken at ``NOW`` here).
"""

from __future__ import annotations

import argparse
import json
import socket
import threading
import time
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

from minikubelet import cli
from minikubelet.client import commands
from minikubelet.client.describe import describe_pod, qos_class, quantity
from minikubelet.client.http import _api_error
from minikubelet.client.printing import (
    dump_json,
    dump_yaml,
    event_rows,
    pod_row,
    table_rows,
)
from minikubelet.client.tabwriter import table_text, tabulate
from tests.unit.cli_objects import NOW, web_events, web_pod

FIXTURES = Path(__file__).parent / "fixtures"


@pytest.fixture
def utc(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    monkeypatch.setenv("TZ", "UTC")
    time.tzset()
    yield
    monkeypatch.undo()
    time.tzset()


# --- tabwriter ---


def test_tables_pad_as_kubectl_get() -> None:
    # Minimum width 6, padding 3; the last column is not padded.
    assert table_text([["NAME", "READY", "AGE"], ["web-node1", "1/1", "5s"]]) == (
        "NAME        READY   AGE\nweb-node1   1/1     5s\n"
    )


def test_a_line_without_cells_starts_a_new_alignment() -> None:
    text = "A:\t1\nLonger key:\t2\nSection:\n  k:\tv\n"
    assert tabulate(text, minwidth=0, padding=2) == (
        "A:           1\nLonger key:  2\nSection:\n  k:  v\n"
    )


def test_empty_cells_still_take_the_column_width() -> None:
    text = "Labels:\ta=1\n\tb=2\nIP:\t10.0.0.1\n"
    assert tabulate(text, minwidth=0, padding=2) == (
        "Labels:  a=1\n         b=2\nIP:      10.0.0.1\n"
    )


def test_width_counts_characters_not_bytes() -> None:
    assert table_text([["NAME", "X"], ["é", "1"]]) == "NAME   X\né      1\n"


# --- get: the STATUS word and the other cells (kubectl's printPod) ---


def _pod(
    phase: str = "Running",
    statuses: list[dict[str, Any]] | None = None,
    *,
    init: list[dict[str, Any]] | None = None,
    init_specs: list[dict[str, Any]] | None = None,
    conditions: list[dict[str, Any]] | None = None,
    **meta: Any,
) -> dict[str, Any]:
    statuses = statuses if statuses is not None else [_cs("app", running=True)]
    return {
        "metadata": {"name": "p", "creationTimestamp": "2026-09-21T14:03:20Z", **meta},
        "spec": {
            "nodeName": "n1",
            "containers": [{"name": s["name"]} for s in statuses],
            "initContainers": init_specs
            if init_specs is not None
            else [{"name": s["name"]} for s in init or []],
        },
        "status": {
            "phase": phase,
            "podIPs": [{"ip": "10.0.0.2"}],
            "conditions": conditions or [],
            "containerStatuses": statuses,
            "initContainerStatuses": init or [],
        },
    }


def _cs(
    name: str,
    *,
    running: bool = False,
    ready: bool | None = None,
    waiting: str | None = None,
    terminated: tuple[int, str] | None = None,
    restarts: int = 0,
    last_finished: str | None = None,
) -> dict[str, Any]:
    state: dict[str, Any] = {}
    if running:
        state["running"] = {"startedAt": "2026-09-21T14:03:21Z"}
    if waiting is not None:
        state["waiting"] = {"reason": waiting}
    if terminated is not None:
        state["terminated"] = {"exitCode": terminated[0], "reason": terminated[1]}
    status: dict[str, Any] = {
        "name": name,
        "ready": running if ready is None else ready,
        "restartCount": restarts,
        "state": state,
    }
    if last_finished:
        status["lastState"] = {"terminated": {"exitCode": 1, "finishedAt": last_finished}}
    return status


INITIALIZED = [{"type": "Initialized", "status": "True"}]

STATUS_CASES = [
    ("running", _pod(), "Running", "1/1"),
    (
        "pending",
        _pod("Pending", [_cs("app", waiting="ContainerCreating")]),
        "ContainerCreating",
        "0/1",
    ),
    (
        "crash-loop",
        _pod("Running", [_cs("app", waiting="CrashLoopBackOff", restarts=3)]),
        "CrashLoopBackOff",
        "0/1",
    ),
    ("image", _pod("Pending", [_cs("app", waiting="ErrImagePull")]), "ErrImagePull", "0/1"),
    ("completed", _pod("Succeeded", [_cs("app", terminated=(0, "Completed"))]), "Completed", "0/1"),
    ("exit-code", _pod("Failed", [_cs("app", terminated=(3, ""))]), "ExitCode:3", "0/1"),
    (
        "completed-one-running-not-ready",
        _pod(
            "Running",
            [_cs("a", running=True), _cs("b", terminated=(0, "Completed"))],
            conditions=[{"type": "Ready", "status": "False"}],
        ),
        # printers.go: Completed with a container running is Running only while the
        # pod's Ready condition is True, NotReady otherwise.
        "NotReady",
        "1/2",
    ),
    (
        "completed-one-running-ready",
        _pod(
            "Running",
            [_cs("a", running=True), _cs("b", terminated=(0, "Completed"))],
            conditions=[{"type": "Ready", "status": "True"}],
        ),
        "Running",
        "1/2",
    ),
    (
        "init-waiting",
        _pod(
            "Pending",
            [_cs("app", waiting="PodInitializing")],
            init=[_cs("i1", running=True, ready=False), _cs("i2", waiting="PodInitializing")],
        ),
        "Init:0/2",
        "0/1",
    ),
    (
        "init-second",
        _pod(
            "Pending",
            [_cs("app", waiting="PodInitializing")],
            init=[_cs("i1", terminated=(0, "Completed")), _cs("i2", running=True, ready=False)],
        ),
        "Init:1/2",
        "0/1",
    ),
    (
        "init-failed",
        _pod(
            "Pending",
            [_cs("app", waiting="PodInitializing")],
            init=[_cs("i1", terminated=(1, "Error"))],
        ),
        "Init:Error",
        "0/1",
    ),
    (
        "init-crash-loop",
        _pod(
            "Pending",
            [_cs("app", waiting="PodInitializing")],
            init=[_cs("i1", waiting="CrashLoopBackOff")],
        ),
        "Init:CrashLoopBackOff",
        "0/1",
    ),
    (
        "pod-initializing",
        _pod(
            "Pending",
            [_cs("app", waiting="PodInitializing")],
            init=[_cs("i1", terminated=(0, "Completed"))],
            conditions=INITIALIZED,
        ),
        "PodInitializing",
        "0/1",
    ),
    (
        "sidecar-counted",
        _pod(
            "Running",
            [_cs("app", running=True)],
            init=[{**_cs("side", running=True), "started": True}],
            init_specs=[{"name": "side", "restartPolicy": "Always"}],
            conditions=INITIALIZED,
        ),
        "Running",
        "2/2",
    ),
    (
        "terminating",
        _pod(deletionTimestamp="2026-09-21T14:10:00Z"),
        "Terminating",
        "1/1",
    ),
    (
        "evicted",
        {**_pod("Failed", []), "status": {"phase": "Failed", "reason": "Evicted"}},
        "Evicted",
        "0/0",
    ),
]


@pytest.mark.parametrize(
    ("pod", "status", "ready"),
    [case[1:] for case in STATUS_CASES],
    ids=[case[0] for case in STATUS_CASES],
)
def test_pod_status_words_are_kubectls(pod: dict[str, Any], status: str, ready: str) -> None:
    row = pod_row(pod, now=NOW)
    assert row[1:3] == [ready, status]


def test_restarts_show_when_the_last_one_was() -> None:
    pod = _pod(
        "Running", [_cs("app", running=True, restarts=2, last_finished="2026-09-21T14:08:20Z")]
    )
    assert pod_row(pod, now=NOW)[3] == "2 (5m ago)"
    assert pod_row(_pod(), now=NOW)[3:5] == ["0", "10m"]


def test_wide_adds_ip_node_nominated_and_gates() -> None:
    pod = _pod()
    pod["spec"]["readinessGates"] = [{"conditionType": "x/ok"}]
    pod["status"]["conditions"] = [{"type": "x/ok", "status": "True"}]
    assert pod_row(pod, now=NOW, wide=True)[5:] == ["10.0.0.2", "n1", "<none>", "1/1"]
    bare = _pod()
    bare["status"]["podIPs"] = []
    assert pod_row(bare, now=NOW, wide=True)[5:] == ["<none>", "n1", "<none>", "<none>"]


# --- get: a server Table ---

TABLE = {
    "kind": "Table",
    "apiVersion": "meta.k8s.io/v1",
    "columnDefinitions": [
        {"name": "Name", "type": "string", "priority": 0},
        {"name": "Ready", "type": "string", "priority": 0},
        {"name": "IP", "type": "string", "priority": 1},
        {"name": "Nominated Node", "type": "string", "priority": 1},
        {"name": "Restarts", "type": "integer", "priority": 0},
    ],
    "rows": [
        {
            "cells": ["web-n1", "1/1", "10.0.0.2", None, 0],
            "object": {"metadata": {"name": "web-n1", "namespace": "default"}},
        },
        {
            "cells": ["dns-n1", "0/1", "10.0.0.3", None, 4],
            "object": {"metadata": {"name": "dns-n1", "namespace": "kube-system"}},
        },
    ],
}


def test_a_table_shows_priority_columns_only_when_wide() -> None:
    assert table_rows(TABLE, wide=False, all_namespaces=False) == [
        ["NAME", "READY", "RESTARTS"],
        ["web-n1", "1/1", "0"],
        ["dns-n1", "0/1", "4"],
    ]
    wide = table_rows(TABLE, wide=True, all_namespaces=False)
    assert wide[0] == ["NAME", "READY", "IP", "NOMINATED NODE", "RESTARTS"]
    assert wide[1] == ["web-n1", "1/1", "10.0.0.2", "<none>", "0"]


def test_all_namespaces_prepends_the_rows_namespace() -> None:
    rows = table_rows(TABLE, wide=False, all_namespaces=True)
    assert [r[0] for r in rows] == ["NAMESPACE", "default", "kube-system"]


def test_a_cell_stops_at_its_first_line_break() -> None:
    table = {**TABLE, "rows": [{"cells": ["a\nb", "1/1", "", None, 0]}]}
    assert table_rows(table, wide=False, all_namespaces=False)[1][0] == "a..."


# --- -o json / yaml ---


def test_json_is_sorted_with_four_spaces() -> None:
    assert dump_json({"b": 1, "a": [1]}) == '{\n    "a": [\n        1\n    ],\n    "b": 1\n}\n'


def test_yaml_quotes_and_blocks_as_go_yaml() -> None:
    text = dump_yaml({"t": "true", "ts": "2026-09-21T14:03:20Z", "m": "one\ntwo", "n": 5, "s": "x"})
    assert text == ('m: |-\n  one\n  two\nn: 5\ns: x\nt: "true"\nts: "2026-09-21T14:03:20Z"\n')


# --- describe ---


def test_describe_pod_is_kubectls_layout(utc: None) -> None:
    expected = (FIXTURES / "describe_web_pod.txt").read_text()
    assert describe_pod(web_pod(), web_events(), now=NOW) == expected


def test_describe_without_events_or_optional_parts(utc: None) -> None:
    pod = {
        "metadata": {"name": "p", "namespace": "ns"},
        "spec": {"containers": [{"name": "c", "image": "i"}]},
        "status": {"phase": "Pending"},
    }
    text = describe_pod(pod, [], now=NOW)
    assert text.splitlines() == [
        "Name:         p",
        "Namespace:    ns",
        "Node:         <none>",
        "Labels:       <none>",
        "Annotations:  <none>",
        "Status:       Pending",
        "IP:           ",
        "IPs:          <none>",
        "Containers:",
        "  c:",
        "    Image:        i",
        "    Port:         <none>",
        "    Host Port:    <none>",
        "    Environment:  <none>",
        "    Mounts:       <none>",
        "Volumes:          <none>",
        "QoS Class:        BestEffort",
        "Node-Selectors:   <none>",
        "Tolerations:      <none>",
        "Events:           <none>",
    ]
    assert "Events" not in describe_pod(pod, None, now=NOW)


@pytest.mark.parametrize(
    ("resources", "expected"),
    [
        ({}, "BestEffort"),
        ({"requests": {"cpu": "100m"}}, "Burstable"),
        ({"limits": {"cpu": "1", "memory": "1Gi"}}, "Guaranteed"),
        ({"limits": {"cpu": "1", "memory": "1Gi"}, "requests": {"cpu": "500m"}}, "Burstable"),
    ],
    ids=["none", "requests", "limits", "less-requested"],
)
def test_qos_class_when_the_status_has_none(resources: dict[str, Any], expected: str) -> None:
    pod = {"spec": {"containers": [{"name": "c", "resources": resources}]}, "status": {}}
    assert qos_class(pod) == expected


def test_quantities() -> None:
    assert quantity("500m") == 0.5
    assert quantity("64Mi") == 64 * 2**20
    assert quantity("1e3") == 1000
    assert quantity("lots") is None


# --- events ---


def test_events_rows_oldest_first_with_counts() -> None:
    rows = event_rows(web_events(), now=NOW, all_namespaces=False)
    assert table_text(rows).splitlines() == [
        "LAST SEEN           TYPE      REASON    OBJECT          MESSAGE",
        '10m                 Normal    Pulled    Pod/web-node1   Container image "busybox:1" '
        "already present on machine",
        "10m                 Normal    Started   Pod/web-node1   Started container app",
        "60s (x3 over 10m)   Warning   BackOff   Pod/web-node1   "
        "Back-off restarting failed container app",
    ]
    everywhere = event_rows(web_events(), now=NOW, all_namespaces=True)
    assert [r[0] for r in everywhere] == ["NAMESPACE", "default", "default", "default"]


# --- errors ---


def test_a_status_becomes_kubectls_error_line() -> None:
    body = json.dumps(
        {"kind": "Status", "reason": "NotFound", "code": 404, "message": 'pods "x" not found'}
    ).encode()
    assert str(_api_error(404, body)) == 'Error from server (NotFound): pods "x" not found'
    assert str(_api_error(401, b"")) == "error: You must be logged in to the server (Unauthorized)"
    assert "status code 502" in str(_api_error(502, b"<html>"))
    assert str(_api_error(404, b"404: Not Found")) == (
        "Error from server (NotFound): the server could not find the requested resource"
    )


@pytest.mark.parametrize(
    ("text", "seconds"),
    [("10s", 10), ("5m", 300), ("1h30m", 5400), ("1.5s", 1.5), ("0", 0)],
)
def test_durations(text: str, seconds: float) -> None:
    assert commands.parse_duration(text) == seconds


@pytest.mark.parametrize("text", ["10", "5x", "m", "1h 2m", "-1s"])
def test_bad_durations(text: str) -> None:
    with pytest.raises(ValueError, match="invalid duration"):
        commands.parse_duration(text)


# --- the commands against a fake API server (real HTTP, fixed answers) ---

Route = Callable[[BaseHTTPRequestHandler], None]


class FakeApi:
    """A real HTTP server on loopback answering fixed objects, recording requests."""

    def __init__(self) -> None:
        self.routes: dict[str, Route] = {}
        self.requests: list[tuple[str, str]] = []
        self.authorization: list[str] = []
        api = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: Any) -> None:
                pass

            def do_GET(self) -> None:
                api.requests.append((self.path, self.headers.get("Accept", "")))
                api.authorization.append(self.headers.get("Authorization", ""))
                path = self.path.split("?", 1)[0]
                route = api.routes.get(path)
                if route is None:
                    self.send_response(404)
                    self.send_header("Content-Type", "text/plain")
                    self.end_headers()
                    self.wfile.write(b"404: Not Found")
                    return
                route(self)

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        self.thread = threading.Thread(
            target=self.server.serve_forever, kwargs={"poll_interval": 0.02}, daemon=True
        )
        self.thread.start()

    def json(self, path: str, obj: Any, code: int = 200) -> None:
        def route(handler: BaseHTTPRequestHandler) -> None:
            body = json.dumps(obj).encode()
            handler.send_response(code)
            handler.send_header("Content-Type", "application/json")
            handler.send_header("Content-Length", str(len(body)))
            handler.end_headers()
            handler.wfile.write(body)

        self.routes[path] = route

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def api() -> Iterator[FakeApi]:
    fake = FakeApi()
    yield fake
    fake.close()


def run(api: FakeApi, capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    code = cli.main([*args, "--server", api.url])
    out, err = capsys.readouterr()
    return code, out, err


def pod_list(*pods: dict[str, Any]) -> dict[str, Any]:
    return {"kind": "PodList", "apiVersion": "v1", "metadata": {}, "items": list(pods)}


def test_get_pods_prints_the_servers_table(
    api: FakeApi, capsys: pytest.CaptureFixture[str]
) -> None:
    api.json("/api/v1/namespaces/default/pods", TABLE)
    code, out, err = run(api, capsys, "get", "pods")
    assert (code, err) == (0, "")
    assert out == "NAME     READY   RESTARTS\nweb-n1   1/1     0\ndns-n1   0/1     4\n"
    assert "as=Table;v=v1;g=meta.k8s.io" in api.requests[0][1]


def test_get_pods_all_namespaces_asks_the_cluster_path(
    api: FakeApi, capsys: pytest.CaptureFixture[str]
) -> None:
    api.json("/api/v1/pods", TABLE)
    code, out, _ = run(api, capsys, "get", "pods", "-A", "-l", "app=web")
    assert code == 0
    assert out.splitlines()[0].split() == ["NAMESPACE", "NAME", "READY", "RESTARTS"]
    assert api.requests[0][0] == "/api/v1/pods?labelSelector=app%3Dweb"


def test_no_pods_is_said_on_stderr(api: FakeApi, capsys: pytest.CaptureFixture[str]) -> None:
    api.json("/api/v1/namespaces/default/pods", {**TABLE, "rows": []})
    assert run(api, capsys, "get", "pods") == (
        0,
        "",
        "No resources found in default namespace.\n",
    )
    api.json("/api/v1/pods", {**TABLE, "rows": []})
    assert run(api, capsys, "get", "pods", "-A") == (0, "", "No resources found.\n")


def test_get_json_is_a_list_of_pods(api: FakeApi, capsys: pytest.CaptureFixture[str]) -> None:
    api.json("/api/v1/namespaces/default/pods", pod_list(web_pod()))
    code, out, _ = run(api, capsys, "get", "pods", "-o", "json")
    assert code == 0
    listed = json.loads(out)
    assert listed["kind"] == "List"
    assert [p["metadata"]["name"] for p in listed["items"]] == ["web-node1"]
    assert api.requests[0][1] == "application/json"


def test_get_one_pod_missing_is_the_servers_error(
    api: FakeApi, capsys: pytest.CaptureFixture[str]
) -> None:
    status = {"kind": "Status", "reason": "NotFound", "code": 404, "message": 'pods "x" not found'}
    api.json("/api/v1/namespaces/default/pods/x", status, code=404)
    code, out, err = run(api, capsys, "get", "pod", "x")
    assert (code, out) == (1, "")
    assert err == 'Error from server (NotFound): pods "x" not found\n'


def test_without_api_v1_pods_come_from_the_pods_list(
    api: FakeApi, capsys: pytest.CaptureFixture[str]
) -> None:
    other = web_pod()
    other["metadata"] = {**other["metadata"], "name": "db-node1", "labels": {"app": "db"}}
    api.json("/pods", pod_list(web_pod(), other))
    code, out, _ = run(api, capsys, "get", "pods", "-l", "app=web")
    assert code == 0
    assert [line.split()[:3] for line in out.splitlines()] == [
        ["NAME", "READY", "STATUS"],
        ["web-node1", "1/2", "ContainerCreating"],
    ]
    code, out, err = run(api, capsys, "get", "pod", "nope")
    assert (code, err) == (1, 'Error from server (NotFound): pods "nope" not found\n')


def test_describe_asks_for_the_pods_events(
    api: FakeApi, capsys: pytest.CaptureFixture[str], utc: None
) -> None:
    api.json("/api/v1/namespaces/default/pods/web-node1", web_pod())
    api.json(
        "/api/v1/namespaces/default/events",
        {"kind": "EventList", "metadata": {}, "items": web_events()},
    )
    code, out, err = run(api, capsys, "describe", "pod", "web-node1")
    assert (code, err) == (0, "")
    assert out.startswith("Name:         web-node1\n")
    assert "  Warning  BackOff" in out
    events_query = api.requests[1][0]
    assert events_query.startswith("/api/v1/namespaces/default/events?fieldSelector=")
    for term in ("involvedObject.name%3Dweb-node1", "involvedObject.uid%3D0f3c2a"):
        assert term in events_query


def test_logs_streams_the_body_and_defaults_the_container(
    api: FakeApi, capsys: pytest.CaptureFixture[str]
) -> None:
    api.json("/api/v1/namespaces/default/pods/web-node1", web_pod())

    def log(handler: BaseHTTPRequestHandler) -> None:
        handler.send_response(200)
        handler.send_header("Content-Type", "text/plain")
        handler.send_header("Transfer-Encoding", "chunked")
        handler.end_headers()
        for line in (b"one\n", b"two\n"):
            handler.wfile.write(b"%x\r\n%s\r\n" % (len(line), line))
            handler.wfile.flush()
        handler.wfile.write(b"0\r\n\r\n")

    api.routes["/api/v1/namespaces/default/pods/web-node1/log"] = log
    code, out, err = run(api, capsys, "logs", "web-node1", "-f", "--tail", "5", "--since", "2m")
    assert (code, out) == (0, "one\ntwo\n")
    assert err == 'Defaulted container "app" out of: setup (init), app, sidecar\n'
    query = api.requests[-1][0].split("?", 1)[1]
    assert sorted(query.split("&")) == [
        "container=app",
        "follow=true",
        "sinceSeconds=120",
        "tailLines=5",
    ]


def test_events_for_a_pod(api: FakeApi, capsys: pytest.CaptureFixture[str]) -> None:
    api.json(
        "/api/v1/namespaces/default/events",
        {"kind": "EventList", "metadata": {}, "items": web_events()},
    )
    code, out, _ = run(api, capsys, "events", "--for", "pod/web-node1", "--types", "Warning")
    assert code == 0
    assert [line.split()[-6:] for line in out.splitlines()][1] == [
        "Pod/web-node1",
        "Back-off",
        "restarting",
        "failed",
        "container",
        "app",
    ]
    assert len(out.splitlines()) == 2
    assert "involvedObject.kind%3DPod%2CinvolvedObject.name%3Dweb-node1" in api.requests[0][0]


def test_the_token_is_sent_as_a_bearer(
    api: FakeApi, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    api.json("/api/v1/namespaces/default/pods", TABLE)
    token = tmp_path / "token"
    token.write_text("s3cret\n")
    assert run(api, capsys, "get", "pods", "--token-file", str(token))[0] == 0
    assert run(api, capsys, "get", "pods", "--token", "other")[0] == 0
    assert run(api, capsys, "get", "pods")[0] == 0
    assert api.authorization == ["Bearer s3cret", "Bearer other", ""]
    code, _, err = run(api, capsys, "get", "pods", "--token-file", str(tmp_path / "none"))
    assert code == 1
    assert err == f"error: --token-file {tmp_path / 'none'}: No such file or directory\n"


def test_version_prints_both(api: FakeApi, capsys: pytest.CaptureFixture[str]) -> None:
    api.json("/version", {"gitVersion": "v1.32.0-minikubelet", "major": "1", "minor": "32"})
    code, out, _ = run(api, capsys, "version")
    assert code == 0
    assert out.splitlines() == ["Client Version: v0.1.0", "Server Version: v1.32.0-minikubelet"]


def test_a_stopped_server_is_one_line_and_exit_1(capsys: pytest.CaptureFixture[str]) -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    for args in (["get", "pods"], ["describe", "pod", "x"], ["logs", "x"], ["events"], ["version"]):
        code = cli.main([*args, "--server", f"http://127.0.0.1:{port}"])
        _, err = capsys.readouterr()
        assert code == 1, args
        assert err.splitlines()[-1] == (
            f"The connection to the server 127.0.0.1:{port} was refused - "
            "did you specify the right host or port?"
        )
        assert len(err.splitlines()) == 1


def _subparsers() -> dict[str, argparse.ArgumentParser]:
    parser = cli._parser()
    action = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    return dict(action.choices)


@pytest.mark.parametrize("command", commands.COMMANDS)
def test_help_names_every_option(command: str, capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exited:
        cli.main([command, "--help"])
    assert exited.value.code == 0
    out = capsys.readouterr().out
    parser = _subparsers()[command]
    for action in parser._actions:
        for option in action.option_strings:
            assert option in out, option
        assert action.help, action.dest


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["get", "pods", "--bogus"], "error: unrecognized arguments: --bogus"),
        (["get"], "error: the following arguments are required: resource, NAME"),
        (["logs", "p", "--tail", "x"], "error: argument --tail: invalid int value: 'x'"),
        (["get", "pods", "-o", "table"], "error: argument -o/--output: invalid choice: 'table'"),
    ],
    ids=["unknown-option", "missing-resource", "bad-int", "bad-choice"],
)
def test_usage_errors_exit_1_as_kubectl(
    args: list[str], message: str, capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit) as exited:
        cli.main(args)
    assert exited.value.code == 1
    err = capsys.readouterr().err
    assert err.startswith(message)
    assert err.endswith(f"See 'minikubelet {args[0]} --help' for usage.\n")
