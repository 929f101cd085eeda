"""Mirror pods without a network: the mirror body, the status diff, the decision per
pod name, the coalescing of work per name, and MirrorPods driven end to end
against an in-memory stand-in of the pod API (the real HTTP path is tested in
tests/integration/test_cluster_mirror.py against the test API server)."""

from __future__ import annotations

import asyncio
import copy
import itertools
import uuid
from collections.abc import AsyncIterator, Callable
from typing import Any, cast

import pytest

from minikubelet.cluster import mirror as mirror_module
from minikubelet.cluster.api import ApiError, KubeApi
from minikubelet.cluster.mirror import MirrorPods
from minikubelet.cluster.mirrordiff import (
    Action,
    MirrorView,
    StaticView,
    decide,
    mirror_body,
    status_patch,
)
from minikubelet.cluster.retry import Retry
from minikubelet.cluster.slots import Slots
from minikubelet.events import EventRecorder
from minikubelet.model import naming
from minikubelet.model.manifest import pod_from_document
from minikubelet.model.spec import Pod
from minikubelet.status.manager import StatusManager, pod_object
from minikubelet.status.types import (
    ContainerStatus,
    PodCondition,
    PodPhase,
    PodStatus,
    StateRunning,
)

NODE = "node"
NODE_UID = "node-uid-1"


def static_pod(name: str = "web", image: str = "busybox:1") -> Pod:
    """A static pod as the file source makes it; another image is another manifest,
    hence another uid and config hash, under the same full name."""
    uid = uuid.uuid5(uuid.NAMESPACE_DNS, f"{name}/{image}").hex
    doc = {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": name, "uid": uid, "labels": {"app": name}},
        "spec": {"containers": [{"name": "a", "image": image}]},
    }
    return pod_from_document(doc, origin=f"/m/{name}.yaml", node_name=NODE, seen=lambda _: "t")


def running(ready: bool, *, at: float = 100.0) -> PodStatus:
    conditions = tuple(
        PodCondition(t, s, at, reason="" if s else "ContainersNotReady")
        for t, s in (
            ("PodReadyToStartContainers", True),
            ("Initialized", True),
            ("Ready", ready),
            ("ContainersReady", ready),
            ("PodScheduled", True),
        )
    )
    return PodStatus(
        phase=PodPhase.RUNNING,
        conditions=conditions,
        host_ip="10.0.0.1",
        pod_ip="10.1.0.2",
        start_time=50.0,
        container_statuses=(
            ContainerStatus("a", StateRunning(60.0), None, ready, 0, "busybox:1", started=True),
        ),
    )


# --- the mirror body ---


def test_mirror_body_is_the_static_pod_with_the_mirror_annotation_and_the_node_as_owner() -> None:
    pod = static_pod()
    obj = pod_object(pod, running(True), 7)
    body = mirror_body(obj, node_name=NODE, node_uid=NODE_UID)
    meta = body["metadata"]
    assert meta["name"] == "web-node"
    assert meta["namespace"] == "default"
    assert meta["labels"] == {"app": "web"}
    for server_field in ("uid", "resourceVersion", "creationTimestamp"):
        assert server_field not in meta
    annotations = meta["annotations"]
    assert annotations[naming.CONFIG_MIRROR] == annotations[naming.CONFIG_HASH] == pod.uid
    assert annotations[naming.CONFIG_SOURCE] == "file"
    assert meta["ownerReferences"] == [
        {"apiVersion": "v1", "kind": "Node", "name": NODE, "uid": NODE_UID, "controller": True}
    ]
    assert body["spec"]["nodeName"] == NODE
    assert {"operator": "Exists", "effect": "NoExecute"} in body["spec"]["tolerations"]
    assert "status" not in body
    # The agent's own object is shared with its readers: left as it was.
    assert naming.CONFIG_MIRROR not in obj["metadata"]["annotations"]
    assert obj["metadata"]["uid"] == pod.uid


