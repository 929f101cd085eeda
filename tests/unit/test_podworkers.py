"""The pod workers' loop, whole, over an in-memory runtime and a clock moved by hand.

``FakeRuntime`` implements ``PodRuntime`` over a real ``RuntimeCache``: what
it starts, stops and removes goes through the cache as Docker's results and
events would, so the real ``PodWorkers``, ``PodSync``, ``Terminator``,
``HookRunner``, ``ProbeManager`` and ``StatusManager`` run unchanged. It logs
every call, so a test reads what was done to which pod, and in what order.
Time moves only through ``FakeClock.advance``: a 10 s back-off takes no
time, and every wait is a bounded poll of the event loop, never a fixed sleep.
"""

from __future__ import annotations

import asyncio
import dataclasses
import itertools
import json
from collections.abc import AsyncIterator, Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from minikubelet.container.cache import RuntimeCache
from minikubelet.container.state import ContainerRecord, ContainerState
from minikubelet.errors import MinikubeletError
from minikubelet.events import EventRecorder, EventType
from minikubelet.lifecycle import HookRunner
from minikubelet.model import naming
from minikubelet.model.manifest import pod_from_document
from minikubelet.model.spec import Pod, PodUID
from minikubelet.podworkers import PodWorkers, WorkerSettings, pod_ref
from minikubelet.podworkers.runtime import PodRuntime, PostStart
from minikubelet.prober.manager import ProbeManager
from minikubelet.runtime.actions import StartContainer
from minikubelet.runtime.docker import DockerRuntime
from minikubelet.runtime.labels import record_from_labels
from minikubelet.runtime.pods import PodContext
from minikubelet.runtime.volumes import PodDirectory, PodPaths
from minikubelet.status.manager import StatusManager
from minikubelet.status.types import StateWaiting

NODE = "node"
OLD = PodUID("0" * 31 + "1")
NEW = PodUID("0" * 31 + "2")
PRE_STOP = {"exec": {"command": ["sh", "-c", "echo bye"]}}


def docker_runtime_is_a_pod_runtime(runtime: DockerRuntime) -> PodRuntime:
    """Checked by mypy: the agent's runtime keeps fitting the workers' Protocol."""
    return runtime


# --- a clock and a runtime for the workers ---


@dataclass
class FakeTimer:
    when: float
    callback: Callable[[], None]
    cancelled: bool = False

    def cancel(self) -> None:
        self.cancelled = True


class FakeClock:
    """Wall-clock time that moves only when told; timers fire as it passes them."""

    def __init__(self, now: float = 1_700_000_000.0) -> None:
        self.now = now
        self._timers: list[FakeTimer] = []

    def __call__(self) -> float:
        return self.now

    def call_at(self, when: float, callback: Callable[[], None]) -> FakeTimer:
        timer = FakeTimer(when, callback)
        self._timers.append(timer)
        return timer

    def advance(self, seconds: float) -> None:
        self.now += seconds
        due = sorted(
            (t for t in self._timers if t.when <= self.now and not t.cancelled),
            key=lambda t: t.when,
        )
        self._timers = [t for t in self._timers if t not in due and not t.cancelled]
        for timer in due:
            timer.callback()


# What the runtime was asked: (what, pod uid, container name or "", a number or None).
Call = tuple[str, PodUID, str, float | None]


