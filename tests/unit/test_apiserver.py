"""The test API server (tests/apiserver) keeps the Kubernetes API contract it promises.

Each case talks real HTTP to a server running in this process, as the agent and kubectl
will; no Docker. Expected words and codes are the real kube-apiserver's.
"""

from __future__ import annotations

import contextlib
import http.client
import json
import socket
import ssl
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.apiserver import FakeApiServer, RealCluster
from tests.integration.tls import Pki, make_pki

MERGE = "application/merge-patch+json"
SMP = "application/strategic-merge-patch+json"
JSON_PATCH = "application/json-patch+json"
PODS = "/api/v1/namespaces/default/pods"
LEASES = "/apis/coordination.k8s.io/v1/namespaces/kube-node-lease/leases"
TOKEN = "t0ken"


class Client:
    def __init__(self, server: FakeApiServer, *, context: ssl.SSLContext | None = None) -> None:
        self.server = server
        self.context = context
        self.token = ""

    def call(
        self, method: str, path: str, body: Any = None, *, ct: str = "application/json"
    ) -> tuple[int, Any, dict[str, str]]:
        data = json.dumps(body).encode() if body is not None else None
        request = urllib.request.Request(self.server.url + path, data=data, method=method)
        request.add_header("Content-Type", ct)
        if self.token:
            request.add_header("Authorization", f"Bearer {self.token}")
        try:
            with urllib.request.urlopen(request, timeout=10, context=self.context) as resp:
                return resp.status, json.loads(resp.read()), dict(resp.headers)
        except urllib.error.HTTPError as e:
            with e:
                return e.code, json.loads(e.read()), dict(e.headers)

    def ok(self, method: str, path: str, body: Any = None, *, ct: str = "application/json") -> Any:
        code, answer, _ = self.call(method, path, body, ct=ct)
        assert code in (200, 201), answer
        return answer

    def watch(self, path: str) -> list[dict[str, Any]]:
        """Every event of a watch that ends by itself (timeoutSeconds or an error)."""
        request = urllib.request.Request(self.server.url + path)
        with urllib.request.urlopen(request, timeout=10, context=self.context) as resp:
            return [json.loads(line) for line in resp]


def pod(name: str, node: str = "n1", **labels: str) -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": name, "labels": labels},
        "spec": {"nodeName": node, "containers": [{"name": "c", "image": "busybox"}]},
    }


def lease(name: str, renew: str = "2025-01-02T03:04:05.123456Z") -> dict[str, Any]:
    return {
        "apiVersion": "coordination.k8s.io/v1",
        "kind": "Lease",
        "metadata": {"name": name, "namespace": "kube-node-lease"},
        "spec": {"holderIdentity": name, "leaseDurationSeconds": 40, "renewTime": renew},
    }


@pytest.fixture(scope="module")
def server() -> Iterator[FakeApiServer]:
    fake = FakeApiServer(require_auth=False)
    fake.start()
    yield fake
    fake.stop()


@pytest.fixture
def api(server: FakeApiServer) -> Client:
    return Client(server)


_names = iter(range(10**6))


@pytest.fixture
def name() -> str:
    return f"obj-{next(_names)}"


# --- create, get, update, delete ------------------------------------------------------


def test_create_stamps_uid_version_time_and_drops_a_pods_status(api: Client, name: str) -> None:
    body = pod(name)
    body["status"] = {"phase": "Running"}
    created = api.ok("POST", PODS, body)
    meta = created["metadata"]
    assert meta["uid"]
    assert meta["creationTimestamp"].endswith("Z")
    assert created["status"] == {"phase": "Pending"}
    again = api.ok("GET", f"{PODS}/{name}")
    assert again == created
    assert int(api.ok("GET", PODS)["metadata"]["resourceVersion"]) >= int(meta["resourceVersion"])


