"""The Node and its Lease, without a server: the bodies sent, MicroTime, label
reconcile, and the loops' decisions (what is asked next after each answer, how
long they wait) against a scripted in-memory API. The real HTTP exchange with
a server keeping the API contract is tests/integration/test_cluster_node.py."""

from __future__ import annotations

import asyncio
import copy
import dataclasses
import itertools
from collections.abc import Callable
from pathlib import Path
from typing import Any, cast

import pytest

from minikubelet.cluster.api import STRATEGIC_MERGE_PATCH, ApiError, KubeApi
from minikubelet.cluster.node import (
    LEASE_NAMESPACE,
    LeaseRenewer,
    NodeContext,
    NodeReporter,
    label_patch,
    new_lease,
    registration_body,
    renew_delay,
    renewed_lease,
    status_patch,
)
from minikubelet.cluster.reporter import NodeUid
from minikubelet.events import EventRecorder, ObjectRef
from minikubelet.nodestatus.manager import NodeStatus
from minikubelet.nodestatus.readings import FsReading, HostFacts, Readings
from minikubelet.nodestatus.setters import NodeIdentity
from minikubelet.util.timefmt import rfc3339_micro

T0 = 1_796_061_600.0  # 2026-11-30T18:00:00Z
GI = 1 << 30
FACTS = HostFacts(
    kernel_version="6.1.0-18-amd64",
    os_image="Debian GNU/Linux 12 (bookworm)",
    architecture="arm64",
    machine_id="3d1219c7c4c5404aaa1f6d2a48adfda4",
    boot_id="4c11f278-0cd8-483a-92d7-baf56605b16c",
    system_uuid="",
    cpu_count=2,
)
DISK = FsReading(capacity=100 * GI, available=50 * GI, inodes=1000, inodes_free=500)
HEALTHY = Readings(
    memory_capacity=8 * GI,
    memory_available=4 * GI,
    nodefs=DISK,
    imagefs=DISK,
    pid_capacity=32768,
    pids=200,
)
IDENTITY = NodeIdentity(
    name="n1",
    created=T0,
    host_ip="192.0.2.7",
    port=10255,
    kubelet_version="v0.1.0",
    pod_cidr="10.217.0.0/16",
    runtime_version="docker://20.10.24",
)
LABELS = {
    "beta.kubernetes.io/arch": "arm64",
    "beta.kubernetes.io/os": "linux",
    "kubernetes.io/arch": "arm64",
    "kubernetes.io/hostname": "n1",
    "kubernetes.io/os": "linux",
}


class Clock:
    def __init__(self) -> None:
        self.now = T0

    def __call__(self) -> float:
        return self.now


def node_status(clock: Clock, recorder: EventRecorder) -> NodeStatus:
    status = NodeStatus(
        IDENTITY,
        FACTS,
        recorder=recorder,
        node_ref=ObjectRef("Node", "n1", uid="n1"),
        clock=clock,
        ready_errors=list,
        nodefs=Path("/"),
    )
    status.update(HEALTHY)
    return status


def local_node() -> dict[str, Any]:
    node = node_status(Clock(), EventRecorder(host="n1", clock=Clock())).node()
    assert node is not None
    return node


# --- bodies ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("ts", "text"),
    [
        (T0, "2026-11-30T18:00:00.000000Z"),
        (T0 + 0.123456, "2026-11-30T18:00:00.123456Z"),
        (T0 + 0.5, "2026-11-30T18:00:00.500000Z"),
        (T0 + 59.999999, "2026-11-30T18:00:59.999999Z"),
    ],
    ids=["whole-second", "micros", "half", "last-micro"],
)  # fmt: skip
def test_renew_time_is_a_micro_time_with_exactly_six_fractional_digits(
    ts: float, text: str
) -> None:
    assert rfc3339_micro(ts) == text
    assert new_lease("n1", uid="u", now=ts)["spec"]["renewTime"] == text