class FakeRuntime:
    """Containers in memory: start at once, stop when asked (or when a test opens the gate)."""

    def __init__(self, clock: FakeClock, state_dir: Path) -> None:
        self.cache = RuntimeCache()
        self.clock = clock
        self.paths = PodPaths(state_dir)
        self.calls: list[Call] = []
        # How long each exec (a hook) takes, in clock seconds.
        self.exec_seconds = 0.0
        # While set and not open, stop_container waits for it.
        self.stop_gate: asyncio.Event | None = None
        # remove_pod fails this many more times.
        self.remove_failures = 0
        self._ids = itertools.count()

    # PodRuntime

    def pod_directory(self, uid: str) -> PodDirectory:
        return self.paths.pod(uid)

    async def exec_in(
        self, container_id: str, command: tuple[str, ...] | list[str], *, timeout: float | None
    ) -> tuple[int, bytes]:
        record = self.cache.get(container_id)
        assert record is not None
        self.calls.append(("exec", record.pod_uid, record.name, timeout))
        self.clock.advance(self.exec_seconds)
        return 0, b""

    async def start_pod(
        self,
        pod: Pod,
        *,
        attempt: int,
        starts: Sequence[StartContainer],
        start_time: float,
        post_start: PostStart | None = None,
    ) -> dict[str, MinikubeletError]:
        self.calls.append(("start_pod", pod.uid, "", attempt))
        labels = {
            **pod_labels(pod.uid, pod.name, pod.namespace),
            naming.DOCKER_TYPE: naming.TYPE_SANDBOX,
            naming.SANDBOX_ATTEMPT: str(attempt),
            naming.POD_IP: "10.217.0.5",
        }
        sandbox = self.add(labels)
        return await self.start_containers(self.context_for(pod, sandbox), starts, post_start)

    def context_for(self, pod: Pod, sandbox: ContainerRecord) -> PodContext:
        pod_ip = sandbox.label(naming.POD_IP)
        return PodContext(pod, sandbox.id, pod_ip, self.pod_directory(pod.uid), {}, None)

    async def start_containers(
        self,
        ctx: PodContext,
        starts: Sequence[StartContainer],
        post_start: PostStart | None = None,
    ) -> dict[str, MinikubeletError]:
        pod = ctx.pod
        for start in starts:
            container = start.container
            self.calls.append(("start", pod.uid, container.name, start.restart_count))
            labels = {
                **pod_labels(pod.uid, pod.name, pod.namespace),
                naming.DOCKER_TYPE: naming.TYPE_CONTAINER,
                naming.CONTAINER_NAME: container.name,
                naming.SANDBOX_ID: ctx.sandbox_id,
                naming.RESTART_COUNT: str(start.restart_count),
                naming.CONTAINER_HASH: container.spec_hash,
                naming.POD_GRACE_PERIOD: str(pod.spec.termination_grace_period_seconds),
            }
            record = self.add(labels)
            if post_start is not None:
                await post_start(ctx, container, record.id)
        return {}

    async def stop_container(self, record: ContainerRecord, *, timeout: int) -> None:
        self.calls.append(("stop", record.pod_uid, record.name, timeout))
        if self.stop_gate is not None:
            await self.stop_gate.wait()
        self.cache.died(record.id, at=self.clock(), exit_code=0 if record.is_sandbox else 137)

    async def remove_container(self, cid: str) -> None:
        self.cache.remove(cid)

    async def remove_pod(self, uid: PodUID) -> None:
        self.calls.append(("remove_pod", uid, "", None))
        if self.remove_failures > 0:
            self.remove_failures -= 1
            raise MinikubeletError("removal of container is already in progress")
        for record in (*self.cache.pod_state(uid).containers, *self.cache.pod_state(uid).sandboxes):
            self.cache.remove(record.id)

    # for the tests

    def add(self, labels: dict[str, str]) -> ContainerRecord:
        """A running container with these labels, as the relist would find it."""
        record = record_from_labels(
            f"c{next(self._ids):04d}",
            labels,
            state=ContainerState.RUNNING,
            created_at=self.clock(),
        )
        assert record is not None
        record = dataclasses.replace(record, started_at=self.clock())
        self.cache.put(record)
        return record

    def exit(self, uid: PodUID, name: str, code: int) -> None:
        """The running instance of ``name`` ("POD": the sandbox) exits now."""
        state = self.cache.pod_state(uid)
        record = state.sandbox if name == naming.SANDBOX_CONTAINER_NAME else state.latest(name)
        assert record is not None
        assert record.running
        self.cache.died(record.id, at=self.clock(), exit_code=code)

    def asked(self, what: str, uid: PodUID) -> list[Call]:
        return [c for c in self.calls if c[0] == what and c[1] == uid]

    def kills(self, uid: PodUID) -> list[Call]:
        """What stopping the pod took: hooks, stops and the removal, in order."""
        return [c for c in self.calls if c[1] == uid and c[0] in ("exec", "stop", "remove_pod")]