def test_already_exists_and_not_found(api: Client, name: str) -> None:
    api.ok("POST", PODS, pod(name))
    code, answer, _ = api.call("POST", PODS, pod(name))
    assert (code, answer["reason"], answer["details"]) == (
        409,
        "AlreadyExists",
        {"name": name, "kind": "pods"},
    )
    assert answer["message"] == f'pods "{name}" already exists'
    code, answer, _ = api.call("GET", f"{PODS}/nope")
    assert (code, answer["reason"], answer["message"]) == (404, "NotFound", 'pods "nope" not found')
    code, answer, _ = api.call("POST", "/api/v1/namespaces/elsewhere/pods", pod(name))
    assert (code, answer["message"]) == (404, 'namespaces "elsewhere" not found')
    code, answer, _ = api.call("PUT", f"{LEASES}/nope", lease("nope"))
    assert code == 404


def test_put_needs_the_current_resource_version(api: Client, name: str) -> None:
    created = api.ok("POST", LEASES, lease(name))
    stale = created["metadata"]["resourceVersion"]
    created["spec"]["leaseDurationSeconds"] = 41
    updated = api.ok("PUT", f"{LEASES}/{name}", created)
    assert int(updated["metadata"]["resourceVersion"]) > int(stale)
    code, answer, _ = api.call("PUT", f"{LEASES}/{name}", created)  # the old version again
    assert (code, answer["reason"]) == (409, "Conflict")
    assert answer["message"] == (
        f'Operation cannot be fulfilled on leases.coordination.k8s.io "{name}": the object has '
        "been modified; please apply your changes to the latest version and try again"
    )
    del updated["metadata"]["resourceVersion"]
    code, answer, _ = api.call("PUT", f"{LEASES}/{name}", updated)
    assert code == 422
    assert answer["details"]["causes"][0]["field"] == "metadata.resourceVersion"


def test_a_no_op_write_keeps_the_version(api: Client, name: str) -> None:
    created = api.ok("POST", LEASES, lease(name))
    same = api.ok("PUT", f"{LEASES}/{name}", created)
    assert same["metadata"]["resourceVersion"] == created["metadata"]["resourceVersion"]


def test_writes_to_a_pod_ignore_status_and_status_writes_ignore_the_rest(
    api: Client, name: str
) -> None:
    api.ok("POST", PODS, pod(name))
    patched = api.ok(
        "PATCH",
        f"{PODS}/{name}",
        {"metadata": {"labels": {"a": "b"}}, "status": {"phase": "Failed"}},
        ct=MERGE,
    )
    assert patched["metadata"]["labels"] == {"a": "b"}
    assert patched["status"]["phase"] == "Pending"
    patched = api.ok(
        "PATCH",
        f"{PODS}/{name}/status",
        {"metadata": {"labels": {"a": "c"}}, "status": {"phase": "Running"}},
        ct=MERGE,
    )
    assert patched["metadata"]["labels"] == {"a": "b"}
    assert patched["status"]["phase"] == "Running"


def test_delete_preconditions(api: Client, name: str) -> None:
    created = api.ok("POST", LEASES, lease(name))
    meta = created["metadata"]
    wrong_uid = {"preconditions": {"uid": "0000"}}
    code, answer, _ = api.call("DELETE", f"{LEASES}/{name}", wrong_uid)
    assert (code, answer["reason"]) == (409, "Conflict")
    assert (
        f"the UID in the precondition (0000) does not match the UID in record ({meta['uid']})"
        in (answer["message"])
    )
    code, answer, _ = api.call(
        "DELETE", f"{LEASES}/{name}", {"preconditions": {"resourceVersion": "1"}}
    )
    assert code == 409
    assert "the ResourceVersion in the precondition (1) does not match" in answer["message"]
    right = {"preconditions": {"uid": meta["uid"], "resourceVersion": meta["resourceVersion"]}}
    api.ok("DELETE", f"{LEASES}/{name}", right)
    assert api.call("GET", f"{LEASES}/{name}")[0] == 404