def test_mirror_body_drops_deletion_fields() -> None:
    obj = pod_object(static_pod(), running(True), 7)
    obj["metadata"]["deletionTimestamp"] = "2024-01-01T00:00:00Z"
    obj["metadata"]["deletionGracePeriodSeconds"] = 30
    meta = mirror_body(obj, node_name=NODE, node_uid=NODE_UID)["metadata"]
    assert "deletionTimestamp" not in meta
    assert "deletionGracePeriodSeconds" not in meta


# --- the status diff ---


def test_status_patch_of_equal_statuses_is_none() -> None:
    status = running(True).to_api()
    assert status_patch(status, copy.deepcopy(status)) is None


def test_condition_timestamps_alone_are_no_change() -> None:
    held = running(True, at=100.0).to_api()
    assert status_patch(running(True, at=500.0).to_api(), held) is None


def test_a_readiness_flip_sends_the_two_conditions_and_the_container_statuses() -> None:
    held = running(True).to_api()
    desired = running(False, at=200.0).to_api()
    patch = status_patch(desired, held)
    assert patch is not None
    assert set(patch) == {"conditions", "containerStatuses"}
    assert [c["type"] for c in patch["conditions"]] == ["Ready", "ContainersReady"]
    assert all(c["status"] == "False" for c in patch["conditions"])
    # Atomic list: sent whole, for the server to replace whole.
    assert patch["containerStatuses"] == desired["containerStatuses"]


def test_fields_a_changed_condition_no_longer_has_are_removed() -> None:
    held = running(False).to_api()
    held["conditions"][2]["reason"] = "ContainersNotReady"
    held["conditions"][2]["message"] = "containers with unready status: [a]"
    patch = status_patch(running(True).to_api(), held)
    assert patch is not None
    ready = patch["conditions"][0]
    assert ready["type"] == "Ready"
    assert ready["status"] == "True"
    # A strategic merge keeps the fields of a merged item the patch does not name.
    assert ready["reason"] is None
    assert ready["message"] is None


def test_changed_addresses_replace_the_servers_list() -> None:
    held = running(True).to_api()
    desired = copy.deepcopy(held)
    desired["podIP"] = "10.1.0.9"
    desired["podIPs"] = [{"ip": "10.1.0.9"}]
    assert status_patch(desired, held) == {
        "podIP": "10.1.0.9",
        # Merged by ip otherwise: the old address would stay.
        "podIPs": [{"ip": "10.1.0.9"}, {"$patch": "replace"}],
    }


def test_foreign_conditions_and_fields_are_left_alone() -> None:
    desired = running(True).to_api()
    held = copy.deepcopy(desired)
    held["conditions"].append({"type": "example.com/gate", "status": "True"})
    held["nominatedNodeName"] = "other"
    assert status_patch(desired, held) is None


def test_what_the_agent_no_longer_reports_is_removed() -> None:
    desired = running(True).to_api()
    held = copy.deepcopy(desired)
    held["reason"] = "Evicted"
    desired["conditions"] = [c for c in desired["conditions"] if c["type"] != "Initialized"]
    patch = status_patch(desired, held)
    assert patch == {
        "reason": None,
        "conditions": [{"type": "Initialized", "$patch": "delete"}],
    }


def test_a_server_status_without_conditions_gets_them_all() -> None:
    desired = running(True).to_api()
    patch = status_patch(desired, {"phase": "Pending", "qosClass": "BestEffort"})
    assert patch is not None
    assert patch["conditions"] == desired["conditions"]
    assert patch["phase"] == "Running"
    assert "qosClass" not in patch


# --- the decision ---

S = StaticView("h1")
S_OTHER = StaticView("h2")
S_STOPPING = StaticView("h1", deleting=True)
M = MirrorView("u1", "h1")
M_OLD = MirrorView("u1", "h0")
M_DELETING = MirrorView("u1", "h1", deleting=True)
NOT_MIRROR = MirrorView("u1", None)