def test_the_registered_node_is_the_local_one_without_what_the_server_assigns() -> None:
    node = local_node()
    body = registration_body(node)
    assert body["metadata"] == {"name": "n1", "labels": LABELS}
    assert body["spec"] == {}
    assert body["status"] == node["status"]
    assert body["status"]["daemonEndpoints"] == {"kubeletEndpoint": {"Port": 10255}}
    body["status"]["conditions"].clear()
    assert node["status"]["conditions"], "the local Node must not be aliased"


@pytest.mark.parametrize(
    ("existing", "patch"),
    [
        (LABELS, {}),
        ({**LABELS, "node-role.kubernetes.io/edge": "", "team": "a"}, {}),
        (None, {"metadata": {"labels": LABELS}}),
        ({**LABELS, "kubernetes.io/arch": "amd64", "beta.kubernetes.io/arch": "amd64"},
         {"metadata": {"labels": {"kubernetes.io/arch": "arm64",
                                  "beta.kubernetes.io/arch": "arm64"}}}),
        ({k: v for k, v in LABELS.items() if k != "kubernetes.io/hostname"},
         {"metadata": {"labels": {"kubernetes.io/hostname": "n1"}}}),
    ],
    ids=["same", "operator-labels-kept", "no-labels", "wrong-arch", "missing-hostname"],
)  # fmt: skip
def test_registration_reconciles_only_the_kubelets_default_labels(
    existing: dict[str, str] | None, patch: dict[str, Any]
) -> None:
    assert label_patch(LABELS, existing) == patch


def test_a_default_label_without_a_value_here_is_left_to_the_server() -> None:
    wanted = {k: v for k, v in LABELS.items() if k != "kubernetes.io/hostname"}
    assert label_patch(wanted, {"kubernetes.io/hostname": "other", **wanted}) == {}


def test_the_status_patch_is_the_whole_status_with_addresses_replaced() -> None:
    node = local_node()
    patch = status_patch(node)
    assert set(patch) == {"status"}
    status = patch["status"]
    assert status["addresses"] == [
        {"$patch": "replace"},
        {"type": "InternalIP", "address": "192.0.2.7"},
        {"type": "Hostname", "address": "n1"},
    ]
    assert {c["type"] for c in status["conditions"]} == {
        "MemoryPressure",
        "DiskPressure",
        "PIDPressure",
        "Ready",
    }
    assert status["nodeInfo"]["architecture"] == "arm64"
    assert node["status"]["addresses"][0] == {"type": "InternalIP", "address": "192.0.2.7"}


def test_a_new_lease_is_held_by_the_node_and_owned_by_it() -> None:
    assert new_lease("n1", uid="uid-1", now=T0) == {
        "apiVersion": "coordination.k8s.io/v1",
        "kind": "Lease",
        "metadata": {
            "name": "n1",
            "namespace": "kube-node-lease",
            "ownerReferences": [{"apiVersion": "v1", "kind": "Node", "name": "n1", "uid": "uid-1"}],
        },
        "spec": {
            "holderIdentity": "n1",
            "leaseDurationSeconds": 40,
            "renewTime": "2026-11-30T18:00:00.000000Z",
        },
    }


def test_a_renewal_keeps_the_version_and_other_owners_and_points_at_the_current_node() -> None:
    base = new_lease("n1", uid="old", now=T0)
    base["metadata"]["resourceVersion"] = "41"
    other = {"apiVersion": "v1", "kind": "ConfigMap", "name": "x", "uid": "c"}
    base["metadata"]["ownerReferences"].append(other)
    before = copy.deepcopy(base)
    lease = renewed_lease(base, "n1", uid="new", now=T0 + 10.25)
    assert base == before
    assert lease["metadata"]["resourceVersion"] == "41"
    assert lease["metadata"]["ownerReferences"] == [
        {"apiVersion": "v1", "kind": "Node", "name": "n1", "uid": "new"},
        other,
    ]
    assert lease["spec"]["renewTime"] == "2026-11-30T18:00:10.250000Z"


def test_renewals_are_ten_seconds_apart_plus_at_most_four_percent() -> None:
    assert renew_delay(0.0) == 10.0
    assert renew_delay(0.5) == pytest.approx(10.2)
    assert renew_delay(0.999) < 10.4