def test_a_bound_pod_terminates_until_deleted_with_grace_zero(
    api: Client, server: FakeApiServer, name: str
) -> None:
    api.ok("POST", PODS, pod(name))
    marked = api.ok("DELETE", f"{PODS}/{name}")
    assert marked["metadata"]["deletionGracePeriodSeconds"] == 30
    assert marked["metadata"]["deletionTimestamp"]
    assert server.get("pods", name, "default") is not None
    api.ok("DELETE", f"{PODS}/{name}", {"gracePeriodSeconds": 0})
    assert server.get("pods", name, "default") is None
    # Unbound: nothing to stop, so it goes at once.
    api.ok("POST", PODS, pod(name, node=""))
    api.ok("DELETE", f"{PODS}/{name}")
    assert server.get("pods", name, "default") is None


# --- patches --------------------------------------------------------------------------


def test_strategic_merge_of_conditions_by_type_and_atomic_container_statuses(
    api: Client, name: str
) -> None:
    api.ok("POST", PODS, pod(name))
    status = {
        "conditions": [
            {"type": "Ready", "status": "False"},
            {"type": "example.com/Foreign", "status": "True"},
        ],
        "containerStatuses": [
            {"name": "c", "image": "busybox", "imageID": "", "ready": False, "restartCount": 0},
            {"name": "d", "image": "busybox", "imageID": "", "ready": False, "restartCount": 0},
        ],
    }
    api.ok("PATCH", f"{PODS}/{name}/status", {"status": status}, ct=SMP)
    change = {
        "conditions": [{"type": "Ready", "status": "True"}],
        "containerStatuses": [
            {"name": "c", "image": "busybox", "imageID": "", "ready": True, "restartCount": 1}
        ],
    }
    after = api.ok("PATCH", f"{PODS}/{name}/status", {"status": change}, ct=SMP)["status"]
    assert after["conditions"] == [
        {"type": "Ready", "status": "True"},
        {"type": "example.com/Foreign", "status": "True"},
    ]
    assert after["containerStatuses"] == change["containerStatuses"]
    drop = {"status": {"conditions": [{"type": "Ready", "$patch": "delete"}]}}
    after = api.ok("PATCH", f"{PODS}/{name}/status", drop, ct=SMP)["status"]
    assert after["conditions"] == [{"type": "example.com/Foreign", "status": "True"}]
    after = api.ok("PATCH", f"{PODS}/{name}", {"metadata": {"labels": None}}, ct=SMP)
    assert "labels" not in after["metadata"]


def test_merge_patch_replaces_lists_and_json_patch_edits(api: Client, name: str) -> None:
    api.ok("POST", PODS, pod(name))
    conditions = [{"type": "Ready", "status": "True"}, {"type": "Other", "status": "True"}]
    api.ok("PATCH", f"{PODS}/{name}/status", {"status": {"conditions": conditions}}, ct=MERGE)
    one = {"status": {"conditions": [{"type": "Ready", "status": "False"}]}}
    after = api.ok("PATCH", f"{PODS}/{name}/status", one, ct=MERGE)
    assert after["status"]["conditions"] == one["status"]["conditions"]
    ops = [
        {"op": "test", "path": "/status/phase", "value": "Pending"},
        {"op": "replace", "path": "/status/phase", "value": "Running"},
    ]
    after = api.ok("PATCH", f"{PODS}/{name}/status", ops, ct=JSON_PATCH)
    assert after["status"]["phase"] == "Running"
    code, _, _ = api.call("PATCH", f"{PODS}/{name}/status", ops, ct=JSON_PATCH)
    assert code == 422  # the test op fails now
    code, answer, _ = api.call("PATCH", f"{PODS}/{name}", {}, ct="application/json")
    assert (code, answer["reason"]) == (415, "UnsupportedMediaType")