@pytest.mark.parametrize(
    ("static", "mirror", "ready", "action"),
    [
        (S, None, False, Action.CREATE),
        (S, M, True, Action.STATUS),
        (S_OTHER, M, True, Action.REPLACE),
        (S, M_OLD, True, Action.REPLACE),
        (S, M_DELETING, True, Action.REPLACE),
        # A pod being stopped keeps its mirror (and its status) until it is done.
        (S_STOPPING, M, True, Action.STATUS),
        (S_STOPPING, None, True, Action.NOTHING),
        (S_STOPPING, M_OLD, True, Action.NOTHING),
        # No static pod: deleted, but only once the sources were read whole.
        (None, M, True, Action.DELETE),
        (None, M, False, Action.NOTHING),
        (None, M_DELETING, True, Action.DELETE),
        (None, None, True, Action.NOTHING),
        # Somebody else's pod: never touched.
        (None, NOT_MIRROR, True, Action.NOTHING),
        (S, NOT_MIRROR, True, Action.FOREIGN),
    ],
)
def test_decide(
    static: StaticView | None, mirror: MirrorView | None, ready: bool, action: Action
) -> None:
    assert decide(static, mirror, sources_ready=ready) is action


# --- coalescing per name ---


class Gate:
    """A fake sender: each call waits until released; records what it saw."""

    def __init__(self) -> None:
        self.calls: list[str] = []
        self.release = asyncio.Event()
        self.in_flight = 0
        self.max_in_flight = 0
        self.fail: list[ApiError] = []
        self.state = 0
        self.sent_states: list[int] = []

    async def work(self, key: str) -> bool:
        self.calls.append(key)
        state = self.state  # what a pass sends is read when it starts
        if self.sent_states and self.sent_states[-1] == state:
            return False  # the server already has the latest
        self.in_flight += 1
        self.max_in_flight = max(self.max_in_flight, self.in_flight)
        try:
            await self.release.wait()
            if self.fail:
                raise self.fail.pop(0)
            self.sent_states.append(state)
            return True
        finally:
            self.in_flight -= 1


async def eventually(predicate: Callable[[], bool], what: str, timeout: float = 3.0) -> None:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while not predicate():
        if loop.time() > deadline:
            pytest.fail(f"timed out waiting for {what}")
        await asyncio.sleep(0.002)


async def settle(slots: Slots[str], key: str) -> None:
    await eventually(lambda: not slots.busy(key), f"{key} settled")


async def test_a_burst_is_one_request_in_flight_and_one_with_the_latest() -> None:
    gate = Gate()
    clock = itertools.count(0.0, 0.5)
    settled: list[float] = []
    waits: list[float] = []

    async def wait(delay: float, error: ApiError | None) -> None:
        waits.append(delay)

    slots: Slots[str] = Slots(
        gate.work,
        wait=wait,
        clock=lambda: float(next(clock)),
        on_settled=lambda _k, s: settled.append(s),
    )
    gate.state = 1
    slots.mark("p")
    await asyncio.sleep(0.01)
    for state in range(2, 12):  # ten changes while the first request is out
        gate.state = state
        slots.mark("p")
    gate.release.set()
    await settle(slots, "p")
    assert gate.max_in_flight == 1
    assert gate.sent_states == [1, 11]
    assert slots.stats.coalesced == 9
    assert waits == []
    assert len(settled) == 1
    assert len(slots) == 0  # nothing kept for a settled name


async def test_a_failed_pass_is_retried_after_the_servers_retry_after() -> None:
    gate = Gate()
    gate.release.set()
    gate.fail = [ApiError(429, "TooManyRequests", "slow down", retry_after=3.0)]
    waits: list[tuple[float, int]] = []

    async def wait(delay: float, error: ApiError | None) -> None:
        assert error is not None
        waits.append((delay, error.code))

    failures: list[BaseException] = []
    slots: Slots[str] = Slots(
        gate.work,
        wait=wait,
        retry=lambda: Retry(random=lambda: 0.5),
        on_failure=lambda _k, e: failures.append(e),
    )
    gate.state = 1
    slots.mark("p")
    await settle(slots, "p")
    assert gate.sent_states == [1]
    assert len(waits) == 1
    assert waits[0][1] == 429
    assert 3.0 <= waits[0][0] <= 3.0 * 1.2
    assert len(failures) == 1