# --- the loops against a scripted API -------------------------------------------------


def status_error(code: int, reason: str, retry_after: float | None = None) -> ApiError:
    return ApiError(code, reason, f"{reason} (scripted)", retry_after=retry_after)


class FakeApi:
    """Holds nodes and leases with resourceVersions, as far as the loops need;
    ``fail`` scripts the next answers of one operation."""

    server = "https://192.0.2.1:6443"

    def __init__(self) -> None:
        self.nodes: dict[str, dict[str, Any]] = {}
        self.leases: dict[str, dict[str, Any]] = {}
        self.calls: list[tuple[str, tuple[Any, ...]]] = []
        self.scripted: dict[str, list[ApiError]] = {}
        self._versions = itertools.count(1)
        self._uids = itertools.count(1)
        self.core = self
        self.coordination = self

    def fail(self, operation: str, *errors: ApiError) -> None:
        self.scripted.setdefault(operation, []).extend(errors)

    def names(self) -> list[str]:
        return [name for name, _ in self.calls]

    async def call(
        self, verb: str, operation: Callable[..., dict[str, Any]], *args: Any, **kwargs: Any
    ) -> dict[str, Any]:
        self.calls.append((operation.__name__, args))
        if self.scripted.get(operation.__name__):
            raise self.scripted[operation.__name__].pop(0)
        return copy.deepcopy(operation(*args, **kwargs))

    def _stored(self, obj: dict[str, Any], *, uid: bool) -> dict[str, Any]:
        obj = copy.deepcopy(obj)
        obj["metadata"]["resourceVersion"] = str(next(self._versions))
        if uid:
            obj["metadata"]["uid"] = f"uid-{next(self._uids)}"
        return obj

    def create_node(self, body: dict[str, Any]) -> dict[str, Any]:
        name = body["metadata"]["name"]
        if name in self.nodes:
            raise status_error(409, "AlreadyExists")
        self.nodes[name] = self._stored(body, uid=True)
        return self.nodes[name]

    def read_node(self, name: str) -> dict[str, Any]:
        if name not in self.nodes:
            raise status_error(404, "NotFound")
        return self.nodes[name]

    def patch_node(self, name: str, body: dict[str, Any], *, _content_type: str) -> dict[str, Any]:
        assert _content_type == STRATEGIC_MERGE_PATCH
        node = self.read_node(name)
        node["metadata"].setdefault("labels", {}).update(body["metadata"]["labels"])
        self.nodes[name] = self._stored(node, uid=False)
        return self.nodes[name]

    def patch_node_status(
        self, name: str, body: dict[str, Any], *, _content_type: str
    ) -> dict[str, Any]:
        assert _content_type == STRATEGIC_MERGE_PATCH
        node = self.read_node(name)
        node["status"] = body["status"]
        self.nodes[name] = self._stored(node, uid=False)
        return self.nodes[name]

    def read_namespaced_lease(self, name: str, namespace: str) -> dict[str, Any]:
        assert namespace == LEASE_NAMESPACE
        if name not in self.leases:
            raise status_error(404, "NotFound")
        return self.leases[name]

    def create_namespaced_lease(self, namespace: str, body: dict[str, Any]) -> dict[str, Any]:
        name = body["metadata"]["name"]
        if name in self.leases:
            raise status_error(409, "AlreadyExists")
        self.leases[name] = self._stored(body, uid=True)
        return self.leases[name]

    def replace_namespaced_lease(
        self, name: str, namespace: str, body: dict[str, Any]
    ) -> dict[str, Any]:
        current = self.read_namespaced_lease(name, namespace)
        if body["metadata"].get("resourceVersion") != current["metadata"]["resourceVersion"]:
            raise status_error(409, "Conflict")
        self.leases[name] = self._stored(body, uid=False)
        return self.leases[name]


class Sleeps:
    def __init__(self) -> None:
        self.delays: list[float] = []

    async def __call__(self, delay: float) -> None:
        self.delays.append(delay)
        await asyncio.sleep(0)