def test_patch_preconditions_on_uid_and_version(api: Client, name: str) -> None:
    created = api.ok("POST", PODS, pod(name))
    uid = created["metadata"]["uid"]
    patch = {"metadata": {"uid": "other"}, "status": {"phase": "Running"}}
    code, answer, _ = api.call("PATCH", f"{PODS}/{name}/status", patch, ct=SMP)
    assert (code, answer["reason"]) == (409, "Conflict")
    assert (
        answer["message"]
        == f"Precondition failed: UID in precondition: other, UID in object meta: {uid}"
    )
    patch = {"metadata": {"resourceVersion": "1"}, "status": {"phase": "Running"}}
    assert api.call("PATCH", f"{PODS}/{name}/status", patch, ct=MERGE)[0] == 409
    patch["metadata"] = {"uid": uid, "resourceVersion": created["metadata"]["resourceVersion"]}
    api.ok("PATCH", f"{PODS}/{name}/status", patch, ct=MERGE)


# --- validation ------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("renew", "code"),
    [
        ("2025-01-02T03:04:05.123456Z", 201),
        ("2025-01-02T03:04:05.123456+02:00", 201),
        ("2025-01-02T03:04:05Z", 400),
        ("2025-01-02T03:04:05.123Z", 400),
        ("2025-01-02T03:04:05.1234567Z", 400),
        ("yesterday", 400),
    ],
    ids=["six-digits", "offset", "no-fraction", "three-digits", "seven-digits", "words"],
)
def test_lease_times_are_microtime_with_six_digits(
    api: Client, server: FakeApiServer, name: str, renew: str, code: int
) -> None:
    before = len(server.rejected)
    got, answer, _ = api.call("POST", LEASES, lease(name, renew))
    assert got == code, answer
    if code == 400:
        assert answer["reason"] == "BadRequest"
        assert "spec.renewTime" in answer["message"]
        assert len(server.rejected) == before + 1
    else:
        assert answer["spec"]["renewTime"].endswith("Z")


@pytest.mark.parametrize(
    ("change", "field"),
    [
        ({"spec": {"holderIdentity": "x", "bogus": 1}}, "spec.bogus"),
        ({"spec": {"leaseDurationSeconds": "forty"}}, "spec.leaseDurationSeconds"),
        ({"metadata": {"name": "Not_A_Name"}}, "metadata.name"),
    ],
    ids=["unknown-field", "wrong-type", "bad-name"],
)
def test_strict_validation_refuses_and_records(
    api: Client, server: FakeApiServer, name: str, change: dict[str, Any], field: str
) -> None:
    body = lease(name)
    for key, value in change.items():
        body[key].update(value)
    before = len(server.rejected)
    code, answer, _ = api.call("POST", LEASES, body)
    assert (code, answer["reason"]) == (422, "Invalid")
    assert [c["field"] for c in answer["details"]["causes"]] == [field]
    assert [r.errors[0].split(":")[0] for r in server.rejected[before:]] == [field]


def test_time_fields_are_rfc3339_and_stored_in_seconds(api: Client, name: str) -> None:
    api.ok("POST", PODS, pod(name))
    condition = {"type": "Ready", "status": "True", "lastTransitionTime": "2025-01-02T03:04:05.9Z"}
    after = api.ok(
        "PATCH", f"{PODS}/{name}/status", {"status": {"conditions": [condition]}}, ct=SMP
    )
    assert after["status"]["conditions"][0]["lastTransitionTime"] == "2025-01-02T03:04:05Z"
    condition["lastTransitionTime"] = "02/01/2025"
    code, answer, _ = api.call(
        "PATCH", f"{PODS}/{name}/status", {"status": {"conditions": [condition]}}, ct=SMP
    )
    assert code == 400
    assert "status.conditions[0].lastTransitionTime" in answer["message"]


# --- lists and watches -----------------------------------------------------------------