async def test_a_bug_in_a_pass_is_raised_not_retried() -> None:
    calls: list[str] = []

    async def work(key: str) -> bool:
        calls.append(key)
        raise KeyError("a bug")

    async def wait(delay: float, error: ApiError | None) -> None:
        raise AssertionError("a bug is not waited out and retried")

    slots: Slots[str] = Slots(work, wait=wait)
    slots.mark("p")
    with pytest.raises(KeyError):
        await asyncio.wait_for(slots.crashed(), 5)
    assert calls == ["p"]
    await slots.close()


async def test_names_do_not_wait_on_each_other() -> None:
    blocked = asyncio.Event()
    done: list[str] = []

    async def work(key: str) -> bool:
        if key == "slow":
            await blocked.wait()
        done.append(key)
        return False

    async def wait(delay: float, error: ApiError | None) -> None:
        raise AssertionError("no failure expected")

    slots: Slots[str] = Slots(work, wait=wait)
    slots.mark("slow")
    slots.mark("quick")
    await settle(slots, "quick")
    assert done == ["quick"]
    blocked.set()
    await settle(slots, "slow")
    await slots.close()


# --- MirrorPods against an in-memory pod API ---


class Ops:
    """Stands in for ``KubeApi.core``: an operation is its name."""

    def __getattr__(self, name: str) -> str:
        return name


class FakePodApi:
    """The pod API as far as mirror pods use it: resourceVersions, uid preconditions,
    AlreadyExists, graceful deletion of bound pods, a strategic merge of status
    (conditions by type, other lists whole) and one watch stream."""

    def __init__(self) -> None:
        self.core = Ops()
        self.pods: dict[tuple[str, str], dict[str, Any]] = {}
        self.rv = itertools.count(100)
        self.log: list[tuple[str, str]] = []
        self.fail_next: list[ApiError] = []
        self.history: list[dict[str, Any]] = []
        self.new_event = asyncio.Event()
        self.server = "http://fake"

    def _event(self, type_: str, obj: dict[str, Any]) -> None:
        self.history.append({"type": type_, "object": copy.deepcopy(obj)})
        self.new_event.set()

    def _bump(self, obj: dict[str, Any]) -> None:
        obj["metadata"]["resourceVersion"] = str(next(self.rv))

    async def call(self, verb: str, op: str, *args: Any, **kwargs: Any) -> dict[str, Any]:
        await asyncio.sleep(0)
        self.log.append((verb, op))
        if self.fail_next:
            raise self.fail_next.pop(0)
        handler: Callable[..., dict[str, Any]] = getattr(self, f"_{op}")
        return copy.deepcopy(handler(*args, **kwargs))

    def _list_pod_for_all_namespaces(self, field_selector: str) -> dict[str, Any]:
        node = field_selector.removeprefix("spec.nodeName=")
        items = [p for p in self.pods.values() if p["spec"].get("nodeName") == node]
        return {"metadata": {"resourceVersion": str(next(self.rv))}, "items": items}

    def _create_namespaced_pod(self, namespace: str, body: dict[str, Any]) -> dict[str, Any]:
        key = (namespace, body["metadata"]["name"])
        if key in self.pods:
            raise ApiError(409, "AlreadyExists", f'pods "{key[1]}" already exists')
        obj = copy.deepcopy(body)
        obj["metadata"]["uid"] = uuid.uuid4().hex
        obj["status"] = {"phase": "Pending", "qosClass": "BestEffort"}
        self._bump(obj)
        self.pods[key] = obj
        self._event("ADDED", obj)
        return obj

    def _read_namespaced_pod(self, name: str, namespace: str) -> dict[str, Any]:
        obj = self.pods.get((namespace, name))
        if obj is None:
            raise ApiError(404, "NotFound", f'pods "{name}" not found')
        return obj

    def _delete_namespaced_pod(
        self, name: str, namespace: str, body: dict[str, Any]
    ) -> dict[str, Any]:
        obj = self._read_namespaced_pod(name, namespace)
        if body["preconditions"]["uid"] != obj["metadata"]["uid"]:
            raise ApiError(409, "Conflict", "Precondition failed: UID")
        assert body["gracePeriodSeconds"] == 0
        del self.pods[(namespace, name)]
        self._bump(obj)
        self._event("DELETED", obj)
        return obj

    def user_delete(self, name: str, *, graceful: bool) -> None:
        key = ("default", name)
        obj = self.pods[key]
        if graceful:
            obj["metadata"]["deletionTimestamp"] = "2030-01-01T00:00:00Z"
            self._bump(obj)
            self._event("MODIFIED", obj)
        else:
            del self.pods[key]
            self._bump(obj)
            self._event("DELETED", obj)

    def _patch_namespaced_pod_status(
        self, name: str, namespace: str, body: dict[str, Any], _content_type: str
    ) -> dict[str, Any]:
        obj = self._read_namespaced_pod(name, namespace)
        if body["metadata"]["uid"] != obj["metadata"]["uid"]:
            raise ApiError(409, "Conflict", "Precondition failed: UID")
        status = obj["status"]
        for key, value in body["status"].items():
            if value is None:
                status.pop(key, None)
            elif key == "conditions":
                by_type = {c["type"]: c for c in status.get("conditions", [])}
                for item in value:
                    if item.get("$patch") == "delete":
                        by_type.pop(item["type"], None)
                    else:
                        # Merged field by field, as a strategic merge does; null removes.
                        merged = {**by_type.get(item["type"], {}), **item}
                        by_type[item["type"]] = {k: v for k, v in merged.items() if v is not None}
                status["conditions"] = list(by_type.values())
            elif isinstance(value, list):
                status[key] = [v for v in value if v != {"$patch": "replace"}]
            else:
                status[key] = value
        self._bump(obj)
        self._event("MODIFIED", obj)
        return obj

    async def watch(
        self, op: str, *, resource_version: str, **kwargs: Any
    ) -> AsyncIterator[dict[str, Any]]:
        self.log.append(("watch", op))
        since = int(resource_version)
        seen = 0
        while True:
            for event in self.history[seen:]:
                if int(event["object"]["metadata"]["resourceVersion"]) > since:
                    yield copy.deepcopy(event)
            seen = len(self.history)
            self.new_event.clear()
            await self.new_event.wait()

    def writes(self, op: str | None = None) -> int:
        return sum(1 for verb, o in self.log if verb not in ("list", "watch", "get") and o == op)