class World:
    def __init__(self) -> None:
        self.api = FakeApi()
        self.clock = Clock()
        self.recorder = EventRecorder(host="n1", clock=self.clock)
        self.sleeps = Sleeps()
        self.ctx = NodeContext(
            cast(KubeApi, self.api),
            node_name="n1",
            recorder=self.recorder,
            node_ref=ObjectRef("Node", "n1", uid="n1"),
            clock=self.clock,
            sleep=self.sleeps,
            # No jitter: the delays are the schedule's own.
            rand=lambda: 0.5,
        )
        self.status = node_status(self.clock, self.recorder)
        self.uid = NodeUid()
        self.reporter = NodeReporter(self.ctx, node_status=self.status, set_uid=self.uid.set)
        self.lease = LeaseRenewer(self.ctx, node_uid=self.uid)

    def reasons(self) -> list[str]:
        """Events of the API parts, without NodeStatus's condition events."""
        return [e.reason for e in self.recorder.list() if "status is now" not in e.message]


async def test_a_new_node_is_created_with_its_status_and_its_uid_taken() -> None:
    w = World()
    await w.reporter.register()
    assert w.api.names() == ["create_node"]
    assert w.uid.value == w.api.nodes["n1"]["metadata"]["uid"]
    assert w.reporter.written == w.status.version
    assert w.reasons() == ["RegisteredNode"]


async def test_an_existing_node_is_adopted_and_only_its_default_labels_fixed() -> None:
    w = World()
    w.api.nodes["n1"] = {
        "metadata": {"name": "n1", "uid": "theirs", "labels": {"kubernetes.io/hostname": "x"}},
        "status": {},
    }
    await w.reporter.register()
    assert w.api.names() == ["create_node", "read_node", "patch_node"]
    patch = w.api.calls[2][1][1]
    assert patch == {"metadata": {"labels": {**LABELS}}}
    assert w.uid.value == "theirs"
    # Its status is someone's old one: the next report patches it.
    assert w.reporter.written is None


async def test_registration_retries_forever_from_100_ms_doubling_to_7_s() -> None:
    w = World()
    w.api.fail("create_node", *[status_error(0, "ClientConnectorError")] * 9)
    await w.reporter.register()
    assert w.sleeps.delays == [0.1, 0.2, 0.4, 0.8, 1.6, 3.2, 6.4, 7.0, 7.0]
    assert w.uid.value is not None
    # No answer is the health check's to report, not a registration event.
    assert w.reasons() == ["RegisteredNode"]


async def test_a_refused_registration_is_a_warning_event() -> None:
    w = World()
    w.api.fail(
        "create_node",
        status_error(422, "Invalid"),
        status_error(401, "Unauthorized"),
        status_error(429, "TooManyRequests", retry_after=5),
    )
    await w.reporter.register()
    assert w.reasons() == ["NodeRegistrationFailed", "RegisteredNode"]
    # Retry-After is a floor under the back-off.
    assert w.sleeps.delays[2] >= 5


async def test_the_status_is_patched_on_change_only_and_a_deleted_node_ends_the_report() -> None:
    w = World()
    await w.reporter.register()
    report = asyncio.create_task(w.reporter.report())
    for _ in range(3):
        w.clock.now += 10
        w.status.update(HEALTHY)  # heartbeats only
        await asyncio.sleep(0)
    assert w.api.names() == ["create_node"]
    w.clock.now += 10
    w.status.update(dataclasses.replace(HEALTHY, memory_available=0))
    for _ in range(5):
        await asyncio.sleep(0)
    assert w.api.names() == ["create_node", "patch_node_status"]
    body = w.api.calls[1][1][1]
    memory = next(c for c in body["status"]["conditions"] if c["type"] == "MemoryPressure")
    assert memory["status"] == "True"
    # Deleted on the server: the report ends, to register again.
    del w.api.nodes["n1"]
    w.clock.now += 10
    w.status.update(dataclasses.replace(HEALTHY, memory_capacity=16 * GI))
    await asyncio.wait_for(report, 1)
    assert w.reporter.written is None