def pod_labels(uid: str, name: str, namespace: str) -> dict[str, str]:
    return {naming.POD_UID: uid, naming.POD_NAME: name, naming.POD_NAMESPACE: namespace}


# --- the node under test ---


@dataclass
class Node:
    clock: FakeClock
    runtime: FakeRuntime
    status: StatusManager
    recorder: EventRecorder
    workers: PodWorkers
    desired: dict[PodUID, Pod] = field(default_factory=dict)

    def want(self, *pods: Pod) -> None:
        """The manifest directory now holds exactly these pods."""
        self.desired = {p.uid: p for p in pods}
        self.workers.sync_desired(self.desired, True)

    def reasons(self) -> list[str]:
        return [e.reason for e in self.recorder.list()]

    def waiting_reason(self, pod: Pod, name: str) -> str:
        status = self.status.get(pod.uid)
        container = status.container(name) if status is not None else None
        state = container.state if container is not None else None
        return state.reason if isinstance(state, StateWaiting) else ""

    def running(self, pod: Pod, name: str, *, attempt: int) -> bool:
        record = self.runtime.cache.pod_state(pod.uid).latest(name)
        return record is not None and record.running and record.attempt == attempt


@pytest.fixture
async def node(tmp_path: Path) -> AsyncIterator[Node]:
    clock = FakeClock()
    runtime = FakeRuntime(clock, tmp_path)
    status = StatusManager()
    recorder = EventRecorder(host=NODE, clock=clock)

    def probe_event(pod: Pod, type_: EventType, reason: str, message: str, path: str) -> None:
        recorder.record(pod_ref(pod, path), type_, reason, message)

    prober = ProbeManager(runtime, runtime.cache, event=probe_event, clock=clock)
    workers = PodWorkers(
        runtime,
        status,
        recorder,
        settings=WorkerSettings(),
        clock=clock,
        hooks=HookRunner(runtime),
        prober=prober,
        call_at=clock.call_at,
    )
    yield Node(clock, runtime, status, recorder, workers)
    await workers.shutdown(stop_pods=False)


def make_pod(
    name: str = "web",
    *,
    uid: PodUID = OLD,
    containers: Sequence[str] = ("a",),
    grace: int = 30,
    pre_stop: bool = False,
    command: str = "sleep 3600",
) -> Pod:
    def container(c: str) -> dict[str, Any]:
        body: dict[str, Any] = {"name": c, "image": "busybox:1", "command": ["sh", "-c", command]}
        if pre_stop:
            body["lifecycle"] = {"preStop": PRE_STOP}
        return body

    doc = {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": name, "uid": uid},
        "spec": {
            "containers": [container(c) for c in containers],
            "terminationGracePeriodSeconds": grace,
        },
    }
    return pod_from_document(doc, origin="/m/web.yaml", node_name=NODE, seen=lambda uid: "t")


async def eventually(predicate: Callable[[], bool], what: str, timeout: float = 2.0) -> None:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while not predicate():
        if loop.time() > deadline:
            pytest.fail(f"timed out waiting for {what}")
        await asyncio.sleep(0.001)


async def settle() -> None:
    """Run everything that is ready: the fake runtime never waits on time, only on the loop."""
    for _ in range(100):
        await asyncio.sleep(0)


# --- restarts ---


async def test_a_crash_restarts_at_once_then_backs_off(node: Node) -> None:
    pod = make_pod()
    node.want(pod)
    await eventually(lambda: node.running(pod, "a", attempt=0), "the first start")

    node.clock.advance(1)
    node.runtime.exit(pod.uid, "a", code=1)
    await eventually(lambda: node.running(pod, "a", attempt=1), "a restart at once")

    node.clock.advance(1)
    node.runtime.exit(pod.uid, "a", code=1)
    await eventually(
        lambda: node.waiting_reason(pod, "a") == "CrashLoopBackOff", "CrashLoopBackOff"
    )
    assert "BackOff" in node.reasons()
    node.clock.advance(9.5)
    await settle()
    assert node.runtime.asked("start", pod.uid)[-1][3] == 1, "restarted inside its back-off"

    node.clock.advance(0.5)
    await eventually(lambda: node.running(pod, "a", attempt=2), "the restart after 10 s")