def test_list_with_label_and_field_selectors(api: Client, server: FakeApiServer) -> None:
    for n, node, tier in (("sel-a", "n1", "web"), ("sel-b", "n2", "web"), ("sel-c", "n1", "db")):
        api.ok("POST", PODS, pod(n, node=node, tier=tier, group="sel"))

    def names(query: str) -> list[str]:
        return [p["metadata"]["name"] for p in api.ok("GET", f"/api/v1/pods?{query}")["items"]]

    assert names("labelSelector=group%3Dsel,tier%3Dweb") == ["sel-a", "sel-b"]
    assert names("labelSelector=group%3Dsel,tier+notin+(web)") == ["sel-c"]
    assert names("labelSelector=group%3Dsel,tier!%3Ddb") == ["sel-a", "sel-b"]
    assert names("labelSelector=group,!nope&fieldSelector=spec.nodeName%3Dn1") == ["sel-a", "sel-c"]
    assert names(
        "labelSelector=group&fieldSelector=spec.nodeName!%3Dn1,status.phase%3DPending"
    ) == ["sel-b"]
    assert names("fieldSelector=metadata.name%3D%3Dsel-c") == ["sel-c"]
    listed = api.ok("GET", "/api/v1/pods?labelSelector=group")
    assert listed["metadata"]["resourceVersion"] == str(server.store.rv)
    assert "kind" not in listed["items"][0]
    code, answer, _ = api.call("GET", "/api/v1/pods?fieldSelector=spec.bogus%3D1")
    assert (code, answer["reason"]) == (400, "BadRequest")


def test_watch_from_a_version_with_selector_transitions(api: Client, name: str) -> None:
    start = api.ok("GET", PODS)["metadata"]["resourceVersion"]
    api.ok("POST", PODS, pod(name, role="in"))
    api.ok("PATCH", f"{PODS}/{name}", {"metadata": {"labels": {"role": "out"}}}, ct=MERGE)
    api.ok("PATCH", f"{PODS}/{name}", {"metadata": {"labels": {"role": "in"}}}, ct=MERGE)
    api.ok("PATCH", f"{PODS}/{name}/status", {"status": {"phase": "Running"}}, ct=MERGE)
    api.ok("DELETE", f"{PODS}/{name}?gracePeriodSeconds=0")
    events = api.watch(
        f"{PODS}?watch=1&resourceVersion={start}&labelSelector=role%3Din&timeoutSeconds=1"
    )
    assert [e["type"] for e in events] == ["ADDED", "DELETED", "ADDED", "MODIFIED", "DELETED"]
    assert events[1]["object"]["metadata"]["labels"]["role"] == "out"
    versions = [int(e["object"]["metadata"]["resourceVersion"]) for e in events]
    assert versions == sorted(versions)
    assert versions[0] > int(start)


def test_watch_without_version_lists_first_and_times_out(api: Client, name: str) -> None:
    api.ok("POST", LEASES, lease(name))
    started = time.monotonic()
    events = api.watch(f"{LEASES}?watch=true&fieldSelector=metadata.name%3D{name}&timeoutSeconds=1")
    assert [(e["type"], e["object"]["metadata"]["name"]) for e in events] == [("ADDED", name)]
    assert 0.9 < time.monotonic() - started < 5


@pytest.mark.parametrize("flag", ["true", "1", "True", "t"])
def test_watch_flag_is_read_as_go_reads_a_bool(api: Client, name: str, flag: str) -> None:
    # kubernetes_asyncio sends watch=True; the real server takes it (strconv.ParseBool).
    api.ok("POST", LEASES, lease(name))
    events = api.watch(
        f"{LEASES}?watch={flag}&fieldSelector=metadata.name%3D{name}&timeoutSeconds=1"
    )
    assert [e["type"] for e in events] == ["ADDED"]


def test_a_bad_watch_flag_is_400(api: Client) -> None:
    status, _, _ = api.call("GET", f"{LEASES}?watch=yes")
    assert status == 400