class KnownNode:
    async def wait(self) -> str:
        return NODE_UID


class Harness:
    """MirrorPods running against ``api``; ``ready`` is the sources' readiness, False
    at first, as in the agent, until ``add`` is called."""

    def __init__(self, api: FakePodApi) -> None:
        self.api = api
        self.status = StatusManager()
        self.ready = False
        self.recorder = EventRecorder(host=NODE, clock=lambda: 0.0)
        self.mirrors = MirrorPods(
            cast(KubeApi, api),
            node_name=NODE,
            status=self.status,
            recorder=self.recorder,
            node_uid=KnownNode(),
            sources_ready=lambda: self.ready,
        )
        self.task: asyncio.Task[None] | None = None

    async def __aenter__(self) -> Harness:
        self.task = asyncio.get_running_loop().create_task(self.mirrors.run())
        await asyncio.wait_for(self.mirrors.synced.wait(), 2)
        return self

    async def __aexit__(self, *exc: object) -> None:
        assert self.task is not None
        self.task.cancel()
        await asyncio.gather(self.task, return_exceptions=True)

    def add(self, pod: Pod, status: PodStatus | None = None) -> Pod:
        self.status.track(pod)
        if status is not None:
            self.status.set(pod.uid, status)
        self.ready = True
        return pod

    async def until(self, predicate: Callable[[], bool], what: str, timeout: float = 3.0) -> None:
        await eventually(predicate, what, timeout)

    async def quiet(self) -> None:
        """Until nothing is left to do for any name."""
        await self.until(
            lambda: all(not self.mirrors.slots.busy(k) for k in self.mirrors._names()),
            "every name settled",
        )
        await asyncio.sleep(0.02)
        await self.until(
            lambda: all(not self.mirrors.slots.busy(k) for k in self.mirrors._names()),
            "every name settled",
        )

    def mirror(self, name: str = "web-node") -> dict[str, Any] | None:
        return self.api.pods.get(("default", name))