async def test_a_dead_sandbox_is_recreated_with_its_containers(node: Node) -> None:
    pod = make_pod(containers=("a", "b"))
    node.want(pod)
    await eventually(lambda: node.running(pod, "b", attempt=0), "the pod running")

    node.runtime.exit(pod.uid, naming.SANDBOX_CONTAINER_NAME, code=0)

    def recreated() -> bool:
        state = node.runtime.cache.pod_state(pod.uid)
        sandbox = state.sandbox
        return (
            sandbox is not None
            and sandbox.running
            and sandbox.attempt == 1
            and all(
                (r := state.latest(c)) is not None
                and r.running
                and r.label(naming.SANDBOX_ID) == sandbox.id
                for c in ("a", "b")
            )
        )

    await eventually(recreated, "a new sandbox with both containers in it")
    assert "SandboxChanged" in node.reasons()
    assert node.runtime.asked("start_pod", pod.uid)[-1][3] == 1
    status = node.status.get(pod.uid)
    assert status is not None
    assert [(s.name, s.restart_count) for s in status.container_statuses] == [("a", 1), ("b", 1)]


# --- termination ---

STOP_SANDBOX = ("stop", naming.SANDBOX_CONTAINER_NAME, 0)
REMOVE = ("remove_pod", "", None)


@pytest.mark.parametrize(
    ("grace", "hook_seconds", "expected"),
    [
        (30, 5, [("exec", "a", 30), ("stop", "a", 25), STOP_SANDBOX, REMOVE]),
        (3, 2, [("exec", "a", 3), ("stop", "a", 2), STOP_SANDBOX, REMOVE]),
        (0, 5, [REMOVE]),
    ],
    ids=["hook-time-comes-off-the-grace", "at-least-the-min-stop-window", "grace-0-kills-at-once"],
)
async def test_a_removed_pod_runs_pre_stop_within_its_grace(
    node: Node, grace: int, hook_seconds: float, expected: list[tuple[str, str, float | None]]
) -> None:
    pod = make_pod(grace=grace, pre_stop=True)
    node.want(pod)
    await eventually(lambda: node.running(pod, "a", attempt=0), "the pod running")
    node.runtime.exec_seconds = hook_seconds

    node.want()
    await eventually(lambda: bool(node.runtime.asked("remove_pod", pod.uid)), "the removal")
    assert [(what, name, n) for what, _, name, n in node.runtime.kills(pod.uid)] == expected


async def test_a_removed_pod_shows_its_deletion_until_its_worker_is_done(node: Node) -> None:
    pod = make_pod(grace=12)
    node.want(pod)
    await eventually(lambda: node.running(pod, "a", attempt=0), "the pod running")
    node.runtime.stop_gate = asyncio.Event()

    node.want()
    deletion = node.status.deletion(pod.uid)
    assert deletion is not None
    assert (deletion.timestamp, deletion.grace_seconds) == (node.clock() + 12, 12)
    await eventually(lambda: bool(node.runtime.asked("stop", pod.uid)), "the pod stopping")
    assert node.status.get(pod.uid) is not None, "gone before its containers"

    node.runtime.stop_gate.set()
    await eventually(lambda: node.status.get(pod.uid) is None, "the pod untracked")
    assert node.runtime.asked("remove_pod", pod.uid)


# --- one pod per full name ---


async def test_a_changed_manifest_starts_its_pod_once_the_old_one_is_gone(node: Node) -> None:
    old = make_pod(uid=OLD)
    new = make_pod(uid=NEW, command="sleep 3601")
    assert new.key == old.key
    node.want(old)
    await eventually(lambda: node.running(old, "a", attempt=0), "the old pod running")
    node.runtime.stop_gate = asyncio.Event()

    node.want(new)
    await eventually(lambda: bool(node.runtime.asked("stop", OLD)), "the old pod stopping")
    await settle()
    assert node.runtime.asked("start_pod", NEW) == [], "started beside the old pod"

    node.runtime.stop_gate.set()
    await eventually(lambda: node.running(new, "a", attempt=0), "the new pod running")
    calls = node.runtime.calls
    assert calls.index(("remove_pod", OLD, "", None)) < calls.index(("start_pod", NEW, "", 0))


