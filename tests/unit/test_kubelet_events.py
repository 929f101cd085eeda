"""The events the pod workers record, in the kubelet's reasons and words, through the real
workers over the fake runtime of test_podworkers: crash back-off, image pull back-off,
a failed postStart hook, a termination past its grace period."""

from __future__ import annotations

from typing import Any

import pytest

from minikubelet.errors import ImagePullError, MinikubeletError
from minikubelet.events import Event
from minikubelet.model.manifest import pod_from_document
from minikubelet.model.spec import Pod
from minikubelet.util.timefmt import go_duration
from tests.unit.test_podworkers import NODE, OLD, Node, eventually, make_pod, node, settle

__all__ = ["node"]  # the fixture, used by name


def events(node: Node, reason: str) -> list[Event]:
    return [e for e in node.recorder.list() if e.reason == reason]


async def test_a_crash_loop_is_a_backoff_event_naming_the_pod_as_the_kubelet_does(
    node: Node,
) -> None:
    pod = make_pod()
    node.want(pod)
    await eventually(lambda: node.running(pod, "a", attempt=0), "the first start")
    node.runtime.exit(pod.uid, "a", code=1)
    await eventually(lambda: node.running(pod, "a", attempt=1), "a restart at once")
    node.runtime.exit(pod.uid, "a", code=1)
    await eventually(lambda: bool(events(node, "BackOff")), "a BackOff event")
    (backoff,) = events(node, "BackOff")
    assert backoff.message == (
        f"Back-off restarting failed container a in pod {pod.name}_default({pod.uid})"
    )
    assert backoff.involved.field_path == "spec.containers{a}"
    assert str(backoff.type) == "Warning"


async def test_an_image_pull_in_back_off_is_the_kubelets_pair_of_events(
    node: Node, monkeypatch: pytest.MonkeyPatch
) -> None:
    async def failing_start(*args: Any, **kwargs: Any) -> dict[str, MinikubeletError]:
        return {"a": ImagePullError('Failed to pull image "busybox:1": no such host')}

    monkeypatch.setattr(node.runtime, "start_pod", failing_start)
    pod = make_pod()
    node.want(pod)
    await eventually(lambda: bool(events(node, "BackOff")), "the pull back-off events")
    (backoff,) = events(node, "BackOff")
    assert (str(backoff.type), backoff.message) == ("Normal", 'Back-off pulling image "busybox:1"')
    assert [e.message for e in events(node, "Failed")] == ["Error: ImagePullBackOff"]
    # The sync that failed still reports the failure itself, as the kubelet's does.
    assert node.waiting_reason(pod, "a") == "ErrImagePull"


def post_start_pod() -> Pod:
    doc = {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": "hooked", "uid": OLD},
        "spec": {
            "containers": [
                {
                    "name": "a",
                    "image": "busybox:1",
                    "lifecycle": {"postStart": {"exec": {"command": ["secret-thing"]}}},
                }
            ]
        },
    }
    return pod_from_document(doc, origin="/m/h.yaml", node_name=NODE, seen=lambda uid: "t")


async def test_a_failed_post_start_hook_hides_its_output_and_kills_the_container(
    node: Node, monkeypatch: pytest.MonkeyPatch
) -> None:
    async def failing_exec(*args: Any, **kwargs: Any) -> tuple[int, bytes]:
        return 1, b"password=hunter2"

    monkeypatch.setattr(node.runtime, "exec_in", failing_exec)
    pod = post_start_pod()
    node.want(pod)
    await eventually(lambda: bool(events(node, "Killing")), "the container killed")
    (failed,) = events(node, "FailedPostStartHook")
    assert (str(failed.type), failed.message) == ("Warning", "PostStartHook failed")
    assert failed.involved.field_path == "spec.containers{a}"
    (killing,) = events(node, "Killing")
    assert killing.message == "FailedPostStartHook"
    assert all("hunter2" not in e.message for e in node.recorder.list())


@pytest.mark.parametrize(
    ("grace", "late"), [(2, 10), (30, 45)], ids=["at-least-10s", "grace-and-a-half"]
)
async def test_a_pod_still_stopping_past_its_grace_and_a_half_is_reported(
    node: Node, grace: int, late: float
) -> None:
    import asyncio

    pod = make_pod(grace=grace)
    node.want(pod)
    await eventually(lambda: node.running(pod, "a", attempt=0), "the pod running")
    node.runtime.stop_gate = asyncio.Event()
    node.want()
    await eventually(lambda: bool(node.runtime.asked("stop", pod.uid)), "the pod stopping")
    node.clock.advance(late - 0.5)
    await settle()
    assert events(node, "ExceededGracePeriod") == []
    node.clock.advance(0.5)
    await settle()
    (late_event,) = events(node, "ExceededGracePeriod")
    assert late_event.message == (
        "Container runtime did not kill the pod within specified grace period."
    )
    node.runtime.stop_gate.set()
    await eventually(lambda: bool(node.runtime.asked("remove_pod", pod.uid)), "the removal")


async def test_a_pod_stopped_in_time_is_not_reported(node: Node) -> None:
    pod = make_pod(grace=2)
    node.want(pod)
    await eventually(lambda: node.running(pod, "a", attempt=0), "the pod running")
    node.want()
    await eventually(lambda: bool(node.runtime.asked("remove_pod", pod.uid)), "the removal")
    node.clock.advance(60)
    await settle()
    assert events(node, "ExceededGracePeriod") == []
    assert [e.message for e in events(node, "Killing")] == ["Stopping container a"]


@pytest.mark.parametrize(
    ("seconds", "text"),
    [
        (0, "0s"),
        (0.0004, "0s"),
        (0.523, "523ms"),
        (1.0, "1s"),
        (1.2345, "1.234s"),
        (1.5, "1.5s"),
        (123.5, "2m3.5s"),
        (3600, "1h0m0s"),
        (3725.25, "1h2m5.25s"),
    ],
)
def test_durations_print_as_go_prints_them(seconds: float, text: str) -> None:
    assert go_duration(seconds) == text