def test_watch_too_old_is_410_expired() -> None:
    fake = FakeApiServer(require_auth=False, history=3)
    fake.start()
    try:
        api = Client(fake)
        for i in range(5):
            api.ok("POST", LEASES, lease(f"l{i}"))
        events = api.watch(f"{LEASES}?watch=1&resourceVersion=2&timeoutSeconds=5")
        assert [e["type"] for e in events] == ["ERROR"]
        assert (events[0]["object"]["code"], events[0]["object"]["reason"]) == (410, "Expired")
        recent = api.watch(f"{LEASES}?watch=1&resourceVersion={fake.store.rv - 1}&timeoutSeconds=1")
        assert [e["object"]["metadata"]["name"] for e in recent] == ["l4"]
    finally:
        fake.stop()


def test_a_table_for_kubectl(api: Client, name: str) -> None:
    api.ok("POST", PODS, pod(name))
    request = urllib.request.Request(f"{api.server.url}{PODS}/{name}")
    request.add_header("Accept", "application/json;as=Table;v=v1;g=meta.k8s.io,application/json")
    with urllib.request.urlopen(request, timeout=5) as resp:
        answer = json.loads(resp.read())
    assert answer["kind"] == "Table"
    assert [c["name"] for c in answer["columnDefinitions"]][:5] == [
        "Name",
        "Ready",
        "Status",
        "Restarts",
        "Age",
    ]
    assert answer["rows"][0]["cells"][:3] == [name, "0/1", "Pending"]


# --- auth, TLS and faults ---------------------------------------------------------------


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> Pki:
    return make_pki(tmp_path_factory.mktemp("pki"))


@pytest.fixture(scope="module")
def tls_server(pki: Pki) -> Iterator[FakeApiServer]:
    fake = FakeApiServer(tls=pki, tokens={TOKEN})
    fake.start()
    yield fake
    fake.stop()


def test_tls_auth_by_token_and_client_certificate(tls_server: FakeApiServer, pki: Pki) -> None:
    assert tls_server.url.startswith("https://127.0.0.1:")
    anonymous = Client(tls_server, context=pki.context())
    code, answer, headers = anonymous.call("GET", "/api/v1/nodes")
    assert (code, answer["reason"]) == (401, "Unauthorized")
    assert headers["WWW-Authenticate"].startswith("Bearer")
    anonymous.token = "wrong"
    assert anonymous.call("GET", "/api/v1/nodes")[0] == 401
    anonymous.token = TOKEN
    assert anonymous.call("GET", "/api/v1/nodes")[0] == 200
    by_cert = Client(tls_server, context=pki.context((pki.client_cert, pki.client_key)))
    assert by_cert.call("GET", "/api/v1/nodes")[0] == 200
    assert tls_server.request_log()[-1].user == "cert:client-user"
    stranger = Client(tls_server, context=pki.context((pki.stranger_cert, pki.stranger_key)))
    with pytest.raises((ssl.SSLError, urllib.error.URLError, ConnectionError)):
        stranger.call("GET", "/api/v1/nodes")


def test_kubeconfig_names_the_server_and_credentials(
    tls_server: FakeApiServer, tmp_path: Path
) -> None:
    import yaml

    for auth in ("token", "tokenFile", "cert", "cert-data", "none"):
        path = tls_server.write_kubeconfig(tmp_path / f"{auth}.yaml", auth=auth)
        config = yaml.safe_load(path.read_text())
        assert config["clusters"][0]["cluster"]["server"] == tls_server.url
        user = config["users"][0]["user"]
        expected = {
            "token": {"token"},
            "tokenFile": {"tokenFile"},
            "cert": {"client-certificate", "client-key"},
            "cert-data": {"client-certificate-data", "client-key-data"},
            "none": set(),
        }[auth]
        assert set(user) == expected
    assert (
        Path(user.get("tokenFile", tmp_path / "tokenFile.yaml.token")).read_text() == TOKEN + "\n"
    )