async def test_a_pod_whose_termination_failed_holds_its_name_until_a_retry_works(
    node: Node,
) -> None:
    old = make_pod(uid=OLD)
    new = make_pod(uid=NEW, command="sleep 3601")
    node.want(old)
    await eventually(lambda: node.running(old, "a", attempt=0), "the old pod running")
    node.runtime.remove_failures = 1

    node.want()  # the file is removed...
    await eventually(lambda: bool(node.runtime.asked("remove_pod", OLD)), "a failed removal")
    await settle()
    node.want(new)  # ...and comes back, edited, while the old pod waits for its retry
    await settle()
    assert node.runtime.asked("start_pod", NEW) == [], "started beside the old pod"

    node.clock.advance(WorkerSettings().worker_retry.initial)
    await eventually(lambda: node.running(new, "a", attempt=0), "the new pod running")
    calls = node.runtime.calls
    removals = [i for i, call in enumerate(calls) if call == ("remove_pod", OLD, "", None)]
    assert len(removals) == 2
    assert calls.index(("start_pod", NEW, "", 0)) > removals[-1]


async def test_stopping_pods_on_exit_does_not_wait_for_a_termination_retry(node: Node) -> None:
    pod = make_pod()
    node.want(pod)
    await eventually(lambda: node.running(pod, "a", attempt=0), "the pod running")
    node.runtime.remove_failures = 1
    node.want()
    await eventually(lambda: bool(node.runtime.asked("remove_pod", OLD)), "a failed removal")
    await settle()

    async with asyncio.timeout(2):
        await node.workers.shutdown(stop_pods=True)
    assert node.runtime.cache.pod_state(OLD).empty


# --- pods no source has: found on Docker after a restart ---


def add_orphan(node: Node, uid: PodUID, *, grace: str = "30") -> None:
    """A pod's containers, labelled as the agent makes them, whose manifest is gone."""
    base = pod_labels(uid, "web-node", "default")
    sandbox = node.runtime.add(
        {
            **base,
            naming.DOCKER_TYPE: naming.TYPE_SANDBOX,
            naming.SANDBOX_ATTEMPT: "0",
            naming.POD_IP: "10.217.0.9",
        }
    )
    node.runtime.add(
        {
            **base,
            naming.DOCKER_TYPE: naming.TYPE_CONTAINER,
            naming.CONTAINER_NAME: "a",
            naming.SANDBOX_ID: sandbox.id,
            naming.RESTART_COUNT: "0",
            naming.POD_GRACE_PERIOD: grace,
            naming.PRE_STOP_HANDLER: json.dumps(PRE_STOP, sort_keys=True),
        }
    )


@pytest.mark.parametrize(
    ("grace", "expected"),
    [
        ("30", [("exec", "a", 1), ("stop", "a", 2), STOP_SANDBOX, REMOVE]),
        ("0", [REMOVE]),
    ],
    ids=["pre-stop-within-1s-then-the-min-window", "grace-0-still-at-once"],
)
async def test_orphans_are_killed_with_the_kubelets_one_second_grace(
    node: Node, grace: str, expected: list[tuple[str, str, float | None]]
) -> None:
    add_orphan(node, OLD, grace=grace)
    node.want()
    await eventually(lambda: bool(node.runtime.asked("remove_pod", OLD)), "the orphan removed")
    assert [(what, name, n) for what, _, name, n in node.runtime.kills(OLD)] == expected


async def test_an_orphan_holds_its_name_until_it_is_gone(node: Node) -> None:
    add_orphan(node, OLD)
    new = make_pod(uid=NEW)
    node.runtime.stop_gate = asyncio.Event()

    node.want(new)
    await eventually(lambda: bool(node.runtime.asked("stop", OLD)), "the orphan stopping")
    await settle()
    assert node.runtime.asked("start_pod", NEW) == [], "started beside the orphan"

    node.runtime.stop_gate.set()
    await eventually(lambda: node.running(new, "a", attempt=0), "the new pod running")
    calls = node.runtime.calls
    assert calls.index(("remove_pod", OLD, "", None)) < calls.index(("start_pod", NEW, "", 0))