async def test_a_failed_status_patch_is_retried_with_back_off_with_the_newest_status() -> None:
    w = World()
    await w.reporter.register()
    w.reporter.written = None
    w.api.fail("patch_node_status", *[status_error(503, "ServiceUnavailable")] * 6)
    report = asyncio.create_task(w.reporter.report())
    for _ in range(50):
        await asyncio.sleep(0)
    report.cancel()
    assert w.api.names().count("patch_node_status") == 7
    assert w.sleeps.delays == [0.2, 0.4, 0.8, 1.6, 3.2, 6.4]
    assert w.reporter.written == w.status.version


async def test_the_lease_is_created_owned_by_the_node_then_renewed_by_put_without_get() -> None:
    w = World()
    w.uid.set("uid-node")
    await w.lease.sync()
    assert w.api.names() == ["read_namespaced_lease", "create_namespaced_lease"]
    created = w.api.leases["n1"]
    assert created["metadata"]["ownerReferences"][0]["uid"] == "uid-node"
    w.clock.now += 10.1
    await w.lease.sync()
    await w.lease.sync()
    assert w.api.names()[2:] == ["replace_namespaced_lease"] * 2
    assert w.api.leases["n1"]["spec"]["renewTime"] == "2026-11-30T18:00:10.100000Z"


async def test_an_existing_lease_is_read_and_renewed() -> None:
    w = World()
    w.uid.set("uid-node")
    w.api.leases["n1"] = {
        "metadata": {"name": "n1", "namespace": LEASE_NAMESPACE, "resourceVersion": "7"},
        "spec": {"holderIdentity": "n1"},
    }
    await w.lease.sync()
    assert w.api.names() == ["read_namespaced_lease", "replace_namespaced_lease"]
    assert w.api.leases["n1"]["metadata"]["ownerReferences"][0]["uid"] == "uid-node"


async def test_a_conflict_reads_the_lease_and_retries_and_a_missing_one_is_created() -> None:
    w = World()
    w.uid.set("uid-node")
    await w.lease.sync()
    # Someone else wrote it: the stale PUT conflicts, a GET gives the new base.
    w.api.leases["n1"]["metadata"]["resourceVersion"] = "999"
    await w.lease.sync()
    assert w.api.names()[2:] == [
        "replace_namespaced_lease",
        "read_namespaced_lease",
        "replace_namespaced_lease",
    ]
    del w.api.leases["n1"]
    await w.lease.sync()
    assert w.api.names()[5:] == [
        "replace_namespaced_lease",
        "read_namespaced_lease",
        "create_namespaced_lease",
    ]
    assert w.reasons() == []


async def test_a_lease_round_gives_up_after_five_tries_then_waits_for_the_server() -> None:
    w = World()
    w.uid.set("uid-node")
    await w.lease.sync()
    down = status_error(0, "ClientConnectorError")
    w.api.fail("replace_namespaced_lease", *[down] * 5)
    w.api.fail("read_namespaced_lease", *[down] * 3)
    await w.lease.sync()
    assert w.api.names()[2:] == ["replace_namespaced_lease"] * 5 + ["read_namespaced_lease"] * 4 + [
        "replace_namespaced_lease"
    ]
    assert w.sleeps.delays == [0.2, 0.4, 0.8]


async def test_the_lease_waits_for_the_nodes_uid() -> None:
    w = World()
    run = asyncio.create_task(w.lease.run())
    for _ in range(5):
        await asyncio.sleep(0)
    assert w.api.calls == []
    w.uid.set("uid-node")
    for _ in range(5):
        await asyncio.sleep(0)
    run.cancel()
    # Created, then the next round 10 s later (the fake sleep returns at once) renews it.
    assert w.api.names()[:3] == [
        "read_namespaced_lease",
        "create_namespaced_lease",
        "replace_namespaced_lease",
    ]
    assert w.sleeps.delays[0] == pytest.approx(10.2)