def test_go_down_refuses_connections_until_come_up(api: Client, server: FakeApiServer) -> None:
    port = server.port
    server.go_down()
    try:
        with (
            pytest.raises(ConnectionRefusedError),
            socket.create_connection(("127.0.0.1", port), 2),
        ):
            pass
        server.create("leases", lease("made-while-down"))  # tests still act on the store
    finally:
        server.come_up()
    assert server.port == port
    assert api.ok("GET", f"{LEASES}/made-while-down")["spec"]["holderIdentity"] == "made-while-down"


def test_go_down_cuts_an_open_watch(server: FakeApiServer) -> None:
    # Only the cut can end it early: the watch asks for 30 s.
    request = urllib.request.Request(f"{server.url}{LEASES}?watch=1&timeoutSeconds=30")
    started = time.monotonic()
    with urllib.request.urlopen(request, timeout=10) as resp:
        server.go_down()
        try:
            with contextlib.suppress(http.client.IncompleteRead, ConnectionError):
                while resp.readline():
                    pass
        finally:
            server.come_up()
    assert time.monotonic() - started < 5


def test_fail_next_with_retry_after_and_a_match(api: Client, server: FakeApiServer) -> None:
    server.fail_next(429, count=2, retry_after=3, match=lambda method, path: method == "POST")
    assert api.call("GET", PODS)[0] == 200  # not matched
    for _ in range(2):
        code, answer, headers = api.call("POST", LEASES, lease("after-429"))
        assert (code, answer["reason"], headers["Retry-After"]) == (429, "TooManyRequests", "3")
        assert answer["details"]["retryAfterSeconds"] == 3
    api.ok("POST", LEASES, lease("after-429"))
    server.fail_next(503)
    assert api.call("GET", PODS)[0] == 503
    assert api.call("GET", PODS)[0] == 200
    statuses = [r.status for r in server.request_log() if r.path == LEASES and r.method == "POST"]
    assert statuses[-3:] == [429, 429, 201]


def test_latency_slows_every_answer(api: Client, server: FakeApiServer) -> None:
    server.latency = 0.3
    try:
        started = time.monotonic()
        api.ok("GET", "/api/v1/nodes")
        assert time.monotonic() - started >= 0.3
    finally:
        server.latency = 0.0


def test_discovery_for_kubectl(api: Client) -> None:
    resources = {r["name"]: r for r in api.ok("GET", "/api/v1")["resources"]}
    assert resources["pods"]["shortNames"] == ["po"]
    assert resources["nodes"]["namespaced"] is False
    assert "patch" in resources["pods/status"]["verbs"]
    groups = [g["name"] for g in api.ok("GET", "/apis")["groups"]]
    assert "coordination.k8s.io" in groups
    leases = api.ok("GET", "/apis/coordination.k8s.io/v1")["resources"]
    assert [r["name"] for r in leases] == ["leases"]
    assert api.call("GET", "/openapi/v2")[0] == 404


def test_real_cluster_reads_and_acts_through_a_kubeconfig(
    tls_server: FakeApiServer, tmp_path: Path
) -> None:
    # Pointed at the test server, the stand-in for a real cluster must see what it holds.
    real = RealCluster(tls_server.write_kubeconfig(tmp_path / "kubeconfig", auth="tokenFile"))
    real.create("leases", lease("real-1"))
    assert real.get("leases", "real-1", "kube-node-lease") == tls_server.get(
        "leases", "real-1", "kube-node-lease"
    )
    assert "real-1" in [x["metadata"]["name"] for x in real.list("leases", "kube-node-lease")]
    patched = real.patch("leases", "real-1", {"spec": {"holderIdentity": "x"}}, "kube-node-lease")
    assert patched["spec"]["holderIdentity"] == "x"
    real.delete("leases", "real-1", "kube-node-lease")
    assert real.get("leases", "real-1", "kube-node-lease") is None
    with pytest.raises(pytest.skip.Exception, match="fault injection"):
        real.fail_next(500)