@pytest.fixture
def fast_retries(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(mirror_module, "NAME_RETRY_INITIAL", 0.01)
    monkeypatch.setattr(mirror_module, "READY_CHECK_PERIOD", 0.01)


async def test_a_static_pod_gets_a_mirror_then_its_status_once(fast_retries: None) -> None:
    api = FakePodApi()
    async with Harness(api) as h:
        pod = h.add(static_pod(), running(True))
        await h.until(lambda: (m := h.mirror()) is not None and "conditions" in m["status"], "st")
        await h.quiet()
        mirror = h.mirror()
        assert mirror is not None
        assert mirror["metadata"]["annotations"][naming.CONFIG_MIRROR] == pod.uid
        assert mirror["status"]["phase"] == "Running"
        assert api.writes("create_namespaced_pod") == 1
        assert api.writes("patch_namespaced_pod_status") == 1
        # The same status again (other condition times): nothing to send.
        h.status.set(pod.uid, running(True, at=999.0))
        h.mirrors.slots.mark(("default", "web-node"))
        await h.quiet()
        assert api.writes("patch_namespaced_pod_status") == 1
        # A change: one patch.
        h.status.set(pod.uid, running(False))
        await h.until(lambda: api.writes("patch_namespaced_pod_status") == 2, "a second patch")
        await h.quiet()
        assert api.writes("patch_namespaced_pod_status") == 2
        # And back (the reasons of the False conditions go): one more.
        h.status.set(pod.uid, running(True))
        await h.until(lambda: api.writes("patch_namespaced_pod_status") == 3, "a third patch")
        await h.quiet()
        assert api.writes("patch_namespaced_pod_status") == 3
        assert h.mirrors.mirrors[("default", "web-node")].status == mirror_status(h)


def mirror_status(h: Harness) -> dict[str, Any]:
    m = h.mirror()
    assert m is not None
    status: dict[str, Any] = m["status"]
    return status


async def test_no_status_is_written_before_the_worker_made_one(fast_retries: None) -> None:
    api = FakePodApi()
    async with Harness(api) as h:
        h.add(static_pod())
        await h.until(lambda: h.mirror() is not None, "the mirror")
        await h.quiet()
        assert api.writes("patch_namespaced_pod_status") == 0


async def test_a_burst_of_changes_is_one_patch_per_pod_in_flight(fast_retries: None) -> None:
    api = FakePodApi()
    async with Harness(api) as h:
        pod = h.add(static_pod(), running(True))
        await h.until(lambda: api.writes("patch_namespaced_pod_status") == 1, "first status")
        await h.quiet()
        for i in range(20):
            h.status.set(pod.uid, running(i % 2 == 0))
        await h.quiet()
        # Twenty changes while at most one request is out: the first is sent, the rest
        # fold into one more with the newest (which equals what the server has: none).
        assert api.writes("patch_namespaced_pod_status") <= 3
        held = mirror_status(h)
        assert [c["status"] for c in held["conditions"] if c["type"] == "Ready"] == ["False"]


async def test_an_existing_mirror_is_adopted_without_writes(fast_retries: None) -> None:
    api = FakePodApi()
    pod = static_pod()
    async with Harness(api) as h:
        h.add(pod, running(True))
        await h.until(lambda: api.writes("patch_namespaced_pod_status") == 1, "status")
    before = len([e for e in api.log if e[0] not in ("list", "watch")])
    # A restarted agent: same static pod, same status but new condition times.
    async with Harness(api) as h:
        h.add(pod, running(True, at=5000.0))
        await h.quiet()
        writes = [e for e in api.log if e[0] not in ("list", "watch")]
        assert len(writes) == before, writes[before:]
        assert len(api.pods) == 1


async def test_a_changed_manifest_replaces_the_mirror(fast_retries: None) -> None:
    api = FakePodApi()
    async with Harness(api) as h:
        old = h.add(static_pod(image="busybox:1"), running(True))
        await h.until(lambda: api.writes("patch_namespaced_pod_status") == 1, "status")
        old_uid = mirror_uid(h)
        # The new manifest's pod comes while the old one stops.
        h.status.begin_deletion(old.uid, now=0.0, grace_seconds=30)
        new = h.add(static_pod(image="busybox:2"), running(True))
        await h.until(
            lambda: (
                (m := h.mirror()) is not None
                and m["metadata"]["annotations"][naming.CONFIG_MIRROR] == new.uid
            ),
            "the new mirror",
        )
        h.status.untrack(old.uid)
        await h.quiet()
        assert mirror_uid(h) != old_uid
        assert api.writes("delete_namespaced_pod") == 1
        assert api.writes("create_namespaced_pod") == 2


def mirror_uid(h: Harness) -> str:
    m = h.mirror()
    assert m is not None
    return str(m["metadata"]["uid"])


async def test_a_removed_pod_loses_its_mirror_once_stopped(fast_retries: None) -> None:
    api = FakePodApi()
    async with Harness(api) as h:
        pod = h.add(static_pod(), running(True))
        await h.until(lambda: api.writes("patch_namespaced_pod_status") == 1, "status")
        h.status.begin_deletion(pod.uid, now=0.0, grace_seconds=30)
        await h.quiet()
        assert h.mirror() is not None  # still stopping
        h.status.untrack(pod.uid)
        await h.until(lambda: h.mirror() is None, "the mirror deleted")


async def test_orphans_wait_for_every_source(fast_retries: None) -> None:
    api = FakePodApi()
    async with Harness(api) as h:
        h.add(static_pod(), running(True))
        await h.until(lambda: api.writes("patch_namespaced_pod_status") == 1, "status")
    async with Harness(api) as h:
        await h.quiet()
        await asyncio.sleep(0.05)
        assert h.mirror() is not None
        h.ready = True
        await h.until(lambda: h.mirror() is None, "the orphan deleted")


async def test_a_deleted_mirror_is_made_again(fast_retries: None) -> None:
    api = FakePodApi()
    async with Harness(api) as h:
        h.add(static_pod(), running(True))
        await h.until(lambda: api.writes("patch_namespaced_pod_status") == 1, "status")
        first = mirror_uid(h)
        api.user_delete("web-node", graceful=True)
        await h.until(lambda: h.mirror() is not None and mirror_uid(h) != first, "replaced")
        await h.until(
            lambda: "deletionTimestamp" not in (h.mirror() or {"metadata": {}})["metadata"], "x"
        )
        second = mirror_uid(h)
        api.user_delete("web-node", graceful=False)
        await h.until(lambda: h.mirror() is not None and mirror_uid(h) != second, "recreated")
        await h.until(lambda: mirror_status(h).get("phase") == "Running", "its status")


async def test_server_faults_are_retried_until_the_server_has_the_state(
    fast_retries: None,
) -> None:
    api = FakePodApi()
    async with Harness(api) as h:
        api.fail_next = [
            ApiError(503, "ServiceUnavailable", "busy", retry_after=0.01),
            ApiError(0, "ClientConnectorError", "refused"),
            ApiError(403, "Forbidden", "no"),
        ]
        h.add(static_pod(), running(True))
        await h.until(lambda: api.writes("patch_namespaced_pod_status") >= 1, "status")
        await h.quiet()
        assert mirror_status(h)["phase"] == "Running"
        warnings = [e for e in h.recorder.list() if e.reason == "FailedMirrorPod"]
        assert warnings
        assert warnings[0].involved.name == "web-node"


async def test_a_pod_of_that_name_that_is_no_mirror_is_left_alone(fast_retries: None) -> None:
    api = FakePodApi()
    api.pods[("default", "web-node")] = {
        "metadata": {
            "name": "web-node",
            "namespace": "default",
            "uid": "x",
            "resourceVersion": "1",
        },
        "spec": {"nodeName": NODE},
        "status": {},
    }
    async with Harness(api) as h:
        h.add(static_pod(), running(True))
        await h.quiet()
        assert api.writes("create_namespaced_pod") == 0
        assert api.writes("delete_namespaced_pod") == 0
        assert any(e.reason == "FailedMirrorPod" for e in h.recorder.list())
